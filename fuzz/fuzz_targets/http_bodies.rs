//! Request bodies and query strings through the real router (the `ValidJson` and `QueryParams`
//! extractors are private to velro-http, so they are reached the way a client reaches them).
//!
//! Input: the first byte picks the endpoint, the second the `Content-Type`, the rest is the body
//! (or, for the query endpoints, the query string). Whatever the bytes, the answer is never a
//! 5xx other than the 503 that the fixture store gives to a request that got past validation,
//! every error has the contract's body, a 422 names at least one field, and a body that is not a
//! JSON object is a 422 naming `body`.

#![no_main]

use std::sync::LazyLock;

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;
use velro_fuzz::{App, SERVICE_KEY};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

static APP: LazyLock<App> = LazyLock::new(App::new);

#[derive(Clone, Copy, PartialEq)]
enum Caller {
    Anonymous,
    User,
    Admin,
}

#[derive(Clone, Copy, PartialEq)]
enum Input {
    Body,
    Query,
}

const ENDPOINTS: [(Method, &str, Caller, Input); 11] = [
    (
        Method::POST,
        "/api/v1/auth/register",
        Caller::Anonymous,
        Input::Body,
    ),
    (
        Method::POST,
        "/api/v1/auth/login",
        Caller::Anonymous,
        Input::Body,
    ),
    (
        Method::POST,
        "/api/v1/auth/refresh",
        Caller::Anonymous,
        Input::Body,
    ),
    (
        Method::POST,
        "/api/v1/auth/password-reset",
        Caller::Anonymous,
        Input::Body,
    ),
    (
        Method::POST,
        "/api/v1/auth/password-reset-confirm",
        Caller::Anonymous,
        Input::Body,
    ),
    (
        Method::PUT,
        "/api/v1/auth/profile",
        Caller::User,
        Input::Body,
    ),
    (
        Method::POST,
        "/api/v1/auth/change-password",
        Caller::User,
        Input::Body,
    ),
    (
        Method::PATCH,
        "/api/v1/admin/users/0190c5c4-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
        Caller::Admin,
        Input::Body,
    ),
    (
        Method::PUT,
        "/api/v1/admin/flags",
        Caller::Admin,
        Input::Body,
    ),
    (
        Method::GET,
        "/api/v1/admin/users",
        Caller::Admin,
        Input::Query,
    ),
    (
        Method::POST,
        "/api/v1/auth/logout",
        Caller::User,
        Input::Query,
    ),
];

/// `None` sends no `Content-Type`, which the contract reads as JSON.
const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json"),
    None,
    Some("application/merge-patch+json; charset=utf-8"),
    Some("text/plain"),
];

/// Keeps the bytes a query may hold as they are (so `&`, `=` and `%` escapes reach the parser)
/// and percent-encodes the rest.
fn query(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/?%".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [route, content_type, rest @ ..] = data else {
        return;
    };
    let (method, path, caller, input) = &ENDPOINTS[usize::from(*route) % ENDPOINTS.len()];
    let content_type = CONTENT_TYPES[usize::from(*content_type) % CONTENT_TYPES.len()];
    let app = &*APP;

    let mut request = Request::builder().method(method.clone());
    request = match input {
        Input::Body => request.uri(*path),
        Input::Query => request.uri(format!("{path}?{}", query(rest))),
    };
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    match caller {
        Caller::Anonymous => {}
        Caller::User => {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", app.user_token))
        }
        Caller::Admin => {
            request = request.header(header::AUTHORIZATION, format!("Bearer {SERVICE_KEY}"))
        }
    }
    let body = match input {
        Input::Body => Body::from(rest.to_vec()),
        Input::Query => Body::empty(),
    };
    let request = request.body(body).expect("a valid request");

    let (status, body) = RUNTIME.block_on(async {
        let response = app
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a readable body");
        (status, body)
    });

    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{method} {path}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_success() {
        return;
    }
    let error: Value = serde_json::from_slice(&body).expect("an error body is JSON");
    assert_eq!(error["status_code"], status.as_u16(), "{error}");
    assert!(
        error["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{error}"
    );
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_eq!(error["code"], "overloaded", "{error}");
    }
    if status == StatusCode::UNPROCESSABLE_ENTITY {
        assert_eq!(error["code"], "validation_failed", "{error}");
        let errors = error["errors"].as_array().expect("a 422 lists its fields");
        assert!(!errors.is_empty(), "a 422 without fields: {error}");
        for entry in errors {
            assert!(
                entry["field"].as_str().is_some_and(|f| !f.is_empty()),
                "{error}"
            );
            assert!(
                entry["message"].as_str().is_some_and(|m| !m.is_empty()),
                "{error}"
            );
        }
    }

    if *input == Input::Body {
        if content_type == Some("text/plain") {
            assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{error}");
        } else if !matches!(serde_json::from_slice::<Value>(rest), Ok(Value::Object(_))) {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
            assert_eq!(error["errors"][0]["field"], "body", "{error}");
        }
    }
});
