//! Liveness and readiness.

use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::BodyIsFinal;
use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
}

/// Liveness: no I/O at all.
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "version": state.settings.version}))
}

/// Readiness: the database within a bound. There is no shared cache yet, so it reports as
/// disabled and never degrades the answer.
async fn ready(State(state): State<AppState>) -> Response {
    let started = Instant::now();
    let database = tokio::time::timeout(state.settings.readiness_timeout, state.auth.check_store()).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let (status, database) = match database {
        Ok(Ok(())) => ("ok", json!({"status": "ok", "latency_ms": latency_ms})),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness: database check failed");
            ("unavailable", json!({"status": "unavailable", "latency_ms": latency_ms}))
        }
        Err(_) => {
            tracing::warn!("readiness: database check timed out");
            ("unavailable", json!({"status": "timeout", "latency_ms": latency_ms}))
        }
    };
    let code = if status == "unavailable" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": status,
        "checks": {"database": database, "cache": {"status": "disabled"}},
    });
    let mut response = (code, Json(body)).into_response();
    response.extensions_mut().insert(BodyIsFinal);
    if code == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from(crate::error::RETRY_AFTER_SECS),
        );
    }
    response
}
