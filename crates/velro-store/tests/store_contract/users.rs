//! Registration, credentials and profiles.

use uuid::Uuid;
use velro_core::domain::{AvatarUrl, DisplayName, ProfileChange, Role, SessionId, UserId};
use velro_core::store::Rotation;
use velro_core::StoreError;

use crate::fixture::{
    email, hash, is_live, new_session, new_user, policy, register, secs, t0, token, Fixture,
};

store_contract!(
    registering_stores_the_user_and_its_first_session_as_given,
    a_taken_email_conflicts_and_leaves_no_partial_rows,
    unknown_users_emails_and_sessions_are_none,
    a_rehash_replaces_the_hash_and_keeps_the_sessions,
    profile_changes_leave_absent_fields_alone_and_clear_nulls,
    the_store_answers_a_ping,
);

async fn registering_stores_the_user_and_its_first_session_as_given(fx: &Fixture) {
    let store = fx.store();
    // A time with microseconds, to check they survive the round trip.
    let at = t0();
    let new = new_user("ada@example.com", at);
    let session = new_session(new.id, at, true);
    let expected_session = session.clone();
    let user = store
        .create_user(new.clone(), session)
        .await
        .expect("create_user");

    assert_eq!(user.id, new.id);
    assert_eq!(user.email, new.email);
    assert_eq!(user.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(user.avatar_url, None);
    assert_eq!(user.credits_balance, 1000);
    assert_eq!(user.role, Role::Viewer);
    assert!(!user.email_confirmed);
    assert!(!user.disabled);
    assert_eq!(user.created_at, at);
    assert_eq!(user.updated_at, at);

    let by_email = store
        .find_credentials_by_email(&new.email)
        .await
        .expect("find_credentials_by_email")
        .expect("the user by email");
    assert_eq!(by_email.user, user);
    assert_eq!(by_email.password_hash.as_str(), new.password_hash.as_str());
    let by_id = store
        .find_credentials(user.id)
        .await
        .expect("find_credentials")
        .expect("the user by id");
    assert_eq!(by_id.user, user);
    assert_eq!(by_id.password_hash.as_str(), new.password_hash.as_str());
    assert_eq!(
        store.find_user(user.id).await.expect("find_user"),
        Some(user.clone())
    );

    let live = store
        .find_live_session(expected_session.id)
        .await
        .expect("find_live_session")
        .expect("the first session is live");
    assert_eq!(live.user, user);
    assert_eq!(live.session.id, expected_session.id);
    assert_eq!(live.session.user_id, user.id);
    assert_eq!(live.session.created_at, at);
    assert_eq!(live.session.last_refreshed_at, None);
    assert_eq!(live.session.expires_at, expected_session.refresh_expires_at);
    assert!(live.session.remember_me);
    assert_eq!(live.session.user_agent, expected_session.user_agent);
    assert_eq!(live.session.ip, expected_session.ip);
}

async fn a_taken_email_conflicts_and_leaves_no_partial_rows(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let first = register(store, "ada@example.com", at).await;

    let second = new_user("ada@example.com", at + secs(1));
    let second_session = new_session(second.id, at + secs(1), false);
    let (second_id, second_session_id, second_token) =
        (second.id, second_session.id, second_session.refresh_token);
    let outcome = store.create_user(second, second_session).await;
    assert!(
        matches!(outcome, Err(StoreError::Conflict("email"))),
        "{outcome:?}"
    );

    assert!(store
        .find_credentials(second_id)
        .await
        .expect("lookup")
        .is_none());
    assert!(!is_live(store, second_session_id).await);
    let rotation = store
        .rotate_refresh_token(second_token, token(), policy(), at + secs(2))
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
    let users = "SELECT count(*) FROM users WHERE user_id = $1";
    let sessions = "SELECT count(*) FROM sessions WHERE session_id = $1";
    let tokens = "SELECT count(*) FROM refresh_tokens WHERE session_id = $1";
    assert_eq!(fx.count(users, second_id.0).await, 0);
    assert_eq!(fx.count(sessions, second_session_id.0).await, 0);
    assert_eq!(fx.count(tokens, second_session_id.0).await, 0);

    // The first registration is untouched.
    let found = store
        .find_credentials_by_email(&email("ada@example.com"))
        .await
        .expect("lookup")
        .expect("the first user");
    assert_eq!(found.user, first.user);
    assert!(is_live(store, first.session).await);
}

async fn unknown_users_emails_and_sessions_are_none(fx: &Fixture) {
    let store = fx.store();
    register(store, "ada@example.com", t0()).await;
    let nobody = UserId(Uuid::new_v4());
    assert!(store
        .find_credentials_by_email(&email("grace@example.com"))
        .await
        .expect("by email")
        .is_none());
    assert!(store
        .find_credentials(nobody)
        .await
        .expect("by id")
        .is_none());
    assert!(store.find_user(nobody).await.expect("user").is_none());
    assert!(!is_live(store, SessionId(Uuid::new_v4())).await);
    let change = ProfileChange {
        display_name: Some(Some(name("Nobody"))),
        avatar_url: None,
    };
    assert!(store
        .update_profile(nobody, &change, t0())
        .await
        .expect("update_profile")
        .is_none());
}

async fn a_rehash_replaces_the_hash_and_keeps_the_sessions(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let later = at + secs(5);
    store
        .replace_password_hash(ada.user.id, &hash("rehashed"), later)
        .await
        .expect("replace_password_hash");
    let found = store
        .find_credentials(ada.user.id)
        .await
        .expect("lookup")
        .expect("the user");
    assert_eq!(found.password_hash.as_str(), hash("rehashed").as_str());
    assert_eq!(found.user.updated_at, later);
    assert!(is_live(store, ada.session).await);
}

async fn profile_changes_leave_absent_fields_alone_and_clear_nulls(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let avatar = "https://cdn.example.com/ada.png".to_string();

    let set_avatar = ProfileChange {
        display_name: None,
        avatar_url: Some(Some(AvatarUrl::parse(&avatar).expect("a valid URL"))),
    };
    let user = store
        .update_profile(ada.user.id, &set_avatar, at + secs(1))
        .await
        .expect("update_profile")
        .expect("the user");
    assert_eq!(user.display_name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(user.avatar_url.as_deref(), Some(avatar.as_str()));
    assert_eq!(user.updated_at, at + secs(1));

    let clear_name = ProfileChange {
        display_name: Some(None),
        avatar_url: None,
    };
    let user = store
        .update_profile(ada.user.id, &clear_name, at + secs(2))
        .await
        .expect("update_profile")
        .expect("the user");
    assert_eq!(user.display_name, None);
    assert_eq!(user.avatar_url.as_deref(), Some(avatar.as_str()));

    let both = ProfileChange {
        display_name: Some(Some(name("Countess of Lovelace"))),
        avatar_url: Some(None),
    };
    let user = store
        .update_profile(ada.user.id, &both, at + secs(3))
        .await
        .expect("update_profile")
        .expect("the user");
    assert_eq!(user.display_name.as_deref(), Some("Countess of Lovelace"));
    assert_eq!(user.avatar_url, None);
    assert_eq!(user.updated_at, at + secs(3));
    assert_eq!(user.created_at, at);
    assert_eq!(
        store.find_user(ada.user.id).await.expect("find_user"),
        Some(user)
    );
}

async fn the_store_answers_a_ping(fx: &Fixture) {
    fx.store().ping().await.expect("ping");
}

fn name(raw: &str) -> DisplayName {
    DisplayName::parse(raw).expect("a valid name")
}
