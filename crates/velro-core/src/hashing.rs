//! Password hashing on its own bounded pool of threads, so that Argon2's CPU cost never lands on
//! the async runtime and a flood of logins is refused at once instead of queued into time-outs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use crossbeam_channel::{bounded, Sender, TrySendError};
use rand::rngs::OsRng;
use tokio::sync::oneshot;

use crate::domain::PasswordHash;
use crate::{AuthError, Secret};

/// Argon2id parameters and the pool's size. The defaults are OWASP's (m=19456 KiB, t=2, p=1).
#[derive(Debug, Clone)]
pub struct HashingConfig {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// Worker threads; the number of cores is the sensible value.
    pub threads: usize,
    /// Jobs that may wait for a worker before new ones are refused as overloaded.
    pub queue_capacity: usize,
    /// Longest wait for a result, queueing included; kept below the request deadline so that a
    /// slow pool answers 503 `overloaded` rather than running into the deadline.
    pub max_wait: std::time::Duration,
    /// Niceness added to the workers' (Linux; 0 leaves it alone). Hashes use whole cores
    /// for tens of milliseconds each; a lower priority lets the cheap requests (token checks,
    /// health, refusals) preempt them, while the hashes still get every cycle nobody else wants.
    pub worker_niceness: i32,
}

impl Default for HashingConfig {
    fn default() -> Self {
        Self {
            memory_kib: 19_456,
            iterations: 2,
            parallelism: 1,
            threads: thread::available_parallelism().map_or(2, usize::from),
            queue_capacity: 64,
            max_wait: std::time::Duration::from_secs(3),
            worker_niceness: 10,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashingConfigError {
    #[error("invalid Argon2 parameters: {0}")]
    Params(argon2::Error),
    #[error("the hash pool needs at least one thread and a queue of at least one")]
    EmptyPool,
    #[error("could not start a hashing thread")]
    Spawn(#[source] std::io::Error),
    #[error("could not compute the dummy hash: {0}")]
    Dummy(argon2::password_hash::Error),
}

/// The outcome of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    pub matches: bool,
    /// The hash is bcrypt or uses other Argon2 parameters: store a fresh one.
    pub needs_rehash: bool,
}

type Job = Box<dyn FnOnce() + Send>;

const DUMMY_PASSWORD: &str = "velro dummy password, never a real one";

/// Cheap to clone; all clones share one pool. The pool's threads end when the last clone drops.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    params: Params,
    max_wait: std::time::Duration,
    jobs: Sender<Job>,
    queue_capacity: usize,
    /// Verified against when an email is unknown, so that such a login costs the same time.
    dummy_hash: String,
    /// Argon2/bcrypt verifications run, dummy ones included: what proves the dummy is never
    /// skipped.
    verifications: AtomicU64,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("params", &self.inner.params)
            .finish_non_exhaustive()
    }
}

fn argon2id(params: Params) -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash_with(params: &Params, password: &str) -> Result<String, argon2::password_hash::Error> {
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0_u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes)?;
    let length = params.output_len().unwrap_or(Params::DEFAULT_OUTPUT_LEN);
    let hasher = argon2id(params.clone());
    let output = Output::init_with(length, |out| {
        with_blocks(params.block_count(), |blocks| {
            hasher.hash_password_into_with_memory(password.as_bytes(), salt_raw, out, blocks)
        })
        .map_err(Into::into)
    })?;
    let hash = argon2::PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params)?,
        salt: Some(salt.as_salt()),
        hash: Some(output),
    };
    Ok(hash.to_string())
}

