//! L2: Redis, shared by instances. One connection manager created in the background, every call
//! bounded by the configured timeout and gated by the circuit breaker; invalidations that could
//! not be delivered are kept and retried. The pub/sub listener is in `feed`.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::RedisResult;
use tokio::sync::watch;
use uuid::Uuid;
use velro_core::store::SessionWithUser;

use crate::breaker::Breaker;
use crate::message::{now_micros, Message, Target};
use crate::{wire, CacheConfig};

const INITIAL_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const PENDING_RETRY_INTERVAL: Duration = Duration::from_millis(500);
/// Beyond this many undelivered invalidations, this instance stops trusting L2 for one L2 TTL
/// instead of remembering more.
const PENDING_CAP: usize = 10_000;

/// Drops every cached session of one user and the user's set, atomically. KEYS[1] is the set,
/// ARGV[1] the session key prefix. (Keys built inside the script: fine on one Redis, not on a
/// cluster.)
const DROP_USER_SCRIPT: &str = r"
local ids = redis.call('SMEMBERS', KEYS[1])
for _, id in ipairs(ids) do redis.call('DEL', ARGV[1] .. id) end
redis.call('DEL', KEYS[1])
return #ids";

pub(crate) struct Redis {
    client: redis::Client,
    conn: OnceLock<ConnectionManager>,
    breaker: Breaker,
    timeout: Duration,
    connect_timeout: Duration,
    ttl_ms: u64,
    ttl: Duration,
    session_prefix: String,
    user_prefix: String,
    channel: String,
    /// `{ns}:`, for keys other modules own (the rate limiter's).
    namespace_prefix: String,
    subscribed: AtomicBool,
    pending: Mutex<Pending>,
}

pub(crate) enum Lookup {
    Hit(Arc<SessionWithUser>),
    Miss,
    Unavailable,
}

/// Invalidations Redis did not take, kept until it does. Until then, L2 entries they cover are
/// not served on this instance.
#[derive(Default)]
struct Pending {
    sessions: HashSet<Uuid>,
    users: HashSet<Uuid>,
    distrust_until: Option<Instant>,
}

