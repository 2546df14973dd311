//! `TestApp`: one server per test, with its own database, data folder and clock, and typed helpers
//! for every endpoint. Assertions about the contract live in the test modules, except the error
//! shape, which every error must have and `expect_error` checks.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use velro::config::Config;
use velro::startup::Application;
use velro_core::store::Store;
use velro_core::{ManualClock, Secret};

pub const SERVICE_KEY: &str = "test-service-key-0123456789abcdefghijklmnop";
pub const JWT_SECRET: &str = "test-jwt-secret-0123456789abcdefghijklmnopqrstuv";
pub const PASSWORD: &str = "correct horse battery staple";
pub const NEW_PASSWORD: &str = "purple monkey dishwasher 42";

/// Expands each named `async fn(TestApp)` into a SQLite test and a PostgreSQL test.
#[macro_export]
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::TestApp::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if let Some(app) = $crate::helpers::TestApp::postgres().await {
                        super::$name(app).await;
                    }
                }
            )*
        }
    };
}

pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub clock: Arc<ManualClock>,
    pub data_dir: TempDir,
    pub config: Config,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// What register, login and refresh return, for the helpers' callers.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub body: Value,
}

impl Tokens {
    pub fn user_id(&self) -> String {
        self.body["user"]["id"]
            .as_str()
            .expect("user id")
            .to_string()
    }

    pub fn claims(&self) -> Value {
        jwt_claims(&self.access)
    }

