//! Redis that hangs: from the start (accepts connections, never answers) or after clients have
//! connected (a stalling proxy). Lookups and writes stay bounded; the breaker opens and then no
//! request waits for Redis at all.

use std::time::{Duration, Instant};

use velro_core::cache::{CacheControl, CacheHealth};
use velro_redistest::{hung_redis, StallingProxy};

use crate::helpers::{config, namespace, now, redis, register, sign_in, Db, Instance};

#[tokio::test]
async fn a_redis_that_never_answers_does_not_hold_up_start_up_lookups_or_writes() {
    let db = Db::new().await;
    let started = Instant::now();
    let app = Instance::start(&db, config(&namespace(), Some(hung_redis()))).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "start-up took {:?}",
        started.elapsed()
    );
    assert_eq!(
        app.cache.control.health(),
        CacheHealth::Degraded("redis unavailable".into())
    );

    let (user, session) = register(app.store()).await;
    let mut others = Vec::new();
    for _ in 0..5 {
        others.push(sign_in(app.store(), user).await.0);
    }
    let started = Instant::now();
    for session in others.iter().chain([&session]) {
        assert!(app.live(*session).await.is_some());
        assert!(app.live(*session).await.is_some());
    }
    assert!(app
        .store()
        .revoke_session(user, session, now())
        .await
        .expect("revoke"));
    assert!(app.live(session).await.is_none());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "13 calls took {:?}",
        started.elapsed()
    );
    app.stop().await;
    db.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_that_stalls_opens_the_circuit_and_then_costs_nothing() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let proxy = StallingProxy::start(&url);
    let timeout = Duration::from_millis(100);
    let app = Instance::start(
        &db,
        velro_cache::CacheConfig {
            redis_timeout: timeout,
            breaker_failures: 3,
            breaker_cooldown: Duration::from_millis(300),
            ..config(&namespace(), Some(proxy.url.clone()))
        },
    )
    .await;
    app.ready().await;
    let (user, first) = register(app.store()).await;
    let mut sessions = vec![first];
    for _ in 0..12 {
        sessions.push(sign_in(app.store(), user).await.0);
    }

    proxy.set_stalled(true);
    // Each first lookup misses L1 and waits one timeout on L2 GET (and one on the fill), until
    // the circuit opens.
    let mut opened_after = None;
    for (n, session) in sessions.iter().take(4).enumerate() {
        let started = Instant::now();
        assert!(app.live(*session).await.is_some());
        assert!(
            started.elapsed() < timeout * 3,
            "lookup {n} took {:?}",
            started.elapsed()
        );
        if opened_after.is_none()
            && app.cache.control.health() == CacheHealth::Degraded("redis unavailable".into())
        {
            opened_after = Some(n + 1);
        }
    }
    assert!(opened_after.is_some(), "the circuit did not open");
    let started = Instant::now();
    for session in &sessions[4..] {
        assert!(app.live(*session).await.is_some());
    }
    assert!(
        started.elapsed() < timeout,
        "with the circuit open, 9 cold lookups took {:?}",
        started.elapsed()
    );

    proxy.set_stalled(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while app.cache.control.health() != CacheHealth::Ok {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            app.cache.control.health()
        );
        // A lookup that misses L1 is what lets the probe through.
        let _ = app
            .live(velro_core::domain::SessionId(uuid::Uuid::new_v4()))
            .await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
    db.close().await;
}
