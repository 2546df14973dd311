//! Requests that race: the store's atomic operations as clients see them, and load shedding.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::task::JoinSet;

use crate::both_stores;
use crate::helpers::{expect_json, jwt_claims, unique_email, TestApp, NEW_PASSWORD, PASSWORD};

both_stores!(
    fifty_concurrent_registrations_of_distinct_emails_all_succeed,
    concurrent_registrations_of_one_email_create_exactly_one_account,
    concurrent_refreshes_of_one_token_all_get_the_same_successor,
    one_reset_token_confirmed_twice_at_once_succeeds_once,
    a_full_hashing_queue_is_503_overloaded_with_retry_after,
);

/// Sends every `(path, body)` at once; the answers' statuses and bodies, in no particular order.
async fn post_all(
    app: &TestApp,
    requests: Vec<(&str, Value)>,
) -> Vec<(StatusCode, Value, Option<String>)> {
    let mut set = JoinSet::new();
    for (path, body) in requests {
        let request = app.client.post(app.url(path)).json(&body);
        set.spawn(async move {
            let response = request.send().await.expect("sent");
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let body: Value = response.json().await.expect("JSON body");
            (status, body, retry_after)
        });
    }
    let mut answers = Vec::new();
    while let Some(joined) = set.join_next().await {
        answers.push(joined.expect("request task"));
    }
    answers
}

async fn user_count(app: &TestApp) -> usize {
    let page = expect_json(
        app.admin(Method::GET, "/users?limit=200", None).await,
        StatusCode::OK,
    )
    .await;
    page["users"].as_array().expect("users").len()
}

async fn fifty_concurrent_registrations_of_distinct_emails_all_succeed(app: TestApp) {
    let requests = (0..50)
        .map(|i| {
            (
                "/api/v1/auth/register",
                json!({"email": unique_email(&format!("crowd{i}")), "password": PASSWORD}),
            )
        })
        .collect();
    let answers = post_all(&app, requests).await;
    for (status, body, _) in &answers {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
    }
    let ids: HashSet<&str> = answers
        .iter()
        .map(|(_, body, _)| body["user"]["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids.len(), 50);
    assert_eq!(user_count(&app).await, 50);
    // One more than the default page of 50.
    app.register(&unique_email("one-more")).await;
    let first = expect_json(app.admin(Method::GET, "/users", None).await, StatusCode::OK).await;
    assert_eq!(first["users"].as_array().map(Vec::len), Some(50));
    let cursor = first["next"].as_str().expect("a next page");
    let path = format!("/users?after={cursor}");
    let second = expect_json(app.admin(Method::GET, &path, None).await, StatusCode::OK).await;
    assert_eq!(second["users"].as_array().map(Vec::len), Some(1));
    assert!(second["next"].is_null());
}

async fn concurrent_registrations_of_one_email_create_exactly_one_account(app: TestApp) {
    let email = unique_email("race");
    let requests = (0..20)
        .map(|i| {
            // The same address in different letter cases still races for one account.
            let sent = if i % 2 == 0 {
                email.clone()
            } else {
                email.to_uppercase()
            };
            (
                "/api/v1/auth/register",
                json!({"email": sent, "password": PASSWORD}),
            )
        })
        .collect();
    let answers = post_all(&app, requests).await;
    let created = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::CREATED)
        .count();
    let conflicts: Vec<&Value> = answers
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::CONFLICT)
        .map(|(_, body, _)| body)
        .collect();
    assert_eq!(created, 1, "{answers:?}");
    assert_eq!(conflicts.len(), 19, "{answers:?}");
    assert!(conflicts.iter().all(|body| body["code"] == "email_exists"));
    assert_eq!(user_count(&app).await, 1);
    app.login(&email, PASSWORD).await;
}

