//! The two-layer cache around any `Store`: L1 in-process (moka, bounded, short TTL) and L2 in
//! Redis (optional, shared by instances), with invalidation across instances over Redis
//! pub/sub. Only `find_live_session`, the lookup behind every authenticated request, is cached;
//! every other method passes through. The cache is an optimisation only: switched off, or with
//! Redis slow or gone, every answer is the same, only slower. The rate limiters (`limiter`) share
//! its Redis connection, timeout and circuit breaker.
//!
//! # Consistency
//! - A write that makes a cached session stale drops it from L1 and L2 before it returns, then
//!   publishes `s:<sid>` / `u:<uid>` on `{ns}:invalidate`; every instance drops its L1 copies on
//!   receipt (lag: `velro_cache_invalidation_lag_seconds`). So a revoked session is refused at
//!   once on the instance that revoked it, and on others within the pub/sub lag.
//! - A lookup that read L2 or the store before an invalidation must not fill L1 after it: each
//!   lookup reads a per-process invalidation epoch first and fills only if it is unchanged, under
//!   a guard that makes that check and the insert atomic with respect to invalidations (local
//!   writes, peers' messages, switching off).
//! - What remains: the cross-instance L2 race. Instance B reads the store just before A's write
//!   commits and writes that (stale) value to L2 just after A deleted it, before A's message
//!   reaches B. B's epoch check narrows this to the pub/sub lag, B writes L2 only while its feed
//!   is subscribed, and A repeats the deletes and messages one second later; an entry can
//!   survive only if B's L2 write lands more than a second after A's write (Redis itself
//!   stalled), and then lives at most one L2 TTL (60 s by default).
//! - When Redis does not take an invalidation (down, timed out, circuit open), this instance
//!   keeps it and retries every 500 ms, and meanwhile never serves the L2 entries it covers.
//!   Other instances may serve their L1 copies until their L1 TTL (10 s by default) and the L2
//!   copy until it is delivered, or one L2 TTL at most.
//! - When the feed is lost, L1 staleness is bounded by the L1 TTL; on every (re)subscription L1
//!   is emptied, since it may have missed messages.
//!
//! # Redis failures
//! Every call is bounded by `redis_timeout`. After `breaker_failures` consecutive failures the
//! circuit opens: no calls at all for `breaker_cooldown`, then one probe; lookups meanwhile use
//! L1 and the store. The connection is made in the background, never on a request.

// `velro_core::impl_store!` looks up each listed method's signature in turn, two macro levels
// per method: a full forward list goes past the default limit of 128.
#![recursion_limit = "256"]

mod breaker;
mod cached;
mod feed;
mod l2;
mod limiter;
mod local;
mod message;
mod wire;

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use velro_core::cache::{CacheControl, CacheHealth};
use velro_core::limits::{LimitSettings, RateLimiter};
use velro_core::store::Store;

pub use cached::CachedStore;
pub use limiter::{LocalLimiter, SharedLimiter};

use l2::Redis;
use local::Local;

#[derive(Clone)]
pub struct CacheConfig {
    /// Whether lookups use the cache at start; switchable at run time (`CacheSwitch`).
    pub enabled: bool,
    /// Bounds staleness on other instances if pub/sub is lost. Default 10 s.
    pub l1_ttl: Duration,
    /// Default 100 000 sessions.
    pub l1_capacity: u64,
    /// None: L1 only. A secret (it may carry a password): never logged.
    pub redis_url: Option<String>,
    /// Default 60 s.
    pub l2_ttl: Duration,
    /// The bound on every Redis call. Default 50 ms.
    pub redis_timeout: Duration,
    /// Consecutive failures (errors or timeouts) that open the circuit. Default 5.
    pub breaker_failures: u32,
    /// How long the circuit stays open before one probe. Default 2 s.
    pub breaker_cooldown: Duration,
    /// Prefix of every key and of the pub/sub channel. Default "velro".
    pub namespace: String,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            l1_ttl: Duration::from_secs(10),
            l1_capacity: 100_000,
            redis_url: None,
            l2_ttl: Duration::from_secs(60),
            redis_timeout: Duration::from_millis(50),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(2),
            namespace: "velro".into(),
        }
    }
}

impl fmt::Debug for CacheConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheConfig")
            .field("enabled", &self.enabled)
            .field("l1_ttl", &self.l1_ttl)
            .field("l1_capacity", &self.l1_capacity)
            .field("redis_url", &self.redis_url.as_ref().map(|_| "[redacted]"))
            .field("l2_ttl", &self.l2_ttl)
            .field("redis_timeout", &self.redis_timeout)
            .field("breaker_failures", &self.breaker_failures)
            .field("breaker_cooldown", &self.breaker_cooldown)
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// The cache as the binary wires it: the store to hand to the services, and its switch.
#[derive(Debug, Clone)]
pub struct Cache {
    pub store: Arc<CachedStore>,
    pub control: Arc<CacheSwitch>,
}

