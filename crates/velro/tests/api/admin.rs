//! The admin users API behind the service key.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{
    expect_challenge, expect_error, expect_invalid, expect_json, expect_rejected_token,
    unique_email, TestApp, PASSWORD, SERVICE_KEY,
};

both_stores!(
    admin_disable_revokes_every_session,
    admin_revokes_every_session_of_a_user_who_may_sign_in_again,
    admin_refuses_missing_and_wrong_keys,
    admin_refuses_user_tokens,
    admin_api_is_off_without_a_service_key,
    admin_lists_users_newest_first_with_disabled,
    admin_pages_through_every_user_exactly_once,
    admin_refuses_bad_limits_cursors_and_empty_filters,
    admin_email_filter_is_a_literal_case_insensitive_prefix,
    admin_gets_one_user_by_id,
    admin_role_and_credits_show_on_the_next_me,
    admin_patch_refuses_bad_values_and_unknown_users,
    admin_delete_removes_the_user_and_frees_the_email,
);

/// Every admin endpoint, on a user id that exists or not.
fn admin_endpoints(id: &str) -> Vec<(Method, String)> {
    vec![
        (Method::GET, "/users".into()),
        (Method::GET, format!("/users/{id}")),
        (Method::PATCH, format!("/users/{id}")),
        (Method::DELETE, format!("/users/{id}")),
        (Method::DELETE, format!("/users/{id}/sessions")),
    ]
}

