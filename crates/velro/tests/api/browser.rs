//! The dashboard in a real browser (Debian's chromium, driven through chromedriver over
//! WebDriver): sign in with the service key, see every chart drawn from real traffic and
//! reloaded, flip the cache flag and see the admin API agree, with nothing loaded from another
//! host. Skipped when chromedriver is not installed, except under CI=true, where that fails.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use reqwest::StatusCode;
use serde_json::{json, Value};

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

    // Nothing came from another host.
    let origin = app.url("");
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