    /// The session id, as the access token's `sid` claim carries it.
    pub fn session_id(&self) -> String {
        self.claims()["sid"]
            .as_str()
            .expect("sid claim")
            .to_string()
    }
}

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::spawn(None, |_| {}).await
    }

    /// PostgreSQL with the shared Redis cache layer, as production runs (when a Redis is
    /// available; otherwise the in-process layer only).
    pub async fn postgres() -> Option<Self> {
        let url = velro_pgtest::fresh_database().await?;
        let redis = velro_redistest::redis_url();
        Some(
            Self::spawn(Some(url), |config| {
                config.redis_url = redis.map(velro_core::Secret::new);
                config.cache_namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
            })
            .await,
        )
    }

    /// A test app with some settings changed: the same kind of store (and the same Redis, in
    /// a namespace of its own), with a database of its own.
    pub async fn with_config(&self, change: impl FnOnce(&mut Config)) -> Self {
        let database_url = if self.is_postgres() {
            velro_pgtest::fresh_database().await
        } else {
            None
        };
        let redis = self.config.redis_url.clone();
        Self::spawn(database_url, |config| {
            config.redis_url = redis;
            config.cache_namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
            change(config);
        })
        .await
    }

    /// A second instance of the same deployment: the same settings, PostgreSQL database and
    /// Redis namespace, a data folder (and a clock) of its own. On SQLite, whose file is in
    /// the data folder, the database is its own too.
    pub async fn another_instance(&self) -> Self {
        let shared = self.config.clone();
        let database_url = shared
            .database_url
            .as_ref()
            .map(|url| url.expose().to_string());
        Self::spawn(database_url, move |config| {
            let data_dir = config.data_dir.clone();
            *config = shared;
            config.data_dir = data_dir;
        })
        .await
    }

    /// The app's store, opened a second time, for what the API cannot do (importing a hash).
    pub async fn store(&self) -> Arc<dyn Store> {
        let database = velro::database::Database::open(&self.config)
            .await
            .expect("opens the app's database");
        database.store()
    }

    pub fn is_postgres(&self) -> bool {
        self.config.database_url.is_some()
    }

    async fn spawn(database_url: Option<String>, change: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config {
            bind: "127.0.0.1:0".parse().expect("valid address"),
            data_dir: data_dir.path().to_path_buf(),
            database_url: database_url.map(Secret::new),
            jwt_secret: Some(Secret::new(JWT_SECRET.into())),
            service_key: Some(Secret::new(SERVICE_KEY.into())),
            // Cheap hashing in tests only; production keeps the OWASP defaults.
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            hash_threads: Some(2),
            hash_queue: 256,
            shutdown_grace_secs: 1,
            // Many tests sign in again and again from 127.0.0.1; the abuse tests switch it on.
            rate_limits: velro::config::Switch::Off,
            // Tests move the clock by days; a purge firing meanwhile would make them depend on
            // timing. The purge tests switch it on.
            purge_interval_secs: 0,
            ..Config::default()
        };
        change(&mut config);
        let clock = Arc::new(ManualClock::starting_now());
        let app = Application::build_with_clock(&config, clock.clone())
            .await
            .expect("the app builds");
        let address = format!("http://{}", app.local_addr().expect("bound"));
        let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(app.run_until_stopped(async move {
            let _ = stop.await;
        }));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client");
        Self {
            address,
            client,
            clock,
            data_dir,
            config,
            _shutdown: shutdown,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Moves the app's clock; never sleep instead.
    pub fn advance(&self, seconds: i64) {
        self.clock.advance(time::Duration::seconds(seconds));
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    /// A request with a raw `Authorization` header value.
    pub async fn with_authorization(
        &self,
        method: Method,
        path: &str,
        authorization: &str,
    ) -> Response {
        self.client
            .request(method, self.url(path))
            .header(reqwest::header::AUTHORIZATION, authorization)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.request(
            method,
            &format!("/api/v1/admin{path}"),
            Some(SERVICE_KEY),
            body,
        )
        .await
    }

    /// The admin API with another bearer (or none).
    pub async fn admin_as(&self, bearer: Option<&str>, method: Method, path: &str) -> Response {
        self.request(method, &format!("/api/v1/admin{path}"), bearer, None)
            .await
    }

    /// GET /users/{id} with the service key, expecting 200.
    pub async fn admin_user(&self, id: &str) -> Value {
        expect_json(
            self.admin(Method::GET, &format!("/users/{id}"), None).await,
            StatusCode::OK,
        )
        .await
    }

    /// PATCH /users/{id} with the service key, expecting 200.
    pub async fn admin_patch(&self, id: &str, change: Value) -> Value {
        let response = self
            .admin(Method::PATCH, &format!("/users/{id}"), Some(change))
            .await;
        expect_json(response, StatusCode::OK).await
    }

    pub async fn register_with(&self, body: Value) -> Response {
        self.post("/api/v1/auth/register", body).await
    }

    pub async fn register_response(&self, email: &str, password: &str) -> Response {
        self.register_with(json!({"email": email, "password": password}))
            .await
    }

    /// Registers and expects success.
    pub async fn register(&self, email: &str) -> Tokens {
        let response = self.register_response(email, PASSWORD).await;
        expect_session(response, StatusCode::CREATED).await
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.post(
            "/api/v1/auth/login",
            json!({"email": email, "password": password}),
        )
        .await
    }

    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        expect_session(self.login_response(email, password).await, StatusCode::OK).await
    }

    pub async fn login_remembered(&self, email: &str, remember_me: bool) -> Tokens {
        let body = json!({"email": email, "password": PASSWORD, "remember_me": remember_me});
        expect_session(self.post("/api/v1/auth/login", body).await, StatusCode::OK).await
    }

    pub async fn refresh_response(&self, refresh_token: &str) -> Response {
        self.post(
            "/api/v1/auth/refresh",
            json!({"refresh_token": refresh_token}),
        )
        .await
    }

    pub async fn refresh(&self, refresh_token: &str) -> Tokens {
        expect_session(self.refresh_response(refresh_token).await, StatusCode::OK).await
    }

    pub async fn me(&self, access: &str) -> Response {
        self.get("/api/v1/auth/me", access).await
    }

    /// GET /me, expecting 200.
    pub async fn me_json(&self, access: &str) -> Value {
        expect_json(self.me(access).await, StatusCode::OK).await
    }

    pub async fn patch_profile(&self, access: &str, body: Value) -> Response {
        self.request(
            Method::PUT,
            "/api/v1/auth/profile",
            Some(access),
            Some(body),
        )
        .await
    }

    /// POST /logout, with `?scope=<scope>` when given.
    pub async fn logout(&self, access: &str, scope: Option<&str>) -> Response {
        let path = match scope {
            Some(scope) => format!("/api/v1/auth/logout?scope={scope}"),
            None => "/api/v1/auth/logout".to_string(),
        };
        self.request(Method::POST, &path, Some(access), None).await
    }

    /// GET /sessions, expecting 200; the list.
    pub async fn sessions(&self, access: &str) -> Vec<Value> {
        let body = expect_json(
            self.get("/api/v1/auth/sessions", access).await,
            StatusCode::OK,
        )
        .await;
        body["sessions"].as_array().expect("sessions list").clone()
    }

    pub async fn delete_session(&self, access: &str, id: &str) -> Response {
        self.request(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{id}"),
            Some(access),
            None,
        )
        .await
    }

    pub async fn request_reset(&self, email: &str) -> Response {
        self.post("/api/v1/auth/password-reset", json!({"email": email}))
            .await
    }

    /// Asks for a reset and waits for its message; the token.
    pub async fn reset_token(&self, email: &str) -> String {
        let earlier = self.mail_to(email).len();
        let response = self.request_reset(email).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        self.reset_token_for(email, earlier).await
    }

    pub async fn confirm_reset(&self, token: &str, new_password: &str) -> Response {
        let body = json!({"token": token, "new_password": new_password});
        self.post("/api/v1/auth/password-reset-confirm", body).await
    }

    pub async fn change_password(&self, access: &str, current: &str, new: &str) -> Response {
        let body = json!({"current_password": current, "new_password": new});
        self.request(
            Method::POST,
            "/api/v1/auth/change-password",
            Some(access),
            Some(body),
        )
        .await
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.data_dir.path().join("mail")
    }

    /// The reset token of the newest message to `to`, waiting (briefly) for it to be written.
    pub async fn reset_token_for(&self, to: &str, earlier_messages: usize) -> String {
        for _ in 0..500 {
            let messages = self.mail_to(to);
            if messages.len() > earlier_messages {
                let body = messages.last().cloned().unwrap_or_default();
                return token_in(&body).expect("the message carries a token");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no reset message for {to} arrived");
    }

    /// Messages to `to`, oldest first.
    pub fn mail_to(&self, to: &str) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.mail_dir()) else {
            return Vec::new();
        };
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        paths
            .into_iter()
            .filter_map(|path| std::fs::read_to_string(path).ok())
            .filter(|content| content.starts_with(&format!("To: {to}\n")))
            .collect()
    }
}

/// The reset token: the message's one line that is a 43-character base64url string.
pub fn token_in(body: &str) -> Option<String> {
    body.lines()
        .map(str::trim)
        .find(|line| {
            line.len() == 43
                && line
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
        .map(str::to_string)
}

pub async fn expect_session(response: Response, status: StatusCode) -> Tokens {
    let body = expect_json(response, status).await;
    Tokens {
        access: body["access_token"]
            .as_str()
            .expect("access token")
            .to_string(),
        refresh: body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_string(),
        body,
    }
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(actual, status, "unexpected answer: {body}");
    body
}

/// Asserts the contract's error shape and code, and returns the body: exactly `detail`, `code`,
/// `status_code` and `request_id` (the header's), plus an `errors` list on 422 and only there.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    expect_error_in(response, status, &[code]).await
}

/// As [`expect_error`], where the contract allows one of several codes.
pub async fn expect_error_in(response: Response, status: StatusCode, codes: &[&str]) -> Value {
    let actual = response.status();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("x-request-id header");
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(actual, status, "unexpected answer: {body}");
    let code = body["code"].as_str().unwrap_or_default();
    assert!(codes.contains(&code), "expected one of {codes:?}: {body}");
    assert_eq!(body["status_code"], status.as_u16());
    assert_eq!(body["request_id"], request_id.as_str());
    assert!(
        body["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{body}"
    );
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected = vec!["code", "detail", "request_id", "status_code"];
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        expected.push("errors");
        expected.sort_unstable();
        assert!(body["errors"].is_array(), "{body}");
    }
    assert_eq!(keys, expected, "unexpected keys in {body}");
    body
}

/// Asserts a 401 with the given code and `WWW-Authenticate` challenge.
pub async fn expect_challenge(response: Response, code: &str, challenge: &str) -> Value {
    assert_eq!(
        www_authenticate(&response).as_deref(),
        Some(challenge),
        "code {code}"
    );
    expect_error(response, StatusCode::UNAUTHORIZED, code).await
}

/// A 401 for a token that was sent and rejected.
pub async fn expect_rejected_token(response: Response, code: &str) -> Value {
    expect_challenge(response, code, "Bearer error=\"invalid_token\"").await
}

pub fn www_authenticate(response: &Response) -> Option<String> {
    response
        .headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The fields named in a 422's `errors`, sorted.
pub fn error_fields(body: &Value) -> Vec<String> {
    let mut fields: Vec<String> = body["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_string())
        .collect();
    fields.sort();
    fields
}

/// The message for `field` in a 422's `errors`.
pub fn error_message(body: &Value, field: &str) -> String {
    body["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .find(|e| e["field"] == field)
        .and_then(|e| e["message"].as_str())
        .unwrap_or_default()
        .to_string()
}

/// Asserts a 422 `validation_failed` that names exactly `fields`; the body.
pub async fn expect_invalid(response: Response, fields: &[&str]) -> Value {
    let body = expect_error(
        response,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    let mut expected: Vec<&str> = fields.to_vec();
    expected.sort_unstable();
    assert_eq!(error_fields(&body), expected, "{body}");
    body
}

pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", uuid::Uuid::new_v4().simple())
}

/// The claims of a JWT, read without checking anything.
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// A JWT over `claims`, signed with `secret`.
pub fn sign_jwt(claims: &Value, secret: &str, algorithm: jsonwebtoken::Algorithm) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(algorithm),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("JWT encodes")
}

/// An RFC 3339 time from a response.
pub fn parse_time(value: &Value) -> OffsetDateTime {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a time string"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text} is not RFC 3339: {e}"))
}

/// The contract's wire form of a time: RFC 3339, UTC, whole seconds.
pub fn wire_time(t: OffsetDateTime) -> String {
    let t = t.replace_nanosecond(0).expect("zero is a valid nanosecond");
    t.format(&Rfc3339).expect("formats")
}

/// Sends `head` and then `body` on a socket of its own, reading the answer while still writing:
/// the server may answer (and close) before the body is through, which an ordinary client
/// reports as a broken pipe instead of the answer.
pub async fn raw_exchange(app: &TestApp, head: String, body: Vec<u8>) -> reqwest::Response {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = app.address.trim_start_matches("http://");
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        // Write errors are expected once the server has answered and closed.
        if writer.write_all(head.as_bytes()).await.is_ok() {
            let _ = writer.write_all(&body).await;
        }
        // Kept until the answer is read: dropped, it would half-close the connection, and hyper
        // (by default) drops a request whose client half-closed before its answer.
        writer
    });
    let mut answer = Vec::new();
    let mut buffer = vec![0_u8; 64 * 1024];
    loop {
        match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buffer[..n]),
        }
        if complete_response(&answer) {
            break;
        }
    }
    writing.abort();
    parse_response(&answer)
}

/// Whether `raw` holds a whole response with a Content-Length body.
fn complete_response(raw: &[u8]) -> bool {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse::<usize>().ok());
    length.is_some_and(|length| raw.len() >= end + 4 + length)
}

fn parse_response(raw: &[u8]) -> reqwest::Response {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .expect("status line");
    let mut response = axum::http::Response::builder().status(status);
    for line in lines {
        let (name, value) = line.split_once(':').expect("header line");
        response = response.header(name.trim(), value.trim());
    }
    reqwest::Response::from(response.body(raw[end + 4..].to_vec()).expect("response"))
}
