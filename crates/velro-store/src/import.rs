//! `velro import`'s bulk writes (`ImportStore`), one body for both dialects like `store.rs`:
//! a page of users and sessions is compared with what is stored in a few set-wise reads, then
//! written with multi-row INSERTs, in one transaction. Deciding what to import is the
//! binary's and the core's; this only makes the write idempotent and atomic.

use sqlx::FromRow;
use uuid::Uuid;
use velro_core::store::ImportedUser;

use crate::rows::StoredTime;

/// What an account without a password (OAuth-only on the other server) stores as its hash: not
/// a hash of anything, so no password ever verifies against it until a reset sets one.
pub(crate) const NO_PASSWORD: &str = "!imported-without-password";

/// Rows per multi-row INSERT: under SQLite's 32,766 bound parameters at 16 columns.
pub(crate) const INSERT_CHUNK: usize = 500;

pub(crate) const USER_COLUMNS: &str = "user_id, email, password_hash, display_name, avatar_url, \
     credits_balance, role, email_confirmed, disabled, created_at, updated_at, \
     email_confirmed_at, last_sign_in_at, banned_until, user_metadata, app_metadata";

/// A stored user, as the import compares it.
#[derive(FromRow)]
pub(crate) struct ExistingUser {
    pub(crate) user_id: Uuid,
    pub(crate) email: String,
    pub(crate) password_hash: String,
    pub(crate) display_name: Option<String>,
    pub(crate) avatar_url: Option<String>,
    pub(crate) credits_balance: i64,
    pub(crate) role: String,
    pub(crate) email_confirmed: bool,
    pub(crate) disabled: bool,
    pub(crate) created_at: StoredTime,
    pub(crate) email_confirmed_at: Option<StoredTime>,
    pub(crate) last_sign_in_at: Option<StoredTime>,
    pub(crate) banned_until: Option<StoredTime>,
    pub(crate) user_metadata: Option<String>,
    pub(crate) app_metadata: Option<String>,
}

/// A stored session, as the import compares it: its state and its newest token.
#[derive(FromRow)]
pub(crate) struct ExistingSession {
    pub(crate) session_id: Uuid,
    pub(crate) revoked: bool,
    /// The hash of its newest token (highest generation).
    pub(crate) newest_token: Option<Vec<u8>>,
    /// Whether a token was spent here, i.e. the session was rotated since it was imported.
    pub(crate) rotated_here: bool,
}

/// The hash the import writes: the other server's, unless the stored one is already Velro's
/// own (rehashed at a sign-in here), which is newer and must survive every rerun.
pub(crate) fn password_to_store<'a>(
    user: &'a ImportedUser,
    existing: Option<&'a ExistingUser>,
) -> &'a str {
    if let Some(existing) = existing {
        if existing.password_hash.starts_with("$argon2id$") {
            return &existing.password_hash;
        }
    }
    user.password_hash
        .as_ref()
        .map_or(NO_PASSWORD, |hash| hash.as_str())
}

/// Whether writing `user` would change the stored row.
pub(crate) fn differs(user: &ImportedUser, existing: &ExistingUser) -> bool {
    let time = |t: Option<StoredTime>| t.map(|t| t.0);
    password_to_store(user, Some(existing)) != existing.password_hash
        || user.email.as_str() != existing.email
        || user.display_name != existing.display_name
        || user.avatar_url != existing.avatar_url
        || user.credits_balance != existing.credits_balance
        || user.role.as_str() != existing.role
        || user.email_confirmed_at.is_some() != existing.email_confirmed
        || user.disabled != existing.disabled
        || user.created_at != existing.created_at.0
        || user.email_confirmed_at != time(existing.email_confirmed_at)
        || user.last_sign_in_at != time(existing.last_sign_in_at)
        || user.banned_until != time(existing.banned_until)
        || user.user_metadata != existing.user_metadata
        || user.app_metadata != existing.app_metadata
}

