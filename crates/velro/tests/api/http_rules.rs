//! The rules every response follows: request ids, error shapes, body limits, media types,
//! methods, and the service endpoints.

use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{
    error_fields, expect_error, expect_invalid, expect_json, expect_session, raw_exchange,
    unique_email, TestApp, PASSWORD,
};

both_stores!(
    unknown_routes_are_404_in_the_contract_shape,
    a_sane_request_id_is_echoed_in_the_header_and_the_error_body,
    an_insane_request_id_is_replaced,
    malformed_json_is_a_validation_failure,
    json_that_is_not_an_object_names_the_body,
    a_body_over_16_kib_is_payload_too_large,
    a_body_just_under_16_kib_is_read,
    a_10_mb_body_is_refused_without_a_server_error,
    a_chunked_body_is_bounded_on_every_surface,
    a_non_json_content_type_is_unsupported_media_type,
    a_body_without_content_type_is_read_as_json,
    json_media_types_with_parameters_and_suffixes_are_accepted,
    unknown_json_fields_are_ignored,
    a_wrong_method_is_405_in_the_contract_shape,
    health_answers_ok_with_the_version,
    readiness_reports_the_database,
);

const REGISTER: &str = "/api/v1/auth/register";

fn register_body() -> Value {
    json!({"email": unique_email("rules"), "password": PASSWORD})
}

async fn raw_post(
    app: &TestApp,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = app.client.post(app.url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header(CONTENT_TYPE, content_type);
    }
    request.send().await.expect("sent")
}

async fn unknown_routes_are_404_in_the_contract_shape(app: TestApp) {
    for path in [
        "/nowhere",
        "/api/v1/auth/nowhere",
        "/api/v2/auth/login",
        "/api/v1/admin/nowhere",
    ] {
        let response = app.client.get(app.url(path)).send().await.expect("sent");
        expect_error(response, StatusCode::NOT_FOUND, "not_found").await;
    }
    let post = app
        .client
        .post(app.url("/nowhere"))
        .json(&json!({}))
        .send()
        .await
        .expect("sent");
    expect_error(post, StatusCode::NOT_FOUND, "not_found").await;
}

fn request_id(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .expect("x-request-id header")
        .to_string()
}

