//! What the dashboard draws, kept in memory by this instance: a ring of samples taken every few
//! seconds (request rates and latency percentiles per route, error rates, and the gauges and
//! counters of the metrics exposition), and bounded lists of recent errors and slow requests.
//! The request middleware feeds it; nothing here does I/O.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

/// How often a sample is taken, and how many are kept (15 minutes).
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
const SAMPLES_KEPT: usize = 180;
const NOTES_KEPT: usize = 50;
const SLOWEST_KEPT: usize = 20;
/// Per route and interval; beyond it percentiles come from the first ones, a bounded cost.
const DURATIONS_KEPT: usize = 20_000;

/// One request as the lists show it. Only the route pattern is kept, never the path, the query,
/// a header or a body, so no token, password or email can land here.
#[derive(Debug, Clone)]
pub struct RequestNote {
    pub at: OffsetDateTime,
    pub method: String,
    pub route: String,
    pub status: u16,
    pub duration_ms: f64,
    pub request_id: String,
}

/// One interval's numbers. Rates are per second.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub at: Option<OffsetDateTime>,
    pub routes: BTreeMap<String, RouteSample>,
    /// `4xx`, `5xx`, `429`, `503`, `timeout`.
    pub statuses: BTreeMap<&'static str, f64>,
    /// Named series read from the metrics exposition (see [`Monitor::sample`]).
    pub gauges: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, Default)]
pub struct RouteSample {
    pub rate: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
}

/// A finished request as the middleware hands it over, borrowed: most requests are only
/// counted, so the owned [`RequestNote`] is made only for those the lists keep.
#[derive(Debug, Clone, Copy)]
pub struct RequestSeen<'a> {
    /// `METHOD route`, the dashboard's row: made once per route by the caller, not per request.
    pub key: &'a str,
    pub method: &'a str,
    pub route: &'a str,
    pub status: u16,
    pub duration_ms: f64,
    pub request_id: &'a str,
}

impl RequestSeen<'_> {
    fn note(&self) -> RequestNote {
        RequestNote {
            at: OffsetDateTime::now_utc(),
            method: self.method.to_string(),
            route: self.route.to_string(),
            status: self.status,
            duration_ms: self.duration_ms,
            request_id: self.request_id.to_string(),
        }
    }
}

/// One route's requests in the open interval: how many, and the first durations.
#[derive(Default)]
struct RouteTally {
    count: u64,
    durations: Vec<f64>,
}

impl RouteTally {
    fn add(&mut self, duration_ms: f64) {
        self.count += 1;
        if self.durations.len() < DURATIONS_KEPT {
            self.durations.push(duration_ms);
        }
    }
}

#[derive(Default)]
struct Interval {
    /// Keyed by `METHOD route`.
    routes: HashMap<String, RouteTally>,
    statuses: BTreeMap<&'static str, u64>,
}

struct Inner {
    started: Instant,
    current: Interval,
    samples: VecDeque<Sample>,
    errors: VecDeque<RequestNote>,
    slowest: Vec<RequestNote>,
    /// The previous sample's counter values, for rates.
    counters: HashMap<String, f64>,
}

pub struct Monitor {
    inner: Mutex<Inner>,
}

impl Default for Monitor {
    fn default() -> Self {
        Self {
            inner: Mutex::new(Inner {
                started: Instant::now(),
                current: Interval::default(),
                samples: VecDeque::with_capacity(SAMPLES_KEPT),
                errors: VecDeque::with_capacity(NOTES_KEPT),
                slowest: Vec::with_capacity(SLOWEST_KEPT + 1),
                counters: HashMap::new(),
            }),
        }
    }
}

impl Monitor {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain numbers behind: still fine to read.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Counts one finished request.
    pub fn record(&self, note: RequestSeen<'_>, timed_out: bool) {
        let mut inner = self.lock();
        let routes = &mut inner.current.routes;
        if let Some(tally) = routes.get_mut(note.key) {
            tally.add(note.duration_ms);
        } else {
            let mut tally = RouteTally::default();
            tally.add(note.duration_ms);
            routes.insert(note.key.to_string(), tally);
        }
        let statuses = &mut inner.current.statuses;
        match note.status {
            400..=499 => *statuses.entry("4xx").or_default() += 1,
            500..=599 => *statuses.entry("5xx").or_default() += 1,
            _ => {}
        }
        if note.status == 429 {
            *statuses.entry("429").or_default() += 1;
        }
        if note.status == 503 {
            *statuses.entry("503").or_default() += 1;
        }
        if timed_out {
            *statuses.entry("timeout").or_default() += 1;
        }
        let slow_enough = inner.slowest.len() < SLOWEST_KEPT
            || inner
                .slowest
                .last()
                .is_some_and(|last| last.duration_ms < note.duration_ms);
        if slow_enough {
            let at = inner
                .slowest
                .partition_point(|kept| kept.duration_ms >= note.duration_ms);
            inner.slowest.insert(at, note.note());
            inner.slowest.truncate(SLOWEST_KEPT);
        }
        if note.status >= 400 {
            if inner.errors.len() == NOTES_KEPT {
                inner.errors.pop_back();
            }
            inner.errors.push_front(note.note());
        }
    }

