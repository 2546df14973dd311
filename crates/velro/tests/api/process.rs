//! The binary as an operator meets it: help, bad configuration, migrate, and a graceful stop.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::binary::{output_within, serve, status_within, velro, Running};
use crate::helpers::{unique_email, PASSWORD};

#[test]
fn help_explains_the_commands() {
    let output = velro().arg("--help").output().expect("runs");
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for word in ["serve", "migrate", "--config"] {
        assert!(text.contains(word), "{word} missing from:\n{text}");
    }
    let serve = velro().args(["serve", "--help"]).output().expect("runs");
    let text = String::from_utf8_lossy(&serve.stdout);
    assert!(
        text.contains("--bind") && text.contains("--data-dir"),
        "{text}"
    );
}

#[test]
fn a_bad_setting_stops_start_up_with_one_line_naming_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (
            "VELRO_ACCESS_TOKEN_TTL_SECS",
            "abc",
            "access_token_ttl_secs",
        ),
        (
            "VELRO_ACCESS_TOKEN_TTL_SECS",
            "0",
            "VELRO_ACCESS_TOKEN_TTL_SECS",
        ),
        ("VELRO_BIND", "not-an-address", "bind"),
        ("VELRO_LOG_FORMAT", "xml", "log_format"),
        ("VELRO_JWT_SECRET", "short", "VELRO_JWT_SECRET"),
        ("VELRO_JWT_ALGORITHM", "none", "jwt_algorithm"),
        ("VELRO_JWT_LEEWAY_SECS", "3600", "VELRO_JWT_LEEWAY_SECS"),
        ("VELRO_HASH_NICENESS", "-5", "VELRO_HASH_NICENESS"),
        ("VELRO_SERVICE_KEY", "short", "VELRO_SERVICE_KEY"),
        ("DATABASE_URL", "mysql://somewhere/db", "DATABASE_URL"),
        (
            "VELRO_CORS_ALLOWED_ORIGINS",
            "https:///app.example.com",
            "VELRO_CORS_ALLOWED_ORIGINS",
        ),
        (
            "VELRO_CORS_ALLOWED_ORIGINS",
            "https://app.example.com\\",
            "VELRO_CORS_ALLOWED_ORIGINS",
        ),
    ];
    for (name, value, named) in cases {
        let mut command = velro();
        command
            .arg("serve")
            .env("VELRO_BIND", "127.0.0.1:0")
            .env("VELRO_DATA_DIR", dir.path())
            .env(name, value);
        let output = output_within(command, Duration::from_secs(20));
        assert!(!output.status.success(), "{name}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let error_lines: Vec<&str> = stderr
            .lines()
            .filter(|line| line.starts_with("error:"))
            .collect();
        assert_eq!(error_lines.len(), 1, "{name}={value}:\n{stderr}");
        assert!(error_lines[0].contains(named), "{name}={value}:\n{stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("backtrace"),
            "{stderr}"
        );
        if name == "VELRO_JWT_SECRET" || name == "VELRO_SERVICE_KEY" {
            assert!(!stderr.contains(value), "the secret leaked:\n{stderr}");
        }
    }
}

#[test]
fn migrate_creates_the_database_and_exits() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = velro()
        .arg("migrate")
        .env("VELRO_DATA_DIR", dir.path())
        .output()
        .expect("runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("velro.db").exists());
    let again = velro()
        .arg("migrate")
        .env("VELRO_DATA_DIR", dir.path())
        .output()
        .expect("runs");
    assert!(again.status.success());
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Running::start(serve(dir.path()));
    let address = server.base.trim_start_matches("http://").to_string();
    let health = std::net::TcpStream::connect(&address);
    assert!(health.is_ok(), "listening on {address}");
    let (exit, logs) = server.stop();
    assert!(exit.success(), "exit status {exit}:\n{logs}");
    assert!(dir.path().join("jwt-keys.json").exists());
}

