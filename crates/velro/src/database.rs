//! Opens the configured store: SQLite by default, PostgreSQL when DATABASE_URL says so.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use velro_core::store::Store;
use velro_store::{DatabaseUrl, PgConfig, PgStore, SqliteConfig, SqliteStore};

use crate::config::Config;

/// The open store, kept concrete so that it can be migrated and closed.
#[derive(Clone)]
pub enum Database {
    Sqlite(Arc<SqliteStore>),
    Postgres(Arc<PgStore>),
}

impl Database {
    pub async fn open(config: &Config) -> anyhow::Result<Self> {
        let url = match &config.database_url {
            Some(url) => DatabaseUrl::parse(url.expose())
                .map_err(|why| anyhow::anyhow!("invalid configuration: DATABASE_URL: {why}"))?,
            None => DatabaseUrl::Sqlite(config.data_dir.join("velro.db")),
        };
        let acquire_timeout = Duration::from_millis(config.database_acquire_timeout_ms);
        match url {
            DatabaseUrl::Sqlite(path) => {
                let store = SqliteStore::connect(&SqliteConfig {
                    path: path.clone(),
                    max_connections: config.database_max_connections,
                    acquire_timeout,
                    busy_timeout: Duration::from_millis(config.database_statement_timeout_ms),
                })
                .await
                .with_context(|| {
                    format!("could not open the SQLite database at {}", path.display())
                })?;
                tracing::info!(path = %path.display(), "using SQLite");
                Ok(Self::Sqlite(Arc::new(store)))
            }
            DatabaseUrl::Postgres(url) => {
                let store = PgStore::connect(&PgConfig {
                    url,
                    max_connections: config.database_max_connections,
                    min_connections: 1,
                    acquire_timeout,
                    statement_timeout: Duration::from_millis(config.database_statement_timeout_ms),
                })
                .await
                .context("could not connect to PostgreSQL (check DATABASE_URL)")?;
                tracing::info!("using PostgreSQL");
                Ok(Self::Postgres(Arc::new(store)))
            }
        }
    }

    pub async fn migrate(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite(store) => store.migrate().await,
            Self::Postgres(store) => store.migrate().await,
        }
        .context("database migration failed")
    }

    pub fn store(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(store) => store.clone(),
            Self::Postgres(store) => store.clone(),
        }
    }

    pub fn pool_stats(&self) -> velro_store::PoolStats {
        match self {
            Self::Sqlite(store) => store.pool_stats(),
            Self::Postgres(store) => store.pool_stats(),
        }
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite(store) => store.close().await,
            Self::Postgres(store) => store.close().await,
        }
    }
}
