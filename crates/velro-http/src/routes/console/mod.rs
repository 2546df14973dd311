//! `/admin`: the operations dashboard for on-call. Signed in with an admin account or the
//! service key into a server-side console session (cookie), with a CSRF token on every form.
//! Pages are maud templates compiled into the binary; charts are SVG drawn on the server; the
//! only script is the few inline lines that reload them. Nothing is loaded from another host.

mod charts;
mod pages;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use uuid::Uuid;
use velro_core::domain::{AdminUserChange, Email, Role, SessionId, UserId};
use velro_core::service::{ConsoleService, Login, Operator};
use velro_core::{AuthError, Secret};

use crate::error::BodyIsFinal;
use crate::extract::{BoundedBytes, Client, QueryParams};
use crate::{ApiError, AppState};

const COOKIE: &str = "velro_console";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/admin", get(dashboard))
        .route("/admin/sign-in", post(sign_in))
        .route("/admin/sign-out", post(sign_out))
        .route("/admin/charts/{chart}", get(chart))
        .route("/admin/requests", get(requests_fragment))
        .route("/admin/flags", post(set_flag))
        // Not /admin/users: with the Supabase surface served at the root, GoTrue's admin API
        // is there.
        .route("/admin/accounts", get(find_user))
        .route("/admin/accounts/{id}", post(update_user))
        .route("/admin/accounts/{id}/revoke", post(revoke_sessions))
}

/// A signed-in operator, with the cookie's value (for the CSRF token).
pub(super) struct Console {
    operator: Operator,
    token: String,
}

impl Console {
    fn csrf(&self) -> String {
        ConsoleService::csrf_token(&self.token)
    }
}

fn cookie_value(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == COOKIE && !value.is_empty()).then_some(value)
        })
}

/// The operator behind the request's console cookie, if any; a person's request (`activity`)
/// restarts the idle timer, the page's own reloads do not.
async fn operator(
    state: &AppState,
    headers: &HeaderMap,
    activity: bool,
) -> Result<Option<Console>, ApiError> {
    let Some(token) = cookie_value(headers) else {
        return Ok(None);
    };
    Ok(state
        .console
        .resume(token, activity)
        .await?
        .map(|operator| Console {
            operator,
            token: token.to_string(),
        }))
}

/// As [`operator`] for a person's request that needs one: 401 without.
async fn require(state: &AppState, headers: &HeaderMap) -> Result<Console, ApiError> {
    operator(state, headers, true)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// As [`require`] for the page's own reloads, which leave the idle timer alone.
async fn require_quietly(state: &AppState, headers: &HeaderMap) -> Result<Console, ApiError> {
    operator(state, headers, false)
        .await?
        .ok_or(ApiError::Unauthorized)
}

/// A form body's fields; the CSRF field must match the session's token.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(body: &Bytes) -> Self {
        Self(
            url::form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
            .filter(|value| !value.is_empty())
    }

    /// A state-changing form from this console session: its token or 403.
    fn checked(body: &Bytes, console: &Console) -> Result<Self, ApiError> {
        let form = Self::parse(body);
        let presented = form.get("csrf").unwrap_or_default();
        if ConsoleService::csrf_matches(&console.token, presented) {
            Ok(form)
        } else {
            tracing::warn!(actor = %console.operator.actor(), "console form refused: CSRF token missing or wrong");
            Err(ApiError::Auth(AuthError::Forbidden))
        }
    }
}

/// The cookie is `Secure` when the browser reached us over TLS: a trusted proxy says so.
fn secure(state: &AppState, parts: &Parts) -> bool {
    state.settings.trusted_proxies.forwarded_https(parts)
}

/// A browser-session cookie (no `Max-Age`): the server's idle timeout ends the session, and a
/// fixed lifetime in the browser would end an active one. `clear` expires it at once.
fn set_cookie(value: &str, secure: bool, clear: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    let expiry = if clear { "; Max-Age=0" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE}={value}; Path=/admin; HttpOnly; SameSite=Strict{expiry}{secure}"
    ))
    .ok()
}

