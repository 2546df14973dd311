//! The `velro` binary's library half: configuration, wiring and the server's life cycle, shared
//! by `main` and the API tests.

pub mod admin;
pub mod config;
pub mod database;
pub mod import;
pub mod jwt_keys;
pub mod keys;
pub mod mailer;
pub mod purge;
pub mod serve;
pub mod startup;
pub mod status;
mod supabase_config;
pub mod telemetry;
pub mod telemetry_metrics;
