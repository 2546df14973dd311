//! `velro admin`: a client of a running instance's admin API (`/api/v1/admin`), for operators and
//! scripts. It never reads the server's settings or database; each resource (users, flags,
//! incidents) is a subcommand group in its own module, all sharing one HTTP client, one error
//! table and one printer.

mod client;
mod failure;
mod flags;
mod incidents;
mod key;
mod table;
mod users;

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use url::Url;

pub use failure::Failure;

use client::Client;

/// The answer of one command: the API's JSON as received (for `--json`) and the same thing as
/// a person reads it.
pub(crate) struct Printed {
    raw: String,
    human: String,
}

/// `velro admin`'s options, shared by every subcommand.
#[derive(Args)]
#[command(after_help = AFTER_HELP)]
pub struct AdminArgs {
    /// Base URL of the instance (plain http: this build has no TLS)
    #[arg(long, global = true, default_value = "http://127.0.0.1:8000", value_parser = parse_base)]
    url: Url,
    /// Print the API's JSON answer instead of a table
    #[arg(long, global = true)]
    json: bool,
    /// Seconds to wait for the instance before giving up
    #[arg(long, global = true, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=300))]
    timeout: u64,
    #[command(subcommand)]
    command: AdminCommand,
}

const AFTER_HELP: &str = "The service key comes from VELRO_SERVICE_KEY, or is asked for \
(without echo) when run on a terminal; it is never printed.\n\nExit codes: 0 done; 1 the instance refused or found nothing (the \
API's code is printed); 2 usage (bad arguments, no service key); 3 the instance is unreachable \
or did not answer in time; 4 the service key was refused (401/403).";

#[derive(Subcommand)]
enum AdminCommand {
    /// Find, show and change users; revoke their sessions
    #[command(subcommand)]
    Users(users::UsersCommand),
    /// Read and switch the run-time flags (today: the cache kill-switch)
    #[command(subcommand)]
    Flags(flags::FlagsCommand),
    /// Open, update, resolve and list the status page's incidents
    #[command(subcommand)]
    Incidents(incidents::IncidentsCommand),
}

/// Only `http://host[:port][/prefix]`: the base is joined with the API's paths.
fn parse_base(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|why| format!("not a URL ({why})"))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(
                "https is not supported by this build (no TLS); reach the instance \
                        over http, e.g. through an SSH tunnel to its listener"
                    .into(),
            )
        }
        other => return Err(format!("the scheme must be http, not {other}")),
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err("give only http://host[:port][/prefix]".into());
    }
    Ok(url)
}

/// Runs one admin command to its end and says how it went as an exit code; output goes to
/// stdout, the one-line error to stderr.
pub fn main(args: AdminArgs) -> ExitCode {
    let json = args.json;
    let outcome = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| Failure::Local(format!("could not start the async runtime: {error}")))
        .and_then(|runtime| runtime.block_on(run(args)));
    match outcome {
        Ok(printed) => {
            let text = if json { printed.raw } else { printed.human };
            println!("{}", text.trim_end());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

async fn run(args: AdminArgs) -> Result<Printed, Failure> {
    let key = key::service_key(&args.url)?;
    let client = Client::new(args.url, &key, Duration::from_secs(args.timeout))?;
    match args.command {
        AdminCommand::Users(command) => users::run(&client, command).await,
        AdminCommand::Flags(command) => flags::run(&client, command).await,
        AdminCommand::Incidents(command) => incidents::run(&client, command).await,
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_base, AdminArgs};

    #[test]
    fn the_command_line_definition_passes_clap_s_own_checks() {
        use clap::Args;
        AdminArgs::augment_args(clap::Command::new("admin")).debug_assert();
    }

    #[test]
    fn only_plain_http_bases_without_query_or_credentials_are_accepted() {
        let cases = [
            ("http://127.0.0.1:8000", true),
            ("http://velro.internal/prefix/", true),
            ("https://velro.example.com", false),
            ("ftp://velro.example.com", false),
            ("127.0.0.1:8000", false),
            ("http://velro.internal/?a=b", false),
            ("http://user:pw@velro.internal", false),
        ];
        for (raw, accepted) in cases {
            assert_eq!(parse_base(raw).is_ok(), accepted, "{raw}");
        }
    }
}