/// Implements `velro_core::store::ImportStore` for a type that implements `Dialect`.
macro_rules! import_store {
    ($store:ty) => {
        const _: () = {
            use std::collections::{HashMap, HashSet};

            use async_trait::async_trait;
            use sqlx::{QueryBuilder, Transaction};
            use time::OffsetDateTime;
            use uuid::Uuid;
            use velro_core::store::{
                ImportBatch, ImportOutcome, ImportStore, ImportedSession, ImportedUser,
                SessionImport, UserImport,
            };
            use velro_core::StoreError;

            use $crate::error::SqlxResultExt;
            use $crate::import::{
                differs, password_to_store, ExistingSession, ExistingUser, INSERT_CHUNK,
                USER_COLUMNS,
            };
            use $crate::rows::{StoredGeneration, StoredTime};
            use $crate::store::Dialect;

            type Db = <$store as Dialect>::Db;

            #[async_trait]
            impl ImportStore for $store {
                async fn import_batch(
                    &self,
                    batch: &ImportBatch,
                    now: OffsetDateTime,
                    apply: bool,
                ) -> Result<ImportOutcome, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let users = import_users(&mut tx, &batch.users, now).await?;
                    let sessions = import_sessions(&mut tx, &batch.sessions).await?;
                    let mut users_removed = 0;
                    for id in &batch.remove_users {
                        users_removed += sqlx::query("DELETE FROM users WHERE user_id = $1")
                            .bind(id.0)
                            .execute(&mut *tx)
                            .await
                            .db()?
                            .rows_affected();
                    }
                    let mut sessions_ended = 0;
                    for id in &batch.end_sessions {
                        sessions_ended += sqlx::query(
                            "UPDATE sessions SET revoked_at = $1 \
                             WHERE session_id = $2 AND revoked_at IS NULL AND NOT EXISTS ( \
                               SELECT 1 FROM refresh_tokens t WHERE t.session_id = $2 \
                               AND t.spent_at IS NOT NULL AND NOT t.spent_elsewhere)",
                        )
                        .bind(StoredTime(now))
                        .bind(id.0)
                        .execute(&mut *tx)
                        .await
                        .db()?
                        .rows_affected();
                    }
                    sessions_ended += end_vanished_sessions(&mut tx, batch, now).await?;
                    if apply {
                        tx.commit().await.db()?;
                    } else {
                        tx.rollback().await.db()?;
                    }
                    Ok(ImportOutcome {
                        users,
                        sessions,
                        users_removed,
                        sessions_ended,
                    })
                }
            }

            async fn import_users(
                tx: &mut Transaction<'static, Db>,
                users: &[ImportedUser],
                now: OffsetDateTime,
            ) -> Result<Vec<UserImport>, StoreError> {
                if users.is_empty() {
                    return Ok(Vec::new());
                }
                let mut select = QueryBuilder::<Db>::new(
                    "SELECT user_id, email, password_hash, display_name, avatar_url, \
                     credits_balance, role, email_confirmed, disabled, created_at, \
                     email_confirmed_at, last_sign_in_at, banned_until, user_metadata, \
                     app_metadata FROM users WHERE user_id IN (",
                );
                let mut ids = select.separated(", ");
                for user in users {
                    ids.push_bind(user.id.0);
                }
                select.push(")");
                let existing: Vec<ExistingUser> =
                    select.build_query_as().fetch_all(&mut **tx).await.db()?;
                let existing: HashMap<Uuid, ExistingUser> =
                    existing.into_iter().map(|u| (u.user_id, u)).collect();

                // Emails held here by other ids: those users are refused, not merged.
                let mut select = QueryBuilder::<Db>::new(
                    "SELECT user_id, email FROM users WHERE email IN (",
                );
                let mut emails = select.separated(", ");
                for user in users {
                    emails.push_bind(user.email.as_str());
                }
                select.push(")");
                let holders: Vec<(Uuid, String)> =
                    select.build_query_as().fetch_all(&mut **tx).await.db()?;
                let holders: HashMap<String, Uuid> =
                    holders.into_iter().map(|(id, email)| (email, id)).collect();

                let mut outcomes = Vec::with_capacity(users.len());
                let mut inserts = Vec::new();
                let mut claimed: HashSet<&str> = HashSet::new();
                for user in users {
                    let holder = holders.get(user.email.as_str());
                    let taken = holder.is_some_and(|id| *id != user.id.0)
                        || !claimed.insert(user.email.as_str());
                    let outcome = match existing.get(&user.id.0) {
                        _ if taken => UserImport::EmailTaken,
                        None => {
                            inserts.push(user);
                            UserImport::Inserted
                        }
                        Some(stored) if !differs(user, stored) => UserImport::Unchanged,
                        Some(stored) => {
                            update_user(tx, user, stored, now).await?;
                            UserImport::Updated
                        }
                    };
                    outcomes.push(outcome);
                }
                for chunk in inserts.chunks(INSERT_CHUNK) {
                    let mut insert = QueryBuilder::<Db>::new(format!(
                        "INSERT INTO users ({USER_COLUMNS}) "
                    ));
                    insert.push_values(chunk, |mut row, user| {
                        row.push_bind(user.id.0)
                            .push_bind(user.email.as_str())
                            .push_bind(password_to_store(user, None))
                            .push_bind(user.display_name.as_deref())
                            .push_bind(user.avatar_url.as_deref())
                            .push_bind(user.credits_balance)
                            .push_bind(user.role.as_str())
                            .push_bind(user.email_confirmed_at.is_some())
                            .push_bind(user.disabled)
                            .push_bind(StoredTime(user.created_at))
                            .push_bind(StoredTime(now))
                            .push_bind(user.email_confirmed_at.map(StoredTime))
                            .push_bind(user.last_sign_in_at.map(StoredTime))
                            .push_bind(user.banned_until.map(StoredTime))
                            .push_bind(user.user_metadata.as_deref())
                            .push_bind(user.app_metadata.as_deref());
                    });
                    insert.build().execute(&mut **tx).await.db()?;
                }
                mark_awaiting_confirmation(tx, users, &outcomes).await?;
                Ok(outcomes)
            }

            /// GoTrue refuses a password sign-in until the address is confirmed
            /// (`email_not_confirmed`): an account imported without `email_confirmed_at` awaits
            /// confirmation on /auth/v1 as one signed up there would; one confirmed since the
            /// last import no longer does.
            async fn mark_awaiting_confirmation(
                tx: &mut Transaction<'static, Db>,
                users: &[ImportedUser],
                outcomes: &[UserImport],
            ) -> Result<(), StoreError> {
                let written = users.iter().zip(outcomes).filter(|(_, outcome)| {
                    matches!(outcome, UserImport::Inserted | UserImport::Updated)
                });
                let (awaiting, confirmed): (Vec<_>, Vec<_>) =
                    written.partition(|(user, _)| user.email_confirmed_at.is_none());
                for chunk in awaiting.chunks(INSERT_CHUNK) {
                    let mut insert = QueryBuilder::<Db>::new(
                        "INSERT INTO user_mail_state (user_id, awaiting_confirmation) ",
                    );
                    insert.push_values(chunk, |mut row, (user, _)| {
                        row.push_bind(user.id.0).push_bind(true);
                    });
                    insert.push(
                        " ON CONFLICT (user_id) DO UPDATE SET awaiting_confirmation = TRUE",
                    );
                    insert.build().execute(&mut **tx).await.db()?;
                }
                // Only accounts updated by this run can have a row from an earlier one.
                for (user, outcome) in confirmed {
                    if matches!(outcome, UserImport::Updated) {
                        sqlx::query(
                            "UPDATE user_mail_state SET awaiting_confirmation = FALSE \
                             WHERE user_id = $1",
                        )
                        .bind(user.id.0)
                        .execute(&mut **tx)
                        .await
                        .db()?;
                    }
                }
                Ok(())
            }

            async fn update_user(
                tx: &mut Transaction<'static, Db>,
                user: &ImportedUser,
                stored: &ExistingUser,
                now: OffsetDateTime,
            ) -> Result<(), StoreError> {
                let disabled_now = user.disabled && !stored.disabled;
                sqlx::query(
                    "UPDATE users SET email = $1, password_hash = $2, display_name = $3, \
                     avatar_url = $4, credits_balance = $5, role = $6, email_confirmed = $7, \
                     disabled = $8, created_at = $9, updated_at = $10, \
                     email_confirmed_at = $11, last_sign_in_at = $12, banned_until = $13, \
                     user_metadata = $14, app_metadata = $15 WHERE user_id = $16",
                )
                .bind(user.email.as_str())
                .bind(password_to_store(user, Some(stored)))
                .bind(user.display_name.as_deref())
                .bind(user.avatar_url.as_deref())
                .bind(user.credits_balance)
                .bind(user.role.as_str())
                .bind(user.email_confirmed_at.is_some())
                .bind(user.disabled)
                .bind(StoredTime(user.created_at))
                .bind(StoredTime(now))
                .bind(user.email_confirmed_at.map(StoredTime))
                .bind(user.last_sign_in_at.map(StoredTime))
                .bind(user.banned_until.map(StoredTime))
                .bind(user.user_metadata.as_deref())
                .bind(user.app_metadata.as_deref())
                .bind(user.id.0)
                .execute(&mut **tx)
                .await
                .db()?;
                // Banned since the last import: as an admin disable does, end every session.
                if disabled_now {
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = $1 \
                         WHERE user_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(StoredTime(now))
                    .bind(user.id.0)
                    .execute(&mut **tx)
                    .await
                    .db()?;
                }
                Ok(())
            }

            async fn import_sessions(
                tx: &mut Transaction<'static, Db>,
                sessions: &[ImportedSession],
            ) -> Result<Vec<SessionImport>, StoreError> {
                if sessions.is_empty() {
                    return Ok(Vec::new());
                }
                let mut select =
                    QueryBuilder::<Db>::new("SELECT user_id FROM users WHERE user_id IN (");
                let mut ids = select.separated(", ");
                for session in sessions {
                    ids.push_bind(session.user_id.0);
                }
                select.push(")");
                let users: Vec<(Uuid,)> =
                    select.build_query_as().fetch_all(&mut **tx).await.db()?;
                let users: HashSet<Uuid> = users.into_iter().map(|(id,)| id).collect();

                let mut select = QueryBuilder::<Db>::new(
                    "SELECT s.session_id, s.revoked_at IS NOT NULL AS revoked, \
                     (SELECT t.token_hash FROM refresh_tokens t \
                      WHERE t.session_id = s.session_id \
                      ORDER BY t.generation DESC LIMIT 1) AS newest_token, \
                     EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.session_id \
                      AND t.spent_at IS NOT NULL AND NOT t.spent_elsewhere) AS rotated_here \
                     FROM sessions s WHERE s.session_id IN (",
                );
                let mut ids = select.separated(", ");
                for session in sessions {
                    ids.push_bind(session.id.0);
                }
                select.push(")");
                let existing: Vec<ExistingSession> =
                    select.build_query_as().fetch_all(&mut **tx).await.db()?;
                let existing: HashMap<Uuid, ExistingSession> =
                    existing.into_iter().map(|s| (s.session_id, s)).collect();

                let mut outcomes = Vec::with_capacity(sessions.len());
                let mut inserts = Vec::new();
                for session in sessions {
                    let outcome = match existing.get(&session.id.0) {
                        _ if !users.contains(&session.user_id.0) => SessionImport::UserMissing,
                        None => {
                            inserts.push(session);
                            SessionImport::Inserted
                        }
                        Some(stored)
                            if stored.newest_token.as_deref()
                                == Some(session.live_token.0.as_slice()) =>
                        {
                            SessionImport::Unchanged
                        }
                        Some(stored) if stored.revoked || stored.rotated_here => {
                            SessionImport::MovedOnHere
                        }
                        Some(_) => {
                            // Rotated on the other server since the last import, never here:
                            // its chain is replaced by the current one.
                            sqlx::query("DELETE FROM refresh_tokens WHERE session_id = $1")
                                .bind(session.id.0)
                                .execute(&mut **tx)
                                .await
                                .db()?;
                            sqlx::query(
                                "UPDATE sessions SET last_refreshed_at = $1, expires_at = $2 \
                                 WHERE session_id = $3",
                            )
                            .bind(session.last_refreshed_at.map(StoredTime))
                            .bind(StoredTime(session.expires_at))
                            .bind(session.id.0)
                            .execute(&mut **tx)
                            .await
                            .db()?;
                            insert_tokens(tx, &[session]).await?;
                            SessionImport::Updated
                        }
                    };
                    outcomes.push(outcome);
                }
                for chunk in inserts.chunks(INSERT_CHUNK) {
                    let mut insert = QueryBuilder::<Db>::new(
                        "INSERT INTO sessions (session_id, user_id, created_at, \
                         last_refreshed_at, expires_at, remember_me, user_agent, ip, \
                         revoked_at, imported) ",
                    );
                    insert.push_values(chunk, |mut row, session| {
                        row.push_bind(session.id.0)
                            .push_bind(session.user_id.0)
                            .push_bind(StoredTime(session.created_at))
                            .push_bind(session.last_refreshed_at.map(StoredTime))
                            .push_bind(StoredTime(session.expires_at))
                            .push_bind(session.remember_me)
                            .push_bind(session.user_agent.as_deref())
                            .push_bind(session.ip.as_deref())
                            .push_bind(None::<StoredTime>)
                            .push_bind(true);
                    });
                    insert.build().execute(&mut **tx).await.db()?;
                    insert_tokens(tx, chunk).await?;
                }
                Ok(outcomes)
            }

            /// Revokes the imported, still live sessions of this page's users that the other
            /// server no longer has (GoTrue deletes a session at sign-out), unless rotated here.
            async fn end_vanished_sessions(
                tx: &mut Transaction<'static, Db>,
                batch: &ImportBatch,
                now: OffsetDateTime,
            ) -> Result<u64, StoreError> {
                if batch.users.is_empty() {
                    return Ok(0);
                }
                let mut update = QueryBuilder::<Db>::new("UPDATE sessions SET revoked_at = ");
                update
                    .push_bind(StoredTime(now))
                    .push(" WHERE imported AND revoked_at IS NULL AND user_id IN (");
                let mut users = update.separated(", ");
                for user in &batch.users {
                    users.push_bind(user.id.0);
                }
                update.push(")");
                if !batch.sessions.is_empty() {
                    update.push(" AND session_id NOT IN (");
                    let mut kept = update.separated(", ");
                    for session in &batch.sessions {
                        kept.push_bind(session.id.0);
                    }
                    update.push(")");
                }
                update.push(
                    " AND NOT EXISTS (SELECT 1 FROM refresh_tokens t \
                     WHERE t.session_id = sessions.session_id \
                     AND t.spent_at IS NOT NULL AND NOT t.spent_elsewhere)",
                );
                Ok(update.build().execute(&mut **tx).await.db()?.rows_affected())
            }

            /// Each session's spent tokens as generations 0.., then its live token.
            async fn insert_tokens(
                tx: &mut Transaction<'static, Db>,
                sessions: &[&ImportedSession],
            ) -> Result<(), StoreError> {
                struct Token<'a> {
                    hash: &'a [u8],
                    session: Uuid,
                    generation: u32,
                    issued_at: OffsetDateTime,
                    expires_at: OffsetDateTime,
                    spent_at: Option<OffsetDateTime>,
                }
                let mut tokens = Vec::new();
                for session in sessions {
                    for (generation, spent) in (0u32..).zip(&session.spent_tokens) {
                        tokens.push(Token {
                            hash: spent.hash.0.as_slice(),
                            session: session.id.0,
                            generation,
                            issued_at: spent.spent_at,
                            expires_at: spent.spent_at,
                            spent_at: Some(spent.spent_at),
                        });
                    }
                    tokens.push(Token {
                        hash: session.live_token.0.as_slice(),
                        session: session.id.0,
                        generation: u32::try_from(session.spent_tokens.len()).unwrap_or(u32::MAX),
                        issued_at: session.live_issued_at,
                        expires_at: session.expires_at,
                        spent_at: None,
                    });
                }
                for chunk in tokens.chunks(INSERT_CHUNK) {
                    let mut insert = QueryBuilder::<Db>::new(
                        "INSERT INTO refresh_tokens (token_hash, session_id, generation, \
                         issued_at, expires_at, spent_at, spent_elsewhere) ",
                    );
                    insert.push_values(chunk, |mut row, token| {
                        row.push_bind(token.hash)
                            .push_bind(token.session)
                            .push_bind(StoredGeneration(token.generation))
                            .push_bind(StoredTime(token.issued_at))
                            .push_bind(StoredTime(token.expires_at))
                            .push_bind(token.spent_at.map(StoredTime))
                            .push_bind(token.spent_at.is_some());
                    });
                    insert.build().execute(&mut **tx).await.db()?;
                }
                Ok(())
            }
        };
    };
}

pub(crate) use import_store;
