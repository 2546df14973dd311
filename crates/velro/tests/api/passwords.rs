//! Password reset by mailed token, and password change by a signed-in user.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_stores;
use crate::helpers::{
    error_message, expect_challenge, expect_error, expect_invalid, expect_json,
    expect_rejected_token, unique_email, TestApp, NEW_PASSWORD, PASSWORD,
};

both_stores!(
    password_reset_answers_the_same_for_known_and_unknown_emails,
    password_reset_refuses_an_invalid_email,
    password_reset_confirm_sets_the_password_and_revokes_every_session,
    a_reset_token_is_single_use,
    a_newer_reset_token_spends_the_older_one,
    confirming_an_older_reset_token_spends_the_newer_one,
    a_reset_token_expires_after_an_hour,
    a_refused_confirm_body_does_not_spend_the_token,
    password_reset_confirm_refuses_unknown_and_missing_tokens,
    password_reset_keeps_a_disabled_account_disabled,
    change_password_keeps_the_current_session_and_revokes_the_others,
    change_password_with_a_wrong_current_password_changes_nothing,
    change_password_checks_the_policy_before_the_current_password,
);

const RESET_CONFIRM: &str = "/api/v1/auth/password-reset-confirm";

async fn password_reset_answers_the_same_for_known_and_unknown_emails(app: TestApp) {
    let email = unique_email("reset");
    app.register(&email).await;
    let unknown = unique_email("nobody");
    let for_unknown = app.request_reset(&unknown).await;
    assert_eq!(for_unknown.status(), StatusCode::ACCEPTED);
    let for_unknown = for_unknown.text().await.expect("body");
    // Trimmed and lowercased like everywhere else; the message goes to the stored address.
    let for_known = app
        .request_reset(&format!(" {} ", email.to_uppercase()))
        .await;
    assert_eq!(for_known.status(), StatusCode::ACCEPTED);
    let for_known = for_known.text().await.expect("body");
    assert_eq!(for_known, for_unknown);
    let body: serde_json::Value = serde_json::from_str(&for_known).expect("JSON");
    assert!(body["message"].is_string());
    assert_eq!(body.as_object().map(|o| o.len()), Some(1));
    let token = app.reset_token_for(&email, 0).await;
    assert_eq!(token.len(), 43);
    let messages = app.mail_to(&email);
    assert_eq!(messages.len(), 1);
    assert!(app.mail_to(&unknown).is_empty());
}

async fn password_reset_refuses_an_invalid_email(app: TestApp) {
    expect_invalid(app.request_reset("not-an-email").await, &["email"]).await;
    expect_invalid(app.request_reset("ada@[127.0.0.1]").await, &["email"]).await;
    let missing = app.post("/api/v1/auth/password-reset", json!({})).await;
    expect_invalid(missing, &["email"]).await;
    let wrong_type = app
        .post("/api/v1/auth/password-reset", json!({"email": 7}))
        .await;
    expect_invalid(wrong_type, &["email"]).await;
}

