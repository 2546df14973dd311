//! The admin API's store methods: listing, changing and deleting users.

use velro_core::domain::{AdminUserChange, DisplayName, Role, User, UserId, UserQuery};
use velro_core::store::Rotation;

use crate::fixture::{
    is_live, new_session, new_user, policy, register, secs, sign_in, t0, token, Fixture,
};

store_contract!(
    users_are_listed_newest_first_in_pages,
    offset_pages_are_newest_first_with_the_total,
    the_page_filter_matches_email_or_name_in_any_case_and_literally,
    a_user_is_created_confirmed_only_when_asked,
    the_email_filter_is_a_literal_prefix_even_with_underscores_and_percents,
    admin_changes_apply_only_the_given_fields,
    disabling_a_user_revokes_every_session,
    deleting_a_user_removes_its_sessions_and_tokens,
);

/// Follows `next` until the end, checking that every page but the last is full.
async fn all_pages(fx: &Fixture, email_prefix: Option<&str>, limit: u32) -> Vec<User> {
    let mut query = UserQuery {
        email_prefix: email_prefix.map(str::to_string),
        after: None,
        limit,
    };
    let mut users = Vec::new();
    loop {
        let page = fx.store().list_users(&query).await.expect("list_users");
        let count = page.users.len();
        users.extend(page.users);
        match page.next {
            Some(next) => {
                assert_eq!(count, limit as usize, "only full pages have a next cursor");
                assert_eq!(
                    next,
                    velro_core::domain::UserCursor::after(&users[users.len() - 1])
                );
                query.after = Some(next);
            }
            None => return users,
        }
    }
}

async fn a_user_is_created_confirmed_only_when_asked(fx: &Fixture) {
    let store = fx.store();
    for confirmed in [false, true] {
        let mut user = new_user(&format!("confirmed-{confirmed}@example.com"), t0());
        user.email_confirmed = confirmed;
        let session = new_session(user.id, t0(), false);
        let created = store.create_user(user, session).await.expect("creates");
        assert_eq!(created.email_confirmed, confirmed);
        let found = store.find_user(created.id).await.expect("finds");
        assert_eq!(found.map(|u| u.email_confirmed), Some(confirmed));
    }
}

async fn offset_pages_are_newest_first_with_the_total(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let mut expected = Vec::new();
    for (i, offset) in [0, 5, 10, 10, 20].into_iter().enumerate() {
        expected.push(
            register(store, &format!("paged{i}@example.com"), at + secs(offset))
                .await
                .user,
        );
    }
    expected.sort_by_key(|user| std::cmp::Reverse((user.created_at, user.id.0)));
    let mut walked = Vec::new();
    for page in 0..3 {
        let (users, total) = store
            .page_users(page * 2, 2, None)
            .await
            .expect("page_users");
        assert_eq!(total, 5);
        walked.extend(users);
    }
    assert_eq!(walked, expected);
    let (beyond, total) = store.page_users(10, 2, None).await.expect("page_users");
    assert!(beyond.is_empty());
    assert_eq!(total, 5);
}

async fn the_page_filter_matches_email_or_name_in_any_case_and_literally(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    for (i, (address, name)) in [
        ("grace@example.com", Some("Grace Hopper")),
        ("hopper_fan@example.com", None),
        ("x50%off@example.com", Some("Discount")),
        ("x50aoff@example.com", Some("Decoy")),
        ("ada@example.org", Some("Ada Lovelace")),
    ]
    .into_iter()
    .enumerate()
    {
        let mut user = new_user(address, at + secs(i as i64));
        user.display_name = name.map(|name| DisplayName::parse(name).expect("a valid name"));
        let session = new_session(user.id, at, false);
        store.create_user(user, session).await.expect("create_user");
    }
    let emails = |users: Vec<User>| -> Vec<String> {
        users
            .into_iter()
            .map(|u| u.email.as_str().to_string())
            .collect()
    };
    let (found, total) = store
        .page_users(0, 10, Some("HOPPER"))
        .await
        .expect("filtered");
    assert_eq!(total, 2);
    assert_eq!(
        emails(found),
        ["hopper_fan@example.com", "grace@example.com"]
    );
    let (found, total) = store
        .page_users(0, 10, Some("50%"))
        .await
        .expect("filtered");
    assert_eq!(
        (emails(found), total),
        (vec!["x50%off@example.com".to_string()], 1)
    );
    let (found, _) = store
        .page_users(0, 10, Some("x50_off"))
        .await
        .expect("filtered");
    assert!(found.is_empty(), "_ is not a wildcard: {:?}", emails(found));
    let (found, total) = store
        .page_users(1, 1, Some("example."))
        .await
        .expect("paged");
    assert_eq!((found.len(), total), (1, 5));
    let (found, total) = store
        .page_users(0, 10, Some("nobody"))
        .await
        .expect("filtered");
    assert!(found.is_empty());
    assert_eq!(total, 0);
}

