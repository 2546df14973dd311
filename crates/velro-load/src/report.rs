//! The run's result: per-endpoint figures, error rate, /metrics deltas; as JSON and as a table.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::LoadConfig;
use crate::prometheus::MetricsDelta;
use crate::recorder::Recorder;

/// One endpoint's figures. Latencies in milliseconds, from microsecond histograms.
#[derive(Debug, Clone, Serialize)]
pub struct EndpointReport {
    pub name: String,
    pub requests: u64,
    pub throughput_per_sec: f64,
    pub mean_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    /// Latency of the errors alone (refusals should be fast).
    pub errors_p50_ms: Option<f64>,
    pub errors_p99_ms: Option<f64>,
    /// Count per HTTP status (or `timeout`, `transport`), successes included.
    pub outcomes: BTreeMap<String, u64>,
}

/// Everything one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub started_at: String,
    pub config: LoadConfig,
    /// From the first request's start to the last one's end.
    pub window_secs: f64,
    pub endpoints: Vec<EndpointReport>,
    pub total_requests: u64,
    pub total_errors: u64,
    pub error_rate: f64,
    pub journeys_completed: u64,
    pub journeys_per_sec: f64,
    /// Open model: scheduled starts that found every user busy (latency still counts from
    /// the schedule, so it is not hidden).
    pub late_starts: u64,
    /// CPU time of this process during the run (user + system), and as a share of one core.
    pub generator_cpu_secs: Option<f64>,
    pub generator_cpu_percent_of_one_core: Option<f64>,
    pub metrics: Option<MetricsDelta>,
    pub metrics_error: Option<String>,
}

impl Report {
    /// Builds the report from the recorder after the run.
    pub fn new(
        config: LoadConfig,
        started_at: String,
        recorder: &Recorder,
        generator_cpu_secs: Option<f64>,
        metrics: Result<MetricsDelta, String>,
    ) -> Self {
        let window = recorder.window().as_secs_f64();
        let per_sec = |count: u64| {
            if window > 0.0 {
                count as f64 / window
            } else {
                0.0
            }
        };
        let endpoints: Vec<EndpointReport> = recorder.with_endpoints(|endpoints| {
            endpoints
                .iter()
                .map(|(name, stats)| {
                    let h = &stats.latency_us;
                    let ms = |micros: u64| micros as f64 / 1000.0;
                    EndpointReport {
                        name: (*name).to_string(),
                        requests: h.len(),
                        throughput_per_sec: per_sec(h.len()),
                        mean_ms: h.mean() / 1000.0,
                        p50_ms: ms(h.value_at_quantile(0.50)),
                        p90_ms: ms(h.value_at_quantile(0.90)),
                        p99_ms: ms(h.value_at_quantile(0.99)),
                        p999_ms: ms(h.value_at_quantile(0.999)),
                        max_ms: ms(h.max()),
                        errors: stats.errors,
                        errors_p50_ms: (!stats.error_latency_us.is_empty())
                            .then(|| ms(stats.error_latency_us.value_at_quantile(0.50))),
                        errors_p99_ms: (!stats.error_latency_us.is_empty())
                            .then(|| ms(stats.error_latency_us.value_at_quantile(0.99))),
                        outcomes: stats.outcomes.clone(),
                    }
                })
                .collect()
        });
        let total_requests = endpoints.iter().map(|e| e.requests).sum();
        let total_errors = endpoints.iter().map(|e| e.errors).sum();
        let journeys = recorder.journeys();
        let (metrics, metrics_error) = match metrics {
            Ok(delta) => (Some(delta), None),
            Err(error) => (None, Some(error)),
        };
        Self {
            tool: format!("velro-load {} (goose 0.18.1)", env!("CARGO_PKG_VERSION")),
            started_at,
            window_secs: window,
            endpoints,
            total_requests,
            total_errors,
            error_rate: if total_requests > 0 {
                total_errors as f64 / total_requests as f64
            } else {
                0.0
            },
            journeys_completed: journeys,
            journeys_per_sec: per_sec(journeys),
            late_starts: recorder.late_starts(),
            generator_cpu_percent_of_one_core: generator_cpu_secs
                .filter(|_| window > 0.0)
                .map(|cpu| cpu / window * 100.0),
            generator_cpu_secs,
            metrics,
            metrics_error,
            config,
        }
    }