impl Redis {
    pub(crate) fn new(client: redis::Client, config: &CacheConfig) -> Self {
        let ns = &config.namespace;
        Self {
            client,
            conn: OnceLock::new(),
            breaker: Breaker::new(config.breaker_failures, config.breaker_cooldown),
            timeout: config.redis_timeout,
            connect_timeout: connect_timeout(config.redis_timeout),
            ttl_ms: u64::try_from(config.l2_ttl.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
            ttl: config.l2_ttl,
            session_prefix: format!("{ns}:session:"),
            user_prefix: format!("{ns}:user-sessions:"),
            channel: format!("{ns}:invalidate"),
            namespace_prefix: format!("{ns}:"),
            subscribed: AtomicBool::new(false),
            pending: Mutex::new(Pending::default()),
        }
    }

    pub(crate) fn client(&self) -> &redis::Client {
        &self.client
    }

    pub(crate) fn channel(&self) -> &str {
        &self.channel
    }

    pub(crate) fn namespace_prefix(&self) -> &str {
        &self.namespace_prefix
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    pub(crate) fn connected(&self) -> bool {
        self.conn.get().is_some()
    }

    pub(crate) fn circuit_open(&self) -> bool {
        self.breaker.is_open()
    }

    pub(crate) fn subscribed(&self) -> bool {
        self.subscribed.load(Ordering::SeqCst)
    }

    pub(crate) fn set_subscribed(&self, subscribed: bool) {
        if self.subscribed.swap(subscribed, Ordering::SeqCst) != subscribed {
            metrics::gauge!("velro_cache_pubsub_connected").set(if subscribed { 1.0 } else { 0.0 });
        }
    }

    /// Runs one Redis operation within the timeout, if there is a connection and the breaker
    /// lets it through. None means "no answer": the caller falls through.
    pub(crate) async fn call<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let conn = self.conn.get()?.clone();
        if !self.breaker.allow(Instant::now()) {
            return None;
        }
        match tokio::time::timeout(self.timeout, op(conn)).await {
            Ok(Ok(value)) => {
                self.breaker.record_success();
                Some(value)
            }
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "Redis call failed");
                self.failed();
                None
            }
            Err(_) => {
                tracing::debug!(
                    timeout_ms = self.timeout.as_millis() as u64,
                    "Redis call timed out"
                );
                self.failed();
                None
            }
        }
    }

    fn failed(&self) {
        metrics::counter!("velro_cache_redis_errors_total").increment(1);
        self.breaker.record_failure(Instant::now());
    }

    fn session_key(&self, session_id: Uuid) -> String {
        format!("{}{}", self.session_prefix, session_id.as_hyphenated())
    }

    fn user_key(&self, user_id: Uuid) -> String {
        format!("{}{}", self.user_prefix, user_id.as_hyphenated())
    }

    pub(crate) async fn get_session(&self, session_id: Uuid) -> Lookup {
        let key = self.session_key(session_id);
        let raw = self
            .call(|mut conn| async move {
                redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<String>>(&mut conn)
                    .await
            })
            .await;
        let Some(raw) = raw else {
            return Lookup::Unavailable;
        };
        let Some(live) = raw.as_deref().and_then(wire::decode) else {
            return Lookup::Miss;
        };
        if live.session.id.0 != session_id || self.hidden(&live) {
            return Lookup::Miss;
        }
        Lookup::Hit(Arc::new(live))
    }

    pub(crate) async fn put_session(&self, live: &SessionWithUser) {
        let json = match wire::encode(live) {
            Ok(json) => json,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode a session for L2");
                return;
            }
        };
        let mut pipe = redis::pipe();
        let user_key = self.user_key(live.user.id.0);
        pipe.atomic()
            .cmd("SET")
            .arg(self.session_key(live.session.id.0))
            .arg(json)
            .arg("PX")
            .arg(self.ttl_ms)
            .ignore()
            .cmd("SADD")
            .arg(&user_key)
            .arg(live.session.id.0.as_hyphenated().to_string())
            .ignore()
            .cmd("PEXPIRE")
            .arg(&user_key)
            .arg(self.ttl_ms)
            .ignore();
        self.call(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await;
    }

    /// Drops the entries from L2 and tells the other instances. False when Redis did not take
    /// it; the caller then keeps it pending.
    pub(crate) async fn invalidate(&self, sessions: &[Uuid], users: &[Uuid]) -> bool {
        if sessions.is_empty() && users.is_empty() {
            return true;
        }
        let sent_at_micros = now_micros();
        let mut pipe = redis::pipe();
        if !sessions.is_empty() {
            let keys: Vec<String> = sessions.iter().map(|id| self.session_key(*id)).collect();
            pipe.cmd("DEL").arg(keys).ignore();
        }
        for user in users {
            pipe.cmd("EVAL")
                .arg(DROP_USER_SCRIPT)
                .arg(1)
                .arg(self.user_key(*user))
                .arg(&self.session_prefix)
                .ignore();
        }
        let targets = sessions
            .iter()
            .map(|id| Target::Session(velro_core::domain::SessionId(*id)))
            .chain(
                users
                    .iter()
                    .map(|id| Target::User(velro_core::domain::UserId(*id))),
            );
        for target in targets {
            let message = Message {
                target,
                sent_at_micros,
            };
            pipe.cmd("PUBLISH")
                .arg(&self.channel)
                .arg(message.encode())
                .ignore();
        }
        self.call(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await
            .is_some()
    }

    pub(crate) fn keep_pending(&self, sessions: &[Uuid], users: &[Uuid]) {
        let mut pending = lock(&self.pending);
        if pending.sessions.len() + pending.users.len() + sessions.len() + users.len() > PENDING_CAP
        {
            // Every L2 entry written before now is gone one TTL from now.
            pending.distrust_until = Some(Instant::now() + self.ttl);
            pending.sessions.clear();
            pending.users.clear();
            tracing::warn!(
                "too many undelivered invalidations; not serving from L2 for one L2 TTL"
            );
            return;
        }
        pending.sessions.extend(sessions);
        pending.users.extend(users);
    }

    fn hidden(&self, live: &SessionWithUser) -> bool {
        let pending = lock(&self.pending);
        pending
            .distrust_until
            .is_some_and(|until| Instant::now() < until)
            || pending.sessions.contains(&live.session.id.0)
            || pending.users.contains(&live.user.id.0)
    }

    async fn retry_pending(&self) {
        let (sessions, users): (Vec<Uuid>, Vec<Uuid>) = {
            let pending = lock(&self.pending);
            (
                pending.sessions.iter().copied().collect(),
                pending.users.iter().copied().collect(),
            )
        };
        if (sessions.is_empty() && users.is_empty()) || !self.invalidate(&sessions, &users).await {
            return;
        }
        let mut pending = lock(&self.pending);
        for id in &sessions {
            pending.sessions.remove(id);
        }
        for id in &users {
            pending.users.remove(id);
        }
        tracing::info!(
            sessions = sessions.len(),
            users = users.len(),
            "delivered pending invalidations"
        );
    }

    /// Connects in the background (never blocking a request), then retries pending
    /// invalidations until shutdown. Failed attempts count against the breaker.
    pub(crate) async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = INITIAL_BACKOFF;
        while self.conn.get().is_none() {
            if self.breaker.allow(Instant::now()) {
                if let Some(conn) = self.connect().await {
                    let _ = self.conn.set(conn);
                    self.breaker.record_success();
                    tracing::info!("connected to Redis");
                    break;
                }
                self.failed();
            }
            if stopped_during(&mut shutdown, backoff).await {
                return;
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
        loop {
            if stopped_during(&mut shutdown, PENDING_RETRY_INTERVAL).await {
                return;
            }
            self.retry_pending().await;
        }
    }

    async fn connect(&self) -> Option<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(self.connect_timeout)
            .set_number_of_retries(1)
            .set_factor(20)
            .set_max_delay(200);
        let attempt = ConnectionManager::new_with_config(self.client.clone(), config);
        match tokio::time::timeout(self.connect_timeout, attempt).await {
            Ok(Ok(conn)) => Some(conn),
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot connect to Redis");
                None
            }
            Err(_) => {
                tracing::debug!("connecting to Redis timed out");
                None
            }
        }
    }
}

/// Connection set-up takes a few round trips; a request never waits for it.
fn connect_timeout(call_timeout: Duration) -> Duration {
    (call_timeout * 4).clamp(Duration::from_millis(100), Duration::from_secs(2))
}

/// Sleeps, unless shutdown comes first; true when it did.
pub(crate) async fn stopped_during(shutdown: &mut watch::Receiver<bool>, period: Duration) -> bool {
    tokio::select! {
        () = tokio::time::sleep(period) => false,
        () = stop_requested(shutdown) => true,
    }
}

/// Completes once shutdown is asked for (or the store that could ask is gone).
pub(crate) async fn stop_requested(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not Send: drop it at once.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

pub(crate) fn next_backoff(backoff: Duration) -> Duration {
    (backoff * 2).min(MAX_BACKOFF)
}

pub(crate) const FIRST_BACKOFF: Duration = INITIAL_BACKOFF;

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Sets of ids, each update complete on its own: a panic elsewhere leaves nothing torn.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
