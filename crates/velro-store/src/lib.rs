//! The `velro_core::store::Store` port implemented twice: SQLite (embedded, the default) and
//! PostgreSQL (production), with their migrations. The only crate that speaks SQL; no business
//! rules live here beyond what atomicity needs.

mod database_url;
mod error;
mod page;
mod postgres;
mod rotation;
mod sql;
mod sqlite;

pub use database_url::DatabaseUrl;
pub use postgres::{PgConfig, PgStore};
pub use sqlite::{SqliteConfig, SqliteStore};

/// A snapshot of a store's connection pool(s), for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Open connections, busy or idle.
    pub size: u32,
    /// Open connections waiting to be used.
    pub idle: u32,
}
