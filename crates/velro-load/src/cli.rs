//! The command line of the `velro-load` binary, turned into a [`LoadConfig`].

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::config::{LoadConfig, ScenarioKind, Surface};

/// Load generator for the Velro auth service.
#[derive(Debug, Parser)]
#[command(name = "velro-load", version)]
pub struct Args {
    /// Scenario to run.
    #[arg(value_enum)]
    pub scenario: ScenarioKind,
    /// The API that login, refresh and me call: v1, or supabase (/auth/v1/token and
    /// /auth/v1/user, on the same kind of account).
    #[arg(long, value_enum, default_value = "v1")]
    pub surface: Surface,
    /// Base URL of the service.
    #[arg(long, default_value = "http://127.0.0.1:8000")]
    pub host: String,
    /// Virtual users, each with its own connection.
    #[arg(long, short = 'u', default_value_t = 100)]
    pub users: usize,
    /// Run length in seconds, after the users are started.
    #[arg(long, short = 'd', default_value_t = 10)]
    pub duration_secs: u64,
    /// Pause between journey steps, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub think_ms: u64,
    /// GET /me calls in a row in each journey.
    #[arg(long, default_value_t = 3)]
    pub me_per_journey: usize,
    /// Open model: operations started per second on a fixed schedule (single-endpoint
    /// scenarios); --users is then the pool that serves the schedule.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Users started per second (default: all within a quarter of a second).
    #[arg(long)]
    pub hatch_rate: Option<f64>,
    /// Stop starting operations after this many (journeys count as one).
    #[arg(long)]
    pub max_operations: Option<u64>,
    /// Client timeout of each request, in seconds.
    #[arg(long, default_value_t = 10)]
    pub timeout_secs: u64,
    /// hold: connections opened and held.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// hold: connections that check a token on the --rate schedule (the others idle).
    #[arg(long, default_value_t = 0)]
    pub active: usize,
    /// hold: connections opened per second.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// hold: an idle connection sends one check this often (below the server's idle limit).
    #[arg(long, default_value_t = 30)]
    pub idle_ping_secs: u64,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    pub report_json: Option<PathBuf>,
}

impl Args {
    pub fn hold_config(&self) -> crate::hold::HoldConfig {
        crate::hold::HoldConfig {
            host: self.host.trim_end_matches('/').to_string(),
            connections: self.connections,
            active: self.active,
            rate: self.rate.unwrap_or(0.0),
            connect_rate: self.connect_rate,
            idle_ping: Duration::from_secs(self.idle_ping_secs.max(1)),
            duration: Duration::from_secs(self.duration_secs),
            request_timeout: Duration::from_secs(self.timeout_secs.max(1)),
            password: LoadConfig::new("", ScenarioKind::Hold).password,
        }
    }

    pub fn config(&self) -> LoadConfig {
        let mut config = LoadConfig::new(self.host.clone(), self.scenario);
        config.surface = self.surface;
        config.users = self.users;
        config.duration = Duration::from_secs(self.duration_secs);
        config.think_time = Duration::from_millis(self.think_ms);
        config.me_per_journey = self.me_per_journey;
        config.rate = self.rate;
        config.hatch_rate = self.hatch_rate;
        config.max_operations = self.max_operations;
        config.request_timeout = Duration::from_secs(self.timeout_secs.max(1));
        config
    }
}
