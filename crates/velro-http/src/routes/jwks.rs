//! `GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517: OKP keys
//! per RFC 8037, RSA and EC keys per RFC 7518). A symmetric key is never published, so with
//! HS256 only the set is empty.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Json, Router};
use serde::Serialize;
use utoipa::ToSchema;
use velro_core::tokens::{PublicJwk, PublicKeyParams};

use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct JwksResponse {
    keys: Vec<Jwk>,
}

/// A public key: `kty` OKP (Ed25519), RSA or EC (P-256), with `kid`, `alg`, `use` sig and
/// `key_ops` [verify], as GoTrue publishes its keys.
#[derive(Debug, Serialize, ToSchema)]
struct Jwk {
    kty: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    crv: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    x: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    n: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    e: Option<String>,
    kid: String,
    alg: &'static str,
    #[serde(rename = "use")]
    usage: &'static str,
    key_ops: [&'static str; 1],
}

impl Jwk {
    fn of(key: &PublicJwk) -> Self {
        let mut jwk = Self {
            kty: "OKP",
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: key.kid.clone(),
            alg: key.algorithm.as_str(),
            usage: "sig",
            key_ops: ["verify"],
        };
        match &key.params {
            PublicKeyParams::Okp { curve, x } => {
                jwk.crv = Some(curve);
                jwk.x = Some(x.clone());
            }
            PublicKeyParams::Rsa { n, e } => {
                jwk.kty = "RSA";
                jwk.n = Some(n.clone());
                jwk.e = Some(e.clone());
            }
            PublicKeyParams::Ec { curve, x, y } => {
                jwk.kty = "EC";
                jwk.crv = Some(curve);
                jwk.x = Some(x.clone());
                jwk.y = Some(y.clone());
            }
        }
        jwk
    }
}

#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "service",
    responses(
        (status = 200, description = "The public keys that verify access tokens; never an HS256 key", body = JwksResponse,
            headers(("cache-control" = String, description = "`public, max-age=300`"))),
    ),
)]
pub(super) async fn jwks(State(state): State<AppState>) -> Response {
    let keys = state
        .auth
        .access_tokens()
        .public_keys()
        .iter()
        .map(Jwk::of)
        .collect();
    (
        // Keys change only when instances restart; verifiers may cache them briefly.
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(JwksResponse { keys }),
    )
        .into_response()
}
