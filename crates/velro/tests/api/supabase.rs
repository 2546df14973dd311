//! The Supabase Auth (GoTrue) surface under /auth/v1: its bodies, tokens and error shapes, and
//! that it is one account with the v1 API (sign-in, refresh, logout and limits shared). The
//! official clients judge the same surface in tests/clients.

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use velro::config::Switch;

use crate::both_stores;
use crate::helpers::{
    expect_error, expect_json, expect_rejected_token, jwt_claims, sign_jwt, unique_email, TestApp,
    JWT_SECRET, NEW_PASSWORD, PASSWORD, SERVICE_KEY,
};

const VERSION: &str = "2024-01-01";

/// A request as the official clients send it: with `X-Supabase-Api-Version`.
pub(crate) async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method, app.url(&format!("/auth/v1{path}")))
        .header("x-supabase-api-version", VERSION);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

pub(crate) async fn sign_up(app: &TestApp, email: &str) -> Value {
    let body = json!({"email": email, "password": PASSWORD, "data": {"full_name": "Ada"}});
    expect_json(
        call(app, Method::POST, "/signup", None, Some(body)).await,
        StatusCode::OK,
    )
    .await
}

pub(crate) async fn password_grant(app: &TestApp, email: &str, password: &str) -> Response {
    let body = json!({"email": email, "password": password});
    call(
        app,
        Method::POST,
        "/token?grant_type=password",
        None,
        Some(body),
    )
    .await
}

pub(crate) async fn sign_in(app: &TestApp, email: &str) -> Value {
    expect_json(password_grant(app, email, PASSWORD).await, StatusCode::OK).await
}

pub(crate) async fn refresh_grant(app: &TestApp, refresh_token: &str) -> Response {
    let body = json!({"refresh_token": refresh_token});
    call(
        app,
        Method::POST,
        "/token?grant_type=refresh_token",
        None,
        Some(body),
    )
    .await
}

pub(crate) async fn get_user(app: &TestApp, access: &str) -> Response {
    call(app, Method::GET, "/user", Some(access), None).await
}

pub(crate) fn access(session: &Value) -> &str {
    session["access_token"].as_str().expect("access token")
}

pub(crate) fn refresh(session: &Value) -> &str {
    session["refresh_token"].as_str().expect("refresh token")
}

/// A GoTrue error with the 2024-01-01 body: exactly `code` and `message`, the version echoed,
/// the code in `x-sb-error-code`. Returns the message.
pub(crate) async fn expect_gotrue(response: Response, status: StatusCode, code: &str) -> String {
    let actual = response.status();
    let headers = response.headers().clone();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(actual, status, "unexpected answer: {body}");
    assert_eq!(headers["x-supabase-api-version"], VERSION);
    assert_eq!(headers["x-sb-error-code"], code);
    assert_eq!(body["code"], code, "{body}");
    let mut keys: Vec<&str> = body
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let expected: &[&str] = if code == "weak_password" {
        &["code", "message", "weak_password"]
    } else {
        &["code", "message"]
    };
    assert_eq!(keys, expected, "{body}");
    body["message"].as_str().expect("message").to_string()
}

async fn sign_up_returns_a_session_with_gotrue_user_and_claims(app: TestApp) {
    let email = unique_email("supa-signup");
    let session = sign_up(&app, &email.to_uppercase()).await;
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["expires_in"], 3600);
    assert!(session["expires_at"].is_i64());
    assert_eq!(session["weak_password"], Value::Null);
    let user = &session["user"];
    assert_eq!(user["email"], email.as_str());
    assert_eq!(user["aud"], "authenticated");
    assert_eq!(user["role"], "authenticated");
    assert_eq!(user["phone"], "");
    assert_eq!(user["is_anonymous"], false);
    assert!(user["email_confirmed_at"].is_string(), "{user}");
    assert_eq!(
        user["app_metadata"],
        json!({"provider": "email", "providers": ["email"], "role": "viewer"})
    );
    assert_eq!(user["user_metadata"]["full_name"], "Ada");
    assert_eq!(user["user_metadata"]["email_verified"], true);
    assert_eq!(user["identities"][0]["provider"], "email");
    assert_eq!(user["identities"][0]["user_id"], user["id"]);

    let claims = jwt_claims(access(&session));
    let mut keys: Vec<&str> = claims
        .as_object()
        .expect("claims")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "aal",
            "amr",
            "app_metadata",
            "aud",
            "email",
            "exp",
            "iat",
            "is_anonymous",
            "iss",
            "phone",
            "role",
            "session_id",
            "sub",
            "user_metadata"
        ]
    );
    assert_eq!(claims["sub"], user["id"]);
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["iss"], "http://localhost:8000/auth/v1");
    assert_eq!(claims["app_metadata"]["role"], "viewer");
    assert_eq!(claims["amr"][0]["method"], "password");
    assert_eq!(claims["aal"], "aal1");
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        3600
    );

    let fetched = expect_json(get_user(&app, access(&session)).await, StatusCode::OK).await;
    assert_eq!(fetched, session["user"]);
}

