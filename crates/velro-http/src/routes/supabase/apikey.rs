//! The `apikey` check Supabase's gateway (Kong's key-auth in front of GoTrue) makes, for an
//! instance that clients reach without that gateway: every request under `/auth/v1` must carry
//! one of the project's API keys (the anon or service_role JWT) in the `apikey` header or query
//! parameter, except the routes Kong leaves open and CORS preflights. Off by default: behind a
//! gateway the gateway checks, and GoTrue itself never reads `apikey`.

use crate::wire::Json;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::error::BodyIsFinal;
use crate::AppState;

/// Whether `/auth/v1` requires an API key (`VELRO_SUPABASE_API_KEYS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiKeys {
    /// Nothing is checked (behind Supabase's gateway, or for clients that send no key).
    #[default]
    Off,
    /// Kong's rule: a missing or unknown key is 401 before the request reaches the handler.
    Required,
}

/// Kong's open routes (`auth-v1-open*` in Supabase's `kong.yml`): links opened from mails and
/// browsers, and the public keys.
const OPEN_PATHS: [&str; 4] = [
    "/verify",
    "/callback",
    "/authorize",
    "/.well-known/jwks.json",
];

pub(crate) async fn require(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if state.settings.supabase_api_keys == ApiKeys::Off
        || request.method() == Method::OPTIONS
        || is_open(request.uri().path())
    {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get("apikey")
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
        .or_else(|| {
            url::form_urlencoded::parse(request.uri().query().unwrap_or_default().as_bytes())
                .find(|(name, _)| name == "apikey")
                .map(|(_, value)| value.into_owned())
        })
        .filter(|key| !key.is_empty());
    let Some(key) = presented else {
        return refusal("No API key found in request");
    };
    if state.auth.check_api_key(&key).is_err() {
        return refusal("Invalid authentication credentials");
    }
    next.run(request).await
}

/// The path as Kong matches it, with `/auth/v1` (or nothing, at the root) before it.
fn is_open(path: &str) -> bool {
    let path = path.strip_prefix("/auth/v1").unwrap_or(path);
    OPEN_PATHS.iter().any(|open| {
        path.strip_prefix(open)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
    })
}

/// Kong's own 401 body, not GoTrue's error shape: the gateway answers, not the auth server.
fn refusal(message: &'static str) -> Response {
    let mut response = (
        StatusCode::UNAUTHORIZED,
        Json(json!({ "message": message })),
    )
        .into_response();
    response.extensions_mut().insert(BodyIsFinal);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kongs_open_routes_need_no_key_and_the_others_do() {
        for open in [
            "/auth/v1/verify",
            "/verify",
            "/auth/v1/.well-known/jwks.json",
            "/auth/v1/callback",
            "/auth/v1/authorize",
        ] {
            assert!(is_open(open), "{open}");
        }
        for closed in [
            "/auth/v1/token",
            "/auth/v1/verifyx",
            "/auth/v1/signup",
            "/auth/v1/admin/users",
            "/auth/v1/health",
            "/token",
        ] {
            assert!(!is_open(closed), "{closed}");
        }
    }
}
