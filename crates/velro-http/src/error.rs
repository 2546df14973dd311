//! The one mapping from errors to HTTP: a single table gives every failure's status, stable code,
//! human detail and headers, and [`render`] alone writes the contract's error body from it. The
//! response middleware calls [`render`] because only it knows the request id.

use axum::body::Body;
use axum::http::{header, response::Parts, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
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
    /// No signed-in console session.
    Unauthorized,
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

/// Declares [`Failure`] and its table together, one row a line.
macro_rules! failures {
    ($($(#[$why:meta])* $name:ident => $status:ident, $code:literal, $detail:literal, $extra:ident;)*) => {
        /// Every kind of failure a client can see.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Failure {
            $($(#[$why])* $name),*
        }

        impl Failure {
            #[cfg(test)]
            const ALL: &'static [Self] = &[$(Self::$name),*];

            /// The table.
            pub(crate) const fn row(self) -> Row {
                match self {
                    $(Self::$name => Row {
                        status: StatusCode::$status,
                        code: $code,
                        detail: $detail,
                        extra: Extra::$extra,
                    },)*
                }
            }
        }
    };
}

failures! {
    ValidationFailed => UNPROCESSABLE_ENTITY, "validation_failed", "Request validation failed", None;
    InvalidCredentials => UNAUTHORIZED, "invalid_credentials", "Invalid email or password", None;
    AccountDisabled => FORBIDDEN, "account_disabled", "This account is disabled", None;
    EmailExists => CONFLICT, "email_exists", "An account with this email already exists", None;
    TokenMissing => UNAUTHORIZED, "token_missing", "A bearer token is required", None;
    TokenInvalid => UNAUTHORIZED, "token_invalid", "The access token is invalid", InvalidToken;
    TokenExpired => UNAUTHORIZED, "token_expired", "The access token has expired", InvalidToken;
    SessionRevoked => UNAUTHORIZED, "session_revoked", "The session has ended", InvalidToken;
    RefreshTokenInvalid => UNAUTHORIZED, "refresh_token_invalid", "The refresh token is invalid", None;
    RefreshTokenReused => UNAUTHORIZED, "refresh_token_reused", "The refresh token was already used; the session has been revoked", None;
    ResetTokenInvalid => BAD_REQUEST, "reset_token_invalid", "The reset token is invalid, used or expired", None;
    InvalidServiceKey => UNAUTHORIZED, "invalid_service_key", "A valid service key is required", None;
    Unauthorized => UNAUTHORIZED, "unauthorized", "Authentication required", None;
    Forbidden => FORBIDDEN, "forbidden", "You may not do this", None;
    NotFound => NOT_FOUND, "not_found", "Not found", None;
    MethodNotAllowed => METHOD_NOT_ALLOWED, "method_not_allowed", "Method not allowed", None;
    /// The contract fixes the limit at 16 KiB, so the text may name it.
    PayloadTooLarge => PAYLOAD_TOO_LARGE, "payload_too_large", "The request body is too large (limit 16 KiB)", None;
    /// Not "(application/json)": any application/*+json counts as JSON too.
    UnsupportedMediaType => UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type", "The body must be JSON", None;
    HeadersTooLarge => REQUEST_HEADER_FIELDS_TOO_LARGE, "headers_too_large", "The request headers are too large", None;
    BadRequest => BAD_REQUEST, "bad_request", "The request could not be understood", None;
    RateLimited => TOO_MANY_REQUESTS, "rate_limited", "Too many requests; retry later", RetryAfter;
    Overloaded => SERVICE_UNAVAILABLE, "overloaded", "The service is busy; retry shortly", RetryAfter;
    Timeout => SERVICE_UNAVAILABLE, "timeout", "The request took too long; retry shortly", RetryAfter;
    Internal => INTERNAL_SERVER_ERROR, "internal_error", "Internal server error", None;
}

/// The headers a failure carries besides the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Extra {
    None,
    /// `Retry-After` in whole seconds (the contract's rule for 429 and 503).
    RetryAfter,
    /// `WWW-Authenticate` naming the rejected token (a token was sent and refused).
    InvalidToken,
}

/// One row of the table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub status: StatusCode,
    pub code: &'static str,
    pub detail: &'static str,
    pub extra: Extra,
}

/// `Retry-After` when the cause did not say how long to wait.
pub(crate) const RETRY_AFTER_SECS: u64 = 1;

/// The challenge on every 401 of an endpoint that takes a Bearer token.
pub(crate) const BEARER_CHALLENGE: &str = "Bearer";

const INVALID_TOKEN_CHALLENGE: &str = "Bearer error=\"invalid_token\"";

impl Failure {
    fn of(error: &AuthError) -> Self {
        use AuthError as E;
        match error {
            E::Validation(_) => Self::ValidationFailed,
            E::InvalidCredentials => Self::InvalidCredentials,
            E::AccountDisabled => Self::AccountDisabled,
            E::EmailExists => Self::EmailExists,
            E::TokenMissing => Self::TokenMissing,
            E::TokenInvalid => Self::TokenInvalid,
            E::TokenExpired => Self::TokenExpired,
            E::SessionRevoked => Self::SessionRevoked,
            E::RefreshTokenInvalid => Self::RefreshTokenInvalid,
            E::RefreshTokenReused => Self::RefreshTokenReused,
            E::ResetTokenInvalid => Self::ResetTokenInvalid,
            E::InvalidServiceKey => Self::InvalidServiceKey,
            E::Forbidden => Self::Forbidden,
            E::NotFound => Self::NotFound,
            E::RateLimited { .. } => Self::RateLimited,
            E::Overloaded { .. } | E::Unavailable(_) => Self::Overloaded,
            E::Internal(_) => Self::Internal,
        }
    }

    /// A failure that did not come from a handler (an axum rejection, a layer, a panic), known
    /// by its status alone.
    pub(crate) fn of_status(status: StatusCode) -> Self {
        match status {
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => Self::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => Self::PayloadTooLarge,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeadersTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => Self::UnsupportedMediaType,
            StatusCode::UNPROCESSABLE_ENTITY => Self::ValidationFailed,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::FORBIDDEN => Self::Forbidden,
            StatusCode::TOO_MANY_REQUESTS => Self::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => Self::Overloaded,
            s if s.is_client_error() => Self::BadRequest,
            _ => Self::Internal,
        }
    }
}

/// What a handler's failure leaves on its response for [`render`].
#[derive(Debug, Clone)]
pub(crate) struct ErrorBody {
    failure: Failure,
    errors: Option<Vec<FieldError>>,
    retry_after_secs: Option<u64>,
}

/// Marks a non-2xx response whose body is already final (readiness's 503).
#[derive(Debug, Clone, Copy)]
pub struct BodyIsFinal;

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
        let body = match self {
            Self::Auth(error) => {
                if matches!(error, AuthError::Internal(_) | AuthError::Unavailable(_)) {
                    log_cause(&error);
                }
                let failure = Failure::of(&error);
                let retry_after_secs = match &error {
                    AuthError::RateLimited { retry_after_secs }
                    | AuthError::Overloaded { retry_after_secs } => Some(*retry_after_secs),
                    _ => None,
                };
                let errors = match error {
                    AuthError::Validation(errors) => Some(errors),
                    _ => None,
                };
                ErrorBody {
                    failure,
                    errors,
                    retry_after_secs,
                }
            }
            Self::PayloadTooLarge => Failure::PayloadTooLarge.into(),
            Self::UnsupportedMediaType => Failure::UnsupportedMediaType.into(),
            Self::NotFound => Failure::NotFound.into(),
            Self::MethodNotAllowed => Failure::MethodNotAllowed.into(),
            Self::Timeout => Failure::Timeout.into(),
            Self::Unauthorized => Failure::Unauthorized.into(),
        };
        let mut response = body.failure.row().status.into_response();
        response.extensions_mut().insert(body);
        response
    }
}

