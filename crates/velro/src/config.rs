//! Settings: defaults, then an optional TOML file, then environment variables (`VELRO_*` and
//! `DATABASE_URL`), then command-line flags. Every setting is documented in the README.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use figment::providers::{Env, Format, Toml};
use figment::Figment;
use serde::Deserialize;
use velro_core::Secret;

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
    /// At least 32 bytes; default: generated once into `<data_dir>/jwt-secret`.
    pub jwt_secret: Option<Secret<String>>,
    pub jwt_issuer: String,
    pub jwt_leeway_secs: u64,
    pub access_token_ttl_secs: u64,
    pub refresh_token_ttl_secs: u64,
    pub remember_me_refresh_token_ttl_secs: u64,
    pub refresh_reuse_grace_secs: u64,
    pub reset_token_ttl_secs: u64,
    pub initial_credits: i64,
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
    pub request_timeout_ms: u64,
    pub shutdown_grace_secs: u64,
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
            jwt_issuer: "velro".into(),
            jwt_leeway_secs: 5,
            access_token_ttl_secs: 3_600,
            refresh_token_ttl_secs: 7 * 24 * 3_600,
            remember_me_refresh_token_ttl_secs: 30 * 24 * 3_600,
            refresh_reuse_grace_secs: 10,
            reset_token_ttl_secs: 3_600,
            initial_credits: 1_000,
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
            request_timeout_ms: 5_000,
            shutdown_grace_secs: 10,
            cache: Switch::On,
            cache_l1_ttl_ms: 10_000,
            cache_l1_capacity: 100_000,
            redis_url: None,
            cache_l2_ttl_secs: 60,
            redis_timeout_ms: 50,
            cache_namespace: "velro".into(),
        }
    }
}

/// Flags that override the file and the environment.
#[derive(Debug, Default)]
pub struct Overrides {
    pub bind: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
}

/// One line naming the setting as an operator would set it, and where the bad value came from.
fn describe(error: figment::Error) -> anyhow::Error {
    let key = error.path.join(".");
    let setting = match key.as_str() {
        "" => String::from("a setting"),
        "database_url" => format!("DATABASE_URL / VELRO_DATABASE_URL ({key})"),
        "redis_url" => format!("REDIS_URL / VELRO_REDIS_URL ({key})"),
        _ => format!("VELRO_{} ({key})", key.to_uppercase()),
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
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.is_file() {
                bail!("configuration file {} does not exist", file.display());
            }
            figment = figment.merge(Toml::file(file));
        }
        figment = figment
            .merge(Env::raw().only(&["DATABASE_URL", "REDIS_URL"]))
            .merge(
                // VELRO_CONFIG names the file; VELRO_TEST_* belong to the test suite.
                Env::prefixed("VELRO_")
                    .filter(|key| key.as_str() != "config" && !key.as_str().starts_with("test_")),
            );
        if let Some(bind) = overrides.bind {
            figment = figment.merge(("bind", bind));
        }
        if let Some(data_dir) = overrides.data_dir {
            figment = figment.merge(("data_dir", data_dir));
        }
        let config: Self = figment.extract().map_err(describe)?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> anyhow::Result<()> {
        let positive = [
            ("VELRO_ACCESS_TOKEN_TTL_SECS", self.access_token_ttl_secs),
            ("VELRO_REFRESH_TOKEN_TTL_SECS", self.refresh_token_ttl_secs),
            ("VELRO_REMEMBER_ME_REFRESH_TOKEN_TTL_SECS", self.remember_me_refresh_token_ttl_secs),
            ("VELRO_RESET_TOKEN_TTL_SECS", self.reset_token_ttl_secs),
            ("VELRO_DATABASE_MAX_CONNECTIONS", u64::from(self.database_max_connections)),
            ("VELRO_DATABASE_ACQUIRE_TIMEOUT_MS", self.database_acquire_timeout_ms),
            ("VELRO_DATABASE_STATEMENT_TIMEOUT_MS", self.database_statement_timeout_ms),
            ("VELRO_REQUEST_TIMEOUT_MS", self.request_timeout_ms),
            ("VELRO_HASH_QUEUE", self.hash_queue as u64),
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
        if self.redis_timeout_ms >= self.request_timeout_ms {
            bail!("invalid configuration: VELRO_REDIS_TIMEOUT_MS must be less than VELRO_REQUEST_TIMEOUT_MS");
        }
        if self.database_statement_timeout_ms >= self.request_timeout_ms {
            bail!("invalid configuration: VELRO_DATABASE_STATEMENT_TIMEOUT_MS must be less than VELRO_REQUEST_TIMEOUT_MS");
        }
        if self.jwt_issuer.trim().is_empty() {
            bail!("invalid configuration: VELRO_JWT_ISSUER must not be empty");
        }
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .context("invalid configuration: VELRO_LOG_LEVEL is not a valid filter")?;
        Ok(())
    }

    pub fn mail_dir(&self) -> PathBuf {
        self.mail_dir.clone().unwrap_or_else(|| self.data_dir.join("mail"))
    }
}
