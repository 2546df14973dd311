//! Two instances sharing one store and one Redis: writes through A are seen through B once B
//! has the pub/sub message, and L2 spares B the store.

use std::io::Write;
use std::time::Duration;

use velro_core::cache::{CacheControl, CacheHealth};
use velro_core::domain::{AdminUserChange, AvatarUrl, DisplayName, ProfileChange};

use crate::helpers::{
    config, exists, namespace, now, raw_redis, redis, register, sign_in, within_two_seconds, Db,
    Instance,
};

async fn pair(db: &Db, url: &str) -> (Instance, Instance, String) {
    let ns = namespace();
    let a = Instance::start(db, config(&ns, Some(url.to_owned()))).await;
    let b = Instance::start(db, config(&ns, Some(url.to_owned()))).await;
    a.ready().await;
    b.ready().await;
    (a, b, ns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoke_through_one_instance_is_refused_through_the_other_within_the_pubsub_lag() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let (a, b, _) = pair(&db, &url).await;
    const ROUNDS: usize = 30;
    let mut lags = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        let (user, session) = register(a.store()).await;
        assert!(b.live(session).await.is_some());
        let lookups = b.store_lookups();
        assert!(b.live(session).await.is_some());
        assert_eq!(b.store_lookups(), lookups, "B serves it from L1");

        assert!(a
            .store()
            .revoke_session(user, session, now())
            .await
            .expect("revoke"));
        let lag = within_two_seconds(|| {
            let b = &b;
            async move { b.live(session).await.is_none() }
        })
        .await;
        lags.push(lag);
    }
    lags.sort();
    let p50 = lags[ROUNDS / 2];
    let max = lags[ROUNDS - 1];
    // Straight to the stream, so that the figure shows with --nocapture or without.
    let _ = writeln!(
        std::io::stderr(),
        "pub/sub revocation lag over {ROUNDS} revocations (revoke on A returned -> refused on B): \
         p50 {p50:?}, p90 {:?}, max {max:?}",
        lags[ROUNDS * 9 / 10]
    );
    assert!(max < Duration::from_secs(1), "max lag {max:?}");
    a.stop().await;
    b.stop().await;
    db.close().await;
}

#[tokio::test]
async fn a_profile_change_through_one_instance_shows_through_the_other() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let (a, b, _) = pair(&db, &url).await;
    let (user, session) = register(a.store()).await;
    assert_eq!(
        b.live(session)
            .await
            .expect("live")
            .user
            .display_name
            .as_deref(),
        Some("Ada")
    );
    let change = ProfileChange {
        display_name: Some(Some(DisplayName::parse("Grace").expect("a valid name"))),
        avatar_url: Some(Some(
            AvatarUrl::parse("https://example.com/g.png").expect("a valid URL"),
        )),
    };
    a.store()
        .update_profile(user, &change, now())
        .await
        .expect("update_profile")
        .expect("the user exists");
    within_two_seconds(|| {
        let b = &b;
        async move {
            b.live(session)
                .await
                .expect("still live")
                .user
                .display_name
                .as_deref()
                == Some("Grace")
        }
    })
    .await;
    a.stop().await;
    b.stop().await;
    db.close().await;
}

#[tokio::test]
async fn an_admin_disable_through_one_instance_blocks_the_user_through_the_other() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let (a, b, _) = pair(&db, &url).await;
    let (user, session) = register(a.store()).await;
    let (second, _) = sign_in(a.store(), user).await;
    assert!(b.live(session).await.is_some());
    assert!(b.live(second).await.is_some());
    let disable = AdminUserChange {
        disabled: Some(true),
        ..AdminUserChange::default()
    };
    a.store()
        .update_user(user, &disable, now())
        .await
        .expect("update_user")
        .expect("the user exists");
    within_two_seconds(|| {
        let b = &b;
        async move { b.live(session).await.is_none() && b.live(second).await.is_none() }
    })
    .await;
    a.stop().await;
    b.stop().await;
    db.close().await;
}

#[tokio::test]
async fn an_l2_hit_spares_the_store_and_fills_l1() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let (a, b, _) = pair(&db, &url).await;
    let (_, session) = register(a.store()).await;
    let through_a = a.live(session).await.expect("live");
    let through_b = b.live(session).await.expect("live");
    let again = b.live(session).await.expect("live");
    assert_eq!(b.store_lookups(), 0, "B never reached the store");
    assert_eq!(through_a.session, through_b.session);
    assert_eq!(through_a.user, through_b.user);
    assert_eq!(again.user, through_b.user);
    a.stop().await;
    b.stop().await;
    db.close().await;
}

#[tokio::test]
async fn a_user_level_invalidation_drops_every_session_of_the_user_in_both_layers() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let (a, b, ns) = pair(&db, &url).await;
    let mut raw = raw_redis(&url).await;
    let (user, first) = register(a.store()).await;
    let (second, _) = sign_in(a.store(), user).await;
    let (third, _) = sign_in(a.store(), user).await;
    let (bystander_user, bystander) = register(a.store()).await;
    let sessions = [first, second, third];
    for session in sessions.iter().chain([&bystander]) {
        assert!(a.live(*session).await.is_some());
        assert!(b.live(*session).await.is_some());
    }
    let old_updated_at = a.live(first).await.expect("live").user.updated_at;
    let user_set = format!("{ns}:user-sessions:{user}");
    assert!(exists(&mut raw, &user_set).await);
    for session in sessions {
        assert!(exists(&mut raw, &format!("{ns}:session:{session}")).await);
    }

    a.store()
        .replace_password_hash(
            user,
            &velro_core::domain::PasswordHash::new("$argon2id$v=19$rehashed".into()),
            now(),
        )
        .await
        .expect("replace_password_hash");
    // L2: gone before the write returned.
    assert!(!exists(&mut raw, &user_set).await);
    for session in sessions {
        assert!(!exists(&mut raw, &format!("{ns}:session:{session}")).await);
    }
    assert!(exists(&mut raw, &format!("{ns}:session:{bystander}")).await);
    // L1 on A: at once (every session read from the store again); on B: after the message.
    let before = a.store_lookups();
    for session in sessions {
        let live = a.live(session).await.expect("live");
        assert_ne!(live.user.updated_at, old_updated_at);
    }
    assert_eq!(a.store_lookups(), before + 3);
    within_two_seconds(|| {
        let b = &b;
        async move {
            let mut fresh = true;
            for session in sessions {
                fresh &= b.live(session).await.expect("live").user.updated_at != old_updated_at;
            }
            fresh
        }
    })
    .await;
    let before = b.store_lookups();
    let other = b.live(bystander).await.expect("live");
    assert_eq!(other.user.id, bystander_user);
    assert_eq!(
        b.store_lookups(),
        before,
        "another user's entry stays cached"
    );
    a.stop().await;
    b.stop().await;
    db.close().await;
}

#[tokio::test]
async fn the_feed_stays_subscribed_across_its_liveness_checks() {
    let Some(url) = redis() else { return };
    let db = Db::new().await;
    let (a, b, _) = pair(&db, &url).await;
    let (_, session) = register(a.store()).await;
    assert!(a.live(session).await.is_some());
    // Longer than two liveness checks; a failed check would resubscribe and empty L1.
    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(a.cache.control.health(), CacheHealth::Ok);
    assert!(a.live(session).await.is_some());
    assert_eq!(a.store_lookups(), 1, "still in L1");
    a.stop().await;
    b.stop().await;
    db.close().await;
}
