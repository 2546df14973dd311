//! `velro`: the Velro auth service. Parses the command line, loads configuration, starts
//! logging, and dispatches.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use velro::config::{settings_help, Config, Overrides};
use velro::database::Database;
use velro::import::ImportCommand;
use velro::keys::KeysCommand;
use velro::startup::{shutdown_signal, Application};
use velro::status::StatusCommand;
use velro::telemetry;

/// Velro's authentication service. Settings come from an optional TOML file, then VELRO_*
/// environment variables and DATABASE_URL, then these flags; the README lists them all.
#[derive(Parser)]
#[command(name = "velro", version, about, after_help = settings_help())]
struct Cli {
    /// A TOML file of settings (keys as in the README, lowercase, without VELRO_).
    #[arg(long, global = true, env = "VELRO_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<TopCommand>,
}

#[derive(Subcommand)]
enum TopCommand {
    #[command(flatten)]
    Local(Command),
    /// Administer a running instance over its HTTP admin API: users and flags.
    Admin(velro::admin::AdminArgs),
}

/// The commands that work on this machine's configuration and data.
#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (the default). Migrates the database first unless
    /// VELRO_MIGRATE_ON_START=false.
    #[command(after_help = settings_help())]
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
    /// Remove, once, the rows past their retention (ended sessions with their refresh tokens,
    /// used or expired reset tokens) and print how many of each; `serve` does this periodically.
    Purge {
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
    /// The public status page as static files (export), to publish on another host on a
    /// schedule; see the README.
    Status {
        #[command(subcommand)]
        command: StatusCommand,
        /// Folder of the SQLite database [env: VELRO_DATA_DIR] [default: ./velro-data]
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
    /// Import users and live sessions from another auth server into Velro's database
    /// (DATABASE_URL, or the SQLite database in the data folder). Safe to repeat.
    Import {
        #[command(subcommand)]
        command: ImportCommand,
        /// Folder of the SQLite database [env: VELRO_DATA_DIR] [default: ./velro-data]
        #[arg(long, global = true)]
        data_dir: Option<PathBuf>,
    },
}

impl Command {
    /// The flags that override the file and the environment.
    fn overrides(&self) -> Overrides {
        match self {
            Self::Serve { bind, data_dir } => Overrides {
                bind: *bind,
                data_dir: data_dir.clone(),
            },
            Self::Migrate { data_dir }
            | Self::Purge { data_dir }
            | Self::Keys { data_dir, .. }
            | Self::Status { data_dir, .. }
            | Self::Import { data_dir, .. } => Overrides {
                bind: None,
                data_dir: data_dir.clone(),
            },
        }
    }

    async fn run(self, config: &Config) -> anyhow::Result<()> {
        match self {
            Self::Serve { .. } => {
                if let Some(limit) = velro::serve::raise_open_file_limit() {
                    tracing::info!(open_files = limit, "open-file limit (connections + files)");
                }
                let shutdown = shutdown_signal()?;
                Application::build(config)
                    .await?
                    .run_until_stopped(shutdown)
                    .await
            }
            Self::Migrate { .. } => {
                let database = Database::open(config).await?;
                database.migrate().await?;
                database.close().await;
                tracing::info!("migrations applied");
                Ok(())
            }
            Self::Purge { .. } => velro::purge::run(config).await,
            Self::Keys { command, .. } => velro::keys::run(config, &command),
            Self::Status { command, .. } => velro::status::run(config, &command).await,
            Self::Import { command, .. } => velro::import::run(config, &command).await,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        // A client of a running instance: the server's settings are not its business.
        Some(TopCommand::Admin(admin)) => return velro::admin::main(admin),
        Some(TopCommand::Local(command)) => command,
        None => Command::Serve {
            bind: None,
            data_dir: None,
        },
    };
    let config = match Config::load(cli.config.as_deref(), command.overrides()) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::from(2);
        }
    };
    telemetry::init(config.log_format, &config.log_level);
    config.log_gotrue_fallbacks();
    let outcome = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| anyhow::anyhow!("could not start the async runtime: {error}"))
        .and_then(|runtime| runtime.block_on(command.run(&config)));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error:#}");
            if !telemetry::error_log_reaches_stderr() {
                eprintln!("error: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}