impl From<Failure> for ErrorBody {
    fn from(failure: Failure) -> Self {
        Self {
            failure,
            errors: None,
            retry_after_secs: None,
        }
    }
}

/// Gives a non-2xx response the contract's body and headers, whether it came from a handler
/// (with an [`ErrorBody`]) or from the framework (by status alone). Responses marked
/// [`BodyIsFinal`] and successes pass through untouched.
pub(crate) fn render(response: Response, request_id: &str) -> Response {
    let status = response.status();
    if status.is_success() || status.is_informational() || status.is_redirection() {
        return response;
    }
    if response.extensions().get::<BodyIsFinal>().is_some() {
        return response;
    }
    let (mut parts, _) = response.into_parts();
    let body = parts.extensions.remove::<ErrorBody>().unwrap_or_else(|| {
        if status.is_server_error() {
            tracing::error!(status = status.as_u16(), "request failed outside a handler");
        }
        let failure = Failure::of_status(status);
        ErrorBody {
            failure,
            // A framework 422 has no field list, but the contract promises the key on every 422.
            errors: (failure == Failure::ValidationFailed).then(Vec::new),
            retry_after_secs: None,
        }
    });
    let row = body.failure.row();
    set_headers(&mut parts, row.extra, body.retry_after_secs);
    let wire = WireError {
        detail: row.detail,
        code: row.code,
        status_code: status.as_u16(),
        request_id,
        errors: body.errors.map(|errors| {
            errors
                .into_iter()
                .map(|e| WireFieldError {
                    field: e.field,
                    message: e.message,
                })
                .collect()
        }),
    };
    let json = serde_json::to_string(&wire).unwrap_or_default();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json))
}

