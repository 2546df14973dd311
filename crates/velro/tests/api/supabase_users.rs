//! The Supabase surface's users: free `user_metadata` and `app_metadata` (in the user JSON and
//! the access token), and GoTrue's admin API (create, change, ban, soft and hard delete), each
//! checked on both surfaces.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::both_stores;
use crate::helpers::{
    expect_error, expect_json, jwt_claims, sign_jwt, unique_email, TestApp, JWT_SECRET,
    NEW_PASSWORD, PASSWORD,
};
use crate::supabase::{
    access, call, expect_gotrue, get_user, password_grant, put_user, refresh, refresh_grant,
    sign_in, sign_up,
};

fn service_role() -> String {
    sign_jwt(
        &json!({"role": "service_role"}),
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS256,
    )
}

async fn admin_call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> reqwest::Response {
    call(
        app,
        method,
        &format!("/admin{path}"),
        Some(&service_role()),
        body,
    )
    .await
}

async fn admin_create(app: &TestApp, body: Value) -> Value {
    expect_json(
        admin_call(app, Method::POST, "/users", Some(body)).await,
        StatusCode::OK,
    )
    .await
}

async fn admin_update(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    admin_call(app, Method::PUT, &format!("/users/{id}"), Some(body)).await
}

async fn sign_in_with(app: &TestApp, email: &str, password: &str) -> Value {
    expect_json(password_grant(app, email, password).await, StatusCode::OK).await
}

fn id(user: &Value) -> &str {
    user["id"].as_str().expect("id")
}

