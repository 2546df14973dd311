//! Path ids, query strings and the client's address.

use axum::extract::{FromRequestParts, Path};
use axum::http::header;
use axum::http::request::Parts;
use uuid::Uuid;
use velro_core::service::ClientInfo;

use crate::extract::CallerSlot;
use crate::{ApiError, AppState, TrustedProxies};

const MAX_USER_AGENT_CHARS: usize = 512;

/// A UUID from the path; anything else is `404 not_found`, never a 400 or 500.
pub(crate) struct PathId(pub Uuid);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| ApiError::NotFound)?;
        Uuid::parse_str(&raw)
            .map(Self)
            .map_err(|_| ApiError::NotFound)
    }
}

/// The query string as name/value pairs; decoding never fails (invalid escapes stay literal).
pub(crate) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    /// The value of `name`, if given; an empty value is 422 naming it.
    pub(crate) fn get(&self, name: &str) -> Result<Option<&str>, ApiError> {
        match self.0.iter().find(|(key, _)| key == name) {
            None => Ok(None),
            Some((_, value)) if value.is_empty() => Err(ApiError::field(name, "must not be empty")),
            Some((_, value)) => Ok(Some(value.as_str())),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for QueryParams {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let pairs = url::form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .map(|(key, value)| (key.into_owned(), value.into_owned()))
            .collect();
        Ok(Self(pairs))
    }
}

/// Where the request came from, for the sessions it creates and the rate limits.
pub(crate) struct Client(pub ClientInfo);

impl FromRequestParts<AppState> for Client {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(client_info(parts, &state.settings.trusted_proxies)))
    }
}

/// The client's address (the socket's peer, or whom a trusted proxy forwarded for) and the user
/// agent, bounded.
fn client_info(parts: &Parts, trusted: &TrustedProxies) -> ClientInfo {
    let ip = parts
        .extensions
        .get::<CallerSlot>()
        .and_then(CallerSlot::peer)
        .map(|peer| trusted.client_ip(peer.ip(), &parts.headers).to_string());
    let user_agent = parts
        .headers
        .get(header::USER_AGENT)
        .and_then(|value| value.to_str().ok())
        .map(|agent| {
            agent
                .chars()
                .filter(|c| !c.is_control())
                .take(MAX_USER_AGENT_CHARS)
                .collect()
        });
    ClientInfo { ip, user_agent }
}