fn html(markup: maud::Markup) -> Response {
    static POLICY: std::sync::OnceLock<Option<HeaderValue>> = std::sync::OnceLock::new();
    let mut response = (
        [(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        axum::response::Html(markup.into_string()),
    )
        .into_response();
    if let Some(policy) =
        POLICY.get_or_init(|| HeaderValue::from_str(&pages::content_security_policy()).ok())
    {
        response
            .headers_mut()
            .insert(header::CONTENT_SECURITY_POLICY, policy.clone());
    }
    response.extensions_mut().insert(BodyIsFinal);
    response
}

/// A page for a failure, with the status the API would answer (and its `Retry-After`).
fn html_failure(markup: maud::Markup, error: AuthError) -> Response {
    let retry = match &error {
        AuthError::RateLimited { retry_after_secs }
        | AuthError::Overloaded { retry_after_secs } => Some(*retry_after_secs),
        _ => None,
    };
    let status = ApiError::Auth(error).into_response().status();
    let mut response = html(markup);
    *response.status_mut() = status;
    if let Some(secs) = retry.and_then(|secs| HeaderValue::from_str(&secs.to_string()).ok()) {
        response.headers_mut().insert(header::RETRY_AFTER, secs);
    }
    response
}

async fn dashboard(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Some(console) = operator(&state, &headers, true).await? else {
        return Ok(html(pages::sign_in(None)));
    };
    let changes = state.console.recent_flag_changes().await?;
    Ok(html(pages::dashboard(
        &console,
        state.admin.cache_enabled(),
        &changes,
        &state.monitor.recent_errors(),
        &state.monitor.slowest(),
    )))
}

async fn sign_in(
    State(state): State<AppState>,
    Client(client): Client,
    parts: Parts,
    BoundedBytes(body): BoundedBytes,
) -> Result<Response, ApiError> {
    let form = Form::parse(&body);
    let outcome = match (
        form.get("service_key"),
        form.get("email"),
        form.get("password"),
    ) {
        (Some(key), _, _) => state.console.sign_in_with_key(key, &client).await,
        (None, Some(email), Some(password)) => match Email::parse(email) {
            Ok(email) => {
                let login = Login {
                    email,
                    password: Secret::new(password.to_string()),
                    remember_me: false,
                };
                state.console.sign_in_with_password(login, client).await
            }
            Err(_) => Err(AuthError::InvalidCredentials),
        },
        _ => Err(AuthError::InvalidCredentials),
    };
    let signed_in = match outcome {
        Ok(signed_in) => signed_in,
        Err(error @ (AuthError::Internal(_) | AuthError::Unavailable(_))) => {
            return Err(ApiError::Auth(error))
        }
        Err(error) => {
            let message = match &error {
                AuthError::Forbidden => "This account is not an administrator.",
                AuthError::RateLimited { .. } => "Too many attempts; wait and try again.",
                AuthError::Overloaded { .. } => "The service is busy; try again shortly.",
                AuthError::AccountDisabled => "This account is disabled.",
                _ => "Wrong email, password or service key.",
            };
            return Ok(html_failure(pages::sign_in(Some(message)), error));
        }
    };
    let mut response = Redirect::to("/admin").into_response();
    if let Some(cookie) = set_cookie(signed_in.token.expose(), secure(&state, &parts), false) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn sign_out(
    State(state): State<AppState>,
    parts: Parts,
    BoundedBytes(body): BoundedBytes,
) -> Result<Response, ApiError> {
    let console = require(&state, &parts.headers).await?;
    Form::checked(&body, &console)?;
    state.console.sign_out(&console.token).await?;
    tracing::info!(actor = %console.operator.actor(), "console sign-out");
    let mut response = Redirect::to("/admin").into_response();
    if let Some(cookie) = set_cookie("", secure(&state, &parts), true) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

async fn chart(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(chart): Path<String>,
) -> Result<Response, ApiError> {
    require_quietly(&state, &headers).await?;
    let name = chart.strip_suffix(".svg").ok_or(ApiError::NotFound)?;
    let now = time::OffsetDateTime::now_utc();
    let samples = state.monitor.series(now);
    let svg = charts::render(name, &samples, now)
        .ok_or(ApiError::NotFound)?
        .map_err(|error| {
            ApiError::Auth(AuthError::Internal(format!("chart {name}: {error}").into()))
        })?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("image/svg+xml"),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        svg,
    )
        .into_response())
}

async fn requests_fragment(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_quietly(&state, &headers).await?;
    Ok(html(pages::requests(
        &state.monitor.recent_errors(),
        &state.monitor.slowest(),
    )))
}

async fn set_flag(
    State(state): State<AppState>,
    headers: HeaderMap,
    BoundedBytes(body): BoundedBytes,
) -> Result<Response, ApiError> {
    let console = require(&state, &headers).await?;
    let form = Form::checked(&body, &console)?;
    let enabled = match (form.get("flag"), form.get("value")) {
        (Some("cache"), Some("on")) => true,
        (Some("cache"), Some("off")) => false,
        _ => {
            return Err(ApiError::field(
                "value",
                "must be on or off for the flag cache",
            ))
        }
    };
    state
        .console
        .set_cache_flag(&console.operator, enabled)
        .await?;
    Ok(Redirect::to("/admin#flags").into_response())
}

async fn find_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    query: QueryParams,
) -> Result<Response, ApiError> {
    let console = require(&state, &headers).await?;
    let needle = query.get("q")?.unwrap_or_default().to_string();
    let found = if needle.is_empty() {
        None
    } else {
        state.console.find_user(&needle).await?
    };
    Ok(html(pages::user(&console, &needle, found.as_ref())))
}

fn user_id(raw: &str) -> Result<UserId, ApiError> {
    Uuid::parse_str(raw)
        .map(UserId)
        .map_err(|_| ApiError::NotFound)
}

fn back_to(user_id: UserId) -> Response {
    Redirect::to(&format!("/admin/accounts?q={user_id}")).into_response()
}

async fn update_user(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    BoundedBytes(body): BoundedBytes,
) -> Result<Response, ApiError> {
    let console = require(&state, &headers).await?;
    let form = Form::checked(&body, &console)?;
    let user_id = user_id(&id)?;
    let mut change = AdminUserChange::default();
    match form.get("action") {
        Some("disable") => change.disabled = Some(true),
        Some("enable") => change.disabled = Some(false),
        Some("role") => {
            let role = form.get("role").unwrap_or_default();
            change.role = Some(
                role.parse::<Role>()
                    .map_err(|_| ApiError::field("role", "must be viewer, creator or admin"))?,
            );
        }
        Some("credits") => {
            let credits = form
                .get("credits_balance")
                .and_then(|raw| raw.trim().parse::<i64>().ok())
                .filter(|credits| *credits >= 0)
                .ok_or_else(|| ApiError::field("credits_balance", "must be zero or more"))?;
            change.credits_balance = Some(credits);
        }
        _ => {
            return Err(ApiError::field(
                "action",
                "must be disable, enable, role or credits",
            ))
        }
    }
    state.admin.update_user(user_id, &change).await?;
    tracing::info!(actor = %console.operator.actor(), %user_id, "user changed from the console");
    Ok(back_to(user_id))
}

async fn revoke_sessions(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    BoundedBytes(body): BoundedBytes,
) -> Result<Response, ApiError> {
    let console = require(&state, &headers).await?;
    let form = Form::checked(&body, &console)?;
    let user_id = user_id(&id)?;
    match form.get("session") {
        Some(session) => {
            let session = Uuid::parse_str(session).map_err(|_| ApiError::NotFound)?;
            state
                .console
                .revoke_user_session(user_id, SessionId(session))
                .await?;
        }
        None => {
            state.console.revoke_user_sessions(user_id).await?;
        }
    }
    tracing::info!(actor = %console.operator.actor(), %user_id, "sessions revoked from the console");
    Ok(back_to(user_id))
}
