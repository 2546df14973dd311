//! velro-load: drives the Velro auth service with goose virtual users (journeys and single
//! endpoints, closed or open model) and reports latency, errors and /metrics deltas.

pub mod api;
pub mod cli;
pub mod config;
pub mod hold;
pub mod prometheus;
pub mod recorder;
pub mod report;
pub mod run;
pub mod scenarios;
pub mod setup;

pub use config::{LoadConfig, ScenarioKind, Surface};
pub use report::Report;
pub use run::run;

/// Why a run could not be made (errors of individual requests are in the report instead).
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("bad settings: {0}")]
    Config(String),
    #[error("setup failed: {0}")]
    Setup(String),
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("goose: {0}")]
    Goose(String),
    #[error("writing the report: {0}")]
    Io(#[from] std::io::Error),
    #[error("encoding the report: {0}")]
    Json(#[from] serde_json::Error),
}
