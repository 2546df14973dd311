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

/// Rows one purge removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub reset_tokens: u64,
}

impl Purged {
    /// Each kind with its table's name (the metric label and `velro purge`'s output).
    pub fn by_table(&self) -> [(&'static str, u64); 3] {
        [
            ("refresh_tokens", self.refresh_tokens),
            ("sessions", self.sessions),
            ("password_reset_tokens", self.reset_tokens),
        ]
    }

    pub fn total(&self) -> u64 {
        self.refresh_tokens + self.sessions + self.reset_tokens
    }
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Self) {
        self.refresh_tokens += other.refresh_tokens;
        self.sessions += other.sessions;
        self.reset_tokens += other.reset_tokens;
    }
}

/// What one purge batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeBatch {
    pub removed: Purged,
    /// A kind filled its batch: there may be more to remove now.
    pub more: bool,
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

    /// Removes one batch of rows that nothing needs any more: up to `limit` sessions that ended
    /// (revoked, or expired) before `ended_before`, with their refresh tokens, and up to `limit`
    /// reset tokens used or expired before it. A live session's spent refresh tokens stay:
    /// reuse detection needs them for as long as the session lives. Every statement is a short
    /// transaction of its own touching at most `limit` rows, and deletes only rows that still
    /// qualify, so purges running at once (several instances) are safe.
    async fn purge(
        &self,
        ended_before: OffsetDateTime,
        limit: u32,
    ) -> Result<PurgeBatch, StoreError>;
}

/// What `impl_store!` expands to needs, whatever the using crate depends on.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use time::OffsetDateTime;
}

/// Implements [`Store`] for a wrapper without restating the signatures of the methods it does
/// not change. The methods written out after the list are kept as written; every method in the
/// list either forwards to the store in a field (`forward to <field>`) or ignores its arguments
/// and evaluates a block (`answer { ... }`). A method neither listed nor written, or both, is a
/// compile error, so a new `Store` method is noticed in every wrapper.
///
/// A macro, not a trait with provided methods: `Store` stays the port as the stores see it, and
/// a decorator's own methods sit next to the list of those it passes through.
///
/// ```
/// use std::sync::Arc;
/// use velro_core::store::Store;
///
/// /// Passes everything through.
/// struct Transparent {
///     inner: Arc<dyn Store>,
/// }
///
/// velro_core::impl_store! {
///     Transparent, forward to inner:
///         ping, create_user, find_credentials_by_email, find_credentials,
///         replace_password_hash, create_session, find_live_session, rotate_refresh_token,
///         revoke_session, revoke_sessions, list_live_sessions, update_profile,
///         create_reset_token, find_reset_token_user, reset_password, change_password,
///         list_users, find_user, update_user, delete_user, purge;
/// }
/// ```
#[macro_export]
macro_rules! impl_store {
    ($ty:ident, forward to $field:ident: $($name:ident),+ $(,)?; $($own:tt)*) => {
        $crate::impl_store!(@next $ty (forward $field) [] [$($name)+] $($own)*);
    };
    ($ty:ident, answer $answer:tt: $($name:ident),+ $(,)?; $($own:tt)*) => {
        $crate::impl_store!(@next $ty (answer $answer) [] [$($name)+] $($own)*);
    };
    // Looks up the next listed method's signature; `__store_signature!` comes back with `@push`.
    (@next $ty:ident $how:tt $sigs:tt [$name:ident $($rest:ident)*] $($own:tt)*) => {
        $crate::__store_signature!($name, $ty $how $sigs [$($rest)*] $($own)*);
    };
    (@push $sig:tt $ty:ident $how:tt [$($sigs:tt)*] $rest:tt $($own:tt)*) => {
        $crate::impl_store!(@next $ty $how [$($sigs)* $sig] $rest $($own)*);
    };
    (@next $ty:ident (forward $field:ident) [$({
        $name:ident ($([$arg:ident: $($arg_ty:tt)*])*) ($($ret:tt)*)
    })*] [] $($own:tt)*) => {
        #[$crate::store::__private::async_trait]
        impl $crate::store::Store for $ty {
            $(
                async fn $name(
                    &self,
                    $($arg: $($arg_ty)*),*
                ) -> ::core::result::Result<$($ret)*, $crate::StoreError> {
                    use $crate::store::Store as _;
                    self.$field.$name($($arg),*).await
                }
            )*
            $($own)*
        }
    };
    (@next $ty:ident (answer $answer:tt) [$({
        $name:ident ($([$arg:ident: $($arg_ty:tt)*])*) ($($ret:tt)*)
    })*] [] $($own:tt)*) => {
        #[$crate::store::__private::async_trait]
        impl $crate::store::Store for $ty {
            $(
                async fn $name(
                    &self,
                    $(_: $($arg_ty)*),*
                ) -> ::core::result::Result<$($ret)*, $crate::StoreError> $answer
            )*
            $($own)*
        }
    };
}

