//! `/api/v1/auth`: the user-facing endpoints. Each handler parses, calls one service method, and
//! shapes the answer.

use crate::wire::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use utoipa::ToSchema;
use velro_core::domain::{AvatarUrl, DisplayName, Email, NewPassword, ProfileChange, SessionId};
use velro_core::service::{Login, LogoutScope, Registration};
use velro_core::Secret;

use crate::error::ErrorResponse;
use crate::extract::{Caller, Client, Fields, FromFields, PathId, QueryParams, ValidJson};
use crate::wire::{
    MessageResponse, SessionInfo, SessionListResponse, SessionResponse, UserResponse,
};
use crate::{ApiError, AppState};

/// `/api/v1/auth/...`: the routes carry their whole path rather than being nested, because a
/// nested route rebuilds the request's URI without its prefix on every request, a cost the
/// token checks (`/me`) would pay for nothing.
macro_rules! at {
    ($path:literal) => {
        concat!("/api/v1/auth", $path)
    };
}

/// The v1 auth API, at its whole paths (merged, not nested). The endpoints that take a Bearer
/// token say so through their extractor (`Caller`), which gives their 401s the challenge.
pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route(at!("/register"), post(register))
        .route(at!("/login"), post(login))
        .route(at!("/refresh"), post(refresh))
        .route(at!("/password-reset"), post(request_password_reset))
        .route(at!("/password-reset-confirm"), post(confirm_password_reset))
        .route(at!("/me"), get(get_me))
        .route(at!("/profile"), put(update_profile))
        .route(at!("/logout"), post(logout))
        .route(at!("/change-password"), post(change_password))
        .route(at!("/sessions"), get(list_sessions))
        .route(at!("/sessions/{id}"), delete(revoke_session))
}

fn email(fields: &mut Fields) -> Option<Email> {
    let raw = fields.string("email");
    fields.parse("email", raw, Email::parse)
}

/// A non-empty secret string (passwords and tokens presented for checking).
fn secret(fields: &mut Fields, field: &str) -> Option<Secret<String>> {
    let raw = fields.string(field);
    fields.parse(field, raw, |s| {
        if s.is_empty() {
            Err("must not be empty")
        } else {
            Ok(Secret::new(s.to_string()))
        }
    })
}

/// A new password under the policy, and its confirmation (`confirm_password`) when one was sent.
fn new_password(
    fields: &mut Fields,
    state: &AppState,
    field: &str,
    email: Option<&Email>,
) -> (Option<NewPassword>, Option<Secret<String>>) {
    let raw = fields.string(field);
    let confirm = fields.optional_string("confirm_password");
    if let (Some(password), Some(confirm)) = (&raw, &confirm) {
        if password != confirm {
            fields.report("confirm_password", format!("must equal {field}"));
        }
    }
    let policy = state.auth.password_policy();
    let password = fields.parse(field, raw, |password| match email {
        Some(email) => policy.check_for(password, email),
        None => policy.check(password),
    });
    (password, confirm.map(Secret::new))
}

#[derive(ToSchema)]
#[schema(as = RegisterBody)]
struct RegisterRequest {
    /// Trimmed and lowercased; `local@domain` with a DNS domain, at most 254 characters.
    #[schema(value_type = String, max_length = 254, example = "ada@example.com")]
    email: Email,
    /// 8 to 128 characters; not one of the 10,000 most common passwords, not the email or its local part.
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    password: NewPassword,
    /// 1 to 100 characters after trimming; becomes `display_name`.
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    full_name: Option<DisplayName>,
    /// When present, must equal `password`.
    #[schema(value_type = Option<String>)]
    #[expect(
        dead_code,
        reason = "compared with the password while parsing; a field for the schema"
    )]
    confirm_password: Option<Secret<String>>,
}

