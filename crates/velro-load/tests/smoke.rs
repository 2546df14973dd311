//! The load tool's smoke run: a real server in this process (SQLite, cheap hashing), a short
//! journey run with a few users, and a report with every step called and no error.

use std::time::Duration;

use velro::config::{Config, Switch};
use velro::startup::Application;
use velro_core::Secret;
use velro_load::{LoadConfig, ScenarioKind};

const JWT_SECRET: &str = "load-smoke-jwt-secret-0123456789abcdefghijklmnop";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_journey_run_calls_every_step_without_errors() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        bind: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: data_dir.path().to_path_buf(),
        jwt_secret: Some(Secret::new(JWT_SECRET.into())),
        // Cheap hashing in this test only; benchmarks keep the OWASP defaults.
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        hash_threads: Some(2),
        hash_queue: 256,
        shutdown_grace_secs: 1,
        // Every request comes from 127.0.0.1: per-IP limits would refuse the run.
        rate_limits: Switch::Off,
        ..Config::default()
    };
    let app = Application::build(&config).await.expect("the app builds");
    let host = format!("http://{}", app.local_addr().expect("bound"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let mut load = LoadConfig::new(host, ScenarioKind::Journey);
    load.users = 3;
    load.duration = Duration::from_secs(3);
    load.me_per_journey = 2;
    // Journeys under way at the deadline finish, so every step is reached however slow the
    // machine; the count of requests is not asserted beyond "some".
    load.finish_journeys = true;
    load.request_timeout = Duration::from_secs(30);
    let report = velro_load::run(load).await.expect("the run completes");
    println!("{}", report.table());

    assert_eq!(report.total_errors, 0, "errors: {:?}", report.endpoints);
    for step in ["register", "login", "me", "profile", "refresh", "logout"] {
        let row = report
            .endpoint(step)
            .unwrap_or_else(|| panic!("{step} was never called"));
        assert!(row.requests > 0, "{step} has no request");
        assert_eq!(row.errors, 0, "{step}: {:?}", row.outcomes);
    }
    assert!(report.journeys_completed > 0);
    let metrics = report
        .metrics
        .as_ref()
        .expect("/metrics was read before and after");
    assert!(
        metrics.hashes > 0.0,
        "every journey hashes twice: {metrics:?}"
    );
    let json = serde_json::to_value(&report).expect("the report serialises");
    assert!(json["endpoints"]
        .as_array()
        .is_some_and(|rows| rows.len() == 6));

    let _ = stop.send(());
    let _ = server.await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_hold_run_keeps_every_connection_open_and_every_check_answered() {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let config = Config {
        bind: "127.0.0.1:0".parse().expect("valid address"),
        data_dir: data_dir.path().to_path_buf(),
        jwt_secret: Some(Secret::new(JWT_SECRET.into())),
        argon2_memory_kib: 64,
        argon2_iterations: 1,
        hash_threads: Some(2),
        shutdown_grace_secs: 1,
        rate_limits: Switch::Off,
        ..Config::default()
    };
    let app = Application::build(&config).await.expect("the app builds");
    let host = format!("http://{}", app.local_addr().expect("bound"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async move {
        let _ = stopped.await;
    }));

    let report = velro_load::hold::run(velro_load::hold::HoldConfig {
        host,
        connections: 40,
        active: 10,
        rate: 20.0,
        connect_rate: 200.0,
        idle_ping: Duration::from_secs(1),
        duration: Duration::from_secs(2),
        request_timeout: Duration::from_secs(30),
        password: "velro load test passphrase 42".into(),
    })
    .await
    .expect("the run completes");
    println!("{}", report.table());

    assert!(
        report.failures.is_empty(),
        "failures: {:?}",
        report.failures
    );
    assert_eq!(report.connect_failed, 0);
    assert_eq!(report.opened, 40);
    assert_eq!(report.peak_open, 40);
    assert_eq!(report.open_at_end, 40);
    // One check on each connection, then the scheduled ones and the idle pings.
    assert!(report.requests > 40, "requests: {}", report.requests);
    assert!(report.active.count > 0 && report.idle.count >= 30);

    let _ = stop.send(());
    let _ = server.await;
}
