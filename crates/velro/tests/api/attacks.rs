//! An attacker's test suite: enumeration, injection and encoding tricks, and races. Every hostile
//! input gets a contract error (or is stored as plain data), never a 500.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{
    expect_error, expect_error_in, expect_invalid, expect_json, expect_rejected_token,
    expect_session, raw_exchange, unique_email, TestApp, PASSWORD, SERVICE_KEY,
};

both_stores!(
    password_reset_answers_known_unknown_and_recased_emails_identically,
    sql_metacharacters_are_data_never_code,
    nul_bytes_in_bodies_are_refused_or_kept_as_data,
    invalid_and_overlong_utf8_bodies_are_validation_failures,
    homoglyph_emails_are_refused_or_fold_onto_the_same_account,
    mixed_case_and_unicode_padded_emails_reach_the_same_account,
    ten_megabyte_bodies_are_refused_on_every_body_endpoint,
    deeply_nested_json_is_a_validation_failure,
    one_refresh_token_replayed_after_grace_from_two_clients_at_once_revokes_the_session,
);

const REGISTER: &str = "/api/v1/auth/register";
const LOGIN: &str = "/api/v1/auth/login";

/// A raw body with an explicit Content-Type, for bytes that `json!` cannot produce.
async fn post_bytes(app: &TestApp, path: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .expect("sent")
}

async fn password_reset_answers_known_unknown_and_recased_emails_identically(app: TestApp) {
    let email = unique_email("reset-enum");
    app.register(&email).await;
    let mut answers = Vec::new();
    for candidate in [email.clone(), email.to_uppercase(), unique_email("nobody")] {
        let response = app.request_reset(&candidate).await;
        let mut headers: Vec<String> = response
            .headers()
            .keys()
            .map(|name| name.as_str().to_string())
            .filter(|name| name != "date")
            .collect();
        headers.sort();
        let mut body = expect_json(response, StatusCode::ACCEPTED).await;
        body["request_id"] = Value::Null;
        answers.push((headers, body));
    }
    assert_eq!(answers[0], answers[1]);
    assert_eq!(answers[0], answers[2]);
}

