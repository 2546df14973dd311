//! `velro purge`: one purge pass by hand, with what it removed printed per table.

use std::sync::Arc;

use velro_core::service::PurgeService;
use velro_core::SystemClock;

use crate::config::Config;
use crate::database::Database;

/// Runs one pass on the configured database and prints the rows removed per table.
pub async fn run(config: &Config) -> anyhow::Result<()> {
    let database = Database::open(config).await?;
    let (settings, _) = config.purge_settings();
    let service = PurgeService::new(database.store(), Arc::new(SystemClock), settings);
    let outcome = service.run_once().await;
    database.close().await;
    let report = outcome.map_err(|error| anyhow::Error::new(error).context("purge failed"))?;
    for (table, rows) in report.removed.by_table() {
        println!("{table:<24}{rows:>10}");
    }
    println!(
        "removed {} rows that ended before {} (retention {} s) in {:.3} s",
        report.removed.total(),
        report
            .cutoff
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| report.cutoff.to_string()),
        settings.retention.whole_seconds(),
        report.elapsed.as_secs_f64()
    );
    Ok(())
}