impl FromFields for RegisterRequest {
    fn from_fields(fields: &mut Fields, state: &AppState) -> Option<Self> {
        let email = email(fields);
        let (password, confirm_password) = new_password(fields, state, "password", email.as_ref());
        let full_name = fields.optional_string("full_name");
        let full_name = match full_name {
            Some(raw) => Some(fields.parse("full_name", Some(raw), DisplayName::parse)?),
            None => None,
        };
        Some(Self {
            email: email?,
            password: password?,
            full_name,
            confirm_password,
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Registered and signed in", body = SessionResponse),
        (status = 409, description = "`email_exists`", body = ErrorResponse),
        (status = 429, description = "`rate_limited`", body = ErrorResponse),
    ),
)]
async fn register(
    State(state): State<AppState>,
    Client(client): Client,
    ValidJson(request): ValidJson<RegisterRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let registration = Registration {
        email: request.email,
        password: request.password,
        display_name: request.full_name,
        avatar_url: None,
        supabase_data: None,
    };
    let session = state.auth.register(registration, client).await?;
    Ok((StatusCode::CREATED, Json(SessionResponse::from(session))))
}

#[derive(ToSchema)]
#[schema(as = LoginBody)]
struct LoginRequest {
    #[schema(value_type = String, max_length = 254, example = "ada@example.com")]
    email: Email,
    #[schema(value_type = String, min_length = 1)]
    password: Secret<String>,
    /// Refresh tokens live 30 days instead of 7 (the choice carries over to every rotation).
    #[schema(value_type = Option<bool>, nullable = false, default = false)]
    remember_me: bool,
}

impl FromFields for LoginRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        let email = email(fields);
        let password = secret(fields, "password");
        let remember_me = fields.optional_bool("remember_me");
        Some(Self {
            email: email?,
            password: password?,
            remember_me: remember_me.unwrap_or(false),
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionResponse),
        (status = 401, description = "`invalid_credentials`: unknown email or wrong password (the same body either way)", body = ErrorResponse),
        (status = 403, description = "`account_disabled` (only after the password was verified)", body = ErrorResponse),
        (status = 429, description = "`rate_limited`", body = ErrorResponse),
    ),
)]
async fn login(
    State(state): State<AppState>,
    Client(client): Client,
    ValidJson(request): ValidJson<LoginRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let login = Login {
        email: request.email,
        password: request.password,
        remember_me: request.remember_me,
    };
    let session = state.auth.login(login, client).await?;
    Ok(Json(session.into()))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/me",
    tag = "auth",
    responses(
        (status = 200, description = "The caller, as of now", body = UserResponse),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired` or `session_revoked`", body = ErrorResponse),
    ),
    security(("bearer_jwt" = [])),
)]
async fn get_me(Caller(caller): Caller) -> Response {
    // Written from the session's shared snapshot (the cache's entry on a hit), not a copy of it.
    UserResponse::from(&caller.user).into_response()
}

/// An absent field stays as it is; `null` clears it.
#[derive(ToSchema)]
#[schema(as = ProfileBody)]
struct ProfileRequest {
    #[schema(value_type = Option<String>, min_length = 1, max_length = 100)]
    full_name: Option<Option<DisplayName>>,
    /// An absolute `https` URL with a host (an empty string is 422, not a clear).
    #[schema(value_type = Option<String>, min_length = 1, max_length = 2048)]
    avatar_url: Option<Option<AvatarUrl>>,
}

impl FromFields for ProfileRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        let full_name = fields.nullable_string("full_name");
        let avatar_url = fields.nullable_string("avatar_url");
        // A bad value reads as absent instead of ending the parse: it has been reported, so the
        // request is refused anyway, and the other field still gets checked (one entry per bad
        // field, per the contract).
        let full_name = match full_name {
            Some(Some(raw)) => {
                fields.parse("full_name", Some(raw), |s| DisplayName::parse(s).map(Some))
            }
            Some(None) => Some(None),
            None => None,
        };
        let avatar_url = match avatar_url {
            Some(Some(raw)) => {
                fields.parse("avatar_url", Some(raw), |s| AvatarUrl::parse(s).map(Some))
            }
            Some(None) => Some(None),
            None => None,
        };
        Some(Self {
            full_name,
            avatar_url,
        })
    }
}

#[utoipa::path(
    put,
    path = "/api/v1/auth/profile",
    tag = "auth",
    request_body = ProfileRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired` or `session_revoked`", body = ErrorResponse),
    ),
    security(("bearer_jwt" = [])),
)]
async fn update_profile(
    State(state): State<AppState>,
    Caller(caller): Caller,
    ValidJson(request): ValidJson<ProfileRequest>,
) -> Result<UserResponse<'static>, ApiError> {
    let change = ProfileChange {
        display_name: request.full_name,
        avatar_url: request.avatar_url,
    };
    let user = state.auth.update_profile(&caller, change).await?;
    Ok(user.into())
}

