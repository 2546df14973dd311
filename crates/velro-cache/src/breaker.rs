//! The circuit breaker in front of Redis: after enough consecutive failures no call is made at
//! all until a cool-down has passed, then one probe decides. Time is passed in, so the state
//! machine is tested without sleeping; no I/O happens here.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
pub(crate) struct Breaker {
    threshold: u32,
    cooldown: Duration,
    state: Mutex<State>,
    // Mirrors `state` for lock-free health reads.
    open: AtomicBool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    /// No calls before `probe_at`; the first caller after it is the probe, and moves `probe_at`
    /// one cool-down on, so that a probe whose caller gave up never wedges the breaker.
    Open {
        probe_at: Instant,
    },
}

impl Breaker {
    pub(crate) fn new(threshold: u32, cooldown: Duration) -> Self {
        Self {
            threshold: threshold.max(1),
            cooldown,
            state: Mutex::new(State::Closed { failures: 0 }),
            open: AtomicBool::new(false),
        }
    }

    /// Whether a call may go out now.
    pub(crate) fn allow(&self, now: Instant) -> bool {
        let mut state = self.lock();
        match *state {
            State::Closed { .. } => true,
            State::Open { probe_at } if now >= probe_at => {
                *state = State::Open {
                    probe_at: now + self.cooldown,
                };
                true
            }
            State::Open { .. } => false,
        }
    }

    pub(crate) fn record_success(&self) {
        let mut state = self.lock();
        *state = State::Closed { failures: 0 };
        self.publish(false);
    }

    pub(crate) fn record_failure(&self, now: Instant) {
        let mut state = self.lock();
        let failures = match *state {
            State::Closed { failures } => failures.saturating_add(1),
            State::Open { .. } => self.threshold,
        };
        if failures >= self.threshold {
            *state = State::Open {
                probe_at: now + self.cooldown,
            };
            self.publish(true);
        } else {
            *state = State::Closed { failures };
        }
    }

    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::Relaxed)
    }

    fn publish(&self, open: bool) {
        if self.open.swap(open, Ordering::Relaxed) != open {
            metrics::gauge!("velro_cache_circuit_open").set(if open { 1.0 } else { 0.0 });
            if open {
                tracing::warn!(
                    cooldown_ms = self.cooldown.as_millis() as u64,
                    "Redis circuit opened; requests fall through to the store"
                );
            } else {
                tracing::info!("Redis circuit closed");
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The state is a plain value that every writer replaces whole: a panic elsewhere
        // cannot leave it half-written.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(2);

    #[test]
    fn it_opens_after_the_threshold_of_consecutive_failures_only() {
        let t0 = Instant::now();
        let breaker = Breaker::new(3, COOLDOWN);
        breaker.record_failure(t0);
        breaker.record_failure(t0);
        breaker.record_success();
        breaker.record_failure(t0);
        breaker.record_failure(t0);
        assert!(
            breaker.allow(t0) && !breaker.is_open(),
            "the success reset the count"
        );
        breaker.record_failure(t0);
        assert!(breaker.is_open());
        assert!(!breaker.allow(t0));
        assert!(!breaker.allow(t0 + COOLDOWN - Duration::from_millis(1)));
    }

    #[test]
    fn after_the_cooldown_exactly_one_probe_goes_out() {
        let t0 = Instant::now();
        let breaker = Breaker::new(1, COOLDOWN);
        breaker.record_failure(t0);
        let later = t0 + COOLDOWN;
        assert!(breaker.allow(later), "the probe");
        assert!(
            !breaker.allow(later),
            "no second caller while the probe is out"
        );
        assert!(breaker.is_open());
    }

    #[test]
    fn a_successful_probe_closes_and_a_failed_one_reopens() {
        let t0 = Instant::now();
        let breaker = Breaker::new(5, COOLDOWN);
        for _ in 0..5 {
            breaker.record_failure(t0);
        }
        let probe = t0 + COOLDOWN;
        assert!(breaker.allow(probe));
        breaker.record_failure(probe);
        assert!(breaker.is_open(), "one failure in the open state is enough");
        assert!(!breaker.allow(probe + COOLDOWN - Duration::from_millis(1)));
        let probe = probe + COOLDOWN;
        assert!(breaker.allow(probe));
        breaker.record_success();
        assert!(!breaker.is_open());
        assert!(breaker.allow(probe) && breaker.allow(probe));
    }

    #[test]
    fn an_abandoned_probe_does_not_wedge_it() {
        let t0 = Instant::now();
        let breaker = Breaker::new(1, COOLDOWN);
        breaker.record_failure(t0);
        assert!(breaker.allow(t0 + COOLDOWN));
        // The probe's caller was cancelled and reported nothing.
        assert!(breaker.allow(t0 + COOLDOWN * 2));
    }

    #[test]
    fn a_zero_threshold_behaves_as_one() {
        let breaker = Breaker::new(0, COOLDOWN);
        assert!(!breaker.is_open());
        breaker.record_failure(Instant::now());
        assert!(breaker.is_open());
    }
}
