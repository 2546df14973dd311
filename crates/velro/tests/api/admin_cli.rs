//! `velro admin` as an operator runs it: the real binary against a served instance, checked
//! through the API itself, on both stores. Every run is also checked for the service key in its
//! output, whatever the command and however it ended.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::binary::{output_within, velro};
use crate::both_stores;
use crate::helpers::{
    expect_error, expect_json, expect_rejected_token, unique_email, TestApp, PASSWORD, SERVICE_KEY,
};

both_stores!(
    admin_cli_finds_users_by_email_prefix_whole_email_and_id,
    admin_cli_shows_a_user_as_a_table_and_as_the_api_json,
    admin_cli_disables_and_enables_a_user,
    admin_cli_sets_role_and_credits_seen_on_the_next_me,
    admin_cli_revokes_every_session_and_sign_in_stays_allowed,
    admin_cli_reads_and_switches_flags,
    admin_cli_says_no_such_user_with_exit_code_1,
    admin_cli_refuses_a_wrong_key_or_a_user_token_with_exit_code_4,
    admin_cli_opens_lists_updates_and_resolves_an_incident,
    admin_cli_names_each_bad_incident_field_and_an_unknown_id_with_exit_code_1,
);

/// One finished `velro admin` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|error| panic!("--json printed no JSON ({error}):\n{}", self.stdout))
    }

    fn succeeded(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.stderr.is_empty(), "{}", self.stderr);
        self
    }

    /// The exit code, and one `error:` line on stderr holding every one of `words`.
    fn failed(&self, code: i32, words: &[&str]) {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.stdout.is_empty(), "{}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 && lines[0].starts_with("error: "),
            "{}",
            self.stderr
        );
        for word in words {
            assert!(lines[0].contains(word), "{word:?} missing: {}", lines[0]);
        }
    }

    /// Exit code 1 for a 422: an `error:` line, then one indented line per field, each naming
    /// its field first.
    fn failed_on_fields(&self, fields: &[&str]) {
        assert_eq!(
            self.code, 1,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        assert!(self.stdout.is_empty(), "{}", self.stdout);
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert!(
            lines.len() == 1 + fields.len() && lines[0].starts_with("error: 422 validation_failed"),
            "{}",
            self.stderr
        );
        for field in fields {
            assert!(
                lines[1..]
                    .iter()
                    .any(|line| line.starts_with(&format!("  {field}: must be one of"))),
                "{field:?} missing:\n{}",
                self.stderr
            );
        }
    }
}

