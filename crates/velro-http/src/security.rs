//! HTTP hygiene for a JSON API: the security headers every response carries, the bound on
//! request headers, and CORS for the configured origins. Authentication and rate limits are not
//! here.

use std::fmt::{self, Write as _};
use std::time::Duration;

use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::{ApiError, HttpSettings};

/// Set on every response that does not set its own value, so that a page served later (an API
/// reference at /docs) can send its own `Content-Security-Policy` and caching.
const DEFAULT_HEADERS: [(HeaderName, HeaderValue); 5] = [
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
    // Tokens and profiles must not sit in shared or browser caches.
    (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    (
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    ),
    (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
    // JSON needs no scripts, styles, frames or anything else a browser might load from it.
    (
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"),
    ),
];

/// Sets [`DEFAULT_HEADERS`] where the response did not set its own. The values are checked once,
/// at compile time, and the map grows once for all of them (and the request id).
pub(crate) fn add_default_headers(headers: &mut HeaderMap) {
    headers.reserve(DEFAULT_HEADERS.len() + 1);
    for (name, value) in DEFAULT_HEADERS {
        headers.entry(name).or_insert(value);
    }
}

/// Counts what is written to it: the request target's length without building it.
struct Length(usize);

impl fmt::Write for Length {
    fn write_str(&mut self, part: &str) -> fmt::Result {
        self.0 += part.len();
        Ok(())
    }
}

/// The request line's target and every header line, as a server reads them.
fn header_bytes<B>(request: &Request<B>) -> usize {
    let mut target = Length(0);
    let _ = write!(target, "{}", request.uri());
    request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum::<usize>()
        + target.0
}

/// The check of `ValidateRequestHeaderLayer`, before anything reads the body: 431 for a request
/// whose headers (and target) exceed `max_header_bytes`, then 413 for one that declares a body
/// over `max_body_bytes` in its `Content-Length`, read or not (a GET declaring 10 MB too). A body
/// without a length is bounded while it is read (`extract::read_body`, through which every
/// handler reads its body). Checked here rather than by `tower_http`'s `RequestBodyLimitLayer`, which also
/// boxes every request's and every answer's body, token checks included.
// The error is the response itself, as the layer's interface wants it.
#[allow(clippy::result_large_err)]
pub(crate) fn within_bounds<B>(
    max_header_bytes: usize,
    max_body_bytes: usize,
) -> impl FnMut(&mut Request<B>) -> Result<(), Response> + Clone + Send + Sync + 'static {
    move |request: &mut Request<B>| {
        if header_bytes(request) > max_header_bytes {
            return Err(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE.into_response());
        }
        if declared_body_bytes(request).is_some_and(|length| length > max_body_bytes as u64) {
            return Err(ApiError::PayloadTooLarge.into_response());
        }
        Ok(())
    }
}

/// The body's length as `Content-Length` declares it (hyper has refused a malformed or
/// conflicting one before the request gets here).
fn declared_body_bytes<B>(request: &Request<B>) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// CORS for the configured origins; `None` (no CORS headers at all) when there are none. `*`
/// allows any origin and is refused with credentials (the configuration checks it too).
pub(crate) fn cors(settings: &HttpSettings) -> Option<CorsLayer> {
    let origins = &settings.cors_allowed_origins;
    if origins.is_empty() {
        return None;
    }
    let any = origins.iter().any(|origin| origin == "*");
    let allow_origin = if any {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin.trim_end_matches('/')).ok()),
        )
    };
    let layer = CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static("x-request-id"),
            // What the Supabase clients send from browsers (/auth/v1).
            HeaderName::from_static("apikey"),
            HeaderName::from_static("x-client-info"),
            HeaderName::from_static("x-supabase-api-version"),
            HeaderName::from_static("x-jwt-aud"),
        ])
        .expose_headers([
            HeaderName::from_static("x-request-id"),
            header::RETRY_AFTER,
            header::WWW_AUTHENTICATE,
            // Unreadable in a browser unless exposed, and then supabase-js loses `error.code`.
            HeaderName::from_static("x-supabase-api-version"),
            HeaderName::from_static("x-sb-error-code"),
            // The admin listing's pagination (GoTrue's `GET /admin/users`).
            HeaderName::from_static("x-total-count"),
            header::LINK,
        ])
        .max_age(Duration::from_secs(600));
    Some(if settings.cors_allow_credentials && !any {
        layer.allow_credentials(true)
    } else {
        layer
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    #[test]
    fn header_bytes_count_names_values_and_the_target() {
        let request = Request::builder()
            .uri("/api/v1/auth/me")
            .header("x-a", "12345")
            .body(Body::empty())
            .expect("request");
        assert_eq!(header_bytes(&request), "/api/v1/auth/me".len() + 3 + 5 + 4);
    }

    #[test]
    fn the_declared_body_is_bounded_after_the_headers() {
        let mut check = within_bounds(64, 100);
        let request = |length: Option<&str>, padding: usize| {
            let mut builder = Request::builder()
                .uri("/api/v1/auth/me")
                .header("x-pad", "p".repeat(padding));
            if let Some(length) = length {
                builder = builder.header(header::CONTENT_LENGTH, length);
            }
            builder.body(Body::empty()).expect("request")
        };
        let status = |result: Result<(), Response>| result.err().map(|r| r.status());
        assert_eq!(status(check(&mut request(None, 0))), None);
        assert_eq!(status(check(&mut request(Some("100"), 0))), None);
        assert_eq!(
            status(check(&mut request(Some("101"), 0))),
            Some(StatusCode::PAYLOAD_TOO_LARGE)
        );
        // Headers over their bound are 431 whatever the body declares, as before anything else.
        assert_eq!(
            status(check(&mut request(Some("101"), 64))),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
    }

    #[test]
    fn no_origins_means_no_cors_layer() {
        assert!(cors(&HttpSettings::default()).is_none());
        let settings = HttpSettings {
            cors_allowed_origins: vec!["https://app.example.com".into()],
            cors_allow_credentials: true,
            ..HttpSettings::default()
        };
        assert!(cors(&settings).is_some());
    }
}
