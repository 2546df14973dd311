//! A stuck database gives a bounded answer: 503 `overloaded` with `Retry-After`, never a hang.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;
use sqlx::Connection;

use crate::both_stores;
use crate::helpers::{expect_error, unique_email, TestApp, PASSWORD};

both_stores!(a_locked_database_is_refused_within_the_inner_timeouts);

/// Holds the write lock (SQLite) or an exclusive table lock (PostgreSQL) from outside the app.
enum Blocker {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Blocker {
    async fn lock(app: &TestApp) -> Self {
        match &app.config.database_url {
            Some(url) => {
                let mut connection = sqlx::PgConnection::connect(url.expose())
                    .await
                    .expect("connects");
                sqlx::query("BEGIN")
                    .execute(&mut connection)
                    .await
                    .expect("begins");
                sqlx::query("LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
                    .execute(&mut connection)
                    .await
                    .expect("locks");
                Self::Postgres(connection)
            }
            None => {
                let path = app.config.data_dir.join("velro.db");
                let url = format!("sqlite://{}", path.display());
                let mut connection = sqlx::SqliteConnection::connect(&url)
                    .await
                    .expect("connects");
                sqlx::query("BEGIN IMMEDIATE")
                    .execute(&mut connection)
                    .await
                    .expect("locks");
                Self::Sqlite(connection)
            }
        }
    }

    async fn release(self) {
        match self {
            Self::Sqlite(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rolls back");
            }
            Self::Postgres(mut c) => {
                sqlx::query("ROLLBACK")
                    .execute(&mut c)
                    .await
                    .expect("rolls back");
            }
        }
    }
}

async fn a_locked_database_is_refused_within_the_inner_timeouts(app: TestApp) {
    let app = app
        .with_config(|c| {
            c.database_max_connections = 1;
            c.database_acquire_timeout_ms = 200;
            c.database_statement_timeout_ms = 300;
            c.request_timeout_ms = 3_000;
        })
        .await;
    let blocker = Blocker::lock(&app).await;
    let started = Instant::now();
    let attempts: Vec<_> = (0..3)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/api/v1/auth/register");
            let email = unique_email("stuck");
            tokio::spawn(async move {
                client
                    .post(url)
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await
            })
        })
        .collect();
    for attempt in attempts {
        let response = attempt.await.expect("joins").expect("answered");
        assert_eq!(
            response
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok()),
            Some("1")
        );
        expect_error(response, StatusCode::SERVICE_UNAVAILABLE, "overloaded").await;
    }
    // Bounded by the inner waits, well before the request deadline (3 s): not a hang.
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    blocker.release().await;
    app.register(&unique_email("unstuck")).await;
}