/// `velro admin --url <base> <args>` with `key` in VELRO_SERVICE_KEY and no terminal.
async fn admin_cli(base: &str, key: Option<&str>, args: &[&str]) -> Run {
    let mut command = velro();
    command
        .args(["admin", "--url", base])
        .args(args)
        .stdin(Stdio::null());
    if let Some(key) = key {
        command.env("VELRO_SERVICE_KEY", key);
    }
    // The instance runs on this test's runtime: wait for the child off its workers.
    let output =
        tokio::task::spawn_blocking(move || output_within(command, Duration::from_secs(30)))
            .await
            .expect("the run ends");
    let run = Run {
        code: output.status.code().expect("exited, not killed"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    for secret in [Some(SERVICE_KEY), key]
        .into_iter()
        .flatten()
        .filter(|k| !k.is_empty())
    {
        assert!(
            !run.stdout.contains(secret) && !run.stderr.contains(secret),
            "a service key was printed by {args:?}:\n{}\n{}",
            run.stdout,
            run.stderr
        );
    }
    run
}

async fn run_ok(app: &TestApp, args: &[&str]) -> Run {
    let run = admin_cli(&app.address, Some(SERVICE_KEY), args).await;
    run.succeeded();
    run
}

async fn admin_cli_finds_users_by_email_prefix_whole_email_and_id(app: TestApp) {
    let email = unique_email("find");
    // Starts with the first one's whole email: the exact match must still pick the first.
    let longer = format!("{email}.au");
    let user = app.register(&email).await.user_id();
    let other = app.register(&longer).await.user_id();
    let prefix = &email[..12];

    let table = run_ok(&app, &["users", "find", prefix]).await;
    assert!(table.stdout.starts_with("ID "), "{}", table.stdout);
    for (id, shown) in [(&user, &email), (&other, &longer)] {
        let line = table
            .stdout
            .lines()
            .find(|line| line.starts_with(id.as_str()))
            .unwrap_or_else(|| panic!("{id} missing:\n{}", table.stdout));
        assert!(
            line.contains(shown.as_str()) && line.contains("viewer"),
            "{line}"
        );
    }

    let page = run_ok(&app, &["--json", "users", "find", prefix])
        .await
        .json();
    let ids: Vec<&str> = page["users"]
        .as_array()
        .expect("the API's page")
        .iter()
        .filter_map(|user| user["id"].as_str())
        .collect();
    assert_eq!(ids, [other.as_str(), user.as_str()], "newest first: {page}");

    let one = run_ok(&app, &["--json", "users", "find", "--limit", "1", prefix])
        .await
        .json();
    assert_eq!(one["users"].as_array().map(Vec::len), Some(1), "{one}");
    let cursor = one["next"].as_str().expect("a next cursor");
    let rest = run_ok(
        &app,
        &["--json", "users", "find", "--after", cursor, prefix],
    )
    .await
    .json();
    assert_eq!(rest["users"][0]["id"], user.as_str(), "{rest}");

    let by_id = run_ok(&app, &["--json", "users", "find", &user])
        .await
        .json();
    assert_eq!(by_id["email"], email.as_str());

    let none = run_ok(&app, &["users", "find", "nobody-at-all-"]).await;
    assert!(none.stdout.contains("no user"), "{}", none.stdout);
}

async fn admin_cli_shows_a_user_as_a_table_and_as_the_api_json(app: TestApp) {
    let email = unique_email("show");
    let user = app.register(&email).await.user_id();
    app.register(&format!("{email}.au")).await;

    let shown = run_ok(&app, &["--json", "users", "show", &email.to_uppercase()])
        .await
        .json();
    assert_eq!(shown, app.admin_user(&user).await, "the API's own answer");

    let table = run_ok(&app, &["users", "show", &user]).await;
    // A record line is the name, two spaces or more, the value.
    let field = |name: &str| {
        table
            .stdout
            .lines()
            .filter_map(|line| line.split_once("  "))
            .find(|(shown, _)| *shown == name)
            .map(|(_, value)| value.trim().to_string())
            .unwrap_or_else(|| panic!("{name} missing:\n{}", table.stdout))
    };
    assert_eq!(field("id"), user);
    assert_eq!(field("email"), email);
    assert_eq!(field("role"), "viewer");
    assert_eq!(field("credits"), "1000");
    assert_eq!(field("disabled"), "no");
}

async fn admin_cli_disables_and_enables_a_user(app: TestApp) {
    let email = unique_email("disable");
    let tokens = app.register(&email).await;

    let disabled = run_ok(&app, &["--json", "users", "disable", &email])
        .await
        .json();
    assert_eq!(disabled["disabled"], true);
    expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
    expect_error(
        app.login_response(&email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;

    let enabled = run_ok(&app, &["users", "enable", &tokens.user_id()]).await;
    assert!(
        enabled.stdout.starts_with(&format!("enabled {email}")),
        "{}",
        enabled.stdout
    );
    app.login(&email, PASSWORD).await;
    assert_eq!(app.admin_user(&tokens.user_id()).await["disabled"], false);
}

async fn admin_cli_sets_role_and_credits_seen_on_the_next_me(app: TestApp) {
    let email = unique_email("role");
    let tokens = app.register(&email).await;

    let promoted = run_ok(&app, &["--json", "users", "role", &email, "creator"])
        .await
        .json();
    assert_eq!(promoted["role"], "creator");
    let credited = run_ok(&app, &["users", "credits", &tokens.user_id(), "42"]).await;
    assert!(
        credited.stdout.starts_with("credits set to 42"),
        "{}",
        credited.stdout
    );

    let me = app.me_json(&tokens.access).await;
    assert_eq!(me["role"], "creator", "{me}");
    assert_eq!(me["credits_balance"], 42, "{me}");

    // The API's own rules still apply: clap refuses these before any request.
    let bad_role = admin_cli(
        &app.address,
        Some(SERVICE_KEY),
        &["users", "role", &email, "root"],
    )
    .await;
    assert_eq!(bad_role.code, 2, "{}", bad_role.stderr);
    let negative = admin_cli(
        &app.address,
        Some(SERVICE_KEY),
        &["users", "credits", &email, "--", "-1"],
    )
    .await;
    assert_eq!(negative.code, 2, "{}", negative.stderr);
    assert_eq!(app.me_json(&tokens.access).await["credits_balance"], 42);
}

async fn admin_cli_revokes_every_session_and_sign_in_stays_allowed(app: TestApp) {
    let email = unique_email("revoke");
    let first = app.register(&email).await;
    let second = app.login(&email, PASSWORD).await;

    let run = run_ok(&app, &["users", "revoke-sessions", &email]).await;
    assert!(
        run.stdout.starts_with(&format!(
            "revoked every session of {email} (2 live sessions)"
        )),
        "{}",
        run.stdout
    );
    for tokens in [&first, &second] {
        expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
        expect_error(
            app.refresh_response(&tokens.refresh).await,
            StatusCode::UNAUTHORIZED,
            "refresh_token_invalid",
        )
        .await;
    }
    assert_eq!(app.admin_user(&first.user_id()).await["disabled"], false);
    let again = app.login(&email, PASSWORD).await;
    expect_json(app.me(&again.access).await, StatusCode::OK).await;

    // A disabled user's sessions are revoked (none are left) and the user stays disabled;
    // --json prints the API's answer.
    run_ok(&app, &["users", "disable", &email]).await;
    let json = run_ok(&app, &["--json", "users", "revoke-sessions", &email])
        .await
        .json();
    assert_eq!(json, serde_json::json!({"revoked": 0}));
    assert_eq!(app.admin_user(&first.user_id()).await["disabled"], true);
}

async fn admin_cli_reads_and_switches_flags(app: TestApp) {
    let flags = || async {
        expect_json(app.admin(Method::GET, "/flags", None).await, StatusCode::OK).await
    };
    let read = run_ok(&app, &["--json", "flags", "get"]).await.json();
    assert_eq!(read, flags().await);
    assert_eq!(read["cache"], true);

    let off = run_ok(&app, &["flags", "set", "cache", "off"]).await;
    assert!(off.stdout.starts_with("cache is now off"), "{}", off.stdout);
    assert_eq!(flags().await["cache"], false);
    let table = run_ok(&app, &["flags", "get"]).await;
    assert!(
        table
            .stdout
            .lines()
            .any(|line| line.split_whitespace().eq(["cache", "off"])),
        "{}",
        table.stdout
    );

    let on = run_ok(&app, &["--json", "flags", "set", "cache", "on"])
        .await
        .json();
    assert_eq!(on, flags().await);
    assert_eq!(on["cache"], true);

    // The API ignores unknown fields; the CLI must not report a misspelt flag as switched.
    admin_cli(
        &app.address,
        Some(SERVICE_KEY),
        &["flags", "set", "cahce", "off"],
    )
    .await
    .failed(1, &["cahce", "cache"]);
    assert_eq!(flags().await["cache"], true);
    let bad = admin_cli(
        &app.address,
        Some(SERVICE_KEY),
        &["flags", "set", "cache", "maybe"],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);
}

async fn admin_cli_says_no_such_user_with_exit_code_1(app: TestApp) {
    let base = app.address.as_str();
    let key = Some(SERVICE_KEY);
    let missing = uuid::Uuid::new_v4().to_string();
    admin_cli(base, key, &["users", "show", &missing])
        .await
        .failed(1, &["no user with id", &missing]);
    admin_cli(base, key, &["users", "disable", "nobody@example.com"])
        .await
        .failed(1, &["no user with email nobody@example.com"]);
    admin_cli(base, key, &["--json", "users", "find", &missing])
        .await
        .failed(1, &["no user with id"]);
    // Neither an id nor an email: a usage mistake, caught before any request.
    admin_cli(base, key, &["users", "show", "nobody"])
        .await
        .failed(2, &["nobody"]);
    // A base URL that is not the instance's root.
    let wrong_base = format!("{base}/somewhere");
    admin_cli(&wrong_base, key, &["flags", "get"])
        .await
        .failed(1, &["404", &wrong_base, "--url"]);
}

async fn admin_cli_refuses_a_wrong_key_or_a_user_token_with_exit_code_4(app: TestApp) {
    let base = app.address.as_str();
    let wrong = "not-the-service-key-0123456789abcdefghijk";
    admin_cli(base, Some(wrong), &["users", "find", "a"])
        .await
        .failed(
            4,
            &[base, "401", "invalid_service_key", "VELRO_SERVICE_KEY"],
        );
    admin_cli(
        base,
        Some(wrong),
        &["--json", "flags", "set", "cache", "off"],
    )
    .await
    .failed(4, &["401"]);

    let tokens = app.register(&unique_email("token")).await;
    admin_cli(base, Some(&tokens.access), &["flags", "get"])
        .await
        .failed(4, &[base, "403", "forbidden"]);
    assert_eq!(
        expect_json(app.admin(Method::GET, "/flags", None).await, StatusCode::OK).await["cache"],
        true
    );
}

#[tokio::test]
async fn admin_cli_names_the_url_and_the_cause_when_nothing_listens_with_exit_code_3() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        listener.local_addr().expect("bound").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    admin_cli(
        &base,
        Some(SERVICE_KEY),
        &["users", "show", "ada@example.com"],
    )
    .await
    .failed(3, &[&base, "connection refused"]);
    admin_cli(&base, Some(SERVICE_KEY), &["--json", "flags", "get"])
        .await
        .failed(3, &[&base]);
}

#[tokio::test]
async fn admin_cli_gives_up_on_an_instance_that_never_answers_with_exit_code_3() {
    // Connections complete in the kernel's backlog, and nothing ever reads them.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
    let base = format!("http://{}", silent.local_addr().expect("bound"));
    let started = Instant::now();
    admin_cli(
        &base,
        Some(SERVICE_KEY),
        &["--timeout", "1", "flags", "get"],
    )
    .await
    .failed(3, &[&base, "no answer within 1 s"]);
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn admin_cli_without_a_key_and_without_a_terminal_stops_with_exit_code_2() {
    admin_cli("http://127.0.0.1:9", None, &["flags", "get"])
        .await
        .failed(2, &["VELRO_SERVICE_KEY"]);
    admin_cli("http://127.0.0.1:9", Some(""), &["flags", "get"])
        .await
        .failed(2, &["VELRO_SERVICE_KEY"]);
    let https = admin_cli("https://127.0.0.1:9", Some(SERVICE_KEY), &["flags", "get"]).await;
    assert_eq!(https.code, 2, "{}", https.stderr);
    assert!(https.stderr.contains("https"), "{}", https.stderr);
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), the key is asked for and the
/// answer is not echoed: the terminal's whole transcript is checked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_cli_asks_for_the_key_on_a_terminal_without_echoing_it() {
    let app = TestApp::sqlite().await;
    let line = format!(
        "{} admin --url {} flags get",
        env!("CARGO_BIN_EXE_velro"),
        app.address
    );
    let transcript = tokio::task::spawn_blocking(move || on_a_terminal(&line, SERVICE_KEY))
        .await
        .expect("the run ends");
    assert!(transcript.contains("Service key for"), "{transcript}");
    assert!(
        transcript
            .lines()
            .any(|line| line.split_whitespace().eq(["cache", "on"])),
        "{transcript}"
    );
    assert!(!transcript.contains(SERVICE_KEY), "echoed:\n{transcript}");
}

/// Runs `line` on a pseudo-terminal, types `answer` once the prompt shows, and returns all the
/// terminal showed.
fn on_a_terminal(line: &str, answer: &str) -> String {
    let mut command = Command::new("script");
    command.args(["-q", "-e", "-c", line, "/dev/null"]);
    for (key, _) in std::env::vars() {
        if key.starts_with("VELRO_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's script runs (Debian's bsdutils)");
    let shown = Arc::new(Mutex::new(String::new()));
    let mut stdout = child.stdout.take().expect("piped");
    let reader = {
        let shown = Arc::clone(&shown);
        std::thread::spawn(move || {
            let mut chunk = [0_u8; 1024];
            while let Ok(read @ 1..) = stdout.read(&mut chunk) {
                let text = String::from_utf8_lossy(&chunk[..read]).into_owned();
                shown.lock().expect("not poisoned").push_str(&text);
            }
        })
    };
    let started = Instant::now();
    let patience = Duration::from_secs(30);
    while !shown
        .lock()
        .expect("not poisoned")
        .contains("Service key for")
    {
        if started.elapsed() > patience {
            let _ = child.kill();
            panic!("no prompt: {:?}", shown.lock().expect("not poisoned"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut stdin = child.stdin.take().expect("piped");
    stdin
        .write_all(format!("{answer}\n").as_bytes())
        .expect("typed");
    while child.try_wait().expect("waits").is_none() {
        if started.elapsed() > patience {
            let _ = child.kill();
            panic!("still running: {:?}", shown.lock().expect("not poisoned"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().expect("ended");
    reader.join().expect("the reader ends with the child");
    let transcript = shown.lock().expect("not poisoned").clone();
    assert!(status.success(), "{status}:\n{transcript}");
    transcript
}

async fn admin_cli_opens_lists_updates_and_resolves_an_incident(app: TestApp) {
    let incidents = || async {
        expect_json(
            app.admin(Method::GET, "/incidents", None).await,
            StatusCode::OK,
        )
        .await
    };
    let opened = run_ok(
        &app,
        &[
            "--json",
            "incidents",
            "open",
            "Sign-in is slow",
            "--impact",
            "major",
            "--message",
            "We are looking into slow sign-ins.",
            "--component",
            "auth_api,database",
        ],
    )
    .await
    .json();
    let id = opened["id"].as_str().expect("an id").to_string();
    assert_eq!(opened["status"], "investigating");
    assert_eq!(opened["impact"], "major");
    assert_eq!(
        opened["components"],
        serde_json::json!(["auth_api", "database"])
    );
    assert!(opened["resolved_at"].is_null(), "{opened}");

    let listed = run_ok(&app, &["incidents", "list"]).await;
    assert!(listed.stdout.starts_with("ID "), "{}", listed.stdout);
    let line = listed
        .stdout
        .lines()
        .find(|line| line.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} missing:\n{}", listed.stdout));
    for word in [
        "investigating",
        "major",
        "auth_api,database",
        "Sign-in is slow",
    ] {
        assert!(line.contains(word), "{word:?} missing: {line}");
    }

    let updated = run_ok(
        &app,
        &[
            "incidents",
            "update",
            &id,
            "--status",
            "identified",
            "--message",
            "A slow database query.",
        ],
    )
    .await;
    assert!(
        updated
            .stdout
            .starts_with(&format!("updated incident {id}")),
        "{}",
        updated.stdout
    );
    assert!(
        updated
            .stdout
            .lines()
            .any(|line| line.contains("identified") && line.contains("A slow database query.")),
        "{}",
        updated.stdout
    );

    let resolved = run_ok(
        &app,
        &[
            "--json",
            "incidents",
            "resolve",
            &id,
            "--message",
            "Fixed: sign-in is fast again.",
        ],
    )
    .await
    .json();
    assert_eq!(resolved["status"], "resolved");
    assert!(resolved["resolved_at"].is_string(), "{resolved}");
    let timeline: Vec<(&str, &str)> = resolved["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .map(|update| {
            (
                update["status"].as_str().unwrap_or_default(),
                update["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        timeline,
        [
            ("resolved", "Fixed: sign-in is fast again."),
            ("identified", "A slow database query."),
            ("investigating", "We are looking into slow sign-ins."),
        ]
    );

    // The instance itself, and `--json list`, agree that it is resolved.
    let stored = incidents().await;
    let found = stored["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .find(|incident| incident["id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} missing: {stored}"))
        .clone();
    assert_eq!(found, resolved);
    assert_eq!(
        run_ok(&app, &["--json", "incidents", "list"]).await.json(),
        stored
    );
}

async fn admin_cli_names_each_bad_incident_field_and_an_unknown_id_with_exit_code_1(app: TestApp) {
    let base = app.address.as_str();
    let key = Some(SERVICE_KEY);
    admin_cli(
        base,
        key,
        &[
            "incidents",
            "open",
            "Sign-in is slow",
            "--status",
            "fixing",
            "--impact",
            "huge",
            "--message",
            "Looking.",
        ],
    )
    .await
    .failed_on_fields(&["status", "impact"]);
    let none = expect_json(
        app.admin(Method::GET, "/incidents", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(none["incidents"], serde_json::json!([]), "{none}");

    let opened = run_ok(
        &app,
        &[
            "--json",
            "incidents",
            "open",
            "Mail is late",
            "--impact",
            "minor",
            "--message",
            "Looking.",
        ],
    )
    .await
    .json();
    let id = opened["id"].as_str().expect("an id").to_string();
    admin_cli(
        base,
        key,
        &[
            "incidents",
            "update",
            &id,
            "--status",
            "fixed",
            "--message",
            "x",
        ],
    )
    .await
    .failed_on_fields(&["status"]);

    let missing = uuid::Uuid::new_v4().to_string();
    admin_cli(
        base,
        key,
        &["incidents", "resolve", &missing, "--message", "Fixed."],
    )
    .await
    .failed(1, &["no incident with id", &missing]);
    // Not an id at all: a usage mistake, caught before any request.
    let bad = admin_cli(
        base,
        key,
        &["incidents", "resolve", "nope", "--message", "Fixed."],
    )
    .await;
    assert_eq!(bad.code, 2, "{}", bad.stderr);

    let after = expect_json(
        app.admin(Method::GET, "/incidents", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after["incidents"][0]["status"], "investigating", "{after}");
    assert_eq!(
        after["incidents"][0]["updates"].as_array().map(Vec::len),
        Some(1)
    );
}
