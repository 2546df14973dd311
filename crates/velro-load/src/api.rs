//! The service's endpoints as the scenarios call them: one timed request through goose's
//! user (its connection, its throttle), recorded in the shared [`Recorder`].

use std::time::{Duration, Instant};

use goose::prelude::{GooseMethod, GooseRequest, GooseUser, TransactionError};
use serde::Deserialize;
use serde_json::Value;

use crate::config::Surface;
use crate::recorder::{Outcome, Recorder};

/// Where a Supabase client signs in.
pub const SUPABASE_PASSWORD_GRANT: &str = "/auth/v1/token?grant_type=password";

/// One endpoint of the v1 contract (or /health), or a Supabase (/auth/v1) equivalent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Register,
    Login,
    Me,
    Profile,
    Refresh,
    Logout,
    Health,
    /// `POST /auth/v1/token?grant_type=password`.
    SupabaseLogin,
    /// `POST /auth/v1/token?grant_type=refresh_token`.
    SupabaseRefresh,
    /// `GET /auth/v1/user`.
    SupabaseUser,
}

impl Endpoint {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Endpoint::Register => "register",
            Endpoint::Login => "login",
            Endpoint::Me => "me",
            Endpoint::Profile => "profile",
            Endpoint::Refresh => "refresh",
            Endpoint::Logout => "logout",
            Endpoint::Health => "health",
            Endpoint::SupabaseLogin => "sb-token-password",
            Endpoint::SupabaseRefresh => "sb-token-refresh",
            Endpoint::SupabaseUser => "sb-user",
        }
    }

    /// The endpoint that does this one's work on `surface`.
    pub fn on(self, surface: Surface) -> Self {
        match (surface, self) {
            (Surface::Supabase, Endpoint::Login) => Endpoint::SupabaseLogin,
            (Surface::Supabase, Endpoint::Refresh) => Endpoint::SupabaseRefresh,
            (Surface::Supabase, Endpoint::Me) => Endpoint::SupabaseUser,
            _ => self,
        }
    }

    fn route(self) -> (GooseMethod, &'static str) {
        match self {
            Endpoint::Register => (GooseMethod::Post, "/api/v1/auth/register"),
            Endpoint::Login => (GooseMethod::Post, "/api/v1/auth/login"),
            Endpoint::Me => (GooseMethod::Get, "/api/v1/auth/me"),
            Endpoint::Profile => (GooseMethod::Put, "/api/v1/auth/profile"),
            Endpoint::Refresh => (GooseMethod::Post, "/api/v1/auth/refresh"),
            Endpoint::Logout => (GooseMethod::Post, "/api/v1/auth/logout"),
            Endpoint::Health => (GooseMethod::Get, "/health"),
            Endpoint::SupabaseLogin => (GooseMethod::Post, SUPABASE_PASSWORD_GRANT),
            Endpoint::SupabaseRefresh => {
                (GooseMethod::Post, "/auth/v1/token?grant_type=refresh_token")
            }
            Endpoint::SupabaseUser => (GooseMethod::Get, "/auth/v1/user"),
        }
    }

    /// The success status of the contract.
    pub fn expected_status(self) -> u16 {
        match self {
            Endpoint::Register => 201,
            _ => 200,
        }
    }

    fn returns_session(self) -> bool {
        matches!(
            self,
            Endpoint::Register
                | Endpoint::Login
                | Endpoint::Refresh
                | Endpoint::SupabaseLogin
                | Endpoint::SupabaseRefresh
        )
    }
}

/// The two tokens of a Session answer.
#[derive(Debug, Clone, Deserialize)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
}

/// How a call ended, for the scenario's next step.
#[derive(Debug)]
pub enum Answer {
    /// The contract's success status; the session when the endpoint returns one.
    Ok(Option<Tokens>),
    /// Anything else (already recorded as an error), with the answer's Retry-After if any.
    Failed { retry_after: Option<Duration> },
}

/// Sends one request and records it under the endpoint's name. `scheduled` is the open model's
/// intended start; latency counts from it when given.
pub async fn call(
    user: &mut GooseUser,
    recorder: &Recorder,
    endpoint: Endpoint,
    token: Option<&str>,
    body: Option<&Value>,
    scheduled: Option<Instant>,
) -> Result<Answer, Box<TransactionError>> {
    let (method, path) = endpoint.route();
    let mut builder = user.get_request_builder(&method, path)?;
    if let Some(token) = token {
        builder = builder.bearer_auth(token);
    }
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let request = GooseRequest::builder()
        .name(endpoint.name())
        .set_request_builder(builder)
        .build();
    let started = scheduled.unwrap_or_else(Instant::now);
    let response = user.request(request).await?.response;
    let expected = endpoint.expected_status();
    let mut retry_after = None;
    let (outcome, body) = match response {
        Ok(response) => {
            let status = response.status().as_u16();
            retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            // The body is part of the answer: latency ends when it has been read.
            match response.bytes().await {
                Ok(bytes) => (Outcome::Status(status), Some(bytes)),
                Err(error) if error.is_timeout() => (Outcome::Timeout, None),
                Err(_) => (Outcome::Transport, None),
            }
        }
        Err(error) if error.is_timeout() => (Outcome::Timeout, None),
        Err(_) => (Outcome::Transport, None),
    };
    recorder.record(endpoint.name(), started, outcome, expected);
    if outcome != Outcome::Status(expected) {
        return Ok(Answer::Failed { retry_after });
    }
    if !endpoint.returns_session() {
        return Ok(Answer::Ok(None));
    }
    let tokens = body.and_then(|bytes| serde_json::from_slice::<Tokens>(&bytes).ok());
    Ok(match tokens {
        Some(tokens) => Answer::Ok(Some(tokens)),
        None => Answer::Failed { retry_after: None },
    })
}