/// SIGTERM closes an idle keep-alive connection at once and lets a request in flight finish:
/// a sign-up whose head is in and whose body is not (the server has said `100 Continue`, so it
/// is in the handler, reading the body) gets its whole answer after the signal, with
/// `Connection: close`, and the server then exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_closes_idle_connections_and_lets_a_request_in_flight_finish() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    async fn read_until(stream: &mut TcpStream, done: impl Fn(&str) -> bool) -> String {
        let mut read = Vec::new();
        let mut buffer = [0_u8; 4096];
        tokio::time::timeout(Duration::from_secs(30), async {
            while !done(&String::from_utf8_lossy(&read)) {
                match stream.read(&mut buffer).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => read.extend_from_slice(&buffer[..n]),
                }
            }
        })
        .await
        .expect("the server answered or closed in time");
        String::from_utf8_lossy(&read).to_string()
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let server = Running::start(serve(dir.path()));
    let address = server.base.trim_start_matches("http://").to_string();

    let mut idle = TcpStream::connect(&address).await.expect("connects");
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .await
        .expect("sent");
    let answer = read_until(&mut idle, |read| read.contains("\"status\":\"ok\"")).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");

    let body = json!({"email": unique_email("drain"), "password": PASSWORD}).to_string();
    let mut busy = TcpStream::connect(&address).await.expect("connects");
    busy.write_all(
        format!(
            "POST /api/v1/auth/register HTTP/1.1\r\nHost: test\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    )
    .await
    .expect("sent");
    let continued = read_until(&mut busy, |read| read.contains("\r\n\r\n")).await;
    assert!(continued.starts_with("HTTP/1.1 100 "), "{continued}");

    server.terminate();
    // The idle connection is closed without waiting for the in-flight request.
    let closed = read_until(&mut idle, |_| false).await;
    assert_eq!(closed, "", "the idle connection got more than its close");

    busy.write_all(body.as_bytes()).await.expect("sent");
    let answer = read_until(&mut busy, |read| read.contains("access_token")).await;
    assert!(answer.starts_with("HTTP/1.1 201 "), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("connection: close"),
        "{answer}"
    );
    let (exit, logs) = server.stop();
    assert!(exit.success(), "exit status {exit}:\n{logs}");
}

#[test]
fn a_log_written_to_a_file_or_pipe_has_no_colour_codes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = velro()
        .arg("migrate")
        .env("VELRO_DATA_DIR", dir.path())
        .env("VELRO_LOG_FORMAT", "human")
        // Colour must depend on the terminal alone, not on this variable happening to be set.
        .env_remove("NO_COLOR")
        .output()
        .expect("runs");
    assert!(output.status.success());
    let log = String::from_utf8_lossy(&output.stdout);
    assert!(log.contains("migrations applied"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escape codes in a piped log:\n{log:?}"
    );
}

/// The unknown-email login runs a real password verification (against the dummy hash), so that
/// it costs what a wrong password costs. Counted through the binary's own hash-job histogram:
/// this fails if any layer skips the dummy verification.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_with_an_unknown_email_runs_one_password_verification() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = Running::start(serve(dir.path()));
    let client = reqwest::Client::new();
    let hash_jobs = || async {
        let text = client
            .get(server.url("/metrics"))
            .send()
            .await
            .expect("answers")
            .text()
            .await
            .expect("text");
        text.lines()
            .find_map(|line| line.strip_prefix("velro_hash_duration_seconds_count "))
            .map_or(0, |count| count.trim().parse::<u64>().expect("a count"))
    };
    let before = hash_jobs().await;
    let login = client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"email": unique_email("nobody"), "password": "Velvet-Harbour-Quill-64"}))
        .send()
        .await
        .expect("answers");
    assert_eq!(login.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        hash_jobs().await,
        before + 1,
        "the unknown email was verified against the dummy hash"
    );
}

/// With stdout (the log) and stderr sent to one file, as `> velro.log 2>&1` or the journal do, the
/// error that stops start-up is written once, not as a log line and again on stderr.
#[test]
fn a_start_up_error_is_written_once_when_log_and_stderr_share_a_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port");
    let address = taken.local_addr().expect("an address").to_string();
    let output = std::fs::File::create(dir.path().join("output.txt")).expect("a file");
    let mut command = velro();
    command
        .args(["serve", "--bind", &address])
        .env("VELRO_DATA_DIR", dir.path().join("data"))
        .env("VELRO_LOG_FORMAT", "human")
        .stdout(output.try_clone().expect("a second handle"))
        .stderr(output);
    let status = status_within(command, Duration::from_secs(30));
    assert!(!status.success(), "served on a port already taken");
    let text = std::fs::read_to_string(dir.path().join("output.txt")).expect("readable");
    let mentions = text
        .lines()
        .filter(|line| line.contains("could not listen on"))
        .count();
    assert_eq!(mentions, 1, "{text}");
}

