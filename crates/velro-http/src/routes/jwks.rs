//! `GET /.well-known/jwks.json`: the public keys that verify access tokens (RFC 7517, OKP keys
//! per RFC 8037). With HS256 the set is empty: a symmetric key is never published.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{extract::State, Json, Router};
use serde::Serialize;

use crate::AppState;

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks))
}

#[derive(Debug, Serialize)]
pub(crate) struct JwksResponse {
    keys: Vec<Jwk>,
}

#[derive(Debug, Serialize)]
struct Jwk {
    kty: &'static str,
    crv: &'static str,
    x: String,
    kid: String,
    alg: &'static str,
    #[serde(rename = "use")]
    usage: &'static str,
}

async fn jwks(State(state): State<AppState>) -> Response {
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
