//! The one `Store` body both databases run. What differs per dialect is the [`Dialect`] trait
//! (connections, transactions, the row locks, the statements that differ) and the sqlx encoding of
//! [`StoredTime`](crate::rows::StoredTime) and [`StoredGeneration`](crate::rows::StoredGeneration).
//!
//! The body is a macro, expanded once per store type, rather than a generic `impl<D: Dialect>`:
//! generic sqlx code needs a higher-ranked `Executor` bound on `&mut Connection`, an
//! `IntoArguments` bound and an `Encode + Type` (or `Decode + Type`) bound for every value type,
//! restated on every helper, and async_trait's `Send` check on such futures is prone to
//! higher-ranked lifetime errors. Expanded per type, every statement is concrete and the body
//! reads like ordinary sqlx code.

use std::sync::Arc;

use sqlx::migrate::{Migrate, Migrator};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};
use velro_core::StoreError;

use crate::error::{from_migrate, from_sqlx};
use crate::WaitCounter;

/// What a store does its own way; everything else is [`sql_store!`].
pub(crate) trait Dialect {
    type Db: Database;

    /// How an atomic operation's transaction starts.
    const BEGIN: &'static str;

    /// `sql::FIND_PRESENTED_TOKEN`, with whatever row lock the dialect needs to serialise
    /// rotations of one session.
    const FIND_PRESENTED_TOKEN: &'static str;

    /// `sql::FIND_USER`, with whatever row lock the dialect needs to serialise account changes
    /// of one user inside a [`Dialect::BEGIN`] transaction.
    const FIND_USER_FOR_UPDATE: &'static str;

    /// The admin listing's email-prefix filter, in pieces with the prefix bound between each
    /// two. It compares characters literally, unlike LIKE with its `%` and `_`.
    const EMAIL_PREFIX_FILTER: &'static [&'static str];

    /// The server's connections to this database by state (`pg_stat_activity`); `None` where
    /// the database has no server.
    const CONNECTIONS_BY_STATE: Option<&'static str>;
    /// `sql::PURGE_RESET_TOKENS`, skipping rows another purge holds where the dialect can.
    const PURGE_RESET_TOKENS: &'static str;

    /// Appended to a purge's batch select: what lets a purge skip the rows another one holds
    /// instead of waiting for them (empty where a single writer makes waiting impossible).
    const BATCH_LOCK: &'static str;

    /// Taken first by `issue_mail_token` (`$1`: a key made from the user id) so that of two
    /// concurrent issuers for one user the second reads the first's mail as sent; `None` where
    /// the transaction's write lock already serialises them.
    const LOCK_USER_MAIL: Option<&'static str>;

    fn pools(&self) -> &Pools<Self::Db>;
}

/// A store's connections: lookups take one from `read`, writes from `write` (the same pool
/// where the database has no single writer), and every wait for one is counted.
#[derive(Debug)]
pub(crate) struct Pools<Db: Database> {
    pub(crate) read: Pool<Db>,
    pub(crate) write: Pool<Db>,
    waiting: Arc<WaitCounter>,
}

// Not derived: that would ask for `Db: Clone`, which the marker types do not implement.
impl<Db: Database> Clone for Pools<Db> {
    fn clone(&self) -> Self {
        Self {
            read: self.read.clone(),
            write: self.write.clone(),
            waiting: self.waiting.clone(),
        }
    }
}

impl<Db: Database> Pools<Db> {
    pub(crate) fn new(read: Pool<Db>, write: Pool<Db>) -> Self {
        Self {
            read,
            write,
            waiting: Arc::default(),
        }
    }

    /// Store calls waiting for a connection right now.
    pub(crate) fn waiting(&self) -> u32 {
        self.waiting.get()
    }

    /// A connection for one lookup.
    pub(crate) async fn read(&self) -> Result<PoolConnection<Db>, StoreError> {
        self.waiting
            .around(self.read.acquire())
            .await
            .map_err(from_sqlx)
    }

    /// A connection for one single-statement write.
    pub(crate) async fn write(&self) -> Result<PoolConnection<Db>, StoreError> {
        self.waiting
            .around(self.write.acquire())
            .await
            .map_err(from_sqlx)
    }

    /// Applies the migrations that have not run yet, on the writer.
    pub(crate) async fn migrate(&self, migrations: &Migrator) -> Result<(), StoreError>
    where
        Db::Connection: Migrate,
    {
        migrations.run(&self.write).await.map_err(from_migrate)
    }

    /// A transaction on the writer, started with `begin` (the dialect's [`Dialect::BEGIN`]).
    pub(crate) async fn begin(
        &self,
        begin: &'static str,
    ) -> Result<Transaction<'static, Db>, StoreError> {
        self.waiting
            .around(self.write.begin_with(begin))
            .await
            .map_err(from_sqlx)
    }
}

