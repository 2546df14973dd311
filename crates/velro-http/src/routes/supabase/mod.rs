//! Supabase Auth (GoTrue) under `/auth/v1` (and at `/` when configured): the routes, bodies and
//! error shapes that `supabase-js` and `supabase-py` speak, each handler one call into the same
//! use cases as the v1 API (`SupabaseAuth` wraps `AuthService`). See
//! `contract/supabase-auth-compat.md`.

mod admin;
mod apikey;
mod error;
mod links;
pub(crate) mod openapi;
mod wire;

pub use apikey::ApiKeys;

use crate::extract::{read_body, BodyError};
use crate::wire::Json;
use axum::extract::{FromRequest, FromRequestParts, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{middleware, Router};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::{IntoParams, ToSchema};
use velro_core::domain::{CodeChallenge, Email, Metadata, NewPassword};
use velro_core::service::{
    parse_metadata, take_profile, Authenticated, LinkLanding, LogoutScope, OtpKind, PendingProfile,
    Registration, SignUp, SupabaseError, SupabaseUserChange, Verified, PKCE_PREFIX,
};
use velro_core::tokens::AdminToken;
use velro_core::Secret;

use crate::extract::{bearer_token, CallerSlot, Client};
use crate::AppState;

use error::{ErrorBody, GotrueError};
use wire::{Empty, SupabaseSession, SupabaseUser};

/// The surface under `/auth/v1`, where GoTrue's health and JWKS routes have their own paths.
pub(super) fn router(state: &AppState) -> Router<AppState> {
    routes()
        .route("/health", get(health))
        .route("/.well-known/jwks.json", get(jwks))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .layer(middleware::from_fn(error::render))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            apikey::require,
        ))
}

/// The same surface at `/`, for clients pointed at GoTrue's root. `/health` and the JWKS stay
/// the v1 ones there (same keys; the health answer is the contract's), and unknown paths keep
/// the v1 404.
pub(super) fn root_router(state: &AppState) -> Router<AppState> {
    routes()
        .layer(middleware::from_fn(error::render))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            apikey::require,
        ))
}

fn routes() -> Router<AppState> {
    Router::new()
        .route("/settings", get(settings))
        .route("/signup", post(sign_up))
        .route("/token", post(token))
        .route("/user", get(get_user).put(update_user))
        .route("/logout", post(logout))
        .route("/recover", post(recover))
        .route("/otp", post(otp))
        .route("/verify", get(verify_redirect).post(verify))
        .route(
            "/admin/users",
            get(admin::list_users).post(admin::create_user),
        )
        .route(
            "/admin/users/{id}",
            get(admin::get_user)
                .put(admin::update_user)
                .delete(admin::delete_user),
        )
        .route("/resend", post(links::resend))
        .route("/invite", post(links::invite))
        .route("/admin/generate_link", post(links::generate_link))
        .method_not_allowed_fallback(|| async { StatusCode::METHOD_NOT_ALLOWED })
}

/// A JSON body as GoTrue reads it: unknown fields and `null`s ignored, an empty body read as
/// `{}`, anything unparsable `400 bad_json`. The message names where, never what: the value
/// could be a password.
struct GotrueJson<T>(T);

impl<T: DeserializeOwned> FromRequest<AppState> for GotrueJson<T> {
    type Rejection = GotrueError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let bytes = read_body(request, state)
            .await
            .map_err(|error| match error {
                BodyError::TooLarge => GotrueError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "request_entity_too_large",
                    "Request body too large",
                ),
                BodyError::Unreadable => GotrueError::bad_json("Could not read the request body"),
            })?;
        let bytes: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        serde_json::from_slice(bytes).map(Self).map_err(|error| {
            GotrueError::bad_json(format!(
                "Could not parse request body as JSON: {:?} error at line {} column {}",
                error.classify(),
                error.line(),
                error.column()
            ))
        })
    }
}

/// The value of a query parameter, as GoTrue's `r.FormValue` reads it.
fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// GoTrue's PKCE pair on the mail flows (`/signup`, `/otp`, `/recover`, `/resend`, `PUT
/// /user`): with it, the mailed link is a `pkce_` one and lands with `?code=`.
#[derive(Deserialize, ToSchema, Default)]
struct PkceFields {
    /// RFC 7636: 43 to 128 characters of `[A-Za-z0-9._~-]`; with `code_challenge_method`.
    #[serde(default)]
    code_challenge: Option<String>,
    /// `s256` or `plain` (any case).
    #[serde(default)]
    code_challenge_method: Option<String>,
}

