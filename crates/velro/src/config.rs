//! Settings: defaults, then an optional TOML file, then environment variables (`GOTRUE_*` for
//! the settings GoTrue also has, then `VELRO_*` and `DATABASE_URL`, which win), then
//! command-line flags. Every setting is documented in the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use velro_core::limits::{EmailRate, GoDuration, LimitSettings, LoginProtection, Policy, Quota};
use velro_core::service::PurgeSettings;
use velro_core::tokens::SigningAlgorithm;
use velro_core::Secret;
use velro_http::TrustedProxies;

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: PathBuf,
    /// `sqlite://path` or `postgres://…`; default: SQLite at `<data_dir>/velro.db`.
    pub database_url: Option<Secret<String>>,
    pub database_max_connections: u32,
    pub database_acquire_timeout_ms: u64,
    pub database_statement_timeout_ms: u64,
    pub migrate_on_start: bool,
    /// An HS256 secret of at least 32 bytes; default: the key file `<data_dir>/jwt-keys.json`.
    /// With `jwt_keys` it verifies tokens without a `kid` (Supabase's anon and service_role keys).
    pub jwt_secret: Option<Secret<String>>,
    /// GoTrue's `JWT_KEYS`: a JSON array of private JWKs (oct HS256, RSA RS256, EC ES256); the
    /// one whose `key_ops` has `sign` signs, all verify. Replaces the key file.
    pub jwt_keys: Option<Secret<String>>,
    /// `HS256` (default) or `EdDSA`; tokens with any other `alg` are refused.
    pub jwt_algorithm: SigningAlgorithm,
    pub jwt_issuer: String,
    pub jwt_leeway_secs: u64,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub remember_me_refresh_token_ttl_secs: u64,
    pub refresh_reuse_grace_secs: u64,
    pub reset_token_ttl_secs: u64,
    pub initial_credits: i64,
    /// An operator's console session ends after this long without a request.
    pub console_idle_timeout_secs: u64,
    /// At least 32 printable characters; without it the admin API is off.
    pub service_key: Option<Secret<String>>,
    pub log_format: LogFormat,
    pub log_level: String,
    /// Where the development mailer writes messages; default `<data_dir>/mail`.
    pub mail_dir: Option<PathBuf>,
    /// `smtp://user:pass@host:587` or `smtps://…`; when set, mail goes out over SMTP.
    pub smtp_url: Option<Secret<String>>,
    pub mail_from: String,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Hashing threads; default: the number of cores.
    pub hash_threads: Option<usize>,
    pub hash_queue: usize,
    /// Longest wait for a password hash, queueing included (then 503 `overloaded`).
    pub hash_max_wait_ms: u64,
    /// Niceness of the hashing threads (0–19), so that cheap requests preempt hashes.
    pub hash_niceness: i32,
    pub request_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
    /// Longest time a client may take to send a request head (also the idle keep-alive bound).
    pub header_read_timeout_ms: u64,
    /// Connections the kernel queues before `accept` (clamped by `net.core.somaxconn`).
    pub listen_backlog: u32,
    /// The cache at start-up; switchable at run time through the admin flags endpoint.
    pub cache: Switch,
    pub cache_l1_ttl_ms: u64,
    pub cache_l1_capacity: u64,
    /// `redis://host:6379`: the shared cache layer and cross-instance invalidation.
    pub redis_url: Option<Secret<String>>,
    pub cache_l2_ttl_secs: u64,
    pub redis_timeout_ms: u64,
    /// Prefix of Redis keys and channels, so that several deployments can share one Redis.
    pub cache_namespace: String,
    /// Rate limits and failed-login back-off; `off` only for load tests (logged at WARN).
    pub rate_limits: Switch,
    /// Multiplies every rate limit and failed-login threshold (load tests); 1 in production.
    pub rate_limit_scale: u32,
    pub rate_limit_login_ip: Quota,
    pub rate_limit_login_account: Quota,
    pub rate_limit_login_account_slow: Quota,
    pub rate_limit_login_account_slower: Quota,
    pub rate_limit_register_ip: Quota,
    pub rate_limit_register_account: Quota,
    pub rate_limit_refresh_ip: Quota,
    pub rate_limit_password_reset_ip: Quota,
    pub rate_limit_password_reset_account: Quota,
    pub rate_limit_change_password_ip: Quota,
    pub rate_limit_change_password_account: Quota,
    /// GoTrue's `RATE_LIMIT_EMAIL_SENT`: the mails /auth/v1 may send, all together, in
    /// GoTrue's format (`30` an hour, `10/1m` a burst of 10 and one more a minute, `0` none).
    pub rate_limit_email_sent: EmailRate,
    /// GoTrue's `SMTP_MAX_FREQUENCY`: the shortest time between two mails of one kind to one
    /// user (a Go duration like `60s`, or seconds; zero means GoTrue's 60 s).
    pub smtp_max_frequency: GoDuration,
    /// Failures of one (account, IP) pair before exponential back-off.
    pub login_backoff_after: u32,
    pub login_backoff_max_secs: u64,
    /// Account-wide failures (all IPs) before unknown IPs share the slow / slower budgets.
    pub login_account_slow_after: u32,
    pub login_account_slower_after: u32,
    pub login_failure_window_secs: u64,
    pub login_known_ip_days: u64,
    /// Addresses or CIDR ranges of proxies whose `Forwarded` / `X-Forwarded-For` are believed.
    #[serde(deserialize_with = "string_list")]
    pub trusted_proxies: Vec<String>,
    /// Origins allowed by CORS (`https://app.example.com`); empty: no CORS.
    #[serde(deserialize_with = "string_list")]
    pub cors_allowed_origins: Vec<String>,
    pub cors_allow_credentials: bool,
    /// Largest request target plus headers, in bytes (431 beyond it).
    pub max_header_bytes: usize,

    // Supabase Auth (GoTrue) compatibility under /auth/v1, named after GoTrue's settings;
    // checked and turned into the services' settings in `supabase_config.rs`.
    /// GoTrue's `API_EXTERNAL_URL`: the public base URL; Supabase tokens' `iss` is it + `/auth/v1`.
    pub api_external_url: String,
    /// `aud` of Supabase access tokens (GoTrue's `JWT_AUD`).
    pub jwt_aud: String,
    /// `role` values that make a JWT an admin credential on `/auth/v1/admin`.
    #[serde(deserialize_with = "string_list")]
    pub jwt_admin_roles: Vec<String>,
    /// GoTrue's `SITE_URL`: where mail links send the browser when no allowed `redirect_to`
    /// is given.
    pub site_url: String,
    /// GoTrue's `URI_ALLOW_LIST`: globs of other `redirect_to` targets mail links may carry.
    #[serde(deserialize_with = "string_list")]
    pub uri_allow_list: Vec<String>,
    /// A directory whose `recovery.txt`, `magic_link.txt`, `confirmation.txt`, `invite.txt`,
    /// `email_change.txt` and `email_change_current.txt` replace the compiled-in mail templates of the Supabase surface
    /// (those absent keep the default).
    pub mailer_templates_dir: Option<PathBuf>,
    /// `/auth/v1/signup` confirms the address at once; `false`: it mails a confirmation and the
    /// account cannot sign in through /auth/v1 until it is confirmed (GoTrue's semantics).
    pub mailer_autoconfirm: bool,
    /// GoTrue's secure email change: `PUT /auth/v1/user` with a new address mails the current
    /// address too, and the change waits for both confirmations; `false`: only the new address
    /// confirms.
    pub mailer_secure_email_change_enabled: bool,
    /// `/auth/v1/signup` refuses everyone.
    pub disable_signup: bool,
    /// Also serve the Supabase surface at `/`, as a bare GoTrue does.
    pub supabase_at_root: bool,
    /// `off` (default) or `required`: whether `/auth/v1` wants one of the project's API keys
    /// (anon / service_role JWT) in `apikey`, as Supabase's gateway does.
    pub supabase_api_keys: ApiKeysSetting,
    /// Shortest password accepted on both surfaces (6 to 128; the v1 contract's 8 by default).
    pub password_min_length: usize,
    /// GoTrue's `PASSWORD_REQUIRED_CHARACTERS`: character sets separated by `:`, each of which
    /// a new password must use; empty: none.
    pub password_required_characters: String,

    /// Seconds between purge passes in every instance; 0: no periodic purge (`velro purge`
    /// from cron instead).
    pub purge_interval_secs: u64,
    /// How long ended sessions (with their refresh tokens) and used or expired reset tokens are
    /// kept; at least an access token's lifetime plus the leeway.
    pub purge_retention_secs: u64,
    /// Rows of one kind a purge statement removes at most.
    pub purge_batch_size: u32,

    /// The `GOTRUE_*` variables read because their `VELRO_*` setting was unset (names only),
    /// for start-up to log once logging is set up.
    #[serde(skip)]
    pub gotrue_fallbacks: Vec<&'static str>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ApiKeysSetting {
    Off,
    Required,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Switch {
    On,
    Off,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 8000)),
            data_dir: PathBuf::from("velro-data"),
            database_url: None,
            database_max_connections: 10,
            database_acquire_timeout_ms: 2_000,
            database_statement_timeout_ms: 4_000,
            migrate_on_start: true,
            jwt_secret: None,
            jwt_keys: None,
            jwt_algorithm: SigningAlgorithm::Hs256,
            jwt_issuer: "velro".into(),
            jwt_leeway_secs: 5,
            access_token_ttl_secs: 3_600,
            refresh_token_ttl_secs: 7 * 24 * 3_600,
            remember_me_refresh_token_ttl_secs: 30 * 24 * 3_600,
            refresh_reuse_grace_secs: 10,
            reset_token_ttl_secs: 3_600,
            initial_credits: 1_000,
            console_idle_timeout_secs: 900,
            service_key: None,
            log_format: LogFormat::Human,
            log_level: "info".into(),
            mail_dir: None,
            smtp_url: None,
            mail_from: "Velro <no-reply@velro.invalid>".into(),
            argon2_memory_kib: 19_456,
            argon2_iterations: 2,
            argon2_parallelism: 1,
            hash_threads: None,
            hash_queue: 64,
            hash_max_wait_ms: 3_000,
            hash_niceness: 10,
            request_timeout_ms: 5_000,
            shutdown_grace_secs: 10,
            header_read_timeout_ms: 65_000,
            listen_backlog: 4_096,
            cache: Switch::On,
            cache_l1_ttl_ms: 10_000,
            cache_l1_capacity: 100_000,
            redis_url: None,
            cache_l2_ttl_secs: 60,
            redis_timeout_ms: 50,
            cache_namespace: "velro".into(),
            rate_limits: Switch::On,
            rate_limit_scale: 1,
            rate_limit_login_ip: Policy::LoginIp.default_quota(),
            rate_limit_login_account: Policy::LoginAccount.default_quota(),
            rate_limit_login_account_slow: Policy::LoginAccountSlow.default_quota(),
            rate_limit_login_account_slower: Policy::LoginAccountSlower.default_quota(),
            rate_limit_register_ip: Policy::RegisterIp.default_quota(),
            rate_limit_register_account: Policy::RegisterAccount.default_quota(),
            rate_limit_refresh_ip: Policy::RefreshIp.default_quota(),
            rate_limit_password_reset_ip: Policy::PasswordResetIp.default_quota(),
            rate_limit_password_reset_account: Policy::PasswordResetAccount.default_quota(),
            rate_limit_change_password_ip: Policy::ChangePasswordIp.default_quota(),
            rate_limit_change_password_account: Policy::ChangePasswordAccount.default_quota(),
            rate_limit_email_sent: EmailRate::default(),
            smtp_max_frequency: GoDuration(std::time::Duration::from_secs(60)),
            login_backoff_after: 5,
            login_backoff_max_secs: 900,
            login_account_slow_after: 20,
            login_account_slower_after: 100,
            login_failure_window_secs: 3_600,
            login_known_ip_days: 30,
            trusted_proxies: Vec::new(),
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
            max_header_bytes: 16 * 1024,
            api_external_url: "http://localhost:8000".into(),
            jwt_aud: "authenticated".into(),
            jwt_admin_roles: vec!["service_role".into(), "supabase_admin".into()],
            site_url: "http://localhost:3000".into(),
            uri_allow_list: Vec::new(),
            mailer_templates_dir: None,
            mailer_autoconfirm: true,
            mailer_secure_email_change_enabled: true,
            disable_signup: false,
            supabase_at_root: false,
            supabase_api_keys: ApiKeysSetting::Off,
            password_min_length: velro_core::domain::DEFAULT_MIN_CHARS,
            password_required_characters: String::new(),
            purge_interval_secs: 300,
            purge_retention_secs: 7 * 24 * 3_600,
            purge_batch_size: 500,
            gotrue_fallbacks: Vec::new(),
        }
    }
}

