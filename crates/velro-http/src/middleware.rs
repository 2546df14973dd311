//! The layer every request passes through: request id, the one deadline, the contract's error
//! body, and the one log line.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;
use velro_core::domain::UserId;

use crate::error::{describe_status, ApiError, BodyIsFinal, ErrorBody, RETRY_AFTER_SECS};
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
    let response =
        match tokio::time::timeout(deadline, next.run(request).instrument(span.clone())).await {
            Ok(response) => response,
            Err(_) => ApiError::Timeout.into_response(),
        };
    let mut response = render_error_body(response, &request_id);
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
    metrics::counter!("velro_http_requests_total", &labels).increment(1);
    metrics::histogram!("velro_http_request_duration_seconds", &labels).record(elapsed);
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

/// Gives every non-2xx response the contract's body, whether it came from a handler (with an
/// [`ErrorBody`]) or from the framework (by status alone), and `Retry-After` on 429 and 503.
fn render_error_body(response: Response, request_id: &str) -> Response {
    let status = response.status();
    if status.is_success() || status.is_informational() || status.is_redirection() {
        return response;
    }
    if response.extensions().get::<BodyIsFinal>().is_some() {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let rendered = parts.extensions.remove::<ErrorBody>().unwrap_or_else(|| {
        let (code, detail) = describe_status(status);
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "request failed outside a handler");
        }
        ErrorBody {
            code,
            detail,
            errors: (status == StatusCode::UNPROCESSABLE_ENTITY).then(Vec::new),
        }
    });
    let body = WireError {
        detail: rendered.detail,
        code: rendered.code,
        status_code: status.as_u16(),
        request_id,
        errors: rendered.errors.map(|errors| {
            errors
                .into_iter()
                .map(|e| WireFieldError {
                    field: e.field,
                    message: e.message,
                })
                .collect()
        }),
    };
    let body = serde_json::to_string(&body).unwrap_or_default();
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) && !parts.headers.contains_key(header::RETRY_AFTER)
    {
        parts
            .headers
            .insert(header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS));
    }
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// The contract's error body, keys in the contract's order.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorResponse)]
pub(crate) struct WireError<'a> {
    /// For humans.
    detail: &'static str,
    /// The stable snake_case machine code that clients branch on.
    code: &'static str,
    /// The HTTP status, repeated.
    status_code: u16,
    /// The response's `x-request-id`.
    request_id: &'a str,
    /// Only on 422 `validation_failed`: one entry per bad or missing field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    errors: Option<Vec<WireFieldError>>,
}

/// One bad or missing field of a 422.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = FieldError)]
pub(crate) struct WireFieldError {
    field: String,
    message: String,
}

/// On endpoints that take a Bearer token, every 401 names the scheme.
pub(crate) async fn bearer_challenge(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED
        && !response.headers().contains_key(header::WWW_AUTHENTICATE)
    {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
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
