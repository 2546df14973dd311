//! `/api/v1/admin/incidents`: operators open, update and list the incidents the status page
//! shows, behind the service key like the rest of the admin API.

use crate::wire::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, patch};
use axum::Router;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;
use velro_core::domain::{Component, Impact, IncidentId, IncidentStatus, PublicText};

use crate::error::ErrorResponse;
use crate::extract::{AdminCaller, Fields, FromFields, PathId, ValidJson};
use crate::wire::{ComponentName, ImpactName, IncidentResponse, IncidentStatusName};
use crate::{ApiError, AppState};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/incidents", get(list_incidents).post(open_incident))
        .route("/incidents/{id}", patch(update_incident))
}

fn title(fields: &mut Fields) -> Option<PublicText> {
    let raw = fields.string("title");
    fields.parse("title", raw, |s| {
        PublicText::parse(s, PublicText::TITLE_MAX, false)
    })
}

fn message(fields: &mut Fields) -> Option<PublicText> {
    let raw = fields.string("message");
    fields.parse("message", raw, |s| {
        PublicText::parse(s, PublicText::MESSAGE_MAX, true)
    })
}

fn status(fields: &mut Fields) -> Option<IncidentStatus> {
    let raw = fields.string("status");
    fields.parse("status", raw, str::parse::<IncidentStatus>)
}

/// A new incident and its first update.
#[derive(ToSchema)]
#[schema(as = OpenIncidentBody)]
struct OpenIncidentRequest {
    #[schema(value_type = String, min_length = 1, max_length = 200)]
    title: PublicText,
    #[schema(value_type = IncidentStatusName)]
    status: IncidentStatus,
    #[schema(value_type = ImpactName)]
    impact: Impact,
    /// The first update's text, shown on the page and in the feed.
    #[schema(value_type = String, min_length = 1, max_length = 5000)]
    message: PublicText,
    #[schema(value_type = Option<Vec<ComponentName>>, nullable = false)]
    components: Vec<Component>,
    /// RFC 3339, in the future.
    #[schema(value_type = Option<String>, format = DateTime, nullable = false)]
    expected_resolution: Option<OffsetDateTime>,
}

impl FromFields for OpenIncidentRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        // Every field is read before any early return, so that every bad field is named.
        let title = title(fields);
        let status = status(fields);
        let impact = fields.string("impact");
        let impact = fields.parse("impact", impact, str::parse::<Impact>);
        let message = message(fields);
        let components = match fields.optional_strings("components") {
            None => Some(Vec::new()),
            Some(names) => names
                .iter()
                .map(|name| name.parse::<Component>())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|why| fields.report("components", why))
                .ok(),
        };
        let expected = fields.optional_string("expected_resolution");
        let expected_resolution = match expected {
            None => Some(None),
            Some(raw) => fields
                .parse("expected_resolution", Some(raw), |s| {
                    OffsetDateTime::parse(s, &Rfc3339).map_err(|_| "must be an RFC 3339 time")
                })
                .map(Some),
        };
        Some(Self {
            title: title?,
            status: status?,
            impact: impact?,
            message: message?,
            components: components?,
            expected_resolution: expected_resolution?,
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/admin/incidents",
    tag = "admin",
    request_body = OpenIncidentRequest,
    responses(
        (status = 201, description = "The incident, with its first update", body = IncidentResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn open_incident(
    State(state): State<AppState>,
    _: AdminCaller,
    ValidJson(request): ValidJson<OpenIncidentRequest>,
) -> Result<(StatusCode, Json<IncidentResponse>), ApiError> {
    let incident = state
        .status
        .open_incident(
            request.title,
            request.status,
            request.impact,
            request.message,
            request.components,
            request.expected_resolution,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(incident.into())))
}

/// One more entry of the timeline; it also sets the incident's status.
#[derive(ToSchema)]
#[schema(as = IncidentUpdateBody)]
struct UpdateIncidentRequest {
    #[schema(value_type = IncidentStatusName)]
    status: IncidentStatus,
    #[schema(value_type = String, min_length = 1, max_length = 5000)]
    message: PublicText,
}

impl FromFields for UpdateIncidentRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        let status = status(fields);
        let message = message(fields);
        Some(Self {
            status: status?,
            message: message?,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/incidents/{id}",
    tag = "admin",
    request_body = UpdateIncidentRequest,
    params(("id" = uuid::Uuid, Path, description = "An incident id")),
    responses(
        (status = 200, description = "The incident with the new update first; `resolved` closes it, any other status reopens it", body = IncidentResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such incident, or the id is not a UUID", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn update_incident(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
    ValidJson(request): ValidJson<UpdateIncidentRequest>,
) -> Result<Json<IncidentResponse>, ApiError> {
    let incident = state
        .status
        .update_incident(IncidentId(id), request.status, request.message)
        .await?;
    Ok(Json(incident.into()))
}

/// GET /api/v1/admin/incidents's answer.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = IncidentList)]
struct IncidentListResponse {
    /// The newest 50, open or not, newest first.
    incidents: Vec<IncidentResponse>,
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/incidents",
    tag = "admin",
    responses(
        (status = 200, description = "The newest incidents, open or resolved", body = IncidentListResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn list_incidents(
    State(state): State<AppState>,
    _: AdminCaller,
) -> Result<Json<IncidentListResponse>, ApiError> {
    let incidents = state.status.list_incidents().await?;
    Ok(Json(IncidentListResponse {
        incidents: incidents.into_iter().map(Into::into).collect(),
    }))
}
