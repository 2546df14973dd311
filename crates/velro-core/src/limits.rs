//! Rate limits and brute-force protection: the `RateLimiter` port, the policy table with its
//! defaults, and the failed-login rules the services apply. Counting itself (in process, or
//! shared through Redis) lives in velro-cache; which HTTP answer a refusal becomes, in velro-http.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::AuthError;

/// A named limit. Keys are a client IP (`*Ip`) or a normalised email (`*Account`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    LoginIp,
    /// Login attempts for one account from IPs it has not signed in from lately.
    LoginAccount,
    /// The shared budget of unknown IPs once an account has `slow_after` recent failures.
    LoginAccountSlow,
    /// The same once it has `slower_after` recent failures.
    LoginAccountSlower,
    RegisterIp,
    RegisterAccount,
    RefreshIp,
    PasswordResetIp,
    PasswordResetAccount,
    ChangePasswordIp,
    ChangePasswordAccount,
    /// The mails /auth/v1 sends, all of them under one key: GoTrue's `RATE_LIMIT_EMAIL_SENT`.
    MailSent,
}

impl Policy {
    pub const ALL: [Policy; 12] = [
        Policy::LoginIp,
        Policy::LoginAccount,
        Policy::LoginAccountSlow,
        Policy::LoginAccountSlower,
        Policy::RegisterIp,
        Policy::RegisterAccount,
        Policy::RefreshIp,
        Policy::PasswordResetIp,
        Policy::PasswordResetAccount,
        Policy::ChangePasswordIp,
        Policy::ChangePasswordAccount,
        Policy::MailSent,
    ];

    /// The metric label and the key prefix in the shared store.
    pub fn name(self) -> &'static str {
        match self {
            Self::LoginIp => "login_ip",
            Self::LoginAccount => "login_account",
            Self::LoginAccountSlow => "login_account_slow",
            Self::LoginAccountSlower => "login_account_slower",
            Self::RegisterIp => "register_ip",
            Self::RegisterAccount => "register_account",
            Self::RefreshIp => "refresh_ip",
            Self::PasswordResetIp => "password_reset_ip",
            Self::PasswordResetAccount => "password_reset_account",
            Self::ChangePasswordIp => "change_password_ip",
            Self::ChangePasswordAccount => "change_password_account",
            Self::MailSent => "mail_sent",
        }
    }

    /// The documented default.
    pub fn default_quota(self) -> Quota {
        let (max, secs) = match self {
            Self::LoginIp => (30, 60),
            Self::LoginAccount => (10, 60),
            Self::LoginAccountSlow => (1, 10),
            Self::LoginAccountSlower => (1, 60),
            Self::RegisterIp => (10, 3_600),
            Self::RegisterAccount => (5, 3_600),
            Self::RefreshIp => (60, 60),
            Self::PasswordResetIp => (20, 3_600),
            Self::PasswordResetAccount => (5, 3_600),
            Self::ChangePasswordIp => (10, 900),
            Self::ChangePasswordAccount => (5, 900),
            Self::MailSent => (30, 3_600),
        };
        Quota {
            max,
            period: Duration::from_secs(secs),
        }
    }
}

/// `max` requests per `period`, enforced as a GCRA: a burst of `max`, then one more every
/// `period / max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub max: u32,
    pub period: Duration,
}

impl Quota {
    /// The time between two requests once the burst is spent.
    pub fn interval(self) -> Duration {
        self.period / self.max.max(1)
    }

    /// The same period with `factor` times as many requests (for load tests).
    pub fn scaled(self, factor: u32) -> Self {
        Self {
            max: self.max.saturating_mul(factor.max(1)),
            period: self.period,
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.max, self.period.as_secs())
    }
}

