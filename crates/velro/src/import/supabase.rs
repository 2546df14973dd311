//! What a Supabase row means in Velro: which users and sessions carry over, mapped to the core's
//! import types, and why the others do not. Pure functions of the rows and the clock, so the
//! rules are tested without a database.

use std::collections::HashMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{AvatarUrl, DisplayName, Email, PasswordHash, Role, SessionId, UserId};
use velro_core::service::{ForeignSession, ForeignUser};
use velro_core::Secret;

use super::source::{SessionRow, TokenRow, UserRow, SPENT_TOKENS_KEPT};

/// Why a row is not carried over, as the report counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Skip {
    SoftDeleted,
    Anonymous,
    NoEmail,
    SsoUser,
    EmailRefused,
    EmailTaken,
    SignedOut,
    UserNotImported,
    V2KeyEncrypted,
    V2KeyUnreadable,
    MovedOnInVelro,
}

impl Skip {
    pub fn reason(self) -> &'static str {
        match self {
            Self::SoftDeleted => "soft-deleted on Supabase (removed here if imported before)",
            Self::Anonymous => "anonymous sign-in (no email)",
            Self::NoEmail => "no email (phone-only)",
            Self::SsoUser => "SSO user (signs in through the identity provider)",
            Self::EmailRefused => "email Velro does not accept",
            Self::EmailTaken => "email belongs to another Velro user",
            Self::SignedOut => "signed out on Supabase (no live refresh token)",
            Self::UserNotImported => "its user was not imported",
            Self::V2KeyEncrypted => {
                "v2 refresh-token key encrypted at rest on Supabase: this session signs in again"
            }
            Self::V2KeyUnreadable => "v2 refresh-token key unreadable: this session signs in again",
            Self::MovedOnInVelro => "rotated or signed out in Velro since imported (Velro wins)",
        }
    }
}

/// Something carried over, but not as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Note {
    NoPassword,
    UnverifiableHash,
    RoleUnknown,
    DisplayNameDropped,
    AvatarDropped,
    CreditsNegative,
}

impl Note {
    pub fn text(self) -> &'static str {
        match self {
            Self::NoPassword => "no password (OAuth-only): imported without one; a reset sets one",
            Self::UnverifiableHash => {
                "password hash of a kind Velro cannot verify: imported without one"
            }
            Self::RoleUnknown => "profile role not viewer/creator/admin: viewer kept",
            Self::DisplayNameDropped => "display name empty or over 100 characters: left empty",
            Self::AvatarDropped => "avatar URL not an https URL: left empty",
            Self::CreditsNegative => "negative credits: set to 0",
        }
    }
}

/// A user row's verdict.
#[derive(Debug)]
pub enum UserVerdict {
    Import(Box<ForeignUser>, Vec<Note>),
    /// Soft-deleted: skipped, and removed from Velro if an earlier run imported it.
    Remove(UserId),
    Skip(Skip),
}

pub fn map_user(row: UserRow, now: OffsetDateTime) -> UserVerdict {
    if row.deleted_at.is_some() {
        return UserVerdict::Remove(UserId(row.id));
    }
    if row.is_sso_user {
        return UserVerdict::Skip(Skip::SsoUser);
    }
    // Hand-inserted rows may hold '' where GoTrue writes NULL, and the reverse.
    let email = row
        .email
        .as_deref()
        .map(str::trim)
        .filter(|e| !e.is_empty());
    let Some(email) = email else {
        return UserVerdict::Skip(if row.is_anonymous {
            Skip::Anonymous
        } else {
            Skip::NoEmail
        });
    };
    let Ok(email) = Email::parse(email) else {
        return UserVerdict::Skip(Skip::EmailRefused);
    };
    let mut notes = Vec::new();
    let password_hash = match row.encrypted_password.as_deref().map(str::trim) {
        None | Some("") => {
            notes.push(Note::NoPassword);
            None
        }
        Some(hash) if is_verifiable(hash) => Some(PasswordHash::new(hash.to_owned())),
        Some(_) => {
            notes.push(Note::UnverifiableHash);
            None
        }
    };
    let display_name = row
        .profile_display_name
        .and_then(|name| match DisplayName::parse(&name) {
            Ok(name) => Some(name.into_inner()),
            Err(_) => {
                notes.push(Note::DisplayNameDropped);
                None
            }
        });
    let avatar_url = row
        .profile_avatar_url
        .filter(|url| !url.trim().is_empty())
        .and_then(|url| match AvatarUrl::parse(&url) {
            Ok(url) => Some(url.into_inner()),
            Err(_) => {
                notes.push(Note::AvatarDropped);
                None
            }
        });
    let role = match row.profile_role.as_deref().map(str::trim) {
        None | Some("") => Role::Viewer,
        Some(role) => role.parse().unwrap_or_else(|_| {
            notes.push(Note::RoleUnknown);
            Role::Viewer
        }),
    };
    let credits_balance = row.profile_credits.map(|credits| {
        if credits < 0 {
            notes.push(Note::CreditsNegative);
            0
        } else {
            credits
        }
    });
    UserVerdict::Import(
        Box::new(ForeignUser {
            id: UserId(row.id),
            email,
            password_hash,
            display_name,
            avatar_url,
            role,
            credits_balance,
            email_confirmed_at: row.email_confirmed_at,
            last_sign_in_at: row.last_sign_in_at,
            banned_until: row.banned_until,
            user_metadata: row.user_metadata,
            app_metadata: row.app_metadata,
            created_at: row.created_at.unwrap_or(now),
        }),
        notes,
    )
}

