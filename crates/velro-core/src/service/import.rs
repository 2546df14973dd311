//! Carrying accounts and signed-in sessions over from another auth server (`velro import`).
//! Reading the other server belongs to the binary; this turns what it read into what Velro
//! stores: refresh tokens hashed as Velro hashes its own, bans judged against the clock.

use std::sync::Arc;

use time::OffsetDateTime;

use crate::domain::{Email, PasswordHash, Role, SessionId, UserId};
use crate::store::{
    ImportBatch, ImportOutcome, ImportStore, ImportedSession, ImportedUser, RefreshPolicy,
    SpentToken,
};
use crate::tokens::hash_token;
use crate::{Clock, Secret, StoreError};

/// A user as the other server has it, already mapped to Velro's fields.
#[derive(Debug, Clone)]
pub struct ForeignUser {
    pub id: UserId,
    pub email: Email,
    /// None for an account without a password (OAuth-only).
    pub password_hash: Option<PasswordHash>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Role,
    /// None: the configured initial grant.
    pub credits_balance: Option<i64>,
    pub email_confirmed_at: Option<OffsetDateTime>,
    pub last_sign_in_at: Option<OffsetDateTime>,
    pub banned_until: Option<OffsetDateTime>,
    pub user_metadata: Option<String>,
    pub app_metadata: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A session as the other server has it, with the plaintext refresh tokens it stores.
#[derive(Debug, Clone)]
pub struct ForeignSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub live_token: Secret<String>,
    pub live_issued_at: OffsetDateTime,
    /// Revoked predecessors with when each was spent, oldest first.
    pub spent_tokens: Vec<(Secret<String>, OffsetDateTime)>,
}

/// The import use case. Cheap to clone.
#[derive(Clone)]
pub struct ImportService {
    store: Arc<dyn ImportStore>,
    clock: Arc<dyn Clock>,
    refresh: RefreshPolicy,
    initial_credits: i64,
}

impl ImportService {
    pub fn new(
        store: Arc<dyn ImportStore>,
        clock: Arc<dyn Clock>,
        refresh: RefreshPolicy,
        initial_credits: i64,
    ) -> Self {
        Self {
            store,
            clock,
            refresh,
            initial_credits,
        }
    }

    /// Writes one page: users, then their sessions, removals and sign-outs, in one
    /// transaction (rolled back when `apply` is false).
    pub async fn import_batch(
        &self,
        users: Vec<ForeignUser>,
        sessions: Vec<ForeignSession>,
        remove_users: Vec<UserId>,
        end_sessions: Vec<SessionId>,
        apply: bool,
    ) -> Result<ImportOutcome, StoreError> {
        let now = self.clock.now();
        let batch = ImportBatch {
            users: users.into_iter().map(|user| self.user(user, now)).collect(),
            sessions: sessions
                .into_iter()
                .map(|session| self.session(session, now))
                .collect(),
            remove_users,
            end_sessions,
        };
        self.store.import_batch(&batch, now, apply).await
    }

    fn user(&self, user: ForeignUser, now: OffsetDateTime) -> ImportedUser {
        ImportedUser {
            // A ban that has run out by now is no ban; one still running refuses sign-in,
            // and a later import lifts it once it has run out.
            disabled: user.banned_until.is_some_and(|until| until > now),
            id: user.id,
            email: user.email,
            password_hash: user.password_hash,
            display_name: user.display_name,
            avatar_url: user.avatar_url,
            role: user.role,
            credits_balance: user.credits_balance.unwrap_or(self.initial_credits),
            email_confirmed_at: user.email_confirmed_at,
            last_sign_in_at: user.last_sign_in_at,
            banned_until: user.banned_until,
            user_metadata: user.user_metadata,
            app_metadata: user.app_metadata,
            created_at: user.created_at,
        }
    }

    fn session(&self, session: ForeignSession, now: OffsetDateTime) -> ImportedSession {
        // The other server's sessions have no remember-me choice and often no end; the longer
        // lifetime is the nearer match, and it carries over to every rotation here.
        let remember_me = true;
        ImportedSession {
            id: session.id,
            user_id: session.user_id,
            created_at: session.created_at,
            last_refreshed_at: session.last_refreshed_at,
            user_agent: session.user_agent,
            ip: session.ip,
            remember_me,
            live_token: hash_token(session.live_token.expose()),
            live_issued_at: session.live_issued_at,
            expires_at: now + self.refresh.lifetime_for(remember_me),
            spent_tokens: session
                .spent_tokens
                .iter()
                .map(|(token, spent_at)| SpentToken {
                    hash: hash_token(token.expose()),
                    spent_at: *spent_at,
                })
                .collect(),
        }
    }
}
