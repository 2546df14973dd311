//! One load run, end to end: setup, /metrics before, the goose attack, /metrics after, report.

use std::sync::Arc;
use std::time::{Duration, Instant};

use goose::config::GooseConfiguration;
use goose::prelude::{GooseAttack, GooseDefault, GooseDefaultType};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::config::{LoadConfig, ScenarioKind, Surface};
use crate::prometheus::{scrape, MetricsDelta};
use crate::recorder::Recorder;
use crate::report::Report;
use crate::scenarios::{self, Context};
use crate::{setup, LoadError};

/// Runs `config` against its host and returns the report.
pub async fn run(config: LoadConfig) -> Result<Report, LoadError> {
    if config.scenario == ScenarioKind::Hold {
        return Err(LoadError::Config("hold runs through hold::run".into()));
    }
    if config.users == 0 {
        return Err(LoadError::Config("users must be at least 1".into()));
    }
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let (sessions, account) = prepare(&client, &config, &run_id).await?;

    let before = scrape(&client, &config.host).await;
    let started_at = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let cpu_before = process_cpu_secs();

    let recorder = Arc::new(Recorder::new());
    let hatch = Duration::from_secs_f64(config.users as f64 / config.hatch_rate());
    let starts_at = Instant::now() + hatch;
    let deadline = starts_at + config.duration;
    let context = Arc::new(Context::new(
        recorder.clone(),
        config.clone(),
        run_id,
        sessions,
        account,
        starts_at,
        deadline,
    ));
    attack(&config, scenarios::build(context)).await?;

    let cpu = cpu_before.zip(process_cpu_secs()).map(|(b, a)| a - b);
    let after = scrape(&client, &config.host).await;
    let metrics = match (before, after) {
        (Ok(before), Ok(after)) => Ok(MetricsDelta::between(before, after)),
        (Err(error), _) | (_, Err(error)) => Err(error.to_string()),
    };
    Ok(Report::new(config, started_at, &recorder, cpu, metrics))
}

/// Sessions for `me` and `refresh`, the account for `login`; nothing for the others.
async fn prepare(
    client: &reqwest::Client,
    config: &LoadConfig,
    run_id: &str,
) -> Result<(Vec<crate::api::Tokens>, Option<String>), LoadError> {
    let email = format!("load-{run_id}-account@example.com");
    let host = &config.host;
    let password = &config.password;
    match config.scenario {
        ScenarioKind::Me | ScenarioKind::Refresh => {
            let first = setup::register(client, host, &email, password).await?;
            // `me` shares tokens read-only; `refresh` needs one rotating session per user.
            let wanted = if config.scenario == ScenarioKind::Me {
                config.users.min(100)
            } else {
                config.users
            };
            // A Supabase run needs Supabase tokens: every session from the password grant.
            let (mut sessions, login_path) = match config.surface {
                Surface::V1 => (vec![first], "/api/v1/auth/login"),
                Surface::Supabase => (Vec::new(), crate::api::SUPABASE_PASSWORD_GRANT),
            };
            let missing = wanted.saturating_sub(sessions.len());
            sessions.extend(
                setup::sessions(client, host, login_path, &email, password, missing).await?,
            );
            Ok((sessions, None))
        }
        ScenarioKind::Login => {
            setup::register(client, host, &email, password).await?;
            Ok((Vec::new(), Some(email)))
        }
        ScenarioKind::Journey
        | ScenarioKind::Register
        | ScenarioKind::Health
        | ScenarioKind::Hold => Ok((Vec::new(), None)),
    }
}

async fn attack(config: &LoadConfig, scenario: goose::goose::Scenario) -> Result<(), LoadError> {
    let goose = |error: goose::GooseError| LoadError::Goose(error.to_string());
    let users = config.users;
    let hatch_rate = format!("{}", config.hatch_rate());
    // Goose counts whole seconds; our own deadline ends the transactions on time.
    let run_time = usize::try_from(config.duration.as_secs().max(1)).unwrap_or(usize::MAX);
    let timeout = config.request_timeout.as_secs().max(1).to_string();
    GooseAttack::initialize_with_config(GooseConfiguration::default())
        .map_err(goose)?
        .register_scenario(scenario)
        .set_default(GooseDefault::Host, config.host.as_str())
        .map_err(goose)?
        .set_default(GooseDefault::Users, users)
        .map_err(goose)?
        .set_default(GooseDefault::HatchRate, hatch_rate.as_str())
        .map_err(goose)?
        .set_default(GooseDefault::RunTime, run_time)
        .map_err(goose)?
        .set_default(GooseDefault::Timeout, timeout.as_str())
        .map_err(goose)?
        // Our recorder measures in microseconds; goose's millisecond metrics would only cost CPU.
        .set_default(GooseDefault::NoMetrics, true)
        .map_err(goose)?
        .set_default(GooseDefault::NoPrintMetrics, true)
        .map_err(goose)?
        // Warnings and errors only: the table goes to the same stdout.
        .set_default(GooseDefault::Quiet, 1)
        .map_err(goose)?
        // No controller ports: several runs (and tests) may share the machine.
        .set_default(GooseDefault::NoTelnet, true)
        .map_err(goose)?
        .set_default(GooseDefault::NoWebSocket, true)
        .map_err(goose)?
        .execute()
        .await
        .map_err(goose)?;
    Ok(())
}

/// This process's CPU time (user + system) in seconds, from /proc (Linux; `None` elsewhere).
pub(crate) fn process_cpu_secs() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux for every architecture this runs on.
    Some((utime + stime) / 100.0)
}