impl PkceFields {
    /// Both or neither, well formed (400 `validation_failed` with GoTrue's messages).
    fn parse(&self) -> Result<Option<CodeChallenge>, GotrueError> {
        CodeChallenge::parse(
            self.code_challenge.as_deref(),
            self.code_challenge_method.as_deref(),
        )
        .map_err(|error| GotrueError::validation(error.to_string()))
    }
}

/// A user behind a Supabase access token on a live session.
struct SupabaseCaller(Authenticated);

impl FromRequestParts<AppState> for SupabaseCaller {
    type Rejection = GotrueError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer_token(parts).ok_or_else(GotrueError::no_authorization)?;
        let caller = state.supabase.authenticate(token).await?;
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.set_user(caller.user.id);
        }
        Ok(Self(caller))
    }
}

/// The holder of an admin credential (the project's `service_role` key, say).
struct SupabaseAdmin(AdminToken);

impl FromRequestParts<AppState> for SupabaseAdmin {
    type Rejection = GotrueError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let admin = state.supabase.authorize_admin(bearer_token(parts)).await?;
        Ok(Self(admin))
    }
}

fn audience(state: &AppState) -> &str {
    &state.supabase.settings().tokens.audience
}

/// GoTrue's health answer.
#[derive(Serialize, ToSchema)]
#[schema(as = Health)]
struct HealthBody {
    /// `v` and Velro's version.
    version: String,
    /// Always `GoTrue`.
    #[schema(value_type = String)]
    name: &'static str,
    #[schema(value_type = String)]
    description: &'static str,
}

#[utoipa::path(
    get,
    path = "/auth/v1/health",
    tag = "supabase",
    responses((status = 200, description = "Serving", body = HealthBody)),
)]
async fn health(State(state): State<AppState>) -> Json<HealthBody> {
    Json(HealthBody {
        version: format!("v{}", state.settings.version),
        name: "GoTrue",
        description: "GoTrue is a user registration and authentication API",
    })
}

#[utoipa::path(
    get,
    path = "/auth/v1/.well-known/jwks.json",
    tag = "supabase",
    responses(
        (status = 200, description = "The public keys that verify access tokens of both surfaces; empty when only the HS256 secret signs", body = super::jwks::JwksResponse,
            headers(("cache-control" = String, description = "`public, max-age=600`, as GoTrue"))),
    ),
)]
async fn jwks(state: State<AppState>) -> Response {
    let mut response = super::jwks::jwks(state).await;
    // GoTrue's lifetime; the Python client caches the set for as long anyway.
    response.headers_mut().insert(
        axum::http::header::CACHE_CONTROL,
        axum::http::HeaderValue::from_static("public, max-age=600"),
    );
    response
}

/// `GET /settings`: which providers are on (`email` only) and the sign-up switches.
#[derive(ToSchema)]
#[schema(as = Settings)]
#[expect(dead_code, reason = "the schema of the JSON `settings` writes")]
struct SettingsBody {
    /// Every provider GoTrue knows, `true` for `email` only.
    #[schema(value_type = Object)]
    external: Value,
    disable_signup: bool,
    mailer_autoconfirm: bool,
    phone_autoconfirm: bool,
    sms_provider: String,
    saml_enabled: bool,
}

#[utoipa::path(
    get,
    path = "/auth/v1/settings",
    tag = "supabase",
    responses((status = 200, description = "The public settings", body = SettingsBody)),
)]
async fn settings(State(state): State<AppState>) -> Json<Value> {
    let providers = [
        "anonymous_users",
        "apple",
        "azure",
        "bitbucket",
        "discord",
        "facebook",
        "figma",
        "fly",
        "github",
        "gitlab",
        "google",
        "keycloak",
        "kakao",
        "linkedin",
        "linkedin_oidc",
        "notion",
        "spotify",
        "slack",
        "slack_oidc",
        "workos",
        "twitch",
        "twitter",
        "x",
        "zoom",
        "phone",
    ];
    let mut external: serde_json::Map<String, Value> = providers
        .iter()
        .map(|name| ((*name).to_string(), Value::Bool(false)))
        .collect();
    external.insert("email".into(), Value::Bool(true));
    Json(json!({
        "external": external,
        "disable_signup": state.supabase.settings().disable_signup,
        "mailer_autoconfirm": state.supabase.settings().mailer_autoconfirm,
        "phone_autoconfirm": false,
        "sms_provider": "",
        "saml_enabled": false,
        "saml_private_key_next_configured": false,
        "passkeys_enabled": false,
    }))
}

