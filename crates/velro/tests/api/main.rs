//! The API tests: the real router, served on a random port, against real stores. Every test runs
//! on SQLite and, when a PostgreSQL is available, on PostgreSQL.

mod helpers;

mod accounts;
mod admin;
mod concurrency;
mod http_rules;
mod overload;
mod passwords;
mod process;
mod sessions;
mod two_instances;
