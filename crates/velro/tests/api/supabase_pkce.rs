//! GoTrue's PKCE flow on /auth/v1: mail flows started with a `code_challenge` mail `pkce_`
//! links, which land with `?code=`, and `POST /token?grant_type=pkce` exchanges the code and its
//! verifier, once, within the flow-state lifetime (the test clock, never a sleep).

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_json, jwt_claims, unique_email, TestApp, NEW_PASSWORD, PASSWORD};
use crate::supabase_confirm::{mailed, query};

const VERSION: &str = "2024-01-01";

/// A verifier and its S256 challenge, `BASE64URL(SHA256(verifier))` (checked by Python's hashlib).
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Value,
) -> Response {
    let mut request = app
        .client
        .request(method, app.url(&format!("/auth/v1{path}")))
        .header("x-supabase-api-version", VERSION)
        .json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

async fn post(app: &TestApp, path: &str, body: Value) -> Response {
    call(app, Method::POST, path, None, body).await
}

async fn expect_error(response: Response, status: StatusCode, code: &str, message: &str) {
    let got = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(got, status, "{body}");
    assert_eq!(body, json!({"code": code, "message": message}));
}

async fn site_app(app: &TestApp, autoconfirm: bool) -> TestApp {
    app.with_config(|config| {
        config.mailer_autoconfirm = autoconfirm;
        config.site_url = "https://app.example.com".into();
        config.uri_allow_list = vec!["https://app.example.com/**".into()];
    })
    .await
}

fn s256() -> Value {
    json!({"code_challenge": CHALLENGE, "code_challenge_method": "s256"})
}

fn with(mut body: Value, extra: Value) -> Value {
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    body
}

fn fragment_value(location: &url::Url, key: &str) -> String {
    url::form_urlencoded::parse(location.fragment().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Follows a mail link as a browser would, stopping at the redirect.
async fn open_link(app: &TestApp, link: &url::Url) -> (StatusCode, url::Url) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let path = format!("{}?{}", link.path(), link.query().unwrap_or_default());
    let response = client
        .get(app.url(&path))
        .send()
        .await
        .expect("request sent");
    let location = response.headers()["location"]
        .to_str()
        .expect("an ASCII location")
        .to_string();
    (
        response.status(),
        url::Url::parse(&location).expect("an absolute location"),
    )
}

/// Follows a PKCE link and checks GoTrue's landing: 303, the code in the query, no fragment.
async fn code_from(app: &TestApp, link: &url::Url, landing: &str) -> String {
    assert!(
        query(link, "token").starts_with("pkce_"),
        "a PKCE flow's link: {link}"
    );
    let (status, location) = open_link(app, link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.fragment(), None, "{location}");
    let code = query(&location, "code");
    assert!(!code.is_empty(), "{location}");
    // The landing's own query kept, the code added, keys sorted (Go's `Values.Encode`).
    let (base, own) = landing.split_once('?').unwrap_or((landing, ""));
    let mut expected: Vec<(String, String)> = url::form_urlencoded::parse(own.as_bytes())
        .into_owned()
        .chain([("code".to_string(), code.clone())])
        .collect();
    expected.sort();
    let mut wanted = url::form_urlencoded::Serializer::new(String::new());
    wanted.extend_pairs(&expected);
    let got = url::Url::parse(&format!("{base}?{}", wanted.finish())).expect("a URL");
    assert_eq!(location, got);
    code
}

async fn exchange(app: &TestApp, auth_code: &str, verifier: &str) -> Response {
    post(
        app,
        "/token?grant_type=pkce",
        json!({"auth_code": auth_code, "code_verifier": verifier}),
    )
    .await
}

fn amr_method(session: &Value) -> String {
    let access = session["access_token"].as_str().expect("an access token");
    jwt_claims(access)["amr"][0]["method"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

async fn expect_spent(app: &TestApp, code: &str) {
    expect_error(
        exchange(app, code, VERIFIER).await,
        StatusCode::NOT_FOUND,
        "flow_state_not_found",
        "invalid flow state, no valid flow state found",
    )
    .await;
}

async fn a_pkce_signup_confirmation_lands_with_a_code_one_verifier_exchanges_once(app: TestApp) {
    let app = site_app(&app, false).await;
    let email = unique_email("pkce-signup");
    let landing = "https://app.example.com/welcome?from=mail";
    let path = format!(
        "/signup?redirect_to={}",
        url::form_urlencoded::byte_serialize(landing.as_bytes()).collect::<String>()
    );
    let user = expect_json(
        post(
            &app,
            &path,
            with(json!({"email": email, "password": PASSWORD}), s256()),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(user.get("access_token").is_none(), "{user}");
    let (link, _) = mailed(&app, &email, 0).await;
    assert_eq!(query(&link, "type"), "signup");
    let code = code_from(&app, &link, landing).await;

    expect_error(
        exchange(&app, &code, "a-verifier-that-made-no-challenge-0123456789").await,
        StatusCode::BAD_REQUEST,
        "bad_code_verifier",
        "code challenge does not match previously saved code verifier",
    )
    .await;
    // A wrong verifier leaves the code as it was (GoTrue's behaviour).
    let session = expect_json(exchange(&app, &code, VERIFIER).await, StatusCode::OK).await;
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["user"]["email"], email.to_lowercase());
    assert!(
        session["user"]["email_confirmed_at"].is_string(),
        "{session}"
    );
    assert_eq!(amr_method(&session), "email/signup");
    let access = session["access_token"].as_str().expect("an access token");
    let me = call(&app, Method::GET, "/user", Some(access), json!({})).await;
    assert_eq!(me.status(), StatusCode::OK);
    let refreshed = post(
        &app,
        "/token?grant_type=refresh_token",
        json!({"refresh_token": session["refresh_token"]}),
    )
    .await;
    assert_eq!(refreshed.status(), StatusCode::OK);
    expect_spent(&app, &code).await;

    // Confirmed: the password signs in now.
    let signed_in = post(
        &app,
        "/token?grant_type=password",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    assert_eq!(signed_in.status(), StatusCode::OK);
}

async fn a_pkce_recovery_signs_in_and_lets_the_password_change(app: TestApp) {
    let app = site_app(&app, true).await;
    let email = unique_email("pkce-recovery");
    expect_json(
        post(
            &app,
            "/signup",
            json!({"email": email, "password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let answer = post(&app, "/recover", with(json!({"email": email}), s256())).await;
    assert_eq!(expect_json(answer, StatusCode::OK).await, json!({}));
    let (link, _) = mailed(&app, &email, 0).await;
    assert_eq!(query(&link, "type"), "recovery");
    // No redirect_to: the site URL.
    let code = code_from(&app, &link, "https://app.example.com").await;
    let session = expect_json(exchange(&app, &code, VERIFIER).await, StatusCode::OK).await;
    assert_eq!(amr_method(&session), "recovery");
    let access = session["access_token"].as_str().expect("an access token");
    let changed = call(
        &app,
        Method::PUT,
        "/user",
        Some(access),
        json!({"password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(changed.status(), StatusCode::OK);
    let signed_in = post(
        &app,
        "/token?grant_type=password",
        json!({"email": email, "password": NEW_PASSWORD}),
    )
    .await;
    assert_eq!(signed_in.status(), StatusCode::OK);
    expect_spent(&app, &code).await;
}

async fn a_pkce_magic_link_with_the_plain_method_takes_the_verifier_itself(app: TestApp) {
    let app = site_app(&app, true).await;
    let email = unique_email("pkce-magic");
    let plain = json!({"code_challenge": VERIFIER, "code_challenge_method": "plain"});
    // A new address: the account is made and the magic link mailed.
    let answer = post(&app, "/otp", with(json!({"email": email}), plain.clone())).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let (link, code_in_mail) = mailed(&app, &email, 0).await;
    assert_eq!(query(&link, "type"), "magiclink");
    let code = code_from(&app, &link, "https://app.example.com").await;
    // The S256 challenge is no verifier of a plain flow.
    expect_error(
        exchange(&app, &code, CHALLENGE).await,
        StatusCode::BAD_REQUEST,
        "bad_code_verifier",
        "code challenge does not match previously saved code verifier",
    )
    .await;
    let session = expect_json(exchange(&app, &code, VERIFIER).await, StatusCode::OK).await;
    assert_eq!(amr_method(&session), "magiclink");
    assert_eq!(session["user"]["email"], email.to_lowercase());
    // The link spent the mail's code with it.
    expect_error(
        post(
            &app,
            "/verify",
            json!({"type": "magiclink", "email": email, "token": code_in_mail}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Token has expired or is invalid",
    )
    .await;
}

async fn an_auth_code_expires_five_minutes_after_its_link_was_followed(app: TestApp) {
    let app = site_app(&app, true).await;
    let email = unique_email("pkce-expiry");
    post(
        &app,
        "/signup",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    post(&app, "/recover", with(json!({"email": email}), s256())).await;
    let (first, _) = mailed(&app, &email, 0).await;
    // The flow's start does not count: the link is followed ten minutes later, within its life.
    app.advance(600);
    let code = code_from(&app, &first, "https://app.example.com").await;
    app.advance(300);
    let session = expect_json(exchange(&app, &code, VERIFIER).await, StatusCode::OK).await;
    assert_eq!(amr_method(&session), "recovery");

    // A minute later (GoTrue's mail frequency), a second flow, left past the lifetime.
    app.advance(60);
    post(&app, "/recover", with(json!({"email": email}), s256())).await;
    let (second, _) = mailed(&app, &email, 1).await;
    let code = code_from(&app, &second, "https://app.example.com").await;
    app.advance(301);
    expect_error(
        exchange(&app, &code, VERIFIER).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "flow_state_expired",
        "invalid flow state, flow state has expired",
    )
    .await;
}

async fn pkce_parameters_and_grant_bodies_are_checked_as_gotrue_checks_them(app: TestApp) {
    let app = site_app(&app, false).await;
    let email = unique_email("pkce-params");
    let cases = [
        (
            json!({"code_challenge": CHALLENGE}),
            "PKCE flow requires code_challenge_method and code_challenge",
        ),
        (
            json!({"code_challenge_method": "s256"}),
            "PKCE flow requires code_challenge_method and code_challenge",
        ),
        (
            json!({"code_challenge": "too-short", "code_challenge_method": "s256"}),
            "code challenge has to be between 43 and 128 characters",
        ),
        (
            json!({"code_challenge": format!("{CHALLENGE}+/"), "code_challenge_method": "s256"}),
            "code challenge can only contain alphanumeric characters, hyphens, periods, underscores and tildes",
        ),
        (
            json!({"code_challenge": CHALLENGE, "code_challenge_method": "md5"}),
            "unsupported code_challenge method \"md5\"",
        ),
    ];
    for (pkce, message) in &cases {
        for (path, body) in [
            ("/signup", json!({"email": email, "password": PASSWORD})),
            ("/recover", json!({"email": email})),
            ("/otp", json!({"email": email})),
            ("/resend", json!({"type": "signup", "email": email})),
        ] {
            expect_error(
                post(&app, path, with(body, pkce.clone())).await,
                StatusCode::BAD_REQUEST,
                "validation_failed",
                message,
            )
            .await;
        }
    }
    assert!(app.mail_to(&email).is_empty());
    for body in [
        json!({"auth_code": "x"}),
        json!({"code_verifier": VERIFIER}),
        json!({"auth_code": "", "code_verifier": VERIFIER}),
    ] {
        expect_error(
            post(&app, "/token?grant_type=pkce", body).await,
            StatusCode::BAD_REQUEST,
            "validation_failed",
            "invalid request: both auth code and code verifier should be non-empty",
        )
        .await;
    }
    expect_spent(&app, "5b7fbd43-6f5e-4bb4-9c8e-6bb8b8c4c7a1").await;
}

async fn a_pkce_link_works_once_and_post_verify_answers_its_token_with_a_session(app: TestApp) {
    let app = site_app(&app, false).await;
    let email = unique_email("pkce-verify");
    post(
        &app,
        "/signup",
        with(json!({"email": email, "password": PASSWORD}), s256()),
    )
    .await;
    let (link, _) = mailed(&app, &email, 0).await;
    let token = query(&link, "token");
    // The prefix is part of the token: without it the link is no link.
    let stripped = json!({"type": "signup", "token_hash": token.trim_start_matches("pkce_")});
    expect_error(
        post(&app, "/verify", stripped).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Email link is invalid or has expired",
    )
    .await;
    // POST /verify checks no flow state (GoTrue's verifyPost): a session at once.
    let session = expect_json(
        post(
            &app,
            "/verify",
            json!({"type": "signup", "token_hash": token}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(session["access_token"].is_string(), "{session}");
    assert!(
        session["user"]["email_confirmed_at"].is_string(),
        "{session}"
    );
    // Spent: the link now lands with the error in the query too, as a PKCE client reads it.
    let (status, location) = open_link(&app, &link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(query(&location, "error_code"), "otp_expired");
    assert_eq!(query(&location, "error"), "access_denied");
    assert_eq!(fragment_value(&location, "error_code"), "otp_expired");
    assert_eq!(query(&location, "code"), "");
}

async fn a_pkce_email_change_lands_with_a_code_for_the_moved_account(app: TestApp) {
    let app = site_app(&app, true).await;
    let email = unique_email("pkce-change-old");
    let new_email = unique_email("pkce-change-new");
    let session = expect_json(
        post(
            &app,
            "/signup",
            json!({"email": email, "password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let access = session["access_token"].as_str().expect("an access token");
    let user = expect_json(
        call(
            &app,
            Method::PUT,
            "/user",
            Some(access),
            with(json!({"email": new_email}), s256()),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["new_email"], new_email.to_lowercase());
    // The secure change: the first half lands with GoTrue's message (in the query too, for a
    // PKCE client) and no code; the second with the code.
    let (to_new, _) = mailed(&app, &new_email, 0).await;
    assert_eq!(query(&to_new, "type"), "email_change");
    assert!(query(&to_new, "token").starts_with("pkce_"), "{to_new}");
    let (status, landing) = open_link(&app, &to_new).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(query(&landing, "code").is_empty(), "{landing}");
    assert!(
        query(&landing, "message").starts_with("Confirmation link accepted"),
        "{landing}"
    );
    let (to_current, _) = mailed(&app, &email, 0).await;
    let code = code_from(&app, &to_current, "https://app.example.com").await;
    let session = expect_json(exchange(&app, &code, VERIFIER).await, StatusCode::OK).await;
    assert_eq!(session["user"]["email"], new_email.to_lowercase());
    assert_eq!(amr_method(&session), "email_change");
}

both_stores!(
    a_pkce_signup_confirmation_lands_with_a_code_one_verifier_exchanges_once,
    a_pkce_recovery_signs_in_and_lets_the_password_change,
    a_pkce_magic_link_with_the_plain_method_takes_the_verifier_itself,
    an_auth_code_expires_five_minutes_after_its_link_was_followed,
    pkce_parameters_and_grant_bodies_are_checked_as_gotrue_checks_them,
    a_pkce_link_works_once_and_post_verify_answers_its_token_with_a_session,
    a_pkce_email_change_lands_with_a_code_for_the_moved_account,
);
