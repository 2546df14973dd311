//! The run-time switch: off means straight to the store with identical answers, and writes
//! made while off still invalidate.

use velro_core::cache::{CacheControl, CacheHealth};
use velro_core::store::SessionWithUser;

use crate::helpers::{config, namespace, now, redis, register, within_two_seconds, Db, Instance};

fn same(a: &SessionWithUser, b: &SessionWithUser) {
    assert_eq!(a.session, b.session);
    assert_eq!(a.user, b.user);
}

#[tokio::test]
async fn switched_off_the_store_is_called_every_time_and_answers_are_identical() {
    let db = Db::new().await;
    let app = Instance::start(&db, config(&namespace(), velro_redistest::redis_url())).await;
    let (_, session) = register(app.store()).await;
    let cached = app.live(session).await.expect("live");
    let cached_again = app.live(session).await.expect("live");
    assert_eq!(app.store_lookups(), 1);

    app.cache.control.set_enabled(false);
    assert!(!app.cache.control.enabled());
    assert_eq!(app.cache.control.health(), CacheHealth::Disabled);
    for n in 2..=4 {
        let direct = app.live(session).await.expect("live");
        assert_eq!(app.store_lookups(), n, "every lookup reaches the store");
        same(&direct, &cached);
    }
    same(&cached, &cached_again);

    app.cache.control.set_enabled(true);
    let after = app.live(session).await.expect("live");
    same(&after, &cached);
    app.stop().await;
    db.close().await;
}

#[tokio::test]
async fn switching_off_empties_l1_and_writes_made_while_off_still_invalidate() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let ns = namespace();
    let a = Instance::start(&db, config(&ns, Some(url.clone()))).await;
    let b = Instance::start(&db, config(&ns, Some(url))).await;
    a.ready().await;
    b.ready().await;
    let (user, session) = register(a.store()).await;
    assert!(a.live(session).await.is_some());
    assert!(b.live(session).await.is_some());

    a.cache.control.set_enabled(false);
    assert!(a
        .store()
        .revoke_session(user, session, now())
        .await
        .expect("revoke"));
    within_two_seconds(|| {
        let b = &b;
        async move { b.live(session).await.is_none() }
    })
    .await;

    a.cache.control.set_enabled(true);
    let lookups = a.store_lookups();
    assert!(
        a.live(session).await.is_none(),
        "no entry survived switching off"
    );
    assert_eq!(a.store_lookups(), lookups + 1);
    a.stop().await;
    b.stop().await;
    db.close().await;
}