/// Unknown keys (`gotrue_meta_security`, …) are ignored, as GoTrue does.
#[derive(Deserialize, ToSchema)]
struct SignUpBody {
    #[serde(flatten)]
    pkce: PkceFields,
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    /// Phone sign-up is off: any non-empty value is `phone_provider_disabled`.
    #[serde(default)]
    phone: Option<String>,
    /// The deployment's password policy applies (both surfaces share it).
    #[serde(default)]
    password: Option<String>,
    /// user_metadata: any object (at most 4 KiB), kept under GoTrue's identity data; `full_name`
    /// and `avatar_url` are the profile.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
}

/// GoTrue's order: sign-ups allowed, a password, its strength, then the address, then `data`
/// (`user_metadata`: free keys; `full_name` and `avatar_url` are the account's profile).
fn registration(state: &AppState, body: SignUpBody) -> Result<Registration, GotrueError> {
    let password = body
        .password
        .filter(|p| !p.is_empty())
        .ok_or_else(|| GotrueError::validation("Signup requires a valid password"))?;
    let password = checked_password(state, &password)?;
    if body.phone.is_some_and(|p| !p.is_empty()) {
        return Err(GotrueError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone_provider_disabled",
            "Phone signups are disabled",
        ));
    }
    let Some(raw_email) = body.email.filter(|e| !e.is_empty()) else {
        return Err(GotrueError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "anonymous_provider_disabled",
            "Anonymous sign-ins are disabled",
        ));
    };
    let email = Email::parse(&raw_email)
        .map_err(|_| GotrueError::validation("Unable to validate email address: invalid format"))?;
    let mut data = user_data(body.data)?.unwrap_or_default();
    let profile = take_profile(&mut data)?;
    Ok(Registration {
        email,
        password,
        display_name: profile.display_name.flatten(),
        avatar_url: profile.avatar_url.flatten(),
        supabase_data: Some(data),
    })
}

/// A new password under the deployment's policy, refused GoTrue's way: over 72 bytes 400
/// `validation_failed` before anything else, then 422 `weak_password` naming every broken rule.
pub(super) fn checked_password(
    state: &AppState,
    password: &str,
) -> Result<NewPassword, GotrueError> {
    if password.len() > error::MAX_PASSWORD_BYTES {
        return Err(GotrueError::password_too_long());
    }
    let policy = state.auth.password_policy();
    policy
        .check(password)
        .map_err(|_| GotrueError::weak_password(policy.violations(password)))
}

/// `data` as a metadata object; absent or `null` is none.
pub(super) fn user_data(data: Option<Value>) -> Result<Option<Metadata>, GotrueError> {
    match data {
        None | Some(Value::Null) => Ok(None),
        Some(value) => Ok(Some(parse_metadata("data", value)?)),
    }
}

/// What `/signup` answers: a session with auto-confirm, the bare user without.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = SignUpAnswer)]
#[expect(dead_code, reason = "the schema of the two bodies `sign_up` writes")]
enum SignUpAnswer {
    Session(SupabaseSession),
    User(SupabaseUser),
}

/// A session with auto-confirm; otherwise the bare user (GoTrue's body, which the clients
/// read as "check your mail").
#[utoipa::path(
    post,
    path = "/auth/v1/signup",
    tag = "supabase",
    params(RedirectQuery),
    request_body = SignUpBody,
    responses(
        (status = 200, description = "`VELRO_MAILER_AUTOCONFIRM=true` (default): a `Session`, signed up and signed in. `false`: the bare `User`, unconfirmed, with `confirmation_sent_at`, and a confirmation mail (`type=signup` link and code). A taken address answers a stand-in `User` (random `id`, `identities: []`); one still awaiting confirmation is mailed again", body = SignUpAnswer),
        (status = 422, description = "`weak_password`, `user_already_exists`, `signup_disabled`, `phone_provider_disabled`, `anonymous_provider_disabled`", body = ErrorBody),
        (status = 429, description = "`over_email_send_rate_limit` (an address awaiting confirmation, within 60 s of the last mail), `over_request_rate_limit`", body = ErrorBody),
    ),
)]
async fn sign_up(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
    GotrueJson(mut body): GotrueJson<SignUpBody>,
) -> Result<Response, GotrueError> {
    state.supabase.check_signup_allowed()?;
    let pkce = std::mem::take(&mut body.pkce);
    let registration = registration(&state, body)?;
    let pkce = pkce.parse()?;
    let redirect_to = query_value(query.as_deref(), "redirect_to");
    let outcome = state
        .supabase
        .sign_up(registration, redirect_to.as_deref(), pkce.as_ref(), client)
        .await?;
    Ok(match outcome {
        SignUp::Session(issued) => {
            Json(SupabaseSession::new(issued, audience(&state))).into_response()
        }
        SignUp::Unconfirmed(user) => {
            Json(SupabaseUser::with_mail(&user, audience(&state))).into_response()
        }
    })
}

