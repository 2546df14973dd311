//! SQLite only: the WAL file stays bounded under sustained writes while readers hold snapshots.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use velro_core::store::{NewSession, Store};
use velro_store::SqliteStore;

use crate::fixture::{new_session, register, sqlite_config, t0};

const MIB: u64 = 1024 * 1024;
/// The store's threshold for a forced checkpoint.
const THRESHOLD: u64 = 32 * MIB;
const USER_AGENT_BYTES: usize = 256 * 1024;
/// 400 × 256 KiB ≈ 100 MiB of WAL frames: three times the threshold.
const SESSIONS: usize = 400;
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

/// Loops on short read transactions, each holding its snapshot for a moment, as readers under
/// load do. Staggered, they leave the writer almost no instant without an open snapshot, so
/// SQLite's passive autocheckpoints can never reset the log.
async fn hold_snapshots(path: PathBuf, stop: Arc<AtomicBool>, offset: Duration) -> u64 {
    let options = SqliteConnectOptions::new().filename(path).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .expect("reader connection");
    tokio::time::sleep(offset).await;
    let mut reads = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut tx = conn.begin().await.expect("begin read");
        let _: i64 = sqlx::query_scalar("SELECT count(*) FROM sessions")
            .fetch_one(&mut *tx)
            .await
            .expect("read");
        tokio::time::sleep(Duration::from_millis(2)).await;
        tx.commit().await.expect("end read");
        reads += 1;
    }
    reads
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_wal_stays_bounded_under_writes_while_readers_hold_snapshots() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (store, path) = open(&dir).await;
    let ada = register(store.as_ref(), "ada@example.com", t0()).await;

    let stop = Arc::new(AtomicBool::new(false));
    let snapshot_holders: Vec<_> = (0..READERS)
        .map(|i| {
            let offset = Duration::from_micros(500 * i as u64);
            tokio::spawn(hold_snapshots(path.clone(), stop.clone(), offset))
        })
        .collect();
    let store_reader = {
        let (store, stop) = (store.clone(), stop.clone());
        tokio::spawn(async move {
            let mut reads = 0_u64;
            while !stop.load(Ordering::Relaxed) {
                let found = store
                    .find_live_session(ada.session)
                    .await
                    .expect("read through the store while writing");
                assert!(found.is_some());
                reads += 1;
            }
            reads
        })
    };

    let started = Instant::now();
    let mut peak = 0;
    for i in 0..SESSIONS {
        store
            .create_session(big_session(ada.user.id, i))
            .await
            .expect("write");
        if i % 5 == 0 {
            peak = peak.max(wal_size(&path));
        }
    }
    let writing = started.elapsed();
    let written = wal_size(&path);
    peak = peak.max(written);

    // The checkpointer looks once a second; give it a few chances while the readers go on.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut settled = written;
    while settled > THRESHOLD && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = wal_size(&path);
    }
    stop.store(true, Ordering::Relaxed);
    let mut snapshot_reads = 0;
    for holder in snapshot_holders {
        snapshot_reads += holder.await.expect("reader");
    }
    let store_reads = store_reader.await.expect("store reader");
    eprintln!(
        "WAL: {SESSIONS} sessions written in {writing:?}, {snapshot_reads} snapshot reads and \
         {store_reads} store reads meanwhile; peak {peak} bytes, {written} at the end of the \
         writes, {settled} after {:?}",
        started.elapsed()
    );
    assert!(snapshot_reads > 0 && store_reads > 0, "the readers ran");
    assert!(
        settled <= THRESHOLD,
        "the WAL should have been checkpointed below {THRESHOLD} bytes, but is {settled}"
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
