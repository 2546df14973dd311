//! Waits that run out and closed pools are `Unavailable`, which the core turns into a 503
//! instead of a 500.

use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, PgConnection, SqliteConnection};
use velro_core::domain::AdminUserChange;
use velro_core::store::Store;
use velro_core::StoreError;
use velro_store::{PgConfig, PgStore, SqliteConfig, SqliteStore};

use crate::fixture::{register, secs, t0, Fixture};

store_contract!(a_closed_store_is_unavailable);

async fn a_closed_store_is_unavailable(fx: &Fixture) {
    let ada = register(fx.store(), "ada@example.com", t0()).await;
    fx.close().await;
    let outcome = fx.store().ping().await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    let outcome = fx.store().revoke_sessions(ada.user.id, None, t0()).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    let outcome = fx.store().purge(t0(), 10).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
}

const SHORT: Duration = Duration::from_millis(300);

fn disable() -> AdminUserChange {
    AdminUserChange {
        disabled: Some(true),
        ..AdminUserChange::default()
    }
}

#[tokio::test]
async fn a_sqlite_write_that_waits_past_busy_timeout_is_unavailable() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("velro.db");
    let store = SqliteStore::connect(&SqliteConfig {
        path: path.clone(),
        max_connections: 2,
        acquire_timeout: Duration::from_secs(5),
        busy_timeout: SHORT,
    })
    .await
    .expect("open SQLite");
    store.migrate().await.expect("migrate");
    let ada = register(&store, "ada@example.com", t0()).await;

    // Another process holding the write lock.
    let mut other = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .expect("second connection");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("take the write lock");
    let started = Instant::now();
    let outcome = store.update_user(ada.user.id, &disable(), t0()).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release the lock");
    let user = store
        .update_user(ada.user.id, &disable(), t0() + secs(1))
        .await
        .expect("the write succeeds once the lock is free")
        .expect("the user");
    assert!(user.disabled);
    store.close().await;
}

#[tokio::test]
async fn a_postgres_statement_running_past_statement_timeout_is_unavailable() {
    let Some(url) = velro_pgtest::fresh_database().await else {
        return;
    };
    let store = PgStore::connect(&PgConfig {
        url: url.clone(),
        max_connections: 2,
        min_connections: 0,
        acquire_timeout: Duration::from_secs(5),
        statement_timeout: SHORT,
    })
    .await
    .expect("connect PostgreSQL");
    store.migrate().await.expect("migrate");
    let ada = register(&store, "ada@example.com", t0()).await;

    // Another transaction holding the user's row lock.
    let mut other = PgConnection::connect(&url)
        .await
        .expect("second connection");
    let mut tx = other.begin().await.expect("begin");
    sqlx::query("SELECT 1 FROM users WHERE user_id = $1 FOR UPDATE")
        .bind(ada.user.id.0)
        .execute(&mut *tx)
        .await
        .expect("lock the row");
    let started = Instant::now();
    let outcome = store.update_user(ada.user.id, &disable(), t0()).await;
    assert!(
        matches!(outcome, Err(StoreError::Unavailable(_))),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    tx.rollback().await.expect("release the lock");
    let user = store
        .update_user(ada.user.id, &disable(), t0() + secs(1))
        .await
        .expect("the write succeeds once the lock is free")
        .expect("the user");
    assert!(user.disabled);
    store.close().await;
}