async fn sign_up_refusals_speak_gotrue(app: TestApp) {
    let email = unique_email("supa-refusals");
    sign_up(&app, &email).await;
    let again = json!({"email": email, "password": PASSWORD});
    let message = expect_gotrue(
        call(&app, Method::POST, "/signup", None, Some(again)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "user_already_exists",
    )
    .await;
    assert_eq!(message, "User already registered");

    let short = json!({"email": unique_email("supa-short"), "password": "short"});
    let response = call(&app, Method::POST, "/signup", None, Some(short)).await;
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["code"], "weak_password");
    // Every reason that applies: "short" is also a common password.
    assert_eq!(body["weak_password"]["reasons"], json!(["length", "pwned"]));

    let own = unique_email("supa-own");
    let as_email = json!({"email": own, "password": own});
    let response = call(&app, Method::POST, "/signup", None, Some(as_email)).await;
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(body["code"], "weak_password", "{body}");

    let bad = json!({"email": "not-an-address", "password": PASSWORD});
    let message = expect_gotrue(
        call(&app, Method::POST, "/signup", None, Some(bad)).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    assert_eq!(message, "Unable to validate email address: invalid format");

    let no_password = json!({"email": unique_email("supa-nopw")});
    expect_gotrue(
        call(&app, Method::POST, "/signup", None, Some(no_password)).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;

    let response = app
        .client
        .post(app.url("/auth/v1/signup"))
        .header("x-supabase-api-version", VERSION)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("sent");
    expect_gotrue(response, StatusCode::BAD_REQUEST, "bad_json").await;
}

async fn without_the_version_header_errors_have_the_legacy_shape(app: TestApp) {
    let response = app
        .client
        .post(app.url("/auth/v1/token?grant_type=password"))
        .json(&json!({"email": unique_email("supa-legacy"), "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(response.headers().get("x-supabase-api-version").is_none());
    assert_eq!(response.headers()["x-sb-error-code"], "invalid_credentials");
    let body: Value = response.json().await.expect("JSON");
    assert_eq!(
        body,
        json!({"code": 400, "error_code": "invalid_credentials", "msg": "Invalid login credentials"})
    );

    let unknown = app
        .client
        .get(app.url("/auth/v1/no-such-route"))
        .send()
        .await
        .expect("sent");
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    let body: Value = unknown.json().await.expect("JSON");
    assert_eq!(body["error_code"], "not_found");
}

async fn password_grant_refuses_unknown_users_and_wrong_passwords_alike(app: TestApp) {
    let email = unique_email("supa-grant");
    sign_up(&app, &email).await;
    for (who, password) in [
        (email.as_str(), "not the password"),
        ("nobody@example.com", PASSWORD),
    ] {
        let message = expect_gotrue(
            password_grant(&app, who, password).await,
            StatusCode::BAD_REQUEST,
            "invalid_credentials",
        )
        .await;
        assert_eq!(message, "Invalid login credentials");
    }
    let unsupported = call(
        &app,
        Method::POST,
        "/token?grant_type=magic",
        None,
        Some(json!({})),
    )
    .await;
    expect_gotrue(unsupported, StatusCode::BAD_REQUEST, "invalid_credentials").await;
}

async fn one_account_signs_in_on_both_surfaces(app: TestApp) {
    let v1_email = unique_email("supa-from-v1");
    let v1 = app.register(&v1_email).await;
    let session = sign_in(&app, &v1_email).await;
    assert_eq!(session["user"]["id"], v1.user_id().as_str());

    let supa_email = unique_email("supa-to-v1");
    let signed_up = sign_up(&app, &supa_email).await;
    let v1_login = app.login(&supa_email, PASSWORD).await;
    assert_eq!(
        v1_login.user_id(),
        signed_up["user"]["id"].as_str().expect("id")
    );
    // Auto-confirm is a fact about the account, so the v1 API sees it too.
    assert_eq!(app.me_json(&v1_login.access).await["email_confirmed"], true);
}

async fn a_logout_on_either_surface_ends_the_session_on_both(app: TestApp) {
    let email = unique_email("supa-logout");
    let supa = sign_up(&app, &email).await;
    let v1 = app.login(&email, PASSWORD).await;
    let ended = app.logout(&v1.access, Some("global")).await;
    assert_eq!(ended.status(), StatusCode::OK);
    let message = expect_gotrue(
        get_user(&app, access(&supa)).await,
        StatusCode::FORBIDDEN,
        "session_not_found",
    )
    .await;
    assert_eq!(
        message,
        "Session from session_id claim in JWT does not exist"
    );
    expect_gotrue(
        refresh_grant(&app, refresh(&supa)).await,
        StatusCode::BAD_REQUEST,
        "refresh_token_not_found",
    )
    .await;

    let supa = sign_in(&app, &email).await;
    let v1 = app.login(&email, PASSWORD).await;
    let response = call(&app, Method::POST, "/logout", Some(access(&supa)), None).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.expect("body").is_empty());
    expect_rejected_token(app.me(&v1.access).await, "session_revoked").await;
}

async fn logout_scopes_follow_gotrue(app: TestApp) {
    let email = unique_email("supa-scopes");
    let first = sign_up(&app, &email).await;
    let second = sign_in(&app, &email).await;
    let third = sign_in(&app, &email).await;
    expect_gotrue(
        call(
            &app,
            Method::POST,
            "/logout?scope=all",
            Some(access(&first)),
            None,
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
    )
    .await;
    let local = call(
        &app,
        Method::POST,
        "/logout?scope=local",
        Some(access(&second)),
        None,
    )
    .await;
    assert_eq!(local.status(), StatusCode::NO_CONTENT);
    expect_gotrue(
        get_user(&app, access(&second)).await,
        StatusCode::FORBIDDEN,
        "session_not_found",
    )
    .await;
    assert_eq!(
        get_user(&app, access(&first)).await.status(),
        StatusCode::OK
    );
    let others = call(
        &app,
        Method::POST,
        "/logout?scope=others",
        Some(access(&first)),
        None,
    )
    .await;
    assert_eq!(others.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        get_user(&app, access(&first)).await.status(),
        StatusCode::OK
    );
    expect_gotrue(
        get_user(&app, access(&third)).await,
        StatusCode::FORBIDDEN,
        "session_not_found",
    )
    .await;
}

async fn refresh_rotates_with_the_shared_reuse_window(app: TestApp) {
    let email = unique_email("supa-refresh");
    let first = sign_up(&app, &email).await;
    let second = expect_json(refresh_grant(&app, refresh(&first)).await, StatusCode::OK).await;
    assert_ne!(refresh(&second), refresh(&first));
    assert_eq!(
        jwt_claims(access(&second))["session_id"],
        jwt_claims(access(&first))["session_id"]
    );
    // Within the window, the spent token gives the same successor (two tabs, one token).
    let again = expect_json(refresh_grant(&app, refresh(&first)).await, StatusCode::OK).await;
    assert_eq!(refresh(&again), refresh(&second));

    app.advance(11);
    let message = expect_gotrue(
        refresh_grant(&app, refresh(&first)).await,
        StatusCode::BAD_REQUEST,
        "refresh_token_already_used",
    )
    .await;
    assert_eq!(message, "Invalid Refresh Token: Already Used");
    // The whole family is revoked: the successor and the session's access tokens too.
    expect_gotrue(
        refresh_grant(&app, refresh(&second)).await,
        StatusCode::BAD_REQUEST,
        "refresh_token_not_found",
    )
    .await;
    expect_gotrue(
        get_user(&app, access(&second)).await,
        StatusCode::FORBIDDEN,
        "session_not_found",
    )
    .await;
}

async fn tokens_of_one_surface_are_refused_by_the_other(app: TestApp) {
    let email = unique_email("supa-confusion");
    let supa = sign_up(&app, &email).await;
    let v1 = app.login(&email, PASSWORD).await;
    expect_gotrue(
        get_user(&app, &v1.access).await,
        StatusCode::FORBIDDEN,
        "bad_jwt",
    )
    .await;
    expect_rejected_token(app.me(access(&supa)).await, "token_invalid").await;
    let admin = app
        .admin_as(Some(access(&supa)), Method::GET, "/users")
        .await;
    expect_error(admin, StatusCode::UNAUTHORIZED, "invalid_service_key").await;

    // Signed with the right secret but not ours in shape: anon keys, wrong issuer or audience.
    let claims = jwt_claims(access(&supa));
    let mut forged = Vec::new();
    forged.push(json!({"role": "anon", "iss": "supabase", "iat": 1}));
    for (key, value) in [
        ("iss", json!("velro")),
        ("aud", json!("other")),
        ("session_id", Value::Null),
    ] {
        let mut changed = claims.clone();
        changed[key] = value;
        forged.push(changed);
    }
    for claims in forged {
        let token = sign_jwt(&claims, JWT_SECRET, jsonwebtoken::Algorithm::HS256);
        expect_gotrue(
            get_user(&app, &token).await,
            StatusCode::FORBIDDEN,
            "bad_jwt",
        )
        .await;
    }
    let missing = call(&app, Method::GET, "/user", None, None).await;
    expect_gotrue(missing, StatusCode::UNAUTHORIZED, "no_authorization").await;
}

async fn an_expired_access_token_is_bad_jwt(app: TestApp) {
    let session = sign_up(&app, &unique_email("supa-expired")).await;
    app.advance(3_600 + 10);
    let message = expect_gotrue(
        get_user(&app, access(&session)).await,
        StatusCode::FORBIDDEN,
        "bad_jwt",
    )
    .await;
    assert!(message.starts_with("invalid JWT"), "{message}");
}

async fn failed_sign_ins_are_limited_the_gotrue_way(app: TestApp) {
    let app = app
        .with_config(|config| {
            config.rate_limits = Switch::On;
            config.rate_limit_login_account = "3/1m".parse().expect("quota");
        })
        .await;
    let email = unique_email("supa-limit");
    sign_up(&app, &email).await;
    for _ in 0..3 {
        expect_gotrue(
            password_grant(&app, &email, "not the password").await,
            StatusCode::BAD_REQUEST,
            "invalid_credentials",
        )
        .await;
    }
    let message = expect_gotrue(
        password_grant(&app, &email, PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS,
        "over_request_rate_limit",
    )
    .await;
    assert_eq!(message, "Request rate limit reached");
    // The same budget is spent on the v1 API: one account, one set of limits.
    let v1 = app.login_response(&email, PASSWORD).await;
    expect_error(v1, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
}

async fn sign_up_can_be_disabled(app: TestApp) {
    let app = app.with_config(|config| config.disable_signup = true).await;
    let body = json!({"email": unique_email("supa-disabled"), "password": PASSWORD});
    let message = expect_gotrue(
        call(&app, Method::POST, "/signup", None, Some(body)).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "signup_disabled",
    )
    .await;
    assert_eq!(message, "Signups not allowed for this instance");
}

async fn the_service_endpoints_answer_as_gotrue_does(app: TestApp) {
    let health = expect_json(
        call(&app, Method::GET, "/health", None, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(health["name"], "GoTrue");
    let settings = expect_json(
        call(&app, Method::GET, "/settings", None, None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(settings["external"]["email"], true);
    assert_eq!(settings["external"]["phone"], false);
    assert_eq!(settings["disable_signup"], false);
    assert_eq!(settings["mailer_autoconfirm"], true);
    let response = call(&app, Method::GET, "/.well-known/jwks.json", None, None).await;
    // GoTrue's lifetime on this surface (the v1 JWKS keeps its own).
    assert_eq!(response.headers()["cache-control"], "public, max-age=600");
    let jwks = expect_json(response, StatusCode::OK).await;
    // HS256: a symmetric key is never published.
    assert_eq!(jwks, json!({"keys": []}));
}

async fn the_surface_is_served_at_the_root_only_when_configured(app: TestApp) {
    let body = json!({"email": unique_email("supa-root"), "password": PASSWORD});
    let off = app.post("/signup", body.clone()).await;
    expect_error(off, StatusCode::NOT_FOUND, "not_found").await;
    let app = app
        .with_config(|config| config.supabase_at_root = true)
        .await;
    let session = expect_json(app.post("/signup", body).await, StatusCode::OK).await;
    let user = app
        .client
        .get(app.url("/user"))
        .bearer_auth(access(&session))
        .send()
        .await
        .expect("sent");
    assert_eq!(user.status(), StatusCode::OK);
    // The v1 service endpoints keep their answers at the root.
    let health: Value = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent")
        .json()
        .await
        .expect("JSON");
    assert_eq!(health["status"], "ok");
}

pub(crate) async fn put_user(app: &TestApp, access: &str, body: Value) -> Response {
    call(app, Method::PUT, "/user", Some(access), Some(body)).await
}

async fn a_new_password_keeps_this_session_and_ends_the_others_on_both_surfaces(app: TestApp) {
    let email = unique_email("supa-password");
    let this = sign_up(&app, &email).await;
    let other = sign_in(&app, &email).await;
    let v1 = app.login(&email, PASSWORD).await;
    let same = put_user(&app, access(&this), json!({"password": PASSWORD})).await;
    expect_gotrue(same, StatusCode::UNPROCESSABLE_ENTITY, "same_password").await;
    let weak = put_user(&app, access(&this), json!({"password": "short"})).await;
    expect_gotrue(weak, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;
    let own = put_user(&app, access(&this), json!({"password": email})).await;
    expect_gotrue(own, StatusCode::UNPROCESSABLE_ENTITY, "weak_password").await;

    let changed = put_user(&app, access(&this), json!({"password": NEW_PASSWORD})).await;
    let user = expect_json(changed, StatusCode::OK).await;
    assert_eq!(user["email"], email.as_str());
    assert_eq!(get_user(&app, access(&this)).await.status(), StatusCode::OK);
    expect_gotrue(
        get_user(&app, access(&other)).await,
        StatusCode::FORBIDDEN,
        "session_not_found",
    )
    .await;
    expect_rejected_token(app.me(&v1.access).await, "session_revoked").await;
    expect_gotrue(
        password_grant(&app, &email, PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_credentials",
    )
    .await;
    let signed_in = password_grant(&app, &email, NEW_PASSWORD).await;
    expect_json(signed_in, StatusCode::OK).await;
    app.login(&email, NEW_PASSWORD).await;
}

async fn user_metadata_merges_free_keys_and_keeps_the_profile_keys(app: TestApp) {
    let email = unique_email("supa-metadata");
    let session = sign_up(&app, &email).await;
    let body = json!({"data": {"full_name": "Grace Hopper", "avatar_url": "https://img.example.com/g.png"}});
    let user = expect_json(put_user(&app, access(&session), body).await, StatusCode::OK).await;
    assert_eq!(user["user_metadata"]["full_name"], "Grace Hopper");
    assert_eq!(
        user["user_metadata"]["avatar_url"],
        "https://img.example.com/g.png"
    );
    let v1 = app.login(&email, PASSWORD).await;
    assert_eq!(
        app.me_json(&v1.access).await["display_name"],
        "Grace Hopper"
    );

    let cleared = put_user(&app, access(&session), json!({"data": {"full_name": null}})).await;
    let user = expect_json(cleared, StatusCode::OK).await;
    assert!(user["user_metadata"].get("full_name").is_none(), "{user}");
    let free = put_user(&app, access(&session), json!({"data": {"plan": "pro"}})).await;
    let user = expect_json(free, StatusCode::OK).await;
    assert_eq!(user["user_metadata"]["plan"], "pro");
    let bad_name = put_user(&app, access(&session), json!({"data": {"full_name": 42}})).await;
    expect_gotrue(bad_name, StatusCode::BAD_REQUEST, "validation_failed").await;
    // An email change is a flow of its own (supabase_confirm.rs); a malformed address is refused.
    let email_change = put_user(&app, access(&session), json!({"email": "not an address"})).await;
    expect_gotrue(email_change, StatusCode::BAD_REQUEST, "validation_failed").await;
}

async fn admin_credentials_are_checked_as_gotrue_checks_them(app: TestApp) {
    let session = sign_up(&app, &unique_email("supa-admin")).await;
    let id = session["user"]["id"].as_str().expect("id");
    let path = format!("/admin/users/{id}");
    let service_role = sign_jwt(
        &json!({"role": "service_role"}),
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS256,
    );
    let found = call(&app, Method::GET, &path, Some(&service_role), None).await;
    assert_eq!(expect_json(found, StatusCode::OK).await, session["user"]);
    let supabase_admin = sign_jwt(
        &json!({"sub": "1234567890", "role": "supabase_admin"}),
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS256,
    );
    let found = call(&app, Method::GET, &path, Some(&supabase_admin), None).await;
    assert_eq!(found.status(), StatusCode::OK);

    let anon = sign_jwt(
        &json!({"role": "anon", "iss": "supabase"}),
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS256,
    );
    let v1 = app
        .login(session["user"]["email"].as_str().expect("email"), PASSWORD)
        .await;
    for not_admin in [anon.as_str(), access(&session), v1.access.as_str()] {
        let refused = call(&app, Method::GET, &path, Some(not_admin), None).await;
        let message = expect_gotrue(refused, StatusCode::FORBIDDEN, "not_admin").await;
        assert_eq!(message, "User not allowed");
    }
    let forged = sign_jwt(
        &json!({"role": "service_role"}),
        "another-secret-0123456789abcdefghijklmnop",
        jsonwebtoken::Algorithm::HS256,
    );
    for bad in [forged.as_str(), SERVICE_KEY] {
        let refused = call(&app, Method::GET, &path, Some(bad), None).await;
        let message = expect_gotrue(refused, StatusCode::FORBIDDEN, "bad_jwt").await;
        assert!(message.starts_with("invalid JWT"), "{message}");
    }
    let missing = call(&app, Method::GET, &path, None, None).await;
    expect_gotrue(missing, StatusCode::UNAUTHORIZED, "no_authorization").await;

    let not_uuid = call(
        &app,
        Method::GET,
        "/admin/users/42",
        Some(&service_role),
        None,
    )
    .await;
    expect_gotrue(not_uuid, StatusCode::NOT_FOUND, "validation_failed").await;
    let unknown = format!("/admin/users/{}", uuid::Uuid::new_v4());
    let unknown = call(&app, Method::GET, &unknown, Some(&service_role), None).await;
    expect_gotrue(unknown, StatusCode::NOT_FOUND, "user_not_found").await;
}

async fn browsers_may_send_the_supabase_headers_and_read_the_version(app: TestApp) {
    let origin = "https://app.example.com";
    let app = app
        .with_config(|config| config.cors_allowed_origins = vec![origin.into()])
        .await;
    let preflight = app
        .client
        .request(
            Method::OPTIONS,
            app.url("/auth/v1/token?grant_type=password"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "apikey,authorization,content-type,x-client-info,x-supabase-api-version",
        )
        .send()
        .await
        .expect("sent");
    assert!(preflight.status().is_success());
    let allowed = preflight.headers()["access-control-allow-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    for header in ["apikey", "x-client-info", "x-supabase-api-version"] {
        assert!(allowed.contains(header), "{header} not in {allowed}");
    }
    let answer = app
        .client
        .post(app.url("/auth/v1/token?grant_type=password"))
        .header("origin", origin)
        .header("x-supabase-api-version", VERSION)
        .json(&json!({"email": unique_email("supa-cors"), "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    let exposed = answer.headers()["access-control-expose-headers"]
        .to_str()
        .expect("ascii")
        .to_ascii_lowercase();
    assert!(exposed.contains("x-supabase-api-version"), "{exposed}");
}

async fn the_admin_list_pages_newest_first_with_gotrue_headers(app: TestApp) {
    let service_role = sign_jwt(
        &json!({"role": "service_role"}),
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS256,
    );
    let mut ids = Vec::new();
    for i in 0..3 {
        let session = sign_up(&app, &unique_email(&format!("supa-list{i}"))).await;
        ids.push(session["user"]["id"].clone());
        app.advance(1);
    }
    ids.reverse();
    let first = call(
        &app,
        Method::GET,
        "/admin/users?page=&per_page=",
        Some(&service_role),
        None,
    )
    .await;
    assert_eq!(first.headers()["x-total-count"], "3");
    let body = expect_json(first, StatusCode::OK).await;
    assert_eq!(body["aud"], "authenticated");
    let listed: Vec<Value> = body["users"]
        .as_array()
        .expect("users")
        .iter()
        .map(|user| user["id"].clone())
        .collect();
    assert_eq!(listed, ids);

    let second = call(
        &app,
        Method::GET,
        "/admin/users?page=2&per_page=2",
        Some(&service_role),
        None,
    )
    .await;
    assert_eq!(
        second.headers()["link"],
        "<http://localhost:8000/auth/v1/admin/users?page=2&per_page=2>; rel=\"last\""
    );
    let body = expect_json(second, StatusCode::OK).await;
    assert_eq!(body["users"].as_array().expect("users").len(), 1);
    assert_eq!(body["users"][0]["id"], ids[2]);
    let first_of_two = call(
        &app,
        Method::GET,
        "/admin/users?page=1&per_page=2",
        Some(&service_role),
        None,
    )
    .await;
    assert_eq!(
        first_of_two.headers()["link"],
        "<http://localhost:8000/auth/v1/admin/users?page=2&per_page=2>; rel=\"next\", \
         <http://localhost:8000/auth/v1/admin/users?page=2&per_page=2>; rel=\"last\""
    );
    // GoTrue's `filter`: a part of the email (or full name), any case; the links keep it.
    let filtered = call(
        &app,
        Method::GET,
        "/admin/users?page=1&per_page=1&filter=SUPA-LIST",
        Some(&service_role),
        None,
    )
    .await;
    assert_eq!(filtered.headers()["x-total-count"], "3");
    let link = filtered.headers()["link"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(
        link.starts_with(
            "<http://localhost:8000/auth/v1/admin/users?page=2&per_page=1&filter=SUPA-LIST>; rel=\"next\""
        ),
        "{link}"
    );
    let body = expect_json(filtered, StatusCode::OK).await;
    assert_eq!(body["users"][0]["id"], ids[0]);
    let one = call(
        &app,
        Method::GET,
        "/admin/users?filter=Supa-List1-",
        Some(&service_role),
        None,
    )
    .await;
    assert_eq!(one.headers()["x-total-count"], "1");
    let body = expect_json(one, StatusCode::OK).await;
    assert_eq!(body["users"][0]["id"], ids[1]);
    for bad in ["page=-1", "page=x", "per_page=0", "page=0"] {
        let refused = call(
            &app,
            Method::GET,
            &format!("/admin/users?{bad}"),
            Some(&service_role),
            None,
        )
        .await;
        let message = expect_gotrue(refused, StatusCode::BAD_REQUEST, "validation_failed").await;
        assert_eq!(message, "Bad Pagination Parameters", "{bad}");
    }
    let user_token = sign_up(&app, &unique_email("supa-list-user")).await;
    let refused = call(
        &app,
        Method::GET,
        "/admin/users",
        Some(access(&user_token)),
        None,
    )
    .await;
    expect_gotrue(refused, StatusCode::FORBIDDEN, "not_admin").await;
}

both_stores!(
    sign_up_returns_a_session_with_gotrue_user_and_claims,
    sign_up_refusals_speak_gotrue,
    without_the_version_header_errors_have_the_legacy_shape,
    password_grant_refuses_unknown_users_and_wrong_passwords_alike,
    one_account_signs_in_on_both_surfaces,
    a_logout_on_either_surface_ends_the_session_on_both,
    logout_scopes_follow_gotrue,
    refresh_rotates_with_the_shared_reuse_window,
    tokens_of_one_surface_are_refused_by_the_other,
    an_expired_access_token_is_bad_jwt,
    failed_sign_ins_are_limited_the_gotrue_way,
    sign_up_can_be_disabled,
    the_service_endpoints_answer_as_gotrue_does,
    the_surface_is_served_at_the_root_only_when_configured,
    a_new_password_keeps_this_session_and_ends_the_others_on_both_surfaces,
    user_metadata_merges_free_keys_and_keeps_the_profile_keys,
    admin_credentials_are_checked_as_gotrue_checks_them,
    browsers_may_send_the_supabase_headers_and_read_the_version,
    the_admin_list_pages_newest_first_with_gotrue_headers,
);

/// Supabase's own `auth.uid()` and `auth.jwt()` (they read PostgREST's `request.jwt.claims`),
/// a table whose row-level security policy uses them, and the `authenticated` role.
pub(crate) const SUPABASE_SCHEMA: &[&str] = &[
    "DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$",
    "CREATE SCHEMA auth",
    "CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $$ \
       SELECT coalesce(nullif(current_setting('request.jwt.claim.sub', true), ''), \
         (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'))::uuid $$",
    "CREATE FUNCTION auth.jwt() RETURNS jsonb LANGUAGE sql STABLE AS $$ \
       SELECT coalesce(nullif(current_setting('request.jwt.claim', true), ''), \
         nullif(current_setting('request.jwt.claims', true), ''))::jsonb $$",
    "GRANT USAGE ON SCHEMA auth TO authenticated",
    "CREATE TABLE notes (owner uuid NOT NULL, body text NOT NULL)",
    "ALTER TABLE notes ENABLE ROW LEVEL SECURITY",
    "CREATE POLICY own_notes ON notes FOR SELECT TO authenticated \
       USING (auth.uid() = owner AND auth.jwt() -> 'app_metadata' ->> 'role' = 'viewer')",
    "GRANT SELECT ON notes TO authenticated",
];

/// What PostgREST does with a request's token: check it with the project's JWT secret and
/// audience, switch to its `role`, hand its claims to the policies. Returns the visible notes.
async fn notes_visible_to(database: &mut sqlx::PgConnection, token: &str) -> Vec<String> {
    let key = jsonwebtoken::DecodingKey::from_secret(JWT_SECRET.as_bytes());
    notes_visible_with(database, token, &key, jsonwebtoken::Algorithm::HS256).await
}

/// `notes_visible_to` with the key PostgREST would be given (the secret, or a public key
/// from the JWKS).
pub(crate) async fn notes_visible_with(
    database: &mut sqlx::PgConnection,
    token: &str,
    key: &jsonwebtoken::DecodingKey,
    algorithm: jsonwebtoken::Algorithm,
) -> Vec<String> {
    use sqlx::Row;
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.set_audience(&["authenticated"]);
    let claims = jsonwebtoken::decode::<Value>(token, key, &validation)
        .expect("the project's key and audience accept the token")
        .claims;
    let role = claims["role"].as_str().expect("a role claim");
    let mut transaction = sqlx::Connection::begin(&mut *database)
        .await
        .expect("begins");
    sqlx::query(&format!("SET LOCAL ROLE \"{role}\""))
        .execute(&mut *transaction)
        .await
        .expect("the token's role is a database role");
    sqlx::query("SELECT set_config('request.jwt.claims', $1, true)")
        .bind(claims.to_string())
        .execute(&mut *transaction)
        .await
        .expect("sets the claims");
    let rows = sqlx::query("SELECT body FROM notes ORDER BY body")
        .fetch_all(&mut *transaction)
        .await
        .expect("reads");
    rows.iter()
        .map(|row| row.get::<String, _>("body"))
        .collect()
}

/// The proof that a Supabase database accepts Velro's tokens unchanged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_with_auth_uid_accepts_velro_tokens() {
    let Some(url) = velro_pgtest::fresh_database().await else {
        return;
    };
    let mut database = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connects");
    for statement in SUPABASE_SCHEMA {
        sqlx::query(statement)
            .execute(&mut database)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    let app = TestApp::sqlite().await;
    let ada = sign_up(&app, &unique_email("supa-rls-ada")).await;
    let grace = sign_up(&app, &unique_email("supa-rls-grace")).await;
    for (session, body) in [(&ada, "ada's note"), (&grace, "grace's note")] {
        let owner: uuid::Uuid = session["user"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a uuid");
        sqlx::query("INSERT INTO notes (owner, body) VALUES ($1, $2)")
            .bind(owner)
            .bind(body)
            .execute(&mut database)
            .await
            .expect("inserts");
    }
    assert_eq!(
        notes_visible_to(&mut database, access(&ada)).await,
        ["ada's note"]
    );
    assert_eq!(
        notes_visible_to(&mut database, access(&grace)).await,
        ["grace's note"]
    );
    // A refreshed token still passes: the claims come from the same user and session.
    let refreshed = expect_json(refresh_grant(&app, refresh(&ada)).await, StatusCode::OK).await;
    assert_eq!(
        notes_visible_to(&mut database, access(&refreshed)).await,
        ["ada's note"]
    );
}
