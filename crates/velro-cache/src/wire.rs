//! The JSON form of a cached `SessionWithUser` in Redis. Core types do not derive serde, on
//! purpose; this mirror is versioned so that a format change reads as a miss, never as garbage.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{Email, Metadata, Role, SessionId, SessionRecord, User, UserId};
use velro_core::store::SessionWithUser;

/// 2: the user's Supabase metadata, ban and soft delete.
const VERSION: u32 = 2;

#[derive(Debug, Serialize, Deserialize)]
struct CachedSession {
    v: u32,
    session: CachedRecord,
    user: CachedUser,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedRecord {
    id: Uuid,
    user_id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    last_refreshed_at: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339")]
    expires_at: OffsetDateTime,
    remember_me: bool,
    user_agent: Option<String>,
    ip: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct CachedUser {
    id: Uuid,
    email: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
    credits_balance: i64,
    role: String,
    email_confirmed: bool,
    disabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
    /// JSON text, as stored.
    user_metadata: Option<String>,
    app_metadata: Option<String>,
    #[serde(with = "time::serde::rfc3339::option")]
    banned_until: Option<OffsetDateTime>,
    #[serde(with = "time::serde::rfc3339::option")]
    deleted_at: Option<OffsetDateTime>,
}

pub(crate) fn encode(live: &SessionWithUser) -> Result<String, serde_json::Error> {
    let (s, u) = (&live.session, &live.user);
    serde_json::to_string(&CachedSession {
        v: VERSION,
        session: CachedRecord {
            id: s.id.0,
            user_id: s.user_id.0,
            created_at: s.created_at,
            last_refreshed_at: s.last_refreshed_at,
            expires_at: s.expires_at,
            remember_me: s.remember_me,
            user_agent: s.user_agent.clone(),
            ip: s.ip.clone(),
        },
        user: CachedUser {
            id: u.id.0,
            email: u.email.as_str().to_owned(),
            display_name: u.display_name.clone(),
            avatar_url: u.avatar_url.clone(),
            credits_balance: u.credits_balance,
            role: u.role.as_str().to_owned(),
            email_confirmed: u.email_confirmed,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
            user_metadata: u.user_metadata.as_ref().map(Metadata::to_stored),
            app_metadata: u.app_metadata.as_ref().map(Metadata::to_stored),
            banned_until: u.banned_until,
            deleted_at: u.deleted_at,
        },
    })
}

/// None for anything this version did not write.
pub(crate) fn decode(raw: &str) -> Option<SessionWithUser> {
    let cached: CachedSession = serde_json::from_str(raw).ok()?;
    if cached.v != VERSION {
        return None;
    }
    let (s, u) = (cached.session, cached.user);
    Some(SessionWithUser {
        session: SessionRecord {
            id: SessionId(s.id),
            user_id: UserId(s.user_id),
            created_at: s.created_at,
            last_refreshed_at: s.last_refreshed_at,
            expires_at: s.expires_at,
            remember_me: s.remember_me,
            user_agent: s.user_agent,
            ip: s.ip,
        },
        user: User {
            id: UserId(u.id),
            // Written by `encode` from a parsed address.
            email: Email::from_trusted(u.email),
            display_name: u.display_name,
            avatar_url: u.avatar_url,
            credits_balance: u.credits_balance,
            role: u.role.parse::<Role>().ok()?,
            email_confirmed: u.email_confirmed,
            disabled: u.disabled,
            created_at: u.created_at,
            updated_at: u.updated_at,
            user_metadata: u.user_metadata.as_deref().and_then(Metadata::from_stored),
            app_metadata: u.app_metadata.as_deref().and_then(Metadata::from_stored),
            banned_until: u.banned_until,
            deleted_at: u.deleted_at,
        },
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn sample() -> SessionWithUser {
        let user_id = UserId(Uuid::new_v4());
        SessionWithUser {
            session: SessionRecord {
                id: SessionId(Uuid::new_v4()),
                user_id,
                created_at: datetime!(2024-05-01 12:00:00.123456 UTC),
                last_refreshed_at: Some(datetime!(2024-05-02 08:30:00.000001 UTC)),
                expires_at: datetime!(2024-05-09 08:30:00 +02:00),
                remember_me: true,
                user_agent: Some("Mozilla/5.0 \"quoted\"".into()),
                ip: None,
            },
            user: User {
                id: user_id,
                email: Email::parse("ada@example.com").expect("valid"),
                display_name: Some("Ada Lovelace".into()),
                avatar_url: None,
                credits_balance: -3,
                role: Role::Creator,
                email_confirmed: true,
                disabled: false,
                created_at: datetime!(2024-01-01 00:00:00 UTC),
                updated_at: datetime!(2024-05-01 12:00:00.999999999 UTC),
                user_metadata: Metadata::from_stored(r#"{"plan":"pro","n":[1,{"x":null}]}"#),
                app_metadata: Metadata::from_stored(r#"{"provider":"email"}"#),
                banned_until: Some(datetime!(2030-01-01 00:00:00 UTC)),
                deleted_at: None,
            },
        }
    }

    #[test]
    fn a_session_round_trips_exactly() {
        let live = sample();
        let back = decode(&encode(&live).expect("encode")).expect("decode");
        assert_eq!(back.session, live.session);
        assert_eq!(back.user, live.user);
        assert_eq!(
            back.session.expires_at.offset(),
            live.session.expires_at.offset()
        );
    }

    #[test]
    fn other_versions_and_garbage_read_as_misses() {
        let raw = encode(&sample()).expect("encode");
        let other = raw.replacen("\"v\":2", "\"v\":3", 1);
        assert_ne!(raw, other);
        assert!(decode(&other).is_none());
        assert!(decode("{}").is_none());
        assert!(decode("not json").is_none());
        assert!(decode(&raw.replace("\"creator\"", "\"owner\"")).is_none());
    }
}
