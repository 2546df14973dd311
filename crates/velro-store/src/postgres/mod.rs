//! The PostgreSQL store: one pool per process, a statement_timeout on every connection, and
//! READ COMMITTED transactions whose conditional UPDATEs make the atomic operations safe
//! across any number of instances.

mod dialect;

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::Postgres;
use velro_core::StoreError;

use crate::error::from_pg;
use crate::store::Pools;
use crate::PoolStats;

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
    /// One pool for lookups and writes alike.
    pools: Pools<Postgres>,
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
            pools: Pools::new(pool.clone(), pool),
        })
    }

    /// Applies the migrations that have not run yet; concurrent instances wait on sqlx's
    /// advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.pools
            .migrate(&sqlx::migrate!("./migrations/postgres"))
            .await
    }

    /// Closes every connection; waits for checked-out ones to come back.
    pub async fn close(&self) {
        self.pools.write.close().await;
    }

    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pools.write.size(),
            idle: u32::try_from(self.pools.write.num_idle()).unwrap_or(u32::MAX),
            waiting: self.pools.waiting(),
        }
    }
}
