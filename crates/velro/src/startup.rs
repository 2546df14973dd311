//! Builds everything expensive once (store, hasher, keys, mailer, services) and runs the server
//! until a shutdown signal, then drains within a bound and closes the pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use velro_cache::{Cache, CacheConfig, CachedStore};
use velro_core::cache::CacheControl;
use velro_core::domain::PasswordRules;
use velro_core::hashing::{HashingConfig, PasswordHasher};
use velro_core::limits::{Limits, Policy, Unlimited};
use velro_core::mail::Mailer;
use velro_core::service::{
    AdminService, AuthService, AuthSettings, ConsoleService, Dependencies, PurgeService,
    StatusService, StatusSettings, SupabaseAdmin, SupabaseAuth,
};
use velro_core::store::RefreshPolicy;
use velro_core::store::Store;
use velro_core::tokens::{AccessTokenConfig, AccessTokens, RefreshTokens, ServiceKey};
use velro_core::{Clock, SystemClock};
use velro_http::{AppState, AppStateFields, HttpSettings, Monitor, TrustedProxies};

use crate::config::{Config, Switch};
use crate::database::Database;
use crate::keys;
use crate::mailer::{FileMailer, SmtpMailer};
use crate::serve::{serve, ConnectionSettings, Drain};

pub struct Application {
    listener: TcpListener,
    router: axum::Router,
    /// The dashboard's sampler and the flag sync; stopped with the server.
    background: Vec<tokio::task::JoinHandle<()>>,
    database: Database,
    cache: Arc<CachedStore>,
    connections: ConnectionSettings,
    /// The periodic purge and its interval; `None` when it is off.
    purge: Option<(PurgeService, Duration)>,
    /// Records the status page's samples once a minute; stopped before the pool closes.
    sampler: tokio::task::JoinHandle<()>,
}

/// How often each instance records its judgement of every component (the history's unit).
const SAMPLE_EVERY: Duration = Duration::from_secs(60);

fn spawn_sampler(status: StatusService) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            status.sample().await;
        }
    })
}

/// The listening socket, with its accept queue sized by `VELRO_LISTEN_BACKLOG` (the kernel
/// clamps it to `net.core.somaxconn`). `TcpListener::bind` would fix it at 1024: a burst of
/// thousands of new connections then overflows the queue, and the kernel drops the extra
/// handshakes, which clients see as a 1-s (then 3-s) SYN retransmission instead of a refusal.
fn listen(address: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    // As std's bind does on Unix: a restarted server can listen while old connections linger.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(address)?;
    socket.listen(backlog)
}

fn seconds(secs: u64) -> time::Duration {
    time::Duration::seconds(i64::try_from(secs).unwrap_or(i64::MAX))
}

