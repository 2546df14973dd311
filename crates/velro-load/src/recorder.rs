//! Per-endpoint latency (microseconds, HdrHistogram) and outcome counts, shared by all virtual
//! users. Goose's own metrics round to whole milliseconds, too coarse for a cached /me.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Highest latency the histograms hold (60 s); slower answers are clamped to it.
const MAX_MICROS: u64 = 60_000_000;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered with this status.
    Status(u16),
    /// No answer within the client's timeout.
    Timeout,
    /// Connection refused, reset, or another transport failure.
    Transport,
}

impl Outcome {
    /// The key under which the report counts this outcome.
    pub fn key(self) -> String {
        match self {
            Outcome::Status(code) => code.to_string(),
            Outcome::Timeout => "timeout".into(),
            Outcome::Transport => "transport".into(),
        }
    }
}

/// One endpoint's figures so far.
pub struct EndpointStats {
    /// Every request, successes and errors.
    pub latency_us: Histogram<u64>,
    /// Only the requests that did not get the expected status (e.g. refused with 503).
    pub error_latency_us: Histogram<u64>,
    pub outcomes: BTreeMap<String, u64>,
    pub errors: u64,
}

impl EndpointStats {
    fn new() -> Self {
        let histogram = || {
            Histogram::new_with_bounds(1, MAX_MICROS, 3)
                .expect("static bounds are valid: 1 <= low, high >= 2 * low, 3 significant digits")
        };
        Self {
            latency_us: histogram(),
            error_latency_us: histogram(),
            outcomes: BTreeMap::new(),
            errors: 0,
        }
    }
}

/// Shared by all users of one run.
pub struct Recorder {
    endpoints: Mutex<BTreeMap<&'static str, EndpointStats>>,
    window: Mutex<Option<(Instant, Instant)>>,
    late_starts: AtomicU64,
    journeys: AtomicU64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            endpoints: Mutex::new(BTreeMap::new()),
            window: Mutex::new(None),
            late_starts: AtomicU64::new(0),
            journeys: AtomicU64::new(0),
        }
    }

    /// Records one request that started at `started` (the intended start in the open model).
    pub fn record(
        &self,
        endpoint: &'static str,
        started: Instant,
        outcome: Outcome,
        expected: u16,
    ) {
        let ended = Instant::now();
        let micros = u64::try_from(ended.saturating_duration_since(started).as_micros())
            .unwrap_or(MAX_MICROS)
            .clamp(1, MAX_MICROS);
        {
            let mut endpoints = self
                .endpoints
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let stats = endpoints.entry(endpoint).or_insert_with(EndpointStats::new);
            stats.latency_us.saturating_record(micros);
            *stats.outcomes.entry(outcome.key()).or_insert(0) += 1;
            if outcome != Outcome::Status(expected) {
                stats.errors += 1;
                stats.error_latency_us.saturating_record(micros);
            }
        }
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *window = Some(match *window {
            None => (started, ended),
            Some((first, last)) => (first.min(started), last.max(ended)),
        });
    }

    /// Counts a scheduled request that could not start on time (every user was busy).
    pub fn late_start(&self) {
        self.late_starts.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a journey whose every step succeeded.
    pub fn journey_done(&self) {
        self.journeys.fetch_add(1, Ordering::Relaxed);
    }

    pub fn journeys(&self) -> u64 {
        self.journeys.load(Ordering::Relaxed)
    }

    pub fn late_starts(&self) -> u64 {
        self.late_starts.load(Ordering::Relaxed)
    }

    /// From the first recorded start to the last recorded end.
    pub fn window(&self) -> Duration {
        self.window
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .map_or(Duration::ZERO, |(first, last)| {
                last.saturating_duration_since(first)
            })
    }

    /// Hands the figures to `read` under the lock.
    pub fn with_endpoints<R>(
        &self,
        read: impl FnOnce(&BTreeMap<&'static str, EndpointStats>) -> R,
    ) -> R {
        let endpoints = self
            .endpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        read(&endpoints)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unexpected_status_counts_as_an_error_and_keeps_its_code() {
        let recorder = Recorder::new();
        let now = Instant::now();
        recorder.record("me", now, Outcome::Status(200), 200);
        recorder.record("me", now, Outcome::Status(503), 200);
        recorder.record("me", now, Outcome::Timeout, 200);
        recorder.with_endpoints(|endpoints| {
            let me = &endpoints["me"];
            assert_eq!(me.latency_us.len(), 3);
            assert_eq!(me.errors, 2);
            assert_eq!(me.outcomes["503"], 1);
            assert_eq!(me.outcomes["timeout"], 1);
        });
    }
}
