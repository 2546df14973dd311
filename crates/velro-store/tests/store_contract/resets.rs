//! Password resets and password changes.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::Barrier;
use velro_core::domain::{AdminUserChange, SessionId};
use velro_core::store::Rotation;

use crate::fixture::{hash, is_live, policy, register, secs, sign_in, t0, token, Fixture};

store_contract!(
    a_reset_token_finds_its_user_until_it_is_used_or_expires,
    resetting_spends_every_reset_token_and_revokes_every_session,
    an_expired_or_unknown_reset_token_changes_nothing,
    a_reset_token_works_once_under_concurrency,
    resetting_keeps_a_disabled_account_disabled,
    changing_the_password_revokes_every_other_session,
    redeeming_a_reset_token_spends_all_of_them_and_keeps_password_and_sessions,
);

async fn redeeming_a_reset_token_spends_all_of_them_and_keeps_password_and_sessions(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let (first, second) = (token(), token());
    for reset in [first, second] {
        store
            .create_reset_token(ada.user.id, reset, at + secs(3600), at)
            .await
            .expect("create_reset_token");
    }
    let expired = token();
    store
        .create_reset_token(ada.user.id, expired, at + secs(10), at)
        .await
        .expect("create_reset_token");
    assert_eq!(
        store
            .redeem_reset_token(expired, at + secs(10))
            .await
            .expect("redeem expired"),
        None
    );
    assert_eq!(
        store
            .redeem_reset_token(token(), at + secs(1))
            .await
            .expect("redeem unknown"),
        None
    );
    assert_eq!(
        store
            .redeem_reset_token(first, at + secs(1))
            .await
            .expect("redeem"),
        Some(ada.user.id)
    );
    for spent in [first, second] {
        assert_eq!(
            store
                .redeem_reset_token(spent, at + secs(2))
                .await
                .expect("redeem again"),
            None
        );
    }
    let credentials = store
        .find_credentials(ada.user.id)
        .await
        .expect("find_credentials")
        .expect("still there");
    assert_eq!(
        credentials.password_hash.as_str(),
        hash("ada@example.com").as_str()
    );
    assert!(is_live(store, ada.session).await);
}

async fn a_reset_token_finds_its_user_until_it_is_used_or_expires(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let reset = token();
    store
        .create_reset_token(ada.user.id, reset, at + secs(3600), at)
        .await
        .expect("create_reset_token");

    let found = store
        .find_reset_token_user(reset, at + secs(3599))
        .await
        .expect("lookup")
        .expect("an unused, unexpired token");
    assert_eq!(found.user, ada.user);
    assert_eq!(
        found.password_hash.as_str(),
        hash("ada@example.com").as_str()
    );
    assert!(store
        .find_reset_token_user(reset, at + secs(3600))
        .await
        .expect("lookup at expiry")
        .is_none());
    assert!(store
        .find_reset_token_user(token(), at)
        .await
        .expect("unknown token")
        .is_none());

    store
        .reset_password(reset, &hash("new"), at + secs(1))
        .await
        .expect("reset")
        .expect("the token was usable");
    assert!(store
        .find_reset_token_user(reset, at + secs(2))
        .await
        .expect("lookup after use")
        .is_none());
}

async fn resetting_spends_every_reset_token_and_revokes_every_session(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let grace = register(store, "grace@example.com", at).await;
    let (second, second_refresh) = sign_in(store, ada.user.id, at + secs(1)).await;
    let (used, other, graces) = (token(), token(), token());
    for (user, reset) in [
        (ada.user.id, used),
        (ada.user.id, other),
        (grace.user.id, graces),
    ] {
        store
            .create_reset_token(user, reset, at + secs(3600), at)
            .await
            .expect("create_reset_token");
    }

    let later = at + secs(10);
    let (user_id, revoked) = store
        .reset_password(used, &hash("new"), later)
        .await
        .expect("reset")
        .expect("the token was usable");
    assert_eq!(user_id, ada.user.id);
    let revoked: HashSet<SessionId> = revoked.into_iter().collect();
    assert_eq!(revoked, HashSet::from([ada.session, second]));

    let found = store
        .find_credentials(ada.user.id)
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(found.password_hash.as_str(), hash("new").as_str());
    assert_eq!(found.user.updated_at, later);
    assert!(!is_live(store, ada.session).await);
    assert!(!is_live(store, second).await);
    let rotation = store
        .rotate_refresh_token(second_refresh, token(), policy(), later + secs(1))
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");

    // The user's other outstanding token was spent with it; another user's was not.
    assert!(store
        .find_reset_token_user(other, later)
        .await
        .expect("lookup")
        .is_none());
    assert!(store
        .reset_password(other, &hash("newer"), later + secs(1))
        .await
        .expect("reset with the other token")
        .is_none());
    assert!(store
        .reset_password(used, &hash("newer"), later + secs(1))
        .await
        .expect("reset again")
        .is_none());
    assert!(store
        .find_reset_token_user(graces, later)
        .await
        .expect("lookup")
        .is_some());
    assert!(is_live(store, grace.session).await);
    let unchanged = store
        .find_credentials(ada.user.id)
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(unchanged.password_hash.as_str(), hash("new").as_str());
}

