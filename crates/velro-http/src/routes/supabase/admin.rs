//! GoTrue's admin API over Velro's users: `GET/POST /admin/users`,
//! `GET/PUT/DELETE /admin/users/{id}`. Each handler parses its body into the core's types and
//! makes one call into `SupabaseAdmin`; the rules (metadata, roles, bans, deletes) live there.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use velro_core::domain::{BanDuration, Email, Metadata, UserId};
use velro_core::service::{parse_metadata, AdminCreate, AdminPassword, AdminUpdate};

use super::error::GotrueError;
use super::wire::{SupabaseUser, SupabaseUserList};
use super::{audience, query_value, GotrueJson, SupabaseAdmin};
use crate::AppState;

/// A path id, as GoTrue answers a malformed one.
fn user_id(raw: &str) -> Result<UserId, GotrueError> {
    uuid::Uuid::parse_str(raw).map(UserId).map_err(|_| {
        GotrueError::new(
            StatusCode::NOT_FOUND,
            "validation_failed",
            "user_id must be an UUID",
        )
    })
}

pub(super) async fn get_user(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    Path(id): Path<String>,
) -> Result<Json<SupabaseUser>, GotrueError> {
    let id = user_id(&id)?;
    let user = state.supabase_admin.find_user(&admin, id).await?;
    Ok(Json(SupabaseUser::new(&user, audience(&state))))
}

/// GoTrue's page size when none is given, and the largest Velro serves.
const DEFAULT_PER_PAGE: u32 = 50;
const MAX_PER_PAGE: u32 = 1000;

/// A pagination parameter: absent or empty (auth-js sends `page=&per_page=`) is the default,
/// anything but a positive integer is GoTrue's "Bad Pagination Parameters".
fn pagination(query: Option<&str>, name: &str, default: u64) -> Result<u64, GotrueError> {
    match query_value(query, name).as_deref() {
        None | Some("") => Ok(default),
        Some(raw) => raw
            .parse::<u64>()
            .ok()
            .filter(|value| *value > 0)
            .ok_or_else(|| GotrueError::validation("Bad Pagination Parameters")),
    }
}

pub(super) async fn list_users(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    RawQuery(query): RawQuery,
) -> Result<Response, GotrueError> {
    let page = pagination(query.as_deref(), "page", 1)?;
    let per_page = pagination(query.as_deref(), "per_page", u64::from(DEFAULT_PER_PAGE))?;
    let per_page = u32::try_from(per_page)
        .ok()
        .filter(|n| *n <= MAX_PER_PAGE)
        .ok_or_else(|| GotrueError::validation("Bad Pagination Parameters"))?;
    let (users, total) = state
        .supabase_admin
        .page_users(&admin, page, per_page)
        .await?;
    let last = total.div_ceil(u64::from(per_page)).max(1);
    // `page` first: auth-js reads the number right after the first `=`.
    let base = format!("{}/admin/users", state.supabase.settings().tokens.issuer);
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "<{base}?page={}&per_page={per_page}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "<{base}?page={last}&per_page={per_page}>; rel=\"last\""
    ));
    let audience = audience(&state);
    let users: Vec<SupabaseUser> = users
        .iter()
        .map(|user| SupabaseUser::new(user, audience))
        .collect();
    let mut response = Json(SupabaseUserList {
        users,
        aud: audience.to_string(),
    })
    .into_response();
    let headers = response.headers_mut();
    headers.insert("x-total-count", total.into());
    if let Ok(link) = axum::http::HeaderValue::from_str(&links.join(", ")) {
        headers.insert(axum::http::header::LINK, link);
    }
    Ok(response)
}

/// The body of `POST` and `PUT /admin/users[/{id}]` (GoTrue's `AdminUserParams`).
#[derive(Deserialize)]
pub(super) struct AdminUserBody {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    password_hash: Option<String>,
    #[serde(default)]
    email_confirm: Option<bool>,
    #[serde(default)]
    phone_confirm: Option<bool>,
    #[serde(default)]
    user_metadata: Option<Value>,
    #[serde(default)]
    app_metadata: Option<Value>,
    #[serde(default)]
    ban_duration: Option<String>,
    /// GoTrue's database role. Velro's tokens always carry `authenticated`.
    #[serde(default)]
    role: Option<String>,
}

fn non_empty(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.is_empty())
}

fn optional_metadata(
    field: &'static str,
    value: Option<Value>,
) -> Result<Option<Metadata>, GotrueError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Ok(Some(parse_metadata(field, value)?)),
    }
}

