//! What PostgreSQL does its own way: one pool, READ COMMITTED transactions whose conditional
//! UPDATEs make the atomic operations safe (a concurrent writer blocks on the row lock, then
//! sees the row as committed and matches 0 rows, which tells the loser what happened), and
//! times as timestamptz.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef};
use sqlx::{Decode, Encode, Postgres, Type};
use time::OffsetDateTime;

use super::PgStore;
use crate::rows::{StoredGeneration, StoredTime};
use crate::sql;
use crate::store::{sql_store, Dialect, Pools};

sql_store!(PgStore);
crate::import::import_store!(PgStore);

impl Dialect for PgStore {
    type Db = Postgres;

    /// Spelled out because a server may default to another level, under which the
    /// conditional UPDATEs would fail with serialization errors instead of seeing 0 rows.
    const BEGIN: &'static str = "BEGIN ISOLATION LEVEL READ COMMITTED";

    /// Locks the session first, in the order deletes and revocations take their locks.
    const FIND_PRESENTED_TOKEN: &'static str = sql::FIND_PRESENTED_TOKEN_FOR_UPDATE;

    /// Concurrent changes of one user wait here for the row, then read it as committed.
    const FIND_USER_FOR_UPDATE: &'static str = sql::FIND_USER_FOR_UPDATE;

    const EMAIL_PREFIX_FILTER: &'static [&'static str] = &[" AND starts_with(email, ", ")"];

    const CONNECTIONS_BY_STATE: Option<&'static str> = Some(
        "SELECT COALESCE(state, 'unknown') AS state, count(*) AS connections \
         FROM pg_stat_activity WHERE datname = current_database() GROUP BY 1 ORDER BY 1",
    );

    /// Instances purging at once split the rows instead of queueing on each other's locks.
    const PURGE_RESET_TOKENS: &'static str = sql::PURGE_RESET_TOKENS_SKIP_LOCKED;

    const BATCH_LOCK: &'static str = " FOR UPDATE SKIP LOCKED";

    /// A lock of its own, not the user's row: `redeem_mail_token` locks token rows before the
    /// user's, and a user-row lock taken first here could meet it in a deadlock.
    const LOCK_USER_MAIL: Option<&'static str> = Some("SELECT pg_advisory_xact_lock($1)");

    fn pools(&self) -> &Pools<Postgres> {
        &self.pools
    }
}

impl Type<Postgres> for StoredTime {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for StoredTime {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<'_, Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for StoredTime {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <OffsetDateTime as Decode<'r, Postgres>>::decode(value).map(Self)
    }
}

impl Type<Postgres> for StoredGeneration {
    fn type_info() -> PgTypeInfo {
        <i32 as Type<Postgres>>::type_info()
    }
}

impl Encode<'_, Postgres> for StoredGeneration {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        let stored =
            i32::try_from(self.0).map_err(|_| format!("refresh token generation {}", self.0))?;
        <i32 as Encode<'_, Postgres>>::encode_by_ref(&stored, buf)
    }
}

impl<'r> Decode<'r, Postgres> for StoredGeneration {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Self::from_stored(<i32 as Decode<'r, Postgres>>::decode(value)?)
    }
}
