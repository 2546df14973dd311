//! The PostgreSQL store: one pool per process, a statement_timeout on every connection, and
//! READ COMMITTED transactions whose conditional UPDATEs make the atomic operations safe
//! across any number of instances.

mod rows;
mod store;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::Transaction;
use velro_core::StoreError;

use crate::error::{from_migrate, from_pg, Dialect};
use crate::{PoolStats, WaitCounter};

#[derive(Clone)]
pub struct PgConfig {
    /// May hold a password: never logged, and redacted from `Debug`.
    pub url: String,
    pub max_connections: u32,
    pub min_connections: u32,
    pub acquire_timeout: Duration,
    /// Set on every connection; a statement running longer is cancelled and reported as
    /// `Unavailable`. Zero disables it.
    pub statement_timeout: Duration,
}

impl fmt::Debug for PgConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConfig")
            .field("url", &"[redacted]")
            .field("max_connections", &self.max_connections)
            .field("min_connections", &self.min_connections)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("statement_timeout", &self.statement_timeout)
            .finish()
    }
}

#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    waiting: std::sync::Arc<WaitCounter>,
}

impl PgStore {
    /// Builds the pool and opens its first connection. Does not migrate: see [`Self::migrate`].
    pub async fn connect(cfg: &PgConfig) -> Result<Self, StoreError> {
        // Whole milliseconds; zero turns the limit off, as in PostgreSQL itself.
        let statement_timeout_ms = cfg.statement_timeout.as_millis();
        let options = PgConnectOptions::from_str(&cfg.url)
            // The message names the faulty part; the URL itself is never repeated.
            .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}").into()))?
            .application_name("velro")
            .options([("statement_timeout", statement_timeout_ms)]);
        let pool = PgPoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .min_connections(cfg.min_connections.min(cfg.max_connections))
            .acquire_timeout(cfg.acquire_timeout)
            .connect_with(options)
            .await
            .map_err(from_pg)?;
        tracing::debug!(
            max_connections = cfg.max_connections,
            "connected to PostgreSQL"
        );
        Ok(Self {
            pool,
            waiting: std::sync::Arc::default(),
        })
    }

    /// Applies the migrations that have not run yet; concurrent instances wait on sqlx's
    /// advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        sqlx::migrate!("./migrations/postgres")
            .run(&self.pool)
            .await
            .map_err(|e| from_migrate(e, Dialect::Postgres))
    }

    /// Closes every connection; waits for checked-out ones to come back.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            waiting: self.waiting.get(),
        }
    }

    /// Spelled out because a server may default to another level, under which the
    /// conditional UPDATEs would fail with serialization errors instead of seeing 0 rows.
    async fn begin(&self) -> Result<Transaction<'static, sqlx::Postgres>, StoreError> {
        self.waiting
            .around(self.pool.begin_with("BEGIN ISOLATION LEVEL READ COMMITTED"))
            .await
            .map_err(from_pg)
    }

    /// A pooled connection for one statement, counted while it is awaited.
    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>, StoreError> {
        self.waiting
            .around(self.pool.acquire())
            .await
            .map_err(from_pg)
    }
}

/// `?` for sqlx results inside the PostgreSQL store.
trait PgResultExt<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T> PgResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(from_pg)
    }
}