/// `<max>/<period>`, the period a whole number with a unit `s`, `m` or `h` (`30/1m`, `5/3600s`).
impl FromStr for Quota {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "must look like 30/1m (requests/period; units s, m, h)";
        let (max, period) = raw.trim().split_once('/').ok_or(FORM)?;
        let max: u32 = max.trim().parse().map_err(|_| FORM)?;
        let period = period.trim();
        let split = period.len().checked_sub(1).ok_or(FORM)?;
        let (amount, unit) = period.split_at(split);
        let amount: u64 = amount.parse().map_err(|_| FORM)?;
        let unit_secs = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            _ => return Err(FORM),
        };
        let secs = amount.checked_mul(unit_secs).ok_or(FORM)?;
        if max == 0 || secs == 0 {
            return Err("requests and period must be greater than zero");
        }
        Ok(Self {
            max,
            period: Duration::from_secs(secs),
        })
    }
}

impl TryFrom<String> for Quota {
    type Error = &'static str;

    fn try_from(raw: String) -> Result<Self, Self::Error> {
        raw.parse()
    }
}

impl<'de> serde::Deserialize<'de> for Quota {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// GoTrue's `RATE_LIMIT_EMAIL_SENT`, in its two forms: a number is that many mails an hour
/// (fractions dropped, as GoTrue does); `N/duration` (a Go duration: `10/1m`, `5/1h30m`) is a
/// burst of N, then one more every `duration`. Zero, in either form, refuses every mail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailRate {
    Never,
    Every(Quota),
}

impl Default for EmailRate {
    fn default() -> Self {
        Self::Every(Policy::MailSent.default_quota())
    }
}

impl FromStr for EmailRate {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "must be a number of mails per hour (30) or a burst and the time \
                            to earn one more back (10/1m), as GoTrue's RATE_LIMIT_EMAIL_SENT";
        let raw = raw.trim();
        if let Ok(per_hour) = raw.parse::<f64>() {
            if !per_hour.is_finite() || per_hour < 0.0 || per_hour >= f64::from(u32::MAX) {
                return Err(FORM);
            }
            // GoTrue converts with int(): the fraction is dropped.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let max = per_hour as u32;
            return Ok(Self::per(max, Duration::from_secs(3_600)));
        }
        let (events, every) = raw.split_once('/').ok_or(FORM)?;
        let events: u32 = events.trim().parse().map_err(|_| FORM)?;
        let mut every = parse_go_duration(every.trim()).map_err(|_| FORM)?;
        if every.is_zero() {
            // GoTrue's burst limiter falls back to an hour.
            every = Duration::from_secs(3_600);
        }
        let period = every.checked_mul(events.max(1)).ok_or(FORM)?;
        Ok(Self::per(events, period))
    }
}

impl EmailRate {
    fn per(max: u32, period: Duration) -> Self {
        if max == 0 {
            Self::Never
        } else {
            Self::Every(Quota { max, period })
        }
    }
}

/// Settings give the rate as a number or as text.
impl<'de> serde::Deserialize<'de> for EmailRate {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        text_or_number(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A setting written as text or read as a number by the configuration layer (`30`, `1.5`).
fn text_or_number<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Text;
    impl serde::de::Visitor<'_> for Text {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a number or a string")
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<String, E> {
            Ok(v.to_string())
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<String, E> {
            Ok(v.to_string())
        }
    }
    deserializer.deserialize_any(Text)
}

/// A duration as GoTrue's settings write it (Go's `time.ParseDuration`: `60s`, `1m30s`,
/// `1.5h`, `500ms`), or a bare number of seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl FromStr for GoDuration {
    type Err = &'static str;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let raw = raw.trim();
        if let Ok(secs) = raw.parse::<u64>() {
            return Ok(Self(Duration::from_secs(secs)));
        }
        parse_go_duration(raw).map(Self)
    }
}

