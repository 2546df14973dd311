//! The layer every request passes through: request id, the one deadline, the contract's error
//! body (rendered by `error::render`), the security headers, and the one log line.
//!
//! It is one `tower` service rather than a stack of `middleware::from_fn` layers: each of those
//! boxes its future and, applied with `Router::layer`, wraps every route once more (a boxed
//! clone of the route per layer per request), which profiling showed as a large share of a
//! cached `GET /me` (see BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::BoxError;
use tower::{Layer, Service};
use tracing::Instrument;
use velro_core::domain::UserId;

use crate::error::{ApiError, BEARER_CHALLENGE};
use crate::monitor::RequestSeen;
use crate::AppState;

const REQUEST_ID: &str = "x-request-id";

/// Filled in by the authentication extractors, read back for the log line.
#[derive(Clone, Default)]
pub(crate) struct UserSlot(Arc<OnceLock<UserId>>);

impl UserSlot {
    pub(crate) fn set(&self, user_id: UserId) {
        let _ = self.0.set(user_id);
    }
}

/// 1 to 128 visible ASCII characters, or a fresh one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(REQUEST_ID)
        .and_then(|value| value.to_str().ok())
        .filter(|id| (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(fresh_request_id, str::to_string)
}

/// A random (v4) UUID from the thread's generator: `Uuid::new_v4` asks the kernel for every
/// one, a system call per request for an id that needs to be unique, not secret.
fn fresh_request_id() -> String {
    uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .to_string()
}

/// Wraps every route in [`Observe`].
#[derive(Clone)]
pub(crate) struct ObserveLayer {
    state: AppState,
}

impl ObserveLayer {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state }
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Observe<S> {
        Observe {
            inner,
            state: self.state.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct Observe<S> {
    inner: S,
    state: AppState,
}

impl<S, B> Service<Request> for Observe<S>
where
    S: Service<Request, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: HttpBody<Data = axum::body::Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request) -> Self::Future {
        let started = Instant::now();
        let request_id = request_id(request.headers());
        let user = UserSlot::default();
        request.extensions_mut().insert(user.clone());
        let method = request.method().clone();
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
        // The service that was made ready is the one that serves; a fresh clone waits its turn.
        let ready = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, ready);
        let state = self.state.clone();
        Box::pin(async move {
            let span = tracing::info_span!("request", %request_id);
            let deadline = state.settings.request_timeout;
            let handled = tokio::time::timeout(deadline, inner.call(request))
                .instrument(span.clone())
                .await;
            let timed_out = handled.is_err();
            let response = match handled {
                Ok(Ok(response)) => response.map(Body::new),
                Ok(Err(never)) => match never {},
                Err(_) => ApiError::Timeout.into_response(),
            };
            let mut response = crate::error::render(response, &request_id);
            let headers = response.headers_mut();
            if let Ok(value) = HeaderValue::from_str(&request_id) {
                headers.insert(REQUEST_ID, value);
            }
            crate::security::add_default_headers(headers);
            let finished = Finished {
                method: method.as_str(),
                route: &route,
                status: response.status(),
                elapsed_secs: started.elapsed().as_secs_f64(),
                request_id: &request_id,
                timed_out,
                user: &user,
            };
            span.in_scope(|| finished.record(&state));
            Ok(response)
        })
    }
}

/// A request as counted once its answer is ready.
struct Finished<'a> {
    method: &'a str,
    route: &'a str,
    status: StatusCode,
    elapsed_secs: f64,
    request_id: &'a str,
    timed_out: bool,
    user: &'a UserSlot,
}

impl Finished<'_> {
    /// The metrics, the status page's and the dashboard's tallies, and the access log line.
    fn record(&self, state: &AppState) {
        let status = self.status.as_u16();
        let duration_ms = self.elapsed_secs * 1000.0;
        if let Some(surface) = crate::routes::status::surface(self.route) {
            state
                .status
                .record_request(surface, self.status.is_server_error());
        }
        let labels = [
            ("method", self.method.to_string()),
            ("route", self.route.to_string()),
            ("status", status.to_string()),
        ];
        metrics::counter!("velro_http_requests_total", &labels).increment(1);
        metrics::histogram!("velro_http_request_duration_seconds", &labels)
            .record(self.elapsed_secs);
        state.monitor.record(
            RequestSeen {
                method: self.method,
                route: self.route,
                status,
                duration_ms,
                request_id: self.request_id,
            },
            self.timed_out,
        );
        let user_id = self.user.0.get();
        tracing::info!(
            target: "velro::access",
            method = self.method,
            route = self.route,
            status,
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            user_id = %user_id.map_or_else(|| "-".to_string(), ToString::to_string),
            "request"
        );
    }
}

/// On endpoints that take a Bearer token, every 401 names the scheme (a `MapResponseLayer`
/// around those routes).
pub(crate) fn bearer_challenge(mut response: Response) -> Response {
    if response.status() == StatusCode::UNAUTHORIZED
        && !response.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(BEARER_CHALLENGE),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    #[test]
    fn sane_request_ids_are_kept_and_others_replaced() {
        let mut headers = HeaderMap::new();
        headers.insert(REQUEST_ID, HeaderValue::from_static("abc-123_XYZ"));
        assert_eq!(request_id(&headers), "abc-123_XYZ");
        for bad in ["", "has space", &"x".repeat(129)] {
            headers.insert(
                REQUEST_ID,
                HeaderValue::from_str(bad).expect("valid header"),
            );
            let id = request_id(&headers);
            assert_ne!(id, bad);
            assert!(Uuid::parse_str(&id).is_ok());
        }
    }
}
