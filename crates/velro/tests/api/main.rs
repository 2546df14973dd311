//! The API tests: the real router, served on a random port, against real stores. Every test runs
//! on SQLite and, when a PostgreSQL is available, on PostgreSQL.

mod binary;
mod helpers;

mod abuse;
mod accounts;
mod admin;
mod attacks;
mod concurrency;
mod dashboards;
mod http_rules;
mod keys;
mod overload;
mod passwords;
mod process;
mod purge;
mod secrets_in_logs;
mod sessions;
mod two_instances;
