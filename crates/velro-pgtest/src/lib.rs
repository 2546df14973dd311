//! Test support: every integration test gets its own fresh, empty PostgreSQL database, either on
//! the server named by `VELRO_TEST_DATABASE_URL` or on a throwaway cluster started once per test
//! process. Schemas and migrations do not belong here; they are velro-store's.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Once, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection};
use url::Url;

const ADMIN_URL_VAR: &str = "VELRO_TEST_DATABASE_URL";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
const LOG_TAIL_LINES: usize = 20;

/// Keeps the server alive until the test process closes the wrapper's stdin, which the kernel
/// does however the process ends (return, panic, abort, kill); then stops it with a fast
/// shutdown and removes its directory. `$1` is that directory, the rest is the server command.
const SUPERVISOR: &str = r#"dir=$1; shift
"$@" &
pid=$!
read -r _ignored
kill -INT "$pid"
wait "$pid"
rm -rf -- "$dir""#;

/// URL of a freshly created, empty database on a test PostgreSQL server, or None when none is
/// available (prints a visible "skipping PostgreSQL tests: <why>" message to stderr, once per
/// process). With the environment variable CI=true, an unavailable PostgreSQL panics instead.
pub async fn fresh_database() -> Option<String> {
    let created = match admin_url() {
        Ok(admin_url) => create_database(&admin_url).await,
        Err(why) => Err(why),
    };
    created.map_or_else(|why| unavailable(&why), Some)
}

fn admin_url() -> Result<String, String> {
    if let Some(url) = std::env::var_os(ADMIN_URL_VAR).filter(|url| !url.is_empty()) {
        return url
            .into_string()
            .map_err(|_| format!("{ADMIN_URL_VAR} is not valid UTF-8"));
    }
    // Only std handles live here: each #[tokio::test] has its own runtime, so a pool or a
    // connection kept in a static would outlive the runtime that drives it.
    static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(cluster) => Ok(cluster.admin_url.clone()),
        Err(why) => Err(why.clone()),
    }
}

fn unavailable(why: &str) -> Option<String> {
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("PostgreSQL tests cannot be skipped when CI=true: {why}");
    }
    static NOTICE: Once = Once::new();
    NOTICE.call_once(|| {
        // Straight to the stream: libtest captures eprintln!, which would hide the skip.
        let _ = writeln!(io::stderr(), "skipping PostgreSQL tests: {why}");
    });
    None
}

async fn create_database(admin_url: &str) -> Result<String, String> {
    let name = format!("velro_test_{}", uuid::Uuid::new_v4().simple());
    let url = with_database(admin_url, &name)?;
    let mut conn = PgConnection::connect(admin_url)
        .await
        .map_err(|e| format!("cannot connect to the test server: {e}"))?;
    sqlx::raw_sql(&format!(r#"CREATE DATABASE "{name}""#))
        .execute(&mut conn)
        .await
        .map_err(|e| format!("cannot create database {name}: {e}"))?;
    conn.close()
        .await
        .map_err(|e| format!("cannot close the admin connection: {e}"))?;
    Ok(url)
}

fn with_database(admin_url: &str, database: &str) -> Result<String, String> {
    let mut url = Url::parse(admin_url).map_err(|e| format!("invalid admin URL: {e}"))?;
    url.set_path(&format!("/{database}"));
    // sqlx lets a `dbname` parameter override the path, which would hand out the admin database.
    if url.query_pairs().any(|(key, _)| key == "dbname") {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(key, _)| key != "dbname")
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        url.set_query(None);
        if !kept.is_empty() {
            url.query_pairs_mut().extend_pairs(kept);
        }
    }
    Ok(url.into())
}

/// The throwaway server, alive for as long as the test process.
struct Cluster {
    admin_url: String,
    // Never written to: its only job is to close when the process exits (see SUPERVISOR).
    _lifeline: ChildStdin,
}

impl Cluster {
    fn start() -> Result<Self, String> {
        let bin = find_bin_dir().ok_or(
            "no PostgreSQL server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH",
        )?;
        // PostgreSQL refuses to run as root.
        let as_postgres = running_as_root();
        if as_postgres && !user_exists("postgres") {
            return Err(
                "running as root, and there is no `postgres` user to run the server as".into(),
            );
        }

        let dir = tempfile::Builder::new()
            .prefix("velro-pgtest-")
            .tempdir()
            .map_err(|e| format!("cannot create a temporary directory: {e}"))?;
        if as_postgres {
            run(
                Command::new("chown").arg("postgres").arg(dir.path()),
                "chown",
            )?;
        }
        let data = dir.path().join("data");
        run(
            as_user(as_postgres, bin.join("initdb"))
                .args(["-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"])
                .args(["--locale=C", "-D"])
                .arg(&data)
                .current_dir(dir.path()),
            "initdb",
        )?;

        let port = free_port()?;
        let log_path = dir.path().join("server.log");
        let log =
            File::create(&log_path).map_err(|e| format!("cannot create the server log: {e}"))?;
        let log_too = log
            .try_clone()
            .map_err(|e| format!("cannot duplicate the server log handle: {e}"))?;
        let mut server = as_user(as_postgres, "sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .arg("sh")
            .arg(dir.path())
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .args(["-c", "listen_addresses=127.0.0.1"])
            .arg("-c")
            .arg(format!("unix_socket_directories={}", dir.path().display()))
            .args(["-c", "max_connections=300"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            // Keeps the log's severity words in English for the startup check below.
            .args(["-c", "lc_messages=C"])
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_too)
            // Out of the terminal's process group: Ctrl-C stops the tests, which then stop the
            // server through the lifeline, instead of killing the wrapper before it cleans up.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start the server: {e}"))?;
        // From here the wrapper owns the directory and removes it once the server has stopped.
        let dir = dir.keep();
        let lifeline = server.stdin.take().expect("stdin was piped");

        if let Err(why) = wait_until_ready(&mut server, &data, &log_path) {
            let log = log_tail(&log_path);
            if matches!(server.try_wait(), Ok(Some(_))) {
                let _ = fs::remove_dir_all(&dir);
            }
            return Err(format!("{why}; server log:\n{log}"));
        }
        Ok(Self {
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
            _lifeline: lifeline,
        })
    }
}

/// The highest-versioned Debian-style install, else the first PATH entry with both binaries.
fn find_bin_dir() -> Option<PathBuf> {
    let has_server = |dir: &Path| dir.join("initdb").is_file() && dir.join("postgres").is_file();
    let packaged = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version: Vec<u32> = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<_>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_server(bin))
        .max_by(|(a, _), (b, _)| a.cmp(b))
        .map(|(_, bin)| bin);
    packaged.or_else(|| {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path)
            .find(|dir| has_server(dir))
            // The server runs from its own directory, so a relative PATH entry would break.
            .and_then(|dir| std::path::absolute(dir).ok())
    })
}

fn running_as_root() -> bool {
    // The effective uid is the second field of the Uid line; `id -u` where there is no /proc.
    let from_proc = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let ids = status.lines().find_map(|line| line.strip_prefix("Uid:"))?;
            ids.split_whitespace().nth(1).map(|euid| euid == "0")
        });
    from_proc.unwrap_or_else(|| {
        Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|out| out.stdout.trim_ascii() == b"0")
    })
}

