//! Refresh-token rotation: every outcome of `rotate_refresh_token`, and its atomicity.

use std::sync::Arc;

use tokio::sync::Barrier;
use velro_core::domain::AdminUserChange;
use velro_core::store::Rotation;

use crate::fixture::{is_live, new_session, policy, register, secs, t0, token, Fixture};

store_contract!(
    a_live_refresh_token_rotates_to_its_successor,
    a_remember_me_session_rotates_with_the_longer_lifetime,
    a_spent_token_within_grace_points_at_the_newest_generation,
    a_token_reused_after_grace_revokes_the_session,
    an_expired_refresh_token_is_invalid,
    an_unknown_refresh_token_is_invalid,
    tokens_of_a_revoked_session_are_invalid,
    tokens_of_a_disabled_user_are_invalid,
    concurrent_rotations_of_one_token_rotate_exactly_once,
);

async fn a_live_refresh_token_rotates_to_its_successor(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let first = token();
    let later = at + secs(60);

    let rotation = store
        .rotate_refresh_token(ada.refresh, first, policy(), later)
        .await
        .expect("rotate");
    let Rotation::Rotated { session, user } = rotation else {
        panic!("expected Rotated, got {rotation:?}");
    };
    assert_eq!(session.id, ada.session);
    assert_eq!(session.created_at, at);
    assert_eq!(session.last_refreshed_at, Some(later));
    assert_eq!(session.expires_at, later + policy().lifetime);
    assert!(!session.remember_me);
    assert_eq!(user, ada.user);

    let stored = store
        .find_live_session(ada.session)
        .await
        .expect("find_live_session")
        .expect("still live");
    assert_eq!(stored.session, session);

    // The successor is the session's current token and rotates in turn.
    let second = token();
    let even_later = later + secs(60);
    let rotation = store
        .rotate_refresh_token(first, second, policy(), even_later)
        .await
        .expect("rotate the successor");
    let Rotation::Rotated { session, .. } = rotation else {
        panic!("expected Rotated, got {rotation:?}");
    };
    assert_eq!(session.last_refreshed_at, Some(even_later));
    assert_eq!(session.expires_at, even_later + policy().lifetime);
    let listed = store
        .list_live_sessions(ada.user.id, even_later)
        .await
        .expect("list");
    assert_eq!(listed, vec![session]);
}

async fn a_remember_me_session_rotates_with_the_longer_lifetime(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let remembered = new_session(ada.user.id, at, true);
    let presented = remembered.refresh_token;
    store
        .create_session(remembered)
        .await
        .expect("create_session");

    let later = at + secs(3600);
    let rotation = store
        .rotate_refresh_token(presented, token(), policy(), later)
        .await
        .expect("rotate");
    let Rotation::Rotated { session, .. } = rotation else {
        panic!("expected Rotated, got {rotation:?}");
    };
    assert!(session.remember_me);
    assert_eq!(session.expires_at, later + policy().remember_me_lifetime);
}

async fn a_spent_token_within_grace_points_at_the_newest_generation(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let (first, second) = (token(), token());
    let rotated = store
        .rotate_refresh_token(ada.refresh, first, policy(), at + secs(1))
        .await
        .expect("rotate 0 -> 1");
    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");

    let rotation = store
        .rotate_refresh_token(ada.refresh, token(), policy(), at + secs(2))
        .await
        .expect("present generation 0 again");
    let Rotation::ReusedWithinGrace {
        session,
        user,
        presented_generation,
        newest_generation,
    } = rotation
    else {
        panic!("expected ReusedWithinGrace, got {rotation:?}");
    };
    assert_eq!((presented_generation, newest_generation), (0, 1));
    assert_eq!(session.id, ada.session);
    assert_eq!(session.last_refreshed_at, Some(at + secs(1)));
    assert_eq!(user.id, ada.user.id);

    // The successor itself was spent meanwhile: the newest is two steps away. Presented 10 s
    // after it was spent, the grace window's last instant.
    let rotated = store
        .rotate_refresh_token(first, second, policy(), at + secs(3))
        .await
        .expect("rotate 1 -> 2");
    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");
    let rotation = store
        .rotate_refresh_token(ada.refresh, token(), policy(), at + secs(11))
        .await
        .expect("present generation 0 again");
    assert!(
        matches!(
            rotation,
            Rotation::ReusedWithinGrace {
                presented_generation: 0,
                newest_generation: 2,
                ..
            }
        ),
        "{rotation:?}"
    );
    // A grace replay changes nothing.
    assert!(is_live(store, ada.session).await);
    let rotated = store
        .rotate_refresh_token(second, token(), policy(), at + secs(12))
        .await
        .expect("rotate 2 -> 3");
    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");
}

