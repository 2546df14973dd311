//! Access tokens, refresh rotation, logout and the sessions list.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use velro_core::Clock;

use crate::both_stores;
use crate::helpers::{
    expect_challenge, expect_error, expect_error_in, expect_invalid, expect_json,
    expect_rejected_token, parse_time, sign_jwt, unique_email, wire_time, TestApp, JWT_SECRET,
    PASSWORD,
};

both_stores!(
    every_bearer_endpoint_challenges_a_missing_or_invalid_token,
    invalid_access_tokens_are_token_invalid,
    the_bearer_scheme_is_matched_case_insensitively,
    an_access_token_expires_after_its_lifetime_and_the_leeway,
    a_correctly_signed_token_without_a_live_session_is_session_revoked,
    refresh_rotates_the_token_and_keeps_the_session,
    a_spent_refresh_token_within_the_grace_window_returns_the_same_successor,
    a_spent_refresh_token_after_the_grace_window_revokes_the_session,
    a_replay_within_grace_after_the_successor_was_spent_returns_the_newest_token,
    refresh_refuses_unknown_empty_and_missing_tokens,
    a_refresh_token_expires_after_seven_days,
    a_remember_me_refresh_token_outlives_seven_days,
    logout_is_refused_on_the_very_next_request,
    logout_scope_global_ends_every_session,
    logout_scope_others_keeps_only_the_current_session,
    logout_refuses_any_other_scope,
    sessions_are_listed_newest_first_with_their_details,
    deleting_another_own_session_ends_it,
    deleting_the_current_session_ends_it_from_the_next_request,
    deleting_a_session_that_is_not_ours_or_not_live_is_not_found,
);

/// Every endpoint behind a Bearer token.
fn bearer_endpoints() -> Vec<(Method, String)> {
    vec![
        (Method::GET, "/api/v1/auth/me".into()),
        (Method::PUT, "/api/v1/auth/profile".into()),
        (Method::POST, "/api/v1/auth/logout".into()),
        (Method::POST, "/api/v1/auth/change-password".into()),
        (Method::GET, "/api/v1/auth/sessions".into()),
        (
            Method::DELETE,
            format!("/api/v1/auth/sessions/{}", uuid::Uuid::new_v4()),
        ),
    ]
}

async fn every_bearer_endpoint_challenges_a_missing_or_invalid_token(app: TestApp) {
    for (method, path) in bearer_endpoints() {
        let bare = app.request(method.clone(), &path, None, None).await;
        expect_challenge(bare, "token_missing", "Bearer").await;
        for authorization in ["Basic xyz", "Bearer ", "Bearer", "Token abc.def.ghi"] {
            let response = app
                .with_authorization(method.clone(), &path, authorization)
                .await;
            expect_challenge(response, "token_missing", "Bearer").await;
        }
        let garbage = app
            .request(method.clone(), &path, Some("garbage"), None)
            .await;
        expect_rejected_token(garbage, "token_invalid").await;
    }
}

fn unsigned(claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{payload}.")
}

