//! The console in a real browser (Debian's chromium, driven through chromedriver over
//! WebDriver): sign in to the dashboard with the service key, see every chart drawn from real
//! traffic and reloaded, flip the cache flag and see the admin API agree; open an incident with
//! `velro admin` and find it on the status page. Every page is checked for console errors and for
//! requests to any other host through the browser's own logs (chromedriver's `goog:loggingPrefs`:
//! the console log and the DevTools network events), and that check is shown to fail on a page
//! made to break it. Skipped when chromedriver is not installed, except under CI=true, where that
//! fails.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::Method;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::{json, Value};
use velro_core::domain::{unix_minute, Component, ComponentState, StatusSample};
use velro_core::{Clock, SystemClock};

use crate::binary::{output_within, velro};
use crate::helpers::{TestApp, SERVICE_KEY};

const PATIENCE: Duration = Duration::from_secs(20);

/// chromedriver on a free local port, killed with the test.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromedriver() -> Option<Driver> {
    let found = ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"]
        .into_iter()
        .find(|path| std::path::Path::new(path).exists());
    let Some(path) = found else {
        let why = "chromedriver is not installed (apt-get install chromium chromium-driver)";
        if std::env::var("CI").is_ok_and(|ci| ci == "true") {
            panic!("the browser test cannot be skipped when CI=true: {why}");
        }
        eprintln!("skipped: {why}");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(path)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    Some(Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    })
}

async fn browser(driver: &Driver) -> Client {
    let mut capabilities = serde_json::Map::new();
    // The console log (errors, CSP violations, failed loads) and the DevTools network events,
    // read back with `GetLog`.
    capabilities.insert(
        "goog:loggingPrefs".into(),
        json!({"browser": "ALL", "performance": "ALL"}),
    );
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,1000", "--no-first-run", "--disable-extensions"
        ]}),
    );
    let started = Instant::now();
    loop {
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities.clone());
        match builder.connect(&driver.url).await {
            Ok(client) => return client,
            Err(error) if started.elapsed() < PATIENCE => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(error) => panic!("no WebDriver session: {error}"),
        }
    }
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`), which fantoccini has no method
/// for: the entries of one log since the last read.
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _request_url: &url::Url) -> (Method, Option<String>) {
        (Method::POST, Some(json!({ "type": self.0 }).to_string()))
    }
}

async fn log(client: &Client, kind: &'static str) -> Vec<Value> {
    match client.issue_cmd(GetLog(kind)).await.expect("reads the log") {
        Value::Array(entries) => entries,
        other => panic!("the {kind} log is not a list: {other}"),
    }
}

/// Whether `url` is a request to another host than `origin` (`http://127.0.0.1:PORT`). Inline
/// `data:`, `blob:` and `about:` URLs go to no host.
fn foreign(url: &str, origin: &str) -> bool {
    let here = url == origin || url.starts_with(&format!("{origin}/"));
    let hostless = ["data:", "blob:", "about:"]
        .iter()
        .any(|scheme| url.starts_with(scheme));
    !here && !hostless
}

/// What went wrong in the browser since the last call: every console entry at error level
/// (script errors, `console.error`, failed loads, CSP violations) and every request the page made
/// to another host. Each read empties the browser's logs.
async fn problems(client: &Client, origin: &str) -> (Vec<String>, Vec<String>) {
    let console = log(client, "browser")
        .await
        .into_iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| format!("{}: {}", entry["source"], entry["message"]))
        .collect();
    let mut requests = Vec::new();
    for entry in log(client, "performance").await {
        let Some(event) = entry["message"]
            .as_str()
            .and_then(|message| serde_json::from_str::<Value>(message).ok())
        else {
            continue;
        };
        if event["message"]["method"] == "Network.requestWillBeSent" {
            if let Some(url) = event["message"]["params"]["request"]["url"].as_str() {
                requests.push(url.to_string());
            }
        }
    }
    assert!(
        !requests.is_empty(),
        "the network log recorded no request at all: the check would see nothing"
    );
    let elsewhere = requests
        .into_iter()
        .filter(|url| foreign(url, origin))
        .collect();
    (console, elsewhere)
}

/// The page loaded since the last check logged no console error and asked no other host.
async fn assert_clean(client: &Client, origin: &str, page: &str) {
    let (console, elsewhere) = problems(client, origin).await;
    assert!(console.is_empty(), "console errors on {page}: {console:#?}");
    assert!(
        elsewhere.is_empty(),
        "{page} asked other hosts than {origin}: {elsewhere:#?}"
    );
}