async fn admin_disable_revokes_every_session(app: TestApp) {
    let email = unique_email("disable");
    let tokens = app.register(&email).await;
    let other = app.login(&email, PASSWORD).await;
    let id = tokens.user_id();
    let user = app.admin_patch(&id, json!({"disabled": true})).await;
    assert_eq!(user["disabled"], true);
    for session in [&tokens, &other] {
        expect_rejected_token(app.me(&session.access).await, "session_revoked").await;
        let refresh = app.refresh_response(&session.refresh).await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    }
    expect_error(
        app.login_response(&email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    // Enabling again lets the user sign in; the revoked sessions stay revoked.
    let user = app.admin_patch(&id, json!({"disabled": false})).await;
    assert_eq!(user["disabled"], false);
    app.login(&email, PASSWORD).await;
    expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
}

async fn admin_revokes_every_session_of_a_user_who_may_sign_in_again(app: TestApp) {
    let email = unique_email("revoke-all");
    let first = app.register(&email).await;
    let second = app.login(&email, PASSWORD).await;
    let bystander = app.register(&unique_email("bystander")).await;
    let id = first.user_id();
    // Both sessions answered once, so that the cache holds them when they are revoked.
    for session in [&first, &second, &bystander] {
        expect_json(app.me(&session.access).await, StatusCode::OK).await;
    }

    let path = format!("/users/{id}/sessions");
    let answer = expect_json(app.admin(Method::DELETE, &path, None).await, StatusCode::OK).await;
    assert_eq!(answer, json!({"revoked": 2}));
    for session in [&first, &second] {
        expect_rejected_token(app.me(&session.access).await, "session_revoked").await;
        let refresh = app.refresh_response(&session.refresh).await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    }
    expect_json(app.me(&bystander.access).await, StatusCode::OK).await;
    assert_eq!(app.admin_user(&id).await["disabled"], false);
    let again = app.login(&email, PASSWORD).await;
    expect_json(app.me(&again.access).await, StatusCode::OK).await;

    // Nothing left but the new session; then nothing at all.
    let answer = expect_json(app.admin(Method::DELETE, &path, None).await, StatusCode::OK).await;
    assert_eq!(answer, json!({"revoked": 1}));
    expect_rejected_token(app.me(&again.access).await, "session_revoked").await;
    let answer = expect_json(app.admin(Method::DELETE, &path, None).await, StatusCode::OK).await;
    assert_eq!(answer, json!({"revoked": 0}));

    for unknown in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_string()] {
        let response = app
            .admin(Method::DELETE, &format!("/users/{unknown}/sessions"), None)
            .await;
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

async fn admin_refuses_missing_and_wrong_keys(app: TestApp) {
    let id = app.register(&unique_email("keys")).await.user_id();
    let wrong_key = format!("{SERVICE_KEY}x");
    for (method, path) in admin_endpoints(&id) {
        let bare = app.admin_as(None, method.clone(), &path).await;
        expect_challenge(bare, "invalid_service_key", "Bearer").await;
        for bearer in [
            wrong_key.as_str(),
            &SERVICE_KEY[..SERVICE_KEY.len() - 1],
            "garbage",
        ] {
            let response = app.admin_as(Some(bearer), method.clone(), &path).await;
            expect_challenge(response, "invalid_service_key", "Bearer").await;
        }
        let basic = app
            .with_authorization(
                method.clone(),
                &format!("/api/v1/admin{path}"),
                &format!("Basic {SERVICE_KEY}"),
            )
            .await;
        expect_challenge(basic, "invalid_service_key", "Bearer").await;
    }
    // Nothing was deleted by the refused DELETE.
    app.admin_user(&id).await;
    // The scheme is case-insensitive here too.
    let lower = app
        .with_authorization(
            Method::GET,
            "/api/v1/admin/users",
            &format!("bearer {SERVICE_KEY}"),
        )
        .await;
    assert_eq!(lower.status(), StatusCode::OK);
}

async fn admin_refuses_user_tokens(app: TestApp) {
    let email = unique_email("not-admin");
    let tokens = app.register(&email).await;
    let id = tokens.user_id();
    // Even an admin's user token is not the service key.
    app.admin_patch(&id, json!({"role": "admin"})).await;
    let admin_user = app.login(&email, PASSWORD).await;
    let revoked = app.login(&email, PASSWORD).await;
    expect_json(app.logout(&revoked.access, None).await, StatusCode::OK).await;
    for (method, path) in admin_endpoints(&id) {
        for valid in [&tokens.access, &admin_user.access] {
            let response = app.admin_as(Some(valid), method.clone(), &path).await;
            expect_error(response, StatusCode::FORBIDDEN, "forbidden").await;
        }
        let response = app
            .admin_as(Some(&revoked.access), method.clone(), &path)
            .await;
        expect_challenge(response, "invalid_service_key", "Bearer").await;
    }
    app.advance(3600 + 6);
    for (method, path) in admin_endpoints(&id) {
        let response = app
            .admin_as(Some(&tokens.access), method.clone(), &path)
            .await;
        expect_challenge(response, "invalid_service_key", "Bearer").await;
    }
    app.admin_user(&id).await;
}

async fn admin_api_is_off_without_a_service_key(app: TestApp) {
    let app = app.with_config(|c| c.service_key = None).await;
    let tokens = app.register(&unique_email("keyless")).await;
    let id = tokens.user_id();
    for (method, path) in admin_endpoints(&id) {
        for bearer in [None, Some(SERVICE_KEY), Some(tokens.access.as_str())] {
            let response = app.admin_as(bearer, method.clone(), &path).await;
            expect_challenge(response, "invalid_service_key", "Bearer").await;
        }
    }
    app.me_json(&tokens.access).await;
}

fn users(page: &Value) -> Vec<Value> {
    page["users"].as_array().expect("users list").clone()
}

fn emails(page: &Value) -> Vec<String> {
    users(page)
        .iter()
        .map(|u| u["email"].as_str().expect("email").to_string())
        .collect()
}

async fn list(app: &TestApp, query: &str) -> Value {
    expect_json(
        app.admin(Method::GET, &format!("/users{query}"), None)
            .await,
        StatusCode::OK,
    )
    .await
}

async fn admin_lists_users_newest_first_with_disabled(app: TestApp) {
    let mut registered = Vec::new();
    for name in ["first", "second", "third"] {
        let email = format!("{name}@example.com");
        let tokens = app.register(&email).await;
        registered.push((email, tokens));
        app.advance(1);
    }
    app.admin_patch(&registered[1].1.user_id(), json!({"disabled": true}))
        .await;
    let page = list(&app, "").await;
    assert!(page["next"].is_null());
    assert_eq!(
        emails(&page),
        [
            "third@example.com",
            "second@example.com",
            "first@example.com"
        ]
    );
    let listed = users(&page);
    let mut keys: Vec<&str> = listed[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "avatar_url",
            "created_at",
            "credits_balance",
            "disabled",
            "display_name",
            "email",
            "email_confirmed",
            "id",
            "role",
            "updated_at"
        ]
    );
    assert_eq!(
        listed
            .iter()
            .map(|u| u["disabled"].clone())
            .collect::<Vec<_>>(),
        [false, true, false]
    );
    // The same user as the user sees it, plus `disabled`.
    let mut first = listed[2].clone();
    assert_eq!(
        first.as_object_mut().expect("object").remove("disabled"),
        Some(json!(false))
    );
    assert_eq!(first, registered[0].1.body["user"]);
}

async fn admin_pages_through_every_user_exactly_once(app: TestApp) {
    let mut expected = HashSet::new();
    for i in 0..7 {
        let tokens = app.register(&format!("user{i}@example.com")).await;
        expected.insert(tokens.user_id());
        // Pairs share a creation time, so that the id breaks ties.
        if i % 2 == 1 {
            app.advance(1);
        }
    }
    let everything = list(&app, "?limit=200").await;
    let order: Vec<String> = users(&everything)
        .iter()
        .map(|u| u["id"].as_str().expect("id").to_string())
        .collect();
    assert_eq!(order.len(), 7);
    let mut seen = Vec::new();
    let mut query = "?limit=3".to_string();
    let mut pages = 0;
    loop {
        let page = list(&app, &query).await;
        pages += 1;
        let batch = users(&page);
        assert!(batch.len() <= 3);
        seen.extend(
            batch
                .iter()
                .map(|u| u["id"].as_str().expect("id").to_string()),
        );
        match page["next"].as_str() {
            Some(cursor) => {
                assert_eq!(batch.len(), 3, "only a full page has a next cursor");
                query = format!("?limit=3&after={cursor}");
            }
            None => break,
        }
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, order, "pages follow the one newest-first order");
    assert_eq!(seen.iter().cloned().collect::<HashSet<_>>(), expected);
    let one = list(&app, "?limit=1").await;
    assert_eq!(users(&one).len(), 1);
    assert!(one["next"].is_string());
}

async fn admin_refuses_bad_limits_cursors_and_empty_filters(app: TestApp) {
    app.register(&unique_email("listed")).await;
    for limit in ["0", "201", "abc", "-1", "1.5", "", "99999999999"] {
        let response = app
            .admin(Method::GET, &format!("/users?limit={limit}"), None)
            .await;
        expect_invalid(response, &["limit"]).await;
    }
    for cursor in ["garbage", "bm90LWEtY3Vyc29y", "!!", ""] {
        let response = app
            .admin(Method::GET, &format!("/users?after={cursor}"), None)
            .await;
        expect_invalid(response, &["after"]).await;
    }
    let response = app.admin(Method::GET, "/users?email=", None).await;
    expect_invalid(response, &["email"]).await;
    assert_eq!(users(&list(&app, "?limit=200").await).len(), 1);
    assert_eq!(users(&list(&app, "?limit=1").await).len(), 1);
}

async fn admin_email_filter_is_a_literal_case_insensitive_prefix(app: TestApp) {
    for email in [
        "a_b.one@example.com",
        "axb.two@example.com",
        "%percent@example.com",
        "other@example.com",
    ] {
        app.register(email).await;
    }
    let cases: [(&str, &[&str]); 7] = [
        ("A_B", &["a_b.one@example.com"]),
        ("a_", &["a_b.one@example.com"]),
        ("AX", &["axb.two@example.com"]),
        ("%25", &["%percent@example.com"]),
        ("%25%25", &[]),
        ("%20%20A_B.ONE%40EXAMPLE.COM%20", &["a_b.one@example.com"]),
        ("zzz", &[]),
    ];
    for (prefix, expected) in cases {
        let page = list(&app, &format!("?email={prefix}")).await;
        assert_eq!(emails(&page), expected, "prefix {prefix}");
    }
    let mut everyone = emails(&list(&app, "?email=%25").await);
    everyone.extend(emails(&list(&app, "?email=a").await));
    everyone.sort();
    assert_eq!(
        everyone,
        [
            "%percent@example.com",
            "a_b.one@example.com",
            "axb.two@example.com"
        ]
    );
}

async fn admin_gets_one_user_by_id(app: TestApp) {
    let tokens = app.register(&unique_email("one")).await;
    let user = app.admin_user(&tokens.user_id()).await;
    assert_eq!(user["disabled"], false);
    assert_eq!(user["id"], tokens.user_id().as_str());
    assert_eq!(user["email"], tokens.body["user"]["email"]);
    for id in [
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_string(),
        "1".to_string(),
    ] {
        let response = app.admin(Method::GET, &format!("/users/{id}"), None).await;
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
}

async fn admin_role_and_credits_show_on_the_next_me(app: TestApp) {
    let tokens = app.register(&unique_email("promote")).await;
    let id = tokens.user_id();
    let change = json!({"role": "creator", "credits_balance": 5, "email_confirmed": true});
    let user = app.admin_patch(&id, change).await;
    assert_eq!(user["role"], "creator");
    assert_eq!(user["credits_balance"], 5);
    assert_eq!(user["email_confirmed"], true);
    assert_eq!(user["disabled"], false);
    let me = app.me_json(&tokens.access).await;
    assert_eq!(me["role"], "creator");
    assert_eq!(me["credits_balance"], 5);
    assert_eq!(me["email_confirmed"], true);
    // The old token still says what was true when it was issued; a refreshed one is current.
    assert_eq!(tokens.claims()["role"], "viewer");
    let refreshed = app.refresh(&tokens.refresh).await;
    assert_eq!(refreshed.claims()["role"], "creator");
    assert_eq!(refreshed.body["user"]["role"], "creator");
    let zero = app
        .admin_patch(&id, json!({"credits_balance": 0, "role": "admin"}))
        .await;
    assert_eq!(zero["credits_balance"], 0);
    assert_eq!(zero["role"], "admin");
    assert_eq!(zero["email_confirmed"], true, "absent fields stay");
    let me = app.me_json(&tokens.access).await;
    assert_eq!(me["role"], "admin");
    assert_eq!(me["credits_balance"], 0);
}

async fn admin_patch_refuses_bad_values_and_unknown_users(app: TestApp) {
    let tokens = app.register(&unique_email("patch")).await;
    let path = format!("/users/{}", tokens.user_id());
    let patch = |body: Value| app.admin(Method::PATCH, &path, Some(body));
    expect_invalid(
        patch(json!({"credits_balance": -1})).await,
        &["credits_balance"],
    )
    .await;
    expect_invalid(
        patch(json!({"credits_balance": 1.5})).await,
        &["credits_balance"],
    )
    .await;
    expect_invalid(
        patch(json!({"credits_balance": "10"})).await,
        &["credits_balance"],
    )
    .await;
    expect_invalid(patch(json!({"role": "superuser"})).await, &["role"]).await;
    expect_invalid(patch(json!({"role": "Admin"})).await, &["role"]).await;
    expect_invalid(patch(json!({"role": 1})).await, &["role"]).await;
    expect_invalid(patch(json!({"disabled": "yes"})).await, &["disabled"]).await;
    expect_invalid(
        patch(json!({"email_confirmed": 1})).await,
        &["email_confirmed"],
    )
    .await;
    let both = json!({"role": "superuser", "credits_balance": -1});
    expect_invalid(patch(both).await, &["credits_balance", "role"]).await;
    let user = app.admin_user(&tokens.user_id()).await;
    assert_eq!(user["role"], "viewer");
    assert_eq!(user["credits_balance"], 1000);
    assert_eq!(user["disabled"], false);
    let unknown = app
        .admin(
            Method::PATCH,
            &format!("/users/{}", uuid::Uuid::new_v4()),
            Some(json!({"role": "creator"})),
        )
        .await;
    expect_error(unknown, StatusCode::NOT_FOUND, "not_found").await;
    let malformed = app
        .admin(
            Method::PATCH,
            "/users/not-a-uuid",
            Some(json!({"role": "creator"})),
        )
        .await;
    expect_error(malformed, StatusCode::NOT_FOUND, "not_found").await;
}

async fn admin_delete_removes_the_user_and_frees_the_email(app: TestApp) {
    let email = unique_email("delete");
    let tokens = app.register(&email).await;
    let other = app.login(&email, PASSWORD).await;
    let token = app.reset_token(&email).await;
    let bystander = app.register(&unique_email("bystander")).await;
    let id = tokens.user_id();
    let response = app
        .admin(Method::DELETE, &format!("/users/{id}"), None)
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    for session in [&tokens, &other] {
        expect_rejected_token(app.me(&session.access).await, "session_revoked").await;
        let refresh = app.refresh_response(&session.refresh).await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    }
    let reset = app.confirm_reset(&token, "a brand new password").await;
    expect_error(reset, StatusCode::BAD_REQUEST, "reset_token_invalid").await;
    let login = app.login_response(&email, PASSWORD).await;
    expect_error(login, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    expect_error(
        app.admin(Method::GET, &format!("/users/{id}"), None).await,
        StatusCode::NOT_FOUND,
        "not_found",
    )
    .await;
    let again = app
        .admin(Method::DELETE, &format!("/users/{id}"), None)
        .await;
    expect_error(again, StatusCode::NOT_FOUND, "not_found").await;
    let malformed = app.admin(Method::DELETE, "/users/not-a-uuid", None).await;
    expect_error(malformed, StatusCode::NOT_FOUND, "not_found").await;
    let reborn = app.register(&email).await;
    assert_ne!(reborn.user_id(), id);
    assert_eq!(reborn.body["user"]["credits_balance"], 1000);
    app.me_json(&bystander.access).await;
    let remaining = users(&list(&app, "").await);
    assert_eq!(remaining.len(), 2);
}
