//! The purge use case: removes the rows nothing needs any more (ended sessions with their refresh
//! tokens, used or expired reset tokens, old PKCE flow states), batch after batch, once by hand (`velro purge`) or
//! periodically in every instance. Which rows qualify, and how a batch stays short and safe
//! beside other instances' purges, is the store's.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::store::{Purged, Store};
use crate::{Clock, StoreError};

/// How much to keep and how much to remove at a time.
#[derive(Debug, Clone, Copy)]
pub struct PurgeSettings {
    /// How long an ended (revoked or expired) session, and a used or expired reset token, is
    /// kept before it goes.
    pub retention: time::Duration,
    /// Rows of one kind per statement.
    pub batch_size: u32,
}

/// What one pass removed, and how long it took.
#[derive(Debug, Clone, Copy)]
pub struct PurgeReport {
    pub removed: Purged,
    pub elapsed: Duration,
    /// The pass removed what ended before this.
    pub cutoff: time::OffsetDateTime,
}

/// Cheap to clone.
#[derive(Clone)]
pub struct PurgeService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    settings: PurgeSettings,
}

impl PurgeService {
    pub fn new(store: Arc<dyn Store>, clock: Arc<dyn Clock>, settings: PurgeSettings) -> Self {
        describe_metrics();
        Self {
            store,
            clock,
            settings,
        }
    }

    pub fn settings(&self) -> PurgeSettings {
        self.settings
    }

    /// One pass: batches until none comes back full. Each batch is counted in the metrics as
    /// it commits, so a pass that fails or is stopped half-way still shows what it removed.
    pub async fn run_once(&self) -> Result<PurgeReport, StoreError> {
        let started = Instant::now();
        // Nothing ended before 1970: a retention reaching further back removes nothing.
        let cutoff = self
            .clock
            .now()
            .checked_sub(self.settings.retention)
            .filter(|cutoff| *cutoff > time::OffsetDateTime::UNIX_EPOCH)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        let mut removed = Purged::default();
        let outcome = loop {
            match self.store.purge(cutoff, self.settings.batch_size).await {
                Ok(batch) => {
                    count(&batch.removed);
                    removed += batch.removed;
                    // A full batch that removed nothing (another instance took the rows) would
                    // otherwise repeat forever.
                    if !batch.more || batch.removed.total() == 0 {
                        break Ok(());
                    }
                }
                Err(error) => break Err(error),
            }
            // Between batches, whatever else wants this worker runs first.
            tokio::task::yield_now().await;
        };
        let elapsed = started.elapsed();
        metrics::histogram!("velro_purge_duration_seconds").record(elapsed.as_secs_f64());
        if outcome.is_err() {
            metrics::counter!("velro_purge_failures_total").increment(1);
        }
        outcome.map(|()| PurgeReport {
            removed,
            elapsed,
            cutoff,
        })
    }

    /// Runs a pass every `interval` until `stop` resolves. The first pass comes after a random
    /// part of the interval, so that instances started together do not purge in step. A pass
    /// in progress is abandoned at once when `stop` resolves: every statement commits on its
    /// own, so nothing is left half done, and the next pass picks up the rest.
    pub async fn run_periodically(self, interval: Duration, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let first = interval.mul_f64(rand::thread_rng().gen_range(0.0..1.0));
        let mut next = tokio::time::Instant::now() + first;
        loop {
            tokio::select! {
                () = &mut stop => return,
                () = tokio::time::sleep_until(next) => {}
            }
            tokio::select! {
                () = &mut stop => return,
                outcome = self.run_once() => match outcome {
                    Ok(report) if report.removed.total() > 0 => tracing::info!(
                        refresh_tokens = report.removed.refresh_tokens,
                        sessions = report.removed.sessions,
                        password_reset_tokens = report.removed.reset_tokens,
                        flow_states = report.removed.flow_states,
                        elapsed_ms = report.elapsed.as_millis(),
                        "purged rows past their retention"
                    ),
                    Ok(report) => tracing::debug!(
                        elapsed_ms = report.elapsed.as_millis(),
                        "purge found nothing to remove"
                    ),
                    Err(error) => tracing::warn!(
                        error = %error,
                        "purge failed; the next pass will try again"
                    ),
                },
            }
            next = tokio::time::Instant::now() + interval;
        }
    }
}

fn count(removed: &Purged) {
    for (table, rows) in removed.by_table() {
        metrics::counter!("velro_purge_rows_total", "table" => table).increment(rows);
    }
}

fn describe_metrics() {
    metrics::describe_counter!(
        "velro_purge_rows_total",
        "Rows removed by the purge, per table"
    );
    metrics::describe_histogram!(
        "velro_purge_duration_seconds",
        metrics::Unit::Seconds,
        "Time one purge pass took"
    );
    metrics::describe_counter!(
        "velro_purge_failures_total",
        "Purge passes that ended with a database error"
    );
    // Present from the start, so that the first removal is an increase a rate() can see.
    count(&Purged::default());
    metrics::counter!("velro_purge_failures_total").increment(0);
}
