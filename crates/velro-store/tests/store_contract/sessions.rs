//! Sessions: creating, listing, looking up and revoking them.

use std::collections::HashSet;

use uuid::Uuid;
use velro_core::domain::{AdminUserChange, SessionId, UserId};

use crate::fixture::{is_live, new_session, register, secs, sign_in, t0, Fixture};

store_contract!(
    live_sessions_are_listed_newest_first,
    listing_skips_revoked_and_expired_sessions,
    a_live_session_is_found_whatever_its_refresh_expiry,
    a_session_of_a_disabled_user_is_not_live,
    revoking_a_session_needs_its_owner_and_happens_once,
    revoking_all_sessions_can_keep_one_and_returns_the_ids_revoked,
);

async fn live_sessions_are_listed_newest_first(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let (newest, _) = sign_in(store, ada.user.id, at + secs(20)).await;
    // Two created at the same moment: the tie is broken by id, newest-first style.
    let (tie_a, _) = sign_in(store, ada.user.id, at + secs(10)).await;
    let (tie_b, _) = sign_in(store, ada.user.id, at + secs(10)).await;
    let (high, low) = if tie_a.0 > tie_b.0 {
        (tie_a, tie_b)
    } else {
        (tie_b, tie_a)
    };

    let listed = store
        .list_live_sessions(ada.user.id, at + secs(30))
        .await
        .expect("list_live_sessions");
    let ids: Vec<SessionId> = listed.iter().map(|s| s.id).collect();
    assert_eq!(ids, vec![newest, high, low, ada.session]);
    assert!(listed.iter().all(|s| s.user_id == ada.user.id));
    assert_eq!(listed[0].created_at, at + secs(20));
    assert_eq!(listed[3].last_refreshed_at, None);

    // Other users' sessions never show.
    let grace = register(store, "grace@example.com", at).await;
    let listed = store
        .list_live_sessions(grace.user.id, at + secs(30))
        .await
        .expect("list_live_sessions");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, grace.session);
}

async fn listing_skips_revoked_and_expired_sessions(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let (revoked, _) = sign_in(store, ada.user.id, at + secs(1)).await;
    let short = new_session(ada.user.id, at + secs(2), false);
    let short_id = short.id;
    let short = velro_core::store::NewSession {
        refresh_expires_at: at + secs(60),
        ..short
    };
    store.create_session(short).await.expect("create_session");
    assert!(store
        .revoke_session(ada.user.id, revoked, at + secs(3))
        .await
        .expect("revoke"));

    let ids = |sessions: Vec<velro_core::domain::SessionRecord>| {
        sessions.into_iter().map(|s| s.id).collect::<Vec<_>>()
    };
    let before_expiry = store
        .list_live_sessions(ada.user.id, at + secs(59))
        .await
        .expect("list");
    assert_eq!(ids(before_expiry), vec![short_id, ada.session]);
    // expires_at is exclusive: at that instant the session is no longer live.
    let at_expiry = store
        .list_live_sessions(ada.user.id, at + secs(60))
        .await
        .expect("list");
    assert_eq!(ids(at_expiry), vec![ada.session]);
}

async fn a_live_session_is_found_whatever_its_refresh_expiry(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let short = velro_core::store::NewSession {
        refresh_expires_at: at + secs(1),
        ..new_session(ada.user.id, at, false)
    };
    let short_id = short.id;
    store.create_session(short).await.expect("create_session");
    // Access tokens carry their own expiry; the session only has to be unrevoked.
    let found = store
        .find_live_session(short_id)
        .await
        .expect("find_live_session")
        .expect("still live");
    assert_eq!(found.session.expires_at, at + secs(1));
    assert_eq!(found.user.id, ada.user.id);
}

async fn a_session_of_a_disabled_user_is_not_live(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let disable = AdminUserChange {
        disabled: Some(true),
        ..AdminUserChange::default()
    };
    store
        .update_user(ada.user.id, &disable, at + secs(1))
        .await
        .expect("update_user")
        .expect("the user");
    assert!(!is_live(store, ada.session).await);
}

async fn revoking_a_session_needs_its_owner_and_happens_once(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let grace = register(store, "grace@example.com", at).await;

    assert!(!store
        .revoke_session(grace.user.id, ada.session, at + secs(1))
        .await
        .expect("revoke someone else's"));
    assert!(!store
        .revoke_session(UserId(Uuid::new_v4()), ada.session, at + secs(1))
        .await
        .expect("revoke as nobody"));
    assert!(!store
        .revoke_session(ada.user.id, SessionId(Uuid::new_v4()), at + secs(1))
        .await
        .expect("revoke an unknown session"));
    assert!(is_live(store, ada.session).await);

    assert!(store
        .revoke_session(ada.user.id, ada.session, at + secs(2))
        .await
        .expect("revoke"));
    assert!(!is_live(store, ada.session).await);
    assert!(!store
        .revoke_session(ada.user.id, ada.session, at + secs(3))
        .await
        .expect("revoke again"));
    assert!(is_live(store, grace.session).await);
}

async fn revoking_all_sessions_can_keep_one_and_returns_the_ids_revoked(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let grace = register(store, "grace@example.com", at).await;
    let (second, _) = sign_in(store, ada.user.id, at + secs(1)).await;
    let (third, _) = sign_in(store, ada.user.id, at + secs(2)).await;
    let (already, _) = sign_in(store, ada.user.id, at + secs(3)).await;
    assert!(store
        .revoke_session(ada.user.id, already, at + secs(4))
        .await
        .expect("revoke"));

    let revoked: HashSet<SessionId> = store
        .revoke_sessions(ada.user.id, Some(second), at + secs(5))
        .await
        .expect("revoke others")
        .into_iter()
        .collect();
    assert_eq!(revoked, HashSet::from([ada.session, third]));
    assert!(is_live(store, second).await);
    assert!(!is_live(store, ada.session).await);
    assert!(!is_live(store, third).await);

    let revoked = store
        .revoke_sessions(ada.user.id, None, at + secs(6))
        .await
        .expect("revoke all");
    assert_eq!(revoked, vec![second]);
    assert!(!is_live(store, second).await);
    assert!(store
        .revoke_sessions(ada.user.id, None, at + secs(7))
        .await
        .expect("revoke none")
        .is_empty());
    assert!(is_live(store, grace.session).await);
}