#[derive(ToSchema)]
#[schema(as = RefreshBody)]
struct RefreshRequest {
    #[schema(value_type = String, min_length = 1)]
    refresh_token: Secret<String>,
}

impl FromFields for RefreshRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        let refresh_token = secret(fields, "refresh_token")?;
        Some(Self { refresh_token })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "A new session pair; the same successor again within the reuse grace window", body = SessionResponse),
        (status = 401, description = "`refresh_token_invalid` (unknown, expired or revoked) or `refresh_token_reused` (spent before the grace window: the session is revoked)", body = ErrorResponse),
        (status = 429, description = "`rate_limited`", body = ErrorResponse),
    ),
)]
async fn refresh(
    State(state): State<AppState>,
    Client(client): Client,
    ValidJson(request): ValidJson<RefreshRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let session = state.auth.refresh(request.refresh_token, client).await?;
    Ok(Json(session.into()))
}

/// `scope` of POST /logout: which sessions end. Values are case-sensitive.
#[derive(ToSchema)]
#[schema(as = LogoutScope, rename_all = "lowercase")]
enum ScopeParam {
    Local,
    Global,
    Others,
}

impl ScopeParam {
    fn parse(raw: &str) -> Option<Self> {
        match raw {
            "local" => Some(Self::Local),
            "global" => Some(Self::Global),
            "others" => Some(Self::Others),
            _ => None,
        }
    }

