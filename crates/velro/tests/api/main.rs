//! The API tests: the real router, served on a random port, against real stores. Every test runs
//! on SQLite and, when a PostgreSQL is available, on PostgreSQL.

mod binary;
mod helpers;

mod abuse;
mod accounts;
mod admin;
mod admin_cli;
mod attacks;
mod browser;
mod concurrency;
mod connections;
mod console;
mod dashboards;
mod http_rules;
mod import;
mod keys;
mod overload;
mod passwords;
mod process;
mod purge;
mod secrets_in_logs;
mod sessions;
mod status;
mod supabase;
mod supabase_attacks;
mod supabase_confirm;
mod supabase_email_change;
mod supabase_keys;
mod supabase_limits;
mod supabase_mail;
mod supabase_pkce;
mod supabase_users;
mod two_instances;
