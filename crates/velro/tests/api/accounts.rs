//! Registration, login, profile and passwords.

use reqwest::StatusCode;
use serde_json::json;

use crate::both_stores;
use crate::helpers::{error_fields, error_message, expect_error, unique_email, TestApp, PASSWORD};

both_stores!(
    register_returns_a_session_and_normalises_the_email,
    register_refuses_a_duplicate_email_in_another_letter_case,
    register_names_every_bad_field,
);

async fn register_returns_a_session_and_normalises_the_email(app: TestApp) {
    let email = unique_email("Ada");
    let response = app
        .post("/api/v1/auth/register", json!({"email": format!("  {} ", email.to_uppercase()), "password": PASSWORD, "full_name": "  Ada Lovelace "}))
        .await;
    let tokens = crate::helpers::expect_session(response, StatusCode::CREATED).await;
    let body = &tokens.body;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["user"]["email"], email.to_lowercase());
    assert_eq!(body["user"]["display_name"], "Ada Lovelace");
    assert_eq!(body["user"]["credits_balance"], 1000);
    assert_eq!(body["user"]["role"], "viewer");
    assert_eq!(body["user"]["email_confirmed"], false);
    assert!(body["user"]["avatar_url"].is_null());
    let me = app.me(&tokens.access).await;
    assert_eq!(me.status(), StatusCode::OK);
}

async fn register_refuses_a_duplicate_email_in_another_letter_case(app: TestApp) {
    let email = unique_email("dup");
    app.register(&email).await;
    let again = app.register_response(&email.to_uppercase(), PASSWORD).await;
    expect_error(again, StatusCode::CONFLICT, "email_exists").await;
}

async fn register_names_every_bad_field(app: TestApp) {
    let response = app
        .post("/api/v1/auth/register", json!({"email": "not-an-email", "password": "password", "full_name": "", "confirm_password": "other"}))
        .await;
    let body = expect_error(response, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
    let mut fields = error_fields(&body);
    fields.sort();
    assert_eq!(fields, ["confirm_password", "email", "full_name", "password"]);
    assert!(error_message(&body, "password").contains("too_common"));
}
