//! /auth/v1's own OpenAPI 3.1 document, at `GET /auth/v1/openapi.json`, generated from the
//! handlers' `#[utoipa::path]` attributes like the v1 document (`GET /openapi.json`) but kept
//! apart from it: the two surfaces have different error bodies, status codes and credentials,
//! and the v1 document is the v1 contract, which stays exactly as it is. The paths are written
//! in full (`/auth/v1/...`); with `VELRO_SUPABASE_AT_ROOT` the same operations answer at `/`.
//!
//! Documenting a new route is one step: give its handler a `#[utoipa::path(..., tag =
//! "supabase")]` attribute (a request body is its own `ToSchema` type, query parameters an
//! `IntoParams` type, errors `body = ErrorBody`) and list the handler in `paths(...)` below.
//! The test `every_route_of_the_surface_is_in_the_document` fails until both are done, and from
//! then on schemathesis (`.ci/schemathesis`) and the `supabase_bodies` fuzz target, which read
//! this document, cover the route without further change.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

/// A Supabase access token of a live session (from `/auth/v1/token`, `/signup` or `/verify`).
pub(crate) const USER_JWT: &str = "supabase_user";
/// A JWT whose `role` is an admin role (`VELRO_JWT_ADMIN_ROLES`: `service_role`,
/// `supabase_admin`), signed with the project's keys: a project's `service_role` key.
pub(crate) const ADMIN_JWT: &str = "supabase_admin";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Velro Auth: Supabase Auth (GoTrue) compatibility",
        description = "The GoTrue protocol under /auth/v1, for supabase-js, supabase-py and other \
            GoTrue clients (see contract/supabase-auth-compat.md). Every non-2xx answer has the \
            `Error` body: `{code, message}` when the request carries `X-Supabase-Api-Version: \
            2024-01-01` (or a later date; the version is echoed), `{code: <status>, error_code, msg}` \
            otherwise; the code is also in `x-sb-error-code`. Authorization is ignored on the public \
            routes. The v1 API is described at /openapi.json.",
        license(name = "MIT")
    ),
    paths(
        super::settings,
        super::health,
        super::jwks,
        super::sign_up,
        super::token,
        super::get_user,
        super::update_user,
        super::logout,
        super::recover,
        super::otp,
        super::verify,
        super::verify_redirect,
        super::admin::list_users,
        super::admin::create_user,
        super::admin::get_user,
        super::admin::update_user,
        super::admin::delete_user,
        super::links::resend,
        super::links::invite,
        super::links::generate_link,
    ),
    modifiers(&GotrueResponses),
    tags(
        (name = "supabase", description = "GoTrue-compatible routes (/auth/v1)"),
    )
)]
pub struct SupabaseDoc;

/// The document, serialised once per process.
pub fn document() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| SupabaseDoc::openapi().to_pretty_json().unwrap_or_default())
}

pub(super) async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// Adds what the operations share, so that a handler's attribute lists only its own answers:
/// the two security schemes; 400 (`bad_json`, `validation_failed`) and 413 wherever a body or
/// query is read; 401 (`no_authorization`) and 403 (`bad_jwt`, `session_not_found`,
/// `not_admin`) behind a credential; 429 (`over_request_rate_limit`, `over_email_send_rate_limit`)
/// and 503 everywhere.
struct GotrueResponses;

fn error_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            Content::new(Some(Ref::from_schema_name("Error"))),
        )
        .into()
}

