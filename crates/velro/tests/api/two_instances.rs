//! Two `velro serve` processes sharing one PostgreSQL and one Redis: a change made through one is
//! seen through the other within the propagation lag, which this test measures.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::binary::{serve, Running};
use crate::helpers::{unique_email, PASSWORD, SERVICE_KEY};

/// Polling gives up here: far above the lag (milliseconds), far below a hang.
const PATIENCE: Duration = Duration::from_secs(3);

fn start(
    database_url: &str,
    redis_url: &str,
    namespace: &str,
    data_dir: &std::path::Path,
) -> Running {
    let mut command = serve(data_dir);
    command
        .env("DATABASE_URL", database_url)
        .env("REDIS_URL", redis_url)
        .env("VELRO_CACHE_NAMESPACE", namespace)
        // Many logins of one account from one address: this test is about propagation.
        .env("VELRO_RATE_LIMITS", "off")
        .env(
            "VELRO_JWT_SECRET",
            "two-instances-shared-secret-0123456789abcdef",
        )
        .env("VELRO_SERVICE_KEY", SERVICE_KEY)
        .env("VELRO_LOG_LEVEL", "warn,velro::startup=info");
    Running::start(command)
}

async fn me(client: &reqwest::Client, base: &str, access: &str) -> (StatusCode, Value) {
    let response = client
        .get(format!("{base}/api/v1/auth/me"))
        .bearer_auth(access)
        .send()
        .await
        .expect("answered");
    let status = response.status();
    (status, response.json().await.expect("JSON"))
}

/// Polls `base`'s /me until `done` holds, returning how long that took after `since`.
async fn lag_until(
    client: &reqwest::Client,
    base: &str,
    access: &str,
    since: Instant,
    done: impl Fn(StatusCode, &Value) -> bool,
) -> Duration {
    loop {
        let (status, body) = me(client, base, access).await;
        if done(status, &body) {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < PATIENCE,
            "not seen within {PATIENCE:?}: {status} {body}"
        );
    }
}

async fn login(client: &reqwest::Client, base: &str, email: &str) -> String {
    let response = client
        .post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.expect("JSON");
    body["access_token"].as_str().expect("token").to_string()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_through_one_instance_are_seen_through_the_other() {
    let Some(database_url) = velro_pgtest::fresh_database().await else {
        return;
    };
    let Some(redis_url) = velro_redistest::redis_url() else {
        return;
    };
    let namespace = format!("two-{}", uuid::Uuid::new_v4().simple());
    let (dir_a, dir_b) = (
        tempfile::tempdir().expect("dir"),
        tempfile::tempdir().expect("dir"),
    );
    // B migrates after A has: the second `migrate` finds nothing to do.
    let a = start(&database_url, &redis_url, &namespace, dir_a.path());
    let b = start(&database_url, &redis_url, &namespace, dir_b.path());
    let client = reqwest::Client::new();

    let email = unique_email("twin");
    let registered: Value = client
        .post(format!("{}/api/v1/auth/register", a.base))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let user_id = registered["user"]["id"].as_str().expect("id").to_string();

    // Revocations: many rounds, each with B holding the session in its cache.
    let rounds: usize = std::env::var("VELRO_LAG_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(20);
    let mut lags = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let access = login(&client, &a.base, &email).await;
        for _ in 0..3 {
            assert_eq!(me(&client, &b.base, &access).await.0, StatusCode::OK);
        }
        let response = client
            .post(format!("{}/api/v1/auth/logout", a.base))
            .bearer_auth(&access)
            .send()
            .await
            .expect("answered");
        let since = Instant::now();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            me(&client, &a.base, &access).await.0,
            StatusCode::UNAUTHORIZED,
            "refused at once on A"
        );
        lags.push(
            lag_until(&client, &b.base, &access, since, |s, _| {
                s == StatusCode::UNAUTHORIZED
            })
            .await,
        );
    }
    lags.sort();
    eprintln!(
        "revocation propagation A→B over {rounds} rounds: p50 {:?}, p99 {:?}, max {:?}",
        percentile(&lags, 0.5),
        percentile(&lags, 0.99),
        lags[lags.len() - 1]
    );

    // A profile change on A shows on B's /me.
    let access = login(&client, &a.base, &email).await;
    assert_eq!(me(&client, &b.base, &access).await.0, StatusCode::OK);
    let changed = client
        .put(format!("{}/api/v1/auth/profile", a.base))
        .bearer_auth(&access)
        .json(&json!({"full_name": "Changed On A"}))
        .send()
        .await
        .expect("answered");
    assert_eq!(changed.status(), StatusCode::OK);
    let since = Instant::now();
    let lag = lag_until(&client, &b.base, &access, since, |s, body| {
        s == StatusCode::OK && body["display_name"] == "Changed On A"
    })
    .await;
    eprintln!("profile change propagation A→B: {lag:?}");

    // An admin disable on A blocks the user on B.
    let disabled = client
        .patch(format!("{}/api/v1/admin/users/{user_id}", a.base))
        .bearer_auth(SERVICE_KEY)
        .json(&json!({"disabled": true}))
        .send()
        .await
        .expect("answered");
    assert_eq!(disabled.status(), StatusCode::OK);
    let since = Instant::now();
    let lag = lag_until(&client, &b.base, &access, since, |s, body| {
        s == StatusCode::UNAUTHORIZED && body["code"] == "session_revoked"
    })
    .await;
    eprintln!("admin disable propagation A→B: {lag:?}");
}
