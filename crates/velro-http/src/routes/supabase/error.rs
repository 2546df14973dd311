//! GoTrue's error answers: the one table from Velro's meanings to GoTrue's status, `error_code`
//! and message, and the renderer that writes the body in the shape the client's
//! `X-Supabase-Api-Version` asks for. The v1 surface's renderer is not involved here.

use std::borrow::Cow;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;
use velro_core::domain::{MetadataError, PasswordViolation, MAX_METADATA_BYTES};
use velro_core::service::SupabaseError;
use velro_core::AuthError;

use crate::error::BodyIsFinal;

const API_VERSION: HeaderName = HeaderName::from_static("x-supabase-api-version");
const ERROR_CODE: HeaderName = HeaderName::from_static("x-sb-error-code");
/// The first (and so far only) dated API version; from it on, errors are `{code, message}`.
const API_VERSION_2024: &str = "2024-01-01";

/// An error as a GoTrue client expects it.
#[derive(Debug, Clone)]
pub(crate) struct GotrueError {
    status: StatusCode,
    code: &'static str,
    message: Cow<'static, str>,
    /// Only on `weak_password`, where the clients require it.
    weak_password: Option<Vec<&'static str>>,
}

impl GotrueError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            weak_password: None,
        }
    }

    pub(crate) fn validation(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "validation_failed", message)
    }

    pub(crate) fn bad_json(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_json", message)
    }

    pub(crate) fn no_authorization() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "no_authorization",
            "This endpoint requires a valid Bearer token",
        )
    }

    /// The password policy's refusal, in GoTrue's words and reasons: every broken rule, its
    /// sentences joined by a space, each reason once (as GoTrue's `WeakPasswordError`). The
    /// policy is Velro's (one per deployment, for both surfaces).
    pub(crate) fn weak_password(violations: impl IntoIterator<Item = PasswordViolation>) -> Self {
        let mut messages = Vec::new();
        let mut reasons: Vec<&'static str> = Vec::new();
        for violation in violations {
            let (message, reason) = match violation {
                PasswordViolation::TooShort { min } => (
                    format!("Password should be at least {min} characters."),
                    "length",
                ),
                PasswordViolation::TooLong => {
                    return Self::validation("Password cannot be longer than 128 characters")
                }
                PasswordViolation::MissingCharacters { sets } => (
                    format!("Password should contain at least one character of each: {sets}."),
                    "characters",
                ),
                PasswordViolation::TooCommon => (
                    "Password is known to be weak and easy to guess, please choose a different one."
                        .to_string(),
                    "pwned",
                ),
                PasswordViolation::ContainsEmail => (
                    "Password should not be the email address or its local part.".to_string(),
                    "pwned",
                ),
            };
            messages.push(message);
            if !reasons.contains(&reason) {
                reasons.push(reason);
            }
        }
        if reasons.is_empty() {
            return Self::validation("Invalid password");
        }
        Self {
            weak_password: Some(reasons),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "weak_password",
                messages.join(" "),
            )
        }
    }

    /// GoTrue's ceiling on a new password, in bytes (bcrypt's input limit), which it applies
    /// before the policy wherever a password is set; sign-in does not look.
    pub(crate) fn password_too_long() -> Self {
        Self::validation(format!(
            "Password cannot be longer than {MAX_PASSWORD_BYTES} characters"
        ))
    }
}

/// GoTrue's `MaxPasswordLength`: 72 bytes, though its message says characters.
pub(crate) const MAX_PASSWORD_BYTES: usize = 72;

