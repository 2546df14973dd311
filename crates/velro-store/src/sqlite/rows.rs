//! SQLite values to domain values and back: times are INTEGER unix microseconds, ids 16-byte
//! BLOBs, booleans 0/1. Decoding failures are `sqlx::Error::Decode`.

use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{
    Credentials, Email, PasswordHash, Role, SessionId, SessionRecord, User, UserId,
};

use crate::error::corrupt;

pub(super) fn micros(t: OffsetDateTime) -> Result<i64, sqlx::Error> {
    i64::try_from(t.unix_timestamp_nanos().div_euclid(1_000))
        .map_err(|_| sqlx::Error::Encode(format!("time out of range: {t}").into()))
}

pub(super) fn time(micros: i64) -> Result<OffsetDateTime, sqlx::Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
        .map_err(|_| corrupt(format!("stored time out of range: {micros}")))
}

fn opt_time(micros: Option<i64>) -> Result<Option<OffsetDateTime>, sqlx::Error> {
    micros.map(time).transpose()
}

pub(super) fn user(row: &SqliteRow) -> Result<User, sqlx::Error> {
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
        created_at: time(row.try_get("created_at")?)?,
        updated_at: time(row.try_get("updated_at")?)?,
    })
}

pub(super) fn credentials(row: &SqliteRow) -> Result<Credentials, sqlx::Error> {
    Ok(Credentials {
        user: user(row)?,
        password_hash: PasswordHash::new(row.try_get("password_hash")?),
    })
}

/// Expects the columns of `session_columns_s!`.
pub(super) fn session(row: &SqliteRow) -> Result<SessionRecord, sqlx::Error> {
    Ok(SessionRecord {
        id: SessionId(row.try_get("session_id")?),
        user_id: UserId(row.try_get("session_user_id")?),
        created_at: time(row.try_get("session_created_at")?)?,
        last_refreshed_at: opt_time(row.try_get("last_refreshed_at")?)?,
        expires_at: time(row.try_get("session_expires_at")?)?,
        remember_me: row.try_get("remember_me")?,
        user_agent: row.try_get("user_agent")?,
        ip: row.try_get("ip")?,
    })
}

pub(super) fn session_id(row: &SqliteRow) -> Result<SessionId, sqlx::Error> {
    Ok(SessionId(row.try_get::<Uuid, _>("session_id")?))
}

pub(super) fn generation(stored: i64) -> Result<u32, sqlx::Error> {
    u32::try_from(stored).map_err(|_| corrupt(format!("refresh token generation {stored}")))
}