/// Implements `velro_core::store::Store` for a type that implements [`Dialect`] and whose
/// dialect can encode `StoredTime` and `StoredGeneration`.
macro_rules! sql_store {
    ($store:ty) => {
        // An unnamed const scopes the body's imports and helpers to this expansion.
        const _: () = {
            use async_trait::async_trait;
            use sqlx::{QueryBuilder, Transaction};
            use time::OffsetDateTime;
            use uuid::Uuid;
            use velro_core::domain::{
                AccountChange, AdminUserChange, AvatarUrl, Credentials, DisplayName, Email,
                EmailChangeRedeemed, FlowState, FlowStateId, Incident, IncidentId, IncidentStatus,
                IssuedAuthCode, MailPurpose, MailState, MailTokenIssued, Metadata, MetadataWrite,
                NewEmailChange, NewFlowState, NewIncident, NewIncidentUpdate, NewMailToken,
                NewUser, PasswordHash, ProfileChange, RedeemedMailToken, Role, SessionId,
                SessionRecord, StateMinutes, StatusSample, UnixMinute, User, UserId, UserPage,
                UserQuery,
            };
            use velro_core::store::{
                AccountUpdate, ConsoleSessionRecord, FlagChange, MetadataField, NewSession,
                PurgeBatch, Purged, RefreshPolicy, Rotation, SessionWithUser, Store, TokenHash,
            };
            use velro_core::StoreError;

            use $crate::error::SqlxResultExt;
            use $crate::page::{like_pattern, page};
            use $crate::rotation::{judge, next_generation, successor_expiry, Verdict};
            use $crate::rows::{
                join_components, ConsoleSessionRow, CredentialsRow, FlagChangeRow, FlowStateRow,
                IncidentRow, IncidentUpdateRow, LiveSessionRow, MailStateRow, PresentedRow,
                SessionRow, StateMinutesRow, StatusSampleRow, StoredGeneration, StoredTime,
                UserRow,
            };
            use $crate::sql;
            use $crate::store::Dialect;

            type Db = <$store as Dialect>::Db;

            #[async_trait]
            impl Store for $store {
                async fn ping(&self) -> Result<(), StoreError> {
                    sqlx::query(sql::PING)
                        .execute(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn create_user(
                    &self,
                    user: NewUser,
                    session: NewSession,
                ) -> Result<User, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let created = insert_new_user(&mut tx, &user, Role::default(), None).await?;
                    insert_session(&mut tx, &session).await?;
                    tx.commit().await.db()?;
                    Ok(created)
                }

                async fn insert_user(
                    &self,
                    user: NewUser,
                    role: Role,
                    banned_until: Option<OffsetDateTime>,
                ) -> Result<User, StoreError> {
                    let mut conn = self.pools().write().await?;
                    insert_new_user(&mut conn, &user, role, banned_until).await
                }

                async fn find_credentials_by_email(
                    &self,
                    email: &Email,
                ) -> Result<Option<Credentials>, StoreError> {
                    let row: Option<CredentialsRow> =
                        sqlx::query_as(sql::FIND_CREDENTIALS_BY_EMAIL)
                            .bind(email.as_str())
                            .fetch_optional(&mut *self.pools().read().await?)
                            .await
                            .db()?;
                    row.map(CredentialsRow::into_credentials).transpose().db()
                }

                async fn find_credentials(
                    &self,
                    user_id: UserId,
                ) -> Result<Option<Credentials>, StoreError> {
                    let row: Option<CredentialsRow> = sqlx::query_as(sql::FIND_CREDENTIALS)
                        .bind(user_id.0)
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    row.map(CredentialsRow::into_credentials).transpose().db()
                }

                async fn replace_password_hash(
                    &self,
                    user_id: UserId,
                    hash: &PasswordHash,
                    now: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    sqlx::query(sql::SET_PASSWORD_HASH)
                        .bind(hash.as_str())
                        .bind(StoredTime(now))
                        .bind(user_id.0)
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    insert_session(&mut tx, &session).await?;
                    tx.commit().await.db()
                }

                async fn find_live_session(
                    &self,
                    session_id: SessionId,
                ) -> Result<Option<::std::sync::Arc<SessionWithUser>>, StoreError> {
                    let row: Option<LiveSessionRow> = sqlx::query_as(sql::FIND_LIVE_SESSION)
                        .bind(session_id.0)
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let (session, user) = row.into_parts().db()?;
                    Ok(Some(::std::sync::Arc::new(SessionWithUser {
                        session,
                        user,
                    })))
                }

                async fn rotate_refresh_token(
                    &self,
                    presented: TokenHash,
                    successor: TokenHash,
                    policy: RefreshPolicy,
                    now: OffsetDateTime,
                ) -> Result<Rotation, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    // Twice at most: losing the race to spend the token means it is now spent,
                    // and the second reading judges it as such. (In PostgreSQL, after waiting for
                    // the session lock, READ COMMITTED refreshes only the locked row, so the token
                    // may still look unspent; then the conditional spend matches nothing, and the
                    // second reading, a new snapshot, sees it spent.)
                    for _ in 0..2 {
                        let row: Option<PresentedRow> =
                            sqlx::query_as(<$store as Dialect>::FIND_PRESENTED_TOKEN)
                                .bind(presented.0.as_slice())
                                .fetch_optional(&mut *tx)
                                .await
                                .db()?;
                        let Some(row) = row else {
                            return Ok(Rotation::Invalid);
                        };
                        let (token, generation, session, user) = row.into_parts().db()?;
                        match judge(&token, &policy, now) {
                            Verdict::Invalid => return Ok(Rotation::Invalid),
                            Verdict::ReusedWithinGrace => {
                                let newest: Option<StoredGeneration> =
                                    sqlx::query_scalar(sql::NEWEST_GENERATION)
                                        .bind(session.id.0)
                                        .fetch_one(&mut *tx)
                                        .await
                                        .db()?;
                                tx.commit().await.db()?;
                                return Ok(Rotation::ReusedWithinGrace {
                                    session,
                                    user,
                                    presented_generation: generation,
                                    newest_generation: newest.map_or(generation, |g| g.0),
                                });
                            }
                            Verdict::ReusedAfterGrace => {
                                sqlx::query(sql::REVOKE_SESSION_BY_ID)
                                    .bind(StoredTime(now))
                                    .bind(session.id.0)
                                    .execute(&mut *tx)
                                    .await
                                    .db()?;
                                tx.commit().await.db()?;
                                return Ok(Rotation::ReusedAfterGrace {
                                    session_id: session.id,
                                });
                            }
                            Verdict::Rotate => {
                                let spent = sqlx::query(sql::SPEND_REFRESH_TOKEN)
                                    .bind(StoredTime(now))
                                    .bind(presented.0.as_slice())
                                    .execute(&mut *tx)
                                    .await
                                    .db()?;
                                if spent.rows_affected() == 0 {
                                    continue;
                                }
                                let expires_at = successor_expiry(&policy, &session, now).db()?;
                                sqlx::query(sql::INSERT_REFRESH_TOKEN)
                                    .bind(successor.0.as_slice())
                                    .bind(session.id.0)
                                    .bind(StoredGeneration(next_generation(generation).db()?))
                                    .bind(StoredTime(now))
                                    .bind(StoredTime(expires_at))
                                    .execute(&mut *tx)
                                    .await
                                    .db()?;
                                let refreshed = sqlx::query(sql::RECORD_REFRESH)
                                    .bind(StoredTime(now))
                                    .bind(StoredTime(expires_at))
                                    .bind(session.id.0)
                                    .execute(&mut *tx)
                                    .await
                                    .db()?;
                                if refreshed.rows_affected() == 0 {
                                    return Ok(Rotation::Invalid);
                                }
                                tx.commit().await.db()?;
                                let session = SessionRecord {
                                    last_refreshed_at: Some(now),
                                    expires_at,
                                    ..session
                                };
                                return Ok(Rotation::Rotated { session, user });
                            }
                        }
                    }
                    Ok(Rotation::Invalid)
                }

                async fn revoke_session(
                    &self,
                    user_id: UserId,
                    session_id: SessionId,
                    now: OffsetDateTime,
                ) -> Result<bool, StoreError> {
                    let done = sqlx::query(sql::REVOKE_SESSION)
                        .bind(StoredTime(now))
                        .bind(session_id.0)
                        .bind(user_id.0)
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn revoke_sessions(
                    &self,
                    user_id: UserId,
                    keep: Option<SessionId>,
                    now: OffsetDateTime,
                ) -> Result<Vec<SessionId>, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let revoked = revoke_sessions(&mut tx, user_id, keep, now).await?;
                    tx.commit().await.db()?;
                    Ok(revoked)
                }

                async fn list_live_sessions(
                    &self,
                    user_id: UserId,
                    now: OffsetDateTime,
                ) -> Result<Vec<SessionRecord>, StoreError> {
                    let found: Vec<SessionRow> = sqlx::query_as(sql::LIST_LIVE_SESSIONS)
                        .bind(user_id.0)
                        .bind(StoredTime(now))
                        .fetch_all(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    Ok(found.into_iter().map(SessionRecord::from).collect())
                }

                async fn update_profile(
                    &self,
                    user_id: UserId,
                    change: &ProfileChange,
                    now: OffsetDateTime,
                ) -> Result<Option<User>, StoreError> {
                    let name = change.display_name.as_ref();
                    let avatar = change.avatar_url.as_ref();
                    let row: Option<UserRow> = sqlx::query_as(sql::UPDATE_PROFILE)
                        .bind(name.is_some())
                        .bind(name.and_then(Option::as_ref).map(DisplayName::as_str))
                        .bind(avatar.is_some())
                        .bind(avatar.and_then(Option::as_ref).map(AvatarUrl::as_str))
                        .bind(StoredTime(now))
                        .bind(user_id.0)
                        .fetch_optional(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    row.map(UserRow::into_user).transpose().db()
                }

                async fn create_reset_token(
                    &self,
                    user_id: UserId,
                    token: TokenHash,
                    expires_at: OffsetDateTime,
                    now: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    sqlx::query(sql::INSERT_RESET_TOKEN)
                        .bind(token.0.as_slice())
                        .bind(user_id.0)
                        .bind(StoredTime(now))
                        .bind(StoredTime(expires_at))
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn find_reset_token_user(
                    &self,
                    token: TokenHash,
                    now: OffsetDateTime,
                ) -> Result<Option<Credentials>, StoreError> {
                    let row: Option<CredentialsRow> = sqlx::query_as(sql::FIND_RESET_TOKEN_USER)
                        .bind(token.0.as_slice())
                        .bind(StoredTime(now))
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    row.map(CredentialsRow::into_credentials).transpose().db()
                }

                async fn reset_password(
                    &self,
                    token: TokenHash,
                    hash: &PasswordHash,
                    now: OffsetDateTime,
                ) -> Result<Option<(UserId, Vec<SessionId>)>, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let owner: Option<Uuid> = sqlx::query_scalar(sql::SPEND_RESET_TOKEN)
                        .bind(StoredTime(now))
                        .bind(token.0.as_slice())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                    let Some(owner) = owner.map(UserId) else {
                        return Ok(None);
                    };
                    sqlx::query(sql::SET_PASSWORD_HASH)
                        .bind(hash.as_str())
                        .bind(StoredTime(now))
                        .bind(owner.0)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    sqlx::query(sql::SPEND_USER_RESET_TOKENS)
                        .bind(StoredTime(now))
                        .bind(owner.0)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    let revoked = revoke_sessions(&mut tx, owner, None, now).await?;
                    tx.commit().await.db()?;
                    Ok(Some((owner, revoked)))
                }

                async fn redeem_reset_token(
                    &self,
                    token: TokenHash,
                    now: OffsetDateTime,
                ) -> Result<Option<UserId>, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let owner: Option<Uuid> = sqlx::query_scalar(sql::SPEND_RESET_TOKEN)
                        .bind(StoredTime(now))
                        .bind(token.0.as_slice())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                    let Some(owner) = owner.map(UserId) else {
                        return Ok(None);
                    };
                    sqlx::query(sql::SPEND_USER_RESET_TOKENS)
                        .bind(StoredTime(now))
                        .bind(owner.0)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()?;
                    Ok(Some(owner))
                }

                async fn change_password(
                    &self,
                    user_id: UserId,
                    hash: &PasswordHash,
                    keep: SessionId,
                    now: OffsetDateTime,
                ) -> Result<Vec<SessionId>, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    sqlx::query(sql::SET_PASSWORD_HASH)
                        .bind(hash.as_str())
                        .bind(StoredTime(now))
                        .bind(user_id.0)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    let revoked = revoke_sessions(&mut tx, user_id, Some(keep), now).await?;
                    tx.commit().await.db()?;
                    Ok(revoked)
                }

                async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
                    let mut select = QueryBuilder::<Db>::new(sql::LIST_USERS);
                    if let Some(prefix) = &query.email_prefix {
                        let filter = <$store as Dialect>::EMAIL_PREFIX_FILTER;
                        for (i, piece) in filter.iter().enumerate() {
                            if i > 0 {
                                select.push_bind(prefix.as_str());
                            }
                            select.push(piece);
                        }
                    }
                    if let Some(after) = &query.after {
                        select
                            .push(sql::LIST_USERS_AFTER)
                            .push_bind(StoredTime(after.created_at))
                            .push(", ")
                            .push_bind(after.id.0)
                            .push(")");
                    }
                    select
                        .push(sql::LIST_USERS_ORDER)
                        .push_bind(i64::from(query.limit) + 1);
                    let found: Vec<UserRow> = select
                        .build_query_as()
                        .fetch_all(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    let users = found
                        .into_iter()
                        .map(UserRow::into_user)
                        .collect::<Result<_, _>>()
                        .db()?;
                    Ok(page(users, query.limit))
                }

                async fn page_users(
                    &self,
                    offset: u64,
                    limit: u32,
                    filter: Option<&str>,
                ) -> Result<(Vec<User>, u64), StoreError> {
                    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
                    let pattern = filter.map(like_pattern);
                    let filtered = |start: &'static str| {
                        let mut query = QueryBuilder::<Db>::new(start);
                        if let Some(pattern) = &pattern {
                            let [first, second, end] = sql::PAGE_USERS_FILTER;
                            query
                                .push(first)
                                .push_bind(pattern.clone())
                                .push(second)
                                .push_bind(pattern.clone())
                                .push(end);
                        }
                        query
                    };
                    let mut select = filtered(sql::PAGE_USERS);
                    select
                        .push(sql::PAGE_USERS_ORDER)
                        .push_bind(i64::from(limit))
                        .push(" OFFSET ")
                        .push_bind(offset);
                    let mut count = filtered(sql::COUNT_USERS);
                    let mut conn = self.pools().read().await?;
                    let found: Vec<UserRow> =
                        select.build_query_as().fetch_all(&mut *conn).await.db()?;
                    let total: i64 = count
                        .build_query_scalar()
                        .fetch_one(&mut *conn)
                        .await
                        .db()?;
                    let users = found
                        .into_iter()
                        .map(UserRow::into_user)
                        .collect::<Result<_, _>>()
                        .db()?;
                    Ok((users, u64::try_from(total).unwrap_or_default()))
                }

                async fn find_user(&self, user_id: UserId) -> Result<Option<User>, StoreError> {
                    let row: Option<UserRow> = sqlx::query_as(sql::FIND_USER)
                        .bind(user_id.0)
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    row.map(UserRow::into_user).transpose().db()
                }

                async fn update_user(
                    &self,
                    user_id: UserId,
                    change: &AdminUserChange,
                    now: OffsetDateTime,
                ) -> Result<Option<User>, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let row: Option<UserRow> = sqlx::query_as(sql::UPDATE_USER)
                        .bind(change.disabled)
                        .bind(change.role.map(Role::as_str))
                        .bind(change.credits_balance)
                        .bind(change.email_confirmed)
                        .bind(StoredTime(now))
                        .bind(user_id.0)
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    let user = row.into_user().db()?;
                    if change.disabled == Some(true) {
                        revoke_sessions(&mut tx, user_id, None, now).await?;
                    }
                    tx.commit().await.db()?;
                    Ok(Some(user))
                }

                async fn update_account(
                    &self,
                    user_id: UserId,
                    change: &AccountChange,
                    now: OffsetDateTime,
                ) -> Result<AccountUpdate, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let locked: Option<UserRow> =
                        sqlx::query_as(<$store as Dialect>::FIND_USER_FOR_UPDATE)
                            .bind(user_id.0)
                            .fetch_optional(&mut *tx)
                            .await
                            .db()?;
                    let Some(locked) = locked else {
                        return Ok(AccountUpdate::NoUser);
                    };
                    let locked = locked.into_user().db()?;
                    // Returning before the commit drops `tx`, which rolls back: a refused
                    // change writes nothing.
                    let user_metadata = match metadata_after(
                        change.user_metadata.as_ref(),
                        locked.user_metadata.as_ref(),
                        MetadataField::User,
                    ) {
                        Ok(written) => written,
                        Err(field) => return Ok(AccountUpdate::TooLarge(field)),
                    };
                    let app_metadata = match metadata_after(
                        change.app_metadata.as_ref(),
                        locked.app_metadata.as_ref(),
                        MetadataField::App,
                    ) {
                        Ok(written) => written,
                        Err(field) => return Ok(AccountUpdate::TooLarge(field)),
                    };
                    let name = change.display_name.as_ref();
                    let avatar = change.avatar_url.as_ref();
                    let ban = change.banned_until.as_ref();
                    let row: UserRow = sqlx::query_as(sql::UPDATE_ACCOUNT)
                        .bind(change.email.is_some())
                        .bind(change.email.as_ref().map(Email::as_str))
                        .bind(change.password_hash.is_some())
                        .bind(change.password_hash.as_ref().map(PasswordHash::as_str))
                        .bind(change.email_confirmed.is_some())
                        .bind(change.email_confirmed.unwrap_or(false))
                        .bind(name.is_some())
                        .bind(name.and_then(Option::as_ref).map(DisplayName::as_str))
                        .bind(avatar.is_some())
                        .bind(avatar.and_then(Option::as_ref).map(AvatarUrl::as_str))
                        .bind(user_metadata.is_some())
                        .bind(user_metadata.as_ref().map(Metadata::to_stored))
                        .bind(app_metadata.is_some())
                        .bind(app_metadata.as_ref().map(Metadata::to_stored))
                        .bind(ban.is_some())
                        .bind(ban.copied().flatten().map(StoredTime))
                        .bind(change.disabled.is_some())
                        .bind(change.disabled.unwrap_or(false))
                        .bind(change.deleted_at.map(StoredTime))
                        .bind(StoredTime(now))
                        .bind(user_id.0)
                        .bind(change.role.map(Role::as_str))
                        .fetch_one(&mut *tx)
                        .await
                        .db()?;
                    let user = row.into_user().db()?;
                    if change.spend_reset_tokens {
                        sqlx::query(sql::SPEND_USER_RESET_TOKENS)
                            .bind(StoredTime(now))
                            .bind(user_id.0)
                            .execute(&mut *tx)
                            .await
                            .db()?;
                    }
                    let revoked = if change.revoke_sessions {
                        revoke_sessions(&mut tx, user_id, change.keep_session, now).await?
                    } else {
                        Vec::new()
                    };
                    tx.commit().await.db()?;
                    Ok(AccountUpdate::Updated { user, revoked })
                }

                async fn find_refresh_token_user(
                    &self,
                    token: TokenHash,
                ) -> Result<Option<User>, StoreError> {
                    let row: Option<UserRow> = sqlx::query_as(sql::FIND_REFRESH_TOKEN_USER)
                        .bind(token.0.as_slice())
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    row.map(UserRow::into_user).transpose().db()
                }

                async fn delete_user(&self, user_id: UserId) -> Result<bool, StoreError> {
                    let done = sqlx::query(sql::DELETE_USER)
                        .bind(user_id.0)
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn record_status(
                    &self,
                    samples: &[StatusSample],
                    purge_before: UnixMinute,
                ) -> Result<(), StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    for sample in samples {
                        sqlx::query(sql::UPSERT_STATUS_SAMPLE)
                            .bind(sample.component.as_str())
                            .bind(sample.minute)
                            .bind(sample.state.severity())
                            .bind(sample.reason.as_str())
                            .execute(&mut *tx)
                            .await
                            .db()?;
                    }
                    sqlx::query(sql::PURGE_STATUS_SAMPLES)
                        .bind(purge_before)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()
                }

                async fn status_history(
                    &self,
                    since: UnixMinute,
                ) -> Result<Vec<StateMinutes>, StoreError> {
                    let rows: Vec<StateMinutesRow> = sqlx::query_as(sql::STATUS_HISTORY)
                        .bind(since)
                        .fetch_all(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    rows.into_iter()
                        .map(StateMinutesRow::into_state_minutes)
                        .collect::<Result<_, _>>()
                        .db()
                }

                async fn latest_status(
                    &self,
                    since: UnixMinute,
                ) -> Result<Vec<StatusSample>, StoreError> {
                    let rows: Vec<StatusSampleRow> = sqlx::query_as(sql::LATEST_STATUS)
                        .bind(since)
                        .fetch_all(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    rows.into_iter()
                        .map(StatusSampleRow::into_sample)
                        .collect::<Result<_, _>>()
                        .db()
                }

                async fn create_incident(
                    &self,
                    incident: NewIncident,
                ) -> Result<Incident, StoreError> {
                    let first = &incident.first_update;
                    let resolved_at =
                        (first.status == IncidentStatus::Resolved).then_some(StoredTime(first.now));
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    sqlx::query(sql::INSERT_INCIDENT)
                        .bind(incident.id.0)
                        .bind(incident.title.as_str())
                        .bind(first.status.as_str())
                        .bind(incident.impact.as_str())
                        .bind(join_components(&incident.components))
                        .bind(incident.expected_resolution.map(StoredTime))
                        .bind(StoredTime(first.now))
                        .bind(resolved_at)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    insert_incident_update(&mut tx, incident.id, first).await?;
                    let created = find_incident(&mut tx, incident.id).await?;
                    tx.commit().await.db()?;
                    created.ok_or_else(|| {
                        StoreError::Other("the incident just created is missing".into())
                    })
                }

                async fn add_incident_update(
                    &self,
                    incident_id: IncidentId,
                    update: NewIncidentUpdate,
                ) -> Result<Option<Incident>, StoreError> {
                    let resolved_at = (update.status == IncidentStatus::Resolved)
                        .then_some(StoredTime(update.now));
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let changed = sqlx::query(sql::SET_INCIDENT_STATUS)
                        .bind(update.status.as_str())
                        .bind(StoredTime(update.now))
                        .bind(resolved_at)
                        .bind(incident_id.0)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    if changed.rows_affected() == 0 {
                        return Ok(None);
                    }
                    insert_incident_update(&mut tx, incident_id, &update).await?;
                    let incident = find_incident(&mut tx, incident_id).await?;
                    tx.commit().await.db()?;
                    Ok(incident)
                }

                async fn list_incidents(&self, limit: u32) -> Result<Vec<Incident>, StoreError> {
                    let mut connection = self.pools().read().await?;
                    let rows: Vec<IncidentRow> = sqlx::query_as(sql::LIST_INCIDENTS)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *connection)
                        .await
                        .db()?;
                    let updates: Vec<IncidentUpdateRow> =
                        sqlx::query_as(sql::LIST_INCIDENT_UPDATES)
                            .bind(i64::from(limit))
                            .fetch_all(&mut *connection)
                            .await
                            .db()?;
                    let mut by_incident: std::collections::HashMap<Uuid, Vec<_>> =
                        std::collections::HashMap::new();
                    for row in updates {
                        by_incident
                            .entry(row.incident_id())
                            .or_default()
                            .push(row.into_update().db()?);
                    }
                    rows.into_iter()
                        .map(|row| {
                            let updates = by_incident.remove(&row.id()).unwrap_or_default();
                            row.into_incident(updates)
                        })
                        .collect::<Result<_, _>>()
                        .db()
                }

                async fn create_console_session(
                    &self,
                    token: TokenHash,
                    record: ConsoleSessionRecord,
                    stale_before: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    sqlx::query(sql::PURGE_CONSOLE_SESSIONS)
                        .bind(StoredTime(stale_before))
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    sqlx::query(sql::INSERT_CONSOLE_SESSION)
                        .bind(token.0.as_slice())
                        .bind(record.user.map(|(user, _)| user.0))
                        .bind(record.user.map(|(_, session)| session.0))
                        .bind(StoredTime(record.created_at))
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()
                }

                async fn touch_console_session(
                    &self,
                    token: TokenHash,
                    stale_before: OffsetDateTime,
                    now: OffsetDateTime,
                ) -> Result<Option<ConsoleSessionRecord>, StoreError> {
                    let row: Option<ConsoleSessionRow> = sqlx::query_as(sql::TOUCH_CONSOLE_SESSION)
                        .bind(StoredTime(now))
                        .bind(token.0.as_slice())
                        .bind(StoredTime(stale_before))
                        .fetch_optional(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(row.map(ConsoleSessionRow::into_record))
                }

                async fn find_console_session(
                    &self,
                    token: TokenHash,
                    stale_before: OffsetDateTime,
                ) -> Result<Option<ConsoleSessionRecord>, StoreError> {
                    let row: Option<ConsoleSessionRow> = sqlx::query_as(sql::FIND_CONSOLE_SESSION)
                        .bind(token.0.as_slice())
                        .bind(StoredTime(stale_before))
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    Ok(row.map(ConsoleSessionRow::into_record))
                }

                async fn delete_console_session(&self, token: TokenHash) -> Result<(), StoreError> {
                    sqlx::query(sql::DELETE_CONSOLE_SESSION)
                        .bind(token.0.as_slice())
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn record_flag_change(&self, change: &FlagChange) -> Result<(), StoreError> {
                    sqlx::query(sql::INSERT_FLAG_CHANGE)
                        .bind(change.flag.as_str())
                        .bind(change.old_value)
                        .bind(change.new_value)
                        .bind(change.actor.as_str())
                        .bind(StoredTime(change.changed_at))
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn latest_flag_change(
                    &self,
                    flag: &str,
                ) -> Result<Option<FlagChange>, StoreError> {
                    let row: Option<FlagChangeRow> = sqlx::query_as(sql::LATEST_FLAG_CHANGE)
                        .bind(flag)
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    Ok(row.map(FlagChangeRow::into_change))
                }

                async fn server_connections(&self) -> Result<Vec<(String, i64)>, StoreError> {
                    let Some(query) = <$store as Dialect>::CONNECTIONS_BY_STATE else {
                        return Ok(Vec::new());
                    };
                    sqlx::query_as(query)
                        .fetch_all(&mut *self.pools().read().await?)
                        .await
                        .db()
                }

                async fn recent_flag_changes(
                    &self,
                    limit: u32,
                ) -> Result<Vec<FlagChange>, StoreError> {
                    let rows: Vec<FlagChangeRow> = sqlx::query_as(sql::RECENT_FLAG_CHANGES)
                        .bind(i64::from(limit))
                        .fetch_all(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    Ok(rows.into_iter().map(FlagChangeRow::into_change).collect())
                }

                async fn purge(
                    &self,
                    ended_before: OffsetDateTime,
                    limit: u32,
                ) -> Result<PurgeBatch, StoreError> {
                    let limit = limit.max(1);
                    let batch = i64::from(limit);
                    let cutoff = StoredTime(ended_before);
                    let mut removed = Purged::default();
                    let ended: Vec<Uuid> = sqlx::query_scalar(sql::SELECT_ENDED_SESSIONS)
                        .bind(cutoff)
                        .bind(batch)
                        .fetch_all(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    if !ended.is_empty() {
                        // One connection per statement, so that requests' writes queue between
                        // the chunks rather than behind the whole batch.
                        loop {
                            let mut chunk = QueryBuilder::<Db>::new(sql::PURGE_SESSION_TOKENS);
                            push_ids(&mut chunk, &ended);
                            chunk
                                .push(sql::PURGE_SESSION_TOKENS_LIMIT)
                                .push_bind(batch)
                                .push(<$store as Dialect>::BATCH_LOCK)
                                .push(")");
                            let done = chunk
                                .build()
                                .execute(&mut *self.pools().write().await?)
                                .await
                                .db()?;
                            removed.refresh_tokens += done.rows_affected();
                            if done.rows_affected() < u64::from(limit) {
                                break;
                            }
                        }
                        let mut sessions = QueryBuilder::<Db>::new(sql::PURGE_SESSIONS);
                        sessions
                            .push_bind(cutoff)
                            .push(sql::PURGE_SESSIONS_OR_EXPIRED)
                            .push_bind(cutoff)
                            .push(sql::PURGE_SESSIONS_IDS);
                        push_ids(&mut sessions, &ended);
                        sessions.push(")");
                        removed.sessions = sessions
                            .build()
                            .execute(&mut *self.pools().write().await?)
                            .await
                            .db()?
                            .rows_affected();
                    }
                    removed.reset_tokens = sqlx::query(<$store as Dialect>::PURGE_RESET_TOKENS)
                        .bind(cutoff)
                        .bind(batch)
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?
                        .rows_affected();
                    let mut flow_states = QueryBuilder::<Db>::new(sql::PURGE_FLOW_STATES);
                    flow_states
                        .push_bind(cutoff)
                        .push(sql::PURGE_FLOW_STATES_LIMIT)
                        .push_bind(batch)
                        .push(<$store as Dialect>::BATCH_LOCK)
                        .push(")");
                    removed.flow_states = flow_states
                        .build()
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?
                        .rows_affected();
                    Ok(PurgeBatch {
                        removed,
                        more: ended.len() >= limit as usize
                            || removed.reset_tokens >= u64::from(limit)
                            || removed.flow_states >= u64::from(limit),
                    })
                }

                async fn create_pending_user(
                    &self,
                    user: NewUser,
                    invited: bool,
                ) -> Result<User, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    // Awaiting confirmation, whatever the caller set.
                    let user = NewUser {
                        email_confirmed: false,
                        ..user
                    };
                    let created = insert_new_user(&mut tx, &user, Role::default(), None).await?;
                    sqlx::query(sql::INSERT_MAIL_STATE)
                        .bind(user.id.0)
                        .bind(invited.then_some(StoredTime(user.now)))
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()?;
                    Ok(created)
                }

                async fn mail_state(&self, user_id: UserId) -> Result<MailState, StoreError> {
                    let row: Option<MailStateRow> = sqlx::query_as(sql::FIND_MAIL_STATE)
                        .bind(user_id.0)
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    Ok(row.map(MailStateRow::into_state).unwrap_or_default())
                }

                async fn issue_mail_token(
                    &self,
                    token: NewMailToken,
                ) -> Result<MailTokenIssued, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    lock_user_mail(&mut tx, token.user_id).await?;
                    let last = if token.purpose == MailPurpose::Recovery {
                        // GoTrue's `recovery_sent_at`: the newest recovery token's issue time
                        // (v1 resets, /recover and magic links all mail one).
                        let newest: Option<(StoredTime,)> = sqlx::query_as(sql::FIND_RECOVERY_SENT)
                            .bind(token.user_id.0)
                            .fetch_optional(&mut *tx)
                            .await
                            .db()?;
                        newest.map(|(sent,)| sent)
                    } else {
                        let sent: Option<(Option<StoredTime>, Option<StoredTime>)> =
                            sqlx::query_as(sql::FIND_MAIL_SENT)
                                .bind(token.user_id.0)
                                .fetch_optional(&mut *tx)
                                .await
                                .db()?;
                        let (confirmation, email_change) = sent.unwrap_or_default();
                        match token.purpose {
                            MailPurpose::EmailChange | MailPurpose::EmailChangeCurrent => {
                                email_change
                            }
                            MailPurpose::Confirmation | MailPurpose::Recovery => confirmation,
                        }
                    };
                    if let Some(issued) = too_soon(last, token.min_interval, token.now) {
                        return Ok(issued);
                    }
                    sqlx::query(sql::SPEND_USER_MAIL_TOKENS)
                        .bind(StoredTime(token.now))
                        .bind(token.user_id.0)
                        .bind(token.purpose.as_str())
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    for hash in [token.link, token.code] {
                        sqlx::query(sql::INSERT_MAIL_TOKEN)
                            .bind(hash.0.as_slice())
                            .bind(token.user_id.0)
                            .bind(StoredTime(token.now))
                            .bind(StoredTime(token.expires_at))
                            .bind(token.purpose.as_str())
                            .execute(&mut *tx)
                            .await
                            .db()?;
                    }
                    match token.purpose {
                        MailPurpose::EmailChange | MailPurpose::EmailChangeCurrent => {
                            sqlx::query(sql::RECORD_EMAIL_CHANGE_SENT)
                                .bind(token.user_id.0)
                                .bind(token.new_email.as_ref().map(Email::as_str))
                                .bind(StoredTime(token.now))
                                .execute(&mut *tx)
                                .await
                                .db()?;
                        }
                        // Its tokens are the record.
                        MailPurpose::Recovery => {}
                        MailPurpose::Confirmation => {
                            sqlx::query(sql::RECORD_CONFIRMATION_SENT)
                                .bind(token.user_id.0)
                                .bind(StoredTime(token.now))
                                .execute(&mut *tx)
                                .await
                                .db()?;
                        }
                    }
                    tx.commit().await.db()?;
                    Ok(MailTokenIssued::Issued)
                }

                async fn redeem_mail_token(
                    &self,
                    token: TokenHash,
                    purposes: [MailPurpose; 2],
                    now: OffsetDateTime,
                ) -> Result<Option<RedeemedMailToken>, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let spent: Option<(Uuid, String)> = sqlx::query_as(sql::SPEND_MAIL_TOKEN)
                        .bind(StoredTime(now))
                        .bind(token.0.as_slice())
                        .bind(purposes[0].as_str())
                        .bind(purposes[1].as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                    let Some((owner, purpose)) = spent else {
                        return Ok(None);
                    };
                    let purpose = MailPurpose::from_stored(&purpose).ok_or_else(|| {
                        StoreError::Other(format!("unknown token purpose {purpose:?}").into())
                    })?;
                    sqlx::query(sql::SPEND_USER_MAIL_TOKENS)
                        .bind(StoredTime(now))
                        .bind(owner)
                        .bind(purpose.as_str())
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    match purpose {
                        MailPurpose::Confirmation | MailPurpose::Recovery => {
                            sqlx::query(sql::CONFIRM_EMAIL)
                                .bind(StoredTime(now))
                                .bind(owner)
                                .execute(&mut *tx)
                                .await
                                .db()?;
                            sqlx::query(sql::END_AWAITING_CONFIRMATION)
                                .bind(owner)
                                .execute(&mut *tx)
                                .await
                                .db()?;
                        }
                        MailPurpose::EmailChange | MailPurpose::EmailChangeCurrent => {
                            let pending: Option<Option<String>> =
                                sqlx::query_scalar(sql::FIND_PENDING_EMAIL)
                                    .bind(owner)
                                    .fetch_optional(&mut *tx)
                                    .await
                                    .db()?;
                            let Some(new_email) = pending.flatten() else {
                                return Ok(None);
                            };
                            sqlx::query(sql::CHANGE_EMAIL)
                                .bind(new_email)
                                .bind(StoredTime(now))
                                .bind(owner)
                                .execute(&mut *tx)
                                .await
                                .db()?;
                            sqlx::query(sql::END_EMAIL_CHANGE)
                                .bind(owner)
                                .execute(&mut *tx)
                                .await
                                .db()?;
                        }
                    }
                    tx.commit().await.db()?;
                    Ok(Some(RedeemedMailToken {
                        user_id: UserId(owner),
                        purpose,
                    }))
                }

                async fn create_flow_state(&self, state: NewFlowState) -> Result<(), StoreError> {
                    sqlx::query(sql::INSERT_FLOW_STATE)
                        .bind(state.id.0)
                        .bind(state.user_id.0)
                        .bind(state.method.as_str())
                        .bind(state.challenge.challenge())
                        .bind(state.challenge.method().as_str())
                        .bind(StoredTime(state.now))
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(())
                }

                async fn issue_auth_code(&self, code: IssuedAuthCode) -> Result<bool, StoreError> {
                    let done = sqlx::query(sql::ISSUE_AUTH_CODE)
                        .bind(code.code.0.as_slice())
                        .bind(StoredTime(code.now))
                        .bind(code.user_id.0)
                        .bind(code.method.as_str())
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn find_flow_state(
                    &self,
                    code: TokenHash,
                ) -> Result<Option<FlowState>, StoreError> {
                    let row: Option<FlowStateRow> = sqlx::query_as(sql::FIND_FLOW_STATE)
                        .bind(code.0.as_slice())
                        .fetch_optional(&mut *self.pools().read().await?)
                        .await
                        .db()?;
                    row.map(FlowStateRow::into_flow_state).transpose().db()
                }

                async fn delete_flow_state(&self, id: FlowStateId) -> Result<bool, StoreError> {
                    let done = sqlx::query(sql::DELETE_FLOW_STATE)
                        .bind(id.0)
                        .execute(&mut *self.pools().write().await?)
                        .await
                        .db()?;
                    Ok(done.rows_affected() > 0)
                }

                async fn issue_email_change(
                    &self,
                    change: NewEmailChange,
                ) -> Result<MailTokenIssued, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    lock_user_mail(&mut tx, change.user_id).await?;
                    let sent: Option<(Option<StoredTime>, Option<StoredTime>)> =
                        sqlx::query_as(sql::FIND_MAIL_SENT)
                            .bind(change.user_id.0)
                            .fetch_optional(&mut *tx)
                            .await
                            .db()?;
                    let (_, last) = sent.unwrap_or_default();
                    if let Some(issued) = too_soon(last, change.min_interval, change.now) {
                        return Ok(issued);
                    }
                    if change.replace_all {
                        sqlx::query(sql::SPEND_EMAIL_CHANGE_TOKENS)
                            .bind(StoredTime(change.now))
                            .bind(change.user_id.0)
                            .execute(&mut *tx)
                            .await
                            .db()?;
                    }
                    let halves = [
                        (MailPurpose::EmailChange, change.new_address),
                        (MailPurpose::EmailChangeCurrent, change.current_address),
                    ];
                    for (purpose, pair) in halves {
                        let Some(pair) = pair else { continue };
                        if !change.replace_all {
                            sqlx::query(sql::SPEND_USER_MAIL_TOKENS)
                                .bind(StoredTime(change.now))
                                .bind(change.user_id.0)
                                .bind(purpose.as_str())
                                .execute(&mut *tx)
                                .await
                                .db()?;
                        }
                        for hash in [pair.link, pair.code] {
                            sqlx::query(sql::INSERT_MAIL_TOKEN)
                                .bind(hash.0.as_slice())
                                .bind(change.user_id.0)
                                .bind(StoredTime(change.now))
                                .bind(StoredTime(change.expires_at))
                                .bind(purpose.as_str())
                                .execute(&mut *tx)
                                .await
                                .db()?;
                        }
                    }
                    sqlx::query(sql::RECORD_EMAIL_CHANGE_ISSUED)
                        .bind(change.user_id.0)
                        .bind(change.new_email.as_str())
                        .bind(StoredTime(change.now))
                        .bind(i32::from(change.confirmations))
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()?;
                    Ok(MailTokenIssued::Issued)
                }

                async fn redeem_email_change(
                    &self,
                    token: TokenHash,
                    now: OffsetDateTime,
                ) -> Result<Option<EmailChangeRedeemed>, StoreError> {
                    let mut tx = self.pools().begin(<$store as Dialect>::BEGIN).await?;
                    let spent: Option<(Uuid, String)> = sqlx::query_as(sql::SPEND_MAIL_TOKEN)
                        .bind(StoredTime(now))
                        .bind(token.0.as_slice())
                        .bind(MailPurpose::EmailChange.as_str())
                        .bind(MailPurpose::EmailChangeCurrent.as_str())
                        .fetch_optional(&mut *tx)
                        .await
                        .db()?;
                    let Some((owner, purpose)) = spent else {
                        return Ok(None);
                    };
                    sqlx::query(sql::SPEND_USER_MAIL_TOKENS)
                        .bind(StoredTime(now))
                        .bind(owner)
                        .bind(purpose)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    let counted: Option<(Option<String>, i32)> =
                        sqlx::query_as(sql::COUNT_EMAIL_CHANGE_CONFIRMATION)
                            .bind(owner)
                            .fetch_optional(&mut *tx)
                            .await
                            .db()?;
                    let Some((Some(new_email), left)) = counted else {
                        return Ok(None);
                    };
                    let user_id = UserId(owner);
                    if left > 0 {
                        tx.commit().await.db()?;
                        return Ok(Some(EmailChangeRedeemed::AwaitingOther { user_id }));
                    }
                    sqlx::query(sql::CHANGE_EMAIL)
                        .bind(new_email)
                        .bind(StoredTime(now))
                        .bind(owner)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    sqlx::query(sql::END_EMAIL_CHANGE)
                        .bind(owner)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    sqlx::query(sql::SPEND_EMAIL_CHANGE_TOKENS)
                        .bind(StoredTime(now))
                        .bind(owner)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()?;
                    Ok(Some(EmailChangeRedeemed::Changed { user_id }))
                }
            }

            /// `TooSoon` when the previous mail of the kind went out less than `min_interval`
            /// before `now` (GoTrue's `SMTP_MAX_FREQUENCY`), with the whole seconds to wait.
            fn too_soon(
                last: Option<StoredTime>,
                min_interval: time::Duration,
                now: OffsetDateTime,
            ) -> Option<MailTokenIssued> {
                let wait = last?.0 + min_interval - now;
                if !wait.is_positive() {
                    return None;
                }
                let seconds = wait.whole_seconds() + i64::from(wait.subsec_nanoseconds() > 0);
                Some(MailTokenIssued::TooSoon {
                    retry_after_secs: u64::try_from(seconds).unwrap_or(1),
                })
            }

            /// Serialises the mail-token writes of one user, so that two requests cannot both pass
            /// the interval check: an advisory lock on PostgreSQL (not the user's row, which
            /// redeeming a token also locks); SQLite's write transaction already does it.
            async fn lock_user_mail(
                tx: &mut Transaction<'static, Db>,
                user_id: UserId,
            ) -> Result<(), StoreError> {
                if let Some(lock) = <$store as Dialect>::LOCK_USER_MAIL {
                    let (high, _) = user_id.0.as_u64_pair();
                    sqlx::query(lock)
                        .bind(i64::from_ne_bytes(high.to_ne_bytes()))
                        .execute(&mut **tx)
                        .await
                        .db()?;
                }
                Ok(())
            }

            async fn insert_incident_update(
                tx: &mut Transaction<'static, Db>,
                incident_id: IncidentId,
                update: &NewIncidentUpdate,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_INCIDENT_UPDATE)
                    .bind(update.id)
                    .bind(incident_id.0)
                    .bind(update.status.as_str())
                    .bind(update.message.as_str())
                    .bind(StoredTime(update.now))
                    .execute(&mut **tx)
                    .await
                    .db()?;
                Ok(())
            }

            /// The incident with its timeline, read inside the writing transaction.
            async fn find_incident(
                tx: &mut Transaction<'static, Db>,
                incident_id: IncidentId,
            ) -> Result<Option<Incident>, StoreError> {
                let row: Option<IncidentRow> = sqlx::query_as(sql::FIND_INCIDENT)
                    .bind(incident_id.0)
                    .fetch_optional(&mut **tx)
                    .await
                    .db()?;
                let Some(row) = row else {
                    return Ok(None);
                };
                let updates: Vec<IncidentUpdateRow> = sqlx::query_as(sql::INCIDENT_UPDATES)
                    .bind(incident_id.0)
                    .fetch_all(&mut **tx)
                    .await
                    .db()?;
                let updates = updates
                    .into_iter()
                    .map(IncidentUpdateRow::into_update)
                    .collect::<Result<_, _>>()
                    .db()?;
                row.into_incident(updates).map(Some).db()
            }

            /// `id, id, …` as bound parameters.
            fn push_ids(query: &mut QueryBuilder<'_, Db>, ids: &[Uuid]) {
                let mut list = query.separated(", ");
                for id in ids {
                    list.push_bind(*id);
                }
            }

            /// The session and its first refresh token (generation 0).
            /// The one `INSERT INTO users`: registration, the admin's create, a pending account.
            /// The object a metadata write leaves, from the one the locked row holds; `None`
            /// when the change leaves it alone, `Err(field)` when it would be too large (the
            /// only refusal of an apply).
            fn metadata_after(
                write: Option<&MetadataWrite>,
                stored: Option<&Metadata>,
                field: MetadataField,
            ) -> Result<Option<Metadata>, MetadataField> {
                write
                    .map(|write| write.apply(stored))
                    .transpose()
                    .map_err(|_too_large| field)
            }

            async fn insert_new_user(
                conn: &mut <Db as sqlx::Database>::Connection,
                user: &NewUser,
                role: Role,
                banned_until: Option<OffsetDateTime>,
            ) -> Result<User, StoreError> {
                let row: UserRow = sqlx::query_as(sql::INSERT_USER)
                    .bind(user.id.0)
                    .bind(user.email.as_str())
                    .bind(user.password_hash.as_str())
                    .bind(user.display_name.as_ref().map(DisplayName::as_str))
                    .bind(user.credits_balance)
                    .bind(role.as_str())
                    .bind(StoredTime(user.now))
                    .bind(user.email_confirmed)
                    .bind(user.avatar_url.as_ref().map(AvatarUrl::as_str))
                    .bind(user.user_metadata.as_ref().map(Metadata::to_stored))
                    .bind(user.app_metadata.as_ref().map(Metadata::to_stored))
                    .bind(banned_until.map(StoredTime))
                    .fetch_one(conn)
                    .await
                    .db()?;
                row.into_user().db()
            }

            async fn insert_session(
                tx: &mut Transaction<'static, Db>,
                session: &NewSession,
            ) -> Result<(), StoreError> {
                sqlx::query(sql::INSERT_SESSION)
                    .bind(session.id.0)
                    .bind(session.user_id.0)
                    .bind(StoredTime(session.now))
                    .bind(StoredTime(session.refresh_expires_at))
                    .bind(session.remember_me)
                    .bind(session.user_agent.as_deref())
                    .bind(session.ip.as_deref())
                    .execute(&mut **tx)
                    .await
                    .db()?;
                sqlx::query(sql::INSERT_REFRESH_TOKEN)
                    .bind(session.refresh_token.0.as_slice())
                    .bind(session.id.0)
                    .bind(StoredGeneration(0))
                    .bind(StoredTime(session.now))
                    .bind(StoredTime(session.refresh_expires_at))
                    .execute(&mut **tx)
                    .await
                    .db()?;
                Ok(())
            }

            async fn revoke_sessions(
                tx: &mut Transaction<'static, Db>,
                user_id: UserId,
                keep: Option<SessionId>,
                now: OffsetDateTime,
            ) -> Result<Vec<SessionId>, StoreError> {
                let revoked: Vec<Uuid> = match keep {
                    Some(keep) => {
                        sqlx::query_scalar(sql::REVOKE_OTHER_SESSIONS)
                            .bind(StoredTime(now))
                            .bind(user_id.0)
                            .bind(keep.0)
                            .fetch_all(&mut **tx)
                            .await
                    }
                    None => {
                        sqlx::query_scalar(sql::REVOKE_USER_SESSIONS)
                            .bind(StoredTime(now))
                            .bind(user_id.0)
                            .fetch_all(&mut **tx)
                            .await
                    }
                }
                .db()?;
                Ok(revoked.into_iter().map(SessionId).collect())
            }
        };
    };
}

pub(crate) use sql_store;
