//! The layer every request passes through: request id, the one deadline, the contract's error
//! body (rendered by `error::render`), the Bearer challenge on the 401s of endpoints that take a
//! token, the security headers, and handing the answer to `tally` (metrics, dashboard, status
//! page, the one log line).
//!
//! It is one `tower` service rather than a stack of `middleware::from_fn` layers: each of those
//! boxes its future and, applied with `Router::layer`, wraps every route once more (a boxed
//! clone of the route per layer per request), which profiling showed as a large share of a
//! cached `GET /me` (see BENCHMARKS.md).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, HttpBody};
use axum::extract::{MatchedPath, Request};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::BoxError;
use tower::{Layer, Service};
use tracing::Instrument;

use crate::error::{ApiError, BEARER_CHALLENGE};
use crate::extract::CallerSlot;
use crate::tally::{Finished, Tallies};
use crate::AppState;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// 1 to 128 visible ASCII characters, or a fresh one. Kept as the header value it is sent back
/// in, so the client's id is not copied and a fresh one is encoded once.
fn request_id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&REQUEST_ID)
        .filter(|id| {
            (1..=128).contains(&id.len()) && id.as_bytes().iter().all(u8::is_ascii_graphic)
        })
        .cloned()
        .unwrap_or_else(fresh_request_id)
}

/// A random (v4) UUID from the thread's generator: `Uuid::new_v4` asks the kernel for every
/// one, a system call per request for an id that needs to be unique, not secret.
fn fresh_request_id() -> HeaderValue {
    let mut buffer = uuid::Uuid::encode_buffer();
    let id = uuid::Builder::from_random_bytes(rand::random())
        .into_uuid()
        .hyphenated()
        .encode_lower(&mut buffer);
    // A hyphenated UUID is always a valid header value.
    HeaderValue::from_str(id).unwrap_or(HeaderValue::from_static("unknown"))
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
            tallies: Arc::default(),
        }
    }
}

/// `Router::layer` wraps each route (and each fallback) in its own `Observe`, so its tallies
/// hold one route's few kinds of request.
#[derive(Clone)]
pub(crate) struct Observe<S> {
    inner: S,
    state: AppState,
    tallies: Arc<Tallies>,
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
        let caller = match request.extensions().get::<CallerSlot>() {
            Some(caller) => caller.clone(),
            None => {
                let caller = CallerSlot::default();
                request.extensions_mut().insert(caller.clone());
                caller
            }
        };
        let method = request.method().clone();
        let route = request.extensions().get::<MatchedPath>().cloned();
        let span = tracing::info_span!(
            "request",
            request_id = request_id.to_str().unwrap_or_default()
        );
        // Called here, on the service that was made ready, so that only its future moves into
        // the answer: no clone of the route's stack per request.
        let handling = span.in_scope(|| self.inner.call(request));
        let state = self.state.clone();
        let tallies = Arc::clone(&self.tallies);
        Box::pin(async move {
            let request_id_text = request_id.to_str().unwrap_or_default();
            let deadline = state.settings.request_timeout;
            let handled = tokio::time::timeout(deadline, handling)
                .instrument(span.clone())
                .await;
            let timed_out = handled.is_err();
            let response = match handled {
                Ok(Ok(response)) => response.map(Body::new),
                Ok(Err(never)) => match never {},
                Err(_) => ApiError::Timeout.into_response(),
            };
            let mut response = crate::error::render(response, request_id_text);
            if response.status() == StatusCode::UNAUTHORIZED && caller.takes_bearer() {
                bearer_challenge(response.headers_mut());
            }
            let headers = response.headers_mut();
            crate::security::add_default_headers(headers);
            headers.insert(REQUEST_ID, request_id.clone());
            let status = response.status();
            let finished = Finished {
                tally: &tallies.get(&method, route.as_ref(), status),
                elapsed_secs: started.elapsed().as_secs_f64(),
                request_id: request_id_text,
                timed_out,
                user: &caller,
            };
            span.in_scope(|| finished.record(&state));
            Ok(response)
        })
    }
}

/// A 401 of an endpoint that takes a Bearer token names the scheme, unless the error already
/// gave the fuller `invalid_token` challenge.
fn bearer_challenge(headers: &mut HeaderMap) {
    if !headers.contains_key(header::WWW_AUTHENTICATE) {
        headers.insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static(BEARER_CHALLENGE),
        );
    }
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
            assert!(Uuid::parse_str(id.to_str().expect("ascii")).is_ok());
        }
    }
}
