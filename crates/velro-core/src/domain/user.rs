//! Users and sessions as the services and stores exchange them. None of these is serialised to
//! clients directly: velro-http has its own wire types.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AvatarUrl, DisplayName, Email, Metadata, MetadataWrite};
use crate::Secret;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserId(pub Uuid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId(pub Uuid);

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    Viewer,
    Creator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Creator => "creator",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "creator" => Ok(Self::Creator),
            "admin" => Ok(Self::Admin),
            _ => Err("must be one of viewer, creator, admin"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub email: Email,
    pub display_name: Option<String>,
    pub avatar_url: Option<String>,
    pub credits_balance: i64,
    pub role: Role,
    pub email_confirmed: bool,
    pub disabled: bool,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// Supabase's `user_metadata` as stored; `None` for accounts that never had one (made
    /// through the v1 API), which show GoTrue's identity data instead.
    pub user_metadata: Option<Metadata>,
    /// Supabase's `app_metadata` as stored (Velro's role lives in `role`, not here).
    pub app_metadata: Option<Metadata>,
    /// A timed ban (GoTrue's `banned_until`): refused like a disabled account until then.
    pub banned_until: Option<OffsetDateTime>,
    /// Soft-deleted (GoTrue's `should_soft_delete`): the row stays, scrubbed and disabled.
    pub deleted_at: Option<OffsetDateTime>,
}

impl User {
    /// Whether a ban is in force at `now`.
    pub fn is_banned(&self, now: OffsetDateTime) -> bool {
        self.banned_until.is_some_and(|until| until > now)
    }

    /// Whether the account may not sign in or keep a session: disabled, or banned at `now`.
    pub fn is_refused(&self, now: OffsetDateTime) -> bool {
        self.disabled || self.is_banned(now)
    }
}

/// A PHC string (Argon2id) or a bcrypt hash. Redacted in `Debug`.
#[derive(Debug, Clone)]
pub struct PasswordHash(pub Secret<String>);

impl PasswordHash {
    pub fn new(phc: String) -> Self {
        Self(Secret::new(phc))
    }

    pub fn as_str(&self) -> &str {
        self.0.expose()
    }
}

/// A user together with the hash that proves who they are.
#[derive(Debug, Clone)]
pub struct Credentials {
    pub user: User,
    pub password_hash: PasswordHash,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub password_hash: PasswordHash,
    pub display_name: Option<DisplayName>,
    pub credits_balance: i64,
    /// The address counts as confirmed from the start (GoTrue's auto-confirm sign-up).
    pub email_confirmed: bool,
    pub avatar_url: Option<AvatarUrl>,
    /// Supabase's metadata objects; `None` (NULL) for accounts made through the v1 API.
    pub user_metadata: Option<Metadata>,
    pub app_metadata: Option<Metadata>,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub id: SessionId,
    pub user_id: UserId,
    pub created_at: OffsetDateTime,
    pub last_refreshed_at: Option<OffsetDateTime>,
    /// The current refresh token's expiry.
    pub expires_at: OffsetDateTime,
    pub remember_me: bool,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
}

/// A profile edit: `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    pub display_name: Option<Option<DisplayName>>,
    pub avatar_url: Option<Option<AvatarUrl>>,
}

/// What the Supabase surface changes on an account, in one write: all of it or, when a part is
/// refused, none of it. `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct AccountChange {
    pub email: Option<Email>,
    pub password_hash: Option<PasswordHash>,
    pub email_confirmed: Option<bool>,
    pub display_name: Option<Option<DisplayName>>,
    pub avatar_url: Option<Option<AvatarUrl>>,
    pub user_metadata: Option<MetadataWrite>,
    pub app_metadata: Option<MetadataWrite>,
    pub role: Option<Role>,
    /// `Some(None)` lifts a ban.
    pub banned_until: Option<Option<OffsetDateTime>>,
    pub disabled: Option<bool>,
    pub deleted_at: Option<OffsetDateTime>,
    /// Revoke every session of the user in the same transaction (but `keep_session`).
    pub revoke_sessions: bool,
    pub keep_session: Option<SessionId>,
    /// Spend every outstanding reset token of the user in the same transaction.
    pub spend_reset_tokens: bool,
}

/// What the admin API may change. `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct AdminUserChange {
    pub disabled: Option<bool>,
    pub role: Option<Role>,
    pub credits_balance: Option<i64>,
    pub email_confirmed: Option<bool>,
}

/// A position in the newest-first user listing: the last user of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserCursor {
    pub created_at: OffsetDateTime,
    pub id: UserId,
}

impl UserCursor {
    pub fn after(user: &User) -> Self {
        Self {
            created_at: user.created_at,
            id: user.id,
        }
    }

    /// Opaque to clients: base64url of `<unix micros>:<uuid>`.
    pub fn encode(&self) -> String {
        let micros = self.created_at.unix_timestamp_nanos() / 1_000;
        URL_SAFE_NO_PAD.encode(format!("{micros}:{}", self.id.0))
    }

    pub fn decode(raw: &str) -> Option<Self> {
        let bytes = URL_SAFE_NO_PAD.decode(raw).ok()?;
        let text = String::from_utf8(bytes).ok()?;
        let (micros, id) = text.split_once(':')?;
        let micros: i128 = micros.parse().ok()?;
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(micros.checked_mul(1_000)?).ok()?;
        let id = Uuid::parse_str(id).ok()?;
        Some(Self {
            created_at,
            id: UserId(id),
        })
    }
}

#[derive(Debug, Clone)]
pub struct UserQuery {
    /// Lowercased literal prefix; `%` and `_` have no special meaning.
    pub email_prefix: Option<String>,
    pub after: Option<UserCursor>,
    pub limit: u32,
}

#[derive(Debug, Clone)]
pub struct UserPage {
    pub users: Vec<User>,
    pub next: Option<UserCursor>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Clock;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        let cursor = UserCursor {
            created_at: crate::SystemClock.now(),
            id: UserId(Uuid::new_v4()),
        };
        assert_eq!(UserCursor::decode(&cursor.encode()), Some(cursor));
        for bad in [
            "",
            "!!",
            "bm90LWEtY3Vyc29y",
            &URL_SAFE_NO_PAD.encode("1:not-a-uuid"),
        ] {
            assert_eq!(UserCursor::decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn roles_parse_exactly() {
        assert_eq!("creator".parse::<Role>(), Ok(Role::Creator));
        assert!("Admin".parse::<Role>().is_err());
    }
}