fn log_cause(error: &(dyn std::error::Error + 'static)) {
    let mut chain = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    tracing::error!(cause = %chain, "request failed");
}

impl From<AuthError> for GotrueError {
    fn from(error: AuthError) -> Self {
        use AuthError as E;
        use StatusCode as S;
        match &error {
            E::Internal(_) | E::Unavailable(_) => log_cause(&error),
            _ => {}
        }
        match error {
            // The service's own password rule (not the email), in GoTrue's words.
            E::Validation(fields)
                if fields.iter().any(|field| {
                    field
                        .message
                        .starts_with(PasswordViolation::ContainsEmail.code())
                }) =>
            {
                Self::weak_password([PasswordViolation::ContainsEmail])
            }
            E::Validation(fields) => Self::validation(
                fields
                    .first()
                    .map_or_else(|| "Invalid request".to_string(), ToString::to_string),
            ),
            E::InvalidCredentials => Self::new(
                S::BAD_REQUEST,
                "invalid_credentials",
                "Invalid login credentials",
            ),
            E::AccountDisabled => Self::new(S::BAD_REQUEST, "user_banned", "User is banned"),
            E::EmailExists => Self::new(
                S::UNPROCESSABLE_ENTITY,
                "user_already_exists",
                "User already registered",
            ),
            E::TokenMissing => Self::no_authorization(),
            E::TokenInvalid => Self::new(
                S::FORBIDDEN,
                "bad_jwt",
                "invalid JWT: unable to parse or verify signature, token is malformed or signed by another key",
            ),
            E::TokenExpired => Self::new(
                S::FORBIDDEN,
                "bad_jwt",
                "invalid JWT: unable to parse or verify signature, token has invalid claims: token is expired",
            ),
            E::SessionRevoked => Self::new(
                S::FORBIDDEN,
                "session_not_found",
                "Session from session_id claim in JWT does not exist",
            ),
            E::RefreshTokenInvalid => Self::new(
                S::BAD_REQUEST,
                "refresh_token_not_found",
                "Invalid Refresh Token: Refresh Token Not Found",
            ),
            E::RefreshTokenReused => Self::new(
                S::BAD_REQUEST,
                "refresh_token_already_used",
                "Invalid Refresh Token: Already Used",
            ),
            E::ResetTokenInvalid => Self::new(
                S::FORBIDDEN,
                "otp_expired",
                "Token has expired or is invalid",
            ),
            E::InvalidServiceKey => Self::new(
                S::FORBIDDEN,
                "bad_jwt",
                "invalid JWT: unable to parse or verify signature",
            ),
            E::Forbidden => Self::new(S::FORBIDDEN, "not_admin", "User not allowed"),
            E::NotFound => Self::new(S::NOT_FOUND, "user_not_found", "User not found"),
            E::RateLimited { .. } => Self::new(
                S::TOO_MANY_REQUESTS,
                "over_request_rate_limit",
                "Request rate limit reached",
            ),
            // 5xx, never 4xx: a client drops its session on a 4xx from a refresh.
            E::Overloaded { .. } | E::Unavailable(_) => Self::new(
                S::SERVICE_UNAVAILABLE,
                "unexpected_failure",
                "The service is busy; retry shortly",
            ),
            E::Internal(_) => Self::new(
                S::INTERNAL_SERVER_ERROR,
                "unexpected_failure",
                "Unexpected failure, please check server logs for more information",
            ),
        }
    }
}

impl From<SupabaseError> for GotrueError {
    fn from(error: SupabaseError) -> Self {
        match error {
            SupabaseError::Auth(error) => error.into(),
            SupabaseError::SignupDisabled => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "signup_disabled",
                "Signups not allowed for this instance",
            ),
            SupabaseError::SamePassword => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "same_password",
                "New password should be different from the old password.",
            ),
            SupabaseError::OtpSignupsDisabled => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "otp_disabled",
                "Signups not allowed for otp",
            ),
            SupabaseError::UserGone => Self::new(
                StatusCode::FORBIDDEN,
                "user_not_found",
                "User from sub claim in JWT does not exist",
            ),
            SupabaseError::UserBanned => {
                Self::new(StatusCode::FORBIDDEN, "user_banned", "User is banned")
            }
            SupabaseError::Metadata { field, error } => Self::validation(match error {
                MetadataError::NotAnObject => format!("{field} must be a JSON object"),
                MetadataError::TooLarge => {
                    format!("{field} is larger than {MAX_METADATA_BYTES} bytes as JSON")
                }
            }),
            SupabaseError::EmailNotConfirmed => Self::new(
                StatusCode::BAD_REQUEST,
                "email_not_confirmed",
                "Email not confirmed",
            ),
            SupabaseError::LinkUserNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "user_not_found",
                "User with this email not found",
            ),
            SupabaseError::SecureEmailChangeDisabled => {
                Self::validation("Enable secure email change to generate link for current email")
            }
            SupabaseError::EmailExists => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "email_exists",
                "A user with this email address has already been registered",
            ),
            SupabaseError::NotAdmin => Self::new(
                StatusCode::FORBIDDEN,
                "not_admin",
                "Updating app_metadata requires admin privileges",
            ),
            SupabaseError::MailTooSoon { retry_after_secs } => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "over_email_send_rate_limit",
                format!(
                    "For security purposes, you can only request this after {retry_after_secs} seconds."
                ),
            ),
            SupabaseError::FlowStateNotFound => Self::new(
                StatusCode::NOT_FOUND,
                "flow_state_not_found",
                "invalid flow state, no valid flow state found",
            ),
            SupabaseError::FlowStateExpired => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "flow_state_expired",
                "invalid flow state, flow state has expired",
            ),
            SupabaseError::BadCodeVerifier => Self::new(
                StatusCode::BAD_REQUEST,
                "bad_code_verifier",
                "code challenge does not match previously saved code verifier",
            ),
            // GoTrue wraps its 422 in a 400 here, message and all.
            SupabaseError::LinkFlowStateMissing => Self::new(
                StatusCode::BAD_REQUEST,
                "flow_state_not_found",
                "No associated flow state found. 422: No valid flow state found for user.",
            ),
            SupabaseError::MailBudgetSpent => Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "over_email_send_rate_limit",
                "email rate limit exceeded",
            ),
            SupabaseError::OtpInvalid { link } => Self::new(
                StatusCode::FORBIDDEN,
                "otp_expired",
                if link {
                    "Email link is invalid or has expired"
                } else {
                    "Token has expired or is invalid"
                },
            ),
        }
    }
}

