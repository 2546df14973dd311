//! Test and bench support for `velro import supabase`: a Supabase project's `auth` schema (our own
//! DDL, read off GoTrue's migrations) and a deterministic seeder. Every seeded user is a function
//! of its index, so a test can ask [`user`] what user 42's password or live refresh token is
//! instead of keeping 100,000 rows in memory. Velro's own schema does not belong here.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Connection, PgConnection, PgPool};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// The `auth` schema, its roles, and an application `public.profiles` table.
pub const AUTH_SCHEMA: &str = include_str!("auth_schema.sql");

/// The passwords seeded users have: user `i` has `PASSWORDS[i % 4]`. Hashing 100,000 distinct
/// passwords at cost 10 would take longer than the import this fixture exists to time.
pub const PASSWORDS: [&str; 4] = [
    "supabase pass zero",
    "supabase pass one",
    "supabase pass two",
    "supabase pass three",
];

/// GoTrue's own cost (`bcrypt.DefaultCost`).
pub const BCRYPT_COST: u32 = 10;

/// How many rows one refresh-token chain has: the live token and this many revoked parents.
pub const SPENT_PER_SESSION: usize = 2;

/// The counter a v2 session stands at.
pub const V2_COUNTER: u64 = 3;

/// What sort of account user `i` is, by `i % 20`: each quirk an importer meets, in every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Confirmed, with a password, a profile, and (even indexes) a legacy session.
    Normal,
    /// Never confirmed their email.
    Unconfirmed,
    /// Signed in on two devices.
    TwoSessions,
    /// Banned until far in the future, with a session.
    Banned,
    /// One session on GoTrue's newer refresh-token scheme (state on `auth.sessions`).
    V2Session,
    /// Signed up with Google: empty password, no email identity.
    OAuthOnly,
    /// Signed out everywhere: a session whose every token is revoked.
    SignedOut,
    /// Soft-deleted, scrubbed as GoTrue does it (email obfuscated, password NULL).
    SoftDeletedScrubbed,
    /// Inserted by hand in SQL: NULL where GoTrue writes '', no metadata, no identity.
    HandInserted,
    /// An anonymous sign-in: no email, no password.
    Anonymous,
    /// Soft-deleted by setting `deleted_at` only.
    SoftDeletedKept,
    /// Email stored with capitals (hand-inserted), and a profile role Velro does not know.
    MixedCaseEmail,
}

impl Kind {
    pub fn of(index: u64) -> Self {
        match index % 20 {
            1 => Self::Unconfirmed,
            2 => Self::TwoSessions,
            3 => Self::Banned,
            4 => Self::V2Session,
            5 => Self::OAuthOnly,
            6 => Self::SignedOut,
            7 => Self::SoftDeletedScrubbed,
            9 => Self::HandInserted,
            15 => Self::Anonymous,
            17 => Self::SoftDeletedKept,
            19 => Self::MixedCaseEmail,
            _ => Self::Normal,
        }
    }

    /// Whether an importer should carry the user over.
    pub fn importable(self) -> bool {
        !matches!(
            self,
            Self::SoftDeletedScrubbed | Self::SoftDeletedKept | Self::Anonymous
        )
    }
}

/// One seeded session and the refresh tokens a client of it may hold.
#[derive(Debug, Clone)]
pub struct SeededSession {
    pub id: Uuid,
    /// The newest non-revoked token; None when the session is signed out.
    pub live_token: Option<String>,
    /// Revoked predecessors, oldest first.
    pub spent_tokens: Vec<String>,
    /// On the v2 scheme (no `refresh_tokens` rows).
    pub v2: bool,
}

/// Everything a test needs to know about seeded user `index`.
#[derive(Debug, Clone)]
pub struct SeededUser {
    pub index: u64,
    pub kind: Kind,
    pub id: Uuid,
    /// As stored in `auth.users.email`.
    pub stored_email: Option<String>,
    /// What the user types to sign in.
    pub email: String,
    pub password: Option<&'static str>,
    pub created_at: OffsetDateTime,
    pub display_name: Option<String>,
    pub profile_role: Option<&'static str>,
    pub credits: i64,
    pub sessions: Vec<SeededSession>,
}

/// The moment seeded histories are laid out from; fixed so that seeds are reproducible.
fn epoch() -> OffsetDateTime {
    time::macros::datetime!(2025-01-01 00:00:00 UTC)
}