impl<'de> serde::Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        text_or_number(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Go's duration syntax without a sign: numbers (with an optional fraction) each followed by
/// a unit of `ns`, `us`, `µs`, `ms`, `s`, `m` or `h`; `0` alone is zero.
pub fn parse_go_duration(raw: &str) -> Result<Duration, &'static str> {
    const FORM: &str = "must be a duration like 60s, 1m30s or 1.5h";
    let text = raw.strip_prefix('+').unwrap_or(raw);
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err(FORM);
    }
    let mut nanos = 0f64;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or(FORM)?;
        let (number, tail) = rest.split_at(number_len);
        if number.is_empty() || number == "." {
            return Err(FORM);
        }
        let value: f64 = number.parse().map_err(|_| FORM)?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let scale = match unit {
            "ns" => 1e0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3_600e9,
            _ => return Err(FORM),
        };
        nanos += value * scale;
        rest = tail;
    }
    // Go's own limit (about 292 years) keeps the conversion exact enough and in range.
    if !nanos.is_finite() || nanos > 9.2e18 {
        return Err(FORM);
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// The failed-login rules (see the README's "Brute-force protection").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginProtection {
    /// Failures of one (account, IP) pair after which that pair waits before each attempt:
    /// 1 s after the `backoff_after`-th failure, doubling with each further one.
    pub backoff_after: u32,
    pub max_backoff: Duration,
    /// Recent failures of an account (all IPs) after which IPs it has not signed in from share
    /// the `LoginAccountSlow` budget; after `slower_after`, the `LoginAccountSlower` one.
    pub slow_after: u32,
    pub slower_after: u32,
    /// Failure counts are forgotten this long after the last failure.
    pub failure_window: Duration,
    /// How long an IP stays known to an account after a successful sign-in from it.
    pub known_ip_ttl: Duration,
}

impl Default for LoginProtection {
    fn default() -> Self {
        Self {
            backoff_after: 5,
            max_backoff: Duration::from_secs(15 * 60),
            slow_after: 20,
            slower_after: 100,
            failure_window: Duration::from_secs(3_600),
            known_ip_ttl: Duration::from_secs(30 * 24 * 3_600),
        }
    }
}

impl LoginProtection {
    /// How long a pair with `failures` recent failures waits after its last one, if at all.
    pub fn backoff(&self, failures: u32) -> Option<Duration> {
        if self.backoff_after == 0 || failures < self.backoff_after {
            return None;
        }
        let doublings = (failures - self.backoff_after).min(30);
        Some(Duration::from_secs(1u64 << doublings).min(self.max_backoff))
    }

    /// The shared budget an unknown IP draws on for an account with `failures` recent failures.
    pub fn account_policy(&self, failures: u32) -> Option<Policy> {
        if failures >= self.slower_after {
            Some(Policy::LoginAccountSlower)
        } else if failures >= self.slow_after {
            Some(Policy::LoginAccountSlow)
        } else {
            None
        }
    }
}

/// Every limit's setting, built once at start-up.
#[derive(Debug, Clone)]
pub struct LimitSettings {
    /// Off: nothing is counted or refused (load tests only).
    pub enabled: bool,
    quotas: Vec<(Policy, Quota)>,
    pub login: LoginProtection,
    /// `RATE_LIMIT_EMAIL_SENT=0`: no mail goes out, limits on or off.
    mail_never: bool,
}

impl Default for LimitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            quotas: Policy::ALL
                .iter()
                .map(|policy| (*policy, policy.default_quota()))
                .collect(),
            login: LoginProtection::default(),
            mail_never: false,
        }
    }
}

