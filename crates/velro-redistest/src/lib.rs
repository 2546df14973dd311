//! Test support: one throwaway redis-server per test process (or the server named by
//! `VELRO_TEST_REDIS_URL`), and a fake Redis that accepts connections and never answers. Key
//! layouts and cache behaviour do not belong here; they are velro-cache's.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

const URL_VAR: &str = "VELRO_TEST_REDIS_URL";
const READY_TIMEOUT: Duration = Duration::from_secs(10);
const PING_TIMEOUT: Duration = Duration::from_millis(500);

/// Keeps the server alive until the test process closes the wrapper's stdin, which the kernel
/// does however the process ends (return, panic, abort, kill); then stops it. `$@` is the
/// server command.
const SUPERVISOR: &str = r#""$@" &
pid=$!
read -r _ignored
kill "$pid"
wait "$pid""#;

/// URL of the test Redis, or None when there is none (prints a visible "skipping Redis tests:
/// <why>" line to stderr, once per process). With the environment variable CI=true, an
/// unavailable Redis panics instead. Tests share the server: give keys a unique prefix.
pub fn redis_url() -> Option<String> {
    let found = if let Some(url) = std::env::var_os(URL_VAR).filter(|url| !url.is_empty()) {
        url.into_string()
            .map_err(|_| format!("{URL_VAR} is not valid UTF-8"))
    } else {
        // Only std handles live here: each #[tokio::test] has its own runtime, so a connection
        // kept in a static would outlive the runtime that drives it.
        static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
        match SERVER.get_or_init(Server::start) {
            Ok(server) => Ok(server.url.clone()),
            Err(why) => Err(why.clone()),
        }
    };
    found.map_or_else(|why| unavailable(&why), Some)
}

/// A `redis://` URL whose server accepts TCP connections and never sends a byte: the hung
/// dependency. The listener and every accepted connection live until the process exits.
pub fn hung_redis() -> String {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .expect("invariant: a test machine can listen on a loopback port");
    let addr = listener
        .local_addr()
        .expect("invariant: a bound listener has an address");
    thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            // Kept open and unread: the client sees a live connection that never answers.
            held.push(stream);
        }
    });
    format!("redis://{addr}/")
}

/// A TCP proxy to a Redis that can be made to stall: while stalled, nothing is forwarded in
/// either direction (bytes wait, connections stay open), as with a server that hangs after
/// clients have connected. Its threads live until the process exits.
#[derive(Debug, Clone)]
pub struct StallingProxy {
    /// A `redis://` URL that goes through the proxy.
    pub url: String,
    stalled: Arc<AtomicBool>,
}

impl StallingProxy {
    /// Proxies to the `redis://host:port/` URL `upstream`.
    pub fn start(upstream: &str) -> Self {
        let upstream = upstream
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .expect("invariant: a test machine can listen on a loopback port");
        let addr = listener
            .local_addr()
            .expect("invariant: a bound listener has an address");
        let stalled = Arc::new(AtomicBool::new(false));
        let flag = stalled.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (Ok(client_too), Ok(server_too)) = (client.try_clone(), server.try_clone())
                else {
                    continue;
                };
                let (up, down) = (flag.clone(), flag.clone());
                thread::spawn(move || pump(client, server, &up));
                thread::spawn(move || pump(server_too, client_too, &down));
            }
        });
        Self {
            url: format!("redis://{addr}/"),
            stalled,
        }
    }

    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }
}

fn pump(mut from: TcpStream, mut to: TcpStream, stalled: &AtomicBool) {
    use std::io::Read;
    let mut buf = [0_u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        while stalled.load(Ordering::SeqCst) {
            thread::sleep(Duration::from_millis(2));
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}

fn unavailable(why: &str) -> Option<String> {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("Redis tests cannot be skipped when CI=true: {why}");
    }
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to the stream: libtest captures eprintln!, which would hide the skip.
        let _ = writeln!(io::stderr(), "skipping Redis tests: {why}");
    });
    None
}

/// The throwaway server, alive for as long as the test process.
struct Server {
    url: String,
    // Never written to: its only job is to close when the process exits (see SUPERVISOR).
    _lifeline: ChildStdin,
}

impl Server {
    fn start() -> Result<Self, String> {
        let bin = find_server().ok_or("no redis-server in /usr/bin or on PATH")?;
        let port = free_port()?;
        let mut server = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .current_dir(std::env::temp_dir())
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Out of the terminal's process group: Ctrl-C stops the tests, which then stop the
            // server through the lifeline.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start redis-server: {e}"))?;
        let lifeline = server
            .stdin
            .take()
            .ok_or("the wrapper's stdin was not piped")?;
        wait_until_ready(&mut server, port)?;
        Ok(Self {
            url: format!("redis://127.0.0.1:{port}/"),
            _lifeline: lifeline,
        })
    }
}

fn find_server() -> Option<PathBuf> {
    let packaged = Path::new("/usr/bin/redis-server");
    if packaged.is_file() {
        return Some(packaged.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|bin| bin.is_file())
        .and_then(|bin| std::path::absolute(bin).ok())
}

fn free_port() -> Result<u16, String> {
    // Free now, not reserved: a clash later makes the server fail to start, visibly.
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn wait_until_ready(server: &mut Child, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if ping(port).is_ok() {
            return Ok(());
        }
        if let Some(status) = server
            .try_wait()
            .map_err(|e| format!("cannot check on redis-server: {e}"))?
        {
            return Err(format!("redis-server exited early ({status})"));
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "redis-server did not answer PING within {READY_TIMEOUT:?}"
            ));
        }
        thread::sleep(Duration::from_millis(10));
    }
}

fn ping(port: u16) -> io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), PING_TIMEOUT)?;
    stream.set_read_timeout(Some(PING_TIMEOUT))?;
    stream.write_all(b"PING\r\n")?;
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line)?;
    if line.trim_end() == "+PONG" {
        Ok(())
    } else {
        Err(io::Error::other(format!("unexpected reply {line:?}")))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn the_test_server_answers_ping_and_is_shared_by_the_process() {
        let Some(url) = redis_url() else {
            return;
        };
        assert_eq!(redis_url().as_deref(), Some(url.as_str()));
        let port: u16 = url
            .trim_start_matches("redis://127.0.0.1:")
            .trim_end_matches('/')
            .parse()
            .expect("a port in the URL");
        ping(port).expect("PONG");
    }

    #[test]
    fn the_hung_redis_accepts_connections_and_never_answers() {
        let url = hung_redis();
        let addr = url
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let mut stream = TcpStream::connect(&addr).expect("accepts");
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("set timeout");
        stream.write_all(b"PING\r\n").expect("write");
        let mut buf = [0_u8; 16];
        let err = stream.read(&mut buf).expect_err("no reply");
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err}"
        );
    }
}
