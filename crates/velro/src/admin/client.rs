//! The HTTP side of `velro admin`: one request to `/api/v1/admin/…` with the service key, and
//! the one place where transport errors and non-2xx answers become a [`Failure`].

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};
use reqwest::{Method, StatusCode};
use serde_json::Value;
use url::Url;
use velro_core::Secret;

use super::Failure;

const PREFIX: &str = "/api/v1/admin";

pub(super) struct Client {
    http: reqwest::Client,
    base: Url,
    timeout: Duration,
}

/// A 2xx answer: the body as received, and parsed.
pub(super) struct Answer {
    pub raw: String,
    pub value: Value,
}

/// Why a request gave no 2xx answer. A command matches on [`Error::Refused`] where a status
/// means something particular to it (a 404 is "no such user"); `?` turns the rest into the
/// generic [`Failure`].
pub(super) enum Error {
    Refused(Refusal),
    Failed(Failure),
}

/// A non-2xx answer in the contract's error shape.
pub(super) struct Refusal {
    pub status: StatusCode,
    pub code: String,
    pub detail: String,
    pub request_id: String,
    /// `field: message` of a 422.
    pub errors: Vec<String>,
    /// The base URL and the path asked for, for messages.
    base: String,
    path: String,
}

impl From<Error> for Failure {
    fn from(error: Error) -> Self {
        match error {
            Error::Failed(failure) => failure,
            Error::Refused(refusal) => refusal.into(),
        }
    }
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        let status = refusal.status.as_u16();
        if matches!(status, 401 | 403) {
            let hint = if status == 401 {
                "check VELRO_SERVICE_KEY against the instance's own (an instance without one refuses every key)"
            } else {
                "a user's access token is not the service key"
            };
            return Failure::Auth(format!(
                "the instance at {} refused the service key ({status} {}): {hint}",
                refusal.base, refusal.code
            ));
        }
        let mut message = format!("{status} {}: {}", refusal.code, refusal.detail);
        // Where the route itself is missing, the likely mistake is the base URL.
        if refusal.status == StatusCode::NOT_FOUND {
            message.push_str(&format!(
                " (no {PREFIX}{} at {}: is --url right?)",
                refusal.path, refusal.base
            ));
        }
        if !refusal.errors.is_empty() {
            return Failure::Invalid {
                summary: message,
                fields: refusal.errors,
            };
        }
        if refusal.status.is_server_error() && !refusal.request_id.is_empty() {
            message.push_str(&format!(" [request id {}]", refusal.request_id));
        }
        Failure::Refused(message)
    }
}

impl Client {
    pub fn new(base: Url, key: &Secret<String>, timeout: Duration) -> Result<Self, Failure> {
        let mut authorization =
            HeaderValue::try_from(format!("Bearer {}", key.expose())).map_err(|_| {
                Failure::Local(
                    "the service key holds characters that cannot go in an HTTP header".into(),
                )
            })?;
        // Kept out of reqwest's and hyper's Debug output.
        authorization.set_sensitive(true);
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, authorization);
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .timeout(timeout)
            // The key must go to the instance named and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("velro-admin/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| Failure::Local(format!("could not build the HTTP client: {error}")))?;
        Ok(Self {
            http,
            base,
            timeout,
        })
    }

    /// The base as the operator gave it, for messages.
    pub fn base(&self) -> &str {
        self.base.as_str().trim_end_matches('/')
    }

    /// `path` below `/api/v1/admin`, e.g. `/users`.
    pub async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Answer, Error> {
        self.send(Method::GET, path, query, None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer, Error> {
        self.send(Method::POST, path, &[], Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Result<Answer, Error> {
        self.send(Method::PATCH, path, &[], Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<Answer, Error> {
        self.send(Method::DELETE, path, &[], None).await
    }

    pub async fn put(&self, path: &str, body: &Value) -> Result<Answer, Error> {
        self.send(Method::PUT, path, &[], Some(body)).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Answer, Error> {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}{PREFIX}{path}",
            self.base.path().trim_end_matches('/')
        ));
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|error| self.transport(&error))?;
        let status = response.status();
        let raw = response
            .text()
            .await
            .map_err(|error| self.transport(&error))?;
        let value = serde_json::from_str::<Value>(&raw).ok();
        if status.is_success() {
            return value
                .map(|value| Answer { raw, value })
                .ok_or_else(|| self.not_velro(status));
        }
        let Some(body) = value.filter(|value| value.get("code").is_some()) else {
            return Err(self.not_velro(status));
        };
        let text = |key: &str| {
            body.get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let errors = body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .map(|error| {
                        let field = error.get("field").and_then(Value::as_str).unwrap_or("?");
                        let message = error.get("message").and_then(Value::as_str).unwrap_or("");
                        format!("{field}: {message}")
                    })
                    .collect()
            })
            .unwrap_or_default();
        Err(Error::Refused(Refusal {
            status,
            code: text("code"),
            detail: text("detail"),
            request_id: text("request_id"),
            errors,
            base: self.base().to_string(),
            path: path.to_string(),
        }))
    }

    /// An answer that is not the admin API's JSON: something else listens at the URL.
    fn not_velro(&self, status: StatusCode) -> Error {
        Error::Failed(Failure::Refused(format!(
            "the answer from {} ({status}) is not the Velro admin API's JSON: is the URL right?",
            self.base()
        )))
    }

    /// No answer at all.
    fn transport(&self, error: &reqwest::Error) -> Error {
        Error::Failed(Failure::Unreachable(format!(
            "cannot reach the Velro instance at {}: {}",
            self.base(),
            cause(error, self.timeout)
        )))
    }
}

/// The innermost cause, which names what happened (connection refused, a name that does not
/// resolve), without the layers' wrapping, and never the request's headers.
fn cause(error: &reqwest::Error, timeout: Duration) -> String {
    if error.is_timeout() {
        return format!("no answer within {} s", timeout.as_secs());
    }
    let mut innermost: &dyn std::error::Error = error;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    if let Some(io) = innermost.downcast_ref::<std::io::Error>() {
        match io.kind() {
            std::io::ErrorKind::ConnectionRefused => return "connection refused".into(),
            std::io::ErrorKind::ConnectionReset => return "connection reset".into(),
            _ => {}
        }
    }
    innermost.to_string()
}
