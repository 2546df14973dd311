//! The Prometheus recorder (one per process) and the gauges read at scrape time.

use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use velro_core::hashing::PasswordHasher;
use velro_http::MetricsRenderer;

use crate::database::Database;

const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Installs the recorder before anything records: a metric touched earlier (the cache's gauges
/// set at build, every description) would be lost, not delayed.
pub fn install() {
    let _ = handle();
}

/// Installs the recorder the first time; later calls (many apps in one test process) share it.
fn handle() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(handle) => Some(handle),
                Err(error) => {
                    tracing::warn!(error = %error, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// Renders the exposition after refreshing the gauges that are cheaper to read than to track.
pub fn renderer(database: Database, hasher: PasswordHasher) -> MetricsRenderer {
    let handle = handle();
    Arc::new(move || {
        let stats = database.pool_stats();
        metrics::gauge!("velro_db_pool_connections", "state" => "idle").set(f64::from(stats.idle));
        metrics::gauge!("velro_db_pool_connections", "state" => "in_use")
            .set(f64::from(stats.size.saturating_sub(stats.idle)));
        metrics::gauge!("velro_db_pool_acquire_waiting").set(f64::from(stats.waiting));
        metrics::gauge!("velro_hash_queue_depth").set(hasher.queue_depth() as f64);
        metrics::gauge!("velro_hash_queue_capacity").set(hasher.queue_capacity() as f64);
        handle
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    })
}
