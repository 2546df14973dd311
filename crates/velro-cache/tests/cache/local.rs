//! One instance: what L1 spares the store, and that its own writes are seen at once.

use time::Duration as TimeDuration;
use uuid::Uuid;
use velro_core::cache::{CacheControl, CacheHealth};
use velro_core::domain::{DisplayName, ProfileChange, SessionId};
use velro_core::store::{RefreshPolicy, Rotation};

use crate::helpers::{config, namespace, now, register, sign_in, token, Db, Instance};

#[tokio::test]
async fn a_second_lookup_is_an_l1_hit_without_a_store_call() {
    let db = Db::new().await;
    let app = Instance::start(&db, config(&namespace(), None)).await;
    assert_eq!(app.cache.control.health(), CacheHealth::LocalOnly);
    let (_, session) = register(app.store()).await;

    let first = app.live(session).await.expect("live");
    assert_eq!(app.store_lookups(), 1);
    let second = app.live(session).await.expect("live");
    assert_eq!(app.store_lookups(), 1, "served from L1");
    assert_eq!(first.session, second.session);
    assert_eq!(first.user, second.user);
    app.stop().await;
    db.close().await;
}

#[tokio::test]
async fn unknown_sessions_are_not_cached() {
    let db = Db::new().await;
    let app = Instance::start(&db, config(&namespace(), None)).await;
    let unknown = SessionId(Uuid::new_v4());
    assert!(app.live(unknown).await.is_none());
    assert!(app.live(unknown).await.is_none());
    assert_eq!(app.store_lookups(), 2);
    app.stop().await;
    db.close().await;
}

#[tokio::test]
async fn a_revoked_session_is_refused_at_once_on_the_instance_that_revoked_it() {
    let db = Db::new().await;
    // With Redis when there is one, so that L2 is exercised too.
    let app = Instance::start(&db, config(&namespace(), velro_redistest::redis_url())).await;
    let (user, session) = register(app.store()).await;
    let (other, _) = sign_in(app.store(), user).await;
    assert!(app.live(session).await.is_some());
    assert!(app.live(other).await.is_some());

    assert!(app
        .store()
        .revoke_session(user, session, now())
        .await
        .expect("revoke"));
    assert!(
        app.live(session).await.is_none(),
        "refused on the very next lookup"
    );

    let revoked = app
        .store()
        .revoke_sessions(user, None, now())
        .await
        .expect("revoke all");
    assert_eq!(revoked, vec![other]);
    assert!(app.live(other).await.is_none());
    app.stop().await;
    db.close().await;
}

#[tokio::test]
async fn a_profile_change_and_a_rotation_show_on_the_next_lookup() {
    let db = Db::new().await;
    let app = Instance::start(&db, config(&namespace(), velro_redistest::redis_url())).await;
    let (user, _) = register(app.store()).await;
    let (session, refresh) = sign_in(app.store(), user).await;
    let before = app.live(session).await.expect("live");
    assert_eq!(before.user.display_name.as_deref(), Some("Ada"));

    let change = ProfileChange {
        display_name: Some(Some(DisplayName::parse("Grace").expect("a valid name"))),
        avatar_url: None,
    };
    app.store()
        .update_profile(user, &change, now())
        .await
        .expect("update_profile")
        .expect("the user exists");
    let after = app.live(session).await.expect("live");
    assert_eq!(after.user.display_name.as_deref(), Some("Grace"));

    let policy = RefreshPolicy {
        lifetime: TimeDuration::days(7),
        remember_me_lifetime: TimeDuration::days(30),
        reuse_grace: TimeDuration::seconds(10),
    };
    let rotation = app
        .store()
        .rotate_refresh_token(refresh, token(), policy, now())
        .await
        .expect("rotate");
    let Rotation::Rotated {
        session: record, ..
    } = rotation
    else {
        panic!("expected a rotation, got {rotation:?}");
    };
    let after = app.live(session).await.expect("live");
    assert_eq!(
        after.session, record,
        "the rotated record, not the cached one"
    );
    assert!(after.session.last_refreshed_at.is_some());
    app.stop().await;
    db.close().await;
}
