//! The purge as an operator meets it: `velro purge` prints what it removed, and a serving
//! instance purges by itself, leaving what clients still hold working.

use std::process::Output;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use sqlx::{Connection, PgConnection, SqliteConnection};
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{CodeChallenge, FlowMethod, FlowStateId, NewFlowState, SessionId, UserId};
use velro_core::store::{NewSession, RefreshPolicy, Rotation, TokenHash};
use velro_core::{Clock, SystemClock};

use crate::binary::{output_within, velro};
use crate::both_stores;
use crate::helpers::{expect_session, unique_email, TestApp, PASSWORD};

both_stores!(
    velro_purge_prints_what_it_removed_per_table,
    a_serving_instance_purges_ended_sessions_by_itself,
);

fn token() -> TokenHash {
    let mut hash = [0_u8; 32];
    hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    TokenHash(hash)
}

fn session(user_id: UserId, at: OffsetDateTime) -> NewSession {
    NewSession {
        id: SessionId(Uuid::new_v4()),
        user_id,
        remember_me: false,
        user_agent: None,
        ip: None,
        refresh_token: token(),
        refresh_expires_at: at + time::Duration::days(7),
        now: at,
    }
}

/// `velro purge` on the app's database, with the real clock and the default retention.
async fn purge_command(app: &TestApp) -> Output {
    let mut command = velro();
    command
        .arg("purge")
        .env("VELRO_DATA_DIR", app.config.data_dir.as_path())
        .env("VELRO_LOG_LEVEL", "error");
    if let Some(url) = &app.config.database_url {
        command.env("DATABASE_URL", url.expose());
    }
    tokio::task::spawn_blocking(move || output_within(command, Duration::from_secs(60)))
        .await
        .expect("joined")
}

/// The number printed after `table` in `velro purge`'s output.
fn removed(stdout: &str, table: &str) -> u64 {
    stdout
        .lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some(table))
                .then(|| words.next()?.parse().ok())
                .flatten()
        })
        .unwrap_or_else(|| panic!("no line for {table} in:\n{stdout}"))
}

async fn velro_purge_prints_what_it_removed_per_table(app: TestApp) {
    let email = unique_email("purge");
    let live = app.register(&email).await;
    let user_id = UserId(live.user_id().parse().expect("a uuid"));
    let store = app.store().await;
    let long_ago = SystemClock.now() - time::Duration::days(40);

    // Expired 33 days ago, never revoked: one session, one token.
    store
        .create_session(session(user_id, long_ago))
        .await
        .expect("create_session");
    // Rotated once, then logged out 40 days ago: one session, two tokens.
    let old = session(user_id, long_ago);
    let (old_id, old_refresh) = (old.id, old.refresh_token);
    store.create_session(old).await.expect("create_session");
    let policy = RefreshPolicy {
        lifetime: time::Duration::days(7),
        remember_me_lifetime: time::Duration::days(30),
        reuse_grace: time::Duration::seconds(10),
    };
    let rotation = store
        .rotate_refresh_token(old_refresh, token(), policy, long_ago)
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
    assert!(store
        .revoke_session(user_id, old_id, long_ago)
        .await
        .expect("revoke"));
    // A reset token that expired 40 days ago, and one requested now.
    store
        .create_reset_token(
            user_id,
            token(),
            long_ago + time::Duration::hours(1),
            long_ago,
        )
        .await
        .expect("create_reset_token");
    let reset = app.reset_token(&email).await;
    // A PKCE flow state begun 40 days ago, and one begun now.
    for begun in [long_ago, SystemClock.now()] {
        store
            .create_flow_state(NewFlowState {
                id: FlowStateId(Uuid::now_v7()),
                user_id,
                method: FlowMethod::Recovery,
                challenge: CodeChallenge::parse(
                    Some("ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc"),
                    Some("s256"),
                )
                .expect("a well-formed challenge")
                .expect("a PKCE flow"),
                now: begun,
            })
            .await
            .expect("create_flow_state");
    }

    let output = purge_command(&app).await;
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(removed(&stdout, "refresh_tokens"), 3, "{stdout}");
    assert_eq!(removed(&stdout, "sessions"), 2, "{stdout}");
    assert_eq!(removed(&stdout, "password_reset_tokens"), 1, "{stdout}");
    assert_eq!(removed(&stdout, "flow_states"), 1, "{stdout}");
    assert!(stdout.contains("removed 7 rows"), "{stdout}");

    // What the client holds still works: its session, its refresh token, its reset token.
    assert_eq!(app.me(&live.access).await.status(), StatusCode::OK);
    let refreshed = expect_session(app.refresh_response(&live.refresh).await, StatusCode::OK).await;
    assert_eq!(refreshed.session_id(), live.session_id());
    assert_eq!(
        app.confirm_reset(&reset, "a brand new passphrase 7")
            .await
            .status(),
        StatusCode::OK
    );

    // Run again: nothing left past its retention.
    let again = purge_command(&app).await;
    let stdout = String::from_utf8_lossy(&again.stdout).to_string();
    assert!(again.status.success(), "{stdout}");
    for table in [
        "refresh_tokens",
        "sessions",
        "password_reset_tokens",
        "flow_states",
    ] {
        assert_eq!(removed(&stdout, table), 0, "{stdout}");
    }
}

/// `SELECT count(*)` with one id, on a connection of its own.
async fn count(app: &TestApp, sql: &str, id: &str) -> i64 {
    let id: Uuid = id.parse().expect("a uuid");
    match &app.config.database_url {
        Some(url) => {
            let mut conn = PgConnection::connect(url.expose()).await.expect("connects");
            let n = sqlx::query_scalar(sql)
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .expect("count");
            conn.close().await.expect("closes");
            n
        }
        None => {
            let path = app.config.data_dir.join("velro.db");
            let url = format!("sqlite://{}?mode=ro", path.display());
            let mut conn = SqliteConnection::connect(&url).await.expect("connects");
            let n = sqlx::query_scalar(sql)
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .expect("count");
            conn.close().await.expect("closes");
            n
        }
    }
}

async fn a_serving_instance_purges_ended_sessions_by_itself(app: TestApp) {
    let app = app
        .with_config(|config| config.purge_interval_secs = 1)
        .await;
    let email = unique_email("purge");
    let first = app.register(&email).await;
    let second = app.login(&email, PASSWORD).await;
    assert_eq!(
        app.logout(&first.access, None).await.status(),
        StatusCode::OK
    );
    // The logout is now past the retention; the second session expired a day ago, within it.
    app.advance(i64::try_from(app.config.purge_retention_secs).expect("fits") + 24 * 3600);

    let sessions = "SELECT count(*) FROM sessions WHERE user_id = $1";
    let patience = Instant::now() + Duration::from_secs(30);
    while count(&app, sessions, &first.user_id()).await > 1 {
        assert!(
            Instant::now() < patience,
            "the ended session is still there after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_id = "SELECT count(*) FROM sessions WHERE session_id = $1";
    assert_eq!(count(&app, by_id, &first.session_id()).await, 0);
    assert_eq!(count(&app, by_id, &second.session_id()).await, 1);
    let tokens = "SELECT count(*) FROM refresh_tokens WHERE session_id = $1";
    assert_eq!(count(&app, tokens, &first.session_id()).await, 0);
    assert_eq!(count(&app, tokens, &second.session_id()).await, 1);

    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for name in [
        "velro_purge_rows_total{table=\"sessions\"}",
        "velro_purge_duration_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}