const DB_PASSWORD: &str = "Pg-Secret-Tangerine-Walrus-19";

/// Runs `velro serve` against `database_url` and returns its one `error:` line.
fn start_up_error(database_url: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut command = serve(dir.path());
    command
        .env("DATABASE_URL", database_url)
        .env("VELRO_DATABASE_ACQUIRE_TIMEOUT_MS", "1000");
    let output = output_within(command, Duration::from_secs(30));
    assert!(!output.status.success(), "started against {database_url}");
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let everything = format!("{stderr}{}", String::from_utf8_lossy(&output.stdout));
    assert!(
        !everything.contains(DB_PASSWORD),
        "the password leaked:\n{everything}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(!errors[0].contains("pool timed out"), "{stderr}");
    errors[0].to_string()
}

#[test]
fn an_unreachable_postgresql_is_reported_as_refused_at_its_address() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let error = start_up_error(&format!(
        "postgres://velro:{DB_PASSWORD}@127.0.0.1:{port}/velro"
    ));
    assert!(error.contains(&format!("127.0.0.1:{port}")), "{error}");
    assert!(
        error.to_lowercase().contains("connection refused"),
        "{error}"
    );
}

/// The test server trusts every local connection, so a wrong password cannot be shown; an
/// unknown role and an unknown database are refused by the server in the same way and place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgresql_that_refuses_the_login_is_reported_with_its_reason() {
    let Some(database_url) = velro_pgtest::fresh_database().await else {
        return;
    };
    let mut url = url::Url::parse(&database_url).expect("a URL");
    url.set_path("/velro_no_such_database");
    let error = start_up_error(url.as_str());
    assert!(
        error.contains("database \"velro_no_such_database\" does not exist"),
        "{error}"
    );
    let mut url = url::Url::parse(&database_url).expect("a URL");
    url.set_username("velro_no_such_role").expect("a user");
    url.set_password(Some(DB_PASSWORD)).expect("a password");
    let error = start_up_error(url.as_str());
    assert!(
        error.contains("role \"velro_no_such_role\" does not exist"),
        "{error}"
    );
}

#[test]
fn keys_rotate_list_and_prune_manage_the_key_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let keys = |args: &[&str]| {
        let output = velro()
            .arg("keys")
            .args(args)
            .env("VELRO_DATA_DIR", dir.path())
            // Logs share stdout; only the command's own output is wanted here.
            .env("VELRO_LOG_LEVEL", "error")
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&output.stdout).to_string();
        assert!(
            output.status.success(),
            "keys {args:?}: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        stdout
    };
    let listed = keys(&["list"]);
    assert_eq!(listed.matches("HS256").count(), 1, "{listed}");
    assert!(listed.contains("active"), "{listed}");
    assert!(keys(&["rotate"]).contains("activated"));
    let listed = keys(&["list"]);
    assert_eq!(listed.matches("HS256").count(), 2, "{listed}");
    assert!(listed.contains("retired"), "{listed}");
    // Retired just now: tokens it signed may still be live.
    assert!(keys(&["prune"]).contains("nothing to prune"));
    let file = std::fs::read_to_string(dir.path().join("jwt-keys.json")).expect("key file");
    let secrets: Vec<String> = serde_json::from_str::<serde_json::Value>(&file).expect("JSON")
        ["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|key| key["key"].as_str().expect("material").to_string())
        .collect();
    assert!(
        secrets
            .iter()
            .all(|secret| !listed.contains(secret.as_str())),
        "list shows no secret"
    );
    let eddsa = velro()
        .args(["keys", "rotate"])
        .env("VELRO_DATA_DIR", dir.path())
        .env("VELRO_JWT_ALGORITHM", "EdDSA")
        .output()
        .expect("runs");
    assert!(eddsa.status.success());
    assert!(keys(&["list"]).contains("EdDSA"));
    let configured = velro()
        .args(["keys", "rotate"])
        .env("VELRO_DATA_DIR", dir.path())
        .env("VELRO_JWT_SECRET", "x".repeat(40))
        .output()
        .expect("runs");
    assert!(
        !configured.status.success(),
        "rotation with VELRO_JWT_SECRET set is refused"
    );
    assert!(String::from_utf8_lossy(&configured.stderr).contains("VELRO_JWT_SECRET"));
}
