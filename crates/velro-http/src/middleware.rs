//! The layer every request passes through: request id, the one deadline, the contract's error
//! body (rendered by `error::render`), and the one log line.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;
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
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_string)
}

pub(crate) async fn observe(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let request_id = request_id(request.headers());
    let user = UserSlot::default();
    request.extensions_mut().insert(user.clone());
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |path| path.as_str().to_string());
    let span = tracing::info_span!("request", %request_id);

    let deadline = state.settings.request_timeout;
    let mut timed_out = false;
    let response =
        match tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => {
                timed_out = true;
                ApiError::Timeout.into_response()
            }
        };
    let mut response = crate::error::render(response, &request_id);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }

    let status = response.status().as_u16();
    let elapsed = started.elapsed().as_secs_f64();
    let duration_ms = elapsed * 1000.0;
    let labels = [
        ("method", method.to_string()),
        ("route", route.clone()),
        ("status", status.to_string()),
    ];
    if let Some(surface) = crate::routes::status::surface(&route) {
        state
            .status
            .record_request(surface, response.status().is_server_error());
    }
    metrics::counter!("velro_http_requests_total", &labels).increment(1);
    metrics::histogram!("velro_http_request_duration_seconds", &labels).record(elapsed);
    state.monitor.record(
        RequestSeen {
            method: method.as_str(),
            route: &route,
            status,
            duration_ms,
            request_id: &request_id,
        },
        timed_out,
    );
    let user_id = user.0.get().map(ToString::to_string);
    span.in_scope(|| {
        tracing::info!(
            target: "velro::access",
            method = %method,
            route = %route,
            status,
            duration_ms = (duration_ms * 1000.0).round() / 1000.0,
            user_id = user_id.as_deref().unwrap_or("-"),
            "request"
        );
    });
    response
}

/// On endpoints that take a Bearer token, every 401 names the scheme.
pub(crate) async fn bearer_challenge(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
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