/// One body for both grants: `email` and `password` for `password`, `refresh_token` for
/// `refresh_token`.
#[derive(Deserialize, ToSchema)]
struct TokenBody {
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    /// `grant_type=pkce`: the `code` a PKCE mail link landed with.
    #[serde(default)]
    auth_code: Option<String>,
    /// `grant_type=pkce`: the verifier the `code_challenge` was made from.
    #[serde(default)]
    code_verifier: Option<String>,
}

/// `grant_type` is a query parameter, as GoTrue reads it.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "the schema of the query `token` reads")]
struct TokenQuery {
    #[param(inline)]
    grant_type: GrantType,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
enum GrantType {
    Password,
    RefreshToken,
    Pkce,
}

#[utoipa::path(
    post,
    path = "/auth/v1/token",
    tag = "supabase",
    params(TokenQuery),
    request_body = TokenBody,
    responses(
        (status = 200, description = "Signed in, or the session's next pair (the refresh token rotates), or (`pkce`) the session an auth code and its verifier were exchanged for (the code is spent)", body = SupabaseSession),
        (status = 400, description = "`invalid_credentials` (unknown email or wrong password alike; also an unsupported grant), `user_banned`, `refresh_token_not_found`, `refresh_token_already_used`, `validation_failed` (also `pkce` without `auth_code` or `code_verifier`), `bad_code_verifier` (`pkce`: the verifier does not match the challenge; the code stays usable), `phone_provider_disabled`", body = ErrorBody),
        (status = 404, description = "`flow_state_not_found` (`pkce`: the auth code is unknown or spent)", body = ErrorBody),
        (status = 422, description = "`flow_state_expired` (`pkce`: the code was issued more than 300 s ago)", body = ErrorBody),
    ),
)]
async fn token(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
    GotrueJson(body): GotrueJson<TokenBody>,
) -> Result<Json<SupabaseSession>, GotrueError> {
    let issued = match query_value(query.as_deref(), "grant_type").as_deref() {
        Some("password") => {
            let email = body.email.filter(|e| !e.is_empty());
            let phone = body.phone.filter(|p| !p.is_empty());
            let email = match (email, phone) {
                (Some(_), Some(_)) => {
                    return Err(GotrueError::validation(
                        "Only an email address or phone number should be provided",
                    ))
                }
                (None, None) => return Err(GotrueError::validation("missing email or phone")),
                (None, Some(_)) => {
                    return Err(GotrueError::new(
                        StatusCode::BAD_REQUEST,
                        "phone_provider_disabled",
                        "Phone logins are disabled",
                    ))
                }
                (Some(email), None) => email,
            };
            // An address that cannot exist is an unknown user: the same answer, no hint.
            let Ok(email) = Email::parse(&email) else {
                return Err(velro_core::AuthError::InvalidCredentials.into());
            };
            let password = Secret::new(body.password.unwrap_or_default());
            state.supabase.sign_in(email, password, client).await?
        }
        Some("refresh_token") => {
            let presented = body
                .refresh_token
                .filter(|t| !t.is_empty())
                .ok_or_else(|| GotrueError::validation("Refresh token is not valid"))?;
            state
                .supabase
                .refresh(Secret::new(presented), client)
                .await?
        }
        Some("pkce") => {
            let auth_code = body.auth_code.unwrap_or_default();
            let verifier = body.code_verifier.unwrap_or_default();
            if auth_code.is_empty() || verifier.is_empty() {
                return Err(GotrueError::validation(
                    "invalid request: both auth code and code verifier should be non-empty",
                ));
            }
            state
                .supabase
                .exchange_auth_code(&auth_code, &verifier, client)
                .await?
        }
        _ => {
            return Err(GotrueError::new(
                StatusCode::BAD_REQUEST,
                "invalid_credentials",
                "unsupported_grant_type",
            ))
        }
    };
    Ok(Json(SupabaseSession::new(issued, audience(&state))))
}

