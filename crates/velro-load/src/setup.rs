//! Accounts and sessions made before a single-endpoint run starts, with a plain client, so that
//! their hashing cost stays out of the measured window.

use std::sync::Arc;

use serde_json::json;
use tokio::task::JoinSet;

use crate::api::Tokens;
use crate::LoadError;

/// Logins in flight during setup: about the server's hash pool, so none is refused.
const SETUP_CONCURRENCY: usize = 2;

/// Registers one account; its tokens are the first session.
pub async fn register(
    client: &reqwest::Client,
    host: &str,
    email: &str,
    password: &str,
) -> Result<Tokens, LoadError> {
    let body = json!({"email": email, "password": password, "full_name": "Load Test"});
    session(client, &format!("{host}/api/v1/auth/register"), &body).await
}

/// `count` sessions of one account, by logging in `count` times at `login_path` (the v1 login,
/// or the Supabase password grant: both take `{email, password}` and answer both tokens).
pub async fn sessions(
    client: &reqwest::Client,
    host: &str,
    login_path: &str,
    email: &str,
    password: &str,
    count: usize,
) -> Result<Vec<Tokens>, LoadError> {
    let url = Arc::new(format!("{host}{login_path}"));
    let body = Arc::new(json!({"email": email, "password": password}));
    let mut made = Vec::with_capacity(count);
    let mut running = JoinSet::new();
    for _ in 0..count {
        if running.len() >= SETUP_CONCURRENCY {
            made.push(next(&mut running).await?);
        }
        let (client, url, body) = (client.clone(), url.clone(), body.clone());
        running.spawn(async move { session(&client, &url, &body).await });
    }
    while !running.is_empty() {
        made.push(next(&mut running).await?);
    }
    Ok(made)
}

async fn next(running: &mut JoinSet<Result<Tokens, LoadError>>) -> Result<Tokens, LoadError> {
    match running.join_next().await {
        Some(Ok(result)) => result,
        Some(Err(error)) => Err(LoadError::Setup(format!("setup task failed: {error}"))),
        None => Err(LoadError::Setup("no setup task left".into())),
    }
}

async fn session(
    client: &reqwest::Client,
    url: &str,
    body: &serde_json::Value,
) -> Result<Tokens, LoadError> {
    let response = client.post(url).json(body).send().await?;
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        return Err(LoadError::Setup(format!("POST {url}: {status}: {text}")));
    }
    Ok(response.json::<Tokens>().await?)
}
