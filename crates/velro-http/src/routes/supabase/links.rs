//! The confirmation-mail routes of the Supabase surface: `POST /resend`, `POST /invite` and
//! `POST /admin/generate_link`, each one call into `SupabaseAuth`. Sign-up, `PUT /user` and
//! `verify` stay in the parent module.

use crate::wire::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use velro_core::service::{take_profile, LinkRequest, LinkType, PendingProfile, ResendKind};

use super::error::{ErrorBody, GotrueError};
use super::wire::{Empty, SupabaseUser};
use super::{
    audience, checked_password, mail_address, query_value, user_data, GotrueJson, PkceFields,
    RedirectQuery, SupabaseAdmin,
};
use crate::extract::Client;
use crate::AppState;

fn phone_disabled() -> GotrueError {
    GotrueError::new(
        StatusCode::BAD_REQUEST,
        "phone_provider_disabled",
        "Phone logins are disabled",
    )
}

#[derive(Deserialize, ToSchema)]
pub(super) struct ResendBody {
    /// `signup` or `email_change` (mailed again); `phone_change` by email answers `{}`; `sms`
    /// is `phone_provider_disabled`; anything else `validation_failed`.
    #[serde(default, rename = "type")]
    #[schema(example = "signup")]
    kind: Option<String>,
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    /// Phone logins are off: any non-empty value is 400 `phone_provider_disabled`.
    #[serde(default)]
    phone: Option<String>,
    #[serde(flatten)]
    pkce: PkceFields,
}

/// GoTrue's checks in its order; `{}` whether or not anything was pending.
#[utoipa::path(
    post,
    path = "/auth/v1/resend",
    tag = "supabase",
    params(RedirectQuery),
    request_body = ResendBody,
    responses(
        (status = 200, description = "The pending confirmation or email change mailed again (new tokens), or nothing pending: the same answer either way", body = Empty),
        (status = 400, description = "`validation_failed` (a missing or unknown type, no or a bad address), `phone_provider_disabled`, `bad_json`", body = ErrorBody),
        (status = 429, description = "`over_email_send_rate_limit` within 60 s of the previous mail of that kind, `over_request_rate_limit`", body = ErrorBody),
    ),
)]
pub(super) async fn resend(
    State(state): State<AppState>,
    Client(client): Client,
    RawQuery(query): RawQuery,
    GotrueJson(body): GotrueJson<ResendBody>,
) -> Result<Json<Empty>, GotrueError> {
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
    let pkce = body.pkce.parse()?;
    // `phone_change` by email: no account here has a pending phone change.
    let Some(kind) = kind else {
        return Ok(Json(Empty {}));
    };
    let redirect_to = query_value(query.as_deref(), "redirect_to");
    state
        .supabase
        .resend(kind, email, redirect_to.as_deref(), pkce.as_ref(), client)
        .await?;
    Ok(Json(Empty {}))
}

#[derive(Deserialize, ToSchema)]
pub(super) struct InviteBody {
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    /// The invited user's `user_metadata`, stored as given (`full_name` and `avatar_url` are
    /// also the profile).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
}

/// An account awaiting confirmation and an invite mail (`type=invite` link and code).
#[utoipa::path(
    post,
    path = "/auth/v1/invite",
    tag = "supabase",
    params(RedirectQuery),
    request_body = InviteBody,
    responses(
        (status = 200, description = "The invited user, with `invited_at` (an invited address that has not accepted is invited again)", body = SupabaseUser),
        (status = 422, description = "`email_exists`: the address is registered (and not a pending invite)", body = ErrorBody),
    ),
    security(("supabase_admin" = [])),
)]
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

#[derive(Deserialize, ToSchema)]
#[schema(as = GenerateLinkParams)]
pub(super) struct GenerateLinkBody {
    /// `signup`, `invite`, `magiclink`, `recovery`, `email_change_current`, `email_change_new`;
    /// anything else is `validation_failed`.
    #[serde(default, rename = "type")]
    #[schema(example = "magiclink")]
    kind: Option<String>,
    #[serde(default)]
    #[schema(example = "ada@example.com")]
    email: Option<String>,
    /// `signup` only: the new account's password (the password policy applies).
    #[serde(default)]
    password: Option<String>,
    /// `signup` and `invite`: the new account's `user_metadata`.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// Required by the two email-change types.
    #[serde(default)]
    new_email: Option<String>,
    /// Wins over the query parameter; one the redirect policy does not allow becomes the site
    /// URL.
    #[serde(default)]
    redirect_to: Option<String>,
}

/// GoTrue's flat answer: the user's fields and the link's side by side.
#[derive(Serialize, ToSchema)]
#[schema(as = GeneratedLink)]
pub(super) struct GeneratedLinkResponse {
    #[serde(flatten)]
    user: SupabaseUser,
    /// `…/auth/v1/verify?token=…&type=…&redirect_to=…`
    action_link: String,
    /// The six-digit code.
    email_otp: String,
    /// The link's token, for `verify`'s `token_hash`.
    hashed_token: String,
    redirect_to: String,
    /// `signup`, `invite`, `magiclink`, `recovery`, `email_change_current` or
    /// `email_change_new`.
    #[schema(value_type = String)]
    verification_type: &'static str,
}

/// Mails nothing: the link and the code are in the answer.
#[utoipa::path(
    post,
    path = "/auth/v1/admin/generate_link",
    tag = "supabase",
    params(RedirectQuery),
    request_body = GenerateLinkBody,
    responses(
        (status = 200, description = "The user's fields (with `new_email` for the email changes) and the link's, flat in one object", body = GeneratedLinkResponse),
        (status = 404, description = "`user_not_found`: `recovery` or an email change for an unknown address", body = ErrorBody),
        (status = 422, description = "`email_exists` (`signup` or `invite` for a registered address, an email change to a taken one), `weak_password`", body = ErrorBody),
    ),
    security(("supabase_admin" = [])),
)]
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
                .map(|password| checked_password(&state, password))
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