    fn scope(self) -> LogoutScope {
        match self {
            Self::Local => LogoutScope::Local,
            Self::Global => LogoutScope::Global,
            Self::Others => LogoutScope::Others,
        }
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    params(("scope" = Option<ScopeParam>, Query, description = "`local` (default): this session; `global`: every session; `others`: every other one")),
    responses(
        (status = 200, description = "Logged out", body = MessageResponse),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired` or `session_revoked`", body = ErrorResponse),
        (status = 422, description = "`validation_failed`: an unknown or empty `scope`", body = ErrorResponse),
    ),
    security(("bearer_jwt" = [])),
)]
async fn logout(
    State(state): State<AppState>,
    Caller(caller): Caller,
    query: QueryParams,
) -> Result<Json<MessageResponse>, ApiError> {
    let scope = match query.get("scope")? {
        None => LogoutScope::Local,
        Some(raw) => ScopeParam::parse(raw)
            .ok_or_else(|| ApiError::field("scope", "must be one of local, global, others"))?
            .scope(),
    };
    state.auth.logout(&caller, scope).await?;
    let message = match scope {
        LogoutScope::Local => "Logged out",
        LogoutScope::Global => "Logged out of every session",
        LogoutScope::Others => "Logged out of every other session",
    };
    Ok(Json(MessageResponse::new(message)))
}

#[derive(ToSchema)]
#[schema(as = PasswordResetBody)]
struct ResetRequest {
    #[schema(value_type = String, max_length = 254, example = "ada@example.com")]
    email: Email,
}

impl FromFields for ResetRequest {
    fn from_fields(fields: &mut Fields, _state: &AppState) -> Option<Self> {
        let email = email(fields)?;
        Some(Self { email })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset",
    tag = "auth",
    request_body = ResetRequest,
    responses(
        (status = 202, description = "The same answer whether or not the account exists", body = MessageResponse),
        (status = 429, description = "`rate_limited`", body = ErrorResponse),
    ),
)]
async fn request_password_reset(
    State(state): State<AppState>,
    Client(client): Client,
    ValidJson(request): ValidJson<ResetRequest>,
) -> Result<impl IntoResponse, ApiError> {
    state
        .auth
        .request_password_reset(request.email, client)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(MessageResponse::new(
            "If an account exists for this email, a reset message has been sent",
        )),
    ))
}

#[derive(ToSchema)]
#[schema(as = PasswordResetConfirmBody)]
struct ResetConfirmRequest {
    /// The token from the reset message.
    #[schema(value_type = String, min_length = 1)]
    token: Secret<String>,
    /// The register policy applies.
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    new_password: NewPassword,
    /// When present, must equal `new_password`.
    #[schema(value_type = Option<String>)]
    #[expect(
        dead_code,
        reason = "compared with the password while parsing; a field for the schema"
    )]
    confirm_password: Option<Secret<String>>,
}

impl FromFields for ResetConfirmRequest {
    fn from_fields(fields: &mut Fields, state: &AppState) -> Option<Self> {
        let token = secret(fields, "token");
        let (new_password, confirm_password) = new_password(fields, state, "new_password", None);
        Some(Self {
            token: token?,
            new_password: new_password?,
            confirm_password,
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset-confirm",
    tag = "auth",
    request_body = ResetConfirmRequest,
    responses(
        (status = 200, description = "Password set; every session revoked", body = MessageResponse),
        (status = 400, description = "`reset_token_invalid`: used, expired or unknown", body = ErrorResponse),
        (status = 429, description = "`rate_limited`", body = ErrorResponse),
    ),
)]
async fn confirm_password_reset(
    State(state): State<AppState>,
    ValidJson(request): ValidJson<ResetConfirmRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    state
        .auth
        .confirm_password_reset(request.token, request.new_password)
        .await?;
    Ok(Json(MessageResponse::new(
        "Password has been reset; sign in with the new password",
    )))
}

#[derive(ToSchema)]
#[schema(as = ChangePasswordBody)]
struct ChangePasswordRequest {
    #[schema(value_type = String, min_length = 1)]
    current_password: Secret<String>,
    /// The register policy applies, including "not the email".
    #[schema(value_type = String, min_length = 8, max_length = 128)]
    new_password: NewPassword,
    /// When present, must equal `new_password`.
    #[schema(value_type = Option<String>)]
    #[expect(
        dead_code,
        reason = "compared with the password while parsing; a field for the schema"
    )]
    confirm_password: Option<Secret<String>>,
}

impl FromFields for ChangePasswordRequest {
    fn from_fields(fields: &mut Fields, state: &AppState) -> Option<Self> {
        let current_password = secret(fields, "current_password");
        let (new_password, confirm_password) = new_password(fields, state, "new_password", None);
        Some(Self {
            current_password: current_password?,
            new_password: new_password?,
            confirm_password,
        })
    }
}

#[utoipa::path(
    post,
    path = "/api/v1/auth/change-password",
    tag = "auth",
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Password changed; every other session revoked", body = MessageResponse),
        (status = 401, description = "`invalid_credentials` (wrong current password; nothing changes), or a token code: `token_missing`, `token_invalid`, `token_expired`, `session_revoked`", body = ErrorResponse),
        (status = 429, description = "`rate_limited`", body = ErrorResponse),
    ),
    security(("bearer_jwt" = [])),
)]
async fn change_password(
    State(state): State<AppState>,
    Caller(caller): Caller,
    Client(client): Client,
    ValidJson(request): ValidJson<ChangePasswordRequest>,
) -> Result<Json<MessageResponse>, ApiError> {
    state
        .auth
        .change_password(
            &caller,
            request.current_password,
            request.new_password,
            client,
        )
        .await?;
    Ok(Json(MessageResponse::new(
        "Password changed; other sessions have been signed out",
    )))
}

#[utoipa::path(
    get,
    path = "/api/v1/auth/sessions",
    tag = "auth",
    responses(
        (status = 200, description = "The caller's live sessions, newest first", body = SessionListResponse),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired` or `session_revoked`", body = ErrorResponse),
    ),
    security(("bearer_jwt" = [])),
)]
async fn list_sessions(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<SessionListResponse>, ApiError> {
    let current = caller.session.id;
    let sessions = state.auth.list_sessions(&caller).await?;
    let sessions = sessions
        .into_iter()
        .map(|session| {
            let is_current = session.id == current;
            SessionInfo::new(session, is_current)
        })
        .collect();
    Ok(Json(SessionListResponse { sessions }))
}

#[utoipa::path(
    delete,
    path = "/api/v1/auth/sessions/{id}",
    tag = "auth",
    params(("id" = uuid::Uuid, Path, description = "A session id from GET /sessions")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "`token_missing`, `token_invalid`, `token_expired` or `session_revoked`", body = ErrorResponse),
        (status = 404, description = "`not_found`: not one of the caller's live sessions, or not a UUID", body = ErrorResponse),
    ),
    security(("bearer_jwt" = [])),
)]
async fn revoke_session(
    State(state): State<AppState>,
    Caller(caller): Caller,
    PathId(id): PathId,
) -> Result<StatusCode, ApiError> {
    state.auth.revoke_session(&caller, SessionId(id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
