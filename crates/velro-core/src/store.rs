//! The storage port. Each method is one use case's worth of work and atomic inside; transactions
//! never leak through it. Implementations live in velro-store.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::domain::{
    AdminUserChange, Credentials, Email, NewUser, PasswordHash, ProfileChange, SessionId,
    SessionRecord, User, UserId, UserPage, UserQuery,
};
use crate::StoreError;

/// SHA-256 of a token. Only this is stored, never the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub remember_me: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub refresh_token: TokenHash,
    pub refresh_expires_at: OffsetDateTime,
    pub now: OffsetDateTime,
}

/// How long refresh tokens live and how long a spent one may be replayed.
#[derive(Debug, Clone, Copy)]
pub struct RefreshPolicy {
    pub lifetime: Duration,
    pub remember_me_lifetime: Duration,
    pub reuse_grace: Duration,
}

impl RefreshPolicy {
    pub fn lifetime_for(&self, remember_me: bool) -> Duration {
        if remember_me {
            self.remember_me_lifetime
        } else {
            self.lifetime
        }
    }
}

/// The outcome of presenting a refresh token.
#[derive(Debug, Clone)]
pub enum Rotation {
    /// The token was live: it is now spent and `successor` is the session's current token.
    Rotated { session: SessionRecord, user: User },
    /// The token was spent within the grace window. The session's newest token is
    /// `newest_generation - presented_generation` successor steps away from the presented one.
    ReusedWithinGrace {
        session: SessionRecord,
        user: User,
        presented_generation: u32,
        newest_generation: u32,
    },
    /// The token was spent longer ago than the grace window: the session is now revoked.
    ReusedAfterGrace { session_id: SessionId },
    /// Unknown, expired, or its session is revoked or its user disabled.
    Invalid,
}

#[derive(Debug, Clone)]
pub struct SessionWithUser {
    pub session: SessionRecord,
    pub user: User,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates the user and its first session together. `Conflict("email")` when taken.
    async fn create_user(&self, user: NewUser, session: NewSession) -> Result<User, StoreError>;

    async fn find_credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<Credentials>, StoreError>;

    async fn find_credentials(&self, user_id: UserId) -> Result<Option<Credentials>, StoreError>;

    /// Replaces the hash without touching sessions (a rehash on login).
    async fn replace_password_hash(
        &self,
        user_id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError>;

    /// The session if it is not revoked and its user exists and is not disabled.
    async fn find_live_session(
        &self,
        session_id: SessionId,
    ) -> Result<Option<SessionWithUser>, StoreError>;

    /// Spends `presented` and records `successor` as the session's current token, or reports why
    /// not; see [`Rotation`]. Atomic: of concurrent calls with one token, exactly one rotates.
    async fn rotate_refresh_token(
        &self,
        presented: TokenHash,
        successor: TokenHash,
        policy: RefreshPolicy,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError>;

    /// Revokes one live session of this user. False when there is no such live session.
    async fn revoke_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;

    /// Revokes every live session of the user, except `keep` when given. Returns the ids revoked.
    async fn revoke_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError>;

    /// Live (not revoked, not expired) sessions, newest created first.
    async fn list_live_sessions(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError>;

    async fn update_profile(
        &self,
        user_id: UserId,
        change: &ProfileChange,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    async fn create_reset_token(
        &self,
        user_id: UserId,
        token: TokenHash,
        expires_at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The user a reset token belongs to, if it is unused and unexpired.
    async fn find_reset_token_user(
        &self,
        token: TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<Credentials>, StoreError>;

    /// Spends the token and every other outstanding reset token of its user, sets the password
    /// and revokes every session, all at once. `None` when the token was not usable; of
    /// concurrent calls with one token, exactly one succeeds. Returns the revoked session ids.
    async fn reset_password(
        &self,
        token: TokenHash,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<Option<(UserId, Vec<SessionId>)>, StoreError>;

    /// Sets the password and revokes every other session of the user, at once.
    async fn change_password(
        &self,
        user_id: UserId,
        hash: &PasswordHash,
        keep: SessionId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError>;

    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError>;

    async fn find_user(&self, user_id: UserId) -> Result<Option<User>, StoreError>;

    /// Applies the change; disabling revokes every session in the same transaction.
    async fn update_user(
        &self,
        user_id: UserId,
        change: &AdminUserChange,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Deletes the user with its sessions and tokens. False when there was no such user.
    async fn delete_user(&self, user_id: UserId) -> Result<bool, StoreError>;
}
