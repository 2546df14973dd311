//! What every case starts from: a migrated SQLite store in a temporary folder behind a counting
//! decorator, cache instances with a unique namespace, and users with sessions.

use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tempfile::TempDir;
use time::OffsetDateTime;
use uuid::Uuid;
use velro_cache::{build, Cache, CacheConfig};
use velro_core::cache::{CacheControl, CacheHealth};
use velro_core::domain::{DisplayName, Email, NewUser, PasswordHash, SessionId, UserId};
use velro_core::store::{NewSession, SessionWithUser, Store, TokenHash};
use velro_core::{Clock, StoreError, SystemClock};
use velro_store::{SqliteConfig, SqliteStore};

/// One SQLite database, shared by the instances of a test as PostgreSQL would be.
pub struct Db {
    pub store: Arc<SqliteStore>,
    _dir: TempDir,
}

impl Db {
    pub async fn new() -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = SqliteStore::connect(&SqliteConfig {
            path: dir.path().join("velro.db"),
            max_connections: 4,
            acquire_timeout: Duration::from_secs(5),
            busy_timeout: Duration::from_secs(5),
        })
        .await
        .expect("open SQLite");
        store.migrate().await.expect("migrate SQLite");
        Self {
            store: Arc::new(store),
            _dir: dir,
        }
    }

    /// A store for one instance, counting that instance's `find_live_session` calls.
    pub fn counted(&self) -> Arc<Counting> {
        Arc::new(Counting {
            inner: self.store.clone(),
            lookups: AtomicUsize::new(0),
            gate: tokio::sync::watch::Sender::new(true),
        })
    }

    pub async fn close(&self) {
        self.store.close().await;
    }
}

pub fn namespace() -> String {
    format!("test-{}", Uuid::new_v4().simple())
}

pub fn config(namespace: &str, redis_url: Option<String>) -> CacheConfig {
    CacheConfig {
        redis_url,
        namespace: namespace.to_owned(),
        ..CacheConfig::default()
    }
}

/// One "instance": a cache over its own counting view of the shared store.
pub struct Instance {
    pub cache: Cache,
    pub counted: Arc<Counting>,
}

impl Instance {
    pub async fn start(db: &Db, config: CacheConfig) -> Self {
        let counted = db.counted();
        let cache = build(counted.clone(), config).await;
        Self { cache, counted }
    }

    pub fn store(&self) -> &dyn Store {
        self.cache.store.as_ref()
    }

    pub async fn live(&self, session: SessionId) -> Option<Arc<SessionWithUser>> {
        self.store()
            .find_live_session(session)
            .await
            .expect("find_live_session")
    }

    pub fn store_lookups(&self) -> usize {
        self.counted.lookups.load(Ordering::SeqCst)
    }

    /// Waits (bounded) until the cache reports Ok: connected and subscribed.
    pub async fn ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        while self.cache.control.health() != CacheHealth::Ok {
            assert!(
                Instant::now() < deadline,
                "not ready: {:?}",
                self.cache.control.health()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    pub async fn stop(&self) {
        self.cache.store.shutdown().await;
    }
}

pub fn now() -> OffsetDateTime {
    SystemClock.now()
}

pub fn token() -> TokenHash {
    let mut hash = [0_u8; 32];
    hash[..16].copy_from_slice(Uuid::new_v4().as_bytes());
    hash[16..].copy_from_slice(Uuid::new_v4().as_bytes());
    TokenHash(hash)
}

fn new_session(user_id: UserId) -> NewSession {
    let at = now();
    NewSession {
        id: SessionId(Uuid::new_v4()),
        user_id,
        remember_me: false,
        user_agent: Some("Mozilla/5.0 (test)".into()),
        ip: Some("203.0.113.7".into()),
        refresh_token: token(),
        refresh_expires_at: at + time::Duration::days(7),
        now: at,
    }
}

/// A user with its first session, created through `store` (any instance: creation does not
/// touch the cache).
pub async fn register(store: &dyn Store) -> (UserId, SessionId) {
    let id = UserId(Uuid::new_v4());
    let address = format!("u{}@example.com", id.0.simple());
    let session = new_session(id);
    let session_id = session.id;
    store
        .create_user(
            NewUser {
                id,
                email: Email::parse(&address).expect("valid address"),
                password_hash: PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$test".into()),
                display_name: Some(DisplayName::parse("Ada").expect("a valid name")),
                credits_balance: 10,
                email_confirmed: false,
                avatar_url: None,
                user_metadata: None,
                app_metadata: None,
                now: now(),
            },
            session,
        )
        .await
        .expect("create_user");
    (id, session_id)
}

/// Another session for the user: its id and its refresh token.
pub async fn sign_in(store: &dyn Store, user_id: UserId) -> (SessionId, TokenHash) {
    let session = new_session(user_id);
    let ids = (session.id, session.refresh_token);
    store.create_session(session).await.expect("create_session");
    ids
}

/// Polls `done` every millisecond for up to two seconds; the time it took.
pub async fn within_two_seconds<F, Fut>(mut done: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while !done().await {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "not within two seconds"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// The Redis URL, or None after saying why this test is skipped.
pub fn redis() -> Option<String> {
    let url = velro_redistest::redis_url();
    if url.is_none() {
        let _ = writeln!(std::io::stderr(), "skipped: no Redis for velro-cache");
    }
    url
}

/// A raw Redis connection for looking behind the cache's back.
pub async fn raw_redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .expect("Redis URL")
        .get_multiplexed_async_connection()
        .await
        .expect("raw Redis connection")
}

pub async fn exists(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> bool {
    redis::cmd("EXISTS")
        .arg(key)
        .query_async::<i64>(conn)
        .await
        .expect("EXISTS")
        == 1
}

/// Passes everything through to the store and counts `find_live_session` calls. While its gate
/// is closed, a `find_live_session` that has its answer from the store (and is counted) holds
/// it back until the gate opens: a load in flight, for tests of what happens meanwhile.
pub struct Counting {
    inner: Arc<SqliteStore>,
    lookups: AtomicUsize,
    gate: tokio::sync::watch::Sender<bool>,
}

impl Counting {
    pub fn close_gate(&self) {
        self.gate.send_replace(false);
    }

    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }
}

velro_core::impl_store! {
    Counting, forward to inner:
        ping, create_user, find_credentials_by_email, find_credentials, replace_password_hash,
        create_session, rotate_refresh_token, revoke_session, revoke_sessions,
        list_live_sessions, update_profile, create_reset_token, find_reset_token_user,
        reset_password, redeem_reset_token, change_password, list_users, page_users, find_user, update_user,
        delete_user, record_status, status_history, latest_status, create_incident,
        add_incident_update, list_incidents, create_console_session, touch_console_session,
        find_console_session, delete_console_session, record_flag_change, latest_flag_change,
        server_connections, recent_flag_changes, purge, insert_user, update_account,
        find_refresh_token_user, create_pending_user, mail_state, issue_mail_token,
        redeem_mail_token, create_flow_state, issue_auth_code, find_flow_state, delete_flow_state,
        issue_email_change, redeem_email_change;

    async fn find_live_session(
        &self,
        session_id: SessionId,
    ) -> Result<Option<Arc<SessionWithUser>>, StoreError> {
        let mut gate = self.gate.subscribe();
        let answer = self.inner.find_live_session(session_id).await;
        self.lookups.fetch_add(1, Ordering::SeqCst);
        // Err only if the sender is gone, and it lives as long as `self`.
        let _ = gate.wait_for(|open| *open).await;
        answer
    }
}
