//! The contract, machine-readable: the OpenAPI 3.1 document generated from the handlers'
//! `#[utoipa::path]` attributes (GET /openapi.json), a Swagger UI reference at GET /docs whose
//! assets are compiled into the binary, and at GET / a page for browsers that points to both. The
//! page, the reference and the status page's HTML are for people, so the document does not list
//! them. Every schema is derived on the type that reads or writes the body, beside its handler;
//! this module only gathers them.

use std::sync::OnceLock;

use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    Content, Header, Object, OpenApi as Document, Ref, RefOr, ResponseBuilder, Type,
};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::{ApiError, AppState};

/// The docs page runs its own (self-hosted) scripts and Swagger UI's inline styles; nothing else.
/// Set here so that the JSON API's stricter policy, set by the security-headers layer when a
/// response has none, does not break the page.
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

pub(super) fn router() -> Router<AppState> {
    let swagger =
        SwaggerUi::new("/docs").config(Config::from("/openapi.json").validator_url("none"));
    let docs =
        Router::<AppState>::from(swagger).layer(axum::middleware::map_response(with_docs_csp));
    Router::new()
        .route("/openapi.json", get(openapi_json))
        // Other methods keep the unknown route's 404, as before there was a page.
        .route("/", get(home).fallback(|| async { ApiError::NotFound }))
        .merge(docs)
}

/// What a browser shows at the service's address.
const HOME_PAGE: &str = "<!doctype html>
<html lang=\"en\">
<head><meta charset=\"utf-8\"><title>Velro Auth API</title></head>
<body>
<h1>Velro Auth API</h1>
<p>This address serves a JSON API. Its reference is at <a href=\"/docs/\">/docs</a>; the
machine-readable contract is at <a href=\"/openapi.json\">/openapi.json</a>.</p>
<p>Is it working? See the <a href=\"/status\">status page</a>.</p>
</body>
</html>
";

/// Whether the client asked for HTML: a browser's navigation does, an API client does not.
fn accepts_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|range| {
            let mut parts = range.split(';').map(str::trim);
            let essence = parts.next().unwrap_or_default();
            let refused = parts.any(|param| {
                param
                    .strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            essence.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// A page for people; everyone else keeps the contract's 404 for a route that is not the API's.
async fn home(headers: HeaderMap) -> Response {
    let mut response = if accepts_html(&headers) {
        (
            [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
            HOME_PAGE,
        )
            .into_response()
    } else {
        ApiError::NotFound.into_response()
    };
    // The answer depends on Accept, so caches must key on it.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("accept"));
    response
}

async fn with_docs_csp(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(DOCS_CSP),
    );
    response
}

/// The document, serialised once per process.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| ApiDoc::openapi().to_pretty_json().unwrap_or_default())
}

async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Velro Auth API",
        description = "Velro Auth API v1. Every non-2xx response (except /health/ready's 503) has the \
            `ErrorResponse` body; `code` is the stable machine code. Every response carries `x-request-id`.",
        license(name = "MIT")
    ),
    paths(
        super::auth::register,
        super::auth::login,
        super::auth::get_me,
        super::auth::update_profile,
        super::auth::refresh,
        super::auth::logout,
        super::auth::request_password_reset,
        super::auth::confirm_password_reset,
        super::auth::change_password,
        super::auth::list_sessions,
        super::auth::revoke_session,
        super::admin::list_users,
        super::admin::get_user,
        super::admin::update_user,
        super::admin::delete_user,
        super::admin::revoke_sessions,
        super::admin::get_flags,
        super::admin::put_flags,
        super::incidents::list_incidents,
        super::incidents::open_incident,
        super::incidents::update_incident,
        super::status::status_json,
        super::status::status_feed,
        super::health::health,
        super::health::ready,
        super::health::metrics,
        super::jwks::jwks,
    ),
    modifiers(&CommonResponses),
    tags(
        (name = "auth", description = "User-facing endpoints (/api/v1/auth)"),
        (name = "admin", description = "User administration and incidents behind the service key (/api/v1/admin)"),
        (name = "service", description = "Liveness, readiness, metrics, the token-verification keys and the status page's data"),
    )
)]
pub struct ApiDoc;

pub(crate) const BEARER_JWT: &str = "bearer_jwt";
pub(crate) const SERVICE_KEY: &str = "service_key";

/// Adds what every operation shares, so the handlers' attributes list only their own answers:
/// the security schemes, 503 (`overloaded`, `timeout`) everywhere, 413/415/422 wherever a JSON
/// body is read, and the headers the contract promises (`Retry-After` on 429 and 503,
/// `WWW-Authenticate` on 401 of Bearer endpoints, `x-request-id` on every response).
struct CommonResponses;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("ErrorResponse"))),
        )
        .into()
}