thread_local! {
    /// Argon2's working memory (m_cost KiB: 19 MiB with the defaults), kept by each hashing
    /// thread from one hash to the next. Allocated and freed per hash, these buffers are large
    /// enough that glibc's malloc raises its mmap threshold past them after the first free and
    /// then serves them from per-thread arenas that are not returned to the system: the peak
    /// RSS grew with every thread that ever hashed (issue 11). One buffer per thread is the
    /// same peak, held steadily, and saves the page faults of touching 19 MiB anew each time.
    static BLOCKS: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` with this thread's Argon2 buffer of at least `count` blocks (a fresh one if the
/// thread's is busy, which only a re-entrant call could cause).
fn with_blocks<T>(count: usize, work: impl FnOnce(&mut [Block]) -> T) -> T {
    BLOCKS.with(|cell| match cell.try_borrow_mut() {
        Ok(mut blocks) => {
            if blocks.len() != count {
                // Exactly the size the parameters need: a hash with other parameters (a stored
                // hash being verified before its rehash) resizes it, and the next one back.
                *blocks = vec![Block::default(); count];
            }
            work(&mut blocks)
        }
        Err(_) => work(&mut vec![Block::default(); count]),
    })
}

/// Verifies `password` against a parsed Argon2id v0x13 hash with the thread's buffer; `None`
/// when the hash is another variant or lacks its parts (the caller then verifies the usual way).
fn verify_argon2id_in_place(password: &str, parsed: &argon2::PasswordHash<'_>) -> Option<bool> {
    if parsed.algorithm != Algorithm::Argon2id.ident()
        || parsed.version != Some(Version::V0x13.into())
    {
        return None;
    }
    let expected = parsed.hash?;
    let salt = parsed.salt?;
    let params = Params::try_from(parsed).ok()?;
    // A key id or associated data (never written by Velro) goes through the crate's verifier.
    if !params.keyid().is_empty() || !params.data().is_empty() {
        return None;
    }
    let mut salt_bytes = [0_u8; 64];
    let salt_raw = salt.decode_b64(&mut salt_bytes).ok()?;
    // The stored hash's own length decides what is computed, as argon2's verifier does.
    let hasher = Argon2::new(
        Algorithm::Argon2id,
        Version::V0x13,
        Params::new(
            params.m_cost(),
            params.t_cost(),
            params.p_cost(),
            Some(expected.len()),
        )
        .ok()?,
    );
    let computed = Output::init_with(expected.len(), |out| {
        with_blocks(params.block_count(), |blocks| {
            hasher.hash_password_into_with_memory(password.as_bytes(), salt_raw, out, blocks)
        })
        .map_err(Into::into)
    })
    .ok()?;
    // `Output`'s equality is constant-time.
    Some(computed == expected)
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| hash.starts_with(prefix))
}

fn verify_with(params: &Params, password: &str, stored: &str) -> Verification {
    if is_bcrypt(stored) {
        let matches = bcrypt::verify(password, stored).unwrap_or(false);
        return Verification {
            matches,
            needs_rehash: true,
        };
    }
    let Ok(parsed) = argon2::PasswordHash::new(stored) else {
        tracing::warn!("stored password hash is not a PHC string; treating as a mismatch");
        return Verification {
            matches: false,
            needs_rehash: false,
        };
    };
    // Any Argon2 variant verifies; only Argon2id with the current parameters is kept as is.
    let matches = verify_argon2id_in_place(password, &parsed).unwrap_or_else(|| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    });
    let current = parsed.algorithm.as_str() == "argon2id"
        && parsed.version == Some(Version::V0x13.into())
        && Params::try_from(&parsed).is_ok_and(|p| {
            p.m_cost() == params.m_cost()
                && p.t_cost() == params.t_cost()
                && p.p_cost() == params.p_cost()
        });
    Verification {
        matches,
        needs_rehash: !current,
    }
}

impl PasswordHasher {
    /// Starts the pool's threads and computes the dummy hash (once, at start-up).
    pub fn start(config: &HashingConfig) -> Result<Self, HashingConfigError> {
        if config.threads == 0 || config.queue_capacity == 0 {
            return Err(HashingConfigError::EmptyPool);
        }
        let params = Params::new(
            config.memory_kib,
            config.iterations,
            config.parallelism,
            None,
        )
        .map_err(HashingConfigError::Params)?;
        // On a short-lived thread, so that its Argon2 buffer goes with it instead of staying
        // with the caller (a runtime worker) for good.
        let dummy_hash = thread::scope(|scope| {
            scope
                .spawn(|| hash_with(&params, DUMMY_PASSWORD))
                .join()
                .unwrap_or(Err(argon2::password_hash::Error::Crypto))
        })
        .map_err(HashingConfigError::Dummy)?;
        // Present from the start, so that the first refusal is an increase a rate() can see.
        metrics::counter!("velro_hash_rejections_total").increment(0);
        let (jobs, queue) = bounded::<Job>(config.queue_capacity);
        for index in 0..config.threads {
            let queue = queue.clone();
            let niceness = config.worker_niceness;
            thread::Builder::new()
                .name(format!("velro-hash-{index}"))
                .spawn(move || {
                    lower_priority(niceness);
                    for job in queue {
                        job();
                    }
                })
                .map_err(HashingConfigError::Spawn)?;
        }
        Ok(Self {
            inner: Arc::new(Inner {
                params,
                max_wait: config.max_wait,
                jobs,
                queue_capacity: config.queue_capacity,
                dummy_hash,
                verifications: AtomicU64::new(0),
            }),
        })
    }

    /// Jobs waiting for a worker right now.
    pub fn queue_depth(&self) -> usize {
        self.inner.jobs.len()
    }

    /// Jobs that may wait before new ones are refused: what `queue_depth` is measured against.
    pub fn queue_capacity(&self) -> usize {
        self.inner.queue_capacity
    }

    /// Refuses at once when the queue is full, so that a flood of logins is turned away before
    /// any database work is spent on it. Submitting checks again; this is only the cheap early
    /// answer.
    pub fn admit(&self) -> Result<(), AuthError> {
        if self.inner.jobs.is_full() {
            metrics::counter!("velro_hash_rejections_total").increment(1);
            return Err(AuthError::Overloaded {
                retry_after_secs: 1,
            });
        }
        Ok(())
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, AuthError> {
        let (reply, result) = oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have given up (deadline, disconnect) while this waited in line.
            if !reply.is_closed() {
                let started = std::time::Instant::now();
                let result = work();
                metrics::histogram!("velro_hash_duration_seconds")
                    .record(started.elapsed().as_secs_f64());
                let _ = reply.send(result);
            }
        });
        match self.inner.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("velro_hash_rejections_total").increment(1);
                return Err(AuthError::Overloaded {
                    retry_after_secs: 1,
                });
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(AuthError::internal(PoolGone));
            }
        }
        match tokio::time::timeout(self.inner.max_wait, result).await {
            Ok(outcome) => outcome.map_err(|_| AuthError::internal(PoolGone)),
            // Dropping the receiver lets a job still in line be skipped by its worker.
            Err(_) => Err(AuthError::Overloaded {
                retry_after_secs: 1,
            }),
        }
    }

    pub async fn hash(&self, password: Secret<String>) -> Result<PasswordHash, AuthError> {
        let params = self.inner.params.clone();
        let hashed = self
            .run(move || hash_with(&params, password.expose()))
            .await?
            .map_err(|error| AuthError::internal(HashFailed(error)))?;
        Ok(PasswordHash::new(hashed))
    }

    /// Checks `password` against `stored`, or against the dummy hash when there is none. Both
    /// go through the one verification below, so that they cost the same; with no stored hash
    /// the answer never matches.
    pub async fn verify(
        &self,
        password: Secret<String>,
        stored: Option<PasswordHash>,
    ) -> Result<Verification, AuthError> {
        let inner = Arc::clone(&self.inner);
        self.run(move || {
            let known = stored.is_some();
            let against = stored
                .as_ref()
                .map_or(inner.dummy_hash.as_str(), PasswordHash::as_str);
            inner.verifications.fetch_add(1, Ordering::Relaxed);
            let outcome = verify_with(&inner.params, password.expose(), against);
            Verification {
                matches: known && outcome.matches,
                needs_rehash: known && outcome.needs_rehash,
            }
        })
        .await
    }

    /// Verifications run so far, dummy ones included.
    #[cfg(test)]
    fn verifications(&self) -> u64 {
        self.inner.verifications.load(Ordering::Relaxed)
    }
}

/// Lowers the calling thread's priority by `niceness` steps. On Linux a thread is its own scheduling entity, so
/// this touches no other thread; a failure only costs latency, so it is logged, not fatal.
#[cfg(target_os = "linux")]
fn lower_priority(niceness: i32) {
    if niceness == 0 {
        return;
    }
    let thread = rustix::thread::gettid();
    // Relative to the thread's current niceness: a server started under `nice` keeps its hash
    // workers below its request threads instead of raising them back to the absolute value.
    let current = rustix::process::getpriority_process(Some(thread)).unwrap_or(0);
    let target = (current + niceness).min(19);
    if let Err(error) = rustix::process::setpriority_process(Some(thread), target) {
        tracing::warn!(%error, niceness, "could not lower the hashing thread's priority");
    }
}

#[cfg(not(target_os = "linux"))]
fn lower_priority(_niceness: i32) {}

#[derive(Debug, thiserror::Error)]
#[error("the password hashing pool has stopped")]
struct PoolGone;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
struct HashFailed(argon2::password_hash::Error);

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> HashingConfig {
        HashingConfig {
            memory_kib: 64,
            iterations: 1,
            parallelism: 1,
            threads: 1,
            queue_capacity: 4,
            max_wait: std::time::Duration::from_secs(30),
            worker_niceness: 0,
        }
    }

    fn secret(s: &str) -> Secret<String> {
        Secret::new(s.to_string())
    }

    #[test]
    fn hashes_made_in_the_reused_buffer_are_the_argon2_crates_own_and_verify_both_ways() {
        use argon2::password_hash::PasswordHasher as _;
        let params = Params::new(64, 1, 1, None).expect("valid parameters");
        let other = Params::new(128, 1, 1, None).expect("valid parameters");
        let ours = hash_with(&params, "correct horse").expect("hashes");
        let parsed = argon2::PasswordHash::new(&ours).expect("a PHC string");
        assert!(Argon2::default()
            .verify_password(b"correct horse", &parsed)
            .is_ok());
        assert!(Argon2::default()
            .verify_password(b"wrong horse", &parsed)
            .is_err());
        let salt = SaltString::generate(&mut OsRng);
        let theirs = argon2id(params.clone())
            .hash_password(b"correct horse", &salt)
            .expect("hashes")
            .to_string();
        let theirs_other = argon2id(other.clone())
            .hash_password(b"correct horse", &salt)
            .expect("hashes")
            .to_string();
        // Twice, with a hash of other parameters between: the buffer is resized and back.
        for _ in 0..2 {
            assert!(verify_with(&params, "correct horse", &theirs).matches);
            assert!(!verify_with(&params, "wrong horse", &theirs).matches);
            let outdated = verify_with(&params, "correct horse", &theirs_other);
            assert!(outdated.matches && outdated.needs_rehash);
            assert!(verify_with(&params, "correct horse", &ours).matches);
        }
    }

    #[tokio::test]
    async fn a_hash_verifies_only_its_own_password() {
        let hasher = PasswordHasher::start(&cheap()).expect("pool starts");
        let hash = hasher.hash(secret("correct horse")).await.expect("hashes");
        assert!(hash.as_str().starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        let right = hasher
            .verify(secret("correct horse"), Some(hash.clone()))
            .await;
        assert_eq!(
            right.ok(),
            Some(Verification {
                matches: true,
                needs_rehash: false
            })
        );
        let wrong = hasher.verify(secret("wrong horse"), Some(hash)).await;
        assert_eq!(wrong.ok().map(|v| v.matches), Some(false));
    }

    #[tokio::test]
    async fn unknown_users_run_a_real_verification_against_the_dummy_and_never_match() {
        let hasher = PasswordHasher::start(&cheap()).expect("pool starts");
        let before = hasher.verifications();
        let outcome = hasher
            .verify(secret("anything"), None)
            .await
            .expect("verifies");
        assert_eq!(
            outcome,
            Verification {
                matches: false,
                needs_rehash: false
            }
        );
        assert_eq!(
            hasher.verifications(),
            before + 1,
            "the dummy verification ran"
        );
        // Even the dummy's own password does not sign in an unknown user.
        let dummy = hasher
            .verify(secret(DUMMY_PASSWORD), None)
            .await
            .expect("verifies");
        assert!(!dummy.matches);
        assert_eq!(hasher.verifications(), before + 2);
    }

    #[tokio::test]
    async fn bcrypt_and_outdated_argon2_hashes_verify_and_ask_for_a_rehash() {
        let hasher = PasswordHasher::start(&cheap()).expect("pool starts");
        let bcrypt_hash = bcrypt::hash("imported pw", 4).expect("bcrypt hashes");
        for prefix in ["$2a$", "$2y$", "$2b$"] {
            let stored = format!("{prefix}{}", &bcrypt_hash[4..]);
            let outcome = hasher
                .verify(secret("imported pw"), Some(PasswordHash::new(stored)))
                .await
                .expect("verifies");
            assert_eq!(
                outcome,
                Verification {
                    matches: true,
                    needs_rehash: true
                },
                "{prefix}"
            );
        }
        let old_params = Params::new(32, 1, 1, None).expect("valid");
        let old = hash_with(&old_params, "older pw").expect("hashes");
        let outcome = hasher
            .verify(secret("older pw"), Some(PasswordHash::new(old)))
            .await
            .expect("verifies");
        assert_eq!(
            outcome,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn workers_run_at_the_configured_niceness() {
        let mut config = cheap();
        config.worker_niceness = 7;
        let hasher = PasswordHasher::start(&config).expect("pool starts");
        let (reply, niceness) = std::sync::mpsc::channel();
        let job: Job = Box::new(move || {
            let thread = rustix::thread::gettid();
            let _ = reply.send(rustix::process::getpriority_process(Some(thread)));
        });
        hasher.inner.jobs.send(job).expect("the pool runs");
        let niceness = niceness.recv().expect("the job runs").expect("readable");
        let ours = rustix::process::getpriority_process(None).expect("readable");
        assert_eq!(niceness, (ours + 7).min(19));
    }

    #[tokio::test]
    async fn garbage_hashes_do_not_match() {
        let hasher = PasswordHasher::start(&cheap()).expect("pool starts");
        let outcome = hasher
            .verify(secret("x"), Some(PasswordHash::new("not a hash".into())))
            .await
            .expect("verifies");
        assert!(!outcome.matches);
    }

    /// Occupies the pool's only worker until the returned sender is used.
    async fn hold_the_worker(
        hasher: &PasswordHasher,
    ) -> (
        std::sync::mpsc::Sender<()>,
        tokio::task::JoinHandle<Result<(), AuthError>>,
    ) {
        let (started, worker_busy) = std::sync::mpsc::channel::<()>();
        let (release, blocked) = std::sync::mpsc::channel::<()>();
        let busy = tokio::spawn(hasher.clone().run_owned(move || {
            let _ = started.send(());
            let _ = blocked.recv();
        }));
        tokio::task::spawn_blocking(move || worker_busy.recv())
            .await
            .expect("joins")
            .expect("the worker starts the job");
        (release, busy)
    }

    #[tokio::test]
    async fn a_full_queue_is_refused_at_once() {
        let hasher = PasswordHasher::start(&cheap()).expect("pool starts");
        let (release, busy) = hold_the_worker(&hasher).await;
        let waiting: Vec<_> = (0..4)
            .map(|_| tokio::spawn(hasher.clone().run_owned(|| ())))
            .collect();
        while hasher.queue_depth() < 4 {
            tokio::task::yield_now().await;
        }
        let refused = hasher.verify(secret("x"), None).await;
        assert!(matches!(
            refused,
            Err(AuthError::Overloaded {
                retry_after_secs: 1
            })
        ));
        assert!(matches!(
            hasher.admit(),
            Err(AuthError::Overloaded {
                retry_after_secs: 1
            })
        ));
        release.send(()).expect("worker waits");
        assert!(busy.await.expect("joins").is_ok());
        for handle in waiting {
            assert!(handle.await.expect("joins").is_ok());
        }
        assert!(hasher.admit().is_ok(), "an empty queue admits again");
    }

    #[tokio::test]
    async fn a_wait_longer_than_the_bound_is_refused_as_overloaded() {
        let mut config = cheap();
        config.max_wait = std::time::Duration::from_millis(50);
        let hasher = PasswordHasher::start(&config).expect("pool starts");
        let (release, busy) = hold_the_worker(&hasher).await;
        // The only worker is held, so this job can only wait in line until the bound.
        let waited = hasher.verify(secret("x"), None).await;
        assert!(matches!(waited, Err(AuthError::Overloaded { .. })));
        release.send(()).expect("worker waits");
        let _ = busy.await;
    }

    impl PasswordHasher {
        async fn run_owned(self, work: impl FnOnce() + Send + 'static) -> Result<(), AuthError> {
            self.run(work).await
        }
    }
}
