//! Concurrent misses of one session: one load, the others wait for it; and an invalidation
//! while that load is in flight still counts.

use std::sync::Arc;

use futures_util::future::join_all;
use velro_core::cache::{CacheControl, CacheHealth};

use crate::helpers::{config, namespace, now, register, within_two_seconds, Db, Instance};

const LOOKUPS: usize = 32;

#[tokio::test]
async fn concurrent_lookups_of_one_uncached_session_make_a_single_store_lookup() {
    let db = Db::new().await;
    let app = Instance::start(&db, config(&namespace(), None)).await;
    assert_eq!(app.cache.control.health(), CacheHealth::LocalOnly);
    let (_, session) = register(app.store()).await;

    // The first lookup to reach the store holds its answer back until every lookup has been
    // started (join_all polls each once before the gate can open).
    app.counted.close_gate();
    let lookups = join_all((0..LOOKUPS).map(|_| app.live(session)));
    let open = async {
        within_two_seconds(|| async { app.store_lookups() >= 1 }).await;
        app.counted.open_gate();
    };
    let (answers, ()) = tokio::join!(lookups, open);

    assert_eq!(app.store_lookups(), 1, "one load for {LOOKUPS} lookups");
    assert_eq!(answers.len(), LOOKUPS);
    for answer in answers {
        assert_eq!(answer.expect("live").session.id, session);
    }
    app.stop().await;
    db.close().await;
}

#[tokio::test]
async fn concurrent_lookups_of_an_unknown_session_share_a_load_but_none_is_not_cached() {
    let db = Db::new().await;
    let app = Instance::start(&db, config(&namespace(), None)).await;
    let unknown = velro_core::domain::SessionId(uuid::Uuid::new_v4());

    app.counted.close_gate();
    let lookups = join_all((0..LOOKUPS).map(|_| app.live(unknown)));
    let open = async {
        within_two_seconds(|| async { app.store_lookups() >= 1 }).await;
        app.counted.open_gate();
    };
    let (answers, ()) = tokio::join!(lookups, open);
    assert!(answers.iter().all(Option::is_none));
    assert_eq!(app.store_lookups(), 1);

    assert!(app.live(unknown).await.is_none());
    assert_eq!(
        app.store_lookups(),
        2,
        "the next lookup asks the store again"
    );
    app.stop().await;
    db.close().await;
}

#[tokio::test]
async fn a_revocation_during_a_load_in_flight_is_not_lost() {
    let db = Db::new().await;
    // With Redis when there is one, so that L2 is exercised too.
    let app =
        Arc::new(Instance::start(&db, config(&namespace(), velro_redistest::redis_url())).await);
    if app.cache.control.health() != CacheHealth::LocalOnly {
        app.ready().await;
    }
    let (user, session) = register(app.store()).await;

    // A lookup reads the live session from the store; its answer is held back.
    app.counted.close_gate();
    let before = tokio::spawn({
        let app = app.clone();
        async move { app.live(session).await }
    });
    within_two_seconds(|| async { app.store_lookups() == 1 }).await;

    // The revocation returns while that load is still in flight.
    assert!(app
        .store()
        .revoke_session(user, session, now())
        .await
        .expect("revoke"));

    // A lookup that starts now must not ride on the load that read before the revocation: it
    // reads the store itself (a second store lookup), and sees the revocation.
    let after = tokio::spawn({
        let app = app.clone();
        async move { app.live(session).await }
    });
    within_two_seconds(|| async { app.store_lookups() == 2 }).await;
    app.counted.open_gate();

    // The first lookup started before the revocation: its answer is allowed to be either.
    before.await.expect("first lookup");
    assert!(
        after.await.expect("second lookup").is_none(),
        "a lookup started after the revocation refuses the session"
    );
    // And the first load's answer was not cached: the session stays refused.
    assert!(app.live(session).await.is_none());
    assert_eq!(app.store_lookups(), 3);
    app.stop().await;
    db.close().await;
}