impl Application {
    pub async fn build(config: &Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock tests move by hand.
    pub async fn build_with_clock(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        crate::telemetry_metrics::install();
        let database = Database::open(config).await?;
        if config.migrate_on_start {
            database.migrate().await?;
        }
        let cache = velro_cache::build(database.store(), cache_config(config)).await;
        let (purge_settings, purge_interval) = config.purge_settings();
        let purge = PurgeService::new(cache.store.clone(), clock.clone(), purge_settings);
        let state = build_state(config, &database, &cache, clock)?;
        let background = spawn_console_tasks(&state);
        let listener = listen(config.bind, config.listen_backlog)
            .with_context(|| format!("could not listen on {} (VELRO_BIND)", config.bind))?;
        let sampler = spawn_sampler(state.status.clone());
        Ok(Self {
            sampler,
            listener,
            router: velro_http::router(state),
            background,
            database,
            cache: cache.store,
            connections: ConnectionSettings {
                header_read_timeout: Duration::from_millis(config.header_read_timeout_ms),
                shutdown_grace: Duration::from_secs(config.shutdown_grace_secs),
            },
            purge: purge_interval.map(|interval| (purge, interval)),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves; then stops accepting, gives in-flight requests up to
    /// the grace period, and closes the pool.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let address = self.local_addr()?;
        tracing::info!(%address, "listening");
        // The purge stops as soon as shutdown begins, before the drain: it is never what a
        // stopping instance waits for.
        let (stop_purge, purge_stopped) = tokio::sync::oneshot::channel::<()>();
        let purge = self.purge.map(|(service, interval)| {
            tracing::info!(
                interval_secs = interval.as_secs(),
                retention_secs = service.settings().retention.whole_seconds(),
                "periodic purge on"
            );
            tokio::spawn(service.run_periodically(interval, async move {
                let _ = purge_stopped.await;
            }))
        });
        let shutdown = async move {
            shutdown.await;
            drop(stop_purge);
        };
        let drain = serve(self.listener, self.router, self.connections, shutdown).await;
        if drain == Drain::GraceExpired {
            tracing::warn!(
                grace_secs = self.connections.shutdown_grace.as_secs(),
                "in-flight requests did not finish in time; stopping anyway"
            );
        }
        self.sampler.abort();
        for task in &self.background {
            task.abort();
        }
        if let Some(purge) = purge {
            if let Err(error) = purge.await {
                tracing::warn!(error = %error, "the purge task ended abnormally");
            }
        }
        self.cache.shutdown().await;
        self.database.close().await;
        tracing::info!("stopped");
        Ok(())
    }
}

/// How often an instance reads the newest flag changes: instances agree within this (plus one
/// query), whether or not they share Redis.
const FLAG_SYNC_EVERY: Duration = Duration::from_millis(500);

/// The bound of the `pg_stat_activity` read each dashboard sample makes.
const SERVER_CONNECTIONS_TIMEOUT: Duration = Duration::from_millis(250);

/// Every few seconds, a dashboard sample of this instance; twice a second, the flags as
/// recorded in the database. Each pass is bounded, so a slow database delays the next one but
/// never piles them up.
fn spawn_console_tasks(state: &AppState) -> Vec<tokio::task::JoinHandle<()>> {
    let monitor = state.monitor.clone();
    let metrics = state.metrics.clone();
    let admin = state.admin.clone();
    let sampler = tokio::spawn(async move {
        let mut every = tokio::time::interval(velro_http::SAMPLE_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        every.tick().await;
        loop {
            every.tick().await;
            // Bounded well below the sample period: a struggling server is not asked twice.
            if let Ok(Ok(states)) =
                tokio::time::timeout(SERVER_CONNECTIONS_TIMEOUT, admin.server_connections()).await
            {
                for (state, count) in states {
                    metrics::gauge!("velro_db_server_connections", "state" => state)
                        .set(count as f64);
                }
            }
            let metrics = metrics.clone();
            // Rendering the exposition reads the pool's numbers; cheap, but not async.
            let Ok(exposition) = tokio::task::spawn_blocking(move || metrics()).await else {
                continue;
            };
            monitor.sample(&exposition, time::OffsetDateTime::now_utc());
        }
    });
    let admin = state.admin.clone();
    let flags = tokio::spawn(async move {
        let mut every = tokio::time::interval(FLAG_SYNC_EVERY);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            match tokio::time::timeout(FLAG_SYNC_EVERY, admin.sync_flags()).await {
                Ok(Ok(())) => {}
                Ok(Err(error)) => tracing::debug!(error = %error, "flag sync skipped"),
                Err(_) => tracing::debug!("flag sync timed out"),
            }
        }
    });
    vec![sampler, flags]
}

fn cache_config(config: &Config) -> CacheConfig {
    CacheConfig {
        enabled: config.cache == Switch::On,
        l1_ttl: Duration::from_millis(config.cache_l1_ttl_ms),
        l1_capacity: config.cache_l1_capacity,
        redis_url: config.redis_url.as_ref().map(|url| url.expose().clone()),
        l2_ttl: Duration::from_secs(config.cache_l2_ttl_secs),
        redis_timeout: Duration::from_millis(config.redis_timeout_ms),
        namespace: config.cache_namespace.clone(),
        ..CacheConfig::default()
    }
}

fn build_state(
    config: &Config,
    database: &Database,
    cache: &Cache,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<AppState> {
    let signing = keys::load_or_create(config)?;
    let access_tokens = AccessTokens::new(&AccessTokenConfig {
        keys: signing.keys,
        issuer: config.jwt_issuer.clone(),
        lifetime: seconds(config.access_token_ttl_secs),
        leeway: seconds(config.jwt_leeway_secs),
    });
    tracing::info!(
        algorithm = %access_tokens.algorithm(),
        kid = access_tokens.signing_kid(),
        "access-token keys loaded (read at start-up only: restart to pick up rotated keys)"
    );
    let refresh_tokens = RefreshTokens::new(&signing.successor_secret);
    let service_key = match &config.service_key {
        Some(raw) => Some(
            ServiceKey::parse(raw)
                .map_err(|why| anyhow::anyhow!("invalid configuration: VELRO_SERVICE_KEY {why}"))?,
        ),
        None => {
            tracing::warn!("no VELRO_SERVICE_KEY configured: the admin API is off");
            None
        }
    };
    let mut hashing = HashingConfig {
        memory_kib: config.argon2_memory_kib,
        iterations: config.argon2_iterations,
        parallelism: config.argon2_parallelism,
        queue_capacity: config.hash_queue,
        max_wait: Duration::from_millis(config.hash_max_wait_ms),
        worker_niceness: config.hash_niceness,
        ..HashingConfig::default()
    };
    if let Some(threads) = config.hash_threads {
        hashing.threads = threads;
    }
    let hasher = PasswordHasher::start(&hashing).map_err(|why| {
        anyhow::anyhow!("invalid configuration: VELRO_ARGON2_*/VELRO_HASH_* {why}")
    })?;
    tracing::info!(
        memory_kib = hashing.memory_kib,
        iterations = hashing.iterations,
        parallelism = hashing.parallelism,
        threads = hashing.threads,
        queue = hashing.queue_capacity,
        "password hashing pool started"
    );
    let mailer: Arc<dyn Mailer> = match &config.smtp_url {
        Some(url) => {
            tracing::info!("mail goes out over SMTP");
            Arc::new(SmtpMailer::new(url.expose(), &config.mail_from)?)
        }
        None => {
            let dir = config.mail_dir();
            tracing::info!(dir = %dir.display(), "no VELRO_SMTP_URL: the development mailer writes messages to files");
            Arc::new(FileMailer::new(dir))
        }
    };
    // Every service reads through the cache; only start-up, migrations and pool metrics see
    // the database directly.
    let limits = rate_limits(config, cache);
    let store: Arc<dyn Store> = cache.store.clone();
    let cache: Arc<dyn CacheControl> = cache.control.clone();
    let request_timeout = Duration::from_millis(config.request_timeout_ms);
    let readiness_timeout = request_timeout.min(Duration::from_millis(400));
    let status = StatusService::new(
        store.clone(),
        clock.clone(),
        cache.clone(),
        StatusSettings {
            check_timeout: readiness_timeout,
            slow_database: readiness_timeout / 2,
            ..StatusSettings::default()
        },
    );
    let mailer = status.observe_mailer(mailer);
    let metrics = crate::telemetry_metrics::renderer(database.clone(), hasher.clone());
    let auth = AuthService::new(Dependencies {
        store: store.clone(),
        hasher,
        access_tokens,
        refresh_tokens,
        mailer,
        clock: clock.clone(),
        settings: AuthSettings {
            refresh: RefreshPolicy {
                lifetime: seconds(config.refresh_token_ttl_secs),
                remember_me_lifetime: seconds(config.remember_me_refresh_token_ttl_secs),
                reuse_grace: seconds(config.refresh_reuse_grace_secs),
            },
            reset_token_lifetime: seconds(config.reset_token_ttl_secs),
            initial_credits: config.initial_credits,
            password: PasswordRules {
                min_chars: config.password_min_length,
                required_characters: PasswordRules::parse_required_characters(
                    &config.password_required_characters,
                ),
            },
        },
        limits,
    });
    let admin = AdminService::new(
        store.clone(),
        clock.clone(),
        auth.clone(),
        service_key,
        cache.clone(),
    );
    let console = ConsoleService::new(
        store,
        clock,
        auth.clone(),
        admin.clone(),
        seconds(config.console_idle_timeout_secs),
    );
    let supabase = SupabaseAuth::new(auth.clone(), config.supabase_settings()?);
    let supabase_admin = SupabaseAdmin::new(supabase.clone(), admin.clone());
    Ok(AppState::new(AppStateFields {
        auth,
        admin,
        console,
        monitor: Arc::new(Monitor::default()),
        supabase,
        supabase_admin,
        status,
        cache,
        metrics,
        settings: HttpSettings {
            request_timeout,
            readiness_timeout,
            max_header_bytes: config.max_header_bytes,
            trusted_proxies: TrustedProxies::parse(&config.trusted_proxies).map_err(|why| {
                anyhow::anyhow!("invalid configuration: VELRO_TRUSTED_PROXIES: {why}")
            })?,
            cors_allowed_origins: config.cors_allowed_origins.clone(),
            cors_allow_credentials: config.cors_allow_credentials,
            supabase_at_root: config.supabase_at_root,
            supabase_api_keys: match config.supabase_api_keys {
                crate::config::ApiKeysSetting::Off => velro_http::SupabaseApiKeys::Off,
                crate::config::ApiKeysSetting::Required => velro_http::SupabaseApiKeys::Required,
            },
            ..HttpSettings::default()
        },
    }))
}

/// The limits, shared through Redis when the cache has it. Anything short of the production
/// defaults is said loudly: a load-test setting left in production is an open door.
fn rate_limits(config: &Config, cache: &Cache) -> Limits {
    let settings = config.limit_settings();
    if !settings.enabled {
        tracing::warn!("VELRO_RATE_LIMITS=off: RATE LIMITS AND BRUTE-FORCE PROTECTION ARE OFF (load tests only)");
        // Nothing counted; `RATE_LIMIT_EMAIL_SENT=0` still stops every mail.
        return Limits::new(Arc::new(Unlimited), settings);
    }
    if config.rate_limit_scale > 1 {
        tracing::warn!(
            scale = config.rate_limit_scale,
            "VELRO_RATE_LIMIT_SCALE raises every rate limit and failed-login threshold (load tests only)"
        );
    }
    let shared = config.redis_url.is_some();
    tracing::info!(
        shared,
        login_ip = %settings.quota(Policy::LoginIp),
        backoff_after = settings.login.backoff_after,
        "rate limits on{}",
        if shared { " (shared through Redis)" } else { " (this instance only)" }
    );
    if config.trusted_proxies.is_empty() {
        tracing::info!("no VELRO_TRUSTED_PROXIES: the client address is the socket's peer");
    }
    Limits::new(cache.rate_limiter(&settings), settings)
}

/// Installs the SIGTERM and SIGINT handlers now (a signal that arrives before the server is
/// ready must not kill it ungracefully) and returns a future that resolves on either.
pub fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut terminate = signal(SignalKind::terminate()).context("could not handle SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("could not handle SIGINT")?;
        Ok(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}
