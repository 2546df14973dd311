//! Keeps the WAL file bounded. SQLite's automatic checkpoints are passive: while readers hold
//! snapshots they never reach the end of the log, so it is never reset and grows without limit
//! under sustained writes. A task forces a truncating checkpoint when the file gets large.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sqlx::sqlite::SqlitePool;
use tokio::task::JoinHandle;
use tokio::time::MissedTickBehavior;

/// The background task; stops when told to or when dropped.
#[derive(Debug)]
pub(super) struct Checkpointer {
    task: JoinHandle<()>,
}

impl Checkpointer {
    pub(super) fn spawn(
        write: SqlitePool,
        wal_path: PathBuf,
        threshold: u64,
        every: Duration,
    ) -> Self {
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if write.is_closed() {
                    return;
                }
                if let Err(error) = checkpoint_if_exceeds(&write, &wal_path, threshold).await {
                    tracing::warn!(error = %error, "WAL checkpoint failed");
                }
            }
        });
        Self { task }
    }

    pub(super) fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) async fn checkpoint_if_exceeds(
    write: &SqlitePool,
    wal_path: &Path,
    threshold: u64,
) -> Result<bool, sqlx::Error> {
    let size = match tokio::fs::metadata(wal_path).await {
        Ok(meta) => meta.len(),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => 0,
        Err(error) => return Err(sqlx::Error::Io(error)),
    };
    if size <= threshold {
        return Ok(false);
    }
    // TRUNCATE waits (up to busy_timeout) for readers of old snapshots, then empties the file.
    // It holds the write connection meanwhile, which is what bounds the log.
    let (busy, log_frames, checkpointed): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(write)
            .await?;
    if busy == 0 {
        tracing::debug!(
            wal_bytes = size,
            log_frames,
            checkpointed,
            "truncated the WAL"
        );
    } else {
        tracing::warn!(
            wal_bytes = size,
            log_frames,
            checkpointed,
            "WAL checkpoint could not finish: readers held old snapshots past busy_timeout"
        );
    }
    Ok(true)
}