impl Cache {
    /// The rate limiter for these settings: shared through this cache's Redis when it has one
    /// (falling back to in-process counting whenever Redis does not answer), else in process.
    pub fn rate_limiter(&self, settings: &LimitSettings) -> Arc<dyn RateLimiter> {
        match &self.control.shared.redis {
            Some(redis) => Arc::new(SharedLimiter::new(redis.clone(), settings)),
            None => Arc::new(LocalLimiter::new(settings)),
        }
    }
}

/// State shared by the decorator, the switch and the background tasks.
pub(crate) struct Shared {
    pub(crate) enabled: AtomicBool,
    pub(crate) local: Arc<Local>,
    pub(crate) redis: Option<Arc<Redis>>,
    /// A Redis URL was given but could not be parsed: reported, never fatal.
    pub(crate) redis_misconfigured: bool,
}

/// Builds the cache around `inner`. Never fails: an unreachable Redis means degraded, retried in
/// the background. Waits at most a few Redis timeouts for the connection and the feed, so that
/// the first requests normally find L2 ready.
pub async fn build(inner: Arc<dyn Store>, config: CacheConfig) -> Cache {
    describe_metrics();
    let local = Arc::new(Local::new(config.l1_capacity, config.l1_ttl));
    let mut redis_misconfigured = false;
    let redis = config.redis_url.as_deref().and_then(|url| {
        match redis::Client::open(url) {
            Ok(client) => Some(Arc::new(Redis::new(client, &config))),
            Err(_) => {
                // The error can quote the URL, which can hold a password.
                tracing::error!("the Redis URL is invalid; running without L2");
                redis_misconfigured = true;
                None
            }
        }
    });
    metrics::gauge!("velro_cache_circuit_open").set(0.0);
    metrics::gauge!("velro_cache_pubsub_connected").set(0.0);
    // Registered before the first event, so that dashboards and rate() see it from zero.
    metrics::counter!("velro_cache_redis_errors_total").increment(0);
    let _ = metrics::histogram!("velro_cache_invalidation_lag_seconds");
    let shared = Arc::new(Shared {
        enabled: AtomicBool::new(config.enabled),
        local: local.clone(),
        redis: redis.clone(),
        redis_misconfigured,
    });

    let (shutdown, _) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    if let Some(redis) = &redis {
        let connection = redis.clone();
        let stop = shutdown.subscribe();
        tasks.push(tokio::spawn(async move { connection.run(stop).await }));
        tasks.push(tokio::spawn(feed::listen(
            redis.clone(),
            local,
            shutdown.subscribe(),
        )));
        let deadline = Instant::now() + redis.connect_timeout();
        while !(redis.connected() && redis.subscribed()) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
    tracing::info!(
        enabled = config.enabled,
        l2 = redis.is_some(),
        namespace = %config.namespace,
        "cache ready"
    );
    Cache {
        store: Arc::new(CachedStore::new(inner, shared.clone(), shutdown, tasks)),
        control: Arc::new(CacheSwitch { shared }),
    }
}

fn describe_metrics() {
    metrics::describe_counter!(
        "velro_cache_lookups_total",
        "Session lookups by cache layer and result."
    );
    metrics::describe_counter!(
        "velro_cache_invalidations_total",
        "Cache invalidations caused by writes on this instance, by kind."
    );
    metrics::describe_counter!(
        "velro_cache_redis_errors_total",
        "Redis calls or connection attempts that failed or timed out."
    );
    metrics::describe_gauge!(
        "velro_cache_circuit_open",
        "1 while the Redis circuit breaker is open."
    );
    metrics::describe_gauge!(
        "velro_cache_pubsub_connected",
        "1 while the invalidation feed is subscribed."
    );
    metrics::describe_histogram!(
        "velro_cache_invalidation_lag_seconds",
        metrics::Unit::Seconds,
        "Time from publishing an invalidation to applying it on a receiving instance."
    );
}

/// The run-time switch and readiness report of one cache.
pub struct CacheSwitch {
    shared: Arc<Shared>,
}

impl fmt::Debug for CacheSwitch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheSwitch")
            .field("enabled", &self.enabled())
            .finish_non_exhaustive()
    }
}

impl CacheControl for CacheSwitch {
    fn enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::SeqCst)
    }

    fn set_enabled(&self, enabled: bool) {
        let was = self.shared.enabled.swap(enabled, Ordering::SeqCst);
        if !enabled {
            self.shared.local.clear_now();
        }
        if was != enabled {
            tracing::info!(enabled, "cache switched");
        }
    }

    fn health(&self) -> CacheHealth {
        if !self.enabled() {
            return CacheHealth::Disabled;
        }
        let Some(redis) = &self.shared.redis else {
            return if self.shared.redis_misconfigured {
                CacheHealth::Degraded("invalid redis URL".into())
            } else {
                CacheHealth::LocalOnly
            };
        };
        if !redis.connected() || redis.circuit_open() {
            CacheHealth::Degraded("redis unavailable".into())
        } else if !redis.subscribed() {
            CacheHealth::Degraded("invalidation feed lost".into())
        } else {
            CacheHealth::Ok
        }
    }
}