impl LimitSettings {
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }

    pub fn set(&mut self, policy: Policy, quota: Quota) {
        for (known, value) in &mut self.quotas {
            if *known == policy {
                *value = quota;
            }
        }
    }

    /// GoTrue's `RATE_LIMIT_EMAIL_SENT`: the quota of [`Policy::MailSent`], or no mail at all.
    pub fn set_email_rate(&mut self, rate: EmailRate) {
        match rate {
            EmailRate::Never => self.mail_never = true,
            EmailRate::Every(quota) => {
                self.mail_never = false;
                self.set(Policy::MailSent, quota);
            }
        }
    }

    pub fn quota(&self, policy: Policy) -> Quota {
        self.quotas
            .iter()
            .find(|(known, _)| *known == policy)
            .map_or_else(|| policy.default_quota(), |(_, quota)| *quota)
    }

    /// Every request quota multiplied by `factor` (the failed-login thresholds too).
    pub fn scaled(mut self, factor: u32) -> Self {
        for (_, quota) in &mut self.quotas {
            *quota = quota.scaled(factor);
        }
        let login = &mut self.login;
        login.backoff_after = login.backoff_after.saturating_mul(factor.max(1));
        login.slow_after = login.slow_after.saturating_mul(factor.max(1));
        login.slower_after = login.slower_after.saturating_mul(factor.max(1));
        self
    }
}

/// The answer to one counted request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    RetryAfter { secs: u64 },
}

/// What the limiter remembers about sign-ins to one account from one IP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoginHistory {
    /// Recent failures of this (account, IP) pair.
    pub pair_failures: u32,
    /// Time since the pair's last failure (meaningless when it has none).
    pub since_pair_failure: Duration,
    /// Recent failures of the account from every IP.
    pub account_failures: u32,
    /// The account signed in successfully from this IP within `known_ip_ttl`.
    pub known_ip: bool,
}

/// Counts requests and failed sign-ins. Implementations never fail a request: when their
/// backing store is unreachable they fall back to counting in process.
#[async_trait::async_trait]
pub trait RateLimiter: Send + Sync + 'static {
    /// Counts one request for `key` under `policy` and says whether it is within the quota.
    async fn check(&self, policy: Policy, key: &str) -> Decision;
    async fn login_history(&self, account: &str, ip: &str) -> LoginHistory;
    /// Records one failed sign-in for the pair and for the account.
    async fn login_failed(&self, account: &str, ip: &str);
    /// Forgets the pair's failures and remembers the IP as known to the account.
    async fn login_succeeded(&self, account: &str, ip: &str);
}

/// The one key of [`Policy::MailSent`]: the budget is the deployment's, not a client's.
const MAIL_BUDGET_KEY: &str = "deployment";

/// Every mail of the budget's period has gone out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the deployment's mail budget is spent")]
pub struct MailBudgetSpent;

/// The key for a request whose client address is unknown (only outside a real server).
const UNKNOWN_IP: &str = "unknown";

/// The limits as the services apply them: refusals become `RateLimited` and are counted.
#[derive(Clone)]
pub struct Limits {
    limiter: Arc<dyn RateLimiter>,
    settings: Arc<LimitSettings>,
}

