//! Abuse resistance: rate limits (per IP, per account, shared through Redis), the failed-login
//! back-off, client addresses behind trusted proxies, security headers, CORS and the header
//! bound. The other modules run with the limits off; every test here switches them on.

use reqwest::{Method, Response, StatusCode};
use serde_json::json;
use velro::config::{Config, Switch};

use crate::both_stores;
use crate::helpers::{expect_error, expect_session, unique_email, TestApp, PASSWORD};

const WRONG: &str = "not the password at all";

/// Limits on, with quotas that tests reach in a few requests; `change` adjusts further.
async fn limited(app: &TestApp, change: impl FnOnce(&mut Config)) -> TestApp {
    app.with_config(|config| {
        config.rate_limits = Switch::On;
        change(config);
    })
    .await
}

fn quota(raw: &str) -> velro_core::limits::Quota {
    raw.parse().expect("valid quota")
}

/// POST /login, claiming (through `X-Forwarded-For`) to come from `forwarded_for`.
async fn login_from(
    app: &TestApp,
    forwarded_for: Option<&str>,
    email: &str,
    password: &str,
) -> Response {
    let mut request = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .json(&json!({"email": email, "password": password}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.expect("request sent")
}

async fn expect_limited(response: Response) -> u64 {
    let retry_after: u64 = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in whole seconds");
    assert!(retry_after >= 1);
    expect_error(response, StatusCode::TOO_MANY_REQUESTS, "rate_limited").await;
    retry_after
}

async fn logins_beyond_the_per_ip_limit_get_429_with_retry_after(app: TestApp) {
    let app = limited(&app, |c| c.rate_limit_login_ip = quota("3/1m")).await;
    let email = unique_email("ip-limit");
    app.register(&email).await;
    for _ in 0..3 {
        app.login(&email, PASSWORD).await;
    }
    let retry_after = expect_limited(app.login_response(&email, PASSWORD).await).await;
    assert!(
        retry_after <= 20,
        "one interval of 3/1m, not more: {retry_after}"
    );
    // Unknown emails are counted alike: a refusal says nothing about the account.
    expect_limited(app.login_response(&unique_email("nobody"), PASSWORD).await).await;
}

async fn logins_for_one_account_from_many_ips_hit_the_account_limit(app: TestApp) {
    let app = limited(&app, |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.rate_limit_login_account = quota("2/1m");
    })
    .await;
    let email = unique_email("account-limit");
    app.register(&email).await;
    for ip in ["198.51.100.1", "198.51.100.2"] {
        let response = login_from(&app, Some(ip), &email, WRONG).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    expect_limited(login_from(&app, Some("198.51.100.3"), &email, PASSWORD).await).await;
    // Another account is not affected.
    let other = unique_email("other");
    app.register(&other).await;
    expect_session(
        login_from(&app, Some("198.51.100.3"), &other, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn after_five_failures_the_pair_backs_off_but_the_owner_elsewhere_signs_in(app: TestApp) {
    let app = limited(&app, |c| c.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let email = unique_email("backoff");
    app.register(&email).await;
    let attacker = Some("203.0.113.66");
    for _ in 0..5 {
        let response = login_from(&app, attacker, &email, WRONG).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    // Even the right password waits now: the back-off is decided before the password is checked.
    expect_limited(login_from(&app, attacker, &email, PASSWORD).await).await;
    // The owner, from another address, is not locked out by the attacker's failures.
    expect_session(
        login_from(&app, Some("198.51.100.7"), &email, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn a_distributed_attack_slows_unknown_ips_but_never_the_owners_known_ip(app: TestApp) {
    let app = limited(&app, |c| {
        c.trusted_proxies = vec!["127.0.0.1".into()];
        c.rate_limit_login_account = quota("1000/1m");
    })
    .await;
    let email = unique_email("distributed");
    app.register(&email).await;
    let home = Some("198.51.100.10");
    expect_session(
        login_from(&app, home, &email, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    // 5 addresses × 4 failures: 20 account failures, no pair in back-off.
    for host in 1..=5 {
        let ip = format!("203.0.113.{host}");
        for _ in 0..4 {
            let response = login_from(&app, Some(&ip), &email, WRONG).await;
            expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        }
    }
    // Unknown addresses now share one attempt per 10 s for this account.
    let response = login_from(&app, Some("203.0.113.20"), &email, WRONG).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let retry_after =
        expect_limited(login_from(&app, Some("203.0.113.21"), &email, WRONG).await).await;
    assert!(retry_after <= 10, "{retry_after}");
    // The owner's known address is not slowed at all.
    expect_session(
        login_from(&app, home, &email, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
}

async fn forwarded_for_from_an_untrusted_peer_is_ignored(app: TestApp) {
    let app = limited(&app, |c| c.rate_limit_login_ip = quota("2/1m")).await;
    let email = unique_email("untrusted");
    let tokens = app.register(&email).await;
    for ip in ["198.51.100.1", "198.51.100.2"] {
        expect_session(
            login_from(&app, Some(ip), &email, PASSWORD).await,
            StatusCode::OK,
        )
        .await;
    }
    expect_limited(login_from(&app, Some("198.51.100.3"), &email, PASSWORD).await).await;
    let sessions = app.sessions(&tokens.access).await;
    assert!(
        sessions.iter().all(|s| s["ip"] == "127.0.0.1"),
        "{sessions:?}"
    );
}

async fn forwarded_for_from_a_trusted_proxy_names_the_client(app: TestApp) {
    let app = limited(&app, |c| c.trusted_proxies = vec!["127.0.0.0/8".into()]).await;
    let email = unique_email("trusted");
    let response = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("x-forwarded-for", "6.6.6.6, 198.51.100.42")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("request sent");
    let tokens = expect_session(response, StatusCode::CREATED).await;
    let sessions = app.sessions(&tokens.access).await;
    assert_eq!(sessions[0]["ip"], "198.51.100.42");
}

async fn password_reset_requests_for_one_email_are_limited(app: TestApp) {
    let app = limited(&app, |c| {
        c.rate_limit_password_reset_account = quota("2/1h")
    })
    .await;
    let email = unique_email("reset-limit");
    for _ in 0..2 {
        assert_eq!(
            app.request_reset(&email).await.status(),
            StatusCode::ACCEPTED
        );
    }
    expect_limited(app.request_reset(&email).await).await;
    assert_eq!(
        app.request_reset(&unique_email("reset-other"))
            .await
            .status(),
        StatusCode::ACCEPTED
    );
}

async fn refreshes_from_one_ip_are_limited(app: TestApp) {
    let app = limited(&app, |c| c.rate_limit_refresh_ip = quota("2/1m")).await;
    let tokens = app.register(&unique_email("refresh-limit")).await;
    let tokens = app.refresh(&tokens.refresh).await;
    let tokens = app.refresh(&tokens.refresh).await;
    expect_limited(app.refresh_response(&tokens.refresh).await).await;
}

async fn limits_are_shared_by_instances_on_one_redis(app: TestApp) {
    let Some(redis) = velro_redistest::redis_url() else {
        return;
    };
    let namespace = format!("test-{}", uuid::Uuid::new_v4().simple());
    let shared = |config: &mut Config| {
        config.redis_url = Some(velro_core::Secret::new(redis.clone()));
        config.cache_namespace = namespace.clone();
        config.rate_limit_login_ip = quota("3/1m");
        // Every count must reach Redis: a call that timed out would be counted locally.
        config.redis_timeout_ms = 1_000;
    };
    let a = limited(&app, shared).await;
    let b = limited(&app, shared).await;
    let email = unique_email("shared");
    for instance in [&a, &b] {
        let response = instance.login_response(&email, WRONG).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
    let response = a.login_response(&email, WRONG).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    expect_limited(b.login_response(&email, WRONG).await).await;
}

async fn responses_carry_the_security_headers(app: TestApp) {
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    let login = app.login_response(&unique_email("headers"), PASSWORD).await;
    let missing = app
        .client
        .get(app.url("/nowhere"))
        .send()
        .await
        .expect("sent");
    for response in [health, login, missing] {
        let headers = response.headers();
        let header = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("cache-control"), "no-store");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("x-frame-options"), "DENY");
        assert!(header("content-security-policy").starts_with("default-src 'none'"));
        assert!(
            headers.get("access-control-allow-origin").is_none(),
            "no CORS unless configured"
        );
    }
}

async fn preflight(app: &TestApp, origin: &str) -> Response {
    app.client
        .request(Method::OPTIONS, app.url("/api/v1/auth/login"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type, authorization",
        )
        .send()
        .await
        .expect("sent")
}

async fn cors_allows_configured_origins_only(app: TestApp) {
    let allowed = "https://app.example.com";
    let app = app
        .with_config(|c| {
            c.cors_allowed_origins = vec![allowed.into()];
            c.cors_allow_credentials = true;
        })
        .await;
    let response = preflight(&app, allowed).await;
    assert!(response.status().is_success(), "{}", response.status());
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], allowed);
    assert_eq!(headers["access-control-allow-credentials"], "true");
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("POST"), "{methods}");

    let response = preflight(&app, "https://evil.example").await;
    assert!(response
        .headers()
        .get("access-control-allow-origin")
        .is_none());
    // (tower-http may still send Allow-Credentials; without Allow-Origin the browser refuses.)

    let response = app
        .client
        .get(app.url("/health"))
        .header("origin", allowed)
        .send()
        .await
        .expect("sent");
    assert_eq!(response.headers()["access-control-allow-origin"], allowed);
}

async fn oversized_headers_get_431(app: TestApp) {
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-padding", "a".repeat(20 * 1024))
        .send()
        .await
        .expect("sent");
    expect_error(
        response,
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "headers_too_large",
    )
    .await;
    let response = app
        .client
        .get(app.url("/health"))
        .header("x-padding", "a".repeat(1024))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
}

both_stores!(
    logins_beyond_the_per_ip_limit_get_429_with_retry_after,
    logins_for_one_account_from_many_ips_hit_the_account_limit,
    after_five_failures_the_pair_backs_off_but_the_owner_elsewhere_signs_in,
    a_distributed_attack_slows_unknown_ips_but_never_the_owners_known_ip,
    forwarded_for_from_an_untrusted_peer_is_ignored,
    forwarded_for_from_a_trusted_proxy_names_the_client,
    password_reset_requests_for_one_email_are_limited,
    refreshes_from_one_ip_are_limited,
    limits_are_shared_by_instances_on_one_redis,
    responses_carry_the_security_headers,
    cors_allows_configured_origins_only,
    oversized_headers_get_431,
);
