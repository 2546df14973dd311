//! `velro status …`: the status page as static files, for publishing on a host that does not go
//! down with the service. It reads the samples the instances record and the incidents straight
//! from the database, so it needs no running instance, and it says so when none has reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use velro_core::cache::NoCache;
use velro_core::service::{StatusService, StatusSettings};
use velro_core::SystemClock;
use velro_http::status_page::{self, Links};

use crate::config::Config;
use crate::database::Database;

#[derive(Debug, Clone, Subcommand)]
pub enum StatusCommand {
    /// Write status.html, status.json and feed.atom into DIR (created when missing), each
    /// replaced whole, so that a web server never serves half a file. Exits non-zero, leaving
    /// the previous files, when the database cannot be read.
    Export {
        /// The folder to write to.
        dir: PathBuf,
    },
}

pub async fn run(config: &Config, command: &StatusCommand) -> anyhow::Result<()> {
    let StatusCommand::Export { dir } = command;
    let database = Database::open(config).await?;
    let status = StatusService::new(
        database.store(),
        Arc::new(SystemClock),
        Arc::new(NoCache),
        StatusSettings::default(),
    );
    let report = status.stored_report().await;
    database.close().await;
    let report = report
        .context("could not read the status data (is the database reachable and migrated?)")?;
    tokio::fs::create_dir_all(dir)
        .await
        .with_context(|| format!("could not create {}", dir.display()))?;
    let files = [
        ("status.html", status_page::html(&report, Links::EXPORTED)),
        ("status.json", velro_http::status_json(&report)),
        ("feed.atom", status_page::atom(&report, Links::EXPORTED)),
    ];
    for (name, content) in files {
        replace(&dir.join(name), content.as_bytes()).await?;
    }
    tracing::info!(dir = %dir.display(), state = report.overall().as_str(), "status page exported");
    Ok(())
}

/// Writes beside the target, then renames over it: readers see the old file or the new one.
async fn replace(path: &Path, content: &[u8]) -> anyhow::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    tokio::fs::write(&temporary, content)
        .await
        .with_context(|| format!("could not write {}", temporary.display()))?;
    tokio::fs::rename(&temporary, path)
        .await
        .with_context(|| format!("could not replace {}", path.display()))
}