impl fmt::Debug for Limits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limits")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(limiter: Arc<dyn RateLimiter>, settings: LimitSettings) -> Self {
        metrics::describe_counter!(
            "velro_rate_limit_refusals_total",
            "Requests refused with 429 by a rate limit, by policy."
        );
        Self {
            limiter,
            settings: Arc::new(settings),
        }
    }

    /// Nothing counted, nothing refused.
    pub fn off() -> Self {
        Self::new(Arc::new(Unlimited), LimitSettings::off())
    }

    pub fn settings(&self) -> &LimitSettings {
        &self.settings
    }

    fn refuse(label: &'static str, secs: u64) -> AuthError {
        metrics::counter!("velro_rate_limit_refusals_total", "policy" => label).increment(1);
        AuthError::RateLimited {
            retry_after_secs: secs.max(1),
        }
    }

    /// Counts one request; `RateLimited` when it is over `policy`'s quota.
    pub async fn check(&self, policy: Policy, key: &str) -> Result<(), AuthError> {
        if !self.settings.enabled {
            return Ok(());
        }
        match self.limiter.check(policy, key).await {
            Decision::Allowed => Ok(()),
            Decision::RetryAfter { secs } => {
                tracing::info!(
                    policy = policy.name(),
                    retry_after_secs = secs,
                    "rate limited"
                );
                Err(Self::refuse(policy.name(), secs))
            }
        }
    }

    /// Spends one mail of the deployment's budget ([`Policy::MailSent`], one key for every
    /// mail: shared through Redis when the limiter is, else per instance).
    pub async fn spend_mail_budget(&self) -> Result<(), MailBudgetSpent> {
        if self.settings.mail_never {
            metrics::counter!("velro_rate_limit_refusals_total", "policy" => Policy::MailSent.name())
                .increment(1);
            return Err(MailBudgetSpent);
        }
        match self.check(Policy::MailSent, MAIL_BUDGET_KEY).await {
            Ok(()) => Ok(()),
            Err(_) => Err(MailBudgetSpent),
        }
    }

    pub async fn check_ip(&self, policy: Policy, ip: Option<&str>) -> Result<(), AuthError> {
        self.check(policy, ip.unwrap_or(UNKNOWN_IP)).await
    }

    /// Before a password is checked: the pair's back-off, then (for IPs the account has not
    /// signed in from) the account's budgets. Refusing here costs no hashing.
    pub async fn before_login(&self, account: &str, ip: Option<&str>) -> Result<(), AuthError> {
        if !self.settings.enabled {
            return Ok(());
        }
        let ip = ip.unwrap_or(UNKNOWN_IP);
        let rules = &self.settings.login;
        let history = self.limiter.login_history(account, ip).await;
        if let Some(wait) = rules.backoff(history.pair_failures) {
            if let Some(left) = wait
                .checked_sub(history.since_pair_failure)
                .filter(|d| !d.is_zero())
            {
                tracing::info!(failures = history.pair_failures, "login backing off");
                return Err(Self::refuse("login_backoff", ceil_secs(left)));
            }
        }
        if history.known_ip {
            return Ok(());
        }
        self.check(Policy::LoginAccount, account).await?;
        if let Some(policy) = rules.account_policy(history.account_failures) {
            self.check(policy, account).await?;
        }
        Ok(())
    }

    pub async fn after_login(&self, account: &str, ip: Option<&str>, succeeded: bool) {
        if !self.settings.enabled {
            return;
        }
        let ip = ip.unwrap_or(UNKNOWN_IP);
        if succeeded {
            self.limiter.login_succeeded(account, ip).await;
        } else {
            self.limiter.login_failed(account, ip).await;
        }
    }
}

/// Whole seconds, rounded up: a client that waits `Retry-After` is let through.
pub fn ceil_secs(duration: Duration) -> u64 {
    let secs = duration.as_secs();
    if duration.subsec_nanos() > 0 {
        secs + 1
    } else {
        secs
    }
}

/// A limiter that allows everything.
#[derive(Debug, Default)]
pub struct Unlimited;

#[async_trait::async_trait]
impl RateLimiter for Unlimited {
    async fn check(&self, _policy: Policy, _key: &str) -> Decision {
        Decision::Allowed
    }

    async fn login_history(&self, _account: &str, _ip: &str) -> LoginHistory {
        LoginHistory::default()
    }

    async fn login_failed(&self, _account: &str, _ip: &str) {}

    async fn login_succeeded(&self, _account: &str, _ip: &str) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn quotas_parse_with_units() {
        let cases = [
            ("30/1m", Some((30, 60))),
            ("5/3600s", Some((5, 3_600))),
            (" 2 / 1h ", Some((2, 3_600))),
            ("0/1m", None),
            ("5/0s", None),
            ("5/1d", None),
            ("5", None),
            ("/1m", None),
            ("5/m", None),
            ("-1/1m", None),
        ];
        for (raw, expected) in cases {
            let parsed = raw
                .parse::<Quota>()
                .ok()
                .map(|q| (q.max, q.period.as_secs()));
            assert_eq!(parsed, expected, "{raw}");
        }
    }

