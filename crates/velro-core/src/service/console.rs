//! The operators' console: signing in (an admin account through the ordinary login, or the
//! service key), server-side console sessions with an idle timeout, their CSRF tokens, run-time
//! flags with their change record, and the support look-ups the dashboard needs.

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::Duration;
use uuid::Uuid;

use super::{AdminService, AuthService, ClientInfo, Login};
use crate::domain::{Role, SessionId, SessionRecord, User, UserId};
use crate::store::{ConsoleSessionRecord, FlagChange, Store};
use crate::tokens::{generate_opaque_token, hash_token};
use crate::{AuthError, Clock, Secret};

/// The one flag there is today: the session/profile cache.
pub const CACHE_FLAG: &str = "cache";

/// Who is signed in to the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Operator {
    ServiceKey,
    /// An admin account, through the user session its sign-in created.
    Admin {
        user_id: UserId,
        session_id: SessionId,
    },
}

impl Operator {
    /// As change records and log lines name it: never an email.
    pub fn actor(&self) -> String {
        match self {
            Self::ServiceKey => "service-key".to_string(),
            Self::Admin { user_id, .. } => format!("user:{user_id}"),
        }
    }
}

/// A console session just created: the cookie's value and who it is for.
#[derive(Debug)]
pub struct ConsoleSignIn {
    pub token: Secret<String>,
    pub operator: Operator,
}

#[derive(Clone)]
pub struct ConsoleService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    auth: AuthService,
    admin: AdminService,
    idle_timeout: Duration,
}

impl ConsoleService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        auth: AuthService,
        admin: AdminService,
        idle_timeout: Duration,
    ) -> Self {
        Self {
            store,
            clock,
            auth,
            admin,
            idle_timeout,
        }
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// Signs in through the ordinary login, so its rate limits and back-off apply; an account
    /// that is not an admin is `Forbidden` and the session the login made is revoked at once.
    pub async fn sign_in_with_password(
        &self,
        login: Login,
        client: ClientInfo,
    ) -> Result<ConsoleSignIn, AuthError> {
        let issued = self.auth.login(login, client).await?;
        let user_id = issued.user.id;
        if issued.user.role != Role::Admin {
            self.store
                .revoke_session(user_id, issued.session_id, self.clock.now())
                .await?;
            tracing::warn!(%user_id, "console sign-in refused: not an admin");
            return Err(AuthError::Forbidden);
        }
        self.open(Operator::Admin {
            user_id,
            session_id: issued.session_id,
        })
        .await
    }

    /// Every attempt counts against the per-address login limit, right or wrong.
    pub async fn sign_in_with_key(
        &self,
        key: &str,
        client: &ClientInfo,
    ) -> Result<ConsoleSignIn, AuthError> {
        self.auth.check_sign_in_ip(client).await?;
        if !self.admin.key_matches(key) {
            tracing::warn!("console sign-in refused: wrong service key");
            return Err(AuthError::InvalidServiceKey);
        }
        self.open(Operator::ServiceKey).await
    }

    async fn open(&self, operator: Operator) -> Result<ConsoleSignIn, AuthError> {
        let now = self.clock.now();
        let token = generate_opaque_token();
        let user = match &operator {
            Operator::ServiceKey => None,
            Operator::Admin {
                user_id,
                session_id,
            } => Some((*user_id, *session_id)),
        };
        self.store
            .create_console_session(
                hash_token(token.expose()),
                ConsoleSessionRecord {
                    user,
                    created_at: now,
                },
                now - self.idle_timeout,
            )
            .await?;
        tracing::info!(actor = %operator.actor(), "console sign-in");
        Ok(ConsoleSignIn { token, operator })
    }

    /// The operator behind a console cookie, if the session is neither idle past the timeout
    /// nor signed out, and (for an account) its user session is still live and still an admin's.
    /// `activity`: a person did something (the idle timer restarts); otherwise the page is
    /// refreshing itself, which must not keep an unattended session alive.
    pub async fn resume(&self, token: &str, activity: bool) -> Result<Option<Operator>, AuthError> {
        let now = self.clock.now();
        let stale_before = now - self.idle_timeout;
        let token = hash_token(token);
        let record = if activity {
            self.store
                .touch_console_session(token, stale_before, now)
                .await?
        } else {
            self.store.find_console_session(token, stale_before).await?
        };
        let Some(record) = record else {
            return Ok(None);
        };
        let Some((user_id, session_id)) = record.user else {
            return Ok(Some(Operator::ServiceKey));
        };
        let live = self.store.find_live_session(session_id).await?;
        let still_admin = live.is_some_and(|live| {
            live.user.id == user_id && live.user.role == Role::Admin && !live.user.disabled
        });
        Ok(still_admin.then_some(Operator::Admin {
            user_id,
            session_id,
        }))
    }

    pub async fn sign_out(&self, token: &str) -> Result<(), AuthError> {
        self.store.delete_console_session(hash_token(token)).await?;
        Ok(())
    }

    /// The form token of a console session: derived from the cookie's secret value, so it is
    /// tied to that session and useless without it, and nothing more has to be stored.
    pub fn csrf_token(session_token: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(b"velro-console-csrf\0");
        hasher.update(session_token.as_bytes());
        URL_SAFE_NO_PAD.encode(hasher.finalize())
    }

    pub fn csrf_matches(session_token: &str, presented: &str) -> bool {
        let expected = Self::csrf_token(session_token);
        bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
    }

    /// Switches the cache and records who did it; the other instances pick the record up.
    pub async fn set_cache_flag(
        &self,
        operator: &Operator,
        enabled: bool,
    ) -> Result<(), AuthError> {
        self.admin.set_cache_flag(&operator.actor(), enabled).await
    }

    pub async fn recent_flag_changes(&self) -> Result<Vec<FlagChange>, AuthError> {
        Ok(self.store.recent_flag_changes(20).await?)
    }

    /// A user by id or exact email (case-insensitive), with their live sessions.
    pub async fn find_user(
        &self,
        needle: &str,
    ) -> Result<Option<(User, Vec<SessionRecord>)>, AuthError> {
        let needle = needle.trim();
        let user = if let Ok(id) = Uuid::parse_str(needle) {
            self.store.find_user(UserId(id)).await?
        } else {
            match crate::domain::Email::parse(needle) {
                Ok(email) => self
                    .store
                    .find_credentials_by_email(&email)
                    .await?
                    .map(|credentials| credentials.user),
                Err(_) => None,
            }
        };
        let Some(user) = user else {
            return Ok(None);
        };
        let sessions = self
            .store
            .list_live_sessions(user.id, self.clock.now())
            .await?;
        Ok(Some((user, sessions)))
    }

    pub async fn revoke_user_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
    ) -> Result<(), AuthError> {
        if self
            .store
            .revoke_session(user_id, session_id, self.clock.now())
            .await?
        {
            tracing::info!(%user_id, %session_id, "session revoked from the console");
            Ok(())
        } else {
            Err(AuthError::NotFound)
        }
    }

    /// The admin API's use case: one rule for "revoke every session", whoever asks.
    pub async fn revoke_user_sessions(&self, user_id: UserId) -> Result<usize, AuthError> {
        self.admin.revoke_sessions(user_id).await
    }
}
