//! GoTrue's admin API over Velro's users: `GET/POST /admin/users`,
//! `GET/PUT/DELETE /admin/users/{id}`. Each handler parses its body into the core's types and
//! makes one call into `SupabaseAdmin`; the rules (metadata, roles, bans, deletes) live there.

use crate::wire::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use velro_core::domain::{BanDuration, Email, Metadata, UserId};
use velro_core::service::{parse_metadata, AdminCreate, AdminPassword, AdminUpdate};

use super::error::{ErrorBody, GotrueError};
use super::wire::{Empty, SupabaseUser, SupabaseUserList};
use super::{audience, checked_password, query_value, GotrueJson, SupabaseAdmin};
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

#[utoipa::path(
    get,
    path = "/auth/v1/admin/users/{id}",
    tag = "supabase",
    params(("id" = String, Path, description = "A user id; anything but a UUID is a 404 `validation_failed`")),
    responses(
        (status = 200, description = "The user (a soft-deleted one with `deleted_at`, its obfuscated address and `identities: []`)", body = SupabaseUser),
        (status = 404, description = "`user_not_found`, or `validation_failed` for an id that is not a UUID", body = ErrorBody),
    ),
    security(("supabase_admin" = [])),
)]
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

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "the schema of the query `list_users` reads")]
struct PageQuery {
    /// From 1 (default 1); empty is the default.
    page: Option<String>,
    /// 1 to 1000 (default 50); empty is the default.
    per_page: Option<String>,
    /// Only users whose email or full name (`user_metadata.full_name`) contains this text, in
    /// any case; empty is no filter.
    filter: Option<String>,
}

#[utoipa::path(
    get,
    path = "/auth/v1/admin/users",
    tag = "supabase",
    params(PageQuery),
    responses(
        (status = 200, description = "One page of users, newest first", body = SupabaseUserList,
            headers(
                ("x-total-count" = u64, description = "How many users there are in all"),
                ("link" = String, description = "`rel=\"next\"` (while there is a next page) and `rel=\"last\"`"),
            )),
    ),
    security(("supabase_admin" = [])),
)]
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
    let filter = query_value(query.as_deref(), "filter").filter(|text| !text.is_empty());
    let (users, total) = state
        .supabase_admin
        .page_users(&admin, page, per_page, filter.as_deref())
        .await?;
    let last = total.div_ceil(u64::from(per_page)).max(1);
    // `page` first: auth-js reads the number right after the first `=`. The filter stays in
    // the links (GoTrue keeps every query parameter), so they page through the same list.
    let base = format!("{}/admin/users", state.supabase.settings().tokens.issuer);
    let kept = filter
        .map(|text| {
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("filter", &text);
            format!("&{}", query.finish())
        })
        .unwrap_or_default();
    let mut links = Vec::new();
    if page < last {
        links.push(format!(
            "<{base}?page={}&per_page={per_page}{kept}>; rel=\"next\"",
            page + 1
        ));
    }
    links.push(format!(
        "<{base}?page={last}&per_page={per_page}{kept}>; rel=\"last\""
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

/// The body of `POST` and `PUT /admin/users[/{id}]` (GoTrue's `AdminUserParams`). Unknown keys
/// are ignored.
#[derive(Deserialize, ToSchema)]
#[schema(as = AdminUserParams)]
pub(super) struct AdminUserBody {
    /// Create only: the new user's id (a UUID, not nil); a new one when absent.
    #[serde(default)]
    id: Option<String>,
    /// Required to create. On update, changes the address at once (confirmation unchanged).
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    /// Phone logins are off: any non-empty value is 422 `phone_provider_disabled`.
    #[serde(default)]
    phone: Option<String>,
    /// Checked against the password policy (422 `weak_password`); on update, every session
    /// of the user ends.
    #[serde(default)]
    password: Option<String>,
    /// Create only: a bcrypt or Argon2 hash instead of `password` (not both).
    #[serde(default)]
    password_hash: Option<String>,
    /// `true` confirms the address.
    #[serde(default)]
    email_confirm: Option<bool>,
    /// `true` is 422 `phone_provider_disabled`.
    #[serde(default)]
    phone_confirm: Option<bool>,
    /// An object: stored as given on create, merged (top-level keys, `null` deletes one) on
    /// update.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    user_metadata: Option<Value>,
    /// An object merged over `{"provider": "email", "providers": ["email"]}`; its `role`
    /// (viewer, creator, admin) is the account's Velro role.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Value>,
    /// A Go duration (`24h`, `1h30m`); `none` or `0` lifts a ban. A ban ends every session.
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

#[utoipa::path(
    post,
    path = "/auth/v1/admin/users",
    tag = "supabase",
    request_body = AdminUserBody,
    responses(
        (status = 200, description = "The new user", body = SupabaseUser),
        (status = 422, description = "`email_exists` (the address is registered), `weak_password`, `phone_provider_disabled`", body = ErrorBody),
    ),
    security(("supabase_admin" = [])),
)]
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
        (Some(password), None) => Some(AdminPassword::Plain(checked_password(&state, &password)?)),
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

#[utoipa::path(
    put,
    path = "/auth/v1/admin/users/{id}",
    tag = "supabase",
    params(("id" = String, Path, description = "A user id; anything but a UUID is a 404 `validation_failed`")),
    request_body = AdminUserBody,
    responses(
        (status = 200, description = "The updated user", body = SupabaseUser),
        (status = 404, description = "`user_not_found`, or `validation_failed` for an id that is not a UUID", body = ErrorBody),
        (status = 422, description = "`email_exists` (the new address is taken), `weak_password`, `phone_provider_disabled`", body = ErrorBody),
    ),
    security(("supabase_admin" = [])),
)]
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
            .map(|password| checked_password(&state, &password))
            .transpose()?,
        email_confirm: body.email_confirm.unwrap_or(false),
        user_metadata: optional_metadata("user_metadata", body.user_metadata)?,
        app_metadata: optional_metadata("app_metadata", body.app_metadata)?,
        ban: AdminUserBody::ban(body.ban_duration)?,
    };
    let user = state.supabase_admin.update_user(&admin, id, update).await?;
    Ok(Json(SupabaseUser::new(&user, audience(&state))))
}

/// May be empty (`{}`).
#[derive(Deserialize, ToSchema)]
#[schema(as = AdminDeleteParams)]
pub(super) struct DeleteBody {
    /// `true`: GoTrue's soft delete (the row stays with `deleted_at`, scrubbed and disabled);
    /// default: the account and everything of it is removed.
    #[serde(default)]
    should_soft_delete: Option<bool>,
}

/// `200 {}`; the body (`{"should_soft_delete": …}`) may be empty.
#[utoipa::path(
    delete,
    path = "/auth/v1/admin/users/{id}",
    tag = "supabase",
    params(("id" = String, Path, description = "A user id; anything but a UUID is a 404 `validation_failed`")),
    request_body(content = DeleteBody, description = "Optional; empty is `{}`"),
    responses(
        (status = 200, description = "Deleted (a soft delete of a soft-deleted user changes nothing)", body = Empty),
        (status = 404, description = "`user_not_found`, or `validation_failed` for an id that is not a UUID", body = ErrorBody),
    ),
    security(("supabase_admin" = [])),
)]
pub(super) async fn delete_user(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    Path(id): Path<String>,
    GotrueJson(body): GotrueJson<DeleteBody>,
) -> Result<Json<Empty>, GotrueError> {
    let id = user_id(&id)?;
    state
        .supabase_admin
        .delete_user(&admin, id, body.should_soft_delete.unwrap_or(false))
        .await?;
    Ok(Json(Empty {}))
}
