//! `TestApp`: one server per test, with its own database, data folder and clock.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tempfile::TempDir;
use velro::config::Config;
use velro::startup::Application;
use velro_core::{ManualClock, Secret};

pub const SERVICE_KEY: &str = "test-service-key-0123456789abcdefghijklmnop";
pub const PASSWORD: &str = "correct horse battery staple";

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

impl TestApp {
    pub async fn sqlite() -> Self {
        Self::spawn(None, |_| {}).await
    }

    pub async fn postgres() -> Option<Self> {
        let url = velro_pgtest::fresh_database().await?;
        Some(Self::spawn(Some(url), |_| {}).await)
    }

    /// A test app with some settings changed.
    pub async fn with_config(&self, change: impl FnOnce(&mut Config)) -> Self {
        let database_url = self.config.database_url.as_ref().map(|url| url.expose().clone());
        let database_url = match database_url {
            Some(_) => velro_pgtest::fresh_database().await,
            None => None,
        };
        Self::spawn(database_url, change).await
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
            jwt_secret: Some(Secret::new("test-jwt-secret-0123456789abcdefghijklmnopqrstuv".into())),
            service_key: Some(Secret::new(SERVICE_KEY.into())),
            // Cheap hashing in tests only; production keeps the OWASP defaults.
            argon2_memory_kib: 64,
            argon2_iterations: 1,
            hash_threads: Some(2),
            hash_queue: 256,
            shutdown_grace_secs: 1,
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

    pub async fn request(&self, method: Method, path: &str, token: Option<&str>, body: Option<Value>) -> Response {
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.expect("request sent")
    }

    pub async fn post(&self, path: &str, body: Value) -> Response {
        self.request(Method::POST, path, None, Some(body)).await
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> Response {
        self.request(method, &format!("/api/v1/admin{path}"), Some(SERVICE_KEY), body).await
    }

    pub async fn register_response(&self, email: &str, password: &str) -> Response {
        self.post("/api/v1/auth/register", json!({"email": email, "password": password})).await
    }

    /// Registers and expects success.
    pub async fn register(&self, email: &str) -> Tokens {
        let response = self.register_response(email, PASSWORD).await;
        expect_session(response, StatusCode::CREATED).await
    }

    pub async fn login_response(&self, email: &str, password: &str) -> Response {
        self.post("/api/v1/auth/login", json!({"email": email, "password": password})).await
    }

    pub async fn login(&self, email: &str, password: &str) -> Tokens {
        expect_session(self.login_response(email, password).await, StatusCode::OK).await
    }

    pub async fn refresh_response(&self, refresh_token: &str) -> Response {
        self.post("/api/v1/auth/refresh", json!({"refresh_token": refresh_token})).await
    }

    pub async fn me(&self, access: &str) -> Response {
        self.get("/api/v1/auth/me", access).await
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
fn token_in(body: &str) -> Option<String> {
    body.lines()
        .map(str::trim)
        .find(|line| line.len() == 43 && line.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'))
        .map(str::to_string)
}

pub async fn expect_session(response: Response, status: StatusCode) -> Tokens {
    let actual = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(actual, status, "unexpected answer: {body}");
    Tokens {
        access: body["access_token"].as_str().expect("access token").to_string(),
        refresh: body["refresh_token"].as_str().expect("refresh token").to_string(),
        body,
    }
}

/// Asserts the contract's error shape and code, and returns the body.
pub async fn expect_error(response: Response, status: StatusCode, code: &str) -> Value {
    let actual = response.status();
    let request_id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("x-request-id header");
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(actual, status, "unexpected answer: {body}");
    assert_eq!(body["code"], code, "unexpected answer: {body}");
    assert_eq!(body["status_code"], status.as_u16());
    assert_eq!(body["request_id"], request_id.as_str());
    assert!(body["detail"].is_string());
    let keys: Vec<&str> = body.as_object().expect("object").keys().map(String::as_str).collect();
    for key in &keys {
        assert!(
            ["detail", "code", "status_code", "request_id", "errors"].contains(key),
            "unexpected key {key} in {body}"
        );
    }
    body
}

/// The fields named in a 422's `errors`.
pub fn error_fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .expect("errors list")
        .iter()
        .map(|e| e["field"].as_str().expect("field").to_string())
        .collect()
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

pub fn unique_email(prefix: &str) -> String {
    format!("{prefix}-{}@example.com", uuid::Uuid::new_v4().simple())
}
