//! `/api/v1/admin`: user administration behind the service key.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{middleware, Json, Router};
use velro_core::domain::{AdminUserChange, Role, UserCursor, UserId, UserQuery};

use crate::extract::{AdminCaller, Fields, FromFields, PathId, QueryParams, ValidJson};
use crate::wire::{AdminUserResponse, UserListResponse};
use crate::{ApiError, AppState};

const DEFAULT_LIMIT: u32 = 50;
const MAX_LIMIT: u32 = 200;

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/users", get(list_users))
        .route("/users/{id}", get(get_user).patch(update_user).delete(delete_user))
        .route("/flags", get(get_flags).put(put_flags))
        .route_layer(middleware::from_fn(crate::middleware::bearer_challenge))
}

fn user_query(query: &QueryParams) -> Result<UserQuery, ApiError> {
    let mut errors = Vec::new();
    let limit = match query.get("limit")? {
        None => DEFAULT_LIMIT,
        Some(raw) => match raw.parse::<u32>() {
            Ok(limit) if (1..=MAX_LIMIT).contains(&limit) => limit,
            _ => {
                errors.push(velro_core::FieldError::new("limit", "must be an integer from 1 to 200"));
                DEFAULT_LIMIT
            }
        },
    };
    let after = match query.get("after")? {
        None => None,
        Some(raw) => {
            let cursor = UserCursor::decode(raw);
            if cursor.is_none() {
                errors.push(velro_core::FieldError::new("after", "is not a cursor this API returned"));
            }
            cursor
        }
    };
    let email_prefix = match query.get("email")? {
        None => None,
        Some(raw) => {
            let prefix = raw.trim().to_lowercase();
            if prefix.is_empty() || prefix.chars().any(char::is_control) {
                errors.push(velro_core::FieldError::new("email", "must be a non-empty prefix without control characters"));
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

async fn get_user(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
) -> Result<Json<AdminUserResponse>, ApiError> {
    Ok(Json(state.admin.get_user(UserId(id)).await?.into()))
}

struct UpdateUserRequest(AdminUserChange);

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
        Some(Self(AdminUserChange {
            disabled,
            role,
            credits_balance,
            email_confirmed,
        }))
    }
}

async fn update_user(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
    ValidJson(UpdateUserRequest(change)): ValidJson<UpdateUserRequest>,
) -> Result<Json<AdminUserResponse>, ApiError> {
    Ok(Json(state.admin.update_user(UserId(id), &change).await?.into()))
}

async fn delete_user(
    State(state): State<AppState>,
    _: AdminCaller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state.admin.delete_user(UserId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(serde::Serialize)]
struct FlagsResponse {
    cache: bool,
}

struct FlagsRequest {
    cache: Option<bool>,
}

impl FromFields for FlagsRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        Some(Self {
            cache: fields.optional_bool("cache"),
        })
    }
}

async fn get_flags(State(state): State<AppState>, _: AdminCaller) -> Json<FlagsResponse> {
    Json(FlagsResponse {
        cache: state.admin.cache_enabled(),
    })
}

async fn put_flags(
    State(state): State<AppState>,
    _: AdminCaller,
    ValidJson(request): ValidJson<FlagsRequest>,
) -> Json<FlagsResponse> {
    if let Some(enabled) = request.cache {
        state.admin.set_cache_enabled(enabled);
    }
    Json(FlagsResponse {
        cache: state.admin.cache_enabled(),
    })
}