/// bcrypt in any of its spellings, and Argon2id PHC strings: what Velro's hasher verifies.
/// Anything else (GoTrue's `$fbscrypt$`, app-level encrypted `{…}` blobs) would never match.
fn is_verifiable(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$", "$argon2id$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

/// A session row's verdict.
#[derive(Debug)]
pub enum SessionVerdict {
    Import(Box<ForeignSession>),
    /// Signed out on Supabase: revoked here if an earlier run imported it.
    End(SessionId),
    Skip(Skip),
}

/// Maps each session with its tokens (`tokens` grouped by session, ascending id).
pub fn map_sessions(
    sessions: Vec<SessionRow>,
    tokens: Vec<TokenRow>,
    now: OffsetDateTime,
) -> Vec<SessionVerdict> {
    let mut by_session: HashMap<Uuid, Vec<TokenRow>> = HashMap::new();
    for token in tokens {
        by_session.entry(token.session_id).or_default().push(token);
    }
    sessions
        .into_iter()
        .map(|session| {
            let tokens = by_session.remove(&session.id).unwrap_or_default();
            map_session(session, tokens, now)
        })
        .collect()
}

fn map_session(row: SessionRow, tokens: Vec<TokenRow>, now: OffsetDateTime) -> SessionVerdict {
    if row.not_after.is_some_and(|end| end <= now) {
        return SessionVerdict::End(SessionId(row.id));
    }
    let created_at = row.created_at.unwrap_or(now);
    let chain = match (&row.refresh_token_hmac_key, row.refresh_token_counter) {
        (Some(key), Some(counter)) => match v2_chain(row.id, key, counter) {
            Ok(chain) => chain,
            Err(skip) => return SessionVerdict::Skip(skip),
        },
        _ => legacy_chain(&tokens),
    };
    let Some((live, live_issued_at, spent)) = chain else {
        return SessionVerdict::End(SessionId(row.id));
    };
    let refreshed_at = row.refreshed_at;
    SessionVerdict::Import(Box::new(ForeignSession {
        id: SessionId(row.id),
        user_id: UserId(row.user_id),
        created_at,
        last_refreshed_at: refreshed_at,
        user_agent: row.user_agent,
        ip: row.ip,
        live_token: live,
        live_issued_at: live_issued_at.or(refreshed_at).unwrap_or(created_at),
        spent_tokens: spent
            .into_iter()
            .map(|(token, at)| (token, at.or(refreshed_at).unwrap_or(created_at)))
            .collect(),
    }))
}

type Chain = (
    Secret<String>,
    Option<OffsetDateTime>,
    Vec<(Secret<String>, Option<OffsetDateTime>)>,
);

/// The live token is the newest row not revoked; the revoked rows before it are its spent
/// ancestors, with the time each was revoked. A row revoked after the live one was issued
/// (GoTrue's reuse interval can leave siblings) is an ancestor too.
fn legacy_chain(tokens: &[TokenRow]) -> Option<Chain> {
    let live = tokens
        .iter()
        .filter(|t| !t.revoked)
        .filter(|t| t.token.as_deref().is_some_and(|s| !s.is_empty()))
        .max_by_key(|t| t.id)?;
    let spent = tokens
        .iter()
        .filter(|t| t.revoked && t.id < live.id)
        .filter_map(|t| {
            let token = t.token.as_deref().filter(|s| !s.is_empty())?;
            Some((Secret::new(token.to_owned()), t.updated_at.or(t.created_at)))
        })
        .collect();
    let token = live.token.clone().unwrap_or_default();
    Some((Secret::new(token), live.created_at, spent))
}

/// GoTrue's v2 tokens are a pure function of the session's key and counter, so the live one
/// (and the few before it that a lagging client may hold) can be computed and hashed like any
/// other. A key encrypted at rest would need the project's encryption key: not supported.
fn v2_chain(session: Uuid, key: &str, counter: i64) -> Result<Option<Chain>, Skip> {
    if key.starts_with('{') {
        return Err(Skip::V2KeyEncrypted);
    }
    let key = URL_SAFE_NO_PAD
        .decode(key.trim())
        .map_err(|_| Skip::V2KeyUnreadable)?;
    let Ok(counter) = u64::try_from(counter) else {
        return Err(Skip::V2KeyUnreadable);
    };
    let live = Secret::new(v2_token(&key, session, counter));
    let first = counter.saturating_sub(SPENT_TOKENS_KEPT as u64);
    let spent = (first..counter)
        .map(|c| (Secret::new(v2_token(&key, session, c)), None))
        .collect();
    Ok(Some((live, None, spent)))
}

/// base64url(0x00 ‖ session id ‖ uvarint(counter) ‖ HMAC-SHA-256[..16] ‖ SHA-256[..4]).
fn v2_token(key: &[u8], session: Uuid, counter: u64) -> String {
    let mut raw = Vec::with_capacity(48);
    raw.push(0u8);
    raw.extend_from_slice(session.as_bytes());
    let mut value = counter;
    while value >= 0x80 {
        raw.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    raw.push(value as u8);
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(&raw);
    let signature = mac.finalize().into_bytes();
    raw.extend_from_slice(&signature[..16]);
    let checksum = Sha256::digest(&raw);
    raw.extend_from_slice(&checksum[..4]);
    URL_SAFE_NO_PAD.encode(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn user_row() -> UserRow {
        UserRow {
            id: Uuid::new_v4(),
            email: Some("Ada@Example.com ".to_owned()),
            encrypted_password: Some(format!("$2a$10${}", "x".repeat(53))),
            email_confirmed_at: None,
            last_sign_in_at: None,
            banned_until: None,
            deleted_at: None,
            created_at: None,
            is_anonymous: false,
            is_sso_user: false,
            user_metadata: None,
            app_metadata: None,
            profile_display_name: None,
            profile_avatar_url: None,
            profile_role: None,
            profile_credits: None,
        }
    }

    fn now() -> OffsetDateTime {
        time::macros::datetime!(2026-12-01 00:00 UTC)
    }

    #[test]
    fn users_are_carried_over_or_skipped_by_the_rules() {
        let skipped = |row: UserRow| match map_user(row, now()) {
            UserVerdict::Skip(skip) => Some(skip),
            _ => None,
        };
        assert_eq!(
            skipped(UserRow {
                email: None,
                is_anonymous: true,
                ..user_row()
            }),
            Some(Skip::Anonymous)
        );
        assert_eq!(
            skipped(UserRow {
                email: Some(String::new()),
                ..user_row()
            }),
            Some(Skip::NoEmail)
        );
        assert_eq!(
            skipped(UserRow {
                email: Some("not an email".to_owned()),
                ..user_row()
            }),
            Some(Skip::EmailRefused)
        );
        assert_eq!(
            skipped(UserRow {
                is_sso_user: true,
                ..user_row()
            }),
            Some(Skip::SsoUser)
        );
        let deleted = user_row();
        let id = deleted.id;
        assert!(matches!(
            map_user(UserRow { deleted_at: Some(now()), ..deleted }, now()),
            UserVerdict::Remove(UserId(removed)) if removed == id
        ));
    }

    #[test]
    fn a_carried_over_user_keeps_its_id_hash_and_lowercased_email() {
        let row = UserRow {
            profile_role: Some("superuser".to_owned()),
            profile_credits: Some(-5),
            profile_display_name: Some("  ".to_owned()),
            ..user_row()
        };
        let id = row.id;
        let hash = row.encrypted_password.clone().unwrap_or_default();
        let UserVerdict::Import(user, mut notes) = map_user(row, now()) else {
            panic!("imported");
        };
        assert_eq!(user.id, UserId(id));
        assert_eq!(user.email.as_str(), "ada@example.com");
        assert_eq!(
            user.password_hash.as_ref().map(PasswordHash::as_str),
            Some(hash.as_str())
        );
        assert_eq!(user.role, Role::Viewer);
        assert_eq!(user.credits_balance, Some(0));
        assert_eq!(user.created_at, now());
        notes.sort();
        assert_eq!(
            notes,
            [
                Note::RoleUnknown,
                Note::DisplayNameDropped,
                Note::CreditsNegative
            ]
        );
        for (stored, note) in [
            (None, Note::NoPassword),
            (Some(""), Note::NoPassword),
            (
                Some("$fbscrypt$v=1,n=16384$abc$def"),
                Note::UnverifiableHash,
            ),
            (Some("{\"key_id\":\"k\"}"), Note::UnverifiableHash),
        ] {
            let row = UserRow {
                encrypted_password: stored.map(str::to_owned),
                ..user_row()
            };
            let UserVerdict::Import(user, notes) = map_user(row, now()) else {
                panic!("imported");
            };
            assert!(user.password_hash.is_none());
            assert_eq!(notes, [note]);
        }
    }

    fn token(session: Uuid, id: i64, text: &str, revoked: bool) -> TokenRow {
        let at = now() - Duration::days(30) + Duration::hours(id);
        TokenRow {
            session_id: session,
            id,
            token: Some(text.to_owned()),
            revoked,
            created_at: Some(at),
            updated_at: Some(at + Duration::minutes(1)),
        }
    }

    fn session_row(id: Uuid) -> SessionRow {
        SessionRow {
            id,
            user_id: Uuid::new_v4(),
            created_at: Some(now() - Duration::days(31)),
            refreshed_at: None,
            user_agent: None,
            ip: None,
            not_after: None,
            refresh_token_hmac_key: None,
            refresh_token_counter: None,
        }
    }

    #[test]
    fn the_live_token_is_the_newest_unrevoked_row_and_older_revoked_rows_are_spent() {
        let s = Uuid::new_v4();
        let tokens = vec![
            token(s, 1, "aaaaaaaaaaaa", true),
            token(s, 2, "bbbbbbbbbbbb", true),
            token(s, 3, "cccccccccccc", false),
        ];
        let verdicts = map_sessions(vec![session_row(s)], tokens, now());
        let [SessionVerdict::Import(session)] = verdicts.as_slice() else {
            panic!("one import: {verdicts:?}");
        };
        assert_eq!(session.live_token.expose(), "cccccccccccc");
        let spent: Vec<&str> = session
            .spent_tokens
            .iter()
            .map(|(t, _)| t.expose().as_str())
            .collect();
        assert_eq!(spent, ["aaaaaaaaaaaa", "bbbbbbbbbbbb"]);
        assert_eq!(
            session.spent_tokens[1].1,
            now() - Duration::days(30) + Duration::hours(2) + Duration::minutes(1)
        );
    }

    #[test]
    fn sessions_without_a_live_token_or_past_not_after_are_ended() {
        let s = Uuid::new_v4();
        let all_revoked = vec![token(s, 1, "aaaaaaaaaaaa", true)];
        let ended = map_sessions(vec![session_row(s)], all_revoked, now());
        assert!(matches!(ended[..], [SessionVerdict::End(SessionId(id))] if id == s));
        let expired = SessionRow {
            not_after: Some(now() - Duration::seconds(1)),
            ..session_row(s)
        };
        let tokens = vec![token(s, 1, "aaaaaaaaaaaa", false)];
        assert!(matches!(
            map_sessions(vec![expired], tokens, now())[..],
            [SessionVerdict::End(_)]
        ));
    }

    #[test]
    fn v2_sessions_yield_their_computed_tokens_and_encrypted_keys_are_skipped() {
        let s = Uuid::parse_str("6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b").unwrap_or_default();
        let key = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let v2 = SessionRow {
            refresh_token_hmac_key: Some(key.clone()),
            refresh_token_counter: Some(300),
            ..session_row(s)
        };
        let verdicts = map_sessions(vec![v2], Vec::new(), now());
        let [SessionVerdict::Import(session)] = verdicts.as_slice() else {
            panic!("imported: {verdicts:?}");
        };
        let live = URL_SAFE_NO_PAD
            .decode(session.live_token.expose())
            .unwrap_or_default();
        // 1 version byte, 16 id bytes, a two-byte varint for 300, 16 + 4 check bytes.
        assert_eq!(live.len(), 39);
        assert_eq!(&live[1..17], s.as_bytes());
        assert_eq!(&live[17..19], &[0xac, 0x02]);
        assert_eq!(session.spent_tokens.len(), SPENT_TOKENS_KEPT as usize);
        let encrypted = SessionRow {
            refresh_token_hmac_key: Some("{\"key_id\":\"k\",\"data\":\"…\"}".to_owned()),
            refresh_token_counter: Some(1),
            ..session_row(s)
        };
        assert!(matches!(
            map_sessions(vec![encrypted], Vec::new(), now())[..],
            [SessionVerdict::Skip(Skip::V2KeyEncrypted)]
        ));
    }
}
