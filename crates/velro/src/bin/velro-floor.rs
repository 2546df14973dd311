//! The floor the per-request overhead of `GET /api/v1/auth/me` is measured against (issue 11): a bare
//! axum handler that only verifies the same access token, with the same keys (`VELRO_DATA_DIR`'s
//! key file or `VELRO_JWT_SECRET`), issuer and leeway as `velro serve`, through the same
//! [`AccessTokens::verify`]. No session lookup, no cache, no middleware, no log line, no
//! metrics: what is left of `/me`'s cost once everything the service adds is taken away.
//! `bench/me-floor.sh` runs it next to the server on the same key; it is not for production.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::get;
use velro::config::{Config, Overrides};
use velro_core::tokens::{AccessTokenConfig, AccessTokens};

fn main() -> anyhow::Result<()> {
    let config = Config::load(None, Overrides::default())?;
    let keys = velro::keys::load_or_create(&config)?;
    let tokens = Arc::new(AccessTokens::new(&AccessTokenConfig {
        keys: keys.keys,
        issuer: config.jwt_issuer.clone(),
        lifetime: time::Duration::seconds(i64::try_from(config.access_token_ttl_secs)?),
        leeway: time::Duration::seconds(i64::try_from(config.jwt_leeway_secs)?),
    }));
    let router = axum::Router::new()
        .route("/api/v1/auth/me", get(me))
        .with_state(tokens);
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async move {
            let listener = tokio::net::TcpListener::bind(config.bind).await?;
            eprintln!("velro-floor listening on {}", listener.local_addr()?);
            axum::serve(listener, router).await?;
            Ok(())
        })
}

async fn me(State(tokens): State<Arc<AccessTokens>>, headers: HeaderMap) -> (StatusCode, String) {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "));
    match token.map(|token| tokens.verify(token, time::OffsetDateTime::now_utc())) {
        Some(Ok(access)) => (
            StatusCode::OK,
            format!("{{\"id\":\"{}\"}}", access.user_id.0),
        ),
        _ => (StatusCode::UNAUTHORIZED, String::new()),
    }
}