/// A list as a TOML array or as one comma-separated string (the environment's form).
fn string_list<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum List {
        Many(Vec<String>),
        One(String),
    }
    let items = match List::deserialize(deserializer)? {
        List::Many(items) => items,
        List::One(joined) => joined.split(',').map(str::to_string).collect(),
    };
    Ok(items
        .into_iter()
        .map(|item| item.trim().to_string())
        .filter(|item| !item.is_empty())
        .collect())
}

/// Flags that override the file and the environment.
#[derive(Debug, Default)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// Each purge statement binds the batch's ids; this keeps them well inside both databases'
/// parameter limits and the statements short.
const MAX_PURGE_BATCH_SIZE: u32 = 10_000;
const MAX_PURGE_RETENTION_SECS: u64 = 10 * 366 * 24 * 3_600;

/// Settings also read from their conventional unprefixed variables.
const UNPREFIXED: [&str; 2] = ["database_url", "redis_url"];

/// GoTrue's variables, each read when its setting's own `VELRO_*` variable is unset, so that a
/// self-hosted Supabase `.env` works as it is.
const GOTRUE_FALLBACKS: [(&str, &str); 15] = [
    ("GOTRUE_SITE_URL", "site_url"),
    ("GOTRUE_URI_ALLOW_LIST", "uri_allow_list"),
    ("GOTRUE_MAILER_AUTOCONFIRM", "mailer_autoconfirm"),
    (
        "GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED",
        "mailer_secure_email_change_enabled",
    ),
    ("GOTRUE_DISABLE_SIGNUP", "disable_signup"),
    ("GOTRUE_PASSWORD_MIN_LENGTH", "password_min_length"),
    (
        "GOTRUE_PASSWORD_REQUIRED_CHARACTERS",
        "password_required_characters",
    ),
    ("GOTRUE_JWT_AUD", "jwt_aud"),
    ("GOTRUE_JWT_ADMIN_ROLES", "jwt_admin_roles"),
    ("GOTRUE_JWT_KEYS", "jwt_keys"),
    ("GOTRUE_JWT_SECRET", "jwt_secret"),
    ("GOTRUE_JWT_EXP", "access_token_ttl_secs"),
    ("GOTRUE_API_EXTERNAL_URL", "api_external_url"),
    ("GOTRUE_RATE_LIMIT_EMAIL_SENT", "rate_limit_email_sent"),
    ("GOTRUE_SMTP_MAX_FREQUENCY", "smtp_max_frequency"),
];