#[utoipa::path(
    get,
    path = "/auth/v1/user",
    tag = "supabase",
    responses((status = 200, description = "The caller, as of now", body = SupabaseUser)),
    security(("supabase_user" = [])),
)]
async fn get_user(
    State(state): State<AppState>,
    SupabaseCaller(caller): SupabaseCaller,
) -> Result<Json<SupabaseUser>, GotrueError> {
    let user = state.supabase.with_mail_state(caller.user.clone()).await?;
    Ok(Json(SupabaseUser::with_mail(&user, audience(&state))))
}

#[derive(Deserialize, ToSchema)]
struct UpdateUserBody {
    /// With a new `email`: the change mail's link is a PKCE one.
    #[serde(flatten)]
    pkce: PkceFields,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    /// A new password (no current password needed, as in GoTrue); other sessions end.
    #[serde(default)]
    password: Option<String>,
    /// Merged into user_metadata: top-level keys replaced, `null` deletes one (`full_name`
    /// and `avatar_url` are also the profile).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// Admins only: any object is 403 `not_admin`; `null` is no change.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    app_metadata: Option<Value>,
}

#[utoipa::path(
    put,
    path = "/auth/v1/user",
    tag = "supabase",
    params(RedirectQuery),
    request_body = UpdateUserBody,
    responses(
        (status = 200, description = "The updated user. A new `email` is not applied yet: a mail goes to the new address and, with secure email change (the default), one to the current address (each a `type=email_change` link and code); the answer shows `new_email` and `email_change_sent_at` until `verify` `type: email_change` has confirmed both (or the new one, with the setting off)", body = SupabaseUser),
        (status = 403, description = "`not_admin` (`app_metadata` given), `bad_jwt`, `session_not_found`, `user_not_found`, `user_banned`", body = ErrorBody),
        (status = 422, description = "`email_exists` (the new address belongs to another account), `weak_password`, `same_password`, `phone_provider_disabled`", body = ErrorBody),
        (status = 429, description = "`over_email_send_rate_limit` (an email change within 60 s of the last mail), `over_request_rate_limit`", body = ErrorBody),
    ),
    security(("supabase_user" = [])),
)]
async fn update_user(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
    SupabaseCaller(caller): SupabaseCaller,
    GotrueJson(body): GotrueJson<UpdateUserBody>,
) -> Result<Json<SupabaseUser>, GotrueError> {
    let email = body
        .email
        .filter(|e| !e.is_empty())
        .map(|email| {
            Email::parse(&email).map_err(|_| {
                GotrueError::validation("Unable to validate email address: invalid format")
            })
        })
        .transpose()?;
    if body.phone.is_some_and(|p| !p.is_empty()) {
        return Err(GotrueError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "phone_provider_disabled",
            "Phone changes are disabled",
        ));
    }
    let password = body
        .password
        .map(|password| {
            // The email part of the policy is the service's to check.
            checked_password(&state, &password)
        })
        .transpose()?;
    let pkce = body.pkce.parse()?;
    let change = SupabaseUserChange {
        password,
        email,
        data: user_data(body.data)?,
        // GoTrue refuses any object here, `{}` included; `null` is no object.
        app_metadata: body.app_metadata.is_some_and(|value| !value.is_null()),
    };
    let redirect_to = query_value(query.as_deref(), "redirect_to");
    let user = state
        .supabase
        .update_user(
            &caller,
            change,
            redirect_to.as_deref(),
            pkce.as_ref(),
            client,
        )
        .await?;
    Ok(Json(SupabaseUser::with_mail(&user, audience(&state))))
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "the schema of the query `logout` reads")]
struct LogoutQuery {
    /// `global` (default): every session of the user, on both surfaces; `local`: this one;
    /// `others`: every other one.
    #[param(inline)]
    scope: Option<ScopeParam>,
}

#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum ScopeParam {
    Global,
    Local,
    Others,
}