impl GotrueError {
    /// The error as `GET /verify` hands it to the browser: OAuth's `error` for the status,
    /// GoTrue's `error_code`, the message as `error_description`.
    pub(crate) fn redirect_parameters(&self) -> [(&'static str, String); 3] {
        let error = match self.status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
            StatusCode::UNAUTHORIZED => "unauthorized_client",
            StatusCode::FORBIDDEN => "access_denied",
            _ => "server_error",
        };
        [
            ("error", error.to_string()),
            ("error_code", self.code.to_string()),
            ("error_description", self.message.to_string()),
        ]
    }
}

impl IntoResponse for GotrueError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        response.extensions_mut().insert(self);
        response
    }
}

/// The answer for a failure that did not come from a handler (a framework rejection), by status.
fn by_status(status: StatusCode) -> GotrueError {
    match status {
        StatusCode::NOT_FOUND => GotrueError::new(status, "not_found", "Not Found"),
        StatusCode::METHOD_NOT_ALLOWED => {
            GotrueError::new(status, "method_not_allowed", "Method Not Allowed")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            GotrueError::new(status, "request_entity_too_large", "Request body too large")
        }
        s if s.is_client_error() => GotrueError::validation("Bad request"),
        s => GotrueError::new(
            s,
            "unexpected_failure",
            "Unexpected failure, please check server logs for more information",
        ),
    }
}

/// Whether the client named a dated API version (both official clients send `2024-01-01`).
/// Anything unparsable counts as none, which selects the legacy body.
fn dated_version(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(&API_VERSION).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let value = value.trim();
    let is_date = value.len() == 10
        && value.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        });
    // ISO dates compare as strings.
    is_date && value >= API_VERSION_2024
}

/// Why a password was refused: `length`, `characters` or `pwned`.
#[derive(Serialize, ToSchema)]
#[schema(as = WeakPassword)]
struct WeakPasswordBody {
    #[schema(value_type = Vec<String>, min_items = 1)]
    reasons: Vec<&'static str>,
}