    #[test]
    fn email_rates_parse_as_gotrue_reads_them() {
        let hour = Duration::from_secs(3_600);
        let every = |max, secs| {
            EmailRate::Every(Quota {
                max,
                period: Duration::from_secs(secs),
            })
        };
        let cases = [
            ("30", Ok(every(30, 3_600))),
            ("30.9", Ok(every(30, 3_600))),
            (" 5 ", Ok(every(5, 3_600))),
            ("0", Ok(EmailRate::Never)),
            ("0/1m", Ok(EmailRate::Never)),
            ("10/1m", Ok(every(10, 600))),
            ("1/10s", Ok(every(1, 10))),
            ("2/1h30m", Ok(every(2, 3 * 3_600))),
            ("3/0s", Ok(every(3, 3 * 3_600))),
        ];
        for (raw, expected) in cases {
            assert_eq!(raw.parse::<EmailRate>(), expected, "{raw}");
        }
        for bad in [
            "", "-1", "inf", "NaN", "1/", "/1m", "1/1d", "1/m", "x", "-1/1m", "1.5/1m",
        ] {
            assert!(bad.parse::<EmailRate>().is_err(), "{bad}");
        }
        assert_eq!(EmailRate::default(), every(30, 3_600));
        assert_eq!(hour, Duration::from_secs(3_600));
    }

    #[test]
    fn go_durations_parse_as_go_reads_them() {
        let cases = [
            ("0", 0),
            ("60s", 60_000),
            ("1m30s", 90_000),
            ("1.5h", 5_400_000),
            ("500ms", 500),
            ("+2m", 120_000),
        ];
        for (raw, millis) in cases {
            assert_eq!(
                parse_go_duration(raw),
                Ok(Duration::from_millis(millis)),
                "{raw}"
            );
        }
        for bad in ["", "60", "1d", "-1s", "s", ".s", "1m-1s", "1e3s"] {
            assert!(parse_go_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(
            "60".parse::<GoDuration>(),
            Ok(GoDuration(Duration::from_secs(60)))
        );
        assert_eq!(
            "2m".parse::<GoDuration>(),
            Ok(GoDuration(Duration::from_secs(120)))
        );
    }

    #[tokio::test]
    async fn the_mail_budget_is_one_key_and_zero_refuses_even_with_limits_off() {
        let mut settings = LimitSettings::default();
        settings.set_email_rate("2/1h".parse().expect("valid"));
        let limiter = Arc::new(Scripted {
            history: LoginHistory::default(),
            checked: std::sync::Mutex::new(Vec::new()),
        });
        let limits = Limits::new(limiter.clone(), settings);
        assert_eq!(limits.spend_mail_budget().await, Ok(()));
        let checked = limiter
            .checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        assert_eq!(checked, [Policy::MailSent]);

        let mut off = LimitSettings::off();
        off.set_email_rate(EmailRate::Never);
        let closed = Limits::new(Arc::new(Unlimited), off);
        assert_eq!(closed.spend_mail_budget().await, Err(MailBudgetSpent));
        assert_eq!(Limits::off().spend_mail_budget().await, Ok(()));
    }

    proptest! {
        #[test]
        fn a_quota_survives_display_and_parse(max in 1u32..1_000_000, secs in 1u64..10_000_000) {
            let quota = Quota { max, period: Duration::from_secs(secs) };
            prop_assert_eq!(quota.to_string().parse::<Quota>(), Ok(quota));
        }

        #[test]
        fn backoff_never_shrinks_and_never_exceeds_the_cap(failures in 0u32..10_000) {
            let rules = LoginProtection::default();
            let now = rules.backoff(failures).unwrap_or_default();
            let next = rules.backoff(failures + 1).unwrap_or_default();
            prop_assert!(next >= now);
            prop_assert!(next <= rules.max_backoff);
        }
    }

    #[test]
    fn backoff_starts_at_the_fifth_failure_and_doubles_to_the_cap() {
        let rules = LoginProtection::default();
        let secs = |n| rules.backoff(n).map(|d| d.as_secs());
        assert_eq!(secs(4), None);
        assert_eq!(secs(5), Some(1));
        assert_eq!(secs(6), Some(2));
        assert_eq!(secs(10), Some(32));
        assert_eq!(secs(14), Some(512));
        assert_eq!(secs(15), Some(900));
        assert_eq!(secs(20), Some(900));
        assert_eq!(secs(100), Some(900));
    }

    #[test]
    fn account_budgets_tighten_at_twenty_and_at_a_hundred() {
        let rules = LoginProtection::default();
        assert_eq!(rules.account_policy(19), None);
        assert_eq!(rules.account_policy(20), Some(Policy::LoginAccountSlow));
        assert_eq!(rules.account_policy(99), Some(Policy::LoginAccountSlow));
        assert_eq!(rules.account_policy(100), Some(Policy::LoginAccountSlower));
    }

    #[test]
    fn scaling_raises_every_quota_and_threshold() {
        let settings = LimitSettings::default().scaled(10);
        assert_eq!(settings.quota(Policy::LoginIp).max, 300);
        assert_eq!(settings.login.backoff_after, 50);
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_secs(2)), 2);
        assert_eq!(ceil_secs(Duration::from_millis(2_001)), 3);
    }