async fn a_sane_request_id_is_echoed_in_the_header_and_the_error_body(app: TestApp) {
    let longest = "r".repeat(128);
    for id in [
        "abc-123_XYZ",
        "!#$%&'()*+,-./:;<=>?@[]^_`{|}~",
        "x",
        longest.as_str(),
    ] {
        let failing = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("x-request-id", id)
            .json(&json!({}))
            .send()
            .await
            .expect("sent");
        assert_eq!(request_id(&failing), id);
        let body = expect_error(
            failing,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        assert_eq!(body["request_id"], id);
        let succeeding = app
            .client
            .get(app.url("/health"))
            .header("x-request-id", id)
            .send()
            .await
            .expect("sent");
        assert_eq!(succeeding.status(), StatusCode::OK);
        assert_eq!(request_id(&succeeding), id);
    }
    // Without one, every response gets a fresh one.
    let first = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    let second = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    assert!(!request_id(&first).is_empty());
    assert_ne!(request_id(&first), request_id(&second));
}

async fn an_insane_request_id_is_replaced(app: TestApp) {
    let too_long = "r".repeat(129);
    let cases = [
        HeaderValue::from_static("has space"),
        HeaderValue::from_str(&too_long).expect("header"),
        HeaderValue::from_static(""),
        HeaderValue::from_static("tab\there"),
        HeaderValue::from_bytes("caf\u{e9}".as_bytes()).expect("header"),
    ];
    for id in cases {
        let response = app
            .client
            .get(app.url("/api/v1/auth/me"))
            .header("x-request-id", id.clone())
            .send()
            .await
            .expect("sent");
        let replaced = request_id(&response);
        assert_ne!(replaced.as_bytes(), id.as_bytes());
        assert!(
            (1..=128).contains(&replaced.len()) && replaced.bytes().all(|b| b.is_ascii_graphic())
        );
        let body = expect_error(response, StatusCode::UNAUTHORIZED, "token_missing").await;
        assert_eq!(body["request_id"], replaced.as_str());
    }
}

async fn malformed_json_is_a_validation_failure(app: TestApp) {
    for body in [
        "{\"email\":",
        "{email: 1}",
        "",
        "not json",
        "{\"a\":1}}",
        "\u{feff}{}",
    ] {
        let response = raw_post(&app, REGISTER, Some("application/json"), body).await;
        let answer = expect_error(
            response,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        )
        .await;
        let fields = error_fields(&answer);
        assert!(
            fields.is_empty() || fields == ["body"],
            "{body:?}: {answer}"
        );
    }
    let invalid_utf8 = raw_post(
        &app,
        REGISTER,
        Some("application/json"),
        vec![b'{', 0xff, b'}'],
    )
    .await;
    expect_error(
        invalid_utf8,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
}

async fn json_that_is_not_an_object_names_the_body(app: TestApp) {
    for body in [
        "[]",
        "42",
        "null",
        "\"text\"",
        "true",
        "[{\"email\": \"a@example.com\"}]",
    ] {
        let response = raw_post(&app, REGISTER, Some("application/json"), body).await;
        let answer = expect_invalid(response, &["body"]).await;
        assert_eq!(answer["errors"].as_array().map(Vec::len), Some(1), "{body}");
    }
}

/// A valid register body padded with an unknown field to exactly `size` bytes.
fn padded_register_body(size: usize) -> String {
    let base = register_body();
    let empty =
        json!({"email": base["email"], "password": base["password"], "padding": ""}).to_string();
    let padding = "p".repeat(size - empty.len());
    let body = json!({"email": base["email"], "password": base["password"], "padding": padding})
        .to_string();
    assert_eq!(body.len(), size);
    body
}

async fn a_body_over_16_kib_is_payload_too_large(app: TestApp) {
    let body = padded_register_body(17 * 1024);
    let response = raw_post(&app, REGISTER, Some("application/json"), body).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let just_over = padded_register_body(16 * 1024 + 1);
    let response = raw_post(&app, REGISTER, Some("application/json"), just_over).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Every endpoint with a body has the limit, not only register.
    let response = raw_post(
        &app,
        "/api/v1/auth/login",
        Some("application/json"),
        padded_register_body(17 * 1024),
    )
    .await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
}

async fn a_body_just_under_16_kib_is_read(app: TestApp) {
    let body = padded_register_body(16 * 1024);
    let response = raw_post(&app, REGISTER, Some("application/json"), body).await;
    expect_session(response, StatusCode::CREATED).await;
}

const TEN_MB: usize = 10 * 1024 * 1024;

async fn a_10_mb_body_is_refused_without_a_server_error(app: TestApp) {
    let huge = format!("{{\"padding\": \"{}\"}}", "p".repeat(TEN_MB)).into_bytes();
    let head = format!(
        "POST {REGISTER} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        huge.len()
    );
    let response = raw_exchange(&app, head, huge.clone()).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // Without a Content-Length the limit is met while reading.
    let mut chunked = Vec::new();
    for chunk in huge.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST {REGISTER} HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let response = raw_exchange(&app, head, chunked).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    let tokens = app.register(&unique_email("huge")).await;
    let head = format!(
        "GET /api/v1/auth/me HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\nContent-Length: {}\r\n\r\n",
        tokens.access,
        huge.len()
    );
    // The contract's limit is on every body, read or not: a GET declaring 10 MB is refused too.
    let me = raw_exchange(&app, head, huge).await;
    expect_error(me, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;
    // The server is still there.
    app.me_json(&tokens.access).await;
}

/// `body` in chunks, as a client that does not know its length in advance sends it.
fn chunked(body: &[u8]) -> Vec<u8> {
    let mut chunked = Vec::new();
    for chunk in body.chunks(4096) {
        chunked.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        chunked.extend_from_slice(chunk);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    chunked
}

fn chunked_head(path: &str, content_type: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
}

/// Without a Content-Length, each surface's body reader meets the 16 KiB bound itself: the v1
/// API, /auth/v1 and the console's forms. A body at the bound is still read.
async fn a_chunked_body_is_bounded_on_every_surface(app: TestApp) {
    let at_the_bound = padded_register_body(16 * 1024).into_bytes();
    let head = chunked_head(REGISTER, "application/json");
    let response = raw_exchange(&app, head, chunked(&at_the_bound)).await;
    expect_session(response, StatusCode::CREATED).await;

    let over = padded_register_body(16 * 1024 + 1).into_bytes();
    let head = chunked_head("/api/v1/auth/login", "application/json");
    let response = raw_exchange(&app, head, chunked(&over)).await;
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large").await;

    let head = chunked_head("/auth/v1/token?grant_type=password", "application/json");
    let response = raw_exchange(&app, head, chunked(&over)).await;
    let body = expect_json(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body["error_code"], "request_entity_too_large");

    let form = format!("service_key={}", "k".repeat(16 * 1024)).into_bytes();
    let head = chunked_head("/admin/sign-in", "application/x-www-form-urlencoded");
    let response = raw_exchange(&app, head, chunked(&form)).await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
}

async fn a_non_json_content_type_is_unsupported_media_type(app: TestApp) {
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonx",
        "json",
    ] {
        let response = raw_post(
            &app,
            REGISTER,
            Some(content_type),
            register_body().to_string(),
        )
        .await;
        expect_error(
            response,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        )
        .await;
    }
}

async fn a_body_without_content_type_is_read_as_json(app: TestApp) {
    let response = raw_post(&app, REGISTER, None, register_body().to_string()).await;
    expect_session(response, StatusCode::CREATED).await;
    let bad = raw_post(&app, REGISTER, None, "not json").await;
    expect_error(bad, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed").await;
}

async fn json_media_types_with_parameters_and_suffixes_are_accepted(app: TestApp) {
    for content_type in [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.api+json",
        "application/merge-patch+json",
    ] {
        let response = raw_post(
            &app,
            REGISTER,
            Some(content_type),
            register_body().to_string(),
        )
        .await;
        expect_session(response, StatusCode::CREATED).await;
    }
}

async fn unknown_json_fields_are_ignored(app: TestApp) {
    let email = unique_email("extra");
    let body = json!({"email": email, "password": PASSWORD, "role": "admin", "credits_balance": 1_000_000, "nested": {"a": [1]}});
    let tokens = expect_session(app.register_with(body).await, StatusCode::CREATED).await;
    assert_eq!(tokens.body["user"]["role"], "viewer");
    assert_eq!(tokens.body["user"]["credits_balance"], 1000);
    let login = json!({"email": email, "password": PASSWORD, "otp": "123456"});
    expect_session(app.post("/api/v1/auth/login", login).await, StatusCode::OK).await;
}

async fn a_wrong_method_is_405_in_the_contract_shape(app: TestApp) {
    let cases = [
        (Method::GET, "/api/v1/auth/register"),
        (Method::PUT, "/api/v1/auth/login"),
        (Method::DELETE, "/api/v1/auth/me"),
        (Method::POST, "/api/v1/auth/profile"),
        (Method::GET, "/api/v1/auth/logout"),
        (Method::POST, "/api/v1/auth/sessions"),
        (Method::GET, "/api/v1/auth/password-reset"),
        (Method::POST, "/api/v1/admin/users"),
        (
            Method::PUT,
            "/api/v1/admin/users/0190e6f2-5c3a-7000-8000-000000000000",
        ),
        (Method::POST, "/health"),
    ];
    for (method, path) in cases {
        let response = app
            .client
            .request(method.clone(), app.url(path))
            .send()
            .await
            .expect("sent");
        assert_eq!(
            response.status(),
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path}"
        );
        expect_error(
            response,
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
        )
        .await;
    }
}

async fn health_answers_ok_with_the_version(app: TestApp) {
    let response = app
        .client
        .get(app.url("/health"))
        .send()
        .await
        .expect("sent");
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        body,
        json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")})
    );
    let version = body["version"].as_str().expect("version");
    assert_eq!(
        version
            .split('.')
            .filter(|part| part.parse::<u32>().is_ok())
            .count(),
        3
    );
}

async fn readiness_reports_the_database(app: TestApp) {
    let response = app
        .client
        .get(app.url("/health/ready"))
        .send()
        .await
        .expect("sent");
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["database"]["status"], "ok");
    assert!(body["checks"]["database"]["latency_ms"].is_number());
    assert!(body["checks"]["cache"]["status"].is_string());
}

/// A browser opening the service's address finds the API reference; an API client still gets the
/// contract's 404 there, and the answer tells caches that it depends on `Accept`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_address_itself_points_a_browser_to_the_docs() {
    let app = TestApp::sqlite().await;
    let page = app
        .client
        .get(app.url("/"))
        .header(
            reqwest::header::ACCEPT,
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        )
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), StatusCode::OK);
    let content_type = page.headers()[CONTENT_TYPE].to_str().expect("ASCII");
    assert!(content_type.starts_with("text/html"), "{content_type}");
    assert_eq!(page.headers()[reqwest::header::VARY], "accept");
    let html = page.text().await.expect("HTML");
    assert!(html.contains("href=\"/docs/\""), "{html}");
    let docs = app
        .client
        .get(app.url("/docs/"))
        .send()
        .await
        .expect("sent");
    assert_eq!(docs.status(), StatusCode::OK);

    let api_client = app
        .client
        .get(app.url("/"))
        .header(reqwest::header::ACCEPT, "application/json")
        .send()
        .await
        .expect("sent");
    assert_eq!(api_client.headers()[reqwest::header::VARY], "accept");
    expect_error(api_client, StatusCode::NOT_FOUND, "not_found").await;
    let post = app.client.post(app.url("/")).send().await.expect("sent");
    expect_error(post, StatusCode::NOT_FOUND, "not_found").await;
}

