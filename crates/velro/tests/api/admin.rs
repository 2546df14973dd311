//! The admin users API behind the service key.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::both_stores;
use crate::helpers::{expect_error, unique_email, TestApp};

both_stores!(admin_disable_revokes_every_session,);

async fn admin_disable_revokes_every_session(app: TestApp) {
    let email = unique_email("disable");
    let tokens = app.register(&email).await;
    let id = tokens.body["user"]["id"].as_str().expect("id").to_string();
    let response = app
        .admin(Method::PATCH, &format!("/users/{id}"), Some(json!({"disabled": true})))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    expect_error(app.me(&tokens.access).await, StatusCode::UNAUTHORIZED, "session_revoked").await;
    expect_error(app.refresh_response(&tokens.refresh).await, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    expect_error(app.login_response(&email, crate::helpers::PASSWORD).await, StatusCode::FORBIDDEN, "account_disabled").await;
}