async fn an_expired_or_unknown_reset_token_changes_nothing(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let reset = token();
    store
        .create_reset_token(ada.user.id, reset, at + secs(3600), at)
        .await
        .expect("create_reset_token");
    for (presented, when) in [(reset, at + secs(3600)), (token(), at + secs(1))] {
        assert!(store
            .reset_password(presented, &hash("new"), when)
            .await
            .expect("reset")
            .is_none());
    }
    let found = store
        .find_credentials(ada.user.id)
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(
        found.password_hash.as_str(),
        hash("ada@example.com").as_str()
    );
    assert_eq!(found.user.updated_at, at);
    assert!(is_live(store, ada.session).await);
}

async fn a_reset_token_works_once_under_concurrency(fx: &Fixture) {
    const CALLS: usize = 10;
    let at = t0();
    let ada = register(fx.store(), "ada@example.com", at).await;
    let reset = token();
    fx.store()
        .create_reset_token(ada.user.id, reset, at + secs(3600), at)
        .await
        .expect("create_reset_token");
    let start = Arc::new(Barrier::new(CALLS));
    let calls: Vec<_> = (0..CALLS)
        .map(|i| {
            let (store, start) = (fx.shared(), start.clone());
            tokio::spawn(async move {
                start.wait().await;
                store
                    .reset_password(reset, &hash(&format!("attempt {i}")), at + secs(1))
                    .await
            })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, call) in calls.into_iter().enumerate() {
        if let Some((user_id, revoked)) = call.await.expect("task").expect("reset") {
            assert_eq!(user_id, ada.user.id);
            assert_eq!(revoked, vec![ada.session]);
            winners.push(i);
        }
    }
    assert_eq!(winners.len(), 1, "winners: {winners:?}");
    let found = fx
        .store()
        .find_credentials(ada.user.id)
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(
        found.password_hash.as_str(),
        hash(&format!("attempt {}", winners[0])).as_str()
    );
}

async fn resetting_keeps_a_disabled_account_disabled(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let reset = token();
    store
        .create_reset_token(ada.user.id, reset, at + secs(3600), at)
        .await
        .expect("create_reset_token");
    let disable = AdminUserChange {
        disabled: Some(true),
        ..AdminUserChange::default()
    };
    store
        .update_user(ada.user.id, &disable, at + secs(1))
        .await
        .expect("update_user")
        .expect("the user");
    let (_, revoked) = store
        .reset_password(reset, &hash("new"), at + secs(2))
        .await
        .expect("reset")
        .expect("the token was usable");
    // Disabling already revoked the only session.
    assert!(revoked.is_empty());
    let found = store
        .find_user(ada.user.id)
        .await
        .expect("lookup")
        .expect("the user");
    assert!(found.disabled);
}

async fn changing_the_password_revokes_every_other_session(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let grace = register(store, "grace@example.com", at).await;
    let (second, _) = sign_in(store, ada.user.id, at + secs(1)).await;
    let (third, _) = sign_in(store, ada.user.id, at + secs(2)).await;

    let later = at + secs(10);
    let revoked: HashSet<SessionId> = store
        .change_password(ada.user.id, &hash("changed"), second, later)
        .await
        .expect("change_password")
        .into_iter()
        .collect();
    assert_eq!(revoked, HashSet::from([ada.session, third]));
    assert!(is_live(store, second).await);
    assert!(!is_live(store, ada.session).await);
    assert!(!is_live(store, third).await);
    assert!(is_live(store, grace.session).await);
    let found = store
        .find_credentials(ada.user.id)
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(found.password_hash.as_str(), hash("changed").as_str());
    assert_eq!(found.user.updated_at, later);
}