/// A client that uploads a chunked body far over the limit, and reads only once it has sent it
/// all, still reads the whole 413. Its receive window is kept small (two small answers come
/// first, on the same connection), so part of the 413 is still waiting on the server when the
/// upload is refused: a server that then closed with the upload unread would reset the
/// connection and the rest of the answer with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chunked_upload_over_the_limit_gets_its_whole_413_even_when_read_after_sending() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::sqlite().await;
    let address = app
        .address
        .trim_start_matches("http://")
        .parse()
        .expect("an address");
    let socket = tokio::net::TcpSocket::new_v4().expect("a socket");
    // The smallest the kernel allows: a window of about a kilobyte.
    socket.set_recv_buffer_size(1).expect("a receive buffer");
    let mut stream = socket.connect(address).await.expect("connects");
    let id = "r".repeat(128);
    let mut upload = format!(
        "GET /health HTTP/1.1\r\nHost: test\r\nx-request-id: {id}\r\n\r\n\
         GET /health HTTP/1.1\r\nHost: test\r\nx-request-id: {id}\r\n\r\n\
         POST {REGISTER} HTTP/1.1\r\nHost: test\r\nx-request-id: {id}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    // 4 MiB, 256 times the limit; the first chunk opens a JSON string so that the body is
    // refused for its size, not its syntax.
    upload.extend_from_slice(b"b\r\n{\"email\": \"\r\n");
    let chunk = vec![b'p'; 64 * 1024];
    for _ in 0..64 {
        upload.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        upload.extend_from_slice(&chunk);
        upload.extend_from_slice(b"\r\n");
    }
    upload.extend_from_slice(b"0\r\n\r\n");
    // The server stops reading the upload once it is over the limit; a write error is allowed,
    // a lost answer is not.
    let _ = stream.write_all(&upload).await;
    let mut answers = Vec::new();
    let read = stream.read_to_end(&mut answers).await;
    let text = String::from_utf8_lossy(&answers).to_string();
    let last = text
        .rfind("HTTP/1.1 ")
        .map(|start| &text[start..])
        .unwrap_or_default();
    assert!(
        last.starts_with("HTTP/1.1 413 "),
        "no 413 ({read:?}): {text:?}"
    );
    let (head, body) = last.split_once("\r\n\r\n").expect("a whole head");
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    assert_eq!(body.len(), length, "a cut answer ({read:?}): {text:?}");
    let body: Value = serde_json::from_str(body).expect("JSON");
    assert_eq!(body["code"], "payload_too_large");
    assert_eq!(body["request_id"], id.as_str());
}
