//! What one load run does: the scenario, its size and its bounds. Built by the CLI or by tests.

use std::time::Duration;

use serde::Serialize;

/// The scenarios the tool runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ScenarioKind {
    /// register → login → me ×k → profile → refresh → me → logout, repeated.
    Journey,
    /// GET /me with a token made before the run.
    Me,
    /// POST /login to one account made before the run.
    Login,
    /// POST /register with a fresh email each time.
    Register,
    /// POST /refresh along one rotating session per user, made before the run.
    Refresh,
    /// GET /health (no I/O on the server).
    Health,
    /// Many keep-alive connections held open, token checks on a share of them (`hold.rs`;
    /// not a goose scenario).
    Hold,
}

/// Which API the single-endpoint scenarios `login`, `refresh` and `me` call: the v1 API, or
/// its Supabase (GoTrue) equivalents under /auth/v1 (`POST /token?grant_type=password`,
/// `POST /token?grant_type=refresh_token`, `GET /user`), on the same accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Surface {
    V1,
    Supabase,
}

/// Settings of one run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadConfig {
    /// Base URL, e.g. `http://127.0.0.1:8000`.
    pub host: String,
    pub scenario: ScenarioKind,
    /// The API that `login`, `refresh` and `me` call (the other scenarios are v1 only).
    pub surface: Surface,
    /// Virtual users (each with its own HTTP connection).
    pub users: usize,
    /// How long the run lasts once the users are started.
    pub duration: Duration,
    /// Pause between the steps of a journey (people, not a tight loop).
    pub think_time: Duration,
    /// GET /me calls in a row in a journey.
    pub me_per_journey: usize,
    /// Open model: operations started per second on a fixed schedule, whatever the answers'
    /// speed; latency counts from the scheduled start. `None`: closed model (each user sends
    /// its next request when the previous one is answered).
    pub rate: Option<f64>,
    /// Stops starting operations (journeys count as one) after this many.
    pub max_operations: Option<u64>,
    /// Client-side timeout of every request.
    pub request_timeout: Duration,
    /// Password of every account the tool creates.
    pub password: String,
    /// Users started per second; `None`: all of them within a quarter of a second.
    pub hatch_rate: Option<f64>,
    /// At the deadline, let journeys in progress finish instead of cutting them short (so a
    /// short run still completes every step however slow the machine is).
    pub finish_journeys: bool,
}

impl LoadConfig {
    /// The defaults of the CLI, for `scenario` against `host`.
    pub fn new(host: impl Into<String>, scenario: ScenarioKind) -> Self {
        Self {
            host: host.into().trim_end_matches('/').to_string(),
            scenario,
            surface: Surface::V1,
            users: 100,
            duration: Duration::from_secs(10),
            think_time: Duration::ZERO,
            me_per_journey: 3,
            rate: None,
            max_operations: None,
            request_timeout: Duration::from_secs(10),
            password: "velro load test passphrase 42".into(),
            finish_journeys: false,
            hatch_rate: None,
        }
    }

    /// Users started per second, as goose takes it.
    pub fn hatch_rate(&self) -> f64 {
        self.hatch_rate
            .filter(|rate| *rate > 0.0)
            .unwrap_or(self.users as f64 * 4.0)
            .max(0.1)
    }
}
