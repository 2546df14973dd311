//! `velro`: the Velro auth service. Parses the command line, loads configuration, starts
//! logging, and dispatches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use velro::config::{Config, Overrides};
use velro::database::Database;
use velro::keys::KeysCommand;
use velro::startup::{shutdown_signal, Application};
use velro::telemetry;

/// Velro's authentication service. Settings come from an optional TOML file, then VELRO_*
/// environment variables and DATABASE_URL, then these flags; the README lists them all.
const SETTINGS_HELP: &str = "\
Settings (environment; TOML keys are the same names, lowercase, without VELRO_):
  VELRO_BIND, VELRO_DATA_DIR, DATABASE_URL, VELRO_DATABASE_MAX_CONNECTIONS,
  VELRO_DATABASE_ACQUIRE_TIMEOUT_MS, VELRO_DATABASE_STATEMENT_TIMEOUT_MS, VELRO_MIGRATE_ON_START,
  VELRO_JWT_SECRET, VELRO_JWT_ALGORITHM (HS256|EdDSA), VELRO_JWT_ISSUER, VELRO_JWT_LEEWAY_SECS,
  VELRO_ACCESS_TOKEN_TTL_SECS, VELRO_REFRESH_TOKEN_TTL_SECS, VELRO_REMEMBER_ME_REFRESH_TOKEN_TTL_SECS,
  VELRO_REFRESH_REUSE_GRACE_SECS, VELRO_RESET_TOKEN_TTL_SECS, VELRO_INITIAL_CREDITS,
  VELRO_SERVICE_KEY, VELRO_LOG_FORMAT (human|json), VELRO_LOG_LEVEL, VELRO_SMTP_URL,
  VELRO_MAIL_FROM, VELRO_MAIL_DIR, VELRO_ARGON2_MEMORY_KIB, VELRO_ARGON2_ITERATIONS,
  VELRO_ARGON2_PARALLELISM, VELRO_HASH_THREADS, VELRO_HASH_QUEUE, VELRO_HASH_MAX_WAIT_MS,
  VELRO_HASH_NICENESS, VELRO_REQUEST_TIMEOUT_MS, VELRO_SHUTDOWN_GRACE_SECS,
  VELRO_HEADER_READ_TIMEOUT_MS, VELRO_CACHE (on|off), VELRO_CACHE_L1_TTL_MS,
  VELRO_CACHE_L1_CAPACITY, REDIS_URL, VELRO_CACHE_L2_TTL_SECS, VELRO_REDIS_TIMEOUT_MS, VELRO_CACHE_NAMESPACE,
  VELRO_RATE_LIMITS (on|off), VELRO_RATE_LIMIT_SCALE, VELRO_RATE_LIMIT_<POLICY> (e.g. 30/1m; policies
  LOGIN_IP, LOGIN_ACCOUNT, LOGIN_ACCOUNT_SLOW, LOGIN_ACCOUNT_SLOWER, REGISTER_IP, REGISTER_ACCOUNT,
  REFRESH_IP, PASSWORD_RESET_IP, PASSWORD_RESET_ACCOUNT, CHANGE_PASSWORD_IP, CHANGE_PASSWORD_ACCOUNT),
  VELRO_LOGIN_BACKOFF_AFTER, VELRO_LOGIN_BACKOFF_MAX_SECS, VELRO_LOGIN_ACCOUNT_SLOW_AFTER,
  VELRO_LOGIN_ACCOUNT_SLOWER_AFTER, VELRO_LOGIN_FAILURE_WINDOW_SECS, VELRO_LOGIN_KNOWN_IP_DAYS,
  VELRO_TRUSTED_PROXIES, VELRO_CORS_ALLOWED_ORIGINS, VELRO_CORS_ALLOW_CREDENTIALS, VELRO_MAX_HEADER_BYTES.
The README describes each one with its default.";

#[derive(Parser)]
#[command(name = "velro", version, about, after_help = SETTINGS_HELP)]
struct Cli {
    /// A TOML file of settings (keys as in the README, lowercase, without VELRO_).
    #[arg(long, global = true, env = "VELRO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default). Migrates the database first unless
    /// VELRO_MIGRATE_ON_START=false.
    #[command(after_help = SETTINGS_HELP)]
    Serve {
        /// Address to listen on [env: VELRO_BIND] [default: 127.0.0.1:8000]
        #[arg(long)]
        bind: Option<SocketAddr>,
        /// Folder for the SQLite database, the generated JWT secret and development mail
        /// [env: VELRO_DATA_DIR] [default: ./velro-data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Apply pending database migrations and exit.
    Migrate {
        /// Folder of the SQLite database [env: VELRO_DATA_DIR] [default: ./velro-data]
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Manage the access-token signing keys in <data dir>/jwt-keys.json (list, rotate, add,
    /// activate, prune). Running instances pick up changes on restart.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
        /// Folder of the key file [env: VELRO_DATA_DIR] [default: ./velro-data]
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut keys = None;
    let (command, overrides) = match cli.command.unwrap_or(Command::Serve {
        bind: None,
        data_dir: None,
    }) {
        Command::Serve { bind, data_dir } => ("serve", Overrides { bind, data_dir }),
        Command::Migrate { data_dir } => (
            "migrate",
            Overrides {
                bind: None,
                data_dir,
            },
        ),
        Command::Keys { command, data_dir } => {
            keys = Some(command);
            (
                "keys",
                Overrides {
                    bind: None,
                    data_dir,
                },
            )
        }
    };
    let config = match Config::load(cli.config.as_deref(), overrides) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log_level);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: could not start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match command {
            "migrate" => migrate(&config).await,
            "keys" => keys
                .as_ref()
                .map_or(Ok(()), |keys| velro::keys::run(&config, keys)),
            _ => serve(&config).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: &Config) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let app = Application::build(config).await?;
    app.run_until_stopped(shutdown).await
}

async fn migrate(config: &Config) -> anyhow::Result<()> {
    let database = Database::open(config).await?;
    database.migrate().await?;
    database.close().await;
    tracing::info!("migrations applied");
    Ok(())
}
