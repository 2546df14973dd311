//! SQLite only: the WAL file stays bounded under sustained writes while readers hold snapshots.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use velro_core::store::{NewSession, Store};
use velro_store::SqliteStore;

use crate::fixture::{new_session, register, secs, sqlite_config, t0};

const MIB: u64 = 1024 * 1024;
/// The store's threshold for a forced checkpoint.
const THRESHOLD: u64 = 32 * MIB;
const USER_AGENT_BYTES: usize = 64 * 1024;
/// About 1,700 × 64 KiB ≈ 106 MiB of WAL frames: more than three times the threshold.
const SESSIONS: usize = 1_700;
const READERS: usize = 4;

fn wal_size(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(PathBuf::from(wal)).map_or(0, |meta| meta.len())
}

async fn open(dir: &tempfile::TempDir) -> (Arc<SqliteStore>, PathBuf) {
    let path = dir.path().join("velro.db");
    let store = SqliteStore::connect(&sqlite_config(path.clone()))
        .await
        .expect("open SQLite");
    store.migrate().await.expect("migrate");
    (Arc::new(store), path)
}

fn big_session(user_id: velro_core::domain::UserId, i: usize) -> NewSession {
    NewSession {
        user_agent: Some(format!("{i:08}{}", "x".repeat(USER_AGENT_BYTES))),
        ..new_session(user_id, t0(), false)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wal_stays_bounded_under_writes_while_readers_hold_snapshots() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, path) = open(&dir).await;
    let ada = register(store.as_ref(), "ada@example.com", t0()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                let mut reads = 0_u64;
                while !stop.load(Ordering::Relaxed) {
                    store
                        .list_live_sessions(ada.user.id, t0() - secs(1))
                        .await
                        .expect("read while writing");
                    reads += 1;
                }
                reads
            })
        })
        .collect();

    let started = Instant::now();
    let mut peak = 0;
    for i in 0..SESSIONS {
        store
            .create_session(big_session(ada.user.id, i))
            .await
            .expect("write");
        if i % 20 == 0 {
            peak = peak.max(wal_size(&path));
        }
    }
    let writing = started.elapsed();

    // The checkpointer looks once a second; give it a few chances while the readers go on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut settled = wal_size(&path);
    while settled > THRESHOLD && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = wal_size(&path);
    }
    stop.store(true, Ordering::Relaxed);
    let mut reads = 0;
    for reader in readers {
        reads += reader.await.expect("reader");
    }
    eprintln!(
        "WAL: peak {peak} bytes while writing {SESSIONS} sessions in {writing:?} with \
         {READERS} readers ({reads} reads); {settled} bytes after {:?}",
        started.elapsed()
    );
    assert!(reads > 0, "the readers ran");
    assert!(
        settled <= THRESHOLD,
        "the WAL should have been truncated, but is {settled} bytes"
    );
    assert!(
        peak <= 2 * THRESHOLD + 64 * MIB,
        "the WAL peaked at {peak} bytes"
    );
    store.close().await;
}

#[tokio::test]
async fn a_checkpoint_runs_only_past_the_threshold_and_empties_the_wal() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, path) = open(&dir).await;
    let ada = register(store.as_ref(), "ada@example.com", t0()).await;
    // Below SQLite's own autocheckpoint (1,000 pages), so only our call empties the file.
    for i in 0..32 {
        store
            .create_session(big_session(ada.user.id, i))
            .await
            .expect("write");
    }
    let before = wal_size(&path);
    assert!(before > MIB, "the writes went to the WAL: {before} bytes");

    let ran = store
        .checkpoint_if_wal_exceeds(before)
        .await
        .expect("checkpoint");
    assert!(!ran, "at the threshold, no checkpoint");
    assert_eq!(wal_size(&path), before);

    let ran = store
        .checkpoint_if_wal_exceeds(before - 1)
        .await
        .expect("checkpoint");
    assert!(ran, "past the threshold, a checkpoint");
    assert_eq!(wal_size(&path), 0, "TRUNCATE empties the file");
    assert_eq!(
        store
            .list_live_sessions(ada.user.id, t0())
            .await
            .expect("read after checkpoint")
            .len(),
        33
    );
    store.close().await;
}
