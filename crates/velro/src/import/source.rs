//! Reading a Supabase project's `auth` schema over its direct PostgreSQL URL, in keyset pages,
//! read-only and with row-level security made loud. Turning rows into Velro's types is
//! `supabase.rs`'s; this module only fetches.

use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use time::OffsetDateTime;
use uuid::Uuid;

use super::mapping::ProfileMapping;

/// How many revoked tokens per session are read, newest first, besides the live one: enough
/// for any client that is merely behind; an older token presented later is a thief's or
/// long dead either way, and is refused as unknown.
pub const SPENT_TOKENS_KEPT: i64 = 16;

/// One `auth.users` row with the mapped profile fields.
#[derive(Debug, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub email: Option<String>,
    pub encrypted_password: Option<String>,
    pub email_confirmed_at: Option<OffsetDateTime>,
    pub last_sign_in_at: Option<OffsetDateTime>,
    pub banned_until: Option<OffsetDateTime>,
    pub deleted_at: Option<OffsetDateTime>,
    pub created_at: Option<OffsetDateTime>,
    pub is_anonymous: bool,
    pub is_sso_user: bool,
    pub user_metadata: Option<String>,
    pub app_metadata: Option<String>,
    pub profile_display_name: Option<String>,
    pub profile_avatar_url: Option<String>,
    pub profile_role: Option<String>,
    pub profile_credits: Option<i64>,
}

/// One `auth.sessions` row.
#[derive(Debug, sqlx::FromRow)]
pub struct SessionRow {
    pub id: Uuid,
    pub user_id: Uuid,
    pub created_at: Option<OffsetDateTime>,
    pub refreshed_at: Option<OffsetDateTime>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub not_after: Option<OffsetDateTime>,
    pub refresh_token_hmac_key: Option<String>,
    pub refresh_token_counter: Option<i64>,
}

/// One `auth.refresh_tokens` row (legacy scheme).
#[derive(sqlx::FromRow)]
pub struct TokenRow {
    pub session_id: Uuid,
    pub id: i64,
    pub token: Option<String>,
    pub revoked: bool,
    pub created_at: Option<OffsetDateTime>,
    pub updated_at: Option<OffsetDateTime>,
}

impl std::fmt::Debug for TokenRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenRow")
            .field("session_id", &self.session_id)
            .field("id", &self.id)
            .field("revoked", &self.revoked)
            .finish_non_exhaustive()
    }
}

/// An open, read-only connection to the source project.
pub struct Source {
    pool: PgPool,
    users_sql: String,
}

const SESSIONS_SQL: &str = "SELECT s.id, s.user_id, s.created_at, \
     (s.refreshed_at AT TIME ZONE 'UTC') AS refreshed_at, s.user_agent, host(s.ip) AS ip, \
     s.not_after, s.refresh_token_hmac_key, s.refresh_token_counter \
     FROM auth.sessions s WHERE s.user_id = ANY($1) ORDER BY s.id";

/// The newest rows of each session: its live token and the revoked ones before it.
const TOKENS_SQL: &str = "SELECT session_id, id, token, revoked, created_at, updated_at FROM ( \
     SELECT t.session_id, t.id, t.token, COALESCE(t.revoked, false) AS revoked, \
            t.created_at, t.updated_at, \
            row_number() OVER (PARTITION BY t.session_id ORDER BY t.id DESC) AS newest \
     FROM auth.refresh_tokens t WHERE t.session_id = ANY($1)) r \
     WHERE newest <= $2 ORDER BY session_id, id";