impl Modify for GotrueResponses {
    fn modify(&self, openapi: &mut Document) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            USER_JWT,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A Supabase access token of a live session (v1 tokens are refused here)",
                    ))
                    .build(),
            ),
        );
        components.add_security_scheme(
            ADMIN_JWT,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT with an admin `role` (service_role, supabase_admin) signed with the \
                         project's keys, such as the project's service_role key; no sub, exp or kid \
                         needed. Not the v1 service key.",
                    ))
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
                let redirects = operation.responses.responses.contains_key("303");
                let reads_input = operation.request_body.is_some()
                    || operation.parameters.as_ref().is_some_and(|p| !p.is_empty());
                let responses = &mut operation.responses.responses;
                responses.entry("503".into()).or_insert_with(|| {
                    error_response("`unexpected_failure`: the service is busy or its database unavailable; retry")
                });
                responses.entry("429".into()).or_insert_with(|| {
                    error_response("`over_request_rate_limit` or `over_email_send_rate_limit`")
                });
                if redirects {
                    // Failures go into the redirect's fragment.
                    continue;
                }
                if reads_input {
                    responses.entry("400".into()).or_insert_with(|| {
                        error_response("`bad_json` (not JSON, or a field of the wrong type) or `validation_failed`")
                    });
                }
                if operation.request_body.is_some() {
                    responses.entry("413".into()).or_insert_with(|| {
                        error_response("`request_entity_too_large`: over VELRO_MAX_BODY_BYTES")
                    });
                }
                if operation.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    responses
                        .entry("401".into())
                        .or_insert_with(|| error_response("`no_authorization`: no Bearer token"));
                    responses.entry("403".into()).or_insert_with(|| {
                        error_response("`bad_jwt` (bad signature, claims or expiry), `session_not_found` (the session ended), `not_admin` (a valid token without an admin role)")
                    });
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

    /// The `.route("…", get(…).put(…))` lines of `routes()` and `router()` in mod.rs.
    fn routes_in_source() -> Vec<(String, &'static str)> {
        let source = include_str!("mod.rs");
        let mut routes = Vec::new();
        for chunk in source.split(".route(\"").skip(1) {
            let Some((path, rest)) = chunk.split_once('"') else {
                continue;
            };
            // The route's handlers run to the call's closing parenthesis at depth zero.
            let mut depth = 1;
            let end = rest
                .char_indices()
                .find(|(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let handlers = &rest[..end];
            for method in ["get", "put", "post", "delete", "patch"] {
                let called = handlers.match_indices(&format!("{method}(")).any(|(i, _)| {
                    i == 0
                        || !(handlers.as_bytes()[i - 1].is_ascii_alphanumeric()
                            || handlers.as_bytes()[i - 1] == b'_')
                });
                if called {
                    routes.push((format!("/auth/v1{path}"), method));
                }
            }
        }
        routes
    }

    #[test]
    fn every_route_of_the_surface_is_in_the_document() {
        let doc = parsed();
        let routes = routes_in_source();
        assert!(routes.len() >= 14, "{routes:?}");
        for (path, method) in routes {
            if path == "/auth/v1/openapi.json" {
                continue;
            }
            let operation = &doc["paths"][&path][method];
            assert!(
                operation.is_object(),
                "{method} {path} is routed but not documented: give its handler a \
                 #[utoipa::path] and list it in SupabaseDoc's paths"
            );
            assert_eq!(operation["tags"][0], "supabase", "{method} {path}");
            assert!(operation["responses"]["503"].is_object(), "{method} {path}");
            if operation.get("requestBody").is_some() {
                for status in ["400", "413"] {
                    assert!(
                        operation["responses"][status].is_object(),
                        "{method} {path}: no {status}"
                    );
                }
            }
            if path.starts_with("/auth/v1/admin/") {
                assert_eq!(
                    operation["security"][0][ADMIN_JWT],
                    serde_json::json!([]),
                    "{method} {path} is an admin route"
                );
            }
        }
    }

    #[test]
    fn sessions_users_and_both_error_shapes_are_described() {
        let doc = parsed();
        let schemas = &doc["components"]["schemas"];
        let required = |name: &str| -> Vec<String> {
            let mut keys: Vec<String> = schemas[name]["required"]
                .as_array()
                .unwrap_or_else(|| panic!("{name} has required keys"))
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            keys.sort_unstable();
            keys
        };
        assert_eq!(
            required("Session"),
            [
                "access_token",
                "expires_at",
                "expires_in",
                "refresh_token",
                "token_type",
                "user"
            ]
        );
        for key in [
            "id",
            "aud",
            "role",
            "email",
            "app_metadata",
            "user_metadata",
        ] {
            assert!(required("User").iter().any(|k| k == key), "User.{key}");
        }
        assert_eq!(required("DatedError"), ["code", "message"]);
        assert_eq!(required("LegacyError"), ["code", "error_code", "msg"]);
        assert_eq!(
            schemas["LegacyError"]["properties"]["code"]["type"],
            "integer"
        );
        let shapes = schemas["Error"]["oneOf"].as_array().expect("oneOf");
        assert_eq!(shapes.len(), 2);
        let schemes = &doc["components"]["securitySchemes"];
        assert_eq!(schemes[USER_JWT]["scheme"], "bearer");
        assert_eq!(schemes[ADMIN_JWT]["scheme"], "bearer");
        // The v1 document stays as it was: no Supabase path or tag in it.
        let v1: serde_json::Value =
            serde_json::from_str(crate::routes::openapi::document()).expect("JSON");
        let paths = v1["paths"].as_object().expect("paths");
        assert!(paths.keys().all(|path| !path.starts_with("/auth/v1")));
    }

    #[test]
    fn the_pkce_grant_and_the_challenge_fields_are_described() {
        let doc = parsed();
        let token = &doc["paths"]["/auth/v1/token"]["post"];
        let grant = token["parameters"]
            .as_array()
            .expect("parameters")
            .iter()
            .find(|p| p["name"] == "grant_type")
            .expect("grant_type")
            .to_string();
        assert!(grant.contains("\"pkce\""), "{grant}");
        let text = doc.to_string();
        for status in ["404", "422"] {
            assert!(token["responses"][status].is_object(), "{status}");
        }
        for key in [
            "auth_code",
            "code_verifier",
            "code_challenge",
            "code_challenge_method",
        ] {
            assert!(text.contains(&format!("\"{key}\"")), "{key}");
        }
    }
}