    /// A limiter whose history is fixed, recording what was checked.
    struct Scripted {
        history: LoginHistory,
        checked: std::sync::Mutex<Vec<Policy>>,
    }

    #[async_trait::async_trait]
    impl RateLimiter for Scripted {
        async fn check(&self, policy: Policy, _key: &str) -> Decision {
            self.checked
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(policy);
            Decision::Allowed
        }
        async fn login_history(&self, _account: &str, _ip: &str) -> LoginHistory {
            self.history
        }
        async fn login_failed(&self, _account: &str, _ip: &str) {}
        async fn login_succeeded(&self, _account: &str, _ip: &str) {}
    }

    async fn before_login(history: LoginHistory) -> (Result<(), AuthError>, Vec<Policy>) {
        let limiter = Arc::new(Scripted {
            history,
            checked: std::sync::Mutex::new(Vec::new()),
        });
        let limits = Limits::new(limiter.clone(), LimitSettings::default());
        let outcome = limits
            .before_login("ada@example.com", Some("192.0.2.1"))
            .await;
        let checked = limiter
            .checked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        (outcome, checked)
    }

    #[tokio::test]
    async fn a_pair_in_backoff_is_refused_for_the_time_left() {
        let (outcome, _) = before_login(LoginHistory {
            pair_failures: 7,
            since_pair_failure: Duration::from_millis(1_500),
            ..LoginHistory::default()
        })
        .await;
        assert!(matches!(
            outcome,
            Err(AuthError::RateLimited {
                retry_after_secs: 3
            })
        ));
        let (outcome, _) = before_login(LoginHistory {
            pair_failures: 7,
            since_pair_failure: Duration::from_secs(4),
            ..LoginHistory::default()
        })
        .await;
        assert!(outcome.is_ok(), "the wait is over");
    }

    #[tokio::test]
    async fn a_known_ip_skips_the_account_budgets_and_an_unknown_one_draws_on_them() {
        let attacked = LoginHistory {
            account_failures: 150,
            ..LoginHistory::default()
        };
        let (outcome, checked) = before_login(LoginHistory {
            known_ip: true,
            ..attacked
        })
        .await;
        assert!(outcome.is_ok());
        assert!(checked.is_empty());
        let (_, checked) = before_login(attacked).await;
        assert_eq!(checked, [Policy::LoginAccount, Policy::LoginAccountSlower]);
    }

    #[tokio::test]
    async fn switched_off_nothing_is_refused() {
        let limits = Limits::off();
        for _ in 0..1_000 {
            assert!(limits.check(Policy::LoginIp, "192.0.2.1").await.is_ok());
        }
    }
}
