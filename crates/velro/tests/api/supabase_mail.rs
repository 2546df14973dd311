//! The mail flows of /auth/v1 (`/recover`, `/verify`): links and codes read from the
//! development mailer's files, the redirect policy, and the attacker's cases (enumeration,
//! open redirects, spent and expired tokens).

use std::time::Duration;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_json, unique_email, TestApp, PASSWORD};

const VERSION: &str = "2024-01-01";

async fn post(app: &TestApp, path: &str, body: Value) -> Response {
    app.client
        .post(app.url(&format!("/auth/v1{path}")))
        .header("x-supabase-api-version", VERSION)
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

async fn sign_up(app: &TestApp, email: &str) -> Value {
    let body = json!({"email": email, "password": PASSWORD});
    expect_json(post(app, "/signup", body).await, StatusCode::OK).await
}

/// The newest message to `to` once more than `earlier` have arrived: its link and its code.
async fn mailed_link(app: &TestApp, to: &str, earlier: usize) -> (url::Url, String) {
    for _ in 0..500 {
        let messages = app.mail_to(to);
        if messages.len() > earlier {
            let body = messages.last().cloned().unwrap_or_default();
            let link = body
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with("http") && line.contains("/verify?"))
                .expect("the message carries a link");
            let code = body
                .split("code: ")
                .nth(1)
                .map(|rest| rest.chars().take(6).collect::<String>())
                .expect("the message carries a code");
            return (url::Url::parse(link).expect("a URL"), code);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no message for {to} arrived");
}

fn query(link: &url::Url, name: &str) -> String {
    link.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

/// Follows a mail link as a browser would, stopping at the redirect.
async fn open_link(app: &TestApp, path_and_query: &str) -> (StatusCode, url::Url) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = client
        .get(app.url(path_and_query))
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

fn fragment(location: &url::Url) -> Vec<(String, String)> {
    url::form_urlencoded::parse(location.fragment().unwrap_or_default().as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn fragment_value(location: &url::Url, key: &str) -> String {
    fragment(location)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

async fn get_user_status(app: &TestApp, access: &str) -> StatusCode {
    app.client
        .get(app.url("/auth/v1/user"))
        .bearer_auth(access)
        .send()
        .await
        .expect("request sent")
        .status()
}

async fn expect_otp_expired(response: Response, message: &str) {
    let status = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body, json!({"code": "otp_expired", "message": message}));
}

async fn recover_answers_unknown_and_known_addresses_alike(app: TestApp) {
    let known = unique_email("recover-known");
    sign_up(&app, &known).await;
    let unknown = unique_email("recover-unknown");
    let mut answers = Vec::new();
    for email in [&unknown, &known] {
        let response = post(&app, "/recover", json!({"email": email})).await;
        let status = response.status();
        let headers: Vec<_> = response
            .headers()
            .iter()
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
            .collect();
        let body = response.bytes().await.expect("body");
        answers.push((status, headers, body));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0].0, StatusCode::OK);
    assert_eq!(&answers[0].2[..], b"{}");
    mailed_link(&app, &known, 0).await;
    assert!(app.mail_to(&unknown).is_empty());

    let malformed = post(&app, "/recover", json!({"email": "not an address"})).await;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

async fn a_recovery_link_signs_in_once_and_redirects_with_the_session(app: TestApp) {
    let app = app
        .with_config(|config| {
            config.site_url = "https://app.example.com".into();
            config.uri_allow_list = vec!["https://*.partner.example/**".into()];
        })
        .await;
    let email = unique_email("recover-link");
    sign_up(&app, &email).await;
    let wanted = "https://docs.partner.example/reset?step=2";
    let path = format!("/recover?redirect_to={}", urlencode(wanted));
    let answer = post(&app, &path, json!({"email": email})).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let (link, _code) = mailed_link(&app, &email, 0).await;
    assert_eq!(link.path(), "/auth/v1/verify");
    assert_eq!(query(&link, "type"), "recovery");
    assert_eq!(query(&link, "redirect_to"), wanted);

    let path_and_query = format!("{}?{}", link.path(), link.query().unwrap_or_default());
    let (status, location) = open_link(&app, &path_and_query).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_str().split('#').next(), Some(wanted));
    let keys: Vec<String> = fragment(&location).into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "access_token",
            "expires_at",
            "expires_in",
            "refresh_token",
            "sb",
            "token_type",
            "type"
        ]
    );
    assert_eq!(fragment_value(&location, "type"), "recovery");
    assert_eq!(fragment_value(&location, "token_type"), "bearer");
    assert_eq!(fragment_value(&location, "expires_in"), "3600");
    let access = fragment_value(&location, "access_token");
    assert_eq!(get_user_status(&app, &access).await, StatusCode::OK);

    let (status, again) = open_link(&app, &path_and_query).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(again.as_str().split('#').next(), Some(wanted));
    assert_eq!(fragment_value(&again, "error"), "access_denied");
    assert_eq!(fragment_value(&again, "error_code"), "otp_expired");
    assert_eq!(
        fragment_value(&again, "error_description"),
        "Email link is invalid or has expired"
    );
    assert!(fragment_value(&again, "access_token").is_empty());
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn an_unlisted_redirect_falls_back_to_the_site_url(app: TestApp) {
    let app = app
        .with_config(|config| {
            config.site_url = "https://app.example.com/welcome".into();
            config.uri_allow_list = vec!["https://*.partner.example/**".into()];
        })
        .await;
    let email = unique_email("recover-redirect");
    sign_up(&app, &email).await;
    let hostile_targets = [
        "https://evil.example/steal",
        "https://docs.partner.example.evil.example/x",
        "https://evil.example/?https://docs.partner.example/x",
        "https://docs.partner.example\\@evil.example/",
        "javascript:alert(1)",
    ];
    for (earlier, hostile) in hostile_targets.into_iter().enumerate() {
        let path = format!("/recover?redirect_to={}", urlencode(hostile));
        let answer = post(&app, &path, json!({"email": email})).await;
        assert_eq!(answer.status(), StatusCode::OK);
        let (link, _) = mailed_link(&app, &email, earlier).await;
        // One recovery mail a minute (GoTrue's SMTP_MAX_FREQUENCY).
        app.advance(60);
        assert_eq!(
            query(&link, "redirect_to"),
            "https://app.example.com/welcome",
            "{hostile}"
        );
        // A hand-made link naming the hostile target goes to the site URL as well.
        let forged = format!(
            "/auth/v1/verify?type=recovery&token={}&redirect_to={}",
            query(&link, "token"),
            urlencode(hostile)
        );
        let (status, location) = open_link(&app, &forged).await;
        assert_eq!(status, StatusCode::SEE_OTHER);
        assert_eq!(
            location.as_str().split('#').next(),
            Some("https://app.example.com/welcome"),
            "{hostile}"
        );
    }
}

async fn a_mailed_code_or_token_hash_returns_a_session_once(app: TestApp) {
    let email = unique_email("recover-code");
    sign_up(&app, &email).await;
    post(&app, "/recover", json!({"email": email})).await;
    let (link, code) = mailed_link(&app, &email, 0).await;
    assert!(code.chars().all(|c| c.is_ascii_digit()), "{code}");

    let wrong = if code == "000000" { "000001" } else { "000000" };
    let refused = post(
        &app,
        "/verify",
        json!({"type": "recovery", "email": email, "token": wrong}),
    )
    .await;
    expect_otp_expired(refused, "Token has expired or is invalid").await;

    let body = json!({"type": "recovery", "email": email.to_uppercase(), "token": code});
    let session = expect_json(post(&app, "/verify", body.clone()).await, StatusCode::OK).await;
    assert_eq!(session["token_type"], "bearer");
    assert_eq!(session["user"]["email"], email);
    let access = session["access_token"].as_str().expect("access token");
    assert_eq!(get_user_status(&app, access).await, StatusCode::OK);
    let claims = crate::helpers::jwt_claims(access);
    assert_eq!(claims["amr"][0]["method"], "otp");

    // The code is spent, and so is the link mailed with it.
    expect_otp_expired(
        post(&app, "/verify", body).await,
        "Token has expired or is invalid",
    )
    .await;
    let by_hash = json!({"type": "recovery", "token_hash": query(&link, "token")});
    expect_otp_expired(
        post(&app, "/verify", by_hash).await,
        "Email link is invalid or has expired",
    )
    .await;

    // A fresh mail's link works by token_hash, and an email next to it is refused. (A minute
    // later: GoTrue's SMTP_MAX_FREQUENCY.)
    app.advance(60);
    post(&app, "/recover", json!({"email": email})).await;
    let (link, _) = mailed_link(&app, &email, 1).await;
    let token_hash = query(&link, "token");
    let both = json!({"type": "recovery", "token_hash": token_hash, "email": email});
    assert_eq!(
        post(&app, "/verify", both).await.status(),
        StatusCode::BAD_REQUEST
    );
    let by_hash = json!({"type": "recovery", "token_hash": token_hash});
    let session = expect_json(post(&app, "/verify", by_hash).await, StatusCode::OK).await;
    assert_eq!(session["user"]["email"], email);
}

async fn an_expired_link_or_code_is_refused(app: TestApp) {
    let email = unique_email("recover-expired");
    sign_up(&app, &email).await;
    post(&app, "/recover", json!({"email": email})).await;
    let (link, code) = mailed_link(&app, &email, 0).await;
    app.advance(i64::try_from(app.config.reset_token_ttl_secs).expect("small") + 1);
    let by_code = json!({"type": "recovery", "email": email, "token": code});
    expect_otp_expired(
        post(&app, "/verify", by_code).await,
        "Token has expired or is invalid",
    )
    .await;
    let by_hash = json!({"type": "magiclink", "token_hash": query(&link, "token")});
    expect_otp_expired(
        post(&app, "/verify", by_hash).await,
        "Email link is invalid or has expired",
    )
    .await;
    let unknown_type = json!({"type": "bogus", "token_hash": query(&link, "token")});
    assert_eq!(
        post(&app, "/verify", unknown_type).await.status(),
        StatusCode::BAD_REQUEST
    );
}

async fn recover_is_limited_per_address_known_or_not(app: TestApp) {
    let app = app
        .with_config(|config| config.rate_limits = velro::config::Switch::On)
        .await;
    let known = unique_email("recover-limit-known");
    sign_up(&app, &known).await;
    let unknown = unique_email("recover-limit-unknown");
    for email in [&known, &unknown] {
        let quota = app.config.rate_limit_password_reset_account.max;
        for _ in 0..quota {
            let answer = post(&app, "/recover", json!({"email": email})).await;
            assert_eq!(answer.status(), StatusCode::OK);
        }
        let refused = post(&app, "/recover", json!({"email": email})).await;
        let status = refused.status();
        let body: Value = refused.json().await.expect("JSON body");
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["code"], "over_request_rate_limit");
    }
}

async fn otp_mails_an_existing_account_a_magic_link_and_a_code(app: TestApp) {
    let email = unique_email("otp-known");
    sign_up(&app, &email).await;
    let answer = post(&app, "/otp", json!({"email": email, "create_user": false})).await;
    assert_eq!(
        expect_json(answer, StatusCode::OK).await,
        json!({}),
        "an empty object, never an empty body"
    );
    let (link, _) = mailed_link(&app, &email, 0).await;
    assert_eq!(query(&link, "type"), "magiclink");
    assert_eq!(query(&link, "redirect_to"), app.config.site_url);
    let path_and_query = format!("{}?{}", link.path(), link.query().unwrap_or_default());
    let (status, location) = open_link(&app, &path_and_query).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(fragment_value(&location, "type"), "magiclink");
    let access = fragment_value(&location, "access_token");
    assert_eq!(get_user_status(&app, &access).await, StatusCode::OK);

    app.advance(60);
    post(&app, "/otp", json!({"email": email})).await;
    let (_, code) = mailed_link(&app, &email, 1).await;
    let body = json!({"type": "magiclink", "email": email, "token": code});
    let session = expect_json(post(&app, "/verify", body).await, StatusCode::OK).await;
    assert_eq!(session["user"]["email"], email);
}

async fn otp_creates_the_account_only_when_allowed(app: TestApp) {
    let refused_email = unique_email("otp-no-create");
    let refused = post(
        &app,
        "/otp",
        json!({"email": refused_email, "create_user": false}),
    )
    .await;
    let status = refused.status();
    let body: Value = refused.json().await.expect("JSON body");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert_eq!(
        body,
        json!({"code": "otp_disabled", "message": "Signups not allowed for otp"})
    );
    assert!(app.mail_to(&refused_email).is_empty());

    let email = unique_email("otp-create");
    let body = json!({"email": email, "data": {"full_name": "Grace", "plan": "pro"}});
    assert_eq!(
        expect_json(post(&app, "/otp", body).await, StatusCode::OK).await,
        json!({})
    );
    let (_, code) = mailed_link(&app, &email, 0).await;
    let body = json!({"type": "email", "email": email, "token": code});
    let session = expect_json(post(&app, "/verify", body).await, StatusCode::OK).await;
    assert_eq!(session["user"]["email"], email);
    assert_eq!(session["user"]["user_metadata"]["full_name"], "Grace");
    // Any other key is kept too, as `/signup` keeps it, beside GoTrue's identity data.
    assert_eq!(session["user"]["user_metadata"]["plan"], "pro");
    assert_eq!(session["user"]["user_metadata"]["email"], email);
    assert!(session["user"]["email_confirmed_at"].is_string());

    let closed = app.with_config(|config| config.disable_signup = true).await;
    let refused = post(
        &closed,
        "/otp",
        json!({"email": unique_email("otp-closed")}),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

both_stores!(
    otp_mails_an_existing_account_a_magic_link_and_a_code,
    otp_creates_the_account_only_when_allowed,
    recover_answers_unknown_and_known_addresses_alike,
    a_recovery_link_signs_in_once_and_redirects_with_the_session,
    an_unlisted_redirect_falls_back_to_the_site_url,
    a_mailed_code_or_token_hash_returns_a_session_once,
    an_expired_link_or_code_is_refused,
    recover_is_limited_per_address_known_or_not,
);
