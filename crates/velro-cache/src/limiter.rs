//! The `RateLimiter` port, twice: `LocalLimiter` counts in this process (governor's keyed GCRA,
//! moka for failed-login records); `SharedLimiter` counts in Redis (GCRA in a Lua script, on
//! Redis's clock) so that every instance enforces one limit, and falls back to its own
//! `LocalLimiter` whenever Redis does not answer within the cache's Redis timeout or its circuit
//! is open. A request is never failed because of the limiter. The rules themselves (what to count,
//! when to refuse) are velro-core's.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock as _, DefaultClock};
use governor::DefaultKeyedRateLimiter;
use velro_core::limits::{
    ceil_secs, Decision, LimitSettings, LoginHistory, LoginProtection, Policy, Quota, RateLimiter,
};

use crate::l2::Redis;

/// Bound on the in-process failure and known-IP records each.
const LOCAL_CAPACITY: u64 = 200_000;
/// Every this many checks, governor forgets keys whose limit has fully recovered.
const PRUNE_EVERY: u64 = 4_096;

fn pair_key(account: &str, ip: &str) -> String {
    format!("{account}|{ip}")
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Counts in this process only: exact on one instance, per instance on several.
pub struct LocalLimiter {
    limiters: HashMap<Policy, DefaultKeyedRateLimiter<String>>,
    clock: DefaultClock,
    pairs: moka::future::Cache<String, Failures>,
    accounts: moka::future::Cache<String, Failures>,
    known: moka::future::Cache<String, ()>,
    checks: AtomicU64,
}

fn governor_quota(quota: Quota) -> governor::Quota {
    let burst = NonZeroU32::new(quota.max).unwrap_or(NonZeroU32::MIN);
    let interval = quota.interval().max(Duration::from_nanos(1));
    governor::Quota::with_period(interval)
        .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MIN))
        .allow_burst(burst)
}

impl LocalLimiter {
    pub fn new(settings: &LimitSettings) -> Self {
        let limiters = Policy::ALL
            .iter()
            .map(|policy| {
                let quota = governor_quota(settings.quota(*policy));
                (*policy, governor::RateLimiter::keyed(quota))
            })
            .collect();
        let login = settings.login;
        let records = |ttl: Duration| {
            moka::future::Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .time_to_live(ttl.max(Duration::from_secs(1)))
                .build()
        };
        Self {
            limiters,
            clock: DefaultClock::default(),
            pairs: records(login.failure_window),
            accounts: records(login.failure_window),
            known: moka::future::Cache::builder()
                .max_capacity(LOCAL_CAPACITY)
                .time_to_live(login.known_ip_ttl.max(Duration::from_secs(1)))
                .build(),
            checks: AtomicU64::new(0),
        }
    }

    fn check_now(&self, policy: Policy, key: &str) -> Decision {
        let Some(limiter) = self.limiters.get(&policy) else {
            return Decision::Allowed;
        };
        if self.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            for limiter in self.limiters.values() {
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        }
        match limiter.check_key(&key.to_string()) {
            Ok(()) => Decision::Allowed,
            Err(not_until) => Decision::RetryAfter {
                secs: ceil_secs(not_until.wait_time_from(self.clock.now())).max(1),
            },
        }
    }

    async fn count_failure(cache: &moka::future::Cache<String, Failures>, key: String) {
        cache
            .entry(key)
            .and_upsert_with(|previous| {
                let count = previous.map_or(0, |entry| entry.into_value().count);
                std::future::ready(Failures {
                    count: count.saturating_add(1),
                    last: Instant::now(),
                })
            })
            .await;
    }
}

#[async_trait::async_trait]
impl RateLimiter for LocalLimiter {
    async fn check(&self, policy: Policy, key: &str) -> Decision {
        self.check_now(policy, key)
    }

    async fn login_history(&self, account: &str, ip: &str) -> LoginHistory {
        let pair = pair_key(account, ip);
        let pair_failures = self.pairs.get(&pair).await;
        LoginHistory {
            pair_failures: pair_failures.map_or(0, |f| f.count),
            since_pair_failure: pair_failures.map_or(Duration::MAX, |f| f.last.elapsed()),
            account_failures: self.accounts.get(account).await.map_or(0, |f| f.count),
            known_ip: self.known.contains_key(&pair),
        }
    }

