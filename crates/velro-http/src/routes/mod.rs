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

use axum::Router;
use tower::ServiceBuilder;
use tower_http::validate_request::ValidateRequestHeaderLayer;

use crate::middleware::ObserveLayer;
use crate::{ApiError, AppState};

/// /auth/v1's OpenAPI document (served at `GET /auth/v1/openapi.json`).
pub use supabase::openapi::document as supabase_openapi_document;
pub use supabase::ApiKeys as SupabaseApiKeys;

/// The whole application, as `velro serve` runs it and the tests drive it.
pub fn router(state: AppState) -> Router {
    let max_body = state.settings.max_body_bytes;
    let cors = crate::security::cors(&state.settings);
    let router = Router::new()
        .merge(auth::router())
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
    // One stack around every route, outermost first: the request's id, deadline, log line and
    // security headers; CORS (which answers preflights itself, inside those); the bounds on the
    // headers and on the declared body, before anything reads it (a 10 MB body costs nothing).
    // A body without a length is bounded while it is read (`extract::read_body`).
    let layers = ServiceBuilder::new()
        .layer(ObserveLayer::new(state.clone()))
        .option_layer(cors)
        .layer(ValidateRequestHeaderLayer::custom(
            crate::security::within_bounds(state.settings.max_header_bytes, max_body),
        ));
    router
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(layers)
        .with_state(state)
}