#[test]
fn only_the_service_itself_counts_as_this_host() {
    let origin = "http://127.0.0.1:8000";
    for url in [
        "http://127.0.0.1:8000/status",
        "http://127.0.0.1:8000",
        "data:,",
        "about:blank",
    ] {
        assert!(!foreign(url, origin), "{url}");
    }
    for url in [
        "http://127.0.0.1:80001/status",
        "http://127.0.0.1:8001/",
        "http://localhost:8000/status",
        "https://127.0.0.1:8000/status",
        "https://fonts.googleapis.com/css",
        "ws://127.0.0.1:8000/live",
        "//cdn.example/x.js",
    ] {
        assert!(foreign(url, origin), "{url}");
    }
}

/// Runs `script` (a function body returning a boolean) until it is true, within the patience.
async fn wait_until(client: &Client, what: &str, script: &str) {
    let started = Instant::now();
    loop {
        let value = client.execute(script, vec![]).await.expect("script runs");
        if value == Value::Bool(true) {
            return;
        }
        assert!(started.elapsed() < PATIENCE, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_sees_live_charts_and_switches_the_cache_in_a_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let app = TestApp::sqlite().await;
    // Enough that /health stays among the busiest routes the chart names, after the
    // browser's own requests.
    for _ in 0..40 {
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .expect("sent");
    }
    for path in ["/health/ready", "/api/v1/auth/me", "/nowhere"] {
        app.client.get(app.url(path)).send().await.expect("sent");
    }
    let client = browser(&driver).await;

    client.goto(&app.url("/admin")).await.expect("opens /admin");
    let form = client
        .form(Locator::Css("form:has(input[name=service_key])"))
        .await
        .expect("the service-key form");
    form.set_by_name("service_key", SERVICE_KEY)
        .await
        .expect("types the key");
    form.submit().await.expect("submits");
    client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id("flags"))
        .await
        .expect("the dashboard");

    // Every chart is drawn, and the page reloads them by itself.
    wait_until(
        &client,
        "every chart drawn",
        "var i = document.querySelectorAll('img[data-chart]'); \
         return i.length == 7 && Array.from(i).every(function(x){ return x.complete && x.naturalWidth > 0; });",
    )
    .await;
    wait_until(
        &client,
        "the charts reloaded",
        "return Array.from(document.querySelectorAll('img[data-chart]')).every(function(x){ return x.src.indexOf('?t=') > 0; });",
    )
    .await;
    let svg = client
        .execute_async(
            "var done = arguments[0]; fetch('/admin/charts/requests.svg').then(function(r){ return r.text(); }).then(done);",
            vec![],
        )
        .await
        .expect("fetches a chart");
    let svg = svg.as_str().expect("text");
    assert!(
        svg.contains("GET /health") && svg.contains("<polyline"),
        "real data drawn: {}",
        &svg[..svg.len().min(3000)]
    );

    // Nothing came from another host, and the console stayed clean.
    let origin = app.url("");
    assert_clean(&client, &origin, "/admin").await;
    let resources = client
        .execute(
            "return performance.getEntriesByType('resource').map(function(e){ return e.name; });",
            vec![],
        )
        .await
        .expect("resource list");
    for resource in resources.as_array().expect("list") {
        let resource = resource.as_str().expect("url");
        assert!(
            resource.starts_with(&origin),
            "{resource} is not from {origin}"
        );
    }

    if let Ok(dir) = std::env::var("VELRO_SCREENSHOT_DIR") {
        let png = client.screenshot().await.expect("screenshot");
        std::fs::write(format!("{dir}/console-dashboard.png"), png).expect("writes the screenshot");
    }

    assert_eq!(
        client
            .find(Locator::Id("flag-cache"))
            .await
            .expect("flag")
            .text()
            .await
            .expect("text"),
        "on"
    );
    client
        .find(Locator::Id("toggle-cache"))
        .await
        .expect("switch")
        .click()
        .await
        .expect("clicks");
    wait_until(
        &client,
        "the flag shows off",
        "var f = document.getElementById('flag-cache'); return f != null && f.textContent == 'off';",
    )
    .await;
    let flags = app.admin(reqwest::Method::GET, "/flags", None).await;
    assert_eq!(flags.status(), StatusCode::OK);
    assert_eq!(flags.json::<Value>().await.expect("json")["cache"], false);
    let page = client.source().await.expect("source");
    assert!(
        page.contains("service-key"),
        "the change is listed with who made it"
    );

    client.close().await.expect("closes the session");
}

/// 90 days of history, one sample an hour per component, with a bad hour on two days: enough
/// for every bar to draw.
async fn seed_history(app: &TestApp) {
    let now = unix_minute(SystemClock.now());
    let mut samples = Vec::new();
    for hour in 0..(90 * 24) {
        let minute = now - 60 * hour - 1;
        let day = hour / 24;
        for component in Component::ALL {
            let bad = matches!(
                (day, component),
                (23, Component::AuthApi | Component::Database) | (61, Component::Email)
            ) && hour % 24 == 3;
            let (state, reason) = if bad {
                (ComponentState::MajorOutage, "Database unreachable")
            } else {
                (ComponentState::Operational, "Operational")
            };
            samples.push(StatusSample {
                component,
                minute,
                state,
                reason: reason.into(),
            });
        }
    }
    app.store()
        .await
        .record_status(&samples, 0)
        .await
        .expect("records the history");
}

/// `velro admin --json ARGS` against the test instance, as an operator runs it: the real binary,
/// the service key in its environment.
async fn admin_cli(app: &TestApp, args: &[&str]) -> Value {
    let mut command = velro();
    command
        .args(["admin", "--url", &app.address, "--json"])
        .args(args)
        .env("VELRO_SERVICE_KEY", SERVICE_KEY)
        .stdin(Stdio::null());
    let output =
        tokio::task::spawn_blocking(move || output_within(command, Duration::from_secs(30)))
            .await
            .expect("the run ends");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "velro admin {args:?}: {}\n{stdout}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("{error}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_opened_from_the_cli_shows_on_a_clean_status_page_in_a_browser() {
    let Some(driver) = chromedriver() else {
        return;
    };
    let first = TestApp::sqlite().await;
    seed_history(&first).await;
    // An instance reads the history when it starts (then every few minutes): a second one on
    // the same database shows the seeded days at once.
    let data_dir = first.config.data_dir.clone();
    let app = first.with_config(|config| config.data_dir = data_dir).await;
    let opened = admin_cli(
        &app,
        &[
            "incidents",
            "open",
            "Sign-in is slow for some users",
            "--impact",
            "major",
            "--message",
            "Sign-in takes up to 30 s for some users. We are investigating.",
            "--component",
            "auth_api,database",
        ],
    )
    .await;
    let id = opened["id"]
        .as_str()
        .expect("the incident's id")
        .to_string();
    admin_cli(
        &app,
        &[
            "incidents",
            "update",
            &id,
            "--status",
            "identified",
            "--message",
            "A connection pool was too small after the last deploy. A fix is rolling out; updates every hour.",
        ],
    )
    .await;

    let client = browser(&driver).await;
    let origin = app.url("");
    // Whatever the browser did before the page (its start page) is not the page's doing.
    let _ = log(&client, "browser").await;
    let _ = log(&client, "performance").await;
    client
        .set_window_size(860, 1180)
        .await
        .expect("a phone-to-laptop width");
    client
        .goto(&app.url("/status"))
        .await
        .expect("opens /status");
    let card = client
        .wait()
        .at_most(PATIENCE)
        .for_element(Locator::Id(&format!("incident-{id}")))
        .await
        .expect("the incident opened from the CLI is on the page");
    let text = card.text().await.expect("text");
    for shown in [
        "Sign-in is slow for some users",
        "Identified",
        "Investigating",
        "Major impact",
        "A connection pool was too small",
    ] {
        assert!(text.contains(shown), "{shown:?} missing: {text}");
    }
    let banner = client
        .find(Locator::Css("p.banner"))
        .await
        .expect("the banner")
        .text()
        .await
        .expect("text");
    assert_eq!(banner, "Partial outage · 1 open incident, see below");
    wait_until(
        &client,
        "90 bars per component, drawn from the seeded history",
        "var bars = document.querySelectorAll('.bars'); \
         return bars.length == 5 && Array.from(bars).every(function(b){ \
           return b.children.length == 90 && b.querySelectorAll('.s-none').length == 0; });",
    )
    .await;
    assert_clean(&client, &origin, "/status").await;

    if let Ok(dir) = std::env::var("VELRO_SCREENSHOT_DIR") {
        let png = client.screenshot().await.expect("screenshot");
        std::fs::write(format!("{dir}/status-page.png"), png).expect("writes the screenshot");
    }

    // The check itself fails on a page that breaks both rules: a script's error and an image
    // from another host (127.0.0.2: nothing listens, and nothing leaves the machine).
    client
        .goto(
            "data:text/html,<!doctype html><title>broken</title>\
             <script>console.error('deliberate')</script><img src='http://127.0.0.2:9/pixel.png'>",
        )
        .await
        .expect("opens the broken page");
    wait_until(
        &client,
        "the broken page loaded",
        "return document.readyState == 'complete';",
    )
    .await;
    let (console, elsewhere) = problems(&client, &origin).await;
    assert!(
        console.iter().any(|entry| entry.contains("deliberate")),
        "the console error went unseen: {console:#?}"
    );
    assert!(
        elsewhere
            .iter()
            .any(|url| url.starts_with("http://127.0.0.2:9/")),
        "the foreign request went unseen: {elsewhere:#?}"
    );

    client.close().await.expect("closes the session");
}
