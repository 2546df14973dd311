//! `velro-load hold`: many keep-alive connections held open at once, token checks flowing on a
//! share of them. Goose gives every virtual user a reqwest client, its own pool and a task that
//! stays busy; that costs the generator far more than the server per connection. Here each
//! connection is one task with one socket and a small buffer, writing a fixed HTTP/1.1
//! `GET /api/v1/auth/me` and reading the answer itself.
//!
//! - `--connections N` are opened at `--connect-rate` per second, each sending one token check
//!   at once (so the server has served a request on every connection, as on a real client's).
//! - The first `--active A` of them then check a token on a fixed schedule: `--rate R` checks
//!   per second in all, so each active connection every A/R seconds, spread evenly. Latency
//!   counts from the scheduled start (a slow answer delays the connection's next check, and that
//!   delay is counted, not hidden).
//! - The others stay idle, sending one check every `--idle-ping-secs` so that the server's idle
//!   limit (`VELRO_HEADER_READ_TIMEOUT_MS`, 65 s by default) does not close them.
//! - A connection that fails (refused, reset, closed by the server, a non-200) is counted and
//!   not reopened: the count of open connections at the end shows every loss.
//!
//! It prints `HOLD open=<n>` on stderr once every connection is open, so that a script can read
//! the server's memory at that moment, then holds them for `--duration-secs`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::LoadError;

/// Settings of one `hold` run.
#[derive(Debug, Clone, Serialize)]
pub struct HoldConfig {
    pub host: String,
    pub connections: usize,
    pub active: usize,
    /// Token checks per second over all active connections.
    pub rate: f64,
    pub connect_rate: f64,
    pub idle_ping: Duration,
    /// How long the connections are held once all are open.
    pub duration: Duration,
    pub request_timeout: Duration,
    pub password: String,
}

#[derive(Default)]
struct Counters {
    open: AtomicUsize,
    peak_open: AtomicUsize,
    connect_failed: AtomicU64,
    requests: AtomicU64,
    late_starts: AtomicU64,
    failures: Mutex<BTreeMap<String, u64>>,
    /// Latency of the scheduled checks on the active connections, in µs.
    active_us: Mutex<Option<Histogram<u64>>>,
    /// Latency of the first check and the pings (idle connections), in µs.
    other_us: Mutex<Option<Histogram<u64>>>,
}

impl Counters {
    fn fail(&self, what: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            *failures.entry(what.to_string()).or_default() += 1;
        }
    }

    fn record(&self, active: bool, micros: u64) {
        let slot = if active {
            &self.active_us
        } else {
            &self.other_us
        };
        if let Ok(mut histogram) = slot.lock() {
            if let Some(histogram) = histogram.as_mut() {
                histogram.saturating_record(micros.max(1));
            }
        }
    }
}

/// What the run saw.
#[derive(Debug, Serialize)]
pub struct HoldReport {
    pub config: HoldConfig,
    pub opened: usize,
    pub peak_open: usize,
    pub open_at_end: usize,
    pub connect_failed: u64,
    pub requests: u64,
    pub failures: BTreeMap<String, u64>,
    pub late_starts: u64,
    pub active: Percentiles,
    pub idle: Percentiles,
    pub secs_to_open_all: f64,
    pub client_cpu_secs: Option<f64>,
}

#[derive(Debug, Serialize, Default)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

impl Percentiles {
    fn of(histogram: &Histogram<u64>) -> Self {
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        Self {
            count: histogram.len(),
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: histogram.max() as f64 / 1000.0,
        }
    }
}

impl HoldReport {
    pub fn table(&self) -> String {
        let c = &self.config;
        let mut out = format!(
            "hold: {} connections ({} active at {}/s, the others idle, pinging every {} s), \
             held {} s\n",
            c.connections,
            c.active,
            c.rate,
            c.idle_ping.as_secs(),
            c.duration.as_secs()
        );
        out += &format!(
            "connections: opened {} (all within {:.1} s), peak open {}, open at the end {}, \
             connect failures {}\n",
            self.opened,
            self.secs_to_open_all,
            self.peak_open,
            self.open_at_end,
            self.connect_failed
        );
        out += &format!(
            "requests: {}, failures {:?}, late starts {}\n",
            self.requests, self.failures, self.late_starts
        );
        for (name, p) in [("active", &self.active), ("idle+first", &self.idle)] {
            out += &format!(
                "{name:>10}: n={} p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}\n",
                p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms
            );
        }
        if let Some(cpu) = self.client_cpu_secs {
            out += &format!("generator CPU: {cpu:.1} s\n");
        }
        out
    }
}

