//! PostgreSQL rows to domain values: uuid, timestamptz (microseconds, as the core keeps them),
//! boolean. Decoding failures are `sqlx::Error::Decode`.

use sqlx::postgres::PgRow;
use sqlx::Row;
use uuid::Uuid;
use velro_core::domain::{
    Credentials, Email, PasswordHash, Role, SessionId, SessionRecord, User, UserId,
};

use crate::error::corrupt;

pub(super) fn user(row: &PgRow) -> Result<User, sqlx::Error> {
    let role: String = row.try_get("role")?;
    Ok(User {
        id: UserId(row.try_get("user_id")?),
        email: Email::from_trusted(row.try_get("email")?),
        display_name: row.try_get("display_name")?,
        avatar_url: row.try_get("avatar_url")?,
        credits_balance: row.try_get("credits_balance")?,
        role: role
            .parse::<Role>()
            .map_err(|_| corrupt(format!("unknown role {role:?}")))?,
        email_confirmed: row.try_get("email_confirmed")?,
        disabled: row.try_get("disabled")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

pub(super) fn credentials(row: &PgRow) -> Result<Credentials, sqlx::Error> {
    Ok(Credentials {
        user: user(row)?,
        password_hash: PasswordHash::new(row.try_get("password_hash")?),
    })
}

/// Expects the columns of `session_columns_s!`.
pub(super) fn session(row: &PgRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        id: SessionId(row.try_get("session_id")?),
        user_id: UserId(row.try_get("session_user_id")?),
        created_at: row.try_get("session_created_at")?,
        last_refreshed_at: row.try_get("last_refreshed_at")?,
        expires_at: row.try_get("session_expires_at")?,
        remember_me: row.try_get("remember_me")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
    })
}

pub(super) fn session_id(row: &PgRow) -> Result<SessionId, sqlx::Error> {
    Ok(SessionId(row.try_get::<Uuid, _>("session_id")?))
}

pub(super) fn generation(stored: i32) -> Result<u32, sqlx::Error> {
    u32::try_from(stored).map_err(|_| corrupt(format!("refresh token generation {stored}")))
}

pub(super) fn to_stored_generation(generation: u32) -> Result<i32, sqlx::Error> {
    i32::try_from(generation)
        .map_err(|_| sqlx::Error::Encode(format!("refresh token generation {generation}").into()))
}