/// GoTrue's default scope is `global` (the v1 API's is `local`).
#[utoipa::path(
    post,
    path = "/auth/v1/logout",
    tag = "supabase",
    params(LogoutQuery),
    responses((status = 204, description = "Signed out; the access tokens of the ended sessions are refused from the next request on")),
    security(("supabase_user" = [])),
)]
async fn logout(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    SupabaseCaller(caller): SupabaseCaller,
) -> Result<Response, GotrueError> {
    let scope = match query_value(query.as_deref(), "scope").as_deref() {
        None | Some("" | "global") => LogoutScope::Global,
        Some("local") => LogoutScope::Local,
        Some("others") => LogoutScope::Others,
        Some(other) => {
            return Err(GotrueError::validation(format!(
                "Unsupported logout scope {other:?}"
            )))
        }
    };
    state.supabase.logout(&caller, scope).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// An address in a mail-flow body, with GoTrue's answers for a missing or malformed one.
fn mail_address(email: Option<String>) -> Result<Email, GotrueError> {
    let email = email
        .filter(|e| !e.is_empty())
        .ok_or_else(|| GotrueError::validation("An email address is required"))?;
    Email::parse(&email)
        .map_err(|_| GotrueError::validation("Unable to validate email address: invalid format"))
}

#[derive(Deserialize, ToSchema)]
struct RecoverBody {
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    #[serde(flatten)]
    pkce: PkceFields,
}

/// `redirect_to` on the mail flows: where the link lands; a URL not allowed by the site URL
/// and `VELRO_URI_ALLOW_LIST` is replaced by the site URL (never an open redirect).
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "the schema of the query the mail flows read")]
struct RedirectQuery {
    redirect_to: Option<String>,
}

/// Always `{}` for a well-formed address: whether it has an account never shows.
#[utoipa::path(
    post,
    path = "/auth/v1/recover",
    tag = "supabase",
    params(RedirectQuery),
    request_body = RecoverBody,
    responses((status = 200, description = "Mailed if the address has an account; the same answer either way", body = Empty)),
)]
async fn recover(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
    GotrueJson(body): GotrueJson<RecoverBody>,
) -> Result<Json<Empty>, GotrueError> {
    let email = mail_address(body.email)?;
    let pkce = body.pkce.parse()?;
    let redirect_to = query_value(query.as_deref(), "redirect_to");
    state
        .supabase
        .recover(email, redirect_to.as_deref(), pkce.as_ref(), client)
        .await?;
    Ok(Json(Empty {}))
}

/// The verification types GoTrue knows. Velro issues tokens of the email kinds; the phone
/// ones name tokens it never issued, so they find none (`otp_expired`) rather than a different
/// answer.
fn verification_type(raw: Option<&str>) -> Result<Option<OtpKind>, GotrueError> {
    match raw {
        Some("recovery") => Ok(Some(OtpKind::Recovery)),
        Some("magiclink") => Ok(Some(OtpKind::MagicLink)),
        Some("email") => Ok(Some(OtpKind::Email)),
        Some("signup") => Ok(Some(OtpKind::Signup)),
        Some("invite") => Ok(Some(OtpKind::Invite)),
        Some("email_change") => Ok(Some(OtpKind::EmailChange)),
        Some("sms" | "phone_change") => Ok(None),
        _ => Err(GotrueError::validation("Unsupported verification type")),
    }
}