/// Settings taken as the exact text of their variable: figment would otherwise read
/// `0123456789` as a number, or a JSON array as a list.
const RAW_TEXT: [&str; 3] = ["jwt_secret", "jwt_keys", "password_required_characters"];

/// The `GOTRUE_*` fallbacks and the raw-text settings on top of `figment`, reading variables
/// through `var`; returns the `GOTRUE_*` names used.
fn environment_layers(
    mut figment: Figment,
    var: impl Fn(&str) -> Option<String>,
) -> (Figment, Vec<&'static str>) {
    let mut used = Vec::new();
    for (gotrue, key) in GOTRUE_FALLBACKS {
        if var(&env_name(key)).is_some() {
            continue;
        }
        let Some(value) = var(gotrue) else { continue };
        used.push(gotrue);
        figment = if RAW_TEXT.contains(&key) {
            figment.merge((key, value))
        } else {
            // As figment's own environment provider reads values (`true`, `3600`, text).
            let parsed: figment::value::Value = match value.parse() {
                Ok(parsed) => parsed,
                Err(never) => match never {},
            };
            figment.merge((key, parsed))
        };
    }
    for key in RAW_TEXT {
        if let Some(value) = var(&env_name(key)) {
            figment = figment.merge((key, value));
        }
    }
    (figment, used)
}

