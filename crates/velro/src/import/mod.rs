//! `velro import supabase`: carries a Supabase project's users and signed-in sessions over,
//! page by page, safe to run again and again (upserts by id; a rerun changes nothing, a run
//! after more sign-ups brings only those). The rules for what carries over are in
//! `supabase.rs`, the reading in `source.rs`, the writing behind core's `ImportService`.

pub mod mapping;
mod source;
mod supabase;

use std::collections::BTreeMap;
use std::fmt;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use uuid::Uuid;
use velro_core::service::ImportService;
use velro_core::store::{ImportOutcome, RefreshPolicy, SessionImport, UserImport};
use velro_core::{Clock, Secret, SystemClock};

use crate::config::Config;
use crate::database::Database;

use mapping::ProfileMapping;
use source::Source;
use supabase::{map_sessions, map_user, Note, SessionVerdict, Skip, UserVerdict};

#[derive(Debug, clap::Subcommand)]
pub enum ImportCommand {
    /// Copy users, password hashes and live sessions from a Supabase project's database.
    /// Safe to repeat: nothing doubles, and a later run brings only what changed.
    Supabase(SupabaseArgs),
}

#[derive(Debug, clap::Args)]
pub struct SupabaseArgs {
    /// The project's direct database URL, as the `postgres` role:
    /// postgres://postgres:PASSWORD@db.REF.supabase.co:5432/postgres (not a VELRO_ variable:
    /// those are Velro's settings, checked strictly)
    #[arg(long, env = "SUPABASE_DB_URL", hide_env_values = true)]
    pub from: String,
    /// Read and compare everything, write nothing, and print what a real run would do.
    #[arg(long)]
    pub dry_run: bool,
    /// The application's table of profile fields, `schema.table` (e.g. public.profiles).
    #[arg(long)]
    pub profiles_table: Option<String>,
    /// The column of --profiles-table that holds the user's id.
    #[arg(long, default_value = "id")]
    pub profiles_key: String,
    /// Where Velro's profile fields come from: field=column of --profiles-table, or
    /// field=user_metadata.KEY; fields display_name, avatar_url, role, credits. Without
    /// --map and --profiles-table: display_name=user_metadata.full_name,
    /// avatar_url=user_metadata.avatar_url.
    #[arg(long, value_delimiter = ',')]
    pub map: Vec<String>,
    /// Users read and written per transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub batch_size: u32,
}

impl SupabaseArgs {
    pub fn mapping(&self) -> anyhow::Result<ProfileMapping> {
        ProfileMapping::parse(
            self.profiles_table.as_deref(),
            &self.profiles_key,
            &self.map,
        )
        .map_err(|why| anyhow::anyhow!("invalid mapping: {why}"))
    }
}

/// Counts of one kind of row.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Tally {
    pub read: u64,
    pub imported: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub skipped: BTreeMap<&'static str, u64>,
}

impl Tally {
    fn skip(&mut self, skip: Skip) {
        *self.skipped.entry(skip.reason()).or_default() += 1;
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

/// What a run did (or, in a dry run, would do). Holds counts only: no hash or token.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    pub dry_run: bool,
    pub users: Tally,
    pub sessions: Tally,
    pub users_removed: u64,
    pub sessions_ended: u64,
    pub notes: BTreeMap<&'static str, u64>,
    pub seconds: f64,
}

impl Report {
    /// True when the run found nothing to write.
    pub fn changed_nothing(&self) -> bool {
        self.users.imported + self.users.updated + self.sessions.imported + self.sessions.updated
            == 0
            && self.users_removed + self.sessions_ended == 0
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = if self.dry_run {
            "dry run, nothing written: would have"
        } else {
            "done:"
        };
        writeln!(
            f,
            "{verb} read {} users and {} sessions in {:.1} s",
            self.users.read, self.sessions.read, self.seconds
        )?;
        for (name, tally, removed, removed_what) in [
            (
                "users",
                &self.users,
                self.users_removed,
                "removed (deleted on Supabase)",
            ),
            (
                "sessions",
                &self.sessions,
                self.sessions_ended,
                "revoked (signed out on Supabase)",
            ),
        ] {
            writeln!(
                f,
                "  {name}: {} imported, {} updated, {} unchanged, {} {removed_what}, {} skipped",
                tally.imported,
                tally.updated,
                tally.unchanged,
                removed,
                tally.skipped_total()
            )?;
            for (reason, count) in &tally.skipped {
                writeln!(f, "    skipped {count}: {reason}")?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(f, "  notes:")?;
            for (note, count) in &self.notes {
                writeln!(f, "    {count}: {note}")?;
            }
        }
        Ok(())
    }
}

/// The progress bar: drawn on stderr only when it is a terminal, so logs and pipes stay clean.
fn progress(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::hidden());
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} users  {per_sec}  eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}