/// `{code, message}`: the body for clients that send `X-Supabase-Api-Version: 2024-01-01`
/// (both official clients do).
#[derive(Serialize, ToSchema)]
#[schema(as = DatedError)]
pub(crate) struct DatedBody<'a> {
    /// GoTrue's `error_code` (`validation_failed`, `invalid_credentials`, `bad_jwt`, …); also
    /// in the `x-sb-error-code` header.
    #[schema(value_type = String, example = "invalid_credentials")]
    code: &'static str,
    #[schema(value_type = String)]
    message: &'a str,
    /// Only with `weak_password`.
    #[serde(skip_serializing_if = "Option::is_none")]
    weak_password: Option<WeakPasswordBody>,
}

/// `{code: <status>, error_code, msg}`: the body for clients that send no version.
#[derive(Serialize, ToSchema)]
#[schema(as = LegacyError)]
pub(crate) struct LegacyBody<'a> {
    /// The HTTP status.
    code: u16,
    #[schema(value_type = String, example = "invalid_credentials")]
    error_code: &'static str,
    #[schema(value_type = String)]
    msg: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    weak_password: Option<WeakPasswordBody>,
}

/// Every non-2xx answer of /auth/v1: the dated shape when the request carried
/// `X-Supabase-Api-Version: 2024-01-01` or later, the legacy shape otherwise.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = Error)]
#[expect(dead_code, reason = "the schema of the two bodies `render` writes")]
pub(crate) enum ErrorBody {
    Dated(DatedBody<'static>),
    Legacy(LegacyBody<'static>),
}

/// Wraps the Supabase surface: echoes the API version and gives every non-2xx answer GoTrue's
/// body, so that the v1 renderer further out leaves it alone.
pub(crate) async fn render(request: Request, next: Next) -> Response {
    let dated = dated_version(request.headers());
    let mut response = next.run(request).await;
    if dated {
        response
            .headers_mut()
            .insert(API_VERSION, HeaderValue::from_static(API_VERSION_2024));
    }
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let error = parts
        .extensions
        .remove::<GotrueError>()
        .unwrap_or_else(|| by_status(status));
    let weak_password = error
        .weak_password
        .map(|reasons| WeakPasswordBody { reasons });
    let body = if dated {
        serde_json::to_vec(&DatedBody {
            code: error.code,
            message: &error.message,
            weak_password,
        })
    } else {
        serde_json::to_vec(&LegacyBody {
            code: status.as_u16(),
            error_code: error.code,
            msg: &error.message,
            weak_password,
        })
    }
    .unwrap_or_default();
    parts
        .headers
        .insert(ERROR_CODE, HeaderValue::from_static(error.code));
    parts.headers.insert(
        axum::http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    parts.extensions.insert(BodyIsFinal);
    Response::from_parts(parts, Body::from(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dated_versions_from_2024_select_the_new_body() {
        let cases = [
            (Some("2024-01-01"), true),
            (Some("2025-06-30"), true),
            (Some("2023-12-31"), false),
            (Some("2024-1-01"), false),
            (Some("latest"), false),
            (None, false),
        ];
        for (value, expected) in cases {
            let mut headers = HeaderMap::new();
            if let Some(value) = value {
                headers.insert(API_VERSION, HeaderValue::from_static(value));
            }
            assert_eq!(dated_version(&headers), expected, "{value:?}");
        }
    }

    #[test]
    fn dead_tokens_are_4xx_and_overload_is_5xx() {
        let revoked = GotrueError::from(AuthError::SessionRevoked);
        assert_eq!(revoked.status, StatusCode::FORBIDDEN);
        assert_eq!(revoked.code, "session_not_found");
        let reused = GotrueError::from(AuthError::RefreshTokenReused);
        assert_eq!(
            (reused.status, reused.code),
            (StatusCode::BAD_REQUEST, "refresh_token_already_used")
        );
        let busy = GotrueError::from(AuthError::Overloaded {
            retry_after_secs: 1,
        });
        assert!(busy.status.is_server_error());
    }
}
