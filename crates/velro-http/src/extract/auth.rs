//! Who is calling: a user behind a Bearer access token, or the holder of the service key.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use velro_core::service::Authenticated;
use velro_core::AuthError;

use crate::tally::CallerSlot;
use crate::{ApiError, AppState};

/// The token of an `Authorization: Bearer <token>` header. The scheme is matched
/// case-insensitively; a missing header, another scheme or an empty token are all `None`.
pub(crate) fn bearer_token(parts: &Parts) -> Option<&str> {
    let value = parts
        .headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .trim();
    let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A user with a valid access token on a live session.
pub(crate) struct Caller(pub Authenticated);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let slot = parts.extensions.get::<CallerSlot>();
        if let Some(slot) = slot {
            slot.set_takes_bearer();
        }
        let token = bearer_token(parts).ok_or(AuthError::TokenMissing)?;
        let caller = state.auth.authenticate(token).await?;
        if let Some(slot) = slot {
            slot.set_user(caller.user.id);
        }
        Ok(Self(caller))
    }
}

/// The holder of the service key.
pub(crate) struct AdminCaller;

impl FromRequestParts<AppState> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if let Some(slot) = parts.extensions.get::<CallerSlot>() {
            slot.set_takes_bearer();
        }
        state.admin.authorize(bearer_token(parts)).await?;
        Ok(Self)
    }
}
