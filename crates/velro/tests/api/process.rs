//! The binary as an operator meets it: help, bad configuration, migrate, and a graceful stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) fn velro() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_velro"));
    // The tests' own environment must not leak into the child's configuration.
    for (key, _) in std::env::vars() {
        if key.starts_with("VELRO_") || key == "DATABASE_URL" || key == "RUST_LOG" {
            command.env_remove(key);
        }
    }
    command
}

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

/// Runs to completion, or kills the child and fails when it outlives `limit`.
fn output_within(mut command: Command, limit: Duration) -> std::process::Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let started = Instant::now();
    while child.try_wait().expect("waits").is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} was still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collects output")
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

/// Reads the child's log until the `listening` line, returning the address.
pub(crate) fn wait_for_address(child: &mut Child) -> String {
    let stdout = child.stdout.take().expect("piped");
    let mut lines = BufReader::new(stdout).lines();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(30) {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(rest) = line.split("\"address\":\"").nth(1) {
            let address = rest.split('"').next().unwrap_or_default().to_string();
            std::thread::spawn(move || for _ in lines {});
            return address;
        }
    }
    panic!("the server never said it was listening");
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut child = velro()
        .args(["serve", "--bind", "127.0.0.1:0"])
        .env("VELRO_DATA_DIR", dir.path())
        .env("VELRO_LOG_FORMAT", "json")
        .env("VELRO_ARGON2_MEMORY_KIB", "64")
        .env("VELRO_ARGON2_ITERATIONS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let address = wait_for_address(&mut child);
    let health = std::net::TcpStream::connect(&address);
    assert!(health.is_ok(), "listening on {address}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("waits") {
            break exit;
        }
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("the server did not stop after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "exit status {exit}");
    assert!(dir.path().join("jwt-keys.json").exists());
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