async fn a_token_reused_after_grace_revokes_the_session(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let successor = token();
    let rotated = store
        .rotate_refresh_token(ada.refresh, successor, policy(), at + secs(1))
        .await
        .expect("rotate");
    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");

    let rotation = store
        .rotate_refresh_token(ada.refresh, token(), policy(), at + secs(12))
        .await
        .expect("replay after grace");
    assert!(
        matches!(rotation, Rotation::ReusedAfterGrace { .. }),
        "{rotation:?}"
    );
    assert!(!is_live(store, ada.session).await);
    assert!(store
        .list_live_sessions(ada.user.id, at + secs(12))
        .await
        .expect("list")
        .is_empty());

    // Every token of the session is dead now, the thief's successor included.
    let rotation = store
        .rotate_refresh_token(successor, token(), policy(), at + secs(13))
        .await
        .expect("present the successor");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
    let rotation = store
        .rotate_refresh_token(ada.refresh, token(), policy(), at + secs(14))
        .await
        .expect("replay again");
    assert!(
        matches!(
            rotation,
            Rotation::Invalid | Rotation::ReusedAfterGrace { .. }
        ),
        "{rotation:?}"
    );
}

async fn an_expired_refresh_token_is_invalid(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let expiry = at + policy().lifetime;
    let rotation = store
        .rotate_refresh_token(ada.refresh, token(), policy(), expiry)
        .await
        .expect("rotate at expiry");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
    // Refusing it spent nothing: just before expiry it would still have rotated.
    let rotation = store
        .rotate_refresh_token(ada.refresh, token(), policy(), expiry - secs(1))
        .await
        .expect("rotate before expiry");
    assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
}

async fn an_unknown_refresh_token_is_invalid(fx: &Fixture) {
    let store = fx.store();
    register(store, "ada@example.com", t0()).await;
    let rotation = store
        .rotate_refresh_token(token(), token(), policy(), t0())
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
}

async fn tokens_of_a_revoked_session_are_invalid(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    assert!(store
        .revoke_session(ada.user.id, ada.session, at + secs(1))
        .await
        .expect("revoke"));
    let rotation = store
        .rotate_refresh_token(ada.refresh, token(), policy(), at + secs(2))
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
}

async fn tokens_of_a_disabled_user_are_invalid(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let successor = token();
    let rotated = store
        .rotate_refresh_token(ada.refresh, successor, policy(), at + secs(1))
        .await
        .expect("rotate");
    assert!(matches!(rotated, Rotation::Rotated { .. }), "{rotated:?}");
    let disable = AdminUserChange {
        disabled: Some(true),
        ..AdminUserChange::default()
    };
    store
        .update_user(ada.user.id, &disable, at + secs(2))
        .await
        .expect("update_user")
        .expect("the user");
    for presented in [successor, ada.refresh] {
        let rotation = store
            .rotate_refresh_token(presented, token(), policy(), at + secs(3))
            .await
            .expect("rotate");
        assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
    }
    // Enabling the account again does not bring revoked sessions back.
    let enable = AdminUserChange {
        disabled: Some(false),
        ..AdminUserChange::default()
    };
    store
        .update_user(ada.user.id, &enable, at + secs(4))
        .await
        .expect("update_user")
        .expect("the user");
    let rotation = store
        .rotate_refresh_token(successor, token(), policy(), at + secs(5))
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
}

async fn concurrent_rotations_of_one_token_rotate_exactly_once(fx: &Fixture) {
    const CALLS: usize = 10;
    let at = t0();
    let ada = register(fx.store(), "ada@example.com", at).await;
    let (presented, successor) = (ada.refresh, token());
    let start = Arc::new(Barrier::new(CALLS));
    let calls: Vec<_> = (0..CALLS)
        .map(|_| {
            let (store, start) = (fx.shared(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .rotate_refresh_token(presented, successor, policy(), at + secs(1))
                    .await
            })
        })
        .collect();
    let (mut rotated, mut within_grace) = (0, 0);
    for call in calls {
        match call.await.expect("task").expect("rotate") {
            Rotation::Rotated { .. } => rotated += 1,
            Rotation::ReusedWithinGrace {
                presented_generation: 0,
                newest_generation: 1,
                ..
            } => within_grace += 1,
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    assert_eq!((rotated, within_grace), (1, CALLS - 1));
    let tokens = "SELECT count(*) FROM refresh_tokens WHERE session_id = $1";
    assert_eq!(fx.count(tokens, ada.session.0).await, 2);
    let rotation = fx
        .store()
        .rotate_refresh_token(successor, token(), policy(), at + secs(2))
        .await
        .expect("rotate the successor");
    assert!(matches!(rotation, Rotation::Rotated { .. }), "{rotation:?}");
}