async fn password_reset_confirm_sets_the_password_and_revokes_every_session(app: TestApp) {
    let email = unique_email("confirm");
    let first = app.register(&email).await;
    let second = app.login(&email, PASSWORD).await;
    let token = app.reset_token(&email).await;
    let response = app.confirm_reset(&token, NEW_PASSWORD).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert!(body["message"].is_string());
    for tokens in [&first, &second] {
        expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
        let refresh = app.refresh_response(&tokens.refresh).await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    }
    let old = app.login_response(&email, PASSWORD).await;
    expect_error(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let fresh = app.login(&email, NEW_PASSWORD).await;
    assert_eq!(app.sessions(&fresh.access).await.len(), 1);
}

async fn a_reset_token_is_single_use(app: TestApp) {
    let email = unique_email("once");
    app.register(&email).await;
    let token = app.reset_token(&email).await;
    expect_json(
        app.confirm_reset(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let again = app.confirm_reset(&token, "yet another good password").await;
    expect_error(again, StatusCode::BAD_REQUEST, "reset_token_invalid").await;
    app.login(&email, NEW_PASSWORD).await;
}

async fn a_newer_reset_token_spends_the_older_one(app: TestApp) {
    let email = unique_email("newer");
    app.register(&email).await;
    let older = app.reset_token(&email).await;
    let newer = app.reset_token(&email).await;
    assert_ne!(older, newer);
    expect_json(
        app.confirm_reset(&newer, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let stale = app.confirm_reset(&older, "yet another good password").await;
    expect_error(stale, StatusCode::BAD_REQUEST, "reset_token_invalid").await;
    app.login(&email, NEW_PASSWORD).await;
}

async fn confirming_an_older_reset_token_spends_the_newer_one(app: TestApp) {
    let email = unique_email("older");
    app.register(&email).await;
    let older = app.reset_token(&email).await;
    let newer = app.reset_token(&email).await;
    expect_json(
        app.confirm_reset(&older, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let stale = app.confirm_reset(&newer, "yet another good password").await;
    expect_error(stale, StatusCode::BAD_REQUEST, "reset_token_invalid").await;
    app.login(&email, NEW_PASSWORD).await;
}

async fn a_reset_token_expires_after_an_hour(app: TestApp) {
    let email = unique_email("expiry");
    app.register(&email).await;
    let token = app.reset_token(&email).await;
    app.advance(3600 + 1);
    let late = app.confirm_reset(&token, NEW_PASSWORD).await;
    expect_error(late, StatusCode::BAD_REQUEST, "reset_token_invalid").await;
    app.login(&email, PASSWORD).await;
    // A token asked for now is good for most of the next hour.
    let token = app.reset_token(&email).await;
    app.advance(3600 - 60);
    expect_json(
        app.confirm_reset(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn a_refused_confirm_body_does_not_spend_the_token(app: TestApp) {
    let email = unique_email("keeps");
    app.register(&email).await;
    let local = email.split('@').next().expect("local part").to_string();
    let token = app.reset_token(&email).await;
    let short = expect_invalid(app.confirm_reset(&token, "short").await, &["new_password"]).await;
    assert!(error_message(&short, "new_password").contains("too_short"));
    let common = expect_invalid(
        app.confirm_reset(&token, "password1").await,
        &["new_password"],
    )
    .await;
    assert!(error_message(&common, "new_password").contains("too_common"));
    let mismatch = json!({"token": token, "new_password": NEW_PASSWORD, "confirm_password": "something else entirely"});
    expect_invalid(
        app.post(RESET_CONFIRM, mismatch).await,
        &["confirm_password"],
    )
    .await;
    for own in [local.to_uppercase(), email.clone()] {
        let body = expect_invalid(app.confirm_reset(&token, &own).await, &["new_password"]).await;
        assert!(
            error_message(&body, "new_password").contains("contains_email"),
            "{own}"
        );
    }
    app.login(&email, PASSWORD).await;
    let matching =
        json!({"token": token, "new_password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD});
    expect_json(app.post(RESET_CONFIRM, matching).await, StatusCode::OK).await;
    app.login(&email, NEW_PASSWORD).await;
}

async fn password_reset_confirm_refuses_unknown_and_missing_tokens(app: TestApp) {
    let unknown = "A".repeat(43);
    let response = app.confirm_reset(&unknown, NEW_PASSWORD).await;
    expect_error(response, StatusCode::BAD_REQUEST, "reset_token_invalid").await;
    expect_error(
        app.confirm_reset("x", NEW_PASSWORD).await,
        StatusCode::BAD_REQUEST,
        "reset_token_invalid",
    )
    .await;
    expect_invalid(app.confirm_reset("", NEW_PASSWORD).await, &["token"]).await;
    expect_invalid(
        app.post(RESET_CONFIRM, json!({"new_password": NEW_PASSWORD}))
            .await,
        &["token"],
    )
    .await;
    expect_invalid(
        app.post(RESET_CONFIRM, json!({})).await,
        &["new_password", "token"],
    )
    .await;
    // The body is validated first: a weak password with an unknown token is a 422.
    expect_invalid(
        app.confirm_reset(&unknown, "short").await,
        &["new_password"],
    )
    .await;
}

async fn password_reset_keeps_a_disabled_account_disabled(app: TestApp) {
    let email = unique_email("stays-disabled");
    let tokens = app.register(&email).await;
    app.admin_patch(&tokens.user_id(), json!({"disabled": true}))
        .await;
    let token = app.reset_token(&email).await;
    expect_json(
        app.confirm_reset(&token, NEW_PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let login = app.login_response(&email, NEW_PASSWORD).await;
    expect_error(login, StatusCode::FORBIDDEN, "account_disabled").await;
    assert_eq!(app.admin_user(&tokens.user_id()).await["disabled"], true);
}

async fn change_password_keeps_the_current_session_and_revokes_the_others(app: TestApp) {
    let email = unique_email("change");
    let other = app.register(&email).await;
    let current = app.login(&email, PASSWORD).await;
    let response = app
        .change_password(&current.access, PASSWORD, NEW_PASSWORD)
        .await;
    let body = expect_json(response, StatusCode::OK).await;
    assert!(body["message"].is_string());
    app.me_json(&current.access).await;
    expect_rejected_token(app.me(&other.access).await, "session_revoked").await;
    let refresh = app.refresh_response(&other.refresh).await;
    expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    app.refresh(&current.refresh).await;
    let old = app.login_response(&email, PASSWORD).await;
    expect_error(old, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    app.login(&email, NEW_PASSWORD).await;
    let sessions = app.sessions(&current.access).await;
    assert!(sessions
        .iter()
        .all(|s| s["id"] != other.session_id().as_str()));
}

async fn change_password_with_a_wrong_current_password_changes_nothing(app: TestApp) {
    let email = unique_email("wrong-current");
    let other = app.register(&email).await;
    let current = app.login(&email, PASSWORD).await;
    let response = app
        .change_password(&current.access, "not the right password", NEW_PASSWORD)
        .await;
    expect_challenge(response, "invalid_credentials", "Bearer").await;
    app.me_json(&current.access).await;
    app.me_json(&other.access).await;
    app.login(&email, PASSWORD).await;
    let new = app.login_response(&email, NEW_PASSWORD).await;
    expect_error(new, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
}

async fn change_password_checks_the_policy_before_the_current_password(app: TestApp) {
    let email = unique_email("policy-first");
    let local = email.split('@').next().expect("local part").to_string();
    let tokens = app.register(&email).await;
    let weak = app
        .change_password(&tokens.access, "not the right password", "password")
        .await;
    let body = expect_invalid(weak, &["new_password"]).await;
    assert!(error_message(&body, "new_password").contains("too_common"));
    for own in [local.clone(), email.to_uppercase()] {
        let response = app.change_password(&tokens.access, PASSWORD, &own).await;
        let body = expect_invalid(response, &["new_password"]).await;
        assert!(
            error_message(&body, "new_password").contains("contains_email"),
            "{own}"
        );
    }
    // The email rule, too, comes before the current password, and nothing changes.
    let own = app
        .change_password(&tokens.access, "not the right password", &email)
        .await;
    expect_invalid(own, &["new_password"]).await;
    app.login(&email, PASSWORD).await;
    let path = "/api/v1/auth/change-password";
    let mismatch = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD, "confirm_password": "different words here"});
    expect_invalid(
        app.request(Method::POST, path, Some(&tokens.access), Some(mismatch))
            .await,
        &["confirm_password"],
    )
    .await;
    let missing = json!({"new_password": NEW_PASSWORD});
    expect_invalid(
        app.request(Method::POST, path, Some(&tokens.access), Some(missing))
            .await,
        &["current_password"],
    )
    .await;
    let no_token = app.request(Method::POST, path, None, Some(json!({}))).await;
    expect_challenge(no_token, "token_missing", "Bearer").await;
    app.login(&email, PASSWORD).await;
}