async fn invalid_access_tokens_are_token_invalid(app: TestApp) {
    let tokens = app.register(&unique_email("forged")).await;
    let claims = tokens.claims();
    let with = |key: &str, value: Value| {
        let mut changed = claims.clone();
        changed[key] = value;
        changed
    };
    let mut truncated = tokens.access.clone();
    truncated.truncate(tokens.access.len() - 3);
    let mut no_sid = claims.clone();
    no_sid.as_object_mut().expect("object").remove("sid");
    let forged = [
        ("garbage", "garbage".to_string()),
        ("three dots", "a.b.c".to_string()),
        ("truncated signature", truncated),
        (
            "another secret",
            sign_jwt(
                &claims,
                "another-secret-0123456789abcdefghijklmnopqrs",
                Algorithm::HS256,
            ),
        ),
        (
            "wrong aud",
            sign_jwt(
                &with("aud", json!("anonymous")),
                JWT_SECRET,
                Algorithm::HS256,
            ),
        ),
        (
            "wrong iss",
            sign_jwt(
                &with("iss", json!("someone-else")),
                JWT_SECRET,
                Algorithm::HS256,
            ),
        ),
        ("no sid", sign_jwt(&no_sid, JWT_SECRET, Algorithm::HS256)),
        (
            "HS512 with the right secret",
            sign_jwt(&claims, JWT_SECRET, Algorithm::HS512),
        ),
        ("alg none", unsigned(&claims)),
    ];
    for (what, token) in forged {
        let response = app.me(&token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        expect_rejected_token(response, "token_invalid").await;
    }
    app.me_json(&tokens.access).await;
}

async fn the_bearer_scheme_is_matched_case_insensitively(app: TestApp) {
    let tokens = app.register(&unique_email("scheme")).await;
    for scheme in ["bearer", "BEARER", "BeArEr"] {
        let response = app
            .with_authorization(
                Method::GET,
                "/api/v1/auth/me",
                &format!("{scheme} {}", tokens.access),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK, "{scheme}");
    }
}

async fn an_access_token_expires_after_its_lifetime_and_the_leeway(app: TestApp) {
    let tokens = app.register(&unique_email("expiry")).await;
    app.advance(3600 + 4);
    app.me_json(&tokens.access).await;
    app.advance(2);
    expect_rejected_token(app.me(&tokens.access).await, "token_expired").await;
    // The refresh token outlives it and gives a working one.
    let refreshed = app.refresh(&tokens.refresh).await;
    app.me_json(&refreshed.access).await;
}

async fn a_correctly_signed_token_without_a_live_session_is_session_revoked(app: TestApp) {
    let tokens = app.register(&unique_email("ghost")).await;
    let other = app.register(&unique_email("other")).await;
    let mut claims = tokens.claims();
    claims["sid"] = json!(uuid::Uuid::new_v4());
    let unknown_session = sign_jwt(&claims, JWT_SECRET, Algorithm::HS256);
    expect_rejected_token(app.me(&unknown_session).await, "session_revoked").await;
    // Someone else's live session under this user's id is not this user's.
    claims["sid"] = json!(other.session_id());
    let foreign_session = sign_jwt(&claims, JWT_SECRET, Algorithm::HS256);
    expect_rejected_token(app.me(&foreign_session).await, "session_revoked").await;
    // The token the server would have signed itself passes, so the two above failed for the sid.
    let own = sign_jwt(&tokens.claims(), JWT_SECRET, Algorithm::HS256);
    app.me_json(&own).await;
}

async fn refresh_rotates_the_token_and_keeps_the_session(app: TestApp) {
    let email = unique_email("rotate");
    let tokens = app.register(&email).await;
    let before = app.sessions(&tokens.access).await;
    assert!(before[0]["last_refreshed_at"].is_null());
    app.advance(30);
    let refreshed = app.refresh(&tokens.refresh).await;
    assert_ne!(refreshed.refresh, tokens.refresh);
    assert_eq!(refreshed.session_id(), tokens.session_id());
    assert_eq!(refreshed.body["token_type"], "bearer");
    assert_eq!(refreshed.body["expires_in"], 3600);
    let claims = refreshed.claims();
    assert_eq!(claims["iat"], app.clock.now().unix_timestamp());
    assert_eq!(refreshed.body["expires_at"], claims["exp"]);
    assert_eq!(refreshed.body["user"], tokens.body["user"]);
    app.me_json(&refreshed.access).await;
    app.me_json(&tokens.access).await;
    let after = app.sessions(&refreshed.access).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["id"], before[0]["id"]);
    assert_eq!(after[0]["created_at"], before[0]["created_at"]);
    let now = app.clock.now();
    assert_eq!(after[0]["last_refreshed_at"], wire_time(now).as_str());
    assert_eq!(
        after[0]["expires_at"],
        wire_time(now + time::Duration::days(7)).as_str()
    );
    // And again: the chain goes on.
    let third = app.refresh(&refreshed.refresh).await;
    assert_eq!(third.session_id(), tokens.session_id());
}

