//! Maps sqlx errors onto the port's `StoreError`: which failures mean "unavailable", and which
//! unique key a conflict hit. Nothing here decides HTTP statuses.

use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;
use velro_core::StoreError;

/// The constraint name both migrations give the unique index on `users.email`.
const USERS_EMAIL_KEY: &str = "users_email_key";

#[derive(Debug, Clone, Copy)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

pub(crate) fn from_sqlite(error: sqlx::Error) -> StoreError {
    classify(error, Dialect::Sqlite)
}

pub(crate) fn from_pg(error: sqlx::Error) -> StoreError {
    classify(error, Dialect::Postgres)
}

/// For the body both stores share: a database error names its dialect by its type, and every
/// other failure is classified the same way in both.
pub(crate) fn from_sqlx(error: sqlx::Error) -> StoreError {
    let dialect = match &error {
        sqlx::Error::Database(db) if db.try_downcast_ref::<PgDatabaseError>().is_some() => {
            Dialect::Postgres
        }
        _ => Dialect::Sqlite,
    };
    classify(error, dialect)
}

/// `?` for sqlx results inside the stores.
pub(crate) trait SqlxResultExt<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(from_sqlx)
    }
}

pub(crate) fn from_migrate(error: sqlx::migrate::MigrateError) -> StoreError {
    match error {
        sqlx::migrate::MigrateError::Execute(inner) => from_sqlx(inner),
        other => StoreError::Other(Box::new(other)),
    }
}

/// For stored values that cannot be turned back into domain values.
pub(crate) fn corrupt(what: impl Into<String>) -> sqlx::Error {
    sqlx::Error::Decode(what.into().into())
}

fn classify(error: sqlx::Error, dialect: Dialect) -> StoreError {
    let unavailable = match &error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => {
            if is_email_conflict(db.as_ref()) {
                return StoreError::Conflict("email");
            }
            if is_user_id_conflict(db.as_ref()) {
                return StoreError::Conflict("user_id");
            }
            is_transient(db.as_ref(), dialect)
        }
        _ => false,
    };
    if unavailable {
        StoreError::Unavailable(Box::new(error))
    } else {
        StoreError::Other(Box::new(error))
    }
}

fn is_email_conflict(db: &dyn DatabaseError) -> bool {
    // PostgreSQL names the constraint; SQLite only says "UNIQUE constraint failed: users.email".
    db.is_unique_violation()
        && (db.constraint() == Some(USERS_EMAIL_KEY) || db.message().contains("users.email"))
}

fn is_user_id_conflict(db: &dyn DatabaseError) -> bool {
    // An id chosen by the caller (GoTrue's admin create takes one) that is taken.
    db.is_unique_violation()
        && (db.constraint() == Some("users_pkey") || db.message().contains("users.user_id"))
}

/// Database errors that mean "could not be served in time" rather than "this request is wrong".
fn is_transient(db: &dyn DatabaseError, dialect: Dialect) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    match dialect {
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes: the lock was not
        // granted within busy_timeout, the embedded analogue of a statement timeout.
        // SQLITE_FULL (13): the disk is full; reads go on, and writes work again once an
        // operator frees space, so it is a 503 (whose log line says "database or disk is
        // full"), not a 500.
        Dialect::Sqlite => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6 | 13)),
        // 57014 query_canceled (statement_timeout), class 08 connection exceptions, 53300
        // too_many_connections, 57P01..57P03 shutdown / cannot connect now.
        Dialect::Postgres => {
            code == "57014"
                || code.starts_with("08")
                || code == "53300"
                || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_connection_failures_are_unavailable() {
        let cases = [
            sqlx::Error::PoolTimedOut,
            sqlx::Error::PoolClosed,
            sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused)),
            sqlx::Error::WorkerCrashed,
        ];
        for error in cases {
            assert!(
                matches!(from_pg(error), StoreError::Unavailable(_)),
                "should be unavailable"
            );
        }
    }

    #[test]
    fn everything_else_is_other() {
        assert!(matches!(
            from_sqlite(sqlx::Error::RowNotFound),
            StoreError::Other(_)
        ));
        assert!(matches!(from_pg(corrupt("bad role")), StoreError::Other(_)));
    }
}
