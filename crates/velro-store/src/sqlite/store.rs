//! `Store` for SQLite. Lookups use the read pool; every write goes through the single writer in
//! an IMMEDIATE transaction, so the atomic operations are serialised by SQLite's write lock.

use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection};
use time::OffsetDateTime;
use velro_core::domain::{
    AdminUserChange, Credentials, Email, NewUser, PasswordHash, ProfileChange, Role, SessionId,
    SessionRecord, User, UserId, UserPage, UserQuery,
};
use velro_core::store::{NewSession, RefreshPolicy, Rotation, SessionWithUser, Store, TokenHash};
use velro_core::StoreError;

use super::rows::{self, micros, time};
use super::{SqliteResultExt, SqliteStore};
use crate::page::page;
use crate::rotation::{judge, next_generation, successor_expiry, PresentedToken, Verdict};
use crate::sql;

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(sql::PING)
            .execute(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        Ok(())
    }

    async fn create_user(&self, user: NewUser, session: NewSession) -> Result<User, StoreError> {
        let now = micros(user.now).db()?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql::INSERT_USER)
            .bind(user.id.0)
            .bind(user.email.as_str())
            .bind(user.password_hash.as_str())
            .bind(user.display_name.as_deref())
            .bind(user.credits_balance)
            .bind(Role::default().as_str())
            .bind(now)
            .fetch_one(&mut *tx)
            .await
            .db()?;
        let created = rows::user(&row).db()?;
        insert_session(&mut tx, &session).await?;
        tx.commit().await.db()?;
        Ok(created)
    }

    async fn find_credentials_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(sql::FIND_CREDENTIALS_BY_EMAIL)
            .bind(email.as_str())
            .fetch_optional(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        row.as_ref().map(rows::credentials).transpose().db()
    }

    async fn find_credentials(&self, user_id: UserId) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(sql::FIND_CREDENTIALS)
            .bind(user_id.0)
            .fetch_optional(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        row.as_ref().map(rows::credentials).transpose().db()
    }

    async fn replace_password_hash(
        &self,
        user_id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        sqlx::query(sql::SET_PASSWORD_HASH)
            .bind(hash.as_str())
            .bind(micros(now).db()?)
            .bind(user_id.0)
            .execute(&mut *self.conn(&self.write).await?)
            .await
            .db()?;
        Ok(())
    }

    async fn create_session(&self, session: NewSession) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        insert_session(&mut tx, &session).await?;
        tx.commit().await.db()
    }

    async fn find_live_session(
        &self,
        session_id: SessionId,
    ) -> Result<Option<SessionWithUser>, StoreError> {
        let row = sqlx::query(sql::FIND_LIVE_SESSION)
            .bind(session_id.0)
            .fetch_optional(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        Ok(Some(SessionWithUser {
            session: rows::session(&row).db()?,
            user: rows::user(&row).db()?,
        }))
    }

    async fn rotate_refresh_token(
        &self,
        presented: TokenHash,
        successor: TokenHash,
        policy: RefreshPolicy,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        let now_micros = micros(now).db()?;
        let mut tx = self.begin_write().await?;
        // Twice at most: losing the race to spend the token means it is now spent, and the
        // second reading judges it as such.
        for _ in 0..2 {
            let row = sqlx::query(sql::FIND_PRESENTED_TOKEN)
                .bind(presented.0.as_slice())
                .fetch_optional(&mut *tx)
                .await
                .db()?;
            let Some(row) = row else {
                return Ok(Rotation::Invalid);
            };
            let (token, generation, session, user) = presented_token(&row).db()?;
            match judge(&token, &policy, now) {
                Verdict::Invalid => return Ok(Rotation::Invalid),
                Verdict::ReusedWithinGrace => {
                    let newest: Option<i64> = sqlx::query_scalar(sql::NEWEST_GENERATION)
                        .bind(session.id.0)
                        .fetch_one(&mut *tx)
                        .await
                        .db()?;
                    tx.commit().await.db()?;
                    let newest_generation = newest.map(rows::generation).transpose().db()?;
                    return Ok(Rotation::ReusedWithinGrace {
                        session,
                        user,
                        presented_generation: generation,
                        newest_generation: newest_generation.unwrap_or(generation),
                    });
                }
                Verdict::ReusedAfterGrace => {
                    sqlx::query(sql::REVOKE_SESSION_BY_ID)
                        .bind(now_micros)
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
                        .bind(now_micros)
                        .bind(presented.0.as_slice())
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    if spent.rows_affected() == 0 {
                        continue;
                    }
                    let expires_at = successor_expiry(&policy, &session, now).db()?;
                    let expires_micros = micros(expires_at).db()?;
                    sqlx::query(sql::INSERT_REFRESH_TOKEN)
                        .bind(successor.0.as_slice())
                        .bind(session.id.0)
                        .bind(i64::from(next_generation(generation).db()?))
                        .bind(now_micros)
                        .bind(expires_micros)
                        .execute(&mut *tx)
                        .await
                        .db()?;
                    let refreshed = sqlx::query(sql::RECORD_REFRESH)
                        .bind(now_micros)
                        .bind(expires_micros)
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
            .bind(micros(now).db()?)
            .bind(session_id.0)
            .bind(user_id.0)
            .execute(&mut *self.conn(&self.write).await?)
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
        let mut tx = self.begin_write().await?;
        let revoked = revoke_sessions(&mut tx, user_id, keep, micros(now).db()?).await?;
        tx.commit().await.db()?;
        Ok(revoked)
    }

    async fn list_live_sessions(
        &self,
        user_id: UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionRecord>, StoreError> {
        let found = sqlx::query(sql::LIST_LIVE_SESSIONS)
            .bind(user_id.0)
            .bind(micros(now).db()?)
            .fetch_all(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        found
            .iter()
            .map(rows::session)
            .collect::<Result<_, _>>()
            .db()
    }

    async fn update_profile(
        &self,
        user_id: UserId,
        change: &ProfileChange,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql::UPDATE_PROFILE)
            .bind(change.display_name.is_some())
            .bind(change.display_name.clone().flatten())
            .bind(change.avatar_url.is_some())
            .bind(change.avatar_url.clone().flatten())
            .bind(micros(now).db()?)
            .bind(user_id.0)
            .fetch_optional(&mut *self.conn(&self.write).await?)
            .await
            .db()?;
        row.as_ref().map(rows::user).transpose().db()
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
            .bind(micros(now).db()?)
            .bind(micros(expires_at).db()?)
            .execute(&mut *self.conn(&self.write).await?)
            .await
            .db()?;
        Ok(())
    }

    async fn find_reset_token_user(
        &self,
        token: TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<Credentials>, StoreError> {
        let row = sqlx::query(sql::FIND_RESET_TOKEN_USER)
            .bind(token.0.as_slice())
            .bind(micros(now).db()?)
            .fetch_optional(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        row.as_ref().map(rows::credentials).transpose().db()
    }

    async fn reset_password(
        &self,
        token: TokenHash,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<Option<(UserId, Vec<SessionId>)>, StoreError> {
        let now = micros(now).db()?;
        let mut tx = self.begin_write().await?;
        let owner: Option<uuid::Uuid> = sqlx::query_scalar(sql::SPEND_RESET_TOKEN)
            .bind(now)
            .bind(token.0.as_slice())
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        let Some(owner) = owner.map(UserId) else {
            return Ok(None);
        };
        sqlx::query(sql::SET_PASSWORD_HASH)
            .bind(hash.as_str())
            .bind(now)
            .bind(owner.0)
            .execute(&mut *tx)
            .await
            .db()?;
        sqlx::query(sql::SPEND_USER_RESET_TOKENS)
            .bind(now)
            .bind(owner.0)
            .execute(&mut *tx)
            .await
            .db()?;
        let revoked = revoke_sessions(&mut tx, owner, None, now).await?;
        tx.commit().await.db()?;
        Ok(Some((owner, revoked)))
    }

    async fn change_password(
        &self,
        user_id: UserId,
        hash: &PasswordHash,
        keep: SessionId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        let now = micros(now).db()?;
        let mut tx = self.begin_write().await?;
        sqlx::query(sql::SET_PASSWORD_HASH)
            .bind(hash.as_str())
            .bind(now)
            .bind(user_id.0)
            .execute(&mut *tx)
            .await
            .db()?;
        let revoked = revoke_sessions(&mut tx, user_id, Some(keep), now).await?;
        tx.commit().await.db()?;
        Ok(revoked)
    }

    async fn list_users(&self, query: &UserQuery) -> Result<UserPage, StoreError> {
        let mut select = QueryBuilder::<Sqlite>::new(sql::LIST_USERS);
        if let Some(prefix) = &query.email_prefix {
            // substr/length compare characters literally, unlike LIKE with its % and _.
            select
                .push(" AND substr(email, 1, length(")
                .push_bind(prefix.as_str())
                .push(")) = ")
                .push_bind(prefix.as_str());
        }
        if let Some(after) = &query.after {
            select
                .push(sql::LIST_USERS_AFTER)
                .push_bind(micros(after.created_at).db()?)
                .push(", ")
                .push_bind(after.id.0)
                .push(")");
        }
        select
            .push(sql::LIST_USERS_ORDER)
            .push_bind(i64::from(query.limit) + 1);
        let found = select
            .build()
            .fetch_all(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        let users = found
            .iter()
            .map(rows::user)
            .collect::<Result<_, _>>()
            .db()?;
        Ok(page(users, query.limit))
    }

    async fn find_user(&self, user_id: UserId) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(sql::FIND_USER)
            .bind(user_id.0)
            .fetch_optional(&mut *self.conn(&self.read).await?)
            .await
            .db()?;
        row.as_ref().map(rows::user).transpose().db()
    }

    async fn update_user(
        &self,
        user_id: UserId,
        change: &AdminUserChange,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let now = micros(now).db()?;
        let mut tx = self.begin_write().await?;
        let row = sqlx::query(sql::UPDATE_USER)
            .bind(change.disabled)
            .bind(change.role.map(Role::as_str))
            .bind(change.credits_balance)
            .bind(change.email_confirmed)
            .bind(now)
            .bind(user_id.0)
            .fetch_optional(&mut *tx)
            .await
            .db()?;
        let Some(row) = row else {
            return Ok(None);
        };
        let user = rows::user(&row).db()?;
        if change.disabled == Some(true) {
            revoke_sessions(&mut tx, user_id, None, now).await?;
        }
        tx.commit().await.db()?;
        Ok(Some(user))
    }

    async fn delete_user(&self, user_id: UserId) -> Result<bool, StoreError> {
        let done = sqlx::query(sql::DELETE_USER)
            .bind(user_id.0)
            .execute(&mut *self.conn(&self.write).await?)
            .await
            .db()?;
        Ok(done.rows_affected() > 0)
    }
}

async fn insert_session(tx: &mut SqliteConnection, session: &NewSession) -> Result<(), StoreError> {
    let now = micros(session.now).db()?;
    let expires_at = micros(session.refresh_expires_at).db()?;
    sqlx::query(sql::INSERT_SESSION)
        .bind(session.id.0)
        .bind(session.user_id.0)
        .bind(now)
        .bind(expires_at)
        .bind(session.remember_me)
        .bind(session.user_agent.as_deref())
        .bind(session.ip.as_deref())
        .execute(&mut *tx)
        .await
        .db()?;
    sqlx::query(sql::INSERT_REFRESH_TOKEN)
        .bind(session.refresh_token.0.as_slice())
        .bind(session.id.0)
        .bind(0_i64)
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .db()?;
    Ok(())
}

async fn revoke_sessions(
    tx: &mut SqliteConnection,
    user_id: UserId,
    keep: Option<SessionId>,
    now: i64,
) -> Result<Vec<SessionId>, StoreError> {
    let revoked = match keep {
        Some(keep) => {
            sqlx::query(sql::REVOKE_OTHER_SESSIONS)
                .bind(now)
                .bind(user_id.0)
                .bind(keep.0)
                .fetch_all(&mut *tx)
                .await
        }
        None => {
            sqlx::query(sql::REVOKE_USER_SESSIONS)
                .bind(now)
                .bind(user_id.0)
                .fetch_all(&mut *tx)
                .await
        }
    }
    .db()?;
    revoked
        .iter()
        .map(rows::session_id)
        .collect::<Result<_, _>>()
        .db()
}

type Presented = (PresentedToken, u32, SessionRecord, User);

fn presented_token(row: &sqlx::sqlite::SqliteRow) -> Result<Presented, sqlx::Error> {
    let user = rows::user(row)?;
    let token = PresentedToken {
        expires_at: time(row.try_get("token_expires_at")?)?,
        spent_at: row
            .try_get::<Option<i64>, _>("spent_at")?
            .map(time)
            .transpose()?,
        session_revoked: row.try_get::<Option<i64>, _>("revoked_at")?.is_some(),
        user_disabled: user.disabled,
    };
    let generation = rows::generation(row.try_get("generation")?)?;
    Ok((token, generation, rows::session(row)?, user))
}