    /// Closes the current interval into a sample. `exposition` is the Prometheus text of this
    /// process, from which gauges are read as they are and counters as rates since the last
    /// sample.
    pub fn sample(&self, exposition: &str, now: OffsetDateTime) {
        let mut inner = self.lock();
        let elapsed = inner.started.elapsed().as_secs_f64().max(0.001);
        inner.started = Instant::now();
        let interval = std::mem::take(&mut inner.current);
        let mut sample = summarise(&interval, elapsed);
        sample.at = Some(now);
        let values = parse_exposition(exposition);
        let previous = std::mem::take(&mut inner.counters);
        sample.gauges = derive(&values, &previous, elapsed);
        inner.counters = values;
        if inner.samples.len() == SAMPLES_KEPT {
            inner.samples.pop_front();
        }
        inner.samples.push_back(sample);
    }

    /// The kept samples, oldest first, followed by the interval still open (so that traffic
    /// shows at once, not after the next sample).
    pub fn series(&self, now: OffsetDateTime) -> Vec<Sample> {
        let inner = self.lock();
        let mut samples: Vec<Sample> = inner.samples.iter().cloned().collect();
        let mut open = summarise(
            &inner.current,
            inner.started.elapsed().as_secs_f64().max(1.0),
        );
        open.at = Some(now);
        if let Some(last) = samples.last() {
            open.gauges = last.gauges.clone();
        }
        samples.push(open);
        samples
    }

    pub fn recent_errors(&self) -> Vec<RequestNote> {
        self.lock().errors.iter().cloned().collect()
    }

    pub fn slowest(&self) -> Vec<RequestNote> {
        self.lock().slowest.clone()
    }
}

fn summarise(interval: &Interval, seconds: f64) -> Sample {
    let routes = interval
        .routes
        .iter()
        .map(|(route, tally)| {
            let mut sorted = tally.durations.clone();
            sorted.sort_by(f64::total_cmp);
            let sample = RouteSample {
                rate: tally.count as f64 / seconds,
                p50_ms: percentile(&sorted, 0.50),
                p95_ms: percentile(&sorted, 0.95),
                p99_ms: percentile(&sorted, 0.99),
            };
            (route.clone(), sample)
        })
        .collect();
    let statuses = ["4xx", "5xx", "429", "503", "timeout"]
        .into_iter()
        .map(|name| {
            let count = interval.statuses.get(name).copied().unwrap_or_default();
            (name, count as f64 / seconds)
        })
        .collect();
    Sample {
        at: None,
        routes,
        statuses,
        gauges: BTreeMap::new(),
    }
}

/// Nearest-rank percentile of sorted values; 0 for none.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Every sample line of the exposition, as `name{labels}` → value (labels kept verbatim).
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.trim().to_string(), value.trim().parse::<f64>().ok()?))
        })
        .collect()
}

/// Sums every series of the metric `name` whose labels contain each of `labels`.
fn sum(values: &HashMap<String, f64>, name: &str, labels: &[&str]) -> f64 {
    values
        .iter()
        .filter(|(series, _)| {
            let (metric, rest) = series.split_once('{').unwrap_or((series.as_str(), ""));
            metric == name && labels.iter().all(|label| rest.contains(label))
        })
        .map(|(_, value)| value)
        .sum()
}

