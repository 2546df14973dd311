//! The one mapping from errors to HTTP: status, stable code, human detail and headers. Bodies are
//! written by the response middleware, which knows the request id.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use velro_core::{AuthError, FieldError};

/// Any failure a handler or extractor can answer with.
#[derive(Debug)]
pub enum ApiError {
    Auth(AuthError),
    PayloadTooLarge,
    UnsupportedMediaType,
    NotFound,
    MethodNotAllowed,
    Timeout,
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        Self::Auth(error)
    }
}

impl ApiError {
    pub fn validation(errors: Vec<FieldError>) -> Self {
        Self::Auth(AuthError::Validation(errors))
    }

    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Auth(AuthError::field(field, message))
    }
}

/// What the response middleware needs to write the contract's error body.
#[derive(Debug, Clone)]
pub struct ErrorBody {
    pub code: &'static str,
    pub detail: &'static str,
    pub errors: Option<Vec<FieldError>>,
}

/// Marks a non-2xx response whose body is already final (readiness's 503).
#[derive(Debug, Clone, Copy)]
pub struct BodyIsFinal;

pub(crate) const RETRY_AFTER_SECS: u64 = 1;

fn describe(error: &AuthError) -> (StatusCode, &'static str, &'static str) {
    use AuthError as E;
    match error {
        E::Validation(_) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
            "Request validation failed",
        ),
        E::InvalidCredentials => (
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
            "Invalid email or password",
        ),
        E::AccountDisabled => (
            StatusCode::FORBIDDEN,
            "account_disabled",
            "This account is disabled",
        ),
        E::EmailExists => (
            StatusCode::CONFLICT,
            "email_exists",
            "An account with this email already exists",
        ),
        E::TokenMissing => (
            StatusCode::UNAUTHORIZED,
            "token_missing",
            "A bearer token is required",
        ),
        E::TokenInvalid => (
            StatusCode::UNAUTHORIZED,
            "token_invalid",
            "The access token is invalid",
        ),
        E::TokenExpired => (
            StatusCode::UNAUTHORIZED,
            "token_expired",
            "The access token has expired",
        ),
        E::SessionRevoked => (
            StatusCode::UNAUTHORIZED,
            "session_revoked",
            "The session has ended",
        ),
        E::RefreshTokenInvalid => (
            StatusCode::UNAUTHORIZED,
            "refresh_token_invalid",
            "The refresh token is invalid",
        ),
        E::RefreshTokenReused => (
            StatusCode::UNAUTHORIZED,
            "refresh_token_reused",
            "The refresh token was already used; the session has been revoked",
        ),
        E::ResetTokenInvalid => (
            StatusCode::BAD_REQUEST,
            "reset_token_invalid",
            "The reset token is invalid, used or expired",
        ),
        E::InvalidServiceKey => (
            StatusCode::UNAUTHORIZED,
            "invalid_service_key",
            "A valid service key is required",
        ),
        E::Forbidden => (StatusCode::FORBIDDEN, "forbidden", "You may not do this"),
        E::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found"),
        E::RateLimited { .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            "Too many requests; retry later",
        ),
        E::Overloaded { .. } | E::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "overloaded",
            "The service is busy; retry shortly",
        ),
        E::Internal(_) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "Internal server error",
        ),
    }
}

/// The body for a failure that did not come from a handler (an axum rejection, a panic), by
/// status alone.
pub(crate) fn describe_status(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => ("not_found", "Not found"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "Method not allowed"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "The request body is too large"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            ("headers_too_large", "The request headers are too large")
        }
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "The body must be JSON"),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation_failed", "Request validation failed"),
        StatusCode::UNAUTHORIZED => ("unauthorized", "Authentication required"),
        StatusCode::FORBIDDEN => ("forbidden", "You may not do this"),
        StatusCode::TOO_MANY_REQUESTS => ("rate_limited", "Too many requests; retry later"),
        StatusCode::SERVICE_UNAVAILABLE => ("overloaded", "The service is busy; retry shortly"),
        s if s.is_client_error() => ("bad_request", "The request could not be understood"),
        _ => ("internal_error", "Internal server error"),
    }
}

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

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, detail, errors) = match &self {
            Self::Auth(error) => {
                let (status, code, detail) = describe(error);
                match error {
                    AuthError::Internal(_) | AuthError::Unavailable(_) => log_cause(error),
                    _ => {}
                }
                let errors = match error {
                    AuthError::Validation(errors) => Some(errors.clone()),
                    _ => None,
                };
                (status, code, detail, errors)
            }
            Self::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "The request body is too large (limit 16 KiB)",
                None,
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "The body must be JSON (application/json)",
                None,
            ),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "Not found", None),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                None,
            ),
            Self::Timeout => (
                StatusCode::SERVICE_UNAVAILABLE,
                "timeout",
                "The request took too long; retry shortly",
                None,
            ),
        };
        let mut response = status.into_response();
        let headers = response.headers_mut();
        let retry_after = match &self {
            Self::Auth(AuthError::RateLimited { retry_after_secs })
            | Self::Auth(AuthError::Overloaded { retry_after_secs }) => Some(*retry_after_secs),
            _ => None,
        };
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
        }
        if matches!(
            &self,
            Self::Auth(
                AuthError::TokenInvalid | AuthError::TokenExpired | AuthError::SessionRevoked
            )
        ) {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response.extensions_mut().insert(ErrorBody {
            code,
            detail,
            errors,
        });
        response
    }
}