#[derive(Deserialize, ToSchema)]
struct VerifyBody {
    /// `recovery`, `magiclink`, `signup`, `invite`, `email` (either kind) or `email_change`
    /// (with the new address and its code, or the link); `sms` and `phone_change` are read but
    /// find no token.
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    token_hash: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

#[utoipa::path(
    post,
    path = "/auth/v1/verify",
    tag = "supabase",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The code or token hash was good: a session (the token is spent); for the first half of a secure email change, `{\"msg\": …, \"code\": \"200\"}` and no session", body = SupabaseSession),
        (status = 403, description = "`otp_expired`: unknown, spent, expired or of another type", body = ErrorBody),
        (status = 422, description = "`email_exists`: an email change whose new address was taken meanwhile", body = ErrorBody),
    ),
)]
async fn verify(
    State(state): State<AppState>,
    Client(client): Client,
    GotrueJson(body): GotrueJson<VerifyBody>,
) -> Result<Response, GotrueError> {
    let kind = verification_type(body.kind.as_deref())?;
    let token_hash = body.token_hash.filter(|t| !t.is_empty());
    let issued = if let Some(token_hash) = token_hash {
        if body.email.is_some_and(|e| !e.is_empty()) || body.phone.is_some_and(|p| !p.is_empty()) {
            return Err(GotrueError::validation(
                "Only the token_hash and type should be provided",
            ));
        }
        let Some(kind) = kind else {
            return Err(SupabaseError::OtpInvalid { link: true }.into());
        };
        state
            .supabase
            .verify_link(&token_hash, kind, client)
            .await?
    } else {
        if body.phone.is_some_and(|p| !p.is_empty()) {
            return Err(GotrueError::new(
                StatusCode::BAD_REQUEST,
                "phone_provider_disabled",
                "Phone logins are disabled",
            ));
        }
        let email = mail_address(body.email)?;
        let token = body.token.unwrap_or_default();
        let Some(kind) = kind else {
            return Err(SupabaseError::OtpInvalid { link: false }.into());
        };
        state
            .supabase
            .verify_code(email, &token, kind, client)
            .await?
    };
    Ok(match issued {
        Verified::Session(issued) => {
            Json(SupabaseSession::new(*issued, audience(&state))).into_response()
        }
        Verified::OtherAddressAwaited => Json(OtherAddressAwaited {
            msg: OTHER_ADDRESS_AWAITED,
            code: "200",
        })
        .into_response(),
    })
}

/// GoTrue's words for the first half of a secure email change (`singleConfirmationAccepted`).
const OTHER_ADDRESS_AWAITED: &str =
    "Confirmation link accepted. Please proceed to confirm link sent to the other email";

/// `verify`'s answer to the first half of a secure email change: GoTrue's body, whose `code`
/// is the status as text.
#[derive(Serialize, ToSchema)]
struct OtherAddressAwaited {
    #[schema(
        example = "Confirmation link accepted. Please proceed to confirm link sent to the other email"
    )]
    msg: &'static str,
    #[schema(example = "200")]
    code: &'static str,
}

/// `landing` with `pairs` set in its query as GoTrue sets them (`url.Values.Set`, then
/// `Encode`: keys already there replaced, keys sorted), the rest of the URL as it was.
fn with_query_pairs(landing: &str, pairs: &[(&str, String)]) -> String {
    let (base, query) = landing.split_once('?').unwrap_or((landing, ""));
    let mut all: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .filter(|(key, _)| !pairs.iter().any(|(name, _)| name == key))
        .map(|(key, value)| (key.into_owned(), value.into_owned()))
        .chain(
            pairs
                .iter()
                .map(|(key, value)| ((*key).to_string(), value.clone())),
        )
        .collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    let mut encoded = url::form_urlencoded::Serializer::new(String::new());
    for (key, value) in &all {
        encoded.append_pair(key, value);
    }
    format!("{base}?{}", encoded.finish())
}

/// `GET /verify`, the mail link: 303 to `redirect_to` (if the redirect policy allows it, else
/// the site URL) with the session, or the error, in the fragment, where it never reaches a
/// server log. A PKCE link (`pkce_…` token) lands with `?code=<auth code>` instead, which is
/// worth nothing without the verifier.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "the schema of the query `verify_redirect` reads")]
struct VerifyLinkQuery {
    /// The token hash from the mail link.
    token: Option<String>,
    /// `magiclink`, `recovery`, `email`, …
    #[serde(rename = "type")]
    kind: Option<String>,
    /// Where to land; an URL the redirect policy does not allow lands on the site URL.
    redirect_to: Option<String>,
}

