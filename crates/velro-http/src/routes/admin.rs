//! `/api/v1/admin`: user administration behind the service key.

use crate::wire::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::Router;
use utoipa::ToSchema;
use velro_core::domain::{AdminUserChange, Role, UserCursor, UserId, UserQuery};

use crate::error::ErrorResponse;
use crate::extract::{AdminCaller, Fields, FromFields, PathId, QueryParams, ValidJson};
use crate::wire::{AdminUserResponse, RoleName, UserListResponse};
use crate::{ApiError, AppState};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users))
        .route(
            "/users/{id}",
            get(get_user).patch(update_user).delete(delete_user),
        )
        .route("/users/{id}/sessions", delete(revoke_sessions))
        .route("/flags", get(get_flags).put(put_flags))
}

fn user_query(query: &QueryParams) -> Result<UserQuery, ApiError> {
    let mut errors = Vec::new();
    let limit = match query.get("limit")? {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                errors.push(velro_core::FieldError::new(
                    "limit",
                    "must be an integer from 1 to 200",
                ));
                DEFAULT_LIMIT
            }
        },
    };
    let after = match query.get("after")? {
        None => None,
        Some(raw) => {
            let cursor = UserCursor::decode(raw);
            if cursor.is_none() {
                errors.push(velro_core::FieldError::new(
                    "after",
                    "is not a cursor this API returned",
                ));
            }
            cursor
        }
    };
    let email_prefix = match query.get("email")? {
        None => None,
        Some(raw) => {
            let prefix = raw.trim().to_lowercase();
            if prefix.is_empty() || prefix.chars().any(char::is_control) {
                errors.push(velro_core::FieldError::new(
                    "email",
                    "must be a non-empty prefix without control characters",
                ));
            }
            Some(prefix)
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    Ok(UserQuery {
        email_prefix,
        after,
        limit,
    })
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users",
    tag = "admin",
    params(("limit" = Option<u32>, Query, minimum = 1, maximum = 200, description = "Page size (default 50)"), ("after" = Option<String>, Query, description = "The `next` cursor of the previous page"), ("email" = Option<String>, Query, description = "A literal, case-insensitive email prefix")),
    responses(
        (status = 200, description = "A page of users, newest first", body = UserListResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
        (status = 422, description = "`validation_failed`: a bad `limit`, `after` or `email`, or an empty value", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn list_users(
    State(state): State<AppState>,
    _: AdminCaller,
    query: QueryParams,
) -> Result<Json<UserListResponse>, ApiError> {
    let query = user_query(&query)?;
    let page = state.admin.list_users(&query).await?;
    Ok(Json(UserListResponse {
        users: page.users.into_iter().map(Into::into).collect(),
        next: page.next.map(|cursor| cursor.encode()),
    }))
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, description = "The user", body = AdminUserResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user, or the id is not a UUID", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn get_user(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
) -> Result<Json<AdminUserResponse>, ApiError> {
    Ok(Json(state.admin.get_user(UserId(id)).await?.into()))
}

/// Every field is optional; an absent one is left as it is.
#[derive(ToSchema)]
#[schema(as = UpdateUserBody)]
struct UpdateUserRequest {
    /// Disabling revokes every session at once.
    #[schema(nullable = false)]
    disabled: Option<bool>,
    #[schema(value_type = Option<RoleName>, nullable = false)]
    role: Option<Role>,
    #[schema(nullable = false, minimum = 0)]
    credits_balance: Option<i64>,
    #[schema(nullable = false)]
    email_confirmed: Option<bool>,
}

impl FromFields for UpdateUserRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        let disabled = fields.optional_bool("disabled");
        let email_confirmed = fields.optional_bool("email_confirmed");
        // No early return on a bad role: it is reported, and credits_balance must still be
        // checked so that every bad field is named.
        let role = fields.optional_string("role");
        let role = fields.parse("role", role, |s| s.parse::<Role>());
        let credits = fields.optional_i64("credits_balance");
        let credits_balance = match credits {
            Some(n) if n < 0 => {
                fields.report("credits_balance", "must be zero or more");
                None
            }
            other => other,
        };
        Some(Self {
            disabled,
            role,
            credits_balance,
            email_confirmed,
        })
    }
}

#[utoipa::path(
    patch,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    request_body = UpdateUserRequest,
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, description = "The updated user", body = AdminUserResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user, or the id is not a UUID", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn update_user(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
    ValidJson(request): ValidJson<UpdateUserRequest>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    let change = AdminUserChange {
        disabled: request.disabled,
        role: request.role,
        credits_balance: request.credits_balance,
        email_confirmed: request.email_confirmed,
    };
    Ok(Json(
        state.admin.update_user(UserId(id), &change).await?.into(),
    ))
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 204, description = "Deleted; every session revoked; the email can be registered again"),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user, or the id is not a UUID", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn delete_user(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state.admin.delete_user(UserId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// What revoking a user's sessions did.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = RevokedSessions)]
struct RevokedSessionsResponse {
    /// How many live sessions were revoked (0 when there were none).
    revoked: usize,
}

#[utoipa::path(
    delete,
    path = "/api/v1/admin/users/{id}/sessions",
    tag = "admin",
    params(("id" = uuid::Uuid, Path, description = "A user id")),
    responses(
        (status = 200, description = "Every live session of the user revoked at once (old access tokens: 401 `session_revoked`; refresh: 401 `refresh_token_invalid`); the user stays enabled and may sign in again", body = RevokedSessionsResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
        (status = 404, description = "`not_found`: no such user, or the id is not a UUID", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn revoke_sessions(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
) -> Result<Json<RevokedSessionsResponse>, ApiError> {
    let revoked = state.admin.revoke_sessions(UserId(id)).await?;
    Ok(Json(RevokedSessionsResponse { revoked }))
}

#[derive(serde::Serialize, ToSchema)]
#[schema(as = Flags)]
struct FlagsResponse {
    cache: bool,
}

#[derive(ToSchema)]
#[schema(as = FlagsBody)]
struct FlagsRequest {
    /// Switches the session/profile cache on or off at run time.
    #[schema(nullable = false)]
    cache: Option<bool>,
}

impl FromFields for FlagsRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        Some(Self {
            cache: fields.optional_bool("cache"),
        })
    }
}

#[utoipa::path(
    get,
    path = "/api/v1/admin/flags",
    tag = "admin",
    responses(
        (status = 200, description = "Run-time flags", body = FlagsResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn get_flags(State(state): State<AppState>, _: AdminCaller) -> Json<FlagsResponse> {
    Json(FlagsResponse {
        cache: state.admin.cache_enabled(),
    })
}

#[utoipa::path(
    put,
    path = "/api/v1/admin/flags",
    tag = "admin",
    request_body = FlagsRequest,
    responses(
        (status = 200, description = "The flags after the change", body = FlagsResponse),
        (status = 401, description = "`invalid_service_key`: no, or another, service key", body = ErrorResponse),
        (status = 403, description = "`forbidden`: a valid user access token (any role) instead of the service key", body = ErrorResponse),
    ),
    security(("service_key" = [])),
)]
async fn put_flags(
    State(state): State<AppState>,
    _: AdminCaller,
    ValidJson(request): ValidJson<FlagsRequest>,
) -> Result<Json<FlagsResponse>, ApiError> {
    if let Some(enabled) = request.cache {
        state
            .admin
            .set_cache_flag(&velro_core::service::Operator::ServiceKey.actor(), enabled)
            .await?;
    }
    Ok(Json(FlagsResponse {
        cache: state.admin.cache_enabled(),
    }))
}