    async fn login_failed(&self, account: &str, ip: &str) {
        Self::count_failure(&self.pairs, pair_key(account, ip)).await;
        Self::count_failure(&self.accounts, account.to_string()).await;
    }

    async fn login_succeeded(&self, account: &str, ip: &str) {
        let pair = pair_key(account, ip);
        self.pairs.invalidate(&pair).await;
        self.known.insert(pair, ()).await;
    }
}

/// GCRA on Redis's clock. KEYS[1]: the key; ARGV[1]: the emission interval (ms); ARGV[2]: the
/// burst tolerance (ms). Returns 0 when allowed, else the milliseconds to wait.
const GCRA_SCRIPT: &str = r"
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local tau = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local wait = tat - tau - now
if wait > 0 then return wait end
local next_tat = tat + interval
redis.call('SET', KEYS[1], next_tat, 'PX', math.max(1, next_tat - now))
return 0";

/// KEYS: the pair's record, the account's count, the pair's known-IP flag. Returns
/// {pair failures, ms since the pair's last failure, account failures, known (0/1)}.
const HISTORY_SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pair = redis.call('HMGET', KEYS[1], 'n', 't')
local n = tonumber(pair[1]) or 0
local last = tonumber(pair[2]) or 0
local since = now - last
if n == 0 then since = -1 end
local account = tonumber(redis.call('GET', KEYS[2])) or 0
return {n, since, account, redis.call('EXISTS', KEYS[3])}";

/// KEYS: the pair's record, the account's count; ARGV[1]: the failure window (ms).
const FAILED_SCRIPT: &str = r"
redis.replicate_commands()
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HINCRBY', KEYS[1], 'n', 1)
redis.call('HSET', KEYS[1], 't', now)
redis.call('PEXPIRE', KEYS[1], ARGV[1])
redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[1])
return 1";

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Counts in Redis, shared by every instance on the same namespace.
pub struct SharedLimiter {
    redis: Arc<Redis>,
    local: LocalLimiter,
    /// Per policy: emission interval and burst tolerance, in ms.
    gcra: HashMap<Policy, (u64, u64)>,
    login: LoginProtection,
    prefix: String,
}

impl SharedLimiter {
    pub(crate) fn new(redis: Arc<Redis>, settings: &LimitSettings) -> Self {
        let gcra = Policy::ALL
            .iter()
            .map(|policy| {
                let quota = settings.quota(*policy);
                let interval = millis(quota.interval());
                let tau = interval.saturating_mul(u64::from(quota.max.max(1)) - 1);
                (*policy, (interval, tau))
            })
            .collect();
        let prefix = format!("{}limit:", redis.namespace_prefix());
        Self {
            redis,
            local: LocalLimiter::new(settings),
            gcra,
            login: settings.login,
            prefix,
        }
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("{}{kind}:{key}", self.prefix)
    }
}

#[async_trait::async_trait]
impl RateLimiter for SharedLimiter {
    async fn check(&self, policy: Policy, key: &str) -> Decision {
        let Some((interval, tau)) = self.gcra.get(&policy).copied() else {
            return Decision::Allowed;
        };
        let redis_key = self.key(policy.name(), key);
        let mut eval = redis::cmd("EVAL");
        eval.arg(GCRA_SCRIPT)
            .arg(1)
            .arg(redis_key)
            .arg(interval)
            .arg(tau);
        let answer = self
            .redis
            .call(|mut conn| async move { eval.query_async::<i64>(&mut conn).await })
            .await;
        match answer {
            Some(wait_ms) if wait_ms > 0 => Decision::RetryAfter {
                secs: ceil_secs(Duration::from_millis(wait_ms.unsigned_abs())).max(1),
            },
            Some(_) => Decision::Allowed,
            None => self.local.check(policy, key).await,
        }
    }