impl AdminUserBody {
    /// What both create and update refuse alike.
    fn check_common(&self) -> Result<(), GotrueError> {
        if self.phone.as_deref().is_some_and(|p| !p.is_empty()) || self.phone_confirm == Some(true)
        {
            return Err(GotrueError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "phone_provider_disabled",
                "Phone logins are disabled",
            ));
        }
        if let Some(role) = self.role.as_deref().filter(|r| !r.is_empty()) {
            if role != velro_core::tokens::AUTHENTICATED_ROLE {
                return Err(GotrueError::validation(
                    "role: only the authenticated database role is supported; Velro's own role \
                     is app_metadata.role",
                ));
            }
        }
        Ok(())
    }

    fn email(raw: String) -> Result<Email, GotrueError> {
        Email::parse(&raw).map_err(|_| {
            GotrueError::validation("Unable to validate email address: invalid format")
        })
    }

    fn ban(raw: Option<String>) -> Result<Option<BanDuration>, GotrueError> {
        non_empty(raw)
            .map(|raw| {
                BanDuration::parse(&raw).map_err(|why| {
                    GotrueError::validation(format!("invalid format for ban duration: {why}"))
                })
            })
            .transpose()
    }
}

pub(super) async fn create_user(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    GotrueJson(body): GotrueJson<AdminUserBody>,
) -> Result<Json<SupabaseUser>, GotrueError> {
    body.check_common()?;
    let email = non_empty(body.email).ok_or_else(|| {
        GotrueError::validation("Cannot create a user without either an email or phone")
    })?;
    let email = AdminUserBody::email(email)?;
    let password = match (non_empty(body.password), non_empty(body.password_hash)) {
        (Some(_), Some(_)) => {
            return Err(GotrueError::validation(
                "Only a password or a password hash should be provided",
            ))
        }
        (Some(password), None) => Some(AdminPassword::Plain(
            state
                .auth
                .password_policy()
                .check(&password)
                .map_err(GotrueError::weak_password)?,
        )),
        (None, Some(hash)) => Some(AdminPassword::Hash(hash)),
        (None, None) => None,
    };
    let id = non_empty(body.id)
        .map(|raw| {
            uuid::Uuid::parse_str(&raw)
                .ok()
                .filter(|id| !id.is_nil())
                .map(UserId)
                .ok_or_else(|| GotrueError::validation("ID must conform to the uuid v4 format"))
        })
        .transpose()?;
    let create = AdminCreate {
        id,
        email,
        password,
        email_confirm: body.email_confirm.unwrap_or(false),
        user_metadata: optional_metadata("user_metadata", body.user_metadata)?,
        app_metadata: optional_metadata("app_metadata", body.app_metadata)?,
        ban: AdminUserBody::ban(body.ban_duration)?,
    };
    let user = state.supabase_admin.create_user(&admin, create).await?;
    Ok(Json(SupabaseUser::new(&user, audience(&state))))
}

pub(super) async fn update_user(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    Path(id): Path<String>,
    GotrueJson(body): GotrueJson<AdminUserBody>,
) -> Result<Json<SupabaseUser>, GotrueError> {
    let id = user_id(&id)?;
    body.check_common()?;
    if non_empty(body.password_hash).is_some() {
        return Err(GotrueError::validation(
            "password_hash is taken only when a user is created",
        ));
    }
    let update = AdminUpdate {
        email: non_empty(body.email)
            .map(AdminUserBody::email)
            .transpose()?,
        password: body
            .password
            .map(|password| {
                state
                    .auth
                    .password_policy()
                    .check(&password)
                    .map_err(GotrueError::weak_password)
            })
            .transpose()?,
        email_confirm: body.email_confirm.unwrap_or(false),
        user_metadata: optional_metadata("user_metadata", body.user_metadata)?,
        app_metadata: optional_metadata("app_metadata", body.app_metadata)?,
        ban: AdminUserBody::ban(body.ban_duration)?,
    };
    let user = state.supabase_admin.update_user(&admin, id, update).await?;
    Ok(Json(SupabaseUser::new(&user, audience(&state))))
}

#[derive(Deserialize)]
pub(super) struct DeleteBody {
    #[serde(default)]
    should_soft_delete: Option<bool>,
}

/// `200 {}`; the body (`{"should_soft_delete": …}`) may be empty.
pub(super) async fn delete_user(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    Path(id): Path<String>,
    GotrueJson(body): GotrueJson<DeleteBody>,
) -> Result<Json<Value>, GotrueError> {
    let id = user_id(&id)?;
    state
        .supabase_admin
        .delete_user(&admin, id, body.should_soft_delete.unwrap_or(false))
        .await?;
    Ok(Json(json!({})))
}