async fn concurrent_refreshes_of_one_token_all_get_the_same_successor(app: TestApp) {
    let tokens = app.register(&unique_email("tabs")).await;
    let requests = (0..10)
        .map(|_| {
            (
                "/api/v1/auth/refresh",
                json!({"refresh_token": tokens.refresh}),
            )
        })
        .collect();
    let answers = post_all(&app, requests).await;
    for (status, body, _) in &answers {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let successors: HashSet<&str> = answers
        .iter()
        .map(|(_, body, _)| body["refresh_token"].as_str().expect("refresh token"))
        .collect();
    assert_eq!(successors.len(), 1, "every tab holds the same token");
    let sids: HashSet<String> = answers
        .iter()
        .map(|(_, body, _)| {
            jwt_claims(body["access_token"].as_str().expect("access token"))["sid"].to_string()
        })
        .collect();
    assert_eq!(sids.len(), 1);
    assert_eq!(
        sids.iter().next().map(String::as_str),
        Some(format!("\"{}\"", tokens.session_id()).as_str())
    );
    let access = answers[0].1["access_token"].as_str().expect("access token");
    assert_eq!(app.sessions(access).await.len(), 1);
    let successor = successors.iter().next().expect("one successor").to_string();
    app.refresh(&successor).await;
}

async fn one_reset_token_confirmed_twice_at_once_succeeds_once(app: TestApp) {
    let email = unique_email("twice");
    app.register(&email).await;
    let token = app.reset_token(&email).await;
    let requests = vec![
        (
            "/api/v1/auth/password-reset-confirm",
            json!({"token": token, "new_password": NEW_PASSWORD}),
        ),
        (
            "/api/v1/auth/password-reset-confirm",
            json!({"token": token, "new_password": "the other new password"}),
        ),
    ];
    let answers = post_all(&app, requests).await;
    let mut statuses: Vec<u16> = answers
        .iter()
        .map(|(status, _, _)| status.as_u16())
        .collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 400], "{answers:?}");
    let refused = answers
        .iter()
        .find(|(status, _, _)| *status == StatusCode::BAD_REQUEST)
        .expect("one refused");
    assert_eq!(refused.1["code"], "reset_token_invalid");
    // Exactly one of the two passwords is now the password.
    let new = app.login_response(&email, NEW_PASSWORD).await.status();
    let other = app
        .login_response(&email, "the other new password")
        .await
        .status();
    let mut outcomes = [new.as_u16(), other.as_u16()];
    outcomes.sort_unstable();
    assert_eq!(outcomes, [200, 401]);
}

async fn a_full_hashing_queue_is_503_overloaded_with_retry_after(app: TestApp) {
    // One worker, one waiting place, and a hash slow enough that a burst finds the queue full.
    let app = app
        .with_config(|c| {
            c.hash_threads = Some(1);
            c.hash_queue = 1;
            c.argon2_memory_kib = 4 * 1024;
            c.argon2_iterations = 2;
            // Under a loaded machine the admitted hashes may be slow: the deadline must not turn
            // them into 503 `timeout`, which is not what this test is about.
            c.request_timeout_ms = 60_000;
            c.hash_max_wait_ms = 50_000;
        })
        .await;
    let requests = (0..16)
        .map(|i| {
            (
                "/api/v1/auth/register",
                json!({"email": unique_email(&format!("burst{i}")), "password": PASSWORD}),
            )
        })
        .collect();
    let answers = post_all(&app, requests).await;
    let mut overloaded = 0;
    for (status, body, retry_after) in &answers {
        match *status {
            StatusCode::CREATED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                overloaded += 1;
                assert_eq!(body["code"], "overloaded", "{body}");
                let secs: u64 = retry_after
                    .as_deref()
                    .expect("Retry-After")
                    .parse()
                    .expect("whole seconds");
                assert!(secs >= 1);
            }
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert!(overloaded > 0, "no request was shed: {answers:?}");
    assert!(
        overloaded < answers.len(),
        "at least the first one is served"
    );
    // Refused requests change nothing: their emails are free.
    assert_eq!(user_count(&app).await, answers.len() - overloaded);
    // Once the burst is answered the queue is empty again.
    app.register("late@example.com").await;
}