/// Every [`Store`] method's parameters and success type, for [`impl_store!`]; a method missing
/// here cannot be listed there. Kept in the trait's order.
#[doc(hidden)]
#[macro_export]
macro_rules! __store_signature {
    (ping, $($k:tt)*) => {
        $crate::impl_store!(@push { ping () (()) } $($k)*);
    };
    (create_user, $($k:tt)*) => {
        $crate::impl_store!(@push { create_user (
            [user: $crate::domain::NewUser] [session: $crate::store::NewSession]
        ) ($crate::domain::User) } $($k)*);
    };
    (find_credentials_by_email, $($k:tt)*) => {
        $crate::impl_store!(@push { find_credentials_by_email (
            [email: &$crate::domain::Email]
        ) (Option<$crate::domain::Credentials>) } $($k)*);
    };
    (find_credentials, $($k:tt)*) => {
        $crate::impl_store!(@push { find_credentials (
            [user_id: $crate::domain::UserId]
        ) (Option<$crate::domain::Credentials>) } $($k)*);
    };
    (replace_password_hash, $($k:tt)*) => {
        $crate::impl_store!(@push { replace_password_hash (
            [user_id: $crate::domain::UserId] [hash: &$crate::domain::PasswordHash]
            [now: $crate::store::__private::OffsetDateTime]
        ) (()) } $($k)*);
    };
    (create_session, $($k:tt)*) => {
        $crate::impl_store!(@push { create_session (
            [session: $crate::store::NewSession]
        ) (()) } $($k)*);
    };
    (find_live_session, $($k:tt)*) => {
        $crate::impl_store!(@push { find_live_session (
            [session_id: $crate::domain::SessionId]
        ) (Option<$crate::store::SessionWithUser>) } $($k)*);
    };
    (rotate_refresh_token, $($k:tt)*) => {
        $crate::impl_store!(@push { rotate_refresh_token (
            [presented: $crate::store::TokenHash] [successor: $crate::store::TokenHash]
            [policy: $crate::store::RefreshPolicy] [now: $crate::store::__private::OffsetDateTime]
        ) ($crate::store::Rotation) } $($k)*);
    };
    (revoke_session, $($k:tt)*) => {
        $crate::impl_store!(@push { revoke_session (
            [user_id: $crate::domain::UserId] [session_id: $crate::domain::SessionId]
            [now: $crate::store::__private::OffsetDateTime]
        ) (bool) } $($k)*);
    };
    (revoke_sessions, $($k:tt)*) => {
        $crate::impl_store!(@push { revoke_sessions (
            [user_id: $crate::domain::UserId] [keep: Option<$crate::domain::SessionId>]
            [now: $crate::store::__private::OffsetDateTime]
        ) (Vec<$crate::domain::SessionId>) } $($k)*);
    };
    (list_live_sessions, $($k:tt)*) => {
        $crate::impl_store!(@push { list_live_sessions (
            [user_id: $crate::domain::UserId] [now: $crate::store::__private::OffsetDateTime]
        ) (Vec<$crate::domain::SessionRecord>) } $($k)*);
    };
    (update_profile, $($k:tt)*) => {
        $crate::impl_store!(@push { update_profile (
            [user_id: $crate::domain::UserId] [change: &$crate::domain::ProfileChange]
            [now: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::domain::User>) } $($k)*);
    };
    (create_reset_token, $($k:tt)*) => {
        $crate::impl_store!(@push { create_reset_token (
            [user_id: $crate::domain::UserId] [token: $crate::store::TokenHash]
            [expires_at: $crate::store::__private::OffsetDateTime] [now: $crate::store::__private::OffsetDateTime]
        ) (()) } $($k)*);
    };
    (find_reset_token_user, $($k:tt)*) => {
        $crate::impl_store!(@push { find_reset_token_user (
            [token: $crate::store::TokenHash] [now: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::domain::Credentials>) } $($k)*);
    };
    (reset_password, $($k:tt)*) => {
        $crate::impl_store!(@push { reset_password (
            [token: $crate::store::TokenHash] [hash: &$crate::domain::PasswordHash]
            [now: $crate::store::__private::OffsetDateTime]
        ) (Option<($crate::domain::UserId, Vec<$crate::domain::SessionId>)>) } $($k)*);
    };
    (change_password, $($k:tt)*) => {
        $crate::impl_store!(@push { change_password (
            [user_id: $crate::domain::UserId] [hash: &$crate::domain::PasswordHash]
            [keep: $crate::domain::SessionId] [now: $crate::store::__private::OffsetDateTime]
        ) (Vec<$crate::domain::SessionId>) } $($k)*);
    };
    (list_users, $($k:tt)*) => {
        $crate::impl_store!(@push { list_users (
            [query: &$crate::domain::UserQuery]
        ) ($crate::domain::UserPage) } $($k)*);
    };
    (find_user, $($k:tt)*) => {
        $crate::impl_store!(@push { find_user (
            [user_id: $crate::domain::UserId]
        ) (Option<$crate::domain::User>) } $($k)*);
    };
    (update_user, $($k:tt)*) => {
        $crate::impl_store!(@push { update_user (
            [user_id: $crate::domain::UserId] [change: &$crate::domain::AdminUserChange]
            [now: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::domain::User>) } $($k)*);
    };
    (delete_user, $($k:tt)*) => {
        $crate::impl_store!(@push { delete_user (
            [user_id: $crate::domain::UserId]
        ) (bool) } $($k)*);
    };
    (purge, $($k:tt)*) => {
        $crate::impl_store!(@push { purge (
            [ended_before: $crate::store::__private::OffsetDateTime] [limit: u32]
        ) ($crate::store::PurgeBatch) } $($k)*);
    };
}