    async fn login_history(&self, account: &str, ip: &str) -> LoginHistory {
        let pair = pair_key(account, ip);
        let mut eval = redis::cmd("EVAL");
        eval.arg(HISTORY_SCRIPT)
            .arg(3)
            .arg(self.key("fail-pair", &pair))
            .arg(self.key("fail-account", account))
            .arg(self.key("known", &pair));
        let answer = self
            .redis
            .call(
                |mut conn| async move { eval.query_async::<(i64, i64, i64, i64)>(&mut conn).await },
            )
            .await;
        let Some((pair_failures, since_ms, account_failures, known)) = answer else {
            return self.local.login_history(account, ip).await;
        };
        LoginHistory {
            pair_failures: u32::try_from(pair_failures).unwrap_or(u32::MAX),
            since_pair_failure: u64::try_from(since_ms)
                .map_or(Duration::MAX, Duration::from_millis),
            account_failures: u32::try_from(account_failures).unwrap_or(u32::MAX),
            known_ip: known == 1,
        }
    }

    async fn login_failed(&self, account: &str, ip: &str) {
        let mut eval = redis::cmd("EVAL");
        eval.arg(FAILED_SCRIPT)
            .arg(2)
            .arg(self.key("fail-pair", &pair_key(account, ip)))
            .arg(self.key("fail-account", account))
            .arg(millis(self.login.failure_window));
        let answer = self
            .redis
            .call(|mut conn| async move { eval.query_async::<i64>(&mut conn).await })
            .await;
        if answer.is_none() {
            self.local.login_failed(account, ip).await;
        }
    }

    async fn login_succeeded(&self, account: &str, ip: &str) {
        let pair = pair_key(account, ip);
        let mut pipe = redis::pipe();
        pipe.cmd("DEL")
            .arg(self.key("fail-pair", &pair))
            .ignore()
            .cmd("SET")
            .arg(self.key("known", &pair))
            .arg(1)
            .arg("PX")
            .arg(millis(self.login.known_ip_ttl))
            .ignore();
        let answer = self
            .redis
            .call(|mut conn| async move { pipe.query_async::<()>(&mut conn).await })
            .await;
        if answer.is_none() {
            self.local.login_succeeded(account, ip).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policy: Policy, quota: &str) -> LimitSettings {
        let mut settings = LimitSettings::default();
        settings.set(policy, quota.parse().expect("valid quota"));
        settings
    }

    #[tokio::test]
    async fn the_burst_passes_and_the_next_request_waits_one_interval() {
        let limiter = LocalLimiter::new(&settings(Policy::LoginIp, "3/30s"));
        for _ in 0..3 {
            assert_eq!(
                limiter.check(Policy::LoginIp, "192.0.2.1").await,
                Decision::Allowed
            );
        }
        let refused = limiter.check(Policy::LoginIp, "192.0.2.1").await;
        assert!(
            matches!(refused, Decision::RetryAfter { secs } if (9..=10).contains(&secs)),
            "{refused:?}"
        );
        assert_eq!(
            limiter.check(Policy::LoginIp, "192.0.2.2").await,
            Decision::Allowed,
            "another key has its own budget"
        );
        assert_eq!(
            limiter.check(Policy::RegisterIp, "192.0.2.1").await,
            Decision::Allowed,
            "another policy has its own budget"
        );
    }

    #[tokio::test]
    async fn failures_are_counted_per_pair_and_per_account_and_success_clears_the_pair() {
        let limiter = LocalLimiter::new(&LimitSettings::default());
        for _ in 0..3 {
            limiter.login_failed("ada@example.com", "192.0.2.1").await;
        }
        limiter.login_failed("ada@example.com", "192.0.2.2").await;
        let history = limiter.login_history("ada@example.com", "192.0.2.1").await;
        assert_eq!((history.pair_failures, history.account_failures), (3, 4));
        assert!(history.since_pair_failure < Duration::from_secs(5));
        assert!(!history.known_ip);

        limiter
            .login_succeeded("ada@example.com", "192.0.2.1")
            .await;
        let history = limiter.login_history("ada@example.com", "192.0.2.1").await;
        assert_eq!((history.pair_failures, history.account_failures), (0, 4));
        assert!(history.known_ip);
        assert!(
            !limiter
                .login_history("ada@example.com", "192.0.2.2")
                .await
                .known_ip
        );
    }
}
