//! GoTrue's secure email change on /auth/v1 (`MAILER_SECURE_EMAIL_CHANGE_ENABLED`, on by
//! default): `PUT /user` with a new address mails the new and the current address, each its own
//! link and code, and the address changes only once both are confirmed, in either order; the
//! pending change shows on the user; with the setting off, one mail to the new address.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_json, unique_email, TestApp, PASSWORD};
use crate::supabase_confirm::{
    call, expect_error, fragment_value, mailed, open_link, password_grant, post, query,
    service_role,
};

const OTHER_ADDRESS: &str =
    "Confirmation link accepted. Please proceed to confirm link sent to the other email";

/// A signed-up (auto-confirmed) account: its address and access token.
async fn account(app: &TestApp, prefix: &str) -> (String, String) {
    let email = unique_email(prefix);
    let session = expect_json(
        post(
            app,
            "/signup",
            json!({"email": email, "password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let access = session["access_token"].as_str().expect("token").to_string();
    (email, access)
}

async fn change_email(app: &TestApp, access: &str, new: &str) -> Value {
    expect_json(
        call(
            app,
            Method::PUT,
            "/user",
            Some(access),
            json!({"email": new}),
        )
        .await,
        StatusCode::OK,
    )
    .await
}

async fn get_user(app: &TestApp, access: &str) -> Value {
    expect_json(
        call(app, Method::GET, "/user", Some(access), json!({})).await,
        StatusCode::OK,
    )
    .await
}

fn token_hash(link: &url::Url) -> String {
    query(link, "token")
}

async fn expect_other_address_awaited(app: &TestApp, body: Value) {
    let answer = expect_json(post(app, "/verify", body).await, StatusCode::OK).await;
    assert_eq!(answer, json!({"msg": OTHER_ADDRESS, "code": "200"}));
}

async fn expect_unchanged(app: &TestApp, access: &str, old: &str, new: &str) {
    let user = get_user(app, access).await;
    assert_eq!(user["email"], old, "{user}");
    assert_eq!(user["new_email"], new, "{user}");
    expect_json(password_grant(app, old, PASSWORD).await, StatusCode::OK).await;
}

async fn expect_changed(app: &TestApp, session: &Value, access: &str, old: &str, new: &str) {
    assert_eq!(session["user"]["email"], new, "{session}");
    assert!(session["access_token"].is_string(), "{session}");
    assert!(session["user"].get("new_email").is_none(), "{session}");
    let user = get_user(app, access).await;
    assert_eq!(user["email"], new, "{user}");
    assert!(user.get("new_email").is_none(), "{user}");
    assert!(user.get("email_change_sent_at").is_none(), "{user}");
    expect_json(password_grant(app, new, PASSWORD).await, StatusCode::OK).await;
    expect_error(
        password_grant(app, old, PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "invalid_credentials",
        "Invalid login credentials",
    )
    .await;
}

async fn both_addresses_are_mailed_and_the_change_waits_for_both_links(app: TestApp) {
    let (old, access) = account(&app, "secure-old").await;
    let new = unique_email("secure-new");
    let pending = change_email(&app, &access, &new).await;
    assert_eq!(pending["email"], old);
    assert_eq!(pending["new_email"], new);
    assert!(pending["email_change_sent_at"].is_string(), "{pending}");

    let (to_new, _) = mailed(&app, &new, 0).await;
    let (to_old, _) = mailed(&app, &old, 0).await;
    assert_eq!(app.mail_to(&new).len(), 1);
    assert_eq!(app.mail_to(&old).len(), 1);
    assert_eq!(query(&to_new, "type"), "email_change");
    assert_eq!(query(&to_old, "type"), "email_change");
    assert_ne!(token_hash(&to_new), token_hash(&to_old));
    let to_old_mail = app.mail_to(&old).pop().expect("a message");
    assert!(to_old_mail.contains(&new), "{to_old_mail}");

    // GET /user shows the pending change, as GoTrue's user does.
    let user = get_user(&app, &access).await;
    assert_eq!(user["email"], old);
    assert_eq!(user["new_email"], new);
    assert_eq!(
        user["email_change_sent_at"],
        pending["email_change_sent_at"]
    );

    // The current address's link alone changes nothing, and works once.
    let first = json!({"type": "email_change", "token_hash": token_hash(&to_old)});
    expect_other_address_awaited(&app, first.clone()).await;
    expect_unchanged(&app, &access, &old, &new).await;
    expect_error(
        post(&app, "/verify", first).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Email link is invalid or has expired",
    )
    .await;
    expect_unchanged(&app, &access, &old, &new).await;

    let second = json!({"type": "email_change", "token_hash": token_hash(&to_new)});
    let session = expect_json(post(&app, "/verify", second).await, StatusCode::OK).await;
    expect_changed(&app, &session, &access, &old, &new).await;
}

async fn the_new_address_may_confirm_first_by_link_and_the_current_by_code(app: TestApp) {
    let (old, access) = account(&app, "order-old").await;
    let new = unique_email("order-new");
    change_email(&app, &access, &new).await;
    let (to_new, _) = mailed(&app, &new, 0).await;
    let (_, old_code) = mailed(&app, &old, 0).await;

    // The new address's mail link, opened in a browser: GoTrue's redirect with the message.
    let (status, location) = open_link(&app, &to_new).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(fragment_value(&location, "message"), OTHER_ADDRESS);
    assert!(
        fragment_value(&location, "access_token").is_empty(),
        "{location}"
    );
    assert_eq!(location.fragment().map(|f| f.contains("sb=")), Some(true));
    expect_unchanged(&app, &access, &old, &new).await;

    let verify = json!({"type": "email_change", "email": old, "token": old_code});
    let session = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    expect_changed(&app, &session, &access, &old, &new).await;
}

async fn a_code_of_one_half_is_not_the_other_half(app: TestApp) {
    let (old, access) = account(&app, "halves-old").await;
    let new = unique_email("halves-new");
    change_email(&app, &access, &new).await;
    let (_, new_code) = mailed(&app, &new, 0).await;
    let (_, old_code) = mailed(&app, &old, 0).await;

    // Each code is bound to the address it was mailed to.
    for (email, code) in [(&old, &new_code), (&new, &old_code)] {
        expect_error(
            post(
                &app,
                "/verify",
                json!({"type": "email_change", "email": email, "token": code}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "otp_expired",
            "Token has expired or is invalid",
        )
        .await;
    }
    // One half twice is not both halves.
    let once = json!({"type": "email_change", "email": new, "token": new_code});
    expect_other_address_awaited(&app, once.clone()).await;
    expect_error(
        post(&app, "/verify", once).await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Token has expired or is invalid",
    )
    .await;
    expect_unchanged(&app, &access, &old, &new).await;
    // Nor is an email-change code a confirmation or recovery code.
    for kind in ["signup", "recovery", "email"] {
        expect_error(
            post(
                &app,
                "/verify",
                json!({"type": kind, "email": old, "token": old_code}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "otp_expired",
            "Token has expired or is invalid",
        )
        .await;
    }
    let verify = json!({"type": "email_change", "email": old, "token": old_code});
    let session = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    expect_changed(&app, &session, &access, &old, &new).await;
}

async fn expired_halves_are_refused_and_nothing_changes(app: TestApp) {
    let (old, access) = account(&app, "expired-old").await;
    let new = unique_email("expired-new");
    change_email(&app, &access, &new).await;
    let (to_new, new_code) = mailed(&app, &new, 0).await;
    let (to_old, _) = mailed(&app, &old, 0).await;
    expect_other_address_awaited(
        &app,
        json!({"type": "email_change", "token_hash": token_hash(&to_old)}),
    )
    .await;
    app.advance(i64::try_from(app.config.reset_token_ttl_secs).expect("small") + 1);
    expect_error(
        post(
            &app,
            "/verify",
            json!({"type": "email_change", "email": new, "token": new_code}),
        )
        .await,
        StatusCode::FORBIDDEN,
        "otp_expired",
        "Token has expired or is invalid",
    )
    .await;
    let (_, location) = open_link(&app, &to_new).await;
    assert_eq!(fragment_value(&location, "error_code"), "otp_expired");
    let user = get_user(&app, &access).await;
    assert_eq!(user["email"], old, "{user}");
}

async fn concurrent_halves_change_the_address_once(app: TestApp) {
    let (old, access) = account(&app, "race-old").await;
    let new = unique_email("race-new");
    change_email(&app, &access, &new).await;
    let (to_new, _) = mailed(&app, &new, 0).await;
    let (to_old, _) = mailed(&app, &old, 0).await;
    let (a, b) = tokio::join!(
        post(
            &app,
            "/verify",
            json!({"type": "email_change", "token_hash": token_hash(&to_new)})
        ),
        post(
            &app,
            "/verify",
            json!({"type": "email_change", "token_hash": token_hash(&to_old)})
        ),
    );
    let a = expect_json(a, StatusCode::OK).await;
    let b = expect_json(b, StatusCode::OK).await;
    let sessions: Vec<&Value> = [&a, &b]
        .into_iter()
        .filter(|answer| answer.get("access_token").is_some())
        .collect();
    assert_eq!(sessions.len(), 1, "{a} {b}");
    let halves = [&a, &b]
        .into_iter()
        .filter(|answer| **answer == json!({"msg": OTHER_ADDRESS, "code": "200"}))
        .count();
    assert_eq!(halves, 1, "{a} {b}");
    expect_changed(&app, sessions[0], &access, &old, &new).await;
}

async fn with_the_setting_off_one_mail_to_the_new_address_completes_it(app: TestApp) {
    let app = app
        .with_config(|config| config.mailer_secure_email_change_enabled = false)
        .await;
    let (old, access) = account(&app, "single-old").await;
    let new = unique_email("single-new");
    change_email(&app, &access, &new).await;
    let (to_new, _) = mailed(&app, &new, 0).await;
    assert!(app.mail_to(&old).is_empty());
    let verify = json!({"type": "email_change", "token_hash": token_hash(&to_new)});
    let session = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    expect_changed(&app, &session, &access, &old, &new).await;

    // No current-address half to generate either, in GoTrue's words.
    expect_error(
        call(
            &app,
            Method::POST,
            "/admin/generate_link",
            Some(&service_role()),
            json!({"type": "email_change_current", "email": new,
                "new_email": unique_email("single-next")}),
        )
        .await,
        StatusCode::BAD_REQUEST,
        "validation_failed",
        "Enable secure email change to generate link for current email",
    )
    .await;
}

async fn resend_mails_both_halves_again_and_spends_the_earlier_ones(app: TestApp) {
    let (old, access) = account(&app, "resend-old").await;
    let new = unique_email("resend-new");
    change_email(&app, &access, &new).await;
    let (first_new, _) = mailed(&app, &new, 0).await;
    let (first_old, _) = mailed(&app, &old, 0).await;
    app.advance(61);
    let resent = post(
        &app,
        "/resend",
        json!({"type": "email_change", "email": old}),
    )
    .await;
    assert_eq!(resent.status(), StatusCode::OK);
    let (to_new, _) = mailed(&app, &new, 1).await;
    let (to_old, _) = mailed(&app, &old, 1).await;
    for link in [&first_new, &first_old] {
        expect_error(
            post(
                &app,
                "/verify",
                json!({"type": "email_change", "token_hash": token_hash(link)}),
            )
            .await,
            StatusCode::FORBIDDEN,
            "otp_expired",
            "Email link is invalid or has expired",
        )
        .await;
    }
    expect_other_address_awaited(
        &app,
        json!({"type": "email_change", "token_hash": token_hash(&to_new)}),
    )
    .await;
    let verify = json!({"type": "email_change", "token_hash": token_hash(&to_old)});
    let session = expect_json(post(&app, "/verify", verify).await, StatusCode::OK).await;
    expect_changed(&app, &session, &access, &old, &new).await;
}

async fn get_user_shows_when_recovery_and_invite_mails_went_out(app: TestApp) {
    let (email, access) = account(&app, "sent-at").await;
    let user = get_user(&app, &access).await;
    for key in [
        "recovery_sent_at",
        "new_email",
        "email_change_sent_at",
        "invited_at",
    ] {
        assert!(user.get(key).is_none(), "{key}: {user}");
    }
    post(&app, "/recover", json!({"email": email})).await;
    mailed(&app, &email, 0).await;
    let user = get_user(&app, &access).await;
    assert!(user["recovery_sent_at"].is_string(), "{user}");

    let invited = unique_email("sent-at-invited");
    let answer = expect_json(
        call(
            &app,
            Method::POST,
            "/invite",
            Some(&service_role()),
            json!({"email": invited}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let (_, code) = mailed(&app, &invited, 0).await;
    let session = expect_json(
        post(
            &app,
            "/verify",
            json!({"type": "invite", "email": invited, "token": code}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let access = session["access_token"].as_str().expect("token");
    let user = get_user(&app, access).await;
    assert_eq!(user["invited_at"], answer["invited_at"], "{user}");
    assert_eq!(
        user["confirmation_sent_at"], answer["confirmation_sent_at"],
        "{user}"
    );
    assert!(user["email_confirmed_at"].is_string(), "{user}");
}

both_stores!(
    both_addresses_are_mailed_and_the_change_waits_for_both_links,
    the_new_address_may_confirm_first_by_link_and_the_current_by_code,
    a_code_of_one_half_is_not_the_other_half,
    expired_halves_are_refused_and_nothing_changes,
    concurrent_halves_change_the_address_once,
    with_the_setting_off_one_mail_to_the_new_address_completes_it,
    resend_mails_both_halves_again_and_spends_the_earlier_ones,
    get_user_shows_when_recovery_and_invite_mails_went_out,
);
