//! `GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517, OKP keys
//! per RFC 8037). With HS256 the set is empty: a symmetric key is never published.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Json, Router};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JwksResponse {
    keys: Vec<Jwk>,
}

/// An Ed25519 public key (RFC 8037): `kty` OKP, `crv` Ed25519, `alg` EdDSA, `use` sig.
#[derive(Debug, Serialize, ToSchema)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    x: String,
    kid: String,
    alg: &'static str,
    #[serde(rename = "use")]
    usage: &'static str,
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "service",
    responses(
        (status = 200, description = "The public keys that verify access tokens; empty with HS256", body = JwksResponse,
            headers(("cache-control" = String, description = "`public, max-age=300`"))),
    ),
)]
pub(super) async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state
        .auth
        .access_tokens()
        .public_keys()
        .iter()
        .map(|key| Jwk {
            kty: "OKP",
            crv: key.curve,
            x: key.x.clone(),
            kid: key.kid.clone(),
            alg: key.algorithm.as_str(),
            usage: "sig",
        })
        .collect();
    (
        // Keys change only when instances restart; verifiers may cache them briefly.
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(JwksResponse { keys }),
    )
        .into_response()
}