/// The environment variable of a setting (`access_token_ttl_secs` → `VELRO_ACCESS_TOKEN_TTL_SECS`).
fn env_name(key: &str) -> String {
    if UNPREFIXED.contains(&key) {
        key.to_uppercase()
    } else {
        format!("VELRO_{}", key.to_uppercase())
    }
}

/// Every setting's key, read from `Config`'s own field list (serde hands it to
/// `deserialize_struct`), so that no list of settings is kept by hand beside the struct.
pub fn setting_keys() -> &'static [&'static str] {
    use serde::de::{Error as _, Visitor};

    #[derive(Default)]
    struct FieldList(Option<&'static [&'static str]>);

    impl<'de> serde::Deserializer<'de> for &mut FieldList {
        type Error = serde::de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(Self::Error::custom("only the field list is read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            self.0 = Some(fields);
            Err(Self::Error::custom("only the field list is read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
            option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
            ignored_any
        }
    }

    let mut list = FieldList::default();
    let _ = Config::deserialize(&mut list);
    list.0.unwrap_or_default()
}

/// The settings paragraph of `--help`: every environment variable, generated from [`Config`].
pub fn settings_help() -> String {
    let hint = |key: &str| match key {
        "jwt_algorithm" => " (HS256|EdDSA)",
        "log_format" => " (human|json)",
        "cache" | "rate_limits" => " (on|off)",
        "supabase_api_keys" => " (off|required)",
        "rate_limit_login_ip" => " (e.g. 30/1m, as the other VELRO_RATE_LIMIT_*)",
        "rate_limit_email_sent" => " (GoTrue's: 30 an hour, or 10/1m)",
        "smtp_max_frequency" => " (e.g. 60s)",
        _ => "",
    };
    let mut text = String::from(
        "Settings (environment; TOML keys are the same names, lowercase, without VELRO_):\n",
    );
    let mut line = String::from(" ");
    for key in setting_keys() {
        let item = format!(" {}{},", env_name(key), hint(key));
        if line.len() + item.len() > 100 {
            text.push_str(&line);
            text.push('\n');
            line = String::from(" ");
        }
        line.push_str(&item);
    }
    text.push_str(line.trim_end_matches(','));
    text.push_str(".\nThe README describes each one with its default.");
    text
}

/// One line naming the setting as an operator would set it, and where the bad value came from.
fn describe(error: figment::Error) -> anyhow::Error {
    let key = error.path.join(".");
    let setting = match key.as_str() {
        "" => String::from("a setting"),
        unprefixed if UNPREFIXED.contains(&unprefixed) => {
            format!("{} / VELRO_{} ({key})", env_name(&key), key.to_uppercase())
        }
        _ => format!("{} ({key})", env_name(&key)),
    };
    let source = error
        .metadata
        .as_ref()
        .map(|metadata| format!(" (from {})", metadata.name))
        .unwrap_or_default();
    let why = error.kind.to_string().replace('\n', " ");
    anyhow::anyhow!("invalid configuration: {setting}: {why}{source}")
}

impl Config {
    pub fn load(file: Option<&Path>, overrides: Overrides) -> anyhow::Result<Self> {
        let unprefixed = UNPREFIXED.map(env_name);
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::raw().only(&unprefixed.each_ref().map(String::as_str)))
            .merge(
                // VELRO_CONFIG names the file; VELRO_TEST_* belong to the test suite.
                Env::prefixed("VELRO_")
                    .filter(|key| key.as_str() != "config" && !key.as_str().starts_with("test_")),
            );
        let (mut figment, gotrue_fallbacks) =
            environment_layers(figment, |name| std::env::var(name).ok());
        if let Some(bind) = overrides.bind {
            figment = figment.merge(("bind", bind));
        }
        if let Some(data_dir) = overrides.data_dir {
            figment = figment.merge(("data_dir", data_dir));
        }
        let mut config: Self = figment.extract().map_err(describe)?;
        config.gotrue_fallbacks = gotrue_fallbacks;
        config.validate()?;
        Ok(config)
    }

    /// Logs which `GOTRUE_*` variables were read (names, never values).
    pub fn log_gotrue_fallbacks(&self) {
        if !self.gotrue_fallbacks.is_empty() {
            tracing::info!(
                variables = %self.gotrue_fallbacks.join(", "),
                "read GoTrue settings whose VELRO_ variable is unset"
            );
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("VELRO_ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs),
            ("VELRO_REFRESH_TOKEN_TTL_SECS", self.refresh_token_ttl_secs),
            (
                "VELRO_REMEMBER_ME_REFRESH_TOKEN_TTL_SECS",
                self.remember_me_refresh_token_ttl_secs,
            ),
            ("VELRO_RESET_TOKEN_TTL_SECS", self.reset_token_ttl_secs),
            (
                "VELRO_CONSOLE_IDLE_TIMEOUT_SECS",
                self.console_idle_timeout_secs,
            ),
            (
                "VELRO_DATABASE_MAX_CONNECTIONS",
                u64::from(self.database_max_connections),
            ),
            (
                "VELRO_DATABASE_ACQUIRE_TIMEOUT_MS",
                self.database_acquire_timeout_ms,
            ),
            (
                "VELRO_DATABASE_STATEMENT_TIMEOUT_MS",
                self.database_statement_timeout_ms,
            ),
            ("VELRO_REQUEST_TIMEOUT_MS", self.request_timeout_ms),
            ("VELRO_HASH_QUEUE", self.hash_queue as u64),
            ("VELRO_HASH_MAX_WAIT_MS", self.hash_max_wait_ms),
            ("VELRO_HEADER_READ_TIMEOUT_MS", self.header_read_timeout_ms),
            ("VELRO_LISTEN_BACKLOG", u64::from(self.listen_backlog)),
            ("VELRO_CACHE_L1_TTL_MS", self.cache_l1_ttl_ms),
            ("VELRO_CACHE_L1_CAPACITY", self.cache_l1_capacity),
            ("VELRO_CACHE_L2_TTL_SECS", self.cache_l2_ttl_secs),
            ("VELRO_REDIS_TIMEOUT_MS", self.redis_timeout_ms),
        ];
        for (name, value) in positive {
            if value == 0 {
                bail!("invalid configuration: {name} must be greater than zero");
            }
        }
        if !(0..=19).contains(&self.hash_niceness) {
            bail!("invalid configuration: VELRO_HASH_NICENESS must be between 0 and 19");
        }
        if self.hash_threads == Some(0) {
            bail!("invalid configuration: VELRO_HASH_THREADS must be greater than zero");
        }
        if self.initial_credits < 0 {
            bail!("invalid configuration: VELRO_INITIAL_CREDITS must be zero or more");
        }
        // The inner waits must end before the request's deadline does.
        if self.database_acquire_timeout_ms >= self.request_timeout_ms {
            bail!("invalid configuration: VELRO_DATABASE_ACQUIRE_TIMEOUT_MS must be less than VELRO_REQUEST_TIMEOUT_MS");
        }
        if self.hash_max_wait_ms >= self.request_timeout_ms {
            bail!("invalid configuration: VELRO_HASH_MAX_WAIT_MS must be less than VELRO_REQUEST_TIMEOUT_MS");
        }
        if self.redis_timeout_ms >= self.request_timeout_ms {
            bail!("invalid configuration: VELRO_REDIS_TIMEOUT_MS must be less than VELRO_REQUEST_TIMEOUT_MS");
        }
        if self.database_statement_timeout_ms >= self.request_timeout_ms {
            bail!("invalid configuration: VELRO_DATABASE_STATEMENT_TIMEOUT_MS must be less than VELRO_REQUEST_TIMEOUT_MS");
        }
        // A small tolerance for clock skew, not a way to keep expired tokens alive.
        if self.jwt_leeway_secs > 300 {
            bail!("invalid configuration: VELRO_JWT_LEEWAY_SECS must be at most 300");
        }
        self.validate_abuse_settings()?;
        self.validate_supabase_settings()?;
        self.validate_purge_settings()?;
        if !(velro_core::domain::LOWEST_MIN_CHARS..=128).contains(&self.password_min_length) {
            bail!(
                "invalid configuration: VELRO_PASSWORD_MIN_LENGTH must be between {} and 128",
                velro_core::domain::LOWEST_MIN_CHARS
            );
        }
        if self.jwt_issuer.trim().is_empty() {
            bail!("invalid configuration: VELRO_JWT_ISSUER must not be empty");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .context("invalid configuration: VELRO_LOG_LEVEL is not a valid filter")?;
        Ok(())
    }

    fn validate_purge_settings(&self) -> anyhow::Result<()> {
        if !(1..=MAX_PURGE_BATCH_SIZE).contains(&self.purge_batch_size) {
            bail!("invalid configuration: VELRO_PURGE_BATCH_SIZE must be between 1 and {MAX_PURGE_BATCH_SIZE}");
        }
        if self.purge_retention_secs > MAX_PURGE_RETENTION_SECS {
            bail!("invalid configuration: VELRO_PURGE_RETENTION_SECS must be at most {MAX_PURGE_RETENTION_SECS} (10 years)");
        }
        // An expired session's row must outlive its last access token: that token is accepted
        // while the row is there and refused as `session_revoked` once it is gone.
        let access = self
            .access_token_ttl_secs
            .saturating_add(self.jwt_leeway_secs);
        if self.purge_retention_secs < access {
            bail!("invalid configuration: VELRO_PURGE_RETENTION_SECS must be at least VELRO_ACCESS_TOKEN_TTL_SECS + VELRO_JWT_LEEWAY_SECS ({access})");
        }
        Ok(())
    }

    /// The purge as the service runs it; `None` for the interval when it is off.
    pub fn purge_settings(&self) -> (PurgeSettings, Option<std::time::Duration>) {
        let settings = PurgeSettings {
            retention: time::Duration::seconds(
                i64::try_from(self.purge_retention_secs).unwrap_or(i64::MAX),
            ),
            batch_size: self.purge_batch_size,
        };
        let interval = (self.purge_interval_secs > 0)
            .then(|| std::time::Duration::from_secs(self.purge_interval_secs));
        (settings, interval)
    }

    fn validate_abuse_settings(&self) -> anyhow::Result<()> {
        let positive = [
            ("VELRO_RATE_LIMIT_SCALE", u64::from(self.rate_limit_scale)),
            (
                "VELRO_LOGIN_BACKOFF_AFTER",
                u64::from(self.login_backoff_after),
            ),
            ("VELRO_LOGIN_BACKOFF_MAX_SECS", self.login_backoff_max_secs),
            (
                "VELRO_LOGIN_ACCOUNT_SLOW_AFTER",
                u64::from(self.login_account_slow_after),
            ),
            (
                "VELRO_LOGIN_ACCOUNT_SLOWER_AFTER",
                u64::from(self.login_account_slower_after),
            ),
            (
                "VELRO_LOGIN_FAILURE_WINDOW_SECS",
                self.login_failure_window_secs,
            ),
            ("VELRO_LOGIN_KNOWN_IP_DAYS", self.login_known_ip_days),
            ("VELRO_MAX_HEADER_BYTES", self.max_header_bytes as u64),
        ];
        for (name, value) in positive {
            if value == 0 {
                bail!("invalid configuration: {name} must be greater than zero");
            }
        }
        if self.login_account_slower_after < self.login_account_slow_after {
            bail!("invalid configuration: VELRO_LOGIN_ACCOUNT_SLOWER_AFTER must be at least VELRO_LOGIN_ACCOUNT_SLOW_AFTER");
        }
        TrustedProxies::parse(&self.trusted_proxies).map_err(|why| {
            anyhow::anyhow!("invalid configuration: VELRO_TRUSTED_PROXIES: {why}")
        })?;
        for origin in &self.cors_allowed_origins {
            if origin == "*" {
                if self.cors_allow_credentials {
                    bail!("invalid configuration: VELRO_CORS_ALLOWED_ORIGINS may not be * when VELRO_CORS_ALLOW_CREDENTIALS is true");
                }
                continue;
            }
            // `https:///app.example.com` parses as that host but never equals an Origin header.
            let written_host = origin.split_once("://").is_some_and(|(_, host)| {
                !host.is_empty() && !host.starts_with('/') && !host.contains('\\')
            });
            let parsed = url::Url::parse(origin).ok().filter(|url| {
                written_host
                    && matches!(url.scheme(), "http" | "https")
                    && url.host().is_some()
                    && url.path() == "/"
                    && !origin.ends_with('/')
                    && url.query().is_none()
                    && url.username().is_empty()
            });
            if parsed.is_none() {
                bail!("invalid configuration: VELRO_CORS_ALLOWED_ORIGINS: {origin:?} is not an origin like https://app.example.com");
            }
        }
        Ok(())
    }

    /// The rate limits as the services apply them.
    pub fn limit_settings(&self) -> LimitSettings {
        if self.rate_limits == Switch::Off {
            // `RATE_LIMIT_EMAIL_SENT=0` still stops every mail.
            let mut off = LimitSettings::off();
            off.set_email_rate(self.rate_limit_email_sent);
            return off;
        }
        let mut settings = LimitSettings::default();
        let quotas = [
            (Policy::LoginIp, self.rate_limit_login_ip),
            (Policy::LoginAccount, self.rate_limit_login_account),
            (Policy::LoginAccountSlow, self.rate_limit_login_account_slow),
            (
                Policy::LoginAccountSlower,
                self.rate_limit_login_account_slower,
            ),
            (Policy::RegisterIp, self.rate_limit_register_ip),
            (Policy::RegisterAccount, self.rate_limit_register_account),
            (Policy::RefreshIp, self.rate_limit_refresh_ip),
            (Policy::PasswordResetIp, self.rate_limit_password_reset_ip),
            (
                Policy::PasswordResetAccount,
                self.rate_limit_password_reset_account,
            ),
            (Policy::ChangePasswordIp, self.rate_limit_change_password_ip),
            (
                Policy::ChangePasswordAccount,
                self.rate_limit_change_password_account,
            ),
        ];
        for (policy, quota) in quotas {
            settings.set(policy, quota);
        }
        settings.set_email_rate(self.rate_limit_email_sent);
        settings.login = LoginProtection {
            backoff_after: self.login_backoff_after,
            max_backoff: std::time::Duration::from_secs(self.login_backoff_max_secs),
            slow_after: self.login_account_slow_after,
            slower_after: self.login_account_slower_after,
            failure_window: std::time::Duration::from_secs(self.login_failure_window_secs),
            known_ip_ttl: std::time::Duration::from_secs(
                self.login_known_ip_days.saturating_mul(86_400),
            ),
        };
        settings.scaled(self.rate_limit_scale)
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.mail_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("mail"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settings_are_read_from_the_struct_and_named_as_the_environment_names_them() {
        let keys = setting_keys();
        assert!(keys.len() > 50, "{keys:?}");
        assert_eq!(keys.first(), Some(&"bind"));
        let help = settings_help();
        for key in keys {
            assert!(help.contains(&env_name(key)), "{key} missing from the help");
        }
        assert!(help.contains("DATABASE_URL,") && !help.contains("VELRO_DATABASE_URL"));
        assert!(help.contains("VELRO_RATE_LIMIT_CHANGE_PASSWORD_ACCOUNT"));
        assert!(help.lines().all(|line| line.len() <= 100), "{help}");
    }

    fn layered(vars: &[(&str, &str)]) -> (Config, Vec<&'static str>) {
        let var = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| value.to_string())
        };
        let (figment, used) = environment_layers(Figment::new(), var);
        (figment.extract().expect("valid settings"), used)
    }

    #[test]
    fn gotrue_variables_fill_in_only_for_unset_velro_ones() {
        let (config, used) = layered(&[
            ("GOTRUE_SITE_URL", "https://app.example.com"),
            ("GOTRUE_JWT_EXP", "600"),
            ("GOTRUE_MAILER_AUTOCONFIRM", "true"),
            ("GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED", "false"),
            (
                "GOTRUE_URI_ALLOW_LIST",
                "https://a.example.com/**,https://b.example.com",
            ),
            ("GOTRUE_DISABLE_SIGNUP", "true"),
            ("VELRO_DISABLE_SIGNUP", "false"),
            ("GOTRUE_PASSWORD_MIN_LENGTH", "6"),
            ("GOTRUE_PASSWORD_REQUIRED_CHARACTERS", "abc:ABC"),
            ("VELRO_PASSWORD_REQUIRED_CHARACTERS", "0123456789"),
            ("GOTRUE_JWT_SECRET", "0123456789012345678901234567890123"),
            ("GOTRUE_JWT_KEYS", r#"[{"kty":"oct","k":"x"}]"#),
            ("GOTRUE_UNRELATED", "x"),
        ]);
        assert_eq!(config.site_url, "https://app.example.com");
        assert_eq!(config.access_token_ttl_secs, 600);
        assert_eq!(
            config.uri_allow_list,
            ["https://a.example.com/**", "https://b.example.com"]
        );
        assert_eq!(config.password_min_length, 6);
        assert!(!config.mailer_secure_email_change_enabled);
        assert!(Config::default().mailer_secure_email_change_enabled);
        // VELRO_DISABLE_SIGNUP is set: its GoTrue twin is not read (the VELRO_ value itself
        // comes from figment's environment provider, not from these layers).
        assert!(!config.disable_signup);
        assert_eq!(config.password_required_characters, "0123456789");
        assert_eq!(
            config.jwt_secret.as_ref().map(|s| s.expose().as_str()),
            Some("0123456789012345678901234567890123"),
            "kept as text, not read as a number"
        );
        assert_eq!(
            config.jwt_keys.as_ref().map(|s| s.expose().as_str()),
            Some(r#"[{"kty":"oct","k":"x"}]"#)
        );
        assert_eq!(
            used,
            [
                "GOTRUE_SITE_URL",
                "GOTRUE_URI_ALLOW_LIST",
                "GOTRUE_MAILER_AUTOCONFIRM",
                "GOTRUE_MAILER_SECURE_EMAIL_CHANGE_ENABLED",
                "GOTRUE_PASSWORD_MIN_LENGTH",
                "GOTRUE_JWT_KEYS",
                "GOTRUE_JWT_SECRET",
                "GOTRUE_JWT_EXP",
            ]
        );
        for (gotrue, key) in GOTRUE_FALLBACKS {
            assert!(setting_keys().contains(&key), "{gotrue} names no setting");
        }
        let (config, used) = layered(&[]);
        assert!(used.is_empty());
        assert_eq!(config.password_min_length, 8);
    }

    #[test]
    fn gotrues_mail_limits_are_read_in_gotrues_formats() {
        let hour = std::time::Duration::from_secs(3_600);
        let (config, used) = layered(&[
            ("GOTRUE_RATE_LIMIT_EMAIL_SENT", "10/1m"),
            ("GOTRUE_SMTP_MAX_FREQUENCY", "1m30s"),
        ]);
        assert_eq!(
            used,
            ["GOTRUE_RATE_LIMIT_EMAIL_SENT", "GOTRUE_SMTP_MAX_FREQUENCY"]
        );
        let burst = Quota {
            max: 10,
            period: std::time::Duration::from_secs(600),
        };
        assert_eq!(config.rate_limit_email_sent, EmailRate::Every(burst));
        assert_eq!(config.limit_settings().quota(Policy::MailSent), burst);
        assert_eq!(
            config
                .supabase_settings()
                .expect("valid")
                .smtp_max_frequency,
            time::Duration::seconds(90)
        );
        // A bare number, as figment reads it from the environment: mails an hour; seconds.
        let (config, _) = layered(&[
            ("GOTRUE_RATE_LIMIT_EMAIL_SENT", "30"),
            ("GOTRUE_SMTP_MAX_FREQUENCY", "0"),
        ]);
        assert_eq!(
            config.rate_limit_email_sent,
            EmailRate::Every(Quota {
                max: 30,
                period: hour
            })
        );
        assert_eq!(
            config
                .supabase_settings()
                .expect("valid")
                .smtp_max_frequency,
            time::Duration::seconds(60),
            "zero is GoTrue's default"
        );
        let (config, _) = layered(&[]);
        assert_eq!(config.rate_limit_email_sent, EmailRate::default());
        assert_eq!(
            config.limit_settings().quota(Policy::MailSent),
            Quota {
                max: 30,
                period: hour
            }
        );
    }

    #[test]
    fn the_readme_documents_every_setting() {
        let readme = include_str!("../../../README.md");
        for key in setting_keys() {
            assert!(
                readme.contains(&env_name(key)),
                "the README lacks {}",
                env_name(key)
            );
        }
    }
}
