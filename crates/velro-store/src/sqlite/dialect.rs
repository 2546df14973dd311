//! What SQLite does its own way: lookups use the read pool, every write goes through the single
//! writer (in an IMMEDIATE transaction when it must be atomic, so the atomic operations are
//! serialised by SQLite's write lock), and times are INTEGER unix microseconds.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Sqlite, Type};
use time::OffsetDateTime;

use super::SqliteStore;
use crate::rows::{StoredGeneration, StoredTime};
use crate::sql;
use crate::store::{sql_store, Dialect, Pools};

sql_store!(SqliteStore);
crate::import::import_store!(SqliteStore);

impl Dialect for SqliteStore {
    type Db = Sqlite;

    /// IMMEDIATE takes the write lock up front, so a transaction that reads before it writes
    /// cannot fail on the upgrade when another process holds the lock.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";

    /// SQLite's write lock already serialises rotations.
    const FIND_PRESENTED_TOKEN: &'static str = sql::FIND_PRESENTED_TOKEN;

    /// The IMMEDIATE transaction already holds the write lock.
    const FIND_USER_FOR_UPDATE: &'static str = sql::FIND_USER;

    const EMAIL_PREFIX_FILTER: &'static [&'static str] =
        &[" AND substr(email, 1, length(", ")) = ", ""];

    const CONNECTIONS_BY_STATE: Option<&'static str> = None;

    /// The single writer: a purge never meets another one's rows mid-delete.
    const PURGE_RESET_TOKENS: &'static str = sql::PURGE_RESET_TOKENS;

    const BATCH_LOCK: &'static str = "";

    /// BEGIN IMMEDIATE serialises issuers already.
    const LOCK_USER_MAIL: Option<&'static str> = None;

    fn pools(&self) -> &Pools<Sqlite> {
        &self.pools
    }
}

impl Type<Sqlite> for StoredTime {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for StoredTime {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        let micros = i64::try_from(self.0.unix_timestamp_nanos().div_euclid(1_000))
            .map_err(|_| format!("time out of range: {}", self.0))?;
        <i64 as Encode<'q, Sqlite>>::encode_by_ref(&micros, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for StoredTime {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let micros = <i64 as Decode<'r, Sqlite>>::decode(value)?;
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1_000)
            .map(Self)
            .map_err(|_| format!("stored time out of range: {micros}").into())
    }
}

impl Type<Sqlite> for StoredGeneration {
    fn type_info() -> SqliteTypeInfo {
        <i64 as Type<Sqlite>>::type_info()
    }

    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <i64 as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for StoredGeneration {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <i64 as Encode<'q, Sqlite>>::encode_by_ref(&self.to_stored()?, buf)
    }
}

impl<'r> Decode<'r, Sqlite> for StoredGeneration {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        Self::from_stored(<i64 as Decode<'r, Sqlite>>::decode(value)?)
    }
}