/// The dashboard's named series from the exposition: gauges as they are, counters as rates,
/// histograms as the mean of the interval's observations.
fn derive(
    now: &HashMap<String, f64>,
    before: &HashMap<String, f64>,
    seconds: f64,
) -> BTreeMap<String, f64> {
    let delta =
        |name: &str, labels: &[&str]| (sum(now, name, labels) - sum(before, name, labels)).max(0.0);
    let mut out = BTreeMap::new();
    for layer in ["l1", "l2"] {
        let layer_label = format!("layer=\"{layer}\"");
        let hits = delta(
            "velro_cache_lookups_total",
            &[&layer_label, "result=\"hit\""],
        );
        let all = delta("velro_cache_lookups_total", &[&layer_label]);
        if all > 0.0 {
            out.insert(format!("cache_hit_ratio_{layer}"), hits / all);
        }
    }
    for state in ["in_use", "idle"] {
        out.insert(
            format!("db_pool_{state}"),
            sum(
                now,
                "velro_db_pool_connections",
                &[&format!("state=\"{state}\"")],
            ),
        );
    }
    out.insert(
        "db_pool_waiting".into(),
        sum(now, "velro_db_pool_acquire_waiting", &[]),
    );
    out.insert(
        "hash_queue_depth".into(),
        sum(now, "velro_hash_queue_depth", &[]),
    );
    out.insert(
        "rate_limit_refusals".into(),
        delta("velro_rate_limit_refusals_total", &[]) / seconds,
    );
    for (name, metric) in [
        ("hash_ms", "velro_hash_duration_seconds"),
        (
            "invalidation_lag_ms",
            "velro_cache_invalidation_lag_seconds",
        ),
    ] {
        let count = delta(&format!("{metric}_count"), &[]);
        if count > 0.0 {
            out.insert(
                name.into(),
                1000.0 * delta(&format!("{metric}_sum"), &[]) / count,
            );
        }
    }
    for (key, value) in now {
        if let Some(state) = key
            .strip_prefix("velro_db_server_connections{state=\"")
            .and_then(|rest| rest.strip_suffix("\"}"))
        {
            out.insert(format!("pg_{state}"), *value);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(key: &str, status: u16, duration_ms: f64) -> RequestSeen<'_> {
        let (method, route) = key.split_once(' ').expect("METHOD route");
        RequestSeen {
            key,
            method,
            route,
            status,
            duration_ms,
            request_id: "r",
        }
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&values, 0.50), 50.0);
        assert_eq!(percentile(&values, 0.99), 99.0);
        assert_eq!(percentile(&[7.0], 0.95), 7.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_slowest_list_keeps_the_slowest_in_order_and_is_bounded() {
        let monitor = Monitor::default();
        for ms in 0..100 {
            monitor.record(note("GET /a", 200, f64::from(ms)), false);
        }
        let slowest = monitor.slowest();
        assert_eq!(slowest.len(), SLOWEST_KEPT);
        assert_eq!(slowest[0].duration_ms, 99.0);
        assert_eq!(slowest[SLOWEST_KEPT - 1].duration_ms, 80.0);
    }

    #[test]
    fn errors_are_listed_newest_first_and_bounded() {
        let monitor = Monitor::default();
        for i in 0..(NOTES_KEPT + 5) {
            monitor.record(note(&format!("GET /e{i}"), 500, 1.0), false);
        }
        monitor.record(note("GET /ok", 200, 1.0), false);
        let errors = monitor.recent_errors();
        assert_eq!(errors.len(), NOTES_KEPT);
        assert_eq!(errors[0].route, format!("/e{}", NOTES_KEPT + 4));
    }

    #[test]
    fn counters_become_rates_and_ratios_between_samples() {
        let monitor = Monitor::default();
        let first = "velro_cache_lookups_total{layer=\"l1\",result=\"hit\"} 10\n\
                     velro_cache_lookups_total{layer=\"l1\",result=\"miss\"} 10\n\
                     velro_db_pool_connections{state=\"idle\"} 3\n";
        let second = "velro_cache_lookups_total{layer=\"l1\",result=\"hit\"} 19\n\
                      velro_cache_lookups_total{layer=\"l1\",result=\"miss\"} 11\n\
                      velro_db_pool_connections{state=\"idle\"} 2\n";
        monitor.sample(first, OffsetDateTime::UNIX_EPOCH);
        monitor.sample(second, OffsetDateTime::UNIX_EPOCH);
        let series = monitor.series(OffsetDateTime::UNIX_EPOCH);
        let last = &series[1].gauges;
        assert!((last["cache_hit_ratio_l1"] - 0.9).abs() < 1e-9);
        assert_eq!(last["db_pool_idle"], 2.0);
    }

    #[test]
    fn the_open_interval_shows_traffic_before_any_sample() {
        let monitor = Monitor::default();
        monitor.record(note("GET /a", 503, 12.0), true);
        let series = monitor.series(OffsetDateTime::UNIX_EPOCH);
        let open = series.last().expect("the open interval");
        assert!(open.routes["GET /a"].rate > 0.0);
        assert_eq!(open.routes["GET /a"].p99_ms, 12.0);
        assert!(open.statuses["503"] > 0.0 && open.statuses["timeout"] > 0.0);
        assert_eq!(open.statuses["429"], 0.0);
    }
}