fn histogram() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000, 3).ok()
}

/// Opens, drives and holds the connections, then closes them and reports.
pub async fn run(config: HoldConfig) -> Result<HoldReport, LoadError> {
    if config.connections == 0 || config.active > config.connections {
        return Err(LoadError::Config(
            "need connections >= 1 and active <= connections".into(),
        ));
    }
    raise_open_file_limit();
    let address = socket_address(&config.host)?;
    let client = reqwest::Client::builder()
        .timeout(config.request_timeout)
        .build()?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
    let email = format!("load-{run_id}-hold@example.com");
    let tokens = crate::setup::register(&client, &config.host, &email, &config.password).await?;
    let request: Arc<[u8]> = format!(
        "GET /api/v1/auth/me HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {}\r\n\r\n",
        address, tokens.access_token
    )
    .into_bytes()
    .into();

    let counters = Arc::new(Counters {
        active_us: Mutex::new(histogram()),
        other_us: Mutex::new(histogram()),
        ..Counters::default()
    });
    let cpu_before = crate::run::process_cpu_secs();
    let started = Instant::now();
    let open_phase =
        Duration::from_secs_f64(config.connections as f64 / config.connect_rate.max(1.0));
    // Scheduled checks begin once every connection had time to open, and run for the hold.
    let schedule_start = started + open_phase + Duration::from_secs(1);
    let deadline = schedule_start + config.duration;
    let period = if config.active > 0 && config.rate > 0.0 {
        Duration::from_secs_f64(config.active as f64 / config.rate)
    } else {
        Duration::MAX
    };
    let mut tasks = tokio::task::JoinSet::new();
    let connect_every = Duration::from_secs_f64(1.0 / config.connect_rate.max(1.0));
    for index in 0..config.connections {
        let at = started + connect_every.mul_f64(index as f64);
        tokio::time::sleep_until(at.into()).await;
        let active = index < config.active;
        let first = if active {
            schedule_start + period.mul_f64(index as f64 / config.active as f64)
        } else {
            Instant::now() + config.idle_ping
        };
        let every = if active { period } else { config.idle_ping };
        let (counters, request, timeout) =
            (counters.clone(), request.clone(), config.request_timeout);
        tasks.spawn(async move {
            connection(
                address, request, first, every, deadline, active, timeout, &counters,
            )
            .await;
        });
    }
    // Wait until every connection is open (or failed), then tell the script.
    let opened_by = Instant::now() + Duration::from_secs(30);
    loop {
        let open = counters.open.load(Ordering::Relaxed) as u64;
        if open + counters.connect_failed.load(Ordering::Relaxed) >= config.connections as u64
            || Instant::now() > opened_by
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let secs_to_open_all = started.elapsed().as_secs_f64();
    eprintln!(
        "HOLD open={} failed={} after {:.1} s",
        counters.open.load(Ordering::Relaxed),
        counters.connect_failed.load(Ordering::Relaxed),
        secs_to_open_all
    );
    tokio::time::sleep_until(deadline.into()).await;
    let open_at_end = counters.open.load(Ordering::Relaxed);
    // Every task ends at the deadline (the answer it may be waiting for is bounded by the timeout).
    while tasks.join_next().await.is_some() {}
    let cpu = cpu_before
        .zip(crate::run::process_cpu_secs())
        .map(|(b, a)| a - b);
    let take = |slot: &Mutex<Option<Histogram<u64>>>| {
        slot.lock()
            .ok()
            .and_then(|h| h.as_ref().map(Percentiles::of))
            .unwrap_or_default()
    };
    let failures = counters
        .failures
        .lock()
        .map(|f| f.clone())
        .unwrap_or_default();
    Ok(HoldReport {
        opened: config.connections - counters.connect_failed.load(Ordering::Relaxed) as usize,
        peak_open: counters.peak_open.load(Ordering::Relaxed),
        open_at_end,
        connect_failed: counters.connect_failed.load(Ordering::Relaxed),
        requests: counters.requests.load(Ordering::Relaxed),
        failures,
        late_starts: counters.late_starts.load(Ordering::Relaxed),
        active: take(&counters.active_us),
        idle: take(&counters.other_us),
        secs_to_open_all,
        client_cpu_secs: cpu,
        config,
    })
}

fn socket_address(host: &str) -> Result<SocketAddr, LoadError> {
    let rest = host
        .strip_prefix("http://")
        .ok_or_else(|| LoadError::Config("hold takes an http://IP:PORT host".into()))?;
    rest.trim_end_matches('/')
        .parse()
        .map_err(|_| LoadError::Config("hold takes an http://IP:PORT host".into()))
}

/// One connection: open, first check, then checks every `every` from `first` until `deadline`.
#[allow(clippy::too_many_arguments)]
async fn connection(
    address: SocketAddr,
    request: Arc<[u8]>,
    first: Instant,
    every: Duration,
    deadline: Instant,
    active: bool,
    timeout: Duration,
    counters: &Counters,
) {
    let mut stream = match tokio::time::timeout(timeout, TcpStream::connect(address)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(error)) => {
            counters.connect_failed.fetch_add(1, Ordering::Relaxed);
            counters.fail(&format!("connect: {}", error.kind()));
            return;
        }
        Err(_) => {
            counters.connect_failed.fetch_add(1, Ordering::Relaxed);
            counters.fail("connect: timeout");
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let open = counters.open.fetch_add(1, Ordering::Relaxed) + 1;
    counters.peak_open.fetch_max(open, Ordering::Relaxed);
    let mut buffer = Vec::with_capacity(512);
    let mut ok = exchange(
        &mut stream,
        &request,
        &mut buffer,
        Instant::now(),
        timeout,
        false,
        counters,
    )
    .await;
    let mut next = first;
    while ok && next < deadline {
        tokio::time::sleep_until(next.into()).await;
        let now = Instant::now();
        if now.duration_since(next) > Duration::from_millis(1) && active {
            counters.late_starts.fetch_add(1, Ordering::Relaxed);
        }
        ok = exchange(
            &mut stream,
            &request,
            &mut buffer,
            next,
            timeout,
            active,
            counters,
        )
        .await;
        next += every;
        if !active {
            // Pings are not scheduled work: a late one is not a latency.
            next = next.max(Instant::now());
        }
    }
    if ok {
        // Still open at the deadline: stay so until the report has counted it.
        tokio::time::sleep_until((deadline + Duration::from_millis(200)).into()).await;
    }
    counters.open.fetch_sub(1, Ordering::Relaxed);
}

/// Sends the request and reads one answer; false when the connection is no longer usable.
async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    buffer: &mut Vec<u8>,
    since: Instant,
    timeout: Duration,
    active: bool,
    counters: &Counters,
) -> bool {
    counters.requests.fetch_add(1, Ordering::Relaxed);
    let outcome = tokio::time::timeout(timeout, async {
        stream.write_all(request).await?;
        read_answer(stream, buffer).await
    })
    .await;
    match outcome {
        Ok(Ok(200)) => {
            counters.record(active, since.elapsed().as_micros() as u64);
            true
        }
        Ok(Ok(status)) => {
            counters.fail(&status.to_string());
            false
        }
        Ok(Err(error)) => {
            counters.fail(&format!("io: {}", error.kind()));
            false
        }
        Err(_) => {
            counters.fail("timeout");
            false
        }
    }
}

/// Reads one HTTP/1.1 answer with a Content-Length body; returns its status.
async fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> std::io::Result<u16> {
    use std::io::{Error, ErrorKind};
    buffer.clear();
    let mut chunk = [0_u8; 2048];
    loop {
        if let Some(end) = find(buffer, b"\r\n\r\n") {
            let head = std::str::from_utf8(&buffer[..end])
                .map_err(|_| Error::new(ErrorKind::InvalidData, "head is not UTF-8"))?;
            let status = head
                .get(9..12)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no status"))?;
            let length = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())
                        .flatten()
                })
                .ok_or_else(|| Error::new(ErrorKind::InvalidData, "no content-length"))?;
            let want = end + 4 + length;
            while buffer.len() < want {
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                buffer.extend_from_slice(&chunk[..n]);
            }
            return Ok(status);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(ErrorKind::UnexpectedEof.into());
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// As the server does: the soft limit on open files up to the hard limit (each connection is
/// one), so that `ulimit -n` is only needed when the hard limit itself is too low.
fn raise_open_file_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let limit = getrlimit(Resource::Nofile);
    if let (Some(current), Some(maximum)) = (limit.current, limit.maximum) {
        if current < maximum {
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(maximum),
                    maximum: Some(maximum),
                },
            );
        }
    }
}