async fn users_are_listed_newest_first_in_pages(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let mut expected = Vec::new();
    for (i, offset) in [0, 5, 10, 10, 10, 20, 30].into_iter().enumerate() {
        expected.push(
            register(store, &format!("user{i}@example.com"), at + secs(offset))
                .await
                .user,
        );
    }
    // Newest first; users created at the same instant by descending id.
    expected.sort_by_key(|user| std::cmp::Reverse((user.created_at, user.id.0)));

    for limit in [1, 2, 3, 7, 200] {
        assert_eq!(all_pages(fx, None, limit).await, expected, "limit {limit}");
    }
    let first = store
        .list_users(&UserQuery {
            email_prefix: None,
            after: None,
            limit: 7,
        })
        .await
        .expect("list_users");
    assert_eq!(first.users.len(), 7);
    assert_eq!(first.next, None, "no cursor when nothing follows");
}

async fn the_email_filter_is_a_literal_prefix_even_with_underscores_and_percents(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let addresses = [
        "a_b%c@example.com",
        "a_b%d@example.com",
        "a_b%@example.org",
        // LIKE 'a_b%' would match these two.
        "axb%c@example.com",
        "a_bzz@example.com",
        "b_a_b%@example.com",
    ];
    let mut users = Vec::new();
    for (i, address) in addresses.into_iter().enumerate() {
        users.push(register(store, address, at + secs(i as i64)).await.user);
    }
    let emails = |found: Vec<User>| {
        found
            .into_iter()
            .map(|u| u.email.as_str().to_string())
            .collect::<Vec<_>>()
    };
    let expected = vec!["a_b%@example.org", "a_b%d@example.com", "a_b%c@example.com"];
    assert_eq!(emails(all_pages(fx, Some("a_b%"), 1).await), expected);
    assert_eq!(emails(all_pages(fx, Some("a_b%"), 2).await), expected);
    assert_eq!(emails(all_pages(fx, Some("a_b%"), 50).await), expected);
    assert_eq!(
        emails(all_pages(fx, Some("a_b%c@"), 50).await),
        vec!["a_b%c@example.com"]
    );
    assert!(all_pages(fx, Some("%"), 50).await.is_empty());
    assert!(all_pages(fx, Some("_"), 50).await.is_empty());
    assert_eq!(all_pages(fx, Some(""), 50).await.len(), addresses.len());
}

async fn admin_changes_apply_only_the_given_fields(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;

    let promote = AdminUserChange {
        role: Some(Role::Creator),
        credits_balance: Some(25),
        ..AdminUserChange::default()
    };
    let user = store
        .update_user(ada.user.id, &promote, at + secs(1))
        .await
        .expect("update_user")
        .expect("the user");
    assert_eq!(user.role, Role::Creator);
    assert_eq!(user.credits_balance, 25);
    assert!(!user.email_confirmed);
    assert!(!user.disabled);
    assert_eq!(user.updated_at, at + secs(1));
    assert_eq!(user.display_name, ada.user.display_name);

    let confirm = AdminUserChange {
        email_confirmed: Some(true),
        role: Some(Role::Admin),
        ..AdminUserChange::default()
    };
    let user = store
        .update_user(ada.user.id, &confirm, at + secs(2))
        .await
        .expect("update_user")
        .expect("the user");
    assert!(user.email_confirmed);
    assert_eq!(user.role, Role::Admin);
    assert_eq!(user.credits_balance, 25);
    assert_eq!(
        store.find_user(ada.user.id).await.expect("find_user"),
        Some(user.clone())
    );

    // Nothing to change, or values that are already so: updated_at stays.
    for unchanged in [
        AdminUserChange::default(),
        AdminUserChange {
            role: Some(Role::Admin),
            credits_balance: Some(25),
            ..AdminUserChange::default()
        },
    ] {
        let again = store
            .update_user(ada.user.id, &unchanged, at + secs(3))
            .await
            .expect("update_user")
            .expect("the user");
        assert_eq!(again, user);
    }
    assert!(is_live(store, ada.session).await);

    let nobody = UserId(uuid::Uuid::new_v4());
    assert!(store
        .update_user(nobody, &promote, at)
        .await
        .expect("update_user")
        .is_none());
}

