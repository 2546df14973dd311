//! The public status page: GET /status (HTML), GET /status.json (the same for machines) and
//! GET /status/feed.atom (incident updates). The handlers read one `StatusReport` from the
//! status service, which answers from memory when the database does not; the markup itself is
//! in `status_page`. Also which API surface a route belongs to, for the traffic the page judges.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Router};
use serde::Serialize;
use utoipa::ToSchema;
use velro_core::domain::ComponentState;
use velro_core::service::{StatusReport, Surface};

use crate::wire::{rfc3339, ComponentName, IncidentResponse};
use crate::{status_page, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/status", get(status_html))
        .route("/status.json", get(status_json))
        .route("/status/feed.atom", get(status_feed))
}

/// Short enough that a fix shows within seconds, long enough that a crowd reloading the page
/// during an outage is served by caches.
const CACHE_CONTROL: &str = "public, max-age=5";

/// The page has inline styles and nothing else: no scripts, no other hosts, and no image but
/// its empty inline icon (which keeps browsers from asking for a /favicon.ico that is not there,
/// a 404 in every visitor's console).
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Which surface's health a request tells about; `None` for routes the page does not judge.
pub(crate) fn surface(route: &str) -> Option<Surface> {
    match route {
        "/api/v1/auth/register"
        | "/api/v1/auth/login"
        | "/api/v1/auth/refresh"
        | "/api/v1/auth/password-reset"
        | "/api/v1/auth/password-reset-confirm"
        | "/api/v1/auth/change-password" => Some(Surface::AuthApi),
        "/api/v1/auth/me"
        | "/api/v1/auth/profile"
        | "/api/v1/auth/logout"
        | "/api/v1/auth/sessions"
        | "/api/v1/auth/sessions/{id}"
        | "/.well-known/jwks.json" => Some(Surface::TokenChecks),
        _ => None,
    }
}

fn cacheable(content_type: &'static str, body: String) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        body,
    )
        .into_response()
}

async fn status_html(State(state): State<AppState>) -> Response {
    let report = state.status.report().await;
    let mut response = cacheable(
        "text/html; charset=utf-8",
        status_page::html(&report, status_page::Links::SERVED),
    );
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_CSP),
    );
    response
}

#[utoipa::path(
    get,
    path = "/status.json",
    tag = "service",
    responses(
        (status = 200, description = "The status page's content: component states, 90-day uptime, open and recently resolved incidents. Answered from memory when the database is down.", body = StatusResponse),
    ),
)]
async fn status_json(State(state): State<AppState>) -> Response {
    let report = state.status.report().await;
    cacheable("application/json", json(&report))
}

#[utoipa::path(
    get,
    path = "/status/feed.atom",
    tag = "service",
    responses(
        (status = 200, description = "An Atom feed of incident updates, newest first", body = String, content_type = "application/atom+xml"),
    ),
)]
async fn status_feed(State(state): State<AppState>) -> Response {
    let report = state.status.report().await;
    cacheable(
        "application/atom+xml; charset=utf-8",
        status_page::atom(&report, status_page::Links::SERVED),
    )
}

/// A component state.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = ComponentState)]
enum StateName {
    Operational,
    Degraded,
    PartialOutage,
    MajorOutage,
}

impl From<ComponentState> for StateName {
    fn from(state: ComponentState) -> Self {
        match state {
            ComponentState::Operational => Self::Operational,
            ComponentState::Degraded => Self::Degraded,
            ComponentState::PartialOutage => Self::PartialOutage,
            ComponentState::MajorOutage => Self::MajorOutage,
        }
    }
}

/// GET /status.json's answer.
#[derive(Serialize, ToSchema)]
#[schema(as = StatusBody)]
struct StatusResponse {
    /// The headline: the worst of the component states and of the open incidents' impacts
    /// (minor: degraded, major: partial outage, critical: major outage).
    status: StateName,
    #[schema(format = DateTime)]
    generated_at: String,
    /// True when the history or the incidents could not be read just now (the database is
    /// down) and are the last ones this instance held.
    from_memory: bool,
    components: Vec<ComponentResponse>,
    /// Open incidents first, newest first, then those resolved in the last 14 days.
    incidents: Vec<IncidentResponse>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = ComponentStatus)]
struct ComponentResponse {
    #[schema(value_type = ComponentName)]
    id: &'static str,
    /// The name a person reads.
    name: &'static str,
    state: StateName,
    /// Why, in words (never internal details).
    reason: String,
    /// Share of the recorded minutes of the last 90 days without an outage; null without data.
    #[schema(minimum = 0, maximum = 1)]
    uptime_90d: Option<f64>,
    /// One entry per UTC day, oldest first, today last.
    history: Vec<DayResponse>,
}

#[derive(Serialize, ToSchema)]
#[schema(as = UptimeDay)]
struct DayResponse {
    #[schema(format = Date)]
    date: String,
    /// The worst state recorded that day; null when nothing was recorded.
    state: Option<StateName>,
    #[schema(minimum = 0, maximum = 1)]
    uptime: Option<f64>,
}

/// Four decimals are enough for a percentage with two, and keep the body small.
fn rounded(share: f64) -> f64 {
    (share * 10_000.0).round() / 10_000.0
}

/// The JSON body, for the handler and for `velro status export`.
pub fn json(report: &StatusReport) -> String {
    let body = StatusResponse {
        status: report.overall().into(),
        generated_at: rfc3339(report.generated_at),
        from_memory: report.from_memory,
        components: report
            .components
            .iter()
            .map(|c| {
                let history = report.history.iter().find(|h| h.component == c.component);
                ComponentResponse {
                    id: c.component.as_str(),
                    name: c.component.label(),
                    state: c.state.into(),
                    reason: c.reason.clone(),
                    uptime_90d: history.and_then(|h| h.uptime).map(rounded),
                    history: history
                        .map(|h| {
                            h.days
                                .iter()
                                .map(|d| DayResponse {
                                    date: d.date.to_string(),
                                    state: d.worst.map(Into::into),
                                    uptime: d.uptime.map(rounded),
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                }
            })
            .collect(),
        incidents: report
            .incidents
            .iter()
            .cloned()
            .map(IncidentResponse::from)
            .collect(),
    };
    // Plain strings and numbers: serialising cannot fail.
    serde_json::to_string(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_auth_route_belongs_to_one_judged_surface() {
        assert_eq!(surface("/api/v1/auth/login"), Some(Surface::AuthApi));
        assert_eq!(surface("/api/v1/auth/me"), Some(Surface::TokenChecks));
        assert_eq!(surface("/health"), None);
        assert_eq!(surface("/api/v1/admin/users"), None);
    }
}
