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
        .route("/metrics", get(metrics))
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    responses(
        (status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
    ),
)]
async fn metrics(State(state): State<AppState>) -> Response {
    let body = (state.metrics)();
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

/// Liveness: no I/O at all.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses(
        (status = 200, description = "Alive (no I/O)", body = super::openapi::HealthBody),
    ),
)]
async fn health(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(json!({"status": "ok", "version": state.settings.version}))
}

/// Readiness: the database within a bound, and the cache's state (known without I/O). A failing
/// cache degrades the answer but keeps it 200: requests are served from the database.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "service",
    responses(
        (status = 200, description = "`ok`, or `degraded` (served from the database)", body = super::openapi::ReadyBody),
        (status = 503, description = "`unavailable`: the database is unreachable (this body, not the error body)", body = super::openapi::ReadyBody),
    ),
)]
async fn ready(State(state): State<AppState>) -> Response {
    let started = Instant::now();
    let database =
        tokio::time::timeout(state.settings.readiness_timeout, state.auth.check_store()).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let (status, database) = match database {
        Ok(Ok(())) => ("ok", json!({"status": "ok", "latency_ms": latency_ms})),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness: database check failed");
            (
                "unavailable",
                json!({"status": "unavailable", "latency_ms": latency_ms}),
            )
        }
        Err(_) => {
            tracing::warn!("readiness: database check timed out");
            (
                "unavailable",
                json!({"status": "timeout", "latency_ms": latency_ms}),
            )
        }
    };
    let cache_health = state.cache.health();
    let mut cache = json!({"status": cache_health.status()});
    if let velro_core::cache::CacheHealth::Degraded(reason) = &cache_health {
        cache["reason"] = json!(reason);
    }
    let layers = match cache_health {
        velro_core::cache::CacheHealth::Disabled => "none",
        velro_core::cache::CacheHealth::LocalOnly => "l1",
        _ => "l1+l2",
    };
    cache["layers"] = json!(layers);
    let status = if status == "ok" && cache_health.status() == "degraded" {
        "degraded"
    } else {
        status
    };
    let code = if status == "unavailable" {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = json!({
        "status": status,
        "checks": {"database": database, "cache": cache},
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
