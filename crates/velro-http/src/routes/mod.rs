//! The router: every API surface, the fallbacks, and the layers around them.

mod admin;
mod auth;
mod console;
mod health;
mod incidents;
mod jwks;
pub(crate) mod openapi;
pub(crate) mod status;
mod supabase;

use axum::extract::DefaultBodyLimit;
use axum::{middleware, Router};
use tower_http::limit::RequestBodyLimitLayer;

use crate::{ApiError, AppState};

/// /auth/v1's OpenAPI document (served at `GET /auth/v1/openapi.json`).
pub use supabase::openapi::document as supabase_openapi_document;
pub use supabase::ApiKeys as SupabaseApiKeys;

/// The whole application, as `velro serve` runs it and the tests drive it.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let cors = crate::security::cors(&state.settings);
    let router = Router::new()
        .nest("/api/v1/auth", auth::router())
        .nest("/api/v1/admin", admin::router().merge(incidents::router()))
        .nest("/auth/v1", supabase::router(&state))
        .merge(health::router())
        .merge(status::router())
        .merge(jwks::router())
        .merge(openapi::router())
        .merge(console::router());
    let router = if state.settings.supabase_at_root {
        router.merge(supabase::root_router(&state))
    } else {
        router
    };
    let router = router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(max_body))
        // Refuses by Content-Length before reading, so a 10 MB body costs nothing.
        .layer(RequestBodyLimitLayer::new(max_body))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::security::limit_headers,
        ));
    // CORS answers preflights itself, inside the log line and the security headers.
    let router = match cors {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router
        .layer(middleware::from_fn(crate::security::security_headers))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::middleware::observe,
        ))
        .with_state(state)
}