fn set_headers(parts: &mut Parts, extra: Extra, retry_after_secs: Option<u64>) {
    match extra {
        Extra::None => {}
        Extra::RetryAfter => {
            // A layer's own value (e.g. readiness) is kept when the cause named none.
            if retry_after_secs.is_some() || !parts.headers.contains_key(header::RETRY_AFTER) {
                let secs = retry_after_secs.unwrap_or(RETRY_AFTER_SECS).max(1);
                parts
                    .headers
                    .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
        }
        Extra::InvalidToken => {
            parts.headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(INVALID_TOKEN_CHALLENGE),
            );
        }
    }
}

/// The contract's error body, keys in the contract's order.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = ErrorResponse)]
pub(crate) struct WireError<'a> {
    /// For humans.
    detail: &'static str,
    /// The stable snake_case machine code that clients branch on.
    code: &'static str,
    /// The HTTP status, repeated.
    status_code: u16,
    /// The response's `x-request-id`.
    request_id: &'a str,
    /// Only on 422 `validation_failed`: one entry per bad or missing field.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    errors: Option<Vec<WireFieldError>>,
}

/// The error body as the route modules name it in their OpenAPI attributes.
pub(crate) type ErrorResponse = WireError<'static>;

/// One bad or missing field of a 422.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = FieldError)]
pub(crate) struct WireFieldError {
    field: String,
    message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_one_status_and_one_detail() {
        let mut seen: Vec<Row> = Vec::new();
        for &failure in Failure::ALL {
            let row = failure.row();
            if let Some(same) = seen.iter().find(|other| other.code == row.code) {
                assert_eq!(same.status, row.status, "{}", row.code);
                assert_eq!(same.detail, row.detail, "{}", row.code);
            }
            seen.push(row);
        }
    }

    #[test]
    fn retry_after_goes_with_429_and_503_and_only_with_them() {
        for &failure in Failure::ALL {
            let row = failure.row();
            let limited = matches!(
                row.status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            );
            assert_eq!(row.extra == Extra::RetryAfter, limited, "{}", row.code);
        }
    }

    fn rendered(error: ApiError) -> Response {
        render(error.into_response(), "rid")
    }

    #[tokio::test]
    async fn a_chunked_and_a_declared_oversized_body_get_the_same_answer() {
        let from_handler = rendered(ApiError::PayloadTooLarge);
        let from_layer = render(StatusCode::PAYLOAD_TOO_LARGE.into_response(), "rid");
        let mut bodies = Vec::new();
        for response in [from_handler, from_layer] {
            assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
            let bytes = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .expect("body");
            bodies.push(bytes);
        }
        assert_eq!(bodies[0], bodies[1]);
    }

    #[test]
    fn a_rejected_token_names_invalid_token_and_a_rate_limit_its_own_wait() {
        let response = rendered(ApiError::Auth(AuthError::TokenExpired));
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            INVALID_TOKEN_CHALLENGE
        );
        let response = rendered(ApiError::Auth(AuthError::RateLimited {
            retry_after_secs: 7,
        }));
        assert_eq!(response.headers()[header::RETRY_AFTER], "7");
        let response = rendered(ApiError::Timeout);
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
    }
}
