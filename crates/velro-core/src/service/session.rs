//! Sessions: checking access tokens, refresh-token rotation, logout and session management.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{AuthService, ClientInfo, IssuedSession};
use crate::domain::{SessionId, SessionRecord, User};
use crate::limits::Policy;
use crate::store::{Rotation, SessionWithUser};
use crate::tokens::{hash_token, VerifiedAccess};
use crate::{AuthError, Secret};

/// How far a grace-window replay may walk the successor chain before giving up; a session
/// rotated this often within ten seconds is not a browser's doing.
const MAX_SUCCESSOR_STEPS: u32 = 64;

/// The caller behind a valid access token whose session is live: the store's (or the cache's)
/// shared snapshot, read through `Deref` (`caller.user`, `caller.session`), not a copy of it.
#[derive(Debug, Clone)]
pub struct Authenticated(Arc<SessionWithUser>);

impl std::ops::Deref for Authenticated {
    type Target = SessionWithUser;

    fn deref(&self) -> &SessionWithUser {
        &self.0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutScope {
    Local,
    Global,
    Others,
}

impl AuthService {
    /// Checks the token and that its session is still live, on every request: a revoked session
    /// is refused from the very next one.
    pub async fn authenticate(&self, access_token: &str) -> Result<Authenticated, AuthError> {
        let deps = self.deps();
        let verified = deps.access_tokens.verify(access_token, deps.clock.now())?;
        self.live_session(verified).await
    }

    /// The caller behind a verified token of either kind, if its session is still live.
    pub(super) async fn live_session(
        &self,
        verified: VerifiedAccess,
    ) -> Result<Authenticated, AuthError> {
        let live = self
            .deps()
            .store
            .find_live_session(verified.session_id)
            .await?
            .filter(|live| live.user.id == verified.user_id)
            .ok_or(AuthError::SessionRevoked)?;
        Ok(Authenticated(live))
    }

    pub(super) fn issue(
        &self,
        user: User,
        session_id: SessionId,
        refresh_token: Secret<String>,
        now: OffsetDateTime,
    ) -> Result<IssuedSession, AuthError> {
        let access = self.deps().access_tokens.issue(&user, session_id, now)?;
        Ok(IssuedSession {
            access_token: access.token,
            expires_in: access.expires_at - access.issued_at,
            expires_at: access.expires_at,
            refresh_token,
            session_id,
            user,
        })
    }

    pub async fn refresh(
        &self,
        presented: Secret<String>,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        let deps = self.deps();
        deps.limits.check_ip(Policy::RefreshIp, client.ip()).await?;
        let successor = deps.refresh_tokens.successor(presented.expose());
        let now = deps.clock.now();
        let rotation = deps
            .store
            .rotate_refresh_token(
                hash_token(presented.expose()),
                hash_token(successor.expose()),
                deps.settings.refresh,
                now,
            )
            .await?;
        match rotation {
            Rotation::Rotated { session, user } => self.issue(user, session.id, successor, now),
            Rotation::ReusedWithinGrace {
                session,
                user,
                presented_generation,
                newest_generation,
            } => {
                let steps = newest_generation.saturating_sub(presented_generation);
                if steps == 0 || steps > MAX_SUCCESSOR_STEPS {
                    return Err(AuthError::RefreshTokenInvalid);
                }
                let mut newest = successor;
                for _ in 1..steps {
                    newest = deps.refresh_tokens.successor(newest.expose());
                }
                self.issue(user, session.id, newest, now)
            }
            Rotation::ReusedAfterGrace { session_id } => {
                tracing::warn!(%session_id, "refresh token reused after the grace window; session revoked");
                Err(AuthError::RefreshTokenReused)
            }
            Rotation::Invalid => Err(AuthError::RefreshTokenInvalid),
        }
    }

    pub async fn logout(
        &self,
        caller: &Authenticated,
        scope: LogoutScope,
    ) -> Result<(), AuthError> {
        let deps = self.deps();
        let now = deps.clock.now();
        let user_id = caller.user.id;
        match scope {
            LogoutScope::Local => {
                deps.store
                    .revoke_session(user_id, caller.session.id, now)
                    .await?;
            }
            LogoutScope::Global => {
                deps.store.revoke_sessions(user_id, None, now).await?;
            }
            LogoutScope::Others => {
                deps.store
                    .revoke_sessions(user_id, Some(caller.session.id), now)
                    .await?;
            }
        }
        Ok(())
    }

    pub async fn list_sessions(
        &self,
        caller: &Authenticated,
    ) -> Result<Vec<SessionRecord>, AuthError> {
        let deps = self.deps();
        Ok(deps
            .store
            .list_live_sessions(caller.user.id, deps.clock.now())
            .await?)
    }

    pub async fn revoke_session(
        &self,
        caller: &Authenticated,
        session_id: SessionId,
    ) -> Result<(), AuthError> {
        let deps = self.deps();
        let revoked = deps
            .store
            .revoke_session(caller.user.id, session_id, deps.clock.now())
            .await?;
        if revoked {
            Ok(())
        } else {
            Err(AuthError::NotFound)
        }
    }
}
