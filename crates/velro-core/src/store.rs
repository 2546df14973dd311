//! The storage port. Each method is one use case's worth of work and atomic inside; transactions
//! never leak through it. Implementations live in velro-store.

use std::sync::Arc;

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::domain::{
    AccountChange, AdminUserChange, Credentials, Email, EmailChangeRedeemed, FlowState,
    FlowStateId, Incident, IncidentId, IssuedAuthCode, MailPurpose, MailState, MailTokenIssued,
    NewEmailChange, NewFlowState, NewIncident, NewIncidentUpdate, NewMailToken, NewUser,
    PasswordHash, ProfileChange, RedeemedMailToken, Role, SessionId, SessionRecord, StateMinutes,
    StatusSample, UnixMinute, User, UserId, UserPage, UserQuery,
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

/// Which of a user's metadata objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataField {
    User,
    App,
}

impl MetadataField {
    /// The object's name in GoTrue's user JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user_metadata",
            Self::App => "app_metadata",
        }
    }
}

/// The outcome of [`Store::update_account`].
// One value per call, taken apart at once: boxing the user would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum AccountUpdate {
    /// Applied: the user as changed and the sessions revoked.
    Updated {
        user: User,
        revoked: Vec<SessionId>,
    },
    NoUser,
    /// The object would pass [`crate::domain::MAX_METADATA_BYTES`] after the write; nothing
    /// was written.
    TooLarge(MetadataField),
}

/// Rows one purge removed, per table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub refresh_tokens: u64,
    pub sessions: u64,
    pub reset_tokens: u64,
    /// PKCE flow states begun before the cutoff, exchanged or not.
    pub flow_states: u64,
}

