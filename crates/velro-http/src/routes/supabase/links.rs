//! The confirmation-mail routes of the Supabase surface: `POST /resend`, `POST /invite` and
//! `POST /admin/generate_link`, each one call into `SupabaseAuth`. Sign-up, `PUT /user` and
//! `verify` stay in the parent module.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use velro_core::service::{take_profile, LinkRequest, LinkType, PendingProfile, ResendKind};

use super::error::GotrueError;
use super::wire::SupabaseUser;
use super::{audience, mail_address, query_value, user_data, GotrueJson, SupabaseAdmin};
use crate::extract::Client;
use crate::AppState;

fn phone_disabled() -> GotrueError {
    GotrueError::new(
        StatusCode::BAD_REQUEST,
        "phone_provider_disabled",
        "Phone logins are disabled",
    )
}

#[derive(Deserialize)]
pub(super) struct ResendBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    phone: Option<String>,
}

/// GoTrue's checks in its order; `{}` whether or not anything was pending.
pub(super) async fn resend(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
    GotrueJson(body): GotrueJson<ResendBody>,
) -> Result<Json<Value>, GotrueError> {
    let email = body.email.filter(|e| !e.is_empty());
    let phone = body.phone.filter(|p| !p.is_empty());
    let kind = match body.kind.as_deref() {
        Some("signup") => Some(ResendKind::Signup),
        Some("email_change") => Some(ResendKind::EmailChange),
        Some("sms" | "phone_change") => None,
        _ => {
            return Err(GotrueError::validation(
                "Missing one of these types: signup, email_change, sms, phone_change",
            ))
        }
    };
    if email.is_none() && kind == Some(ResendKind::Signup) {
        return Err(GotrueError::validation(
            "Type provided requires an email address",
        ));
    }
    if phone.is_none() && body.kind.as_deref() == Some("sms") {
        return Err(GotrueError::validation(
            "Type provided requires a phone number",
        ));
    }
    if email.is_some() && phone.is_some() {
        return Err(GotrueError::validation(
            "Only an email address or phone number should be provided.",
        ));
    }
    if phone.is_some() {
        return Err(phone_disabled());
    }
    if email.is_none() {
        return Err(GotrueError::validation(
            "Missing email address or phone number",
        ));
    }
    let email = mail_address(email)?;
    // `phone_change` by email: no account here has a pending phone change.
    let Some(kind) = kind else {
        return Ok(Json(json!({})));
    };
    let redirect_to = query_value(query.as_deref(), "redirect_to");
    state
        .supabase
        .resend(kind, email, redirect_to.as_deref(), client)
        .await?;
    Ok(Json(json!({})))
}

#[derive(Deserialize)]
pub(super) struct InviteBody {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    data: Option<Value>,
}

pub(super) async fn invite(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    RawQuery(query): RawQuery,
    GotrueJson(body): GotrueJson<InviteBody>,
) -> Result<Json<SupabaseUser>, GotrueError> {
    let email = mail_address(body.email)?;
    let profile = pending_profile(body.data)?;
    let redirect_to = query_value(query.as_deref(), "redirect_to");
    let user = state
        .supabase
        .invite(&admin, email, profile, redirect_to.as_deref())
        .await?;
    Ok(Json(SupabaseUser::with_mail(&user, audience(&state))))
}

#[derive(Deserialize)]
pub(super) struct GenerateLinkBody {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    data: Option<Value>,
    #[serde(default)]
    new_email: Option<String>,
    #[serde(default)]
    redirect_to: Option<String>,
}

/// GoTrue's flat answer: the user's fields and the link's side by side.
#[derive(Serialize)]
pub(super) struct GeneratedLinkResponse {
    #[serde(flatten)]
    user: SupabaseUser,
    action_link: String,
    email_otp: String,
    hashed_token: String,
    redirect_to: String,
    verification_type: &'static str,
}

pub(super) async fn generate_link(
    State(state): State<AppState>,
    SupabaseAdmin(admin): SupabaseAdmin,
    RawQuery(query): RawQuery,
    GotrueJson(body): GotrueJson<GenerateLinkBody>,
) -> Result<Json<GeneratedLinkResponse>, GotrueError> {
    let email = mail_address(body.email)?;
    let new_email = || -> Result<_, GotrueError> {
        let raw = body
            .new_email
            .clone()
            .filter(|e| !e.is_empty())
            .ok_or_else(|| GotrueError::validation("The new email address provided is invalid"))?;
        velro_core::domain::Email::parse(&raw)
            .map_err(|_| GotrueError::validation("The new email address provided is invalid"))
    };
    let kind = match body.kind.as_deref() {
        Some("signup") => {
            let password = body
                .password
                .as_deref()
                .filter(|p| !p.is_empty())
                .map(|password| {
                    state
                        .auth
                        .password_policy()
                        .check(password)
                        .map_err(GotrueError::weak_password)
                })
                .transpose()?;
            LinkType::Signup {
                password,
                profile: pending_profile(body.data.clone())?,
            }
        }
        Some("invite") => LinkType::Invite {
            profile: pending_profile(body.data.clone())?,
        },
        Some("magiclink") => LinkType::MagicLink,
        Some("recovery") => LinkType::Recovery,
        Some("email_change_current") => LinkType::EmailChangeCurrent {
            new_email: new_email()?,
        },
        Some("email_change_new") => LinkType::EmailChangeNew {
            new_email: new_email()?,
        },
        _ => {
            return Err(GotrueError::validation(format!(
                "Invalid email action link type requested: {}",
                body.kind.clone().unwrap_or_default()
            )))
        }
    };
    // The body's `redirect_to` wins over the query's, as in GoTrue.
    let redirect_to = body
        .redirect_to
        .filter(|r| !r.is_empty())
        .or_else(|| query_value(query.as_deref(), "redirect_to"));
    let link = state
        .supabase
        .generate_link(
            &admin,
            LinkRequest {
                kind,
                email,
                redirect_to,
            },
        )
        .await?;
    Ok(Json(GeneratedLinkResponse {
        user: SupabaseUser::with_mail(&link.user, audience(&state)),
        action_link: link.action_link,
        email_otp: link.email_otp,
        hashed_token: link.hashed_token.expose().clone(),
        redirect_to: link.redirect_to,
        verification_type: link.verification_type,
    }))
}

/// An invite's or an admin link's `data`: stored as `user_metadata` exactly as given (GoTrue
/// mixes no identity data in here), its `full_name` and `avatar_url` being the profile.
pub(super) fn pending_profile(data: Option<Value>) -> Result<PendingProfile, GotrueError> {
    let mut data = user_data(data)?.unwrap_or_default();
    let profile = take_profile(&mut data)?;
    Ok(PendingProfile {
        display_name: profile.display_name.flatten(),
        avatar_url: profile.avatar_url.flatten(),
        data,
        identity_data: false,
    })
}
