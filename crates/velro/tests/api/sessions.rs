//! Access tokens, refresh rotation, logout and the sessions list.

use reqwest::{Method, StatusCode};

use crate::both_stores;
use crate::helpers::{expect_error, expect_session, unique_email, TestApp};

both_stores!(logout_is_refused_on_the_very_next_request,);

async fn logout_is_refused_on_the_very_next_request(app: TestApp) {
    let tokens = app.register(&unique_email("logout")).await;
    let response = app.request(Method::POST, "/api/v1/auth/logout", Some(&tokens.access), None).await;
    assert_eq!(response.status(), StatusCode::OK);
    let me = app.me(&tokens.access).await;
    assert_eq!(
        me.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
        Some("Bearer error=\"invalid_token\"")
    );
    expect_error(me, StatusCode::UNAUTHORIZED, "session_revoked").await;
    let refresh = app.refresh_response(&tokens.refresh).await;
    expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    let _ = expect_session;
}
