//! Who is calling: a user behind a Bearer access token, or the holder of the service key.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;
use velro_core::domain::UserId;
use velro_core::service::Authenticated;
use velro_core::AuthError;

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

/// Who is calling, as far as one request tells: the socket's peer, which the server puts in every
/// request's extensions with this (`CallerSlot::for_peer`), and what the authentication
/// extractors learn, read back by `middleware::Observe` once the answer is made: the user, for
/// the log line, and whether the endpoint takes a Bearer token, for the challenge its 401s carry
/// (contract: "401 responses of endpoints that take a Bearer token carry `WWW-Authenticate:
/// Bearer`"). Marked by the extractor rather than by a layer around those routes: a route layer
/// is one more boxed clone of the route and one more boxed future on every request, token checks
/// included. A request that arrives without one (a test driving the router alone) gets one from
/// `Observe`, with no peer.
#[derive(Clone, Default)]
pub struct CallerSlot(Arc<CallerSeen>);

#[derive(Default)]
struct CallerSeen {
    peer: Option<SocketAddr>,
    user: OnceLock<UserId>,
    takes_bearer: AtomicBool,
}

impl CallerSlot {
    /// For a request that came from `peer`.
    pub fn for_peer(peer: SocketAddr) -> Self {
        Self(Arc::new(CallerSeen {
            peer: Some(peer),
            ..CallerSeen::default()
        }))
    }

    /// The socket's peer: the client, or a proxy in front of it.
    pub(crate) fn peer(&self) -> Option<SocketAddr> {
        self.0.peer
    }

    pub(crate) fn set_user(&self, user_id: UserId) {
        let _ = self.0.user.set(user_id);
    }

    pub(crate) fn user(&self) -> Option<UserId> {
        self.0.user.get().copied()
    }

    /// Called by a Bearer extractor before it checks anything, so that its own 401s count.
    pub(crate) fn set_takes_bearer(&self) {
        self.0.takes_bearer.store(true, Ordering::Relaxed);
    }

    pub(crate) fn takes_bearer(&self) -> bool {
        self.0.takes_bearer.load(Ordering::Relaxed)
    }
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