fn header(kind: Type, description: &str) -> Header {
    HeaderBuilder::new()
        .schema(Object::with_type(kind))
        .description(Some(description))
        .build()
}

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER_JWT,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            SERVICE_KEY,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("The configured service key (VELRO_SERVICE_KEY)"))
                    .build(),
            ),
        );
        for item in openapi.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ];
            for operation in operations.into_iter().flatten() {
                let responses = &mut operation.responses.responses;
                responses.entry("503".into()).or_insert_with(|| {
                    error_response("`overloaded` (a queue or the database is saturated) or `timeout` (the request deadline passed)")
                });
                if operation.request_body.is_some() {
                    responses.entry("413".into()).or_insert_with(|| {
                        error_response("`payload_too_large`: the body is over 16 KiB")
                    });
                    responses.entry("415".into()).or_insert_with(|| {
                        error_response("`unsupported_media_type`: a Content-Type other than application/json or application/*+json")
                    });
                    responses.entry("422".into()).or_insert_with(|| {
                        error_response("`validation_failed`: malformed JSON, not an object, or bad or missing fields (one `errors` entry each)")
                    });
                }
                let bearer = operation.security.iter().flatten().any(|requirement| {
                    serde_json::to_value(requirement)
                        .is_ok_and(|v| v.get(BEARER_JWT).is_some() || v.get(SERVICE_KEY).is_some())
                });
                for (status, response) in responses.iter_mut() {
                    let RefOr::T(response) = response else {
                        continue;
                    };
                    if status == "429" || status == "503" {
                        response.headers.insert(
                            "Retry-After".into(),
                            header(Type::Integer, "Whole seconds to wait before retrying"),
                        );
                    }
                    if status == "401" && bearer {
                        response.headers.insert(
                            "WWW-Authenticate".into(),
                            header(Type::String, "`Bearer`, with `error=\"invalid_token\"` when a token was sent and rejected"),
                        );
                    }
                    response.headers.insert(
                        "x-request-id".into(),
                        header(
                            Type::String,
                            "The client's sane x-request-id, or a fresh one",
                        ),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed() -> serde_json::Value {
        serde_json::from_str(document()).expect("the document is JSON")
    }

    #[test]
    fn the_document_is_openapi_3_1_with_every_endpoint_of_the_contract() {
        let doc = parsed();
        assert!(
            doc["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.1")),
            "{}",
            doc["openapi"]
        );
        let expected = [
            ("/api/v1/auth/register", "post"),
            ("/api/v1/auth/login", "post"),
            ("/api/v1/auth/me", "get"),
            ("/api/v1/auth/profile", "put"),
            ("/api/v1/auth/refresh", "post"),
            ("/api/v1/auth/logout", "post"),
            ("/api/v1/auth/password-reset", "post"),
            ("/api/v1/auth/password-reset-confirm", "post"),
            ("/api/v1/auth/change-password", "post"),
            ("/api/v1/auth/sessions", "get"),
            ("/api/v1/auth/sessions/{id}", "delete"),
            ("/api/v1/admin/users", "get"),
            ("/api/v1/admin/users/{id}", "get"),
            ("/api/v1/admin/users/{id}", "patch"),
            ("/api/v1/admin/users/{id}", "delete"),
            ("/api/v1/admin/flags", "get"),
            ("/api/v1/admin/flags", "put"),
            ("/api/v1/admin/incidents", "get"),
            ("/api/v1/admin/incidents", "post"),
            ("/api/v1/admin/incidents/{id}", "patch"),
            ("/status.json", "get"),
            ("/status/feed.atom", "get"),
            ("/health", "get"),
            ("/health/ready", "get"),
            ("/metrics", "get"),
        ];
        for (path, method) in expected {
            let operation = &doc["paths"][path][method];
            assert!(operation.is_object(), "{method} {path} is not documented");
            assert!(
                operation["responses"]["503"].is_object(),
                "{method} {path}: no 503"
            );
            if operation.get("requestBody").is_some() {
                for status in ["413", "415", "422"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
            if operation.get("security").is_some() {
                let unauthorized = &operation["responses"]["401"];
                assert!(
                    unauthorized["headers"]["WWW-Authenticate"].is_object(),
                    "{method} {path}: no challenge"
                );
            }
            if let Some(limited) = operation["responses"].get("429") {
                assert!(
                    limited["headers"]["Retry-After"].is_object(),
                    "{method} {path}"
                );
            }
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[BEARER_JWT]["scheme"], "bearer");
        assert_eq!(schemes[SERVICE_KEY]["scheme"], "bearer");
        let error = &doc["components"]["schemas"]["ErrorResponse"];
        let mut required: Vec<_> = error["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["code", "detail", "request_id", "status_code"]);
    }

    #[test]
    fn request_bodies_carry_the_contract_bounds() {
        let doc = parsed();
        let register = &doc["components"]["schemas"]["RegisterBody"];
        assert_eq!(register["properties"]["password"]["minLength"], 8);
        assert_eq!(register["properties"]["password"]["maxLength"], 128);
        assert_eq!(register["properties"]["email"]["maxLength"], 254);
        let mut required: Vec<_> = register["required"]
            .as_array()
            .expect("required")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["email", "password"]);
    }

    #[test]
    fn only_a_client_that_asks_for_html_gets_the_page() {
        let with = |accept: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(
                header::ACCEPT,
                HeaderValue::from_str(accept).expect("a header value"),
            );
            accepts_html(&headers)
        };
        assert!(with(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(with("Text/HTML; q=0.5"));
        assert!(!with("application/json"));
        assert!(!with("*/*"));
        assert!(!with("text/html;q=0, application/json"));
        assert!(!accepts_html(&HeaderMap::new()));
    }

    #[test]
    #[ignore = "prints the document: cargo test -p velro-http print_the_document -- --ignored --nocapture"]
    fn print_the_document() {
        println!("{}", document());
    }
}