async fn sign_up_stores_free_data_in_user_metadata_and_the_token(app: TestApp) {
    let email = unique_email("supa-data");
    let body = json!({"email": email, "password": PASSWORD,
        "data": {"full_name": "Ada", "plan": "pro", "prefs": {"theme": "dark"}, "sub": "forged"}});
    let session = expect_json(
        call(&app, Method::POST, "/signup", None, Some(body)).await,
        StatusCode::OK,
    )
    .await;
    let user = &session["user"];
    let metadata = &user["user_metadata"];
    assert_eq!(metadata["plan"], "pro");
    assert_eq!(metadata["prefs"], json!({"theme": "dark"}));
    assert_eq!(metadata["full_name"], "Ada");
    assert_eq!(metadata["email"], email.as_str());
    assert_eq!(metadata["email_verified"], true);
    // Identity data is never replaced by `data`.
    assert_eq!(metadata["sub"], user["id"]);
    let claims = jwt_claims(access(&session));
    assert_eq!(&claims["user_metadata"], metadata);
    assert_eq!(
        claims["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "role": "viewer"})
    );
    let v1 = app.login(&email, PASSWORD).await;
    assert_eq!(app.me_json(&v1.access).await["display_name"], "Ada");
    let fetched = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert_eq!(&fetched["user_metadata"], metadata);
}

async fn put_user_merges_data_and_the_next_token_carries_it(app: TestApp) {
    let email = unique_email("supa-merge");
    let session = sign_up(&app, &email).await;
    let first = json!({"data": {"a": 1, "b": {"x": 1}, "c": "keep"}});
    expect_json(
        put_user(&app, access(&session), first).await,
        StatusCode::OK,
    )
    .await;
    let second = json!({"data": {"a": null, "b": {"y": 2}, "d": [1, 2]}});
    let user = expect_json(
        put_user(&app, access(&session), second).await,
        StatusCode::OK,
    )
    .await;
    let metadata = &user["user_metadata"];
    assert!(metadata.get("a").is_none(), "{metadata}");
    assert_eq!(metadata["b"], json!({"y": 2}));
    assert_eq!(metadata["c"], "keep");
    assert_eq!(metadata["d"], json!([1, 2]));
    assert_eq!(metadata["full_name"], "Ada");
    let refreshed = expect_json(refresh_grant(&app, refresh(&session)).await, StatusCode::OK).await;
    assert_eq!(&jwt_claims(access(&refreshed))["user_metadata"], metadata);
    // A v1 account has no stored metadata until its first `data`; it starts from its identity.
    let v1_email = unique_email("supa-merge-v1");
    app.register(&v1_email).await;
    let session = sign_in(&app, &v1_email).await;
    let user = expect_json(
        put_user(&app, access(&session), json!({"data": {"plan": "pro"}})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["user_metadata"]["plan"], "pro");
    assert_eq!(user["user_metadata"]["email"], v1_email.as_str());
    assert_eq!(user["user_metadata"]["sub"], user["id"]);
}

async fn users_cannot_write_app_metadata(app: TestApp) {
    let email = unique_email("supa-appmeta");
    let session = sign_up(&app, &email).await;
    for attempt in [json!({"role": "admin"}), json!({})] {
        let refused = put_user(&app, access(&session), json!({"app_metadata": attempt})).await;
        let message = expect_gotrue(refused, StatusCode::FORBIDDEN, "not_admin").await;
        assert_eq!(message, "Updating app_metadata requires admin privileges");
    }
    let user = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert_eq!(user["app_metadata"]["role"], "viewer");
    let v1 = app.login(&email, PASSWORD).await;
    assert_eq!(app.me_json(&v1.access).await["role"], "viewer");
    let null = put_user(&app, access(&session), json!({"app_metadata": null})).await;
    expect_json(null, StatusCode::OK).await;
}

async fn metadata_beyond_four_kib_is_refused_everywhere(app: TestApp) {
    let big = "x".repeat(4100);
    let refused = call(
        &app,
        Method::POST,
        "/signup",
        None,
        Some(json!({"email": unique_email("supa-big"), "password": PASSWORD, "data": {"k": big}})),
    )
    .await;
    let message = expect_gotrue(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert!(message.contains("4096"), "{message}");
    let session = sign_up(&app, &unique_email("supa-big")).await;
    let half = "y".repeat(2500);
    let first = put_user(&app, access(&session), json!({"data": {"one": half}})).await;
    expect_json(first, StatusCode::OK).await;
    // Each part fits; together they do not.
    let grows = put_user(&app, access(&session), json!({"data": {"two": half}})).await;
    expect_gotrue(grows, StatusCode::BAD_REQUEST, "validation_failed").await;
    let user = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert!(user["user_metadata"].get("two").is_none());
    let not_object = put_user(&app, access(&session), json!({"data": [1]})).await;
    expect_gotrue(not_object, StatusCode::BAD_REQUEST, "validation_failed").await;
    let admin = admin_call(
        &app,
        Method::POST,
        "/users",
        Some(json!({"email": unique_email("supa-big-admin"), "app_metadata": {"k": big}})),
    )
    .await;
    expect_gotrue(admin, StatusCode::BAD_REQUEST, "validation_failed").await;
}

async fn admin_create_stores_metadata_as_given_and_the_role_reaches_v1(app: TestApp) {
    let email = unique_email("supa-create");
    let user = admin_create(
        &app,
        json!({"email": email, "password": PASSWORD, "email_confirm": true,
            "user_metadata": {"plan": "pro"}, "app_metadata": {"role": "creator", "team": "a"}}),
    )
    .await;
    assert_eq!(user["email"], email.as_str());
    assert_eq!(
        user["user_metadata"],
        json!({"plan": "pro", "email_verified": true})
    );
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "team": "a", "role": "creator"})
    );
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    let v1 = app.admin_user(id(&user)).await;
    assert_eq!(v1["role"], "creator");
    let session = sign_in(&app, &email).await;
    assert_eq!(
        jwt_claims(access(&session))["app_metadata"]["role"],
        "creator"
    );

    let bare = admin_create(&app, json!({"email": unique_email("supa-bare")})).await;
    assert_eq!(bare["user_metadata"], json!({}));
    assert!(bare.get("email_confirmed_at").is_none(), "{bare}");
    // No password given: none verifies.
    let bare_email = bare["email"].as_str().expect("email");
    for password in ["", PASSWORD] {
        let refused = password_grant(&app, bare_email, password).await;
        expect_gotrue(refused, StatusCode::BAD_REQUEST, "invalid_credentials").await;
    }

    let taken = admin_call(
        &app,
        Method::POST,
        "/users",
        Some(json!({"email": email.to_uppercase()})),
    )
    .await;
    let message = expect_gotrue(taken, StatusCode::UNPROCESSABLE_ENTITY, "email_exists").await;
    assert_eq!(
        message,
        "A user with this email address has already been registered"
    );
    for (body, code) in [
        (json!({}), "validation_failed"),
        (json!({"email": "not-an-address"}), "validation_failed"),
        (
            json!({"email": unique_email("supa-r"), "app_metadata": {"role": "owner"}}),
            "validation_failed",
        ),
        (
            json!({"email": unique_email("supa-p"), "password": "x", "password_hash": "y"}),
            "validation_failed",
        ),
        (
            json!({"email": unique_email("supa-b"), "ban_duration": "1d"}),
            "validation_failed",
        ),
    ] {
        let refused = admin_call(&app, Method::POST, "/users", Some(body)).await;
        expect_gotrue(refused, StatusCode::BAD_REQUEST, code).await;
    }
    let taken_id = admin_call(
        &app,
        Method::POST,
        "/users",
        Some(json!({"email": unique_email("supa-id"), "id": id(&user)})),
    )
    .await;
    expect_gotrue(taken_id, StatusCode::BAD_REQUEST, "validation_failed").await;
    let chosen = uuid::Uuid::new_v4().to_string();
    let hashed_email = unique_email("supa-hash");
    let hash = bcrypt::hash(NEW_PASSWORD, 4).expect("hashes");
    let hashed = admin_create(
        &app,
        json!({"email": hashed_email, "id": chosen, "password_hash": hash}),
    )
    .await;
    assert_eq!(hashed["id"], chosen.as_str());
    sign_in_with(&app, &hashed_email, NEW_PASSWORD).await;
    let weak = admin_call(
        &app,
        Method::POST,
        "/users",
        Some(json!({"email": unique_email("supa-w"), "password": "123"})),
    )
    .await;
    expect_gotrue(weak, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
}

async fn admin_update_merges_metadata_and_changes_email_and_role_at_once(app: TestApp) {
    let email = unique_email("supa-update");
    let session = sign_up(&app, &email).await;
    let user_id = session["user"]["id"].as_str().expect("id").to_string();
    let new_email = unique_email("supa-updated");
    let changed = expect_json(
        admin_update(
            &app,
            &user_id,
            json!({"email": new_email, "user_metadata": {"plan": "pro", "full_name": "Grace"},
                "app_metadata": {"role": "admin", "team": "b"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(changed["email"], new_email.as_str());
    assert_eq!(changed["user_metadata"]["plan"], "pro");
    assert_eq!(changed["user_metadata"]["full_name"], "Grace");
    assert_eq!(changed["app_metadata"]["team"], "b");
    assert_eq!(changed["app_metadata"]["provider"], "email");
    assert_eq!(changed["app_metadata"]["role"], "admin");
    let v1 = app.admin_user(&user_id).await;
    assert_eq!(
        (&v1["role"], &v1["email"], &v1["display_name"]),
        (&json!("admin"), &json!(new_email), &json!("Grace"))
    );
    // The session stays, and its user shows the change at once.
    let fetched = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert_eq!(fetched["app_metadata"]["role"], "admin");
    let old = password_grant(&app, &email, PASSWORD).await;
    expect_gotrue(old, StatusCode::BAD_REQUEST, "invalid_credentials").await;
    sign_in(&app, &new_email).await;

    let removed = expect_json(
        admin_update(
            &app,
            &user_id,
            json!({"user_metadata": {"plan": null}, "app_metadata": {"team": null}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(removed["user_metadata"].get("plan").is_none(), "{removed}");
    assert!(removed["app_metadata"].get("team").is_none(), "{removed}");

    let other = sign_up(&app, &unique_email("supa-other")).await;
    let taken = admin_update(&app, &user_id, json!({"email": other["user"]["email"]})).await;
    expect_gotrue(taken, StatusCode::UNPROCESSABLE_ENTITY, "email_exists").await;
}

async fn an_admin_password_change_ends_every_session_on_both_surfaces(app: TestApp) {
    let email = unique_email("supa-adminpw");
    let session = sign_up(&app, &email).await;
    let v1 = app.login(&email, PASSWORD).await;
    let changed = admin_update(
        &app,
        id(&session["user"]),
        json!({"password": NEW_PASSWORD}),
    )
    .await;
    expect_json(changed, StatusCode::OK).await;
    let dead = get_user(&app, access(&session)).await;
    expect_gotrue(dead, StatusCode::FORBIDDEN, "session_not_found").await;
    expect_error(
        app.me(&v1.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let old = password_grant(&app, &email, PASSWORD).await;
    expect_gotrue(old, StatusCode::BAD_REQUEST, "invalid_credentials").await;
    expect_json(
        password_grant(&app, &email, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn a_ban_refuses_the_user_on_both_surfaces_until_it_ends(app: TestApp) {
    let email = unique_email("supa-ban");
    let session = sign_up(&app, &email).await;
    let user_id = id(&session["user"]).to_string();
    let v1 = app.login(&email, PASSWORD).await;
    let banned = expect_json(
        admin_update(&app, &user_id, json!({"ban_duration": "24h"})).await,
        StatusCode::OK,
    )
    .await;
    assert!(banned["banned_until"].is_string(), "{banned}");

    let jwt = get_user(&app, access(&session)).await;
    assert_eq!(
        expect_gotrue(jwt, StatusCode::FORBIDDEN, "user_banned").await,
        "User is banned"
    );
    let refreshed = refresh_grant(&app, refresh(&session)).await;
    expect_gotrue(refreshed, StatusCode::BAD_REQUEST, "user_banned").await;
    let signed_in = password_grant(&app, &email, PASSWORD).await;
    expect_gotrue(signed_in, StatusCode::BAD_REQUEST, "user_banned").await;
    expect_error(
        app.me(&v1.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    expect_error(
        app.refresh_response(&v1.refresh).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_invalid",
    )
    .await;
    expect_error(
        app.login_response(&email, PASSWORD).await,
        StatusCode::FORBIDDEN,
        "account_disabled",
    )
    .await;
    // A wrong password still says only that.
    let wrong = password_grant(&app, &email, NEW_PASSWORD).await;
    expect_gotrue(wrong, StatusCode::BAD_REQUEST, "invalid_credentials").await;

    app.advance(24 * 3600 + 1);
    let session = sign_in(&app, &email).await;
    app.login(&email, PASSWORD).await;

    admin_update(&app, &user_id, json!({"ban_duration": "1h30m"})).await;
    expect_gotrue(
        get_user(&app, access(&session)).await,
        StatusCode::FORBIDDEN,
        "user_banned",
    )
    .await;
    let lifted = expect_json(
        admin_update(&app, &user_id, json!({"ban_duration": "none"})).await,
        StatusCode::OK,
    )
    .await;
    assert!(lifted.get("banned_until").is_none(), "{lifted}");
    // Lifting does not bring the ended sessions back; signing in works again.
    expect_gotrue(
        get_user(&app, access(&session)).await,
        StatusCode::FORBIDDEN,
        "session_not_found",
    )
    .await;
    sign_in(&app, &email).await;
    let bad = admin_update(&app, &user_id, json!({"ban_duration": "forever"})).await;
    expect_gotrue(bad, StatusCode::BAD_REQUEST, "validation_failed").await;
}

async fn a_hard_delete_removes_the_user_everywhere(app: TestApp) {
    let email = unique_email("supa-delete");
    let session = sign_up(&app, &email).await;
    let user_id = id(&session["user"]).to_string();
    let v1 = app.login(&email, PASSWORD).await;
    let deleted = admin_call(&app, Method::DELETE, &format!("/users/{user_id}"), None).await;
    assert_eq!(expect_json(deleted, StatusCode::OK).await, json!({}));
    let gone = admin_call(&app, Method::GET, &format!("/users/{user_id}"), None).await;
    expect_gotrue(gone, StatusCode::NOT_FOUND, "user_not_found").await;
    let jwt = get_user(&app, access(&session)).await;
    let message = expect_gotrue(jwt, StatusCode::FORBIDDEN, "user_not_found").await;
    assert_eq!(message, "User from sub claim in JWT does not exist");
    expect_error(
        app.me(&v1.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let again = admin_call(&app, Method::DELETE, &format!("/users/{user_id}"), None).await;
    expect_gotrue(again, StatusCode::NOT_FOUND, "user_not_found").await;
    sign_up(&app, &email).await;
}

async fn a_soft_delete_scrubs_the_user_and_ends_its_sessions(app: TestApp) {
    let email = unique_email("supa-soft");
    let session = sign_up(&app, &email).await;
    let user_id = id(&session["user"]).to_string();
    let v1 = app.login(&email, PASSWORD).await;
    let path = format!("/users/{user_id}");
    let body = Some(json!({"should_soft_delete": true}));
    let deleted = admin_call(&app, Method::DELETE, &path, body.clone()).await;
    assert_eq!(expect_json(deleted, StatusCode::OK).await, json!({}));
    let kept = expect_json(
        admin_call(&app, Method::GET, &path, None).await,
        StatusCode::OK,
    )
    .await;
    assert!(kept["deleted_at"].is_string(), "{kept}");
    assert_ne!(kept["email"], email.as_str());
    assert_eq!(kept["email"].as_str().expect("email").len(), 43);
    assert_eq!(kept["user_metadata"], json!({}));
    assert_eq!(kept["identities"], json!([]));
    let jwt = get_user(&app, access(&session)).await;
    expect_gotrue(jwt, StatusCode::FORBIDDEN, "session_not_found").await;
    expect_error(
        app.me(&v1.access).await,
        StatusCode::UNAUTHORIZED,
        "session_revoked",
    )
    .await;
    let refreshed = refresh_grant(&app, refresh(&session)).await;
    expect_gotrue(
        refreshed,
        StatusCode::BAD_REQUEST,
        "refresh_token_not_found",
    )
    .await;
    let signed_in = password_grant(&app, &email, PASSWORD).await;
    expect_gotrue(signed_in, StatusCode::BAD_REQUEST, "invalid_credentials").await;
    assert_eq!(app.admin_user(&user_id).await["disabled"], true);
    // Once more changes nothing; the address is free again.
    let again = admin_call(&app, Method::DELETE, &path, body).await;
    expect_json(again, StatusCode::OK).await;
    let later = expect_json(
        admin_call(&app, Method::GET, &path, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(later["deleted_at"], kept["deleted_at"]);
    sign_up(&app, &email).await;
}

async fn admin_changes_need_an_admin_and_a_user_id(app: TestApp) {
    let session = sign_up(&app, &unique_email("supa-guard")).await;
    let path = format!("/admin/users/{}", id(&session["user"]));
    let forged = sign_jwt(
        &json!({"role": "service_role"}),
        "another-secret-0123456789abcdefghijklmnop",
        jsonwebtoken::Algorithm::HS256,
    );
    let attempts = [
        (
            Method::POST,
            "/admin/users".to_string(),
            json!({"email": unique_email("supa-x")}),
        ),
        (
            Method::PUT,
            path.clone(),
            json!({"app_metadata": {"role": "admin"}}),
        ),
        (Method::DELETE, path.clone(), json!({})),
    ];
    for (method, path, body) in attempts {
        let user = call(
            &app,
            method.clone(),
            &path,
            Some(access(&session)),
            Some(body.clone()),
        );
        expect_gotrue(user.await, StatusCode::FORBIDDEN, "not_admin").await;
        let forged = call(
            &app,
            method.clone(),
            &path,
            Some(&forged),
            Some(body.clone()),
        );
        expect_gotrue(forged.await, StatusCode::FORBIDDEN, "bad_jwt").await;
        let none = call(&app, method, &path, None, Some(body));
        expect_gotrue(none.await, StatusCode::UNAUTHORIZED, "no_authorization").await;
    }
    let user = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert_eq!(user["app_metadata"]["role"], "viewer");
    for method in [Method::PUT, Method::DELETE] {
        let not_uuid = admin_call(&app, method.clone(), "/users/42", Some(json!({}))).await;
        let message = expect_gotrue(not_uuid, StatusCode::NOT_FOUND, "validation_failed").await;
        assert_eq!(message, "user_id must be an UUID");
        let unknown = format!("/users/{}", uuid::Uuid::new_v4());
        let unknown = admin_call(&app, method, &unknown, Some(json!({}))).await;
        expect_gotrue(unknown, StatusCode::NOT_FOUND, "user_not_found").await;
    }
}

/// Every merge reads and writes the user under its row lock, so concurrent merges of distinct
/// keys all land (a read-modify-write outside the lock loses all but the last).
async fn concurrent_data_merges_into_one_user_all_land(app: TestApp) {
    const MERGES: usize = 20;
    let session = sign_up(&app, &unique_email("supa-race")).await;
    let token = access(&session).to_owned();
    let mut set = JoinSet::new();
    for i in 0..MERGES {
        let request = app
            .client
            .put(app.url("/auth/v1/user"))
            .bearer_auth(&token)
            .json(&json!({"data": {format!("key{i}"): i}}));
        set.spawn(async move { request.send().await.expect("sent").status() });
    }
    while let Some(status) = set.join_next().await {
        assert_eq!(status.expect("request task"), StatusCode::OK);
    }
    let user = expect_json(get_user(&app, &token).await, StatusCode::OK).await;
    let metadata = &user["user_metadata"];
    let missing: Vec<usize> = (0..MERGES)
        .filter(|i| metadata[format!("key{i}")] != json!(i))
        .collect();
    assert!(missing.is_empty(), "lost merges {missing:?} in {metadata}");
    assert_eq!(metadata["full_name"], "Ada");
}

/// An admin change is one write: when its merged metadata is refused, the password, the email,
/// the role and the ban it carried are not applied either.
async fn an_admin_change_refused_in_part_changes_nothing(app: TestApp) {
    let email = unique_email("supa-partial");
    let session = sign_up(&app, &email).await;
    let user_id = id(&session["user"]).to_owned();
    let half = "y".repeat(2500);
    expect_json(
        put_user(&app, access(&session), json!({"data": {"one": half}})).await,
        StatusCode::OK,
    )
    .await;
    let before = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    let new_email = unique_email("supa-partial-new");
    let refused = admin_update(
        &app,
        &user_id,
        json!({"email": new_email, "password": NEW_PASSWORD, "email_confirm": true,
            "user_metadata": {"two": half, "full_name": "Grace"},
            "app_metadata": {"role": "admin", "team": "b"}, "ban_duration": "24h"}),
    )
    .await;
    let message = expect_gotrue(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(message, "user_metadata is larger than 4096 bytes as JSON");
    // The session was not ended, and its user is the one from before.
    let after = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert_eq!(after, before);
    let old = expect_json(password_grant(&app, &email, PASSWORD).await, StatusCode::OK).await;
    assert_eq!(old["user"]["app_metadata"]["role"], "viewer");
    let new = password_grant(&app, &new_email, NEW_PASSWORD).await;
    expect_gotrue(new, StatusCode::BAD_REQUEST, "invalid_credentials").await;
    let v1 = app.admin_user(&user_id).await;
    assert_eq!(
        (&v1["role"], &v1["email"], &v1["display_name"]),
        (&json!("viewer"), &json!(email), &json!("Ada"))
    );

    // Too large app_metadata, with a user_metadata that fits: neither is written.
    let big = "z".repeat(4000);
    expect_json(
        admin_update(&app, &user_id, json!({"app_metadata": {"big": big}})).await,
        StatusCode::OK,
    )
    .await;
    let refused = admin_update(
        &app,
        &user_id,
        json!({"user_metadata": {"plan": "pro"}, "app_metadata": {"more": big}}),
    )
    .await;
    let message = expect_gotrue(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(message, "app_metadata is larger than 4096 bytes as JSON");
    let user = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert!(user["user_metadata"].get("plan").is_none(), "{user}");
    assert!(user["app_metadata"].get("more").is_none(), "{user}");

    // A taken address refuses the whole change too.
    let other = sign_up(&app, &unique_email("supa-partial-other")).await;
    let taken = admin_update(
        &app,
        &user_id,
        json!({"email": other["user"]["email"], "password": NEW_PASSWORD,
            "user_metadata": {"plan": "pro"}, "app_metadata": {"role": "creator"}}),
    )
    .await;
    expect_gotrue(taken, StatusCode::UNPROCESSABLE_ENTITY, "email_exists").await;
    let user = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert!(user["user_metadata"].get("plan").is_none(), "{user}");
    assert_eq!(user["app_metadata"]["role"], "viewer");
    expect_json(password_grant(&app, &email, PASSWORD).await, StatusCode::OK).await;
}

/// `PUT /user` with a new password and `data` is one write too: refused data keeps the old
/// password and every session.
async fn a_put_user_refused_in_part_changes_nothing(app: TestApp) {
    let email = unique_email("supa-partial-put");
    let session = sign_up(&app, &email).await;
    let other = sign_in(&app, &email).await;
    let half = "y".repeat(2500);
    expect_json(
        put_user(&app, access(&session), json!({"data": {"one": half}})).await,
        StatusCode::OK,
    )
    .await;
    let refused = put_user(
        &app,
        access(&session),
        json!({"password": NEW_PASSWORD, "data": {"two": half}}),
    )
    .await;
    let message = expect_gotrue(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
    assert_eq!(message, "user_metadata is larger than 4096 bytes as JSON");
    expect_json(get_user(&app, access(&other)).await, StatusCode::OK).await;
    expect_json(password_grant(&app, &email, PASSWORD).await, StatusCode::OK).await;
    // Both together, when they fit: the password changes, the data lands, the other session ends.
    let user = expect_json(
        put_user(
            &app,
            access(&session),
            json!({"password": NEW_PASSWORD, "data": {"one": null, "two": "small"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(user["user_metadata"].get("one").is_none(), "{user}");
    assert_eq!(user["user_metadata"]["two"], "small");
    let dead = get_user(&app, access(&other)).await;
    expect_gotrue(dead, StatusCode::FORBIDDEN, "session_not_found").await;
    expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    expect_json(
        password_grant(&app, &email, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

both_stores!(
    sign_up_stores_free_data_in_user_metadata_and_the_token,
    put_user_merges_data_and_the_next_token_carries_it,
    users_cannot_write_app_metadata,
    metadata_beyond_four_kib_is_refused_everywhere,
    admin_create_stores_metadata_as_given_and_the_role_reaches_v1,
    admin_update_merges_metadata_and_changes_email_and_role_at_once,
    an_admin_password_change_ends_every_session_on_both_surfaces,
    a_ban_refuses_the_user_on_both_surfaces_until_it_ends,
    a_hard_delete_removes_the_user_everywhere,
    a_soft_delete_scrubs_the_user_and_ends_its_sessions,
    admin_changes_need_an_admin_and_a_user_id,
    concurrent_data_merges_into_one_user_all_land,
    an_admin_change_refused_in_part_changes_nothing,
    a_put_user_refused_in_part_changes_nothing,
);