#[utoipa::path(
    get,
    path = "/auth/v1/verify",
    tag = "supabase",
    params(VerifyLinkQuery),
    responses(
        (status = 303, description = "To `redirect_to` (when allowed) or the site URL, with the session or `error`, `error_code`, `error_description` in the fragment; a PKCE link (`pkce_…` token) with `?code=<auth code>` in the query instead of a session (errors then also in the query)",
            headers(("location" = String, description = "The landing URL with the fragment"))),
    ),
)]
async fn verify_redirect(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
) -> Response {
    let query = query.as_deref();
    let redirect_to = query_value(query, "redirect_to");
    let target = state
        .supabase
        .settings()
        .redirects
        .resolve(redirect_to.as_deref());
    let kind = query_value(query, "type");
    let token = query_value(query, "token").unwrap_or_default();
    let outcome = async {
        let kind = verification_type(kind.as_deref())?;
        let Some(kind) = kind else {
            return Err(SupabaseError::OtpInvalid { link: true }.into());
        };
        Ok::<LinkLanding, GotrueError>(state.supabase.follow_link(&token, kind, client).await?)
    }
    .await;
    let mut landing = target.split('#').next().unwrap_or_default().to_string();
    let mut fragment = url::form_urlencoded::Serializer::new(String::new());
    match outcome {
        // GoTrue's `prepRedirectURL`: the message, no session (in the query too for PKCE).
        Ok(LinkLanding::OtherAddressAwaited) => {
            if token.starts_with(PKCE_PREFIX) {
                landing =
                    with_query_pairs(&landing, &[("message", OTHER_ADDRESS_AWAITED.to_string())]);
            }
            fragment
                .append_pair("message", OTHER_ADDRESS_AWAITED)
                .append_pair("sb", "");
        }
        Ok(LinkLanding::Session(issued)) => {
            // GoTrue's key order (sorted), with its `sb` marker.
            fragment
                .append_pair("access_token", issued.access_token.expose())
                .append_pair("expires_at", &issued.expires_at.to_string())
                .append_pair("expires_in", &issued.expires_in.to_string())
                .append_pair("refresh_token", issued.refresh_token.expose())
                .append_pair("sb", "")
                .append_pair("token_type", "bearer")
                .append_pair("type", kind.as_deref().unwrap_or_default());
        }
        // GoTrue's PKCE landing: the code in the query, no fragment.
        Ok(LinkLanding::AuthCode(code)) => {
            landing = with_query_pairs(&landing, &[("code", code.expose().to_string())]);
        }
        Err(error) => {
            let parameters = error.redirect_parameters();
            // A PKCE client reads the error from the query (GoTrue puts it in both).
            if token.starts_with(PKCE_PREFIX) {
                landing = with_query_pairs(&landing, &parameters);
            }
            for (key, value) in parameters {
                fragment.append_pair(key, &value);
            }
            fragment.append_pair("sb", "");
        }
    }
    let fragment = fragment.finish();
    let mut location = landing;
    if !fragment.is_empty() {
        location.push('#');
        location.push_str(&fragment);
    }
    match axum::http::HeaderValue::from_str(&location) {
        Ok(location) => {
            let mut response = StatusCode::SEE_OTHER.into_response();
            response
                .headers_mut()
                .insert(axum::http::header::LOCATION, location);
            response
        }
        Err(_) => GotrueError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unexpected_failure",
            "Unexpected failure, please check server logs for more information",
        )
        .into_response(),
    }
}

#[derive(Deserialize, ToSchema)]
struct OtpBody {
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
    /// user_metadata for an account this creates, kept as `/signup` keeps it.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// Default `true`: an unknown address gets an account.
    #[serde(default)]
    create_user: Option<bool>,
    #[serde(flatten)]
    pkce: PkceFields,
}

/// Email only: a magic link and a code in one mail, `{}` as GoTrue answers.
#[utoipa::path(
    post,
    path = "/auth/v1/otp",
    tag = "supabase",
    params(RedirectQuery),
    request_body = OtpBody,
    responses(
        (status = 200, description = "Mailed", body = Empty),
        (status = 422, description = "`otp_disabled` (no account and `create_user` false), `signup_disabled`", body = ErrorBody),
    ),
)]
async fn otp(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
    GotrueJson(body): GotrueJson<OtpBody>,
) -> Result<Json<Empty>, GotrueError> {
    if body.phone.is_some_and(|p| !p.is_empty()) {
        return Err(GotrueError::new(
            StatusCode::BAD_REQUEST,
            "phone_provider_disabled",
            "Phone logins are disabled",
        ));
    }
    let email = mail_address(body.email)?;
    let pkce = body.pkce.parse()?;
    // A sign-up's `data`, kept under GoTrue's identity data as `/signup` keeps it.
    let profile = PendingProfile {
        identity_data: true,
        ..links::pending_profile(body.data)?
    };
    let redirect_to = query_value(query.as_deref(), "redirect_to");
    state
        .supabase
        .send_magic_link(
            email,
            body.create_user.unwrap_or(true),
            profile,
            redirect_to.as_deref(),
            pkce.as_ref(),
            client,
        )
        .await?;
    Ok(Json(Empty {}))
}