async fn a_spent_refresh_token_within_the_grace_window_returns_the_same_successor(app: TestApp) {
    let tokens = app.register(&unique_email("grace")).await;
    let successor = app.refresh(&tokens.refresh).await;
    app.advance(5);
    let again = app.refresh(&tokens.refresh).await;
    assert_eq!(again.refresh, successor.refresh);
    assert_eq!(again.session_id(), successor.session_id());
    app.me_json(&again.access).await;
    app.advance(5);
    let at_the_edge = app.refresh(&tokens.refresh).await;
    assert_eq!(at_the_edge.refresh, successor.refresh);
    let next = app.refresh(&successor.refresh).await;
    assert_eq!(next.session_id(), tokens.session_id());
}

async fn a_spent_refresh_token_after_the_grace_window_revokes_the_session(app: TestApp) {
    let email = unique_email("stolen");
    let tokens = app.register(&email).await;
    let other = app.login(&email, PASSWORD).await;
    let successor = app.refresh(&tokens.refresh).await;
    app.advance(11);
    let reused = app.refresh_response(&tokens.refresh).await;
    expect_error(reused, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
    expect_rejected_token(app.me(&successor.access).await, "session_revoked").await;
    // The successor was never spent, only revoked with its session; the stolen token itself
    // may be reported either way (the contract allows both).
    expect_error(
        app.refresh_response(&successor.refresh).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_invalid",
    )
    .await;
    let dead = ["refresh_token_invalid", "refresh_token_reused"];
    expect_error_in(
        app.refresh_response(&tokens.refresh).await,
        StatusCode::UNAUTHORIZED,
        &dead,
    )
    .await;
    // Only that session: the user's other one lives on.
    app.me_json(&other.access).await;
    app.refresh(&other.refresh).await;
}

async fn a_replay_within_grace_after_the_successor_was_spent_returns_the_newest_token(
    app: TestApp,
) {
    let tokens = app.register(&unique_email("chain")).await;
    let second = app.refresh(&tokens.refresh).await;
    app.advance(1);
    let third = app.refresh(&second.refresh).await;
    app.advance(1);
    let fourth = app.refresh(&third.refresh).await;
    app.advance(3);
    for spent in [&tokens.refresh, &second.refresh, &third.refresh] {
        let replay = app.refresh(spent).await;
        assert_eq!(replay.refresh, fourth.refresh);
        assert_eq!(replay.session_id(), tokens.session_id());
    }
    let fifth = app.refresh(&fourth.refresh).await;
    app.me_json(&fifth.access).await;
}

async fn refresh_refuses_unknown_empty_and_missing_tokens(app: TestApp) {
    let unknown = app.refresh_response(&"A".repeat(43)).await;
    expect_error(unknown, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    let short = app.refresh_response("x").await;
    expect_error(short, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    expect_invalid(app.refresh_response("").await, &["refresh_token"]).await;
    expect_invalid(
        app.post("/api/v1/auth/refresh", json!({})).await,
        &["refresh_token"],
    )
    .await;
    expect_invalid(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": null}))
            .await,
        &["refresh_token"],
    )
    .await;
    expect_invalid(
        app.post("/api/v1/auth/refresh", json!({"refresh_token": 42}))
            .await,
        &["refresh_token"],
    )
    .await;
    // An access token is not a refresh token.
    let tokens = app.register(&unique_email("mixup")).await;
    let mixed = app.refresh_response(&tokens.access).await;
    expect_error(mixed, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
}

async fn a_refresh_token_expires_after_seven_days(app: TestApp) {
    let email = unique_email("week");
    let early = app.register(&email).await;
    let late = app.login(&email, PASSWORD).await;
    app.advance(7 * 24 * 3600 - 1);
    app.refresh(&early.refresh).await;
    app.advance(2);
    let expired = app.refresh_response(&late.refresh).await;
    expect_error(expired, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    // An expired session is no longer listed either.
    let fresh = app.login(&email, PASSWORD).await;
    let listed: Vec<Value> = app.sessions(&fresh.access).await;
    assert!(listed.iter().all(|s| s["id"] != late.session_id().as_str()));
}

async fn a_remember_me_refresh_token_outlives_seven_days(app: TestApp) {
    let email = unique_email("month");
    app.register(&email).await;
    let remembered = app.login_remembered(&email, true).await;
    app.advance(8 * 24 * 3600);
    let refreshed = app.refresh(&remembered.refresh).await;
    assert_eq!(refreshed.session_id(), remembered.session_id());
    let sessions = app.sessions(&refreshed.access).await;
    // The register session (seven days) has expired and is no longer listed.
    assert_eq!(sessions.len(), 1);
    let expected = wire_time(app.clock.now() + time::Duration::days(30));
    assert_eq!(sessions[0]["expires_at"], expected.as_str());
    // The choice carries over to every rotation.
    app.advance(20 * 24 * 3600);
    app.refresh(&refreshed.refresh).await;
}

async fn logout_is_refused_on_the_very_next_request(app: TestApp) {
    let email = unique_email("logout");
    let tokens = app.register(&email).await;
    let other = app.login(&email, PASSWORD).await;
    let response = app.logout(&tokens.access, None).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert!(body["message"].is_string());
    expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
    let refresh = app.refresh_response(&tokens.refresh).await;
    expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    expect_rejected_token(app.logout(&tokens.access, None).await, "session_revoked").await;
    app.me_json(&other.access).await;
    let local = app.logout(&other.access, Some("local")).await;
    expect_json(local, StatusCode::OK).await;
    expect_rejected_token(app.me(&other.access).await, "session_revoked").await;
}

async fn logout_scope_global_ends_every_session(app: TestApp) {
    let email = unique_email("global");
    let first = app.register(&email).await;
    let second = app.login(&email, PASSWORD).await;
    let third = app.login(&email, PASSWORD).await;
    let bystander = app.register(&unique_email("bystander")).await;
    expect_json(
        app.logout(&second.access, Some("global")).await,
        StatusCode::OK,
    )
    .await;
    for tokens in [&first, &second, &third] {
        expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
        let refresh = app.refresh_response(&tokens.refresh).await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    }
    app.me_json(&bystander.access).await;
    app.login(&email, PASSWORD).await;
}

async fn logout_scope_others_keeps_only_the_current_session(app: TestApp) {
    let email = unique_email("others");
    let first = app.register(&email).await;
    let current = app.login(&email, PASSWORD).await;
    let third = app.login(&email, PASSWORD).await;
    expect_json(
        app.logout(&current.access, Some("others")).await,
        StatusCode::OK,
    )
    .await;
    for tokens in [&first, &third] {
        expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
        let refresh = app.refresh_response(&tokens.refresh).await;
        expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    }
    let sessions = app.sessions(&current.access).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], current.session_id().as_str());
    app.refresh(&current.refresh).await;
}

async fn logout_refuses_any_other_scope(app: TestApp) {
    let tokens = app.register(&unique_email("scope")).await;
    for scope in ["GLOBAL", "Local", "", "everything", "local,global"] {
        let response = app.logout(&tokens.access, Some(scope)).await;
        expect_invalid(response, &["scope"]).await;
    }
    // Nothing was logged out.
    app.me_json(&tokens.access).await;
    app.refresh(&tokens.refresh).await;
}

async fn sessions_are_listed_newest_first_with_their_details(app: TestApp) {
    let email = unique_email("list");
    let register = json!({"email": email, "password": PASSWORD});
    let first = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header(reqwest::header::USER_AGENT, "velro-tests/1.0 (first)")
        .json(&register)
        .send()
        .await
        .expect("sent");
    let first = crate::helpers::expect_session(first, StatusCode::CREATED).await;
    let first_created = app.clock.now();
    app.advance(60);
    let second = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header(reqwest::header::USER_AGENT, "velro-tests/2.0 (second)")
        .json(&register)
        .send()
        .await
        .expect("sent");
    let second = crate::helpers::expect_session(second, StatusCode::OK).await;
    let sessions = app.sessions(&second.access).await;
    assert_eq!(sessions.len(), 2);
    let mut keys: Vec<&str> = sessions[0]
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "created_at",
            "current",
            "expires_at",
            "id",
            "ip",
            "last_refreshed_at",
            "user_agent"
        ]
    );
    let (newest, oldest) = (&sessions[0], &sessions[1]);
    assert_eq!(newest["id"], second.session_id().as_str());
    assert_eq!(newest["current"], true);
    assert_eq!(newest["user_agent"], "velro-tests/2.0 (second)");
    assert_eq!(newest["ip"], "127.0.0.1");
    assert!(newest["last_refreshed_at"].is_null());
    assert_eq!(newest["created_at"], wire_time(app.clock.now()).as_str());
    assert_eq!(oldest["id"], first.session_id().as_str());
    assert_eq!(oldest["current"], false);
    assert_eq!(oldest["user_agent"], "velro-tests/1.0 (first)");
    assert_eq!(oldest["ip"], "127.0.0.1");
    assert_eq!(oldest["created_at"], wire_time(first_created).as_str());
    assert!(parse_time(&newest["created_at"]) > parse_time(&oldest["created_at"]));
    // From the other session's point of view, `current` flips.
    let seen_by_first = app.sessions(&first.access).await;
    assert_eq!(seen_by_first[0]["current"], false);
    assert_eq!(seen_by_first[1]["current"], true);
    app.advance(5);
    app.refresh(&first.refresh).await;
    let after = app.sessions(&second.access).await;
    assert_eq!(
        after[1]["last_refreshed_at"],
        wire_time(app.clock.now()).as_str()
    );
    assert!(after[0]["last_refreshed_at"].is_null());
    // The list is ordered by creation, not by activity.
    assert_eq!(after[0]["id"], second.session_id().as_str());
}

async fn deleting_another_own_session_ends_it(app: TestApp) {
    let email = unique_email("delete-other");
    let other = app.register(&email).await;
    let current = app.login(&email, PASSWORD).await;
    let response = app
        .delete_session(&current.access, &other.session_id())
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.expect("body").is_empty());
    expect_rejected_token(app.me(&other.access).await, "session_revoked").await;
    let refresh = app.refresh_response(&other.refresh).await;
    expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    let sessions = app.sessions(&current.access).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], current.session_id().as_str());
}

async fn deleting_the_current_session_ends_it_from_the_next_request(app: TestApp) {
    let tokens = app.register(&unique_email("delete-self")).await;
    let response = app
        .delete_session(&tokens.access, &tokens.session_id())
        .await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
    let refresh = app.refresh_response(&tokens.refresh).await;
    expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
}

async fn deleting_a_session_that_is_not_ours_or_not_live_is_not_found(app: TestApp) {
    let email = unique_email("not-found");
    let mine = app.register(&email).await;
    let revoked = app.login(&email, PASSWORD).await;
    expect_json(app.logout(&revoked.access, None).await, StatusCode::OK).await;
    let someone = app.register(&unique_email("someone")).await;
    let cases = [
        someone.session_id(),
        revoked.session_id(),
        uuid::Uuid::new_v4().to_string(),
        "not-a-uuid".to_string(),
        "12345".to_string(),
    ];
    for id in cases {
        let response = app.delete_session(&mine.access, &id).await;
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    app.me_json(&someone.access).await;
    app.me_json(&mine.access).await;
}
