//! The figure behind "an unknown email costs the same as a wrong password": medians of
//! alternating verifications against a stored hash and against the dummy, with the production
//! Argon2 parameters. A measurement, not an assertion (timings flake on shared machines); that
//! the dummy verification runs at all is asserted by the hashing unit tests.
//!
//! `cargo bench -p velro-core --bench login_timing` (rounds: `VELRO_TIMING_ROUNDS`, default 31).

use std::time::{Duration, Instant};

use velro_core::hashing::{HashingConfig, PasswordHasher};
use velro_core::Secret;

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(measure());
}

async fn measure() {
    let config = HashingConfig {
        threads: 1,
        max_wait: Duration::from_secs(60),
        worker_niceness: 0,
        ..HashingConfig::default()
    };
    let hasher = PasswordHasher::start(&config).expect("the pool starts");
    let secret = |text: &str| Secret::new(text.to_string());
    let stored = hasher
        .hash(secret("the account's real password"))
        .await
        .expect("hashes");
    let rounds: usize = std::env::var("VELRO_TIMING_ROUNDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(31);
    let timed = |known: bool| {
        let hasher = hasher.clone();
        let stored = known.then(|| stored.clone());
        async move {
            let started = Instant::now();
            let outcome = hasher
                .verify(secret("not the right password"), stored)
                .await
                .expect("verifies");
            assert!(!outcome.matches);
            started.elapsed()
        }
    };
    // Warm-up: the first verification of each kind pays for allocation.
    timed(true).await;
    timed(false).await;
    let mut known = Vec::with_capacity(rounds);
    let mut unknown = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        known.push(timed(true).await);
        unknown.push(timed(false).await);
    }
    let median = |samples: &mut Vec<Duration>| {
        samples.sort_unstable();
        samples[samples.len() / 2]
    };
    let known = median(&mut known);
    let unknown = median(&mut unknown);
    let difference = (known.as_secs_f64() - unknown.as_secs_f64()).abs() / known.as_secs_f64();
    println!(
        "verification medians over {rounds} rounds: wrong password {:.1} ms, unknown email {:.1} ms, difference {:.1}%",
        known.as_secs_f64() * 1000.0,
        unknown.as_secs_f64() * 1000.0,
        difference * 100.0
    );
}
