//! Liveness and readiness.

use std::time::Instant;

use crate::wire::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use utoipa::ToSchema;
use velro_core::cache::CacheHealth;

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

/// GET /health's answer.
#[derive(Serialize, ToSchema)]
#[schema(as = HealthBody)]
struct HealthResponse {
    #[schema(example = "ok", value_type = String)]
    status: &'static str,
    #[schema(example = "0.1.0", value_type = String)]
    version: &'static str,
}

/// Liveness: no I/O at all.
#[utoipa::path(
    get,
    path = "/health",
    tag = "service",
    responses(
        (status = 200, description = "Alive (no I/O)", body = HealthResponse),
    ),
)]
async fn health(State(state): State<AppState>) -> Json<HealthResponse> {
    Json(HealthResponse {
        status: "ok",
        version: state.settings.version,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ReadyStatus {
    Ok,
    Degraded,
    Unavailable,
}

/// GET /health/ready's answer, on 200 and on 503 alike.
#[derive(Serialize, ToSchema)]
#[schema(as = ReadyBody)]
struct ReadyResponse {
    /// `ok` and `degraded` (served from the database, e.g. Redis down) are 200; `unavailable` is 503.
    status: ReadyStatus,
    checks: ReadyChecks,
}

#[derive(Serialize, ToSchema)]
struct ReadyChecks {
    database: DatabaseCheck,
    cache: CacheCheck,
}

#[derive(Serialize, ToSchema)]
struct DatabaseCheck {
    /// `ok`, `unavailable` or `timeout`.
    #[schema(value_type = String)]
    status: &'static str,
    latency_ms: f64,
}

#[derive(Serialize, ToSchema)]
struct CacheCheck {
    /// `ok`, `degraded` or `disabled`.
    #[schema(value_type = String)]
    status: &'static str,
    /// `none`, `l1` or `l1+l2`.
    #[schema(value_type = String)]
    layers: &'static str,
    /// Why the cache is degraded.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    reason: Option<String>,
}

/// Readiness: the database within a bound, and the cache's state (known without I/O). A failing
/// cache degrades the answer but keeps it 200: requests are served from the database.
#[utoipa::path(
    get,
    path = "/health/ready",
    tag = "service",
    responses(
        (status = 200, description = "`ok`, or `degraded` (served from the database)", body = ReadyResponse),
        (status = 503, description = "`unavailable`: the database is unreachable (this body, not the error body)", body = ReadyResponse),
    ),
)]
async fn ready(State(state): State<AppState>) -> Response {
    let started = Instant::now();
    let database =
        tokio::time::timeout(state.settings.readiness_timeout, state.auth.check_store()).await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 10.0).round() / 10.0;
    let (status, database) = match database {
        Ok(Ok(())) => (ReadyStatus::Ok, "ok"),
        Ok(Err(error)) => {
            tracing::warn!(error = %error, "readiness: database check failed");
            (ReadyStatus::Unavailable, "unavailable")
        }
        Err(_) => {
            tracing::warn!("readiness: database check timed out");
            (ReadyStatus::Unavailable, "timeout")
        }
    };
    let cache_health = state.cache.health();
    let layers = match cache_health {
        CacheHealth::Disabled => "none",
        CacheHealth::LocalOnly => "l1",
        _ => "l1+l2",
    };
    let status = if status == ReadyStatus::Ok && cache_health.status() == "degraded" {
        ReadyStatus::Degraded
    } else {
        status
    };
    let code = if status == ReadyStatus::Unavailable {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let body = ReadyResponse {
        status,
        checks: ReadyChecks {
            database: DatabaseCheck {
                status: database,
                latency_ms,
            },
            cache: CacheCheck {
                status: cache_health.status(),
                layers,
                reason: match cache_health {
                    CacheHealth::Degraded(reason) => Some(reason),
                    _ => None,
                },
            },
        },
    };
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
