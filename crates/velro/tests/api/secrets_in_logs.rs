//! No secret reaches a log line: the real binary, logging everything at trace level, is driven
//! through every endpoint and its error paths with known passwords, tokens and keys, and then
//! everything it wrote is searched for them.

use std::time::Duration;

use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

use crate::binary::{serve, Running};
use crate::helpers::token_in;

const SERVICE_KEY: &str = "log-test-service-key-7Hq2vX9pLm4Rt8Wz3Kc6Nb1";
const JWT_SECRET: &str = "log-test-jwt-secret-Yd5Fs2Jk8Qw4Ep7Zr1Tx6Uv3Ma9";
const PASSWORD: &str = "Lantern-Quokka-Saffron-81";
const WRONG_PASSWORD: &str = "Marble-Heron-Velvet-27";
const CHANGED_PASSWORD: &str = "Orbit-Tamarind-Juniper-56";
const RESET_PASSWORD: &str = "Cobalt-Meadow-Pylon-33";
const SHORT_PASSWORD: &str = "Zq7!sh";
const FORGED_TOKEN: &str =
    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJmb3JnZWQtNDI0MiJ9.Rk9SR0VELXNpZ25hdHVyZS05OTk";
const UNKNOWN_REFRESH: &str = "Vn3bQ8sLx1Kd6Rf9Tp2Wm5Hc4Jz7Ya0Ge3Nu8Bq1Ds6";

struct Server {
    running: Running,
    client: Client,
    secrets: Vec<(String, String)>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        self.running.url(path)
    }

    fn remember(&mut self, what: &str, secret: &str) {
        self.secrets.push((what.to_string(), secret.to_string()));
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("answers");
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn raw(&self, path: &str, body: &'static str) -> StatusCode {
        let response = self
            .client
            .post(self.url(path))
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .expect("answers");
        response.status()
    }
}

