//! The Supabase (GoTrue) surface's bodies and query strings through the real router. The
//! endpoints are read from /auth/v1's own OpenAPI document (`velro_http::supabase_openapi_document`):
//! every operation that reads a JSON body or a query, called with the credential its `security`
//! names (the fixture session's Supabase token, or a `service_role` key). A route added to that
//! document is fuzzed from then on without a change here.
//!
//! Input: the first byte picks the endpoint, the second the options (bit 0: send
//! `X-Supabase-Api-Version: 2024-01-01`; bits 1-2: the `Content-Type`; bits 3-7: a preset for a
//! query parameter the document lists values of, such as `grant_type=password`). The rest is the
//! body, or the query string, or, for an endpoint that reads both, the query up to the first
//! newline and the body after it.
//!
//! Whatever the bytes: never a 5xx but the 503 the fixture store gives to a request that got past
//! validation; every error has GoTrue's body in the shape the version header asks for, with its
//! code in `x-sb-error-code`; a body that is not JSON is `400 bad_json`; `GET /verify` redirects
//! only to the site URL (or loopback), never elsewhere.

#![no_main]

use std::sync::LazyLock;

use axum::body::{to_bytes, Body};
use axum::http::{header, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt;
use velro_fuzz::{service_role_token, user, App, SITE_URL};

static RUNTIME: LazyLock<tokio::runtime::Runtime> = LazyLock::new(|| {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
});

static APP: LazyLock<App> = LazyLock::new(App::new);
static SERVICE_ROLE: LazyLock<String> = LazyLock::new(service_role_token);

#[derive(Clone, Copy, PartialEq, Debug)]
enum Caller {
    Anonymous,
    User,
    Admin,
}

#[derive(Debug)]
struct Endpoint {
    method: Method,
    path: String,
    caller: Caller,
    body: bool,
    query: bool,
    /// `name=value` for each value of each query parameter with an `enum`.
    presets: Vec<String>,
}

/// The fuzzable operations of the document, in its (sorted) order.
static ENDPOINTS: LazyLock<Vec<Endpoint>> = LazyLock::new(|| {
    let document: Value =
        serde_json::from_str(velro_http::supabase_openapi_document()).expect("the document");
    let mut endpoints = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "put" => Method::PUT,
                "post" => Method::POST,
                "delete" => Method::DELETE,
                "patch" => Method::PATCH,
                _ => continue,
            };
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let query = parameters.iter().any(|p| p["in"] == "query");
            let body = operation.get("requestBody").is_some();
            if !query && !body {
                continue;
            }
            let security = operation["security"].to_string();
            let caller = if security.contains("supabase_admin") {
                Caller::Admin
            } else if security.contains("supabase_user") {
                Caller::User
            } else {
                Caller::Anonymous
            };
            let mut presets = Vec::new();
            for parameter in parameters.iter().filter(|p| p["in"] == "query") {
                let name = parameter["name"].as_str().unwrap_or_default();
                // `{"enum": […]}`, or one branch of a `oneOf` for an optional parameter.
                let schema = &parameter["schema"];
                let branches = schema["oneOf"].as_array().cloned().unwrap_or_default();
                for values in std::iter::once(schema)
                    .chain(branches.iter())
                    .filter_map(|s| s["enum"].as_array())
                {
                    for value in values.iter().filter_map(Value::as_str) {
                        presets.push(format!("{name}={value}"));
                    }
                }
            }
            // The fixture user's id, so an id in the path names someone.
            let path = path.replace("{id}", &user().id.0.to_string());
            endpoints.push(Endpoint {
                method,
                path,
                caller,
                body,
                query,
                presets,
            });
        }
    }
    assert!(endpoints.len() >= 8, "{endpoints:?}");
    endpoints
});

