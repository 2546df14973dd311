//! Opens the configured store: SQLite by default, PostgreSQL when DATABASE_URL says so.

use std::sync::Arc;
use std::time::Duration;

use std::str::FromStr;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::Connection;
use velro_core::store::{ImportStore, Store};
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
                let connected = PgStore::connect(&PgConfig {
                    url: url.clone(),
                    max_connections: config.database_max_connections,
                    min_connections: 1,
                    acquire_timeout,
                    statement_timeout: Duration::from_millis(config.database_statement_timeout_ms),
                })
                .await;
                let store = match connected {
                    Ok(store) => store,
                    Err(error) => return Err(postgres_failure(&url, error, acquire_timeout).await),
                };
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

    /// The same database's bulk-import writes, for `velro import`.
    pub fn import_store(&self) -> Arc<dyn ImportStore> {
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

/// Why PostgreSQL could not be reached, as the driver saw it. The pool only reports that it timed
/// out waiting for a connection; one direct connection attempt brings back the cause (refused,
/// wrong password, no such database). The password never appears: PostgreSQL does not echo it,
/// and the URL's own is masked should any message quote it.
async fn postgres_failure(
    url: &str,
    pool_error: velro_core::StoreError,
    wait: Duration,
) -> anyhow::Error {
    let Ok(options) = PgConnectOptions::from_str(url) else {
        return anyhow::Error::new(pool_error)
            .context("could not connect to PostgreSQL (check DATABASE_URL)");
    };
    let target = match options.get_socket() {
        Some(socket) => format!("socket {}", socket.display()),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let cause = match tokio::time::timeout(wait, PgConnection::connect_with(&options)).await {
        Ok(Err(error)) => error.to_string(),
        Ok(Ok(connection)) => {
            // Reachable after all (a blip, or the pool's own limits): the pool's error stands.
            let _ = connection.close().await;
            pool_error.to_string()
        }
        Err(_) => format!("no answer within {} ms", wait.as_millis()),
    };
    let mut message = format!(
        "could not connect to PostgreSQL at {target} as user {:?}, database {:?}: {cause} (check DATABASE_URL)",
        options.get_username(),
        options.get_database().unwrap_or(options.get_username()),
    );
    if let Some(password) = url::Url::parse(url)
        .ok()
        .and_then(|url| url.password().map(str::to_string))
        .filter(|password| !password.is_empty())
    {
        message = message.replace(&password, "***");
    }
    anyhow::anyhow!(message)
}