fn user_exists(user: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(user)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

fn as_user(as_postgres: bool, program: impl AsRef<OsStr>) -> Command {
    if !as_postgres {
        return Command::new(program);
    }
    let mut command = Command::new("runuser");
    command.args(["-u", "postgres", "--"]).arg(program);
    command
}

fn run(command: &mut Command, what: &str) -> Result<(), String> {
    let output = command
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Err(format!(
        "{what} failed ({}):\n{}",
        output.status,
        tail(&text)
    ))
}

fn free_port() -> Result<u16, String> {
    // Free now, not reserved: a clash later makes the server fail to start, visibly.
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

fn wait_until_ready(server: &mut Child, data: &Path, log: &Path) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        // pg_ctl's own test: the postmaster marks its lock file "ready" once it accepts
        // connections (a listening socket alone may still answer "starting up").
        let ready = fs::read_to_string(data.join("postmaster.pid")).is_ok_and(|lock| {
            lock.lines()
                .nth(7)
                .is_some_and(|status| status.trim() == "ready")
        });
        if ready {
            return Ok(());
        }
        if let Some(status) = server
            .try_wait()
            .map_err(|e| format!("cannot check on the server: {e}"))?
        {
            return Err(format!("the server wrapper exited early ({status})"));
        }
        if fs::read_to_string(log)
            .is_ok_and(|text| text.contains("FATAL:") || text.contains("PANIC:"))
        {
            return Err("the server failed to start".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("the server was not ready within {READY_TIMEOUT:?}"));
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn log_tail(path: &Path) -> String {
    fs::read_to_string(path).map_or_else(|e| format!("(unreadable: {e})"), |text| tail(&text))
}

fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_call_gives_a_new_database_that_accepts_queries() {
        let Some(first) = fresh_database().await else {
            let _ = writeln!(io::stderr(), "skipped: no PostgreSQL for velro-pgtest");
            return;
        };
        let second = fresh_database()
            .await
            .expect("the server that served the first call serves the second");
        assert_ne!(first, second);

        let mut names = Vec::new();
        for url in [&first, &second] {
            let mut conn = PgConnection::connect(url)
                .await
                .expect("connect to the fresh database");
            let (one, name): (i32, String) = sqlx::query_as("SELECT 1, current_database()")
                .fetch_one(&mut conn)
                .await
                .expect("SELECT 1");
            assert_eq!(one, 1);
            assert!(name.starts_with("velro_test_"), "{name}");
            conn.close().await.expect("close");
            names.push(name);
        }
        assert_ne!(names[0], names[1]);
    }

    #[test]
    fn with_database_replaces_the_database_and_keeps_the_rest() {
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/postgres",
                "postgres://postgres@127.0.0.1:5432/velro_test_x",
            ),
            (
                "postgres://u:p%40ss@db:5432/admin?sslmode=disable",
                "postgres://u:p%40ss@db:5432/velro_test_x?sslmode=disable",
            ),
            ("postgres://db", "postgres://db/velro_test_x"),
            (
                "postgresql://db/admin?dbname=admin&sslmode=disable",
                "postgresql://db/velro_test_x?sslmode=disable",
            ),
            ("postgres://db/?dbname=admin", "postgres://db/velro_test_x"),
        ];
        for (admin, expected) in cases {
            assert_eq!(
                with_database(admin, "velro_test_x").as_deref(),
                Ok(expected),
                "{admin}"
            );
        }
    }

    #[test]
    fn with_database_rejects_what_is_not_a_url() {
        assert!(with_database("not a url", "velro_test_x").is_err());
    }
}