/// `None` sends no `Content-Type`; GoTrue reads the body as JSON whatever it says.
const CONTENT_TYPES: [Option<&str>; 4] = [
    Some("application/json;charset=UTF-8"),
    None,
    Some("application/json"),
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

/// A redirect stays on the site (any path) or on a loopback address, as the redirect policy
/// allows with an empty allow list.
fn stays_home(location: &str) -> bool {
    let Ok(url) = url::Url::parse(location) else {
        return false;
    };
    let site = url::Url::parse(SITE_URL).expect("the site URL");
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let same_site = url.scheme() == site.scheme() && url.host_str() == site.host_str();
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    same_site || loopback
}

fuzz_target!(|data: &[u8]| {
    let [route, options, rest @ ..] = data else {
        return;
    };
    let endpoint = &ENDPOINTS[usize::from(*route) % ENDPOINTS.len()];
    let dated = (options & 1) == 1;
    let content_type = CONTENT_TYPES[usize::from((options >> 1) & 3)];
    let preset = usize::from(options >> 3);
    let (query_bytes, body_bytes): (&[u8], &[u8]) = match (endpoint.query, endpoint.body) {
        (true, true) => match rest.iter().position(|&b| b == b'\n') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (&[], rest),
        },
        (true, false) => (rest, &[]),
        _ => (&[], rest),
    };
    let mut query_string = query(query_bytes);
    if preset > 0 && !endpoint.presets.is_empty() {
        let chosen = &endpoint.presets[(preset - 1) % endpoint.presets.len()];
        query_string = if query_string.is_empty() {
            chosen.clone()
        } else {
            format!("{chosen}&{query_string}")
        };
    }
    let app = &*APP;

    let uri = if query_string.is_empty() {
        endpoint.path.clone()
    } else {
        format!("{}?{query_string}", endpoint.path)
    };
    let mut request = Request::builder().method(endpoint.method.clone()).uri(&uri);
    if let Some(content_type) = content_type {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    if dated {
        request = request.header("x-supabase-api-version", "2024-01-01");
    }
    match endpoint.caller {
        Caller::Anonymous => {}
        Caller::User => {
            request = request.header(
                header::AUTHORIZATION,
                format!("Bearer {}", app.supabase_token),
            )
        }
        Caller::Admin => {
            request = request.header(header::AUTHORIZATION, format!("Bearer {}", *SERVICE_ROLE))
        }
    }
    let body = if endpoint.body {
        Body::from(body_bytes.to_vec())
    } else {
        Body::empty()
    };
    let Ok(request) = request.body(body) else {
        // Not a valid URI; no client could send it.
        return;
    };

    let (status, headers, body) = RUNTIME.block_on(async {
        let response = app
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let headers = response.headers().clone();
        let body = to_bytes(response.into_body(), usize::MAX)
            .await
            .expect("a readable body");
        (status, headers, body)
    });
    let method = &endpoint.method;

    assert!(
        !status.is_server_error() || status == StatusCode::SERVICE_UNAVAILABLE,
        "{method} {uri}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    if status.is_redirection() {
        let location = headers
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .expect("a redirect has a Location");
        assert!(
            stays_home(location),
            "{method} {uri}: redirects to {location}"
        );
        return;
    }
    if status.is_success() {
        return;
    }
    let error: Value = serde_json::from_slice(&body).expect("an error body is JSON");
    let code_header = headers
        .get("x-sb-error-code")
        .and_then(|c| c.to_str().ok())
        .expect("x-sb-error-code");
    let fields: Vec<&str> = error
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    let code = if dated {
        assert_eq!(
            headers["x-supabase-api-version"], "2024-01-01",
            "the version is echoed"
        );
        assert!(error["message"].is_string(), "{error}");
        error["code"].as_str().expect("a string code")
    } else {
        assert_eq!(error["code"], status.as_u16(), "{error}");
        assert!(error["msg"].is_string(), "{error}");
        error["error_code"].as_str().expect("an error_code")
    };
    assert!(!code.is_empty(), "{error}");
    assert_eq!(code, code_header, "{error}");
    let expected_fields = (if dated { 2 } else { 3 }) + usize::from(code == "weak_password");
    assert_eq!(fields.len(), expected_fields, "{error}");
    if status == StatusCode::SERVICE_UNAVAILABLE {
        assert_eq!(code, "unexpected_failure", "{error}");
    }

    if endpoint.body {
        let blank = body_bytes.iter().all(u8::is_ascii_whitespace);
        // Invalid UTF-8 inside an ignored field's string is skipped unread (serde's
        // IgnoredAny), so only UTF-8 bodies must be JSON to be read.
        let utf8 = std::str::from_utf8(body_bytes).is_ok();
        if !blank && utf8 && serde_json::from_slice::<Value>(body_bytes).is_err() {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
            assert_eq!(code, "bad_json", "{error}");
        }
    }
});