impl Purged {
    /// Each kind with its table's name (the metric label and `velro purge`'s output).
    pub fn by_table(&self) -> [(&'static str, u64); 4] {
        [
            ("refresh_tokens", self.refresh_tokens),
            ("sessions", self.sessions),
            ("password_reset_tokens", self.reset_tokens),
            ("flow_states", self.flow_states),
        ]
    }

    pub fn total(&self) -> u64 {
        self.refresh_tokens + self.sessions + self.reset_tokens + self.flow_states
    }
}

impl std::ops::AddAssign for Purged {
    fn add_assign(&mut self, other: Self) {
        self.refresh_tokens += other.refresh_tokens;
        self.sessions += other.sessions;
        self.reset_tokens += other.reset_tokens;
        self.flow_states += other.flow_states;
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

/// An operator's console session as stored: who signed in, and since when.
#[derive(Debug, Clone)]
pub struct ConsoleSessionRecord {
    /// The admin account and the user session its sign-in created; `None` for the service key.
    pub user: Option<(UserId, SessionId)>,
    pub created_at: OffsetDateTime,
}

/// One recorded change of a run-time flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagChange {
    pub flag: String,
    pub old_value: bool,
    pub new_value: bool,
    /// Who: `service-key` or `user:<id>`; never an email or a secret.
    pub actor: String,
    pub changed_at: OffsetDateTime,
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// A cheap round trip, for readiness checks.
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates the user and its first session together. `Conflict("email")` when taken.
    async fn create_user(&self, user: NewUser, session: NewSession) -> Result<User, StoreError>;

    /// Creates a user without a session, with its role and ban, in one statement (the Supabase
    /// admin API's create). `Conflict("email")` or `Conflict("user_id")` when taken.
    async fn insert_user(
        &self,
        user: NewUser,
        role: Role,
        banned_until: Option<OffsetDateTime>,
    ) -> Result<User, StoreError>;

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

    /// The session if it is not revoked and its user exists and is not disabled. Shared, so
    /// that a cache hands out the entry it holds instead of copying it for every token check.
    async fn find_live_session(
        &self,
        session_id: SessionId,
    ) -> Result<Option<Arc<SessionWithUser>>, StoreError>;

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

    /// Spends the token and every other outstanding reset token of its user, changing nothing
    /// else: the holder proved they read the mail (GoTrue's recovery link signs them in).
    /// `None` when the token was not usable; of concurrent calls with one token, one succeeds.
    async fn redeem_reset_token(
        &self,
        token: TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<UserId>, StoreError>;

    /// Sets the password and revokes every other session of the user, at once.
    async fn change_password(
        &self,
        user_id: UserId,
        hash: &PasswordHash,
        keep: SessionId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError>;

    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError>;

    /// GoTrue's admin listing (`page`/`per_page`): newest first, `limit` users after skipping
    /// `offset`, and how many users match in all. `filter`, when given, keeps the users whose
    /// email or full name contains it, ignoring case (a literal substring: `%` and `_` in it
    /// match only themselves).
    async fn page_users(
        &self,
        offset: u64,
        limit: u32,
        filter: Option<&str>,
    ) -> Result<(Vec<User>, u64), StoreError>;

    async fn find_user(&self, user_id: UserId) -> Result<Option<User>, StoreError>;

    /// Applies the change; disabling revokes every session in the same transaction.
    async fn update_user(
        &self,
        user_id: UserId,
        change: &AdminUserChange,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError>;

    /// Applies a Supabase account change in one transaction that locks the user's row first:
    /// metadata merges apply to the value as locked, so concurrent changes of one user all land,
    /// with the revocations and token spending the change asks for. Nothing is written when the
    /// outcome is not `Updated`, nor on `Conflict("email")` (the new address is taken).
    async fn update_account(
        &self,
        user_id: UserId,
        change: &AccountChange,
        now: OffsetDateTime,
    ) -> Result<AccountUpdate, StoreError>;

    /// The user a refresh token (live, spent or revoked) was issued to.
    async fn find_refresh_token_user(&self, token: TokenHash) -> Result<Option<User>, StoreError>;

    /// Deletes the user with its sessions and tokens. False when there was no such user.
    async fn delete_user(&self, user_id: UserId) -> Result<bool, StoreError>;

    /// Records this instance's samples. A (component, minute) that another instance already
    /// recorded keeps the worse state (and its reason), so several instances count once. Samples
    /// of minutes before `purge_before` are deleted in the same call.
    async fn record_status(
        &self,
        samples: &[StatusSample],
        purge_before: UnixMinute,
    ) -> Result<(), StoreError>;

    /// Minutes per (component, UTC day, state) from `since` on.
    async fn status_history(&self, since: UnixMinute) -> Result<Vec<StateMinutes>, StoreError>;

    /// Each component's most recent sample from `since` on; components without one are absent.
    async fn latest_status(&self, since: UnixMinute) -> Result<Vec<StatusSample>, StoreError>;

    /// Stores the incident with its first update.
    async fn create_incident(&self, incident: NewIncident) -> Result<Incident, StoreError>;

    /// Appends an update and sets the incident's status from it (and `resolved_at` when it
    /// resolves, cleared when it reopens). `None` when there is no such incident.
    async fn add_incident_update(
        &self,
        incident_id: IncidentId,
        update: NewIncidentUpdate,
    ) -> Result<Option<Incident>, StoreError>;

    /// The newest `limit` incidents, newest first, each with its updates (newest first).
    async fn list_incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError>;
    /// Records a new console session and deletes those idle since before `stale_before`, so the
    /// table holds only live ones.
    async fn create_console_session(
        &self,
        token: TokenHash,
        record: ConsoleSessionRecord,
        stale_before: OffsetDateTime,
    ) -> Result<(), StoreError>;

    /// The console session if it was seen at or after `stale_before`; marks it seen `now`.
    async fn touch_console_session(
        &self,
        token: TokenHash,
        stale_before: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<Option<ConsoleSessionRecord>, StoreError>;

    /// As `touch_console_session` without marking it seen: for requests a page makes by itself
    /// (reloading charts), which must not keep an unattended session alive.
    async fn find_console_session(
        &self,
        token: TokenHash,
        stale_before: OffsetDateTime,
    ) -> Result<Option<ConsoleSessionRecord>, StoreError>;

    async fn delete_console_session(&self, token: TokenHash) -> Result<(), StoreError>;

    async fn record_flag_change(&self, change: &FlagChange) -> Result<(), StoreError>;

    /// The newest change of each flag named, for instances to agree on the current values.
    async fn latest_flag_change(&self, flag: &str) -> Result<Option<FlagChange>, StoreError>;

    /// The database server's connections to this database by state (PostgreSQL's
    /// `pg_stat_activity`); empty for an embedded database.
    async fn server_connections(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// The newest changes of any flag, newest first.
    async fn recent_flag_changes(&self, limit: u32) -> Result<Vec<FlagChange>, StoreError>;
    /// Removes one batch of rows that nothing needs any more: up to `limit` sessions that ended
    /// (revoked, or expired) before `ended_before`, with their refresh tokens, up to `limit`
    /// reset tokens used or expired before it, and up to `limit` PKCE flow states begun before
    /// it (a retention longer than a link's and an auth code's lifetime leaves none in use). A live session's spent refresh tokens stay:
    /// reuse detection needs them for as long as the session lives. Every statement is a short
    /// transaction of its own touching at most `limit` rows, and deletes only rows that still
    /// qualify, so purges running at once (several instances) are safe.
    async fn purge(
        &self,
        ended_before: OffsetDateTime,
        limit: u32,
    ) -> Result<PurgeBatch, StoreError>;

    /// Creates a user that has not confirmed its address and has no session (GoTrue's sign-up
    /// without auto-confirm, its invite, its admin links), marked as awaiting confirmation, and
    /// invited now when `invited`. `Conflict("email")` when taken.
    async fn create_pending_user(&self, user: NewUser, invited: bool) -> Result<User, StoreError>;

    /// The user's mail-flow state; the default for a user without one (or no such user).
    async fn mail_state(&self, user_id: UserId) -> Result<MailState, StoreError>;

    /// Stores a mail's two hashes, spends the user's earlier unredeemed ones of that purpose
    /// and records the sending (and, for an email change, the new address), unless the
    /// previous mail of that purpose is younger than `min_interval` (for `Recovery`, the
    /// newest recovery token is that mail). Of concurrent calls for one user, at most one
    /// passes a non-zero `min_interval`.
    async fn issue_mail_token(&self, token: NewMailToken) -> Result<MailTokenIssued, StoreError>;

    /// Spends a live token of one of `purposes` and every other unredeemed token of its
    /// purpose for its user, and applies it, all at once: a confirmation or recovery confirms
    /// the address; an email change moves the user to the pending address (confirmed), or
    /// `Conflict("email")` when that address was taken meanwhile. `None` when the token is
    /// unknown, spent, expired or of another purpose; of concurrent calls, one succeeds.
    async fn redeem_mail_token(
        &self,
        token: TokenHash,
        purposes: [MailPurpose; 2],
        now: OffsetDateTime,
    ) -> Result<Option<RedeemedMailToken>, StoreError>;

    /// Stores a PKCE flow state (no auth code yet) for a mail flow of the user's.
    async fn create_flow_state(&self, state: NewFlowState) -> Result<(), StoreError>;

    /// Gives the user's newest flow state of `code.method` the auth code (its hash) and the
    /// time of issue, replacing any code it had (GoTrue's `issueAuthCode`). False when the user
    /// has no flow state of that method.
    async fn issue_auth_code(&self, code: IssuedAuthCode) -> Result<bool, StoreError>;

    /// The flow state whose issued auth code hashes to `code`.
    async fn find_flow_state(&self, code: TokenHash) -> Result<Option<FlowState>, StoreError>;

    /// Removes the flow state; true for the one call that removed it (an auth code is spent
    /// once, whatever the concurrency).
    async fn delete_flow_state(&self, id: FlowStateId) -> Result<bool, StoreError>;

    /// Stores an email change's tokens (one or both halves), records the pending address, when
    /// it was mailed and how many confirmations complete it, and spends earlier unredeemed
    /// email-change tokens (`replace_all`), unless the previous email-change mail is younger
    /// than `min_interval`.
    async fn issue_email_change(
        &self,
        change: NewEmailChange,
    ) -> Result<MailTokenIssued, StoreError>;

    /// Spends a live email-change token of either half (and the other unredeemed tokens of
    /// that half) and counts the confirmation, all at once: the last one awaited moves the user
    /// to the pending address (confirmed) and spends every email-change token, or is
    /// `Conflict("email")` when that address was taken meanwhile (nothing spent). `None` when
    /// the token is unknown, spent, expired, of another purpose, or nothing is pending.
    async fn redeem_email_change(
        &self,
        token: TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<EmailChangeRedeemed>, StoreError>;
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
/// a decorator's own methods sit next to the list of those it passes through. The signatures
/// are looked up one method at a time, so a crate that lists most of them needs
/// `#![recursion_limit = "256"]`.
///
/// ```
/// #![recursion_limit = "256"]
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
///         create_reset_token, find_reset_token_user, reset_password, redeem_reset_token, change_password,
///         list_users, page_users, find_user, update_user, delete_user, record_status,
///         insert_user, update_account, find_refresh_token_user,
///         status_history, latest_status, create_incident, add_incident_update, list_incidents,
///         create_console_session, touch_console_session, find_console_session,
///         delete_console_session, record_flag_change, latest_flag_change, server_connections,
///         recent_flag_changes, purge, create_pending_user, mail_state, issue_mail_token,
///         redeem_mail_token, create_flow_state, issue_auth_code, find_flow_state,
///         delete_flow_state, issue_email_change, redeem_email_change;
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
    (insert_user, $($k:tt)*) => {
        $crate::impl_store!(@push { insert_user (
            [user: $crate::domain::NewUser] [role: $crate::domain::Role]
            [banned_until: Option<$crate::store::__private::OffsetDateTime>]
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
        ) (Option<::std::sync::Arc<$crate::store::SessionWithUser>>) } $($k)*);
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
    (redeem_reset_token, $($k:tt)*) => {
        $crate::impl_store!(@push { redeem_reset_token (
            [token: $crate::store::TokenHash] [now: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::domain::UserId>) } $($k)*);
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
    (page_users, $($k:tt)*) => {
        $crate::impl_store!(@push { page_users (
            [offset: u64] [limit: u32] [filter: Option<&str>]
        ) ((::std::vec::Vec<$crate::domain::User>, u64)) } $($k)*);
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
    (update_account, $($k:tt)*) => {
        $crate::impl_store!(@push { update_account (
            [user_id: $crate::domain::UserId] [change: &$crate::domain::AccountChange]
            [now: $crate::store::__private::OffsetDateTime]
        ) ($crate::store::AccountUpdate) } $($k)*);
    };
    (find_refresh_token_user, $($k:tt)*) => {
        $crate::impl_store!(@push { find_refresh_token_user (
            [token: $crate::store::TokenHash]
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
    (record_status, $($k:tt)*) => {
        $crate::impl_store!(@push { record_status (
            [samples: &[$crate::domain::StatusSample]] [purge_before: $crate::domain::UnixMinute]
        ) (()) } $($k)*);
    };
    (status_history, $($k:tt)*) => {
        $crate::impl_store!(@push { status_history (
            [since: $crate::domain::UnixMinute]
        ) (Vec<$crate::domain::StateMinutes>) } $($k)*);
    };
    (latest_status, $($k:tt)*) => {
        $crate::impl_store!(@push { latest_status (
            [since: $crate::domain::UnixMinute]
        ) (Vec<$crate::domain::StatusSample>) } $($k)*);
    };
    (create_incident, $($k:tt)*) => {
        $crate::impl_store!(@push { create_incident (
            [incident: $crate::domain::NewIncident]
        ) ($crate::domain::Incident) } $($k)*);
    };
    (add_incident_update, $($k:tt)*) => {
        $crate::impl_store!(@push { add_incident_update (
            [incident_id: $crate::domain::IncidentId] [update: $crate::domain::NewIncidentUpdate]
        ) (Option<$crate::domain::Incident>) } $($k)*);
    };
    (list_incidents, $($k:tt)*) => {
        $crate::impl_store!(@push { list_incidents (
            [limit: u32]
        ) (Vec<$crate::domain::Incident>) } $($k)*);
    };
    (create_console_session, $($k:tt)*) => {
        $crate::impl_store!(@push { create_console_session (
            [token: $crate::store::TokenHash] [record: $crate::store::ConsoleSessionRecord]
            [stale_before: $crate::store::__private::OffsetDateTime]
        ) (()) } $($k)*);
    };
    (touch_console_session, $($k:tt)*) => {
        $crate::impl_store!(@push { touch_console_session (
            [token: $crate::store::TokenHash] [stale_before: $crate::store::__private::OffsetDateTime]
            [now: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::store::ConsoleSessionRecord>) } $($k)*);
    };
    (find_console_session, $($k:tt)*) => {
        $crate::impl_store!(@push { find_console_session (
            [token: $crate::store::TokenHash] [stale_before: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::store::ConsoleSessionRecord>) } $($k)*);
    };
    (delete_console_session, $($k:tt)*) => {
        $crate::impl_store!(@push { delete_console_session (
            [token: $crate::store::TokenHash]
        ) (()) } $($k)*);
    };
    (record_flag_change, $($k:tt)*) => {
        $crate::impl_store!(@push { record_flag_change (
            [change: &$crate::store::FlagChange]
        ) (()) } $($k)*);
    };
    (latest_flag_change, $($k:tt)*) => {
        $crate::impl_store!(@push { latest_flag_change (
            [flag: &str]
        ) (Option<$crate::store::FlagChange>) } $($k)*);
    };
    (server_connections, $($k:tt)*) => {
        $crate::impl_store!(@push { server_connections () (Vec<(String, i64)>) } $($k)*);
    };
    (recent_flag_changes, $($k:tt)*) => {
        $crate::impl_store!(@push { recent_flag_changes (
            [limit: u32]
        ) (Vec<$crate::store::FlagChange>) } $($k)*);
    };
    (create_pending_user, $($k:tt)*) => {
        $crate::impl_store!(@push { create_pending_user (
            [user: $crate::domain::NewUser] [invited: bool]
        ) ($crate::domain::User) } $($k)*);
    };
    (mail_state, $($k:tt)*) => {
        $crate::impl_store!(@push { mail_state (
            [user_id: $crate::domain::UserId]
        ) ($crate::domain::MailState) } $($k)*);
    };
    (issue_mail_token, $($k:tt)*) => {
        $crate::impl_store!(@push { issue_mail_token (
            [token: $crate::domain::NewMailToken]
        ) ($crate::domain::MailTokenIssued) } $($k)*);
    };
    (redeem_mail_token, $($k:tt)*) => {
        $crate::impl_store!(@push { redeem_mail_token (
            [token: $crate::store::TokenHash] [purposes: [$crate::domain::MailPurpose; 2]]
            [now: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::domain::RedeemedMailToken>) } $($k)*);
    };
    (create_flow_state, $($k:tt)*) => {
        $crate::impl_store!(@push { create_flow_state (
            [state: $crate::domain::NewFlowState]
        ) (()) } $($k)*);
    };
    (issue_auth_code, $($k:tt)*) => {
        $crate::impl_store!(@push { issue_auth_code (
            [code: $crate::domain::IssuedAuthCode]
        ) (bool) } $($k)*);
    };
    (find_flow_state, $($k:tt)*) => {
        $crate::impl_store!(@push { find_flow_state (
            [code: $crate::store::TokenHash]
        ) (Option<$crate::domain::FlowState>) } $($k)*);
    };
    (delete_flow_state, $($k:tt)*) => {
        $crate::impl_store!(@push { delete_flow_state (
            [id: $crate::domain::FlowStateId]
        ) (bool) } $($k)*);
    };
    (issue_email_change, $($k:tt)*) => {
        $crate::impl_store!(@push { issue_email_change (
            [change: $crate::domain::NewEmailChange]
        ) ($crate::domain::MailTokenIssued) } $($k)*);
    };
    (redeem_email_change, $($k:tt)*) => {
        $crate::impl_store!(@push { redeem_email_change (
            [token: $crate::store::TokenHash]
            [now: $crate::store::__private::OffsetDateTime]
        ) (Option<$crate::domain::EmailChangeRedeemed>) } $($k)*);
    };
}

/// A user carried over from another auth server, its id kept. Written by [`ImportStore`] only.
#[derive(Debug, Clone)]
pub struct ImportedUser {
    pub id: UserId,
    pub email: Email,
    /// The other server's hash, verbatim (bcrypt verifies as it is and is rehashed at the next
    /// sign-in). None: the account has no password (OAuth-only); it is stored unusable.
    pub password_hash: Option<PasswordHash>,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub credits_balance: i64,
    pub email_confirmed_at: Option<OffsetDateTime>,
    pub last_sign_in_at: Option<OffsetDateTime>,
    pub banned_until: Option<OffsetDateTime>,
    /// Whether the account is refused sign-in now (banned at the time of the import).
    pub disabled: bool,
    /// JSON objects as text, kept for the Supabase-compatible surface.
    pub user_metadata: Option<String>,
    pub app_metadata: Option<String>,
    pub created_at: OffsetDateTime,
}

/// A refresh token the other server spent, kept so that presenting it again is recognised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpentToken {
    pub hash: TokenHash,
    pub spent_at: OffsetDateTime,
}

/// A signed-in session carried over with its live refresh token, so that the client's next
/// refresh rotates it here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedSession {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub last_refreshed_at: Option<OffsetDateTime>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub remember_me: bool,
    pub live_token: TokenHash,
    pub live_issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
    /// Oldest first; the live token comes after the last of them.
    pub spent_tokens: Vec<SpentToken>,
}

/// What importing one user did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserImport {
    Inserted,
    Updated,
    Unchanged,
    /// Another user (another id) already has this email here.
    EmailTaken,
}

/// What importing one session did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionImport {
    Inserted,
    /// The other server rotated it since the last import: its chain was replaced.
    Updated,
    Unchanged,
    /// Rotated, revoked or signed out here since it was imported: this side is ahead and wins.
    MovedOnHere,
    /// Its user is not here (not imported).
    UserMissing,
}

/// One page of an import, written in one transaction.
#[derive(Debug, Clone, Default)]
pub struct ImportBatch {
    pub users: Vec<ImportedUser>,
    /// Written after `users`, so a session may belong to a user of the same batch.
    pub sessions: Vec<ImportedSession>,
    /// Deleted on the other server since an earlier import: removed here with their sessions.
    pub remove_users: Vec<UserId>,
    /// Signed out on the other server: revoked here unless they moved on here. Imported
    /// sessions of `users` that are in neither list are gone over there and are revoked too.
    pub end_sessions: Vec<SessionId>,
}

/// What one batch did: one outcome per user and per session, in order, and two counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportOutcome {
    pub users: Vec<UserImport>,
    pub sessions: Vec<SessionImport>,
    pub users_removed: u64,
    pub sessions_ended: u64,
}

/// The bulk writes of `velro import`. Separate from [`Store`] because only the import command
/// uses it.
#[async_trait]
pub trait ImportStore: Send + Sync + 'static {
    /// Writes the batch in one transaction, rolled back instead of committed when `apply` is
    /// false (a dry run sees exactly what a real run would do). Users are upserted by id, ids
    /// kept; a stored hash that is no longer the other server's kind (rehashed here at a
    /// sign-in) is kept. A session whose newest token here is not one the other server issued
    /// (rotated or revoked here since) is left alone: this side is ahead.
    async fn import_batch(
        &self,
        batch: &ImportBatch,
        now: OffsetDateTime,
        apply: bool,
    ) -> Result<ImportOutcome, StoreError>;
}