impl Source {
    /// Connects read-only, with `row_security = off` so that a role row-level security would
    /// silently hide every row from gets an error instead, and checks that it can read.
    pub async fn connect(url: &str, mapping: &ProfileMapping) -> anyhow::Result<Self> {
        let options: PgConnectOptions = url.parse().context(
            "--from is not a PostgreSQL URL (postgres://user:password@host:5432/postgres)",
        )?;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(30))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute(
                        "SET row_security = off; \
                         SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
                    )
                    .await?;
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .context("could not connect to the Supabase database (--from)")?;
        let (select, join) = mapping.sql();
        let users_sql = format!(
            "SELECT u.id, u.email, u.encrypted_password, u.email_confirmed_at, \
             u.last_sign_in_at, u.banned_until, u.deleted_at, u.created_at, \
             u.is_anonymous, u.is_sso_user, \
             u.raw_user_meta_data::text AS user_metadata, \
             u.raw_app_meta_data::text AS app_metadata{select} \
             FROM auth.users u{join} \
             WHERE ($1::uuid IS NULL OR u.id > $1) ORDER BY u.id LIMIT $2"
        );
        let source = Self { pool, users_sql };
        source.check_access().await?;
        Ok(source)
    }

    /// Reads one row of each table, so that a trap shows before anything is written.
    async fn check_access(&self) -> anyhow::Result<()> {
        for table in ["users", "identities", "sessions", "refresh_tokens"] {
            let probe = format!("SELECT 1 FROM auth.{table} LIMIT 1");
            if let Err(error) = sqlx::query(&probe).fetch_optional(&self.pool).await {
                return Err(explain(error, table));
            }
        }
        // The mapped profile columns are checked by running the users query once.
        if let Err(error) = self.users_after(None, 1).await {
            return Err(error.context("reading auth.users with the profile mapping failed"));
        }
        Ok(())
    }

    pub async fn count_users(&self) -> anyhow::Result<u64> {
        let (count,): (i64,) = sqlx::query_as("SELECT count(*) FROM auth.users")
            .fetch_one(&self.pool)
            .await
            .context("counting auth.users")?;
        Ok(count.try_into().unwrap_or(0))
    }

    /// Users with ids after `after`, in id order.
    pub async fn users_after(
        &self,
        after: Option<Uuid>,
        limit: i64,
    ) -> anyhow::Result<Vec<UserRow>> {
        sqlx::query_as(&self.users_sql)
            .bind(after)
            .bind(limit)
            .fetch_all(&self.pool)
            .await
            .context("reading auth.users")
    }

    pub async fn sessions_of(&self, users: &[Uuid]) -> anyhow::Result<Vec<SessionRow>> {
        sqlx::query_as(SESSIONS_SQL)
            .bind(users)
            .fetch_all(&self.pool)
            .await
            .context("reading auth.sessions")
    }

    pub async fn tokens_of(&self, sessions: &[Uuid]) -> anyhow::Result<Vec<TokenRow>> {
        sqlx::query_as(TOKENS_SQL)
            .bind(sessions)
            .bind(SPENT_TOKENS_KEPT + 1)
            .fetch_all(&self.pool)
            .await
            .context("reading auth.refresh_tokens")
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Turns the two ways a project's role can fail to read `auth` into instructions.
fn explain(error: sqlx::Error, table: &str) -> anyhow::Error {
    let (code, message) = match &error {
        sqlx::Error::Database(db) => (
            db.code().map(|c| c.into_owned()).unwrap_or_default(),
            db.message().to_owned(),
        ),
        _ => (String::new(), String::new()),
    };
    if code == "42501" && message.contains("row-level security") {
        return anyhow::anyhow!(
            "the role in --from cannot read auth.{table}: row-level security is on for every \
             table of Supabase's auth schema, with no policies, so a role that neither owns \
             them nor has BYPASSRLS reads zero rows without an error (this import turns that \
             into this error rather than import nothing). Connect as the project's `postgres` \
             role (the direct connection string in the dashboard's database settings), or \
             grant BYPASSRLS to the role you use"
        );
    }
    if code == "42501" {
        return anyhow::anyhow!(
            "the role in --from may not read auth.{table} ({message}); connect as the \
             project's `postgres` role"
        );
    }
    if code == "42P01" || code == "3F000" {
        return anyhow::anyhow!(
            "auth.{table} does not exist: --from must be a Supabase project's database"
        );
    }
    anyhow::Error::new(error).context(format!("reading auth.{table}"))
}

/// Refuses the pooler's transaction mode, where SET does not stick to the connection.
pub fn check_url(url: &str) -> anyhow::Result<()> {
    if url.contains(":6543") {
        bail!(
            "--from points at port 6543, Supabase's transaction-mode pooler; use the direct \
             connection (port 5432) so that session settings hold"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sqlx::Connection;
    use time::OffsetDateTime;
    use url::Url;
    use velro_supabasetest::{Kind, SeededUser};

    use super::*;
    use crate::import::supabase::{map_sessions, map_user, SessionVerdict, Skip, UserVerdict};

    /// Hashes stand-ins: reading never verifies them, and real bcrypt is for the login tests.
    fn fake_hashes() -> Vec<String> {
        (0..4)
            .map(|i| format!("$2a$10${i}{}", "x".repeat(52)))
            .collect()
    }

    async fn seeded(users: u64) -> Option<String> {
        let url = velro_pgtest::fresh_database().await?;
        velro_supabasetest::create_schema(&url)
            .await
            .expect("the auth schema is created");
        velro_supabasetest::seed(&url, 0..users, &fake_hashes())
            .await
            .expect("the fixture is seeded");
        Some(url)
    }

    #[tokio::test]
    async fn a_role_that_row_level_security_hides_rows_from_is_refused_with_the_reason() {
        let Some(url) = seeded(3).await else { return };
        velro_supabasetest::create_restricted_reader(&url, "velro_import_reader", "reader")
            .await
            .expect("the role is created");
        let mut as_reader = Url::parse(&url).expect("a URL");
        as_reader
            .set_username("velro_import_reader")
            .expect("a user can be set");
        as_reader
            .set_password(Some("reader"))
            .expect("a password can be set");
        // Without the guard the role would read zero rows and "import" nothing.
        let mut plain = sqlx::PgConnection::connect(as_reader.as_str())
            .await
            .expect("the reader connects");
        let (visible,): (i64,) = sqlx::query_as("SELECT count(*) FROM auth.users")
            .fetch_one(&mut plain)
            .await
            .expect("the count runs");
        assert_eq!(visible, 0);
        let error = Source::connect(as_reader.as_str(), &ProfileMapping::default())
            .await
            .err()
            .expect("the import refuses the role");
        let message = format!("{error:#}");
        assert!(message.contains("row-level security"), "{message}");
        assert!(message.contains("BYPASSRLS"), "{message}");
        assert!(!message.contains("reader@"), "{message}");
    }

    #[tokio::test]
    async fn pages_of_users_sessions_and_tokens_map_to_what_was_seeded() {
        let seeded_users = 40;
        let Some(url) = seeded(seeded_users).await else {
            return;
        };
        let mapping = ProfileMapping::parse(
            Some("public.profiles"),
            "id",
            &[
                "display_name=full_name".to_owned(),
                "role=role".to_owned(),
                "credits=credits".to_owned(),
            ],
        )
        .expect("a valid mapping");
        let source = Source::connect(&url, &mapping).await.expect("connects");
        assert_eq!(source.count_users().await.expect("counts"), seeded_users);
        let expected: HashMap<Uuid, SeededUser> = (0..seeded_users)
            .map(velro_supabasetest::user)
            .map(|u| (u.id, u))
            .collect();
        let now = OffsetDateTime::now_utc();
        let (mut after, mut read, mut imported) = (None, 0, 0);
        let mut live_tokens = HashMap::new();
        loop {
            let rows = source.users_after(after, 7).await.expect("a page");
            let Some(last) = rows.last() else { break };
            after = Some(last.id);
            read += rows.len();
            let mut ids = Vec::new();
            for row in rows {
                let seed = &expected[&row.id];
                match map_user(row, now) {
                    UserVerdict::Import(user, _) => {
                        assert!(seed.kind.importable(), "{:?}", seed.kind);
                        assert_eq!(user.email.as_str(), seed.email);
                        assert_eq!(user.display_name, seed.display_name);
                        assert_eq!(user.credits_balance, Some(seed.credits));
                        assert_eq!(user.password_hash.is_some(), seed.password.is_some());
                        assert_eq!(user.banned_until.is_some(), seed.kind == Kind::Banned);
                        ids.push(user.id.0);
                        imported += 1;
                    }
                    UserVerdict::Remove(_) => assert!(matches!(
                        seed.kind,
                        Kind::SoftDeletedKept | Kind::SoftDeletedScrubbed
                    )),
                    UserVerdict::Skip(skip) => {
                        assert_eq!((seed.kind, skip), (Kind::Anonymous, Skip::Anonymous));
                    }
                }
            }
            let sessions = source.sessions_of(&ids).await.expect("sessions");
            let session_ids: Vec<Uuid> = sessions.iter().map(|s| s.id).collect();
            let tokens = source.tokens_of(&session_ids).await.expect("tokens");
            for verdict in map_sessions(sessions, tokens, now) {
                match verdict {
                    SessionVerdict::Import(session) => {
                        let spent: Vec<String> = session
                            .spent_tokens
                            .iter()
                            .map(|(t, _)| t.expose().clone())
                            .collect();
                        live_tokens
                            .insert(session.id.0, (session.live_token.expose().clone(), spent));
                    }
                    SessionVerdict::End(id) => {
                        live_tokens.insert(id.0, (String::new(), Vec::new()));
                    }
                    SessionVerdict::Skip(skip) => panic!("skipped a session: {skip:?}"),
                }
            }
        }
        assert_eq!(read, seeded_users as usize);
        // Two anonymous, two of each soft delete, in 40.
        assert_eq!(imported, 34);
        let mut sessions_checked = 0;
        for seed in expected.values().filter(|u| u.kind.importable()) {
            for session in &seed.sessions {
                let (live, spent) = &live_tokens[&session.id];
                assert_eq!(
                    Some(live).filter(|l| !l.is_empty()),
                    session.live_token.as_ref(),
                    "{:?}",
                    seed.kind
                );
                if session.live_token.is_some() {
                    assert!(spent.ends_with(&session.spent_tokens), "{:?}", seed.kind);
                }
                sessions_checked += 1;
            }
        }
        assert!(sessions_checked >= 20, "{sessions_checked}");
        source.close().await;
    }
}