    /// The endpoint's row, if it was called.
    pub fn endpoint(&self, name: &str) -> Option<&EndpointReport> {
        self.endpoints.iter().find(|e| e.name == name)
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let c = &self.config;
        let model = match c.rate {
            Some(rate) => format!("open model, {rate}/s scheduled"),
            None => "closed model".into(),
        };
        let _ = writeln!(
            out,
            "scenario {:?}, {} users, {:.1} s window, think {} ms, {model}, {}",
            c.scenario,
            c.users,
            self.window_secs,
            c.think_time.as_millis(),
            self.tool
        );
        let _ = writeln!(
            out,
            "{:<9} {:>9} {:>9} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7}  outcomes",
            "endpoint",
            "requests",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "mean ms",
            "errors"
        );
        for e in &self.endpoints {
            let mut outcomes: Vec<String> =
                e.outcomes.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            if let Some(p99) = e.errors_p99_ms {
                outcomes.push(format!("(errors p99 {p99:.3} ms)"));
            }
            let _ = writeln!(
                out,
                "{:<9} {:>9} {:>9.1} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>9.3} {:>9.3} {:>7}  {}",
                e.name,
                e.requests,
                e.throughput_per_sec,
                e.p50_ms,
                e.p90_ms,
                e.p99_ms,
                e.p999_ms,
                e.max_ms,
                e.mean_ms,
                e.errors,
                outcomes.join(" ")
            );
        }
        let _ = writeln!(
            out,
            "total {} requests, {} errors, error rate {:.4}%",
            self.total_requests,
            self.total_errors,
            self.error_rate * 100.0
        );
        if self.journeys_completed > 0 {
            let _ = writeln!(
                out,
                "journeys completed {} ({:.1}/s)",
                self.journeys_completed, self.journeys_per_sec
            );
        }
        if c.rate.is_some() {
            let _ = writeln!(out, "late starts (all users busy) {}", self.late_starts);
        }
        if let (Some(cpu), Some(share)) = (
            self.generator_cpu_secs,
            self.generator_cpu_percent_of_one_core,
        ) {
            let _ = writeln!(
                out,
                "load generator CPU {cpu:.2} s ({share:.0}% of one core)"
            );
        }
        match (&self.metrics, &self.metrics_error) {
            (Some(m), _) => {
                let ratio = m.cache_hit_ratio.map_or_else(
                    || "n/a (no lookup: cache off?)".into(),
                    |r| format!("{:.4}", r),
                );
                let _ = writeln!(
                    out,
                    "/metrics: cache lookups {:.0}, L1+L2 hit ratio {ratio}, database lookups {:.0}",
                    m.cache_lookups, m.cache_db_lookups
                );
                let _ = writeln!(
                    out,
                    "/metrics: pool in use {:.0} -> {:.0}, idle {:.0} -> {:.0}; hash queue {:.0} -> {:.0}; hashes {:.0}, mean hash {}",
                    m.before.pool_in_use,
                    m.after.pool_in_use,
                    m.before.pool_idle,
                    m.after.pool_idle,
                    m.before.hash_queue_depth,
                    m.after.hash_queue_depth,
                    m.hashes,
                    m.hash_mean_ms.map_or_else(|| "n/a".into(), |ms| format!("{ms:.1} ms"))
                );
            }
            (None, Some(error)) => {
                let _ = writeln!(out, "/metrics: not read ({error})");
            }
            (None, None) => {}
        }
        out
    }
}