fn v4_like(tag: u16, index: u64, sub: u8) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[0..2].copy_from_slice(&tag.to_be_bytes());
    bytes[9] = sub;
    bytes[10..16].copy_from_slice(&index.to_be_bytes()[2..8]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// A legacy token: 12 characters of `[a-z0-9]`, unique per (user, session, position), scrambled
/// by a multiplication that is a bijection modulo 36^12 so that neighbours do not look alike.
fn legacy_token(index: u64, session: u8, position: u8) -> String {
    const MODULUS: u128 = 4_738_381_338_321_616_896; // 36^12
    const SCRAMBLE: u128 = 2_862_933_555_777_941_757; // odd and not a multiple of 3
    let n = (u128::from(index) << 8) | (u128::from(session) << 4) | u128::from(position);
    let mut x = (n * SCRAMBLE) % MODULUS;
    let mut out = [b'0'; 12];
    for slot in out.iter_mut().rev() {
        let digit = (x % 36) as u8;
        *slot = if digit < 10 {
            b'0' + digit
        } else {
            b'a' + digit - 10
        };
        x /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn v2_key(index: u64) -> [u8; 32] {
    Sha256::digest(format!("velro fixture hmac key {index}")).into()
}

/// GoTrue's v2 refresh token, written from its description: base64url(0x00 ‖ session id ‖
/// uvarint(counter) ‖ HMAC-SHA-256(key, all before)[..16] ‖ SHA-256(all before)[..4]).
pub fn v2_token(key: &[u8], session_id: Uuid, counter: u64) -> String {
    let mut raw = vec![0u8];
    raw.extend_from_slice(session_id.as_bytes());
    let mut rest = counter;
    loop {
        let low = (rest & 0x7f) as u8;
        rest >>= 7;
        if rest == 0 {
            raw.push(low);
            break;
        }
        raw.push(low | 0x80);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(&raw);
    raw.extend_from_slice(&mac.finalize().into_bytes()[..16]);
    let checksum = Sha256::digest(&raw);
    raw.extend_from_slice(&checksum[..4]);
    URL_SAFE_NO_PAD.encode(raw)
}

/// Seeded user `index`, as the seeder writes it.
pub fn user(index: u64) -> SeededUser {
    let kind = Kind::of(index);
    let id = v4_like(0x05e4, index, 0);
    let email = format!("user{index}@example.com");
    let stored_email = match kind {
        Kind::Anonymous => None,
        Kind::SoftDeletedScrubbed => Some(format!("{index}-deleted@obfuscated.invalid")),
        Kind::MixedCaseEmail => Some(format!("User{index}@Example.COM")),
        _ => Some(email.clone()),
    };
    let password = match kind {
        Kind::OAuthOnly | Kind::Anonymous | Kind::SoftDeletedScrubbed => None,
        _ => Some(PASSWORDS[(index % 4) as usize]),
    };
    let session_count: u8 = match kind {
        Kind::TwoSessions => 2,
        Kind::Banned | Kind::V2Session | Kind::OAuthOnly | Kind::SignedOut | Kind::HandInserted => {
            1
        }
        Kind::Normal | Kind::Unconfirmed | Kind::MixedCaseEmail if index.is_multiple_of(2) => 1,
        _ => 0,
    };
    let sessions = (0..session_count)
        .map(|s| {
            let session_id = v4_like(0x5e55, index, s);
            if kind == Kind::V2Session {
                let key = v2_key(index);
                SeededSession {
                    id: session_id,
                    live_token: Some(v2_token(&key, session_id, V2_COUNTER)),
                    spent_tokens: (1..V2_COUNTER)
                        .map(|c| v2_token(&key, session_id, c))
                        .collect(),
                    v2: true,
                }
            } else {
                let chain: Vec<String> = (0..=SPENT_PER_SESSION as u8)
                    .map(|p| legacy_token(index, s, p))
                    .collect();
                let (spent, live) = chain.split_at(SPENT_PER_SESSION);
                SeededSession {
                    id: session_id,
                    live_token: (kind != Kind::SignedOut).then(|| live[0].clone()),
                    spent_tokens: if kind == Kind::SignedOut {
                        chain.clone()
                    } else {
                        spent.to_vec()
                    },
                    v2: false,
                }
            }
        })
        .collect();
    let has_profile = !matches!(kind, Kind::Anonymous | Kind::SoftDeletedScrubbed);
    SeededUser {
        index,
        kind,
        id,
        stored_email,
        email,
        password,
        created_at: epoch() + Duration::seconds(index as i64),
        display_name: (has_profile && kind != Kind::HandInserted)
            .then(|| format!("Seed User {index}")),
        profile_role: has_profile.then_some(match kind {
            Kind::MixedCaseEmail => "superuser",
            _ if index.is_multiple_of(3) => "creator",
            _ => "viewer",
        }),
        credits: 100 + index as i64,
        sessions,
    }
}

/// Creates the `auth` schema and `public.profiles` in an empty database.
pub async fn create_schema(url: &str) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    sqlx::raw_sql(AUTH_SCHEMA).execute(&mut conn).await?;
    conn.close().await
}

/// A login role that may read the `auth` tables but neither owns them nor bypasses row-level
/// security: what a project's restricted role looks like, and what an import must refuse.
pub async fn create_restricted_reader(
    url: &str,
    role: &str,
    password: &str,
) -> Result<(), sqlx::Error> {
    let mut conn = PgConnection::connect(url).await?;
    let create = format!(
        "DO $r$ BEGIN CREATE ROLE \"{role}\" LOGIN NOBYPASSRLS PASSWORD '{password}'; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; END $r$;\n\
         GRANT USAGE ON SCHEMA auth TO \"{role}\";\n\
         GRANT SELECT ON ALL TABLES IN SCHEMA auth TO \"{role}\";\n\
         GRANT SELECT ON public.profiles TO \"{role}\";"
    );
    sqlx::raw_sql(&create).execute(&mut conn).await?;
    conn.close().await
}

/// The four password hashes, made once by a real bcrypt at GoTrue's cost; `$2a$` (what Go
/// writes) for even indexes, `$2b$` for odd ones.
pub fn password_hashes() -> Result<Vec<String>, bcrypt::BcryptError> {
    PASSWORDS
        .iter()
        .enumerate()
        .map(|(i, password)| {
            let version = if i.is_multiple_of(2) {
                bcrypt::Version::TwoA
            } else {
                bcrypt::Version::TwoB
            };
            Ok(bcrypt::hash_with_result(password, BCRYPT_COST)?.format_for_version(version))
        })
        .collect()
}

/// Writes users `range` (and their identities, sessions, tokens and profiles) with COPY, in
/// batches, so that 100,000 users take seconds.
pub async fn seed(
    url: &str,
    range: std::ops::Range<u64>,
    hashes: &[String],
) -> Result<(), sqlx::Error> {
    const BATCH: u64 = 5_000;
    let pool = PgPoolOptions::new().max_connections(1).connect(url).await?;
    let mut start = range.start;
    while start < range.end {
        let end = (start + BATCH).min(range.end);
        let rows = Rows::build(start..end, hashes);
        let mut conn = pool.acquire().await?;
        let mut tx = conn.begin().await?;
        for (statement, data) in rows.copies() {
            let mut copy = tx.copy_in_raw(statement).await?;
            copy.send(data.as_bytes()).await?;
            copy.finish().await?;
        }
        tx.commit().await?;
        start = end;
    }
    pool.close().await;
    Ok(())
}

/// Rotates a legacy session's live token as GoTrue does on a refresh (revoke it, insert a child
/// naming it as parent) and returns the new live token; for the rehearsal's stand-in writer.
pub async fn rotate_legacy(
    pool: &PgPool,
    session_id: Uuid,
    new_token: &str,
) -> Result<Option<String>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let live: Option<(i64, String, String)> = sqlx::query_as(
        "SELECT id, token, user_id FROM auth.refresh_tokens \
         WHERE session_id = $1 AND NOT COALESCE(revoked, false) ORDER BY id DESC LIMIT 1 \
         FOR UPDATE",
    )
    .bind(session_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some((id, token, user_id)) = live else {
        return Ok(None);
    };
    sqlx::query("UPDATE auth.refresh_tokens SET revoked = true, updated_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO auth.refresh_tokens (instance_id, token, user_id, revoked, created_at, \
         updated_at, parent, session_id) \
         VALUES ('00000000-0000-0000-0000-000000000000', $1, $2, false, now(), now(), $3, $4)",
    )
    .bind(new_token)
    .bind(user_id)
    .bind(token)
    .bind(session_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE auth.sessions SET refreshed_at = now() AT TIME ZONE 'UTC', updated_at = now() WHERE id = $1")
        .bind(session_id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(Some(new_token.to_owned()))
}

/// CSV text for one COPY per table.
struct Rows {
    users: String,
    identities: String,
    sessions: String,
    refresh_tokens: String,
    profiles: String,
}

const NIL_INSTANCE: &str = "00000000-0000-0000-0000-000000000000";

const COPY_USERS: &str = "COPY auth.users (instance_id, id, aud, role, email, \
     encrypted_password, email_confirmed_at, confirmation_token, recovery_token, \
     email_change_token_new, email_change, last_sign_in_at, raw_app_meta_data, \
     raw_user_meta_data, is_super_admin, created_at, updated_at, phone_change, \
     phone_change_token, email_change_token_current, banned_until, reauthentication_token, \
     deleted_at, is_anonymous) FROM STDIN WITH (FORMAT csv)";
const COPY_IDENTITIES: &str = "COPY auth.identities (provider_id, user_id, identity_data, \
     provider, last_sign_in_at, created_at, updated_at) FROM STDIN WITH (FORMAT csv)";
const COPY_SESSIONS: &str = "COPY auth.sessions (id, user_id, created_at, updated_at, aal, \
     refreshed_at, user_agent, ip, refresh_token_hmac_key, refresh_token_counter) \
     FROM STDIN WITH (FORMAT csv)";
const COPY_REFRESH_TOKENS: &str = "COPY auth.refresh_tokens (instance_id, token, user_id, \
     revoked, created_at, updated_at, parent, session_id) FROM STDIN WITH (FORMAT csv)";
const COPY_PROFILES: &str =
    "COPY public.profiles (id, full_name, role, credits) FROM STDIN WITH (FORMAT csv)";

/// One CSV field: None is an unquoted empty field (NULL), Some("") a quoted one ('').
fn field(out: &mut String, value: Option<&str>) {
    if let Some(value) = value {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    }
}

fn row(out: &mut String, fields: &[Option<&str>]) {
    for (i, value) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        field(out, *value);
    }
    out.push('\n');
}

fn ts(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

impl Rows {
    fn build(range: std::ops::Range<u64>, hashes: &[String]) -> Self {
        let mut rows = Self {
            users: String::new(),
            identities: String::new(),
            sessions: String::new(),
            refresh_tokens: String::new(),
            profiles: String::new(),
        };
        for index in range {
            rows.add(&user(index), hashes);
        }
        rows
    }

    fn copies(&self) -> [(&'static str, &String); 5] {
        [
            (COPY_USERS, &self.users),
            (COPY_IDENTITIES, &self.identities),
            (COPY_SESSIONS, &self.sessions),
            (COPY_REFRESH_TOKENS, &self.refresh_tokens),
            (COPY_PROFILES, &self.profiles),
        ]
    }

    fn add(&mut self, u: &SeededUser, hashes: &[String]) {
        let hand = u.kind == Kind::HandInserted || u.kind == Kind::MixedCaseEmail;
        // GoTrue writes '' into these; SQL-inserted rows leave them NULL.
        let blank = if hand { None } else { Some("") };
        let id = u.id.to_string();
        let created = ts(u.created_at);
        let signed_in = ts(u.created_at + Duration::days(1));
        let confirmed = (u.kind != Kind::Unconfirmed && u.kind != Kind::Anonymous)
            .then(|| ts(u.created_at + Duration::minutes(5)));
        let hash = match u.password {
            Some(_) => Some(hashes[(u.index % 4) as usize].as_str()),
            None if u.kind == Kind::SoftDeletedScrubbed => None,
            None => Some(""),
        };
        let provider = if u.kind == Kind::OAuthOnly {
            "google"
        } else if u.kind == Kind::Anonymous {
            "anonymous"
        } else {
            "email"
        };
        let app_meta = (!hand).then(|| {
            format!(r#"{{"provider": "{provider}", "providers": ["{provider}"], "plan": "pro"}}"#)
        });
        let user_meta = match (&u.display_name, hand) {
            (_, true) => None,
            (Some(name), false) => Some(format!(r#"{{"full_name": "{name}"}}"#)),
            (None, false) => Some("{}".to_owned()),
        };
        let banned = (u.kind == Kind::Banned).then(|| ts(epoch() + Duration::days(36_500)));
        let deleted = matches!(u.kind, Kind::SoftDeletedScrubbed | Kind::SoftDeletedKept)
            .then(|| ts(u.created_at + Duration::days(2)));
        let anonymous = if u.kind == Kind::Anonymous {
            "true"
        } else {
            "false"
        };
        row(
            &mut self.users,
            &[
                Some(NIL_INSTANCE),
                Some(&id),
                if hand { None } else { Some("authenticated") },
                if hand { None } else { Some("authenticated") },
                u.stored_email.as_deref(),
                hash,
                confirmed.as_deref(),
                blank,
                blank,
                blank,
                blank,
                (!hand).then_some(signed_in.as_str()),
                app_meta.as_deref(),
                user_meta.as_deref(),
                (!hand).then_some("false"),
                Some(&created),
                Some(&created),
                blank,
                blank,
                blank,
                banned.as_deref(),
                blank,
                deleted.as_deref(),
                Some(anonymous),
            ],
        );
        if !hand && u.kind != Kind::SoftDeletedScrubbed {
            let (provider_id, data) = if u.kind == Kind::OAuthOnly {
                let sub = format!("google-{}", u.index);
                let data = format!(
                    r#"{{"sub": "{sub}", "email": "{}", "email_verified": true}}"#,
                    u.email
                );
                (sub, data)
            } else if u.kind == Kind::Anonymous {
                (id.clone(), format!(r#"{{"sub": "{id}"}}"#))
            } else {
                let data = format!(
                    r#"{{"sub": "{id}", "email": "{}", "email_verified": false}}"#,
                    u.email
                );
                (id.clone(), data)
            };
            row(
                &mut self.identities,
                &[
                    Some(&provider_id),
                    Some(&id),
                    Some(&data),
                    Some(provider),
                    Some(&signed_in),
                    Some(&created),
                    Some(&created),
                ],
            );
        }
        for (s, session) in u.sessions.iter().enumerate() {
            let sid = session.id.to_string();
            let opened = u.created_at + Duration::hours(1 + s as i64);
            let (key, counter) = if session.v2 {
                (
                    Some(URL_SAFE_NO_PAD.encode(v2_key(u.index))),
                    Some(V2_COUNTER.to_string()),
                )
            } else {
                (None, None)
            };
            let chain: Vec<&String> = session
                .spent_tokens
                .iter()
                .chain(session.live_token.iter())
                .collect();
            // `refreshed_at` is a timestamp without time zone: UTC written without an offset.
            let refreshed = opened + Duration::hours(chain.len() as i64);
            let refreshed = format!(
                "{} {:02}:{:02}:{:02}",
                refreshed.date(),
                refreshed.hour(),
                refreshed.minute(),
                refreshed.second()
            );
            row(
                &mut self.sessions,
                &[
                    Some(&sid),
                    Some(&id),
                    Some(&ts(opened)),
                    Some(&ts(opened)),
                    Some("aal1"),
                    (!hand).then_some(refreshed.as_str()),
                    (!hand).then_some("Mozilla/5.0 (fixture)"),
                    (!hand).then_some("203.0.113.7"),
                    key.as_deref(),
                    counter.as_deref(),
                ],
            );
            if session.v2 {
                continue;
            }
            for (position, token) in chain.iter().enumerate() {
                let issued = opened + Duration::hours(position as i64);
                let revoked = session.live_token.as_ref() != Some(*token);
                // The successor's creation is when this one was revoked.
                let updated = if revoked {
                    issued + Duration::hours(1)
                } else {
                    issued
                };
                let parent = position.checked_sub(1).map(|p| chain[p].as_str());
                row(
                    &mut self.refresh_tokens,
                    &[
                        Some(NIL_INSTANCE),
                        Some(token),
                        Some(&id),
                        // Hand-inserted live rows leave `revoked` NULL.
                        if hand && !revoked {
                            None
                        } else if revoked {
                            Some("true")
                        } else {
                            Some("false")
                        },
                        Some(&ts(issued)),
                        Some(&ts(updated)),
                        parent,
                        Some(&sid),
                    ],
                );
            }
        }
        if let Some(role) = u.profile_role {
            let credits = u.credits.to_string();
            row(
                &mut self.profiles,
                &[
                    Some(&id),
                    u.display_name.as_deref(),
                    Some(role),
                    Some(&credits),
                ],
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_tokens_are_twelve_lowercase_characters_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for index in 0..2_000 {
            for s in 0..2 {
                for p in 0..3 {
                    let token = legacy_token(index, s, p);
                    assert_eq!(token.len(), 12);
                    assert!(token
                        .bytes()
                        .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase()));
                    assert!(seen.insert(token));
                }
            }
        }
    }

    #[test]
    fn csv_fields_tell_null_from_empty_and_escape_quotes() {
        let mut out = String::new();
        row(&mut out, &[None, Some(""), Some(r#"{"a": "b"}"#)]);
        assert_eq!(out, ",\"\",\"{\"\"a\"\": \"\"b\"\"}\"\n");
    }
}
