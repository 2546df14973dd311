//! GoTrue's mail limits and password answers on /auth/v1: the deployment's mail budget
//! (`VELRO_RATE_LIMIT_EMAIL_SENT`), the shortest time between two mails of a kind to one user
//! (`VELRO_SMTP_MAX_FREQUENCY`, on the app's clock, never slept through), and `weak_password`
//! with every reason, and GoTrue's 72-byte ceiling where a password is set.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{expect_json, sign_jwt, unique_email, TestApp, JWT_SECRET, PASSWORD};

const VERSION: &str = "2024-01-01";
const BUDGET_SPENT: &str = "email rate limit exceeded";

async fn call(
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

async fn post(app: &TestApp, path: &str, body: Value) -> Response {
    call(app, Method::POST, path, None, body).await
}

fn service_role() -> String {
    sign_jwt(
        &json!({"role": "service_role"}),
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS256,
    )
}

async fn expect_error(response: Response, status: StatusCode, code: &str, message: &str) -> Value {
    let got = response.status();
    let header = response
        .headers()
        .get("x-sb-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(got, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["message"], message, "{body}");
    assert_eq!(header.as_deref(), Some(code));
    body
}

/// Waits (briefly) until `to` has more than `earlier` messages; how many it has then.
async fn mail_count_above(app: &TestApp, to: &str, earlier: usize) -> usize {
    for _ in 0..500 {
        let count = app.mail_to(to).len();
        if count > earlier {
            return count;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no message for {to} arrived");
}

/// A confirmed account made through /auth/v1 (auto-confirm on).
async fn confirmed(app: &TestApp, prefix: &str) -> (String, String) {
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
    let access = session["access_token"]
        .as_str()
        .expect("a session")
        .to_string();
    (email, access)
}

async fn the_mail_budget_is_one_for_every_mail_path(app: TestApp) {
    let app = app
        .with_config(|config| {
            config.rate_limits = velro::config::Switch::On;
            config.mailer_autoconfirm = false;
            config.rate_limit_email_sent = "3/1h".parse().expect("GoTrue's burst form");
        })
        .await;
    // A sign-up's confirmation, an /otp sign-up's confirmation and a /recover (for an address
    // without an account: the budget does not tell them apart) spend the three.
    let signed_up = unique_email("budget-signup");
    expect_json(
        post(
            &app,
            "/signup",
            json!({"email": signed_up, "password": PASSWORD}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        post(&app, "/otp", json!({"email": unique_email("budget-otp")})).await,
        StatusCode::OK,
    )
    .await;
    expect_json(
        post(
            &app,
            "/recover",
            json!({"email": unique_email("budget-nobody")}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mail_count_above(&app, &signed_up, 0).await, 1);

    // Every path that mails is refused now, each with GoTrue's code and message.
    let over = StatusCode::TOO_MANY_REQUESTS;
    let code = "over_email_send_rate_limit";
    app.advance(120);
    let resend = json!({"type": "signup", "email": signed_up});
    expect_error(
        post(&app, "/resend", resend).await,
        over,
        code,
        BUDGET_SPENT,
    )
    .await;
    let recover = json!({"email": unique_email("budget-recover")});
    expect_error(
        post(&app, "/recover", recover).await,
        over,
        code,
        BUDGET_SPENT,
    )
    .await;
    let otp = json!({"email": unique_email("budget-otp2")});
    expect_error(post(&app, "/otp", otp).await, over, code, BUDGET_SPENT).await;
    let another = json!({"email": unique_email("budget-second"), "password": PASSWORD});
    expect_error(
        post(&app, "/signup", another).await,
        over,
        code,
        BUDGET_SPENT,
    )
    .await;
    let invite = call(
        &app,
        Method::POST,
        "/invite",
        Some(&service_role()),
        json!({"email": unique_email("budget-invite")}),
    )
    .await;
    expect_error(invite, over, code, BUDGET_SPENT).await;
    assert_eq!(app.mail_to(&signed_up).len(), 1, "no mail went out");
    // A generated link mails nobody and spends nothing.
    let link = call(
        &app,
        Method::POST,
        "/admin/generate_link",
        Some(&service_role()),
        json!({"type": "magiclink", "email": unique_email("budget-link")}),
    )
    .await;
    expect_json(link, StatusCode::OK).await;

    // GoTrue's `0`: no mail at all, even with the other limits off.
    let closed = app
        .with_config(|config| {
            config.rate_limits = velro::config::Switch::Off;
            config.rate_limit_email_sent = "0".parse().expect("a number");
        })
        .await;
    let (email, _) = confirmed(&closed, "budget-closed").await;
    let recover = json!({"email": email});
    expect_error(
        post(&closed, "/recover", recover).await,
        over,
        code,
        BUDGET_SPENT,
    )
    .await;
}

/// The budget is the deployment's: two instances sharing a Redis share it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_spend_one_budget_through_redis() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    if app.config.redis_url.is_none() {
        eprintln!("skipping: no Redis for the shared budget");
        return;
    }
    let first = app
        .with_config(|config| {
            config.rate_limits = velro::config::Switch::On;
            config.rate_limit_email_sent = "2/1h".parse().expect("GoTrue's burst form");
        })
        .await;
    let second = first.another_instance().await;
    for instance in [&first, &second] {
        let answer = post(
            instance,
            "/recover",
            json!({"email": unique_email("shared")}),
        )
        .await;
        expect_json(answer, StatusCode::OK).await;
    }
    for instance in [&first, &second] {
        let answer = post(
            instance,
            "/recover",
            json!({"email": unique_email("shared")}),
        )
        .await;
        expect_error(
            answer,
            StatusCode::TOO_MANY_REQUESTS,
            "over_email_send_rate_limit",
            BUDGET_SPENT,
        )
        .await;
    }
}

async fn a_second_magic_link_waits_for_the_interval_on_the_apps_clock(app: TestApp) {
    let (email, _) = confirmed(&app, "interval").await;
    expect_json(
        post(&app, "/otp", json!({"email": email})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.mail_to(&email).len(), 1);
    let over = StatusCode::TOO_MANY_REQUESTS;
    let code = "over_email_send_rate_limit";
    expect_error(
        post(&app, "/otp", json!({"email": email})).await,
        over,
        code,
        "For security purposes, you can only request this after 60 seconds.",
    )
    .await;
    app.advance(45);
    expect_error(
        post(&app, "/otp", json!({"email": email})).await,
        over,
        code,
        "For security purposes, you can only request this after 15 seconds.",
    )
    .await;
    app.advance(15);
    expect_json(
        post(&app, "/otp", json!({"email": email})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(app.mail_to(&email).len(), 2);

    // A recovery mail and a magic link are one kind, as GoTrue's `recovery_sent_at` is.
    expect_error(
        post(&app, "/otp", json!({"email": email})).await,
        over,
        code,
        "For security purposes, you can only request this after 60 seconds.",
    )
    .await;

    // A shorter setting is honoured.
    let quick = app
        .with_config(|config| {
            config.smtp_max_frequency = "5s".parse().expect("a Go duration");
        })
        .await;
    let (email, _) = confirmed(&quick, "interval-quick").await;
    expect_json(
        post(&quick, "/otp", json!({"email": email})).await,
        StatusCode::OK,
    )
    .await;
    expect_error(
        post(&quick, "/otp", json!({"email": email})).await,
        over,
        code,
        "For security purposes, you can only request this after 5 seconds.",
    )
    .await;
    quick.advance(5);
    expect_json(
        post(&quick, "/otp", json!({"email": email})).await,
        StatusCode::OK,
    )
    .await;
}

async fn recover_within_the_interval_mails_nothing_and_answers_like_an_unknown_address(
    app: TestApp,
) {
    let (email, _) = confirmed(&app, "recover-interval").await;
    let unknown = unique_email("recover-unknown");
    expect_json(
        post(&app, "/recover", json!({"email": email})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mail_count_above(&app, &email, 0).await, 1);

    // Within the minute: the same `{}` as for an address without an account, and no mail.
    for address in [&email, &unknown] {
        let answer = post(&app, "/recover", json!({"email": address})).await;
        assert_eq!(expect_json(answer, StatusCode::OK).await, json!({}));
    }
    // The magic link is refused, which shows the recovery request above was not mailed only
    // because the first one is still within the minute (the store recorded it).
    expect_error(
        post(&app, "/otp", json!({"email": email})).await,
        StatusCode::TOO_MANY_REQUESTS,
        "over_email_send_rate_limit",
        "For security purposes, you can only request this after 60 seconds.",
    )
    .await;

    app.advance(60);
    expect_json(
        post(&app, "/recover", json!({"email": email})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(mail_count_above(&app, &email, 1).await, 2);
    // Whatever a late background task would have written has had time to arrive.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.mail_to(&email).len(), 2, "one mail per minute");
    assert!(app.mail_to(&unknown).is_empty());
}

async fn concurrent_requests_send_one_mail_per_interval(app: TestApp) {
    let (email, _) = confirmed(&app, "race").await;
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let request = app
            .client
            .post(app.url("/auth/v1/otp"))
            .header("x-supabase-api-version", VERSION)
            .json(&json!({"email": email}));
        requests.spawn(async move { request.send().await.expect("request sent").status() });
    }
    let statuses = requests.join_all().await;
    let sent = statuses.iter().filter(|s| **s == StatusCode::OK).count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((sent, refused), (1, 5), "{statuses:?}");
    assert_eq!(app.mail_to(&email).len(), 1);
}

async fn weak_password_lists_every_reason_and_72_bytes_is_the_ceiling(app: TestApp) {
    let app = app
        .with_config(|config| {
            config.password_min_length = 10;
            config.password_required_characters = "0123456789:!?".into();
        })
        .await;
    let email = unique_email("weak");
    let body = expect_error(
        post(
            &app,
            "/signup",
            json!({"email": email, "password": "password"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "weak_password",
        "Password should be at least 10 characters. Password should contain at least one \
         character of each: 0123456789, !?. Password is known to be weak and easy to guess, \
         please choose a different one.",
    )
    .await;
    assert_eq!(
        body["weak_password"],
        json!({"reasons": ["length", "characters", "pwned"]})
    );
    let body = expect_error(
        post(
            &app,
            "/signup",
            json!({"email": email, "password": "long but plain"}),
        )
        .await,
        StatusCode::UNPROCESSABLE_ENTITY,
        "weak_password",
        "Password should contain at least one character of each: 0123456789, !?.",
    )
    .await;
    assert_eq!(body["weak_password"], json!({"reasons": ["characters"]}));

    // 73 bytes in 38 characters: GoTrue's bcrypt ceiling counts bytes.
    let long = format!("{}1!", "é".repeat(35) + "x");
    assert_eq!((long.len(), long.chars().count()), (73, 38));
    let at_limit = format!("{}1!", "é".repeat(34) + "xx");
    assert_eq!(at_limit.len(), 72);
    let too_long = "Password cannot be longer than 72 characters";
    let bad = StatusCode::BAD_REQUEST;
    expect_error(
        post(&app, "/signup", json!({"email": email, "password": long})).await,
        bad,
        "validation_failed",
        too_long,
    )
    .await;
    let session = expect_json(
        post(
            &app,
            "/signup",
            json!({"email": email, "password": at_limit}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let access = session["access_token"].as_str().expect("a session");
    expect_error(
        call(
            &app,
            Method::PUT,
            "/user",
            Some(access),
            json!({"password": long}),
        )
        .await,
        bad,
        "validation_failed",
        too_long,
    )
    .await;
    let admin_create = json!({"email": unique_email("weak-admin"), "password": long});
    expect_error(
        call(
            &app,
            Method::POST,
            "/admin/users",
            Some(&service_role()),
            admin_create,
        )
        .await,
        bad,
        "validation_failed",
        too_long,
    )
    .await;
    // Sign-in does not look: a long password is just a wrong one.
    let sign_in = call(
        &app,
        Method::POST,
        "/token?grant_type=password",
        None,
        json!({"email": email, "password": long}),
    )
    .await;
    expect_error(
        sign_in,
        bad,
        "invalid_credentials",
        "Invalid login credentials",
    )
    .await;
}

both_stores!(
    the_mail_budget_is_one_for_every_mail_path,
    a_second_magic_link_waits_for_the_interval_on_the_apps_clock,
    recover_within_the_interval_mails_nothing_and_answers_like_an_unknown_address,
    concurrent_requests_send_one_mail_per_interval,
    weak_password_lists_every_reason_and_72_bytes_is_the_ceiling,
);