/// `velro import …`: opens Velro's database (migrating it first unless
/// VELRO_MIGRATE_ON_START=false, as `serve` does), imports, and prints the report on stdout.
pub async fn run(config: &Config, command: &ImportCommand) -> anyhow::Result<()> {
    let ImportCommand::Supabase(args) = command;
    let report = import_into(config, Arc::new(SystemClock), args).await?;
    // The import is done and committed: a closed pipe (`| head`) is no error worth reporting.
    let _ = write!(std::io::stdout().lock(), "{report}");
    Ok(())
}

/// Imports into the database `config` names, with `clock` as the import's now.
pub async fn import_into(
    config: &Config,
    clock: Arc<dyn Clock>,
    args: &SupabaseArgs,
) -> anyhow::Result<Report> {
    let database = Database::open(config).await?;
    if config.migrate_on_start {
        database.migrate().await?;
    }
    let seconds = |s: u64| time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX));
    let service = ImportService::new(
        database.import_store(),
        clock.clone(),
        RefreshPolicy {
            lifetime: seconds(config.refresh_token_ttl_secs),
            remember_me_lifetime: seconds(config.remember_me_refresh_token_ttl_secs),
            reuse_grace: seconds(config.refresh_reuse_grace_secs),
        },
        config.initial_credits,
    );
    let outcome = import_supabase(&service, clock.as_ref(), args).await;
    database.close().await;
    outcome
}

/// Connects to the source, checks it, and imports every page.
pub async fn import_supabase(
    service: &ImportService,
    clock: &dyn Clock,
    args: &SupabaseArgs,
) -> anyhow::Result<Report> {
    source::check_url(&args.from)?;
    let mapping = args.mapping()?;
    let from = Secret::new(args.from.clone());
    let source = Source::connect(from.expose(), &mapping).await?;
    let total = source.count_users().await?;
    let bar = progress(total);
    let outcome = import_pages(service, clock, &source, args, &bar).await;
    bar.finish_and_clear();
    source.close().await;
    outcome
}

async fn import_pages(
    service: &ImportService,
    clock: &dyn Clock,
    source: &Source,
    args: &SupabaseArgs,
    bar: &ProgressBar,
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let apply = !args.dry_run;
    let mut report = Report {
        dry_run: args.dry_run,
        ..Report::default()
    };
    let mut after: Option<Uuid> = None;
    loop {
        let rows = source
            .users_after(after, i64::from(args.batch_size))
            .await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id);
        let page = rows.len() as u64;
        report.users.read += page;
        let now = clock.now();

        let mut users = Vec::new();
        let mut remove = Vec::new();
        for row in rows {
            match map_user(row, now) {
                UserVerdict::Import(user, notes) => {
                    for note in notes {
                        *report.notes.entry(Note::text(note)).or_default() += 1;
                    }
                    users.push(*user);
                }
                UserVerdict::Remove(id) => {
                    report.users.skip(Skip::SoftDeleted);
                    remove.push(id);
                }
                UserVerdict::Skip(skip) => report.users.skip(skip),
            }
        }

        let user_ids: Vec<Uuid> = users.iter().map(|u| u.id.0).collect();
        let session_rows = source.sessions_of(&user_ids).await?;
        report.sessions.read += session_rows.len() as u64;
        let legacy: Vec<Uuid> = session_rows
            .iter()
            .filter(|s| s.refresh_token_counter.is_none())
            .map(|s| s.id)
            .collect();
        let tokens = source.tokens_of(&legacy).await?;
        let mut sessions = Vec::new();
        let mut end = Vec::new();
        for verdict in map_sessions(session_rows, tokens, now) {
            match verdict {
                SessionVerdict::Import(session) => sessions.push(*session),
                SessionVerdict::End(id) => {
                    report.sessions.skip(Skip::SignedOut);
                    end.push(id);
                }
                SessionVerdict::Skip(skip) => report.sessions.skip(skip),
            }
        }

        let outcome = service
            .import_batch(users, sessions, remove, end, apply)
            .await
            .context("writing to Velro's database")?;
        tally(&mut report, &outcome);
        bar.inc(page);
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

fn tally(report: &mut Report, outcome: &ImportOutcome) {
    for user in &outcome.users {
        match user {
            UserImport::Inserted => report.users.imported += 1,
            UserImport::Updated => report.users.updated += 1,
            UserImport::Unchanged => report.users.unchanged += 1,
            UserImport::EmailTaken => report.users.skip(Skip::EmailTaken),
        }
    }
    for session in &outcome.sessions {
        match session {
            SessionImport::Inserted => report.sessions.imported += 1,
            SessionImport::Updated => report.sessions.updated += 1,
            SessionImport::Unchanged => report.sessions.unchanged += 1,
            SessionImport::MovedOnHere => report.sessions.skip(Skip::MovedOnInVelro),
            SessionImport::UserMissing => report.sessions.skip(Skip::UserNotImported),
        }
    }
    report.users_removed += outcome.users_removed;
    report.sessions_ended += outcome.sessions_ended;
}
