//! The SQLite store: one file in WAL mode, a single-connection write pool (SQLite has one
//! writer, and queueing in the pool avoids SQLITE_BUSY on lock upgrades) and a read-only pool
//! for lookups, plus a background task that keeps the WAL file bounded.

mod checkpoint;
mod dialect;

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    SqliteTransactionManager,
};
use sqlx::{Connection, Sqlite, TransactionManager};
use velro_core::StoreError;

use crate::error::from_sqlite;
use crate::store::Pools;
use crate::PoolStats;
use checkpoint::Checkpointer;

/// After a checkpoint resets the WAL, SQLite truncates the file to this size.
const JOURNAL_SIZE_LIMIT: u64 = 64 * 1024 * 1024;
/// The background task forces a truncating checkpoint once the WAL file is larger than this.
const WAL_CHECKPOINT_THRESHOLD: u64 = 32 * 1024 * 1024;
const WAL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug, Clone)]
pub struct SqliteConfig {
    /// The database file; it and its folder are created when missing.
    pub path: PathBuf,
    /// Read-only connections. Writes always go through one more, dedicated connection.
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    /// How long a statement waits for a lock held by another connection or process.
    pub busy_timeout: Duration,
}

#[derive(Debug)]
pub struct SqliteStore {
    /// The single writer and the read-only connections.
    pools: Pools<Sqlite>,
    wal_path: PathBuf,
    checkpointer: Checkpointer,
}

impl SqliteStore {
    /// Opens (creating when missing) the database file. Does not migrate: see [`Self::migrate`].
    pub async fn connect(cfg: &SqliteConfig) -> Result<Self, StoreError> {
        create_parent_dir(&cfg.path).await?;
        let common = SqliteConnectOptions::new()
            .filename(&cfg.path)
            .busy_timeout(cfg.busy_timeout)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal);

        // The writer goes first: it creates the file and switches it to WAL (which persists),
        // so the read-only connections find both in place.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .acquire_timeout(cfg.acquire_timeout)
            .test_before_acquire(false)
            .after_release(|conn, _| {
                Box::pin(async move {
                    // On SQLITE_FULL or SQLITE_IOERR SQLite may roll a transaction back by
                    // itself; the ROLLBACK sqlx then sends fails, and sqlx goes on counting the
                    // transaction as open, so that every later BEGIN on this, the only writer,
                    // is refused until a restart. The ping runs the queued ROLLBACK first; a
                    // connection still counted inside a transaction is replaced.
                    conn.ping().await?;
                    Ok(SqliteTransactionManager::get_transaction_depth(conn) == 0)
                })
            })
            .connect_with(
                common
                    .clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .pragma("journal_size_limit", JOURNAL_SIZE_LIMIT.to_string()),
            )
            .await
            .map_err(from_sqlite)?;
        let read = SqlitePoolOptions::new()
            .max_connections(cfg.max_connections.max(1))
            .acquire_timeout(cfg.acquire_timeout)
            .test_before_acquire(false)
            .connect_with(common.read_only(true))
            .await
            .map_err(from_sqlite)?;

        let wal_path = wal_path(&cfg.path);
        let checkpointer = Checkpointer::spawn(
            write.clone(),
            wal_path.clone(),
            WAL_CHECKPOINT_THRESHOLD,
            WAL_CHECK_INTERVAL,
        );
        tracing::debug!(path = %cfg.path.display(), readers = cfg.max_connections, "opened SQLite database");
        Ok(Self {
            pools: Pools::new(read, write),
            wal_path,
            checkpointer,
        })
    }

    /// Applies the migrations that have not run yet.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.pools
            .migrate(&sqlx::migrate!("./migrations/sqlite"))
            .await
    }

    /// Stops the WAL checkpointer and closes every connection; waits for checked-out ones.
    pub async fn close(&self) {
        self.checkpointer.stop();
        self.pools.read.close().await;
        // Last, so that the final connection to close checkpoints and removes the WAL.
        self.pools.write.close().await;
    }

    pub fn pool_stats(&self) -> PoolStats {
        let Pools { read, write, .. } = &self.pools;
        PoolStats {
            size: write.size() + read.size(),
            idle: u32::try_from(write.num_idle() + read.num_idle()).unwrap_or(u32::MAX),
            waiting: self.pools.waiting(),
        }
    }

    /// Runs `PRAGMA wal_checkpoint(TRUNCATE)` when the `-wal` file is larger than `bytes`.
    /// True when a checkpoint ran. The background task calls this every second.
    pub async fn checkpoint_if_wal_exceeds(&self, bytes: u64) -> Result<bool, StoreError> {
        checkpoint::checkpoint_if_exceeds(&self.pools.write, &self.wal_path, bytes)
            .await
            .map_err(from_sqlite)
    }
}

async fn create_parent_dir(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => tokio::fs::create_dir_all(parent)
            .await
            .map_err(|e| StoreError::Other(Box::new(e))),
        _ => Ok(()),
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Dialect;

    async fn open(dir: &tempfile::TempDir) -> SqliteStore {
        let store = SqliteStore::connect(&SqliteConfig {
            path: dir.path().join("velro.db"),
            max_connections: 2,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(1),
        })
        .await
        .expect("open SQLite");
        store.migrate().await.expect("migrate");
        sqlx::query("CREATE TABLE filler (b BLOB)")
            .execute(&store.pools.write)
            .await
            .expect("scratch table");
        store
    }

    #[tokio::test]
    async fn a_write_transaction_that_sqlite_ended_by_itself_does_not_wedge_the_writer() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = open(&dir).await;
        {
            let mut tx = store
                .pools
                .begin(<SqliteStore as Dialect>::BEGIN)
                .await
                .expect("first transaction");
            // What SQLite does on a full disk: the transaction ends under sqlx's feet, and the
            // ROLLBACK sqlx sends when `tx` is dropped fails.
            sqlx::query("ROLLBACK")
                .execute(&mut *tx)
                .await
                .expect("end the transaction behind sqlx's back");
        }
        let mut tx = store
            .pools
            .begin(<SqliteStore as Dialect>::BEGIN)
            .await
            .expect("the next write transaction begins");
        sqlx::query("INSERT INTO filler (b) VALUES (x'00')")
            .execute(&mut *tx)
            .await
            .expect("insert");
        tx.commit().await.expect("commit");
        store.close().await;
    }

    #[tokio::test]
    async fn a_full_database_is_unavailable_and_takes_writes_again_once_there_is_room() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = open(&dir).await;
        let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
            .fetch_one(&store.pools.write)
            .await
            .expect("page count");
        // The writer's own limit: the same SQLITE_FULL as a full disk, without one.
        sqlx::query(&format!("PRAGMA max_page_count = {pages}"))
            .execute(&store.pools.write)
            .await
            .expect("cap the file");
        let big = "INSERT INTO filler (b) VALUES (zeroblob(1000000))";
        let outcome = {
            let mut tx = store
                .pools
                .begin(<SqliteStore as Dialect>::BEGIN)
                .await
                .expect("begin");
            sqlx::query(big)
                .execute(&mut *tx)
                .await
                .map_err(from_sqlite)
        };
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
        sqlx::query("PRAGMA max_page_count = 1073741823")
            .execute(&store.pools.write)
            .await
            .expect("lift the cap");
        let mut tx = store
            .pools
            .begin(<SqliteStore as Dialect>::BEGIN)
            .await
            .expect("begin again");
        sqlx::query(big).execute(&mut *tx).await.expect("insert");
        tx.commit().await.expect("commit");
        store.close().await;
    }
}
