//! GoTrue's confirmation flows on /auth/v1: sign-up without auto-confirm, `/resend`, the
//! email change of `PUT /user`, `/invite` and `/admin/generate_link`, with the links and codes
//! read from the development mailer's files, and the attacker's cases (enumeration, spent and
//! expired tokens, open redirects).

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{
    expect_json, sign_jwt, unique_email, TestApp, JWT_SECRET, NEW_PASSWORD, PASSWORD,
};

const VERSION: &str = "2024-01-01";

pub(crate) async fn call(
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

pub(crate) async fn post(app: &TestApp, path: &str, body: Value) -> Response {
    call(app, Method::POST, path, None, body).await
}

pub(crate) fn service_role() -> String {
    sign_jwt(
        &json!({"role": "service_role"}),
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS256,
    )
}

pub(crate) async fn expect_error(
    response: Response,
    status: StatusCode,
    code: &str,
    message: &str,
) {
    let got = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(got, status, "{body}");
    assert_eq!(body, json!({"code": code, "message": message}));
}

async fn unconfirmed_app(app: &TestApp) -> TestApp {
    app.with_config(|config| {
        config.mailer_autoconfirm = false;
        config.site_url = "https://app.example.com".into();
        config.uri_allow_list = vec!["https://*.partner.example/**".into()];
    })
    .await
}

/// The newest message to `to` once more than `earlier` have arrived: its link and its code.
pub(crate) async fn mailed(app: &TestApp, to: &str, earlier: usize) -> (url::Url, String) {
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

pub(crate) fn query(link: &url::Url, name: &str) -> String {
    link.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

pub(crate) fn fragment_value(location: &url::Url, key: &str) -> String {
    url::form_urlencoded::parse(location.fragment().unwrap_or_default().as_bytes())
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// Follows a mail link as a browser would, stopping at the redirect.
pub(crate) async fn open_link(app: &TestApp, link: &url::Url) -> (StatusCode, url::Url) {
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

pub(crate) async fn password_grant(app: &TestApp, email: &str, password: &str) -> Response {
    post(
        app,
        "/token?grant_type=password",
        json!({"email": email, "password": password}),
    )
    .await
}

async fn signup_without_autoconfirm_mails_a_confirmation_and_blocks_sign_in_until_confirmed(
    app: TestApp,
) {
    let app = unconfirmed_app(&app).await;
    let settings = expect_json(
        call(&app, Method::GET, "/settings", None, json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(settings["mailer_autoconfirm"], false);

    let email = unique_email("confirm-signup");
    let body = json!({"email": email, "password": PASSWORD, "data": {"full_name": "Ada"}});
    let user = expect_json(post(&app, "/signup", body).await, StatusCode::OK).await;
    assert!(user.get("access_token").is_none(), "{user}");
    assert_eq!(user["email"], email);
    assert!(user["id"].is_string());
    assert!(user["confirmation_sent_at"].is_string(), "{user}");
    assert!(user.get("email_confirmed_at").is_none(), "{user}");
    assert_eq!(user["identities"].as_array().map(Vec::len), Some(1));
    assert_eq!(user["user_metadata"]["full_name"], "Ada");

    let (link, code) = mailed(&app, &email, 0).await;
    assert_eq!(link.path(), "/auth/v1/verify");
    assert_eq!(query(&link, "type"), "signup");
    assert_eq!(query(&link, "redirect_to"), "https://app.example.com");

    expect_error(
        password_grant(&app, &email, PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "email_not_confirmed",
        "Email not confirmed",
    )
    .await;
    // A wrong password says nothing about confirmation.
    expect_error(
        password_grant(&app, &email, NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_credentials",
        "Invalid login credentials",
    )
    .await;

    let verify = json!({"type": "signup", "email": email, "token": code});
    let session = expect_json(post(&app, "/verify", verify.clone()).await, StatusCode::OK).await;
    assert!(session["access_token"].is_string());
    assert!(
        session["user"]["email_confirmed_at"].is_string(),
        "{session}"
    );
    assert_eq!(session["user"]["id"], user["id"]);
    expect_error(
        post(&app, "/verify", verify).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Token has expired or is invalid",
    )
    .await;
    // The link mailed with the code is spent with it.
    let by_hash = json!({"type": "signup", "token_hash": query(&link, "token")});
    expect_error(
        post(&app, "/verify", by_hash).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Email link is invalid or has expired",
    )
    .await;
    expect_json(password_grant(&app, &email, PASSWORD).await, StatusCode::OK).await;
    // The v1 API shows the confirmation.
    let v1 = app.login(&email, PASSWORD).await;
    assert_eq!(app.me_json(&v1.access).await["email_confirmed"], true);
}

async fn a_signup_link_confirms_once_and_never_redirects_off_the_allow_list(app: TestApp) {
    let app = unconfirmed_app(&app).await;
    let email = unique_email("confirm-link");
    let wanted = "https://docs.partner.example/welcome";
    let path = format!(
        "/signup?redirect_to={}",
        url::form_urlencoded::byte_serialize(wanted.as_bytes()).collect::<String>()
    );
    post(&app, &path, json!({"email": email, "password": PASSWORD})).await;
    let (link, _) = mailed(&app, &email, 0).await;
    assert_eq!(query(&link, "redirect_to"), wanted);
    let (status, location) = open_link(&app, &link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.as_str().split('#').next(), Some(wanted));
    assert_eq!(fragment_value(&location, "type"), "signup");
    assert!(!fragment_value(&location, "access_token").is_empty());

    let (_, again) = open_link(&app, &link).await;
    assert_eq!(fragment_value(&again, "error_code"), "otp_expired");
    assert!(fragment_value(&again, "access_token").is_empty());

    // An unlisted target in the link itself lands on the site URL.
    let other = unique_email("confirm-open-redirect");
    post(
        &app,
        "/signup?redirect_to=https%3A%2F%2Fevil.example%2F",
        json!({"email": other, "password": PASSWORD}),
    )
    .await;
    let (mut link, _) = mailed(&app, &other, 0).await;
    assert_eq!(query(&link, "redirect_to"), "https://app.example.com");
    let token = query(&link, "token");
    link.query_pairs_mut()
        .clear()
        .append_pair("token", &token)
        .append_pair("type", "signup")
        .append_pair("redirect_to", "https://evil.example/");
    let (_, location) = open_link(&app, &link).await;
    assert_eq!(location.host_str(), Some("app.example.com"));
    assert!(!fragment_value(&location, "access_token").is_empty());
}

async fn a_repeated_signup_hides_confirmed_addresses_and_resends_to_unconfirmed_ones(app: TestApp) {
    let app = unconfirmed_app(&app).await;
    let email = unique_email("confirm-repeat");
    let body = json!({"email": email, "password": PASSWORD});
    let first = expect_json(post(&app, "/signup", body.clone()).await, StatusCode::OK).await;
    // Within GoTrue's minute: 429.
    expect_error(
        post(&app, "/signup", body.clone()).await,
        StatusCode::TOO_MANY_REQUESTS,
        "over_email_send_rate_limit",
        "For security purposes, you can only request this after 60 seconds.",
    )
    .await;
    app.advance(61);
    let again = expect_json(post(&app, "/signup", body.clone()).await, StatusCode::OK).await;
    assert_eq!(again["id"], first["id"]);
    let (_, code) = mailed(&app, &email, 1).await;
    assert_eq!(app.mail_to(&email).len(), 2);
    let verify = json!({"type": "email", "email": email, "token": code});
    expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;

    // Confirmed: a stand-in with no identities and another id, and no mail.
    let hidden = expect_json(post(&app, "/signup", body).await, StatusCode::OK).await;
    assert_ne!(hidden["id"], first["id"]);
    assert_eq!(hidden["identities"], json!([]));
    assert_eq!(hidden["email"], email);
    assert!(hidden.get("access_token").is_none());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.mail_to(&email).len(), 2);

    // With auto-confirm on, the same address is GoTrue's 422.
    let confirming = app.with_config(|_| {}).await;
    let email = unique_email("confirm-repeat-auto");
    let body = json!({"email": email, "password": PASSWORD});
    expect_json(
        post(&confirming, "/signup", body.clone()).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        post(&confirming, "/signup", body).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "user_already_exists",
        "User already registered",
    )
    .await;
}

async fn resend_answers_every_address_alike_and_keeps_gotrues_minute(app: TestApp) {
    let app = unconfirmed_app(&app).await;
    let pending = unique_email("resend-pending");
    post(
        &app,
        "/signup",
        json!({"email": pending, "password": PASSWORD}),
    )
    .await;
    let (_, first_code) = mailed(&app, &pending, 0).await;
    app.advance(61);

    let unknown = unique_email("resend-unknown");
    for email in [&unknown, &pending] {
        let answer = post(&app, "/resend", json!({"type": "signup", "email": email})).await;
        assert_eq!(expect_json(answer, StatusCode::OK).await, json!({}));
    }
    assert!(app.mail_to(&unknown).is_empty());
    let (_, second_code) = mailed(&app, &pending, 1).await;
    expect_error(
        post(&app, "/resend", json!({"type": "signup", "email": pending})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "over_email_send_rate_limit",
        "For security purposes, you can only request this after 60 seconds.",
    )
    .await;

    // The resent mail replaces the first one.
    let old = json!({"type": "signup", "email": pending, "token": first_code});
    expect_error(
        post(&app, "/verify", old).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Token has expired or is invalid",
    )
    .await;
    let new = json!({"type": "signup", "email": pending, "token": second_code});
    expect_json(post(&app, "/verify", new).await, StatusCode::OK).await;

    // Nothing pending: `{}` and no mail. (Within the per-address limit of five an hour.)
    for kind in ["email_change", "phone_change"] {
        let answer = post(&app, "/resend", json!({"type": kind, "email": pending})).await;
        assert_eq!(expect_json(answer, StatusCode::OK).await, json!({}));
    }
    assert_eq!(app.mail_to(&pending).len(), 2);

    expect_error(
        post(
            &app,
            "/resend",
            json!({"type": "recovery", "email": pending}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "Missing one of these types: signup, email_change, sms, phone_change",
    )
    .await;
    expect_error(
        post(
            &app,
            "/resend",
            json!({"type": "sms", "phone": "+15555550100"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "phone_provider_disabled",
        "Phone logins are disabled",
    )
    .await;
    expect_error(
        post(&app, "/resend", json!({"type": "signup"})).await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "Type provided requires an email address",
    )
    .await;
}

async fn an_expired_confirmation_is_refused(app: TestApp) {
    let app = unconfirmed_app(&app).await;
    let email = unique_email("confirm-expired");
    post(
        &app,
        "/signup",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    let (link, code) = mailed(&app, &email, 0).await;
    app.advance(i64::try_from(app.config.reset_token_ttl_secs).expect("small") + 1);
    expect_error(
        post(
            &app,
            "/verify",
            json!({"type": "signup", "email": email, "token": code}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Token has expired or is invalid",
    )
    .await;
    let (_, location) = open_link(&app, &link).await;
    assert_eq!(fragment_value(&location, "error_code"), "otp_expired");
    // A confirmation token is no recovery token, and the other way round.
    let wrong_type = json!({"type": "recovery", "token_hash": query(&link, "token")});
    expect_error(
        post(&app, "/verify", wrong_type).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Email link is invalid or has expired",
    )
    .await;
}

async fn an_email_change_waits_for_the_new_address_and_ends_stale_caches(app: TestApp) {
    // One confirmation (GoTrue's MAILER_SECURE_EMAIL_CHANGE_ENABLED=false); the secure change
    // is supabase_email_change's.
    let app = app
        .with_config(|config| config.mailer_secure_email_change_enabled = false)
        .await;
    let old = unique_email("change-old");
    let new = unique_email("change-new");
    let session = expect_json(
        post(&app, "/signup", json!({"email": old, "password": PASSWORD})).await,
        StatusCode::OK,
    )
    .await;
    let access = session["access_token"].as_str().expect("token").to_string();
    let v1 = app.login(&old, PASSWORD).await;
    assert_eq!(app.me_json(&v1.access).await["email"], old);

    let taken = unique_email("change-taken");
    post(
        &app,
        "/signup",
        json!({"email": taken, "password": PASSWORD}),
    )
    .await;
    expect_error(
        call(
            &app,
            Method::PUT,
            "/user",
            Some(&access),
            json!({"email": taken}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "email_exists",
        "A user with this email address has already been registered",
    )
    .await;

    let user = expect_json(
        call(
            &app,
            Method::PUT,
            "/user",
            Some(&access),
            json!({"email": new}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["email"], old);
    assert_eq!(user["new_email"], new);
    assert!(user["email_change_sent_at"].is_string(), "{user}");
    let (link, code) = mailed(&app, &new, 0).await;
    assert_eq!(query(&link, "type"), "email_change");
    assert!(app.mail_to(&old).is_empty());

    // Within the minute, asking again is GoTrue's 429.
    expect_error(
        call(
            &app,
            Method::PUT,
            "/user",
            Some(&access),
            json!({"email": new}),
        )
        .await,
        StatusCode::TOO_MANY_REQUESTS,
        "over_email_send_rate_limit",
        "For security purposes, you can only request this after 60 seconds.",
    )
    .await;

    // A code checked against the old address is not this one.
    let wrong = json!({"type": "email_change", "email": old, "token": code});
    expect_error(
        post(&app, "/verify", wrong).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Token has expired or is invalid",
    )
    .await;
    let verify = json!({"type": "email_change", "email": new, "token": code});
    let changed = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    assert_eq!(changed["user"]["email"], new);
    assert!(changed["user"].get("new_email").is_none(), "{changed}");

    // Both surfaces see the new address at once (cached sessions were dropped).
    assert_eq!(app.me_json(&v1.access).await["email"], new);
    let current = expect_json(
        call(&app, Method::GET, "/user", Some(&access), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(current["email"], new);
    expect_json(password_grant(&app, &new, PASSWORD).await, StatusCode::OK).await;
    expect_error(
        password_grant(&app, &old, PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_credentials",
        "Invalid login credentials",
    )
    .await;
    let (_, location) = open_link(&app, &link).await;
    assert_eq!(fragment_value(&location, "error_code"), "otp_expired");
}

async fn an_invite_makes_an_unconfirmed_user_whose_link_signs_in(app: TestApp) {
    let app = app
        .with_config(|config| config.site_url = "https://app.example.com".into())
        .await;
    let admin = service_role();
    let email = unique_email("invite");
    let refused = post(&app, "/invite", json!({"email": email})).await;
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let user = expect_json(
        call(
            &app,
            Method::POST,
            "/invite",
            Some(&admin),
            json!({"email": email, "data": {"full_name": "Grace"}}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["email"], email);
    assert!(user["invited_at"].is_string(), "{user}");
    assert!(user.get("email_confirmed_at").is_none(), "{user}");
    let (link, _) = mailed(&app, &email, 0).await;
    assert_eq!(query(&link, "type"), "invite");
    assert!(app.mail_to(&email)[0].contains("invited"));

    let (status, location) = open_link(&app, &link).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location.host_str(), Some("app.example.com"));
    assert_eq!(fragment_value(&location, "type"), "invite");
    let access = fragment_value(&location, "access_token");
    let me = expect_json(
        call(&app, Method::GET, "/user", Some(&access), json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert!(me["email_confirmed_at"].is_string(), "{me}");
    // The invited user sets a password and signs in with it.
    expect_json(
        call(
            &app,
            Method::PUT,
            "/user",
            Some(&access),
            json!({"password": NEW_PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        password_grant(&app, &email, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;

    expect_error(
        call(
            &app,
            Method::POST,
            "/invite",
            Some(&admin),
            json!({"email": email}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "email_exists",
        "A user with this email address has already been registered",
    )
    .await;
}

async fn generate_link_answers_each_type_and_mails_nothing(app: TestApp) {
    let app = app
        .with_config(|config| config.site_url = "https://app.example.com".into())
        .await;
    let admin = service_role();
    let generate = |body: Value| {
        let app = &app;
        let admin = admin.clone();
        async move {
            call(
                app,
                Method::POST,
                "/admin/generate_link",
                Some(&admin),
                body,
            )
            .await
        }
    };

    let email = unique_email("link-signup");
    let link = expect_json(
        generate(
            json!({"type": "signup", "email": email, "password": PASSWORD,
            "redirect_to": "https://evil.example/"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["verification_type"], "signup");
    assert_eq!(link["redirect_to"], "https://app.example.com");
    assert_eq!(link["email"], email);
    assert!(link["id"].is_string());
    assert_eq!(link["email_otp"].as_str().map(str::len), Some(6));
    let action = url::Url::parse(link["action_link"].as_str().expect("link")).expect("URL");
    assert_eq!(query(&action, "token"), link["hashed_token"]);
    assert_eq!(query(&action, "type"), "signup");
    expect_error(
        password_grant(&app, &email, PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "email_not_confirmed",
        "Email not confirmed",
    )
    .await;
    let verify = json!({"type": "signup", "token_hash": link["hashed_token"]});
    expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    expect_json(password_grant(&app, &email, PASSWORD).await, StatusCode::OK).await;

    expect_error(
        generate(json!({"type": "signup", "email": email, "password": PASSWORD})).await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "email_exists",
        "A user with this email address has already been registered",
    )
    .await;
    expect_error(
        generate(json!({"type": "recovery", "email": unique_email("link-nobody")})).await,
        StatusCode::NOT_FOUND,
        "user_not_found",
        "User with this email not found",
    )
    .await;

    for (kind, verify_as) in [("magiclink", "magiclink"), ("recovery", "recovery")] {
        let link = expect_json(
            generate(json!({"type": kind, "email": email})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(link["verification_type"], verify_as);
        let verify = json!({"type": verify_as, "email": email, "token": link["email_otp"]});
        expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    }

    let invited = unique_email("link-invite");
    let link = expect_json(
        generate(json!({"type": "invite", "email": invited})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["verification_type"], "invite");
    assert!(link["invited_at"].is_string(), "{link}");
    let verify = json!({"type": "invite", "token_hash": link["hashed_token"]});
    expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;

    let unknown = unique_email("link-magic-new");
    let link = expect_json(
        generate(json!({"type": "magiclink", "email": unknown})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(link["verification_type"], "signup");

    let moved = unique_email("link-moved");
    for kind in ["email_change_current", "email_change_new"] {
        let link = expect_json(
            generate(json!({"type": kind, "email": email, "new_email": moved})).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(link["verification_type"], kind);
        let action = url::Url::parse(link["action_link"].as_str().expect("link")).expect("URL");
        assert_eq!(query(&action, "type"), "email_change");
        assert_eq!(link["new_email"], moved);
        assert_eq!(link["email"], email);
    }
    // Secure email change (the default): the change waits for both halves' links.
    let new_half = expect_json(
        generate(json!({"type": "email_change_new", "email": email, "new_email": moved})).await,
        StatusCode::OK,
    )
    .await;
    let current_half = expect_json(
        generate(json!({"type": "email_change_current", "email": email, "new_email": moved})).await,
        StatusCode::OK,
    )
    .await;
    let verify = json!({"type": "email_change", "email": moved, "token": new_half["email_otp"]});
    let half = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    assert!(half.get("access_token").is_none(), "{half}");
    let verify =
        json!({"type": "email_change", "email": email, "token": current_half["email_otp"]});
    let session = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    assert_eq!(session["user"]["email"], moved);

    for address in [&email, &invited, &unknown, &moved] {
        assert!(app.mail_to(address).is_empty(), "mail to {address}");
    }
    let forbidden = call(
        &app,
        Method::POST,
        "/admin/generate_link",
        None,
        json!({"type": "signup", "email": unique_email("link-anon")}),
    )
    .await;
    assert_eq!(forbidden.status(), StatusCode::UNAUTHORIZED);
}

async fn operator_templates_replace_every_confirmation_mail(app: TestApp) {
    let dir = tempfile::tempdir().expect("a folder");
    for (name, subject) in [
        ("confirmation.txt", "Bienvenue"),
        ("invite.txt", "Invitation"),
        ("email_change.txt", "Nouvelle adresse"),
        ("email_change_current.txt", "Ancienne adresse"),
    ] {
        let text = format!(
            "Subject: {subject} {{{{ .Email }}}}\n\nLien :\n{{{{ .ConfirmationURL }}}}\nOr enter this code: {{{{ .Token }}}}\nNew: {{{{ .NewEmail }}}}\n"
        );
        std::fs::write(dir.path().join(name), text).expect("template written");
    }
    let path = dir.path().to_path_buf();
    let app = app
        .with_config(|config| {
            config.mailer_autoconfirm = false;
            config.mailer_templates_dir = Some(path);
        })
        .await;
    let email = unique_email("template-signup");
    post(
        &app,
        "/signup",
        json!({"email": email, "password": PASSWORD}),
    )
    .await;
    mailed(&app, &email, 0).await;
    let message = app.mail_to(&email).pop().expect("a message");
    assert!(
        message.contains(&format!("Subject: Bienvenue {email}")),
        "{message}"
    );
    assert!(message.contains("Lien :\nhttp"), "{message}");

    let invited = unique_email("template-invite");
    call(
        &app,
        Method::POST,
        "/invite",
        Some(&service_role()),
        json!({"email": invited}),
    )
    .await;
    mailed(&app, &invited, 0).await;
    let message = app.mail_to(&invited).pop().expect("a message");
    assert!(message.contains("Subject: Invitation"), "{message}");
    let (link, code) = mailed(&app, &invited, 0).await;
    assert_eq!(query(&link, "type"), "invite");
    let verify = json!({"type": "invite", "email": invited, "token": code});
    let session = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    let access = session["access_token"].as_str().expect("token").to_string();
    let moved = unique_email("template-moved");
    call(
        &app,
        Method::PUT,
        "/user",
        Some(&access),
        json!({"email": moved}),
    )
    .await;
    mailed(&app, &moved, 0).await;
    let message = app.mail_to(&moved).pop().expect("a message");
    assert!(message.contains("Subject: Nouvelle adresse"), "{message}");
    assert!(message.contains(&format!("New: {moved}")), "{message}");
    // The secure change's mail to the current address has its own template.
    mailed(&app, &invited, 1).await;
    let message = app.mail_to(&invited).pop().expect("a message");
    assert!(
        message.contains(&format!("Subject: Ancienne adresse {invited}")),
        "{message}"
    );
    assert!(message.contains(&format!("New: {moved}")), "{message}");
}

async fn otp_without_autoconfirm_makes_an_unconfirmed_account_and_mails_a_confirmation(
    app: TestApp,
) {
    let app = unconfirmed_app(&app).await;
    let email = unique_email("otp-unconfirmed");
    let answer = post(&app, "/otp", json!({"email": email})).await;
    assert_eq!(expect_json(answer, StatusCode::OK).await, json!({}));
    let (link, code) = mailed(&app, &email, 0).await;
    assert_eq!(query(&link, "type"), "signup");
    let verify = json!({"type": "email", "email": email, "token": code});
    let session = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    assert!(
        session["user"]["email_confirmed_at"].is_string(),
        "{session}"
    );
    // Confirmed now: a second /otp is a magic link.
    post(&app, "/otp", json!({"email": email})).await;
    let (link, _) = mailed(&app, &email, 1).await;
    assert_eq!(query(&link, "type"), "magiclink");
}

both_stores!(
    signup_without_autoconfirm_mails_a_confirmation_and_blocks_sign_in_until_confirmed,
    a_signup_link_confirms_once_and_never_redirects_off_the_allow_list,
    a_repeated_signup_hides_confirmed_addresses_and_resends_to_unconfirmed_ones,
    resend_answers_every_address_alike_and_keeps_gotrues_minute,
    an_expired_confirmation_is_refused,
    an_email_change_waits_for_the_new_address_and_ends_stale_caches,
    an_invite_makes_an_unconfirmed_user_whose_link_signs_in,
    generate_link_answers_each_type_and_mails_nothing,
    operator_templates_replace_every_confirmation_mail,
    otp_without_autoconfirm_makes_an_unconfirmed_account_and_mails_a_confirmation,
);