async fn sql_metacharacters_are_data_never_code(app: TestApp) {
    // An apostrophe is legal in the local part: it must be stored and matched literally.
    let email = unique_email("o'hara");
    let name = "Robert'); DROP TABLE users; -- \" ` \\ %_";
    let body = json!({"email": email, "password": PASSWORD, "full_name": name});
    let tokens = expect_session(app.register_with(body).await, StatusCode::CREATED).await;
    assert_eq!(tokens.body["user"]["display_name"], name);
    assert_eq!(tokens.body["user"]["email"], email.as_str());
    app.login(&email, PASSWORD).await;

    // Not an email at all: 422 naming the field. `%` is legal in a local part: an unknown
    // account, 401.
    for hostile in [
        "' OR '1'='1",
        "admin@example.com' --",
        "x@example.com; DROP TABLE users",
        "\" OR \"\"=\"",
    ] {
        expect_invalid(app.login_response(hostile, PASSWORD).await, &["email"]).await;
    }
    let unknown = app.login_response("%@example.com", PASSWORD).await;
    expect_error(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let injected_password = app.login_response(&email, "' OR '1'='1' --").await;
    expect_error(
        injected_password,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    )
    .await;

    // The admin filter is a literal prefix: LIKE wildcards match nothing here.
    app.register(&unique_email("plain")).await;
    for wildcard in ["%25", "_", "%25%40", "'%20OR%20'1'%3D'1"] {
        let page = expect_json(
            app.admin(Method::GET, &format!("/users?email={wildcard}"), None)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(page["users"], json!([]), "email={wildcard}");
    }
    let page = expect_json(
        app.admin(Method::GET, "/users?email=o'hara", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["users"].as_array().map(Vec::len), Some(1), "{page}");
    // Everything is still there.
    expect_json(app.admin(Method::GET, "/users", None).await, StatusCode::OK).await;
    app.me_json(&tokens.access).await;
}

async fn nul_bytes_in_bodies_are_refused_or_kept_as_data(app: TestApp) {
    let register = |email: &str, password: &str, name: &str| json!({"email": email, "password": password, "full_name": name});
    let bad_email = register("nul\u{0}@example.com", PASSWORD, "Nul");
    expect_invalid(app.register_with(bad_email).await, &["email"]).await;
    let email = unique_email("nul");
    let nul_name = register(&email, PASSWORD, "Ada\u{0}Lovelace");
    // A control character has no place in a name shown to people.
    expect_invalid(app.register_with(nul_name).await, &["full_name"]).await;
    // A NUL inside a password is one more character: whatever is stored verifies exactly.
    let email = unique_email("nul-password");
    let password = "correct horse\u{0}battery staple";
    let response = app.register_with(register(&email, password, "Nul")).await;
    expect_session(response, StatusCode::CREATED).await;
    app.login(&email, password).await;
    let truncated = app.login_response(&email, "correct horse").await;
    expect_error(truncated, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    // A raw NUL byte is not JSON at all.
    let raw = b"{\"email\": \"a\x00@example.com\", \"password\": \"x\"}".to_vec();
    expect_invalid(post_bytes(&app, LOGIN, raw).await, &["body"]).await;
    // Nor in a refresh token or a reset token.
    let refresh = app.refresh_response("abc\u{0}def").await;
    expect_error(refresh, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    let confirm = app.confirm_reset("abc\u{0}def", PASSWORD).await;
    expect_error(confirm, StatusCode::BAD_REQUEST, "reset_token_invalid").await;
}

async fn invalid_and_overlong_utf8_bodies_are_validation_failures(app: TestApp) {
    let cases: [&[u8]; 6] = [
        // An overlong encoding of '/', and of NUL.
        b"{\"email\": \"a\xC0\xAF@example.com\", \"password\": \"x\"}",
        b"{\"email\": \"a\xC0\x80@example.com\", \"password\": \"x\"}",
        // A UTF-8-encoded surrogate, a stray continuation byte, and bytes that never occur.
        b"{\"email\": \"a\xED\xA0\x80@example.com\", \"password\": \"x\"}",
        b"{\"email\": \"a\x80@example.com\", \"password\": \"x\"}",
        b"{\"email\": \"a@example.com\", \"password\": \"\xFF\xFE\"}",
        // A truncated multi-byte sequence at the very end.
        b"{\"email\": \"a@example.com\", \"password\": \"\xE2\x82",
    ];
    for body in cases {
        expect_invalid(post_bytes(&app, LOGIN, body.to_vec()).await, &["body"]).await;
        expect_invalid(post_bytes(&app, REGISTER, body.to_vec()).await, &["body"]).await;
    }
    // A lone surrogate escape is valid JSON syntax but not a Unicode string.
    let lone = br#"{"email": "a\ud800@example.com", "password": "correct horse battery"}"#;
    expect_invalid(post_bytes(&app, REGISTER, lone.to_vec()).await, &["body"]).await;
    // Invalid UTF-8 in a query string is read leniently and matches nothing.
    let page = expect_json(
        app.admin(Method::GET, "/users?email=%C0%AF", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(page["users"], json!([]));
}

async fn homoglyph_emails_are_refused_or_fold_onto_the_same_account(app: TestApp) {
    let email = unique_email("kate");
    let tokens = app.register(&email).await;
    let id = tokens.user_id();
    let (local, domain) = email.split_once('@').expect("an email");
    let rest = &local[1..];
    let lookalikes = [
        format!("\u{0430}{local}@{domain}"), // Cyrillic а before it
        format!("{local}@{}", domain.replacen('e', "\u{0435}", 1)), // Cyrillic е in the domain
        format!("\u{FF4B}{rest}@{domain}"),  // fullwidth ｋ
        format!("{local}\u{200B}@{domain}"), // zero-width space
        format!("{local}@{domain}\u{0301}"), // combining accent
        format!("\u{212A}{rest}@{domain}"),  // KELVIN SIGN, which lowercases to ASCII k
    ];
    for lookalike in lookalikes {
        let response = app.register_response(&lookalike, PASSWORD).await;
        match response.status() {
            StatusCode::UNPROCESSABLE_ENTITY => {
                expect_invalid(response, &["email"]).await;
            }
            // Folding onto the ASCII address is fine: it is the same account, not a twin.
            StatusCode::CONFLICT => {
                expect_error(response, StatusCode::CONFLICT, "email_exists").await;
                let same = app.login(&lookalike, PASSWORD).await;
                assert_eq!(same.user_id(), id, "{lookalike}");
            }
            other => panic!("{lookalike:?} made a second account or failed: {other}"),
        }
    }
}

async fn mixed_case_and_unicode_padded_emails_reach_the_same_account(app: TestApp) {
    let email = unique_email("mixed");
    let tokens = app.register(&email).await;
    for variant in [
        email.to_uppercase(),
        format!("\u{2003}{}\u{00A0}", email.to_uppercase()),
        format!("\u{3000}{email}\t\n"),
    ] {
        let duplicate = app.register_response(&variant, PASSWORD).await;
        expect_error(duplicate, StatusCode::CONFLICT, "email_exists").await;
        let same = app.login(&variant, PASSWORD).await;
        assert_eq!(same.user_id(), tokens.user_id());
        assert_eq!(same.body["user"]["email"], email.as_str());
    }
}

const TEN_MB: usize = 10 * 1024 * 1024;

async fn ten_megabyte_bodies_are_refused_on_every_body_endpoint(app: TestApp) {
    let tokens = app.register(&unique_email("huge")).await;
    let huge = format!("{{\"padding\": \"{}\"}}", "p".repeat(TEN_MB)).into_bytes();
    let user = format!("Authorization: Bearer {}\r\n", tokens.access);
    let admin = format!("Authorization: Bearer {SERVICE_KEY}\r\n");
    let id = tokens.user_id();
    let targets = [
        ("POST", LOGIN.to_string(), String::new()),
        ("POST", "/api/v1/auth/refresh".to_string(), String::new()),
        (
            "POST",
            "/api/v1/auth/password-reset".to_string(),
            String::new(),
        ),
        (
            "POST",
            "/api/v1/auth/password-reset-confirm".to_string(),
            String::new(),
        ),
        ("PUT", "/api/v1/auth/profile".to_string(), user.clone()),
        ("POST", "/api/v1/auth/change-password".to_string(), user),
        ("PATCH", format!("/api/v1/admin/users/{id}"), admin),
    ];
    for (method, path, authorization) in targets {
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: test\r\n{authorization}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            huge.len()
        );
        let response = raw_exchange(&app, head, huge.clone()).await;
        expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    }
    app.me_json(&tokens.access).await;
}

async fn deeply_nested_json_is_a_validation_failure(app: TestApp) {
    // Each fits in the 16 KiB limit, so the parser (not the size check) meets them.
    let arrays = format!("{}{}", "[".repeat(8000), "]".repeat(8000));
    let objects = format!("{}1{}", "{\"a\":".repeat(2500), "}".repeat(2500));
    let in_a_field = format!(
        "{{\"email\": {}\"x\"{}, \"password\": \"x\"}}",
        "[".repeat(5000),
        "]".repeat(5000)
    );
    let unclosed = "[".repeat(16_000);
    for body in [arrays, objects, in_a_field, unclosed] {
        for path in [REGISTER, LOGIN, "/api/v1/auth/refresh"] {
            let response = post_bytes(&app, path, body.clone().into_bytes()).await;
            expect_invalid(response, &["body"]).await;
        }
    }
    // Nested within the parser's limit: parsed, then refused field by field.
    let shallow = json!({"email": {"a": [[[[{"b": [1, 2, 3]}]]]]}, "password": [[["x"]]]});
    expect_invalid(app.post(LOGIN, shallow).await, &["email", "password"]).await;
    app.register(&unique_email("still-up")).await;
}

async fn one_refresh_token_replayed_after_grace_from_two_clients_at_once_revokes_the_session(
    app: TestApp,
) {
    let email = unique_email("stolen-twice");
    let tokens = app.register(&email).await;
    let other = app.login(&email, PASSWORD).await;
    let successor = app.refresh(&tokens.refresh).await;
    app.advance(app.config.refresh_reuse_grace_secs as i64 + 1);
    let body = json!({"refresh_token": tokens.refresh});
    let first = app.post("/api/v1/auth/refresh", body.clone());
    let second = app.post("/api/v1/auth/refresh", body);
    let (first, second) = tokio::join!(first, second);
    let dead = ["refresh_token_reused", "refresh_token_invalid"];
    let first = expect_error_in(first, StatusCode::UNAUTHORIZED, &dead).await;
    let second = expect_error_in(second, StatusCode::UNAUTHORIZED, &dead).await;
    assert!(
        first["code"] == "refresh_token_reused" || second["code"] == "refresh_token_reused",
        "one replay is reported as reuse: {first} {second}"
    );
    expect_rejected_token(app.me(&tokens.access).await, "session_revoked").await;
    expect_rejected_token(app.me(&successor.access).await, "session_revoked").await;
    // The successor was never spent, only revoked with its session.
    let refreshed = app.refresh_response(&successor.refresh).await;
    expect_error(refreshed, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    // The user's other session is untouched.
    app.me_json(&other.access).await;
}

/// The machine-readable contract and its reference page are served by the binary itself (no CDN),
/// the page under a policy that allows only its own scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_and_the_docs_page_are_served_by_the_binary() {
    let app = TestApp::sqlite().await;
    let document = expect_json(
        app.client
            .get(app.url("/openapi.json"))
            .send()
            .await
            .expect("sent"),
        StatusCode::OK,
    )
    .await;
    assert!(document["openapi"]
        .as_str()
        .is_some_and(|v| v.starts_with("3.1")));
    let mut documented: Vec<String> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, operations)| {
            let operations = operations.as_object().expect("operations");
            operations
                .keys()
                .map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect();
    documented.sort();
    // Every route the router serves, but the document itself, the docs page, the page at /
    // that points a browser to them, the status page's HTML, and the operators' console under /admin (HTML pages and
    // forms, not API).
    let mut served: Vec<String> = [
        "POST /api/v1/auth/register",
        "POST /api/v1/auth/login",
        "GET /api/v1/auth/me",
        "PUT /api/v1/auth/profile",
        "POST /api/v1/auth/refresh",
        "POST /api/v1/auth/logout",
        "POST /api/v1/auth/password-reset",
        "POST /api/v1/auth/password-reset-confirm",
        "POST /api/v1/auth/change-password",
        "GET /api/v1/auth/sessions",
        "DELETE /api/v1/auth/sessions/{id}",
        "GET /api/v1/admin/users",
        "GET /api/v1/admin/users/{id}",
        "PATCH /api/v1/admin/users/{id}",
        "DELETE /api/v1/admin/users/{id}",
        "DELETE /api/v1/admin/users/{id}/sessions",
        "GET /api/v1/admin/flags",
        "PUT /api/v1/admin/flags",
        "GET /api/v1/admin/incidents",
        "POST /api/v1/admin/incidents",
        "PATCH /api/v1/admin/incidents/{id}",
        "GET /status.json",
        "GET /status/feed.atom",
        "GET /health",
        "GET /health/ready",
        "GET /metrics",
        "GET /.well-known/jwks.json",
    ]
    .map(String::from)
    .to_vec();
    served.sort();
    assert_eq!(documented, served);
    let page = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page
        .headers()
        .get(reqwest::header::CONTENT_SECURITY_POLICY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .expect("a Content-Security-Policy");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let html = page.text().await.expect("HTML");
    assert!(
        !html.contains("//cdn") && !html.contains("https://"),
        "{html}"
    );
    for asset in [
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-initializer.js",
    ] {
        let response = app
            .client
            .get(app.url(&format!("/docs/{asset}")))
            .send()
            .await
            .expect("sent");
        assert_eq!(response.status(), StatusCode::OK, "{asset}");
    }
    let initializer = app
        .client
        .get(app.url("/docs/swagger-initializer.js"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("text");
    assert!(initializer.contains("/openapi.json"), "{initializer}");
}

/// Slowloris: a client that trickles its request head, a byte at a time, is cut off once the
/// head timeout has passed, while other clients are served meanwhile.
#[tokio::test]
async fn a_request_head_trickled_past_the_timeout_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::sqlite()
        .await
        .with_config(|config| config.header_read_timeout_ms = 300)
        .await;
    let address = app.address.trim_start_matches("http://");
    let mut slow = tokio::net::TcpStream::connect(address)
        .await
        .expect("connects");
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: velro\r\nX-Slow: ")
        .await
        .expect("writes");
    let trickle = async {
        let mut answer = Vec::new();
        let mut buffer = [0_u8; 1024];
        loop {
            // A byte every 50 ms: the head grows forever and is never finished.
            match tokio::time::timeout(Duration::from_millis(50), slow.read(&mut buffer)).await {
                Ok(Ok(0) | Err(_)) => return answer,
                Ok(Ok(n)) => answer.extend_from_slice(&buffer[..n]),
                Err(_) => {
                    if slow.write_all(b"a").await.is_err() {
                        return answer;
                    }
                }
            }
        }
    };
    // A bound far above the 300 ms timeout, only so that a regression fails instead of hanging.
    let answer = tokio::time::timeout(Duration::from_secs(60), trickle)
        .await
        .expect("the server closed the trickling connection");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "no answer, or 408, for a head that never ends: {answer:?}"
    );
    let health = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("answers");
    assert_eq!(health.status(), StatusCode::OK);
}