fn token(body: &Value, field: &str) -> String {
    body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} in {body}"))
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_or_key_reaches_the_logs_of_a_full_run_on_sqlite() {
    full_run_with_logs_searched(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_password_token_or_key_reaches_the_logs_of_a_full_run_on_postgres_and_redis() {
    let Some(database_url) = velro_pgtest::fresh_database().await else {
        return;
    };
    let Some(redis_url) = velro_redistest::redis_url() else {
        return;
    };
    let namespace = format!("logs-{}", uuid::Uuid::new_v4().simple());
    full_run_with_logs_searched(&[
        ("DATABASE_URL", &database_url),
        ("REDIS_URL", &redis_url),
        ("VELRO_CACHE_NAMESPACE", &namespace),
    ])
    .await;
}

async fn full_run_with_logs_searched(settings: &[(&str, &str)]) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = serve(dir.path());
    command
        .envs(settings.iter().copied())
        // Every crate at its most verbose: the database driver, the cache, the HTTP stack.
        .env("VELRO_LOG_LEVEL", "trace")
        .env("VELRO_JWT_SECRET", JWT_SECRET)
        .env("VELRO_SERVICE_KEY", SERVICE_KEY);
    let mut server = Server {
        running: Running::start(command),
        client: Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        secrets: Vec::new(),
    };
    for (what, secret) in [
        ("the JWT secret", JWT_SECRET),
        ("the service key", SERVICE_KEY),
        ("the password", PASSWORD),
        ("a wrong password", WRONG_PASSWORD),
        ("the changed password", CHANGED_PASSWORD),
        ("the reset password", RESET_PASSWORD),
        ("a refused short password", SHORT_PASSWORD),
        ("a forged token", FORGED_TOKEN),
        ("an unknown refresh token", UNKNOWN_REFRESH),
    ] {
        server.remember(what, secret);
    }
    exercise_every_endpoint(&mut server, dir.path()).await;

    let Server {
        running, secrets, ..
    } = server;
    let (_, logs) = running.stop();
    // The search means something only if the run was logged in detail.
    for expected in [
        "user registered",
        "password changed",
        "password reset",
        "/api/v1/auth/password-reset-confirm",
        "/api/v1/admin/users",
        "\"status\":401",
        "\"status\":422",
        "\"level\":\"DEBUG\"",
        "sqlx::query",
    ] {
        assert!(
            logs.contains(expected),
            "the logs lack {expected:?}:\n{logs}"
        );
    }
    for (what, secret) in &secrets {
        if let Some(line) = logs.lines().find(|line| line.contains(secret.as_str())) {
            panic!("{what} reached the logs: {line}");
        }
    }
}

/// Every endpoint, successes and refusals, with the secrets in every place a client puts them.
async fn exercise_every_endpoint(server: &mut Server, data_dir: &std::path::Path) {
    let email = "log.test@example.com";
    let (status, session) = server
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD, "display_name": "Log Test"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{session}");
    server.remember("the first access token", &token(&session, "access_token"));
    server.remember("the first refresh token", &token(&session, "refresh_token"));
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": email, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"email": "short@example.com", "password": SHORT_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    // A body that is not JSON, with a password inside: the parse error must not echo it.
    let garbled = server
        .raw(
            "/api/v1/auth/login",
            r#"{"email": "log.test@example.com", "password": "Marble-Heron-Velvet-27""#,
        )
        .await;
    assert_eq!(garbled, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": WRONG_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, session) = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": PASSWORD, "remember_me": true})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{session}");
    let access = token(&session, "access_token");
    let refresh = token(&session, "refresh_token");
    server.remember("the login access token", &access);
    server.remember("the login refresh token", &refresh);

    let (status, _) = server
        .call(Method::GET, "/api/v1/auth/me", Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(Method::GET, "/api/v1/auth/me", Some(FORGED_TOKEN), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call(
            Method::PUT,
            "/api/v1/auth/profile",
            Some(&access),
            Some(json!({"display_name": "Logged Tester"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, rotated) = server
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": refresh})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let access = token(&rotated, "access_token");
    server.remember("the refreshed access token", &access);
    server.remember(
        "the refreshed refresh token",
        &token(&rotated, "refresh_token"),
    );
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/refresh",
            None,
            Some(json!({"refresh_token": UNKNOWN_REFRESH})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, sessions) = server
        .call(Method::GET, "/api/v1/auth/sessions", Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let first_session = sessions["sessions"]
        .as_array()
        .and_then(|all| all.last())
        .and_then(|s| s["id"].as_str())
        .expect("a session id")
        .to_string();
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/change-password",
            Some(&access),
            Some(json!({"current_password": WRONG_PASSWORD, "new_password": CHANGED_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v1/auth/change-password",
            Some(&access),
            Some(json!({"current_password": PASSWORD, "new_password": CHANGED_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{first_session}"),
            Some(&access),
            None,
        )
        .await;
    // The registration's session, revoked by the password change.
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/password-reset",
            None,
            Some(json!({"email": email})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let reset_token = reset_token_in(&data_dir.join("mail")).await;
    server.remember("the reset token", &reset_token);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/password-reset-confirm",
            None,
            Some(json!({"token": reset_token, "new_password": SHORT_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, body) = server
        .call(
            Method::POST,
            "/api/v1/auth/password-reset-confirm",
            None,
            Some(json!({"token": reset_token, "new_password": RESET_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/password-reset-confirm",
            None,
            Some(json!({"token": reset_token, "new_password": RESET_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, session) = server
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"email": email, "password": RESET_PASSWORD})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let access = token(&session, "access_token");
    server.remember("the last access token", &access);
    server.remember("the last refresh token", &token(&session, "refresh_token"));
    let user_id = session["user"]["id"].as_str().expect("user id").to_string();

    let (status, _) = server
        .call(
            Method::GET,
            "/api/v1/admin/users",
            Some(WRONG_PASSWORD),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call(
            Method::GET,
            "/api/v1/admin/users?email=log&limit=10",
            Some(SERVICE_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(
            Method::PATCH,
            &format!("/api/v1/admin/users/{user_id}"),
            Some(SERVICE_KEY),
            Some(json!({"credits_balance": 5})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(Method::GET, "/api/v1/admin/flags", Some(SERVICE_KEY), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(
            Method::POST,
            "/api/v1/auth/logout?scope=global",
            Some(&access),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = server
        .call(Method::GET, "/api/v1/auth/me", Some(&access), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = server
        .call(
            Method::DELETE,
            &format!("/api/v1/admin/users/{user_id}"),
            Some(SERVICE_KEY),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

/// The reset token from the development mailer's message, waiting briefly for it to be written.
async fn reset_token_in(mail_dir: &std::path::Path) -> String {
    for _ in 0..500 {
        let token = std::fs::read_dir(mail_dir).ok().and_then(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
                .find_map(|message| token_in(&message))
        });
        if let Some(token) = token {
            return token;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no reset message arrived in {}", mail_dir.display());
}