async fn disabling_a_user_revokes_every_session(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let grace = register(store, "grace@example.com", at).await;
    let (second, second_refresh) = sign_in(store, ada.user.id, at + secs(1)).await;

    let disable = AdminUserChange {
        disabled: Some(true),
        ..AdminUserChange::default()
    };
    let user = store
        .update_user(ada.user.id, &disable, at + secs(2))
        .await
        .expect("update_user")
        .expect("the user");
    assert!(user.disabled);
    assert_eq!(user.updated_at, at + secs(2));
    assert!(!is_live(store, ada.session).await);
    assert!(!is_live(store, second).await);
    assert!(store
        .list_live_sessions(ada.user.id, at + secs(2))
        .await
        .expect("list")
        .is_empty());
    assert!(is_live(store, grace.session).await);

    // Enabled again, the old sessions stay revoked; new ones work.
    let enable = AdminUserChange {
        disabled: Some(false),
        ..AdminUserChange::default()
    };
    let user = store
        .update_user(ada.user.id, &enable, at + secs(3))
        .await
        .expect("update_user")
        .expect("the user");
    assert!(!user.disabled);
    assert!(!is_live(store, second).await);
    let rotation = store
        .rotate_refresh_token(second_refresh, token(), policy(), at + secs(4))
        .await
        .expect("rotate");
    assert!(matches!(rotation, Rotation::Invalid), "{rotation:?}");
    let (fresh, _) = sign_in(store, ada.user.id, at + secs(5)).await;
    assert!(is_live(store, fresh).await);
}

async fn deleting_a_user_removes_its_sessions_and_tokens(fx: &Fixture) {
    let store = fx.store();
    let at = t0();
    let ada = register(store, "ada@example.com", at).await;
    let grace = register(store, "grace@example.com", at).await;
    let (second, _) = sign_in(store, ada.user.id, at + secs(1)).await;
    store
        .rotate_refresh_token(ada.refresh, token(), policy(), at + secs(2))
        .await
        .expect("rotate");
    store
        .create_reset_token(ada.user.id, token(), at + secs(3600), at)
        .await
        .expect("create_reset_token");

    assert!(store.delete_user(ada.user.id).await.expect("delete_user"));
    assert!(store
        .find_user(ada.user.id)
        .await
        .expect("find_user")
        .is_none());
    assert!(!is_live(store, ada.session).await);
    assert!(!is_live(store, second).await);
    let sessions = "SELECT count(*) FROM sessions WHERE user_id = $1";
    let tokens = "SELECT count(*) FROM refresh_tokens t \
                  JOIN sessions s ON s.session_id = t.session_id WHERE s.user_id = $1";
    let all_tokens = "SELECT count(*) FROM refresh_tokens WHERE session_id = $1";
    let resets = "SELECT count(*) FROM password_reset_tokens WHERE user_id = $1";
    assert_eq!(fx.count(sessions, ada.user.id.0).await, 0);
    assert_eq!(fx.count(tokens, ada.user.id.0).await, 0);
    assert_eq!(fx.count(all_tokens, ada.session.0).await, 0);
    assert_eq!(fx.count(resets, ada.user.id.0).await, 0);
    assert!(!store.delete_user(ada.user.id).await.expect("delete again"));

    // Others are untouched, and the email can be registered again.
    assert!(is_live(store, grace.session).await);
    assert_eq!(fx.count(sessions, grace.user.id.0).await, 1);
    let again = new_user("ada@example.com", at + secs(5));
    let again_session = new_session(again.id, at + secs(5), false);
    store
        .create_user(again, again_session)
        .await
        .expect("register the email again");
}
