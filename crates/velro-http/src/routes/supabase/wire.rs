//! GoTrue's user and session JSON (`models.User`, `AccessTokenResponse`), built from Velro's
//! users and sessions. Keys GoTrue omits when empty are omitted here too; keys it always sends
//! are always sent, with `""` for a missing phone as the clients expect.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use velro_core::domain::User;
use velro_core::service::{IssuedSession, MailUser};
use velro_core::tokens::{AppMetadata, UserMetadata, AUTHENTICATED_ROLE};

/// RFC 3339 in UTC with the fraction, as GoTrue writes times.
fn timestamp(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// The one identity an email user has in GoTrue. Velro keeps no identities table: the identity
/// is the account itself, so its `identity_id` is the user's id.
#[derive(Serialize, ToSchema)]
struct Identity {
    identity_id: Uuid,
    /// The user's id, as text.
    id: String,
    user_id: Uuid,
    #[schema(value_type = Object)]
    identity_data: UserMetadata,
    /// Always `email`.
    #[schema(value_type = String, example = "email")]
    provider: &'static str,
    /// RFC 3339, UTC.
    created_at: String,
    updated_at: String,
    email: String,
}

/// GoTrue's `models.User`.
#[derive(Serialize, ToSchema)]
#[schema(as = User)]
pub(crate) struct SupabaseUser {
    id: Uuid,
    /// The configured audience (`VELRO_JWT_AUD`, `authenticated` by default).
    aud: String,
    /// The database role: always `authenticated`.
    #[schema(value_type = String, example = "authenticated")]
    role: &'static str,
    email: String,
    /// Velro records that an address is confirmed, not when: a confirmed account shows its
    /// creation time (exact for accounts confirmed at sign-up, as auto-confirm does).
    #[serde(skip_serializing_if = "Option::is_none")]
    email_confirmed_at: Option<String>,
    /// Always `""`: Velro has no phone sign-in.
    #[schema(value_type = String)]
    phone: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmed_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    confirmation_sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovery_sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    email_change_sent_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    invited_at: Option<String>,
    /// `provider`, `providers` and Velro's own `role` (viewer, creator, admin).
    #[schema(value_type = Object)]
    app_metadata: AppMetadata,
    /// `full_name` and `avatar_url` when set.
    #[schema(value_type = Object)]
    user_metadata: UserMetadata,
    identities: Vec<Identity>,
    created_at: String,
    updated_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    banned_until: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted_at: Option<String>,
    is_anonymous: bool,
}

impl SupabaseUser {
    pub(crate) fn new(user: &User, audience: &str) -> Self {
        let confirmed_at = user.email_confirmed.then(|| timestamp(user.created_at));
        let identity = Identity {
            identity_id: user.id.0,
            id: user.id.0.to_string(),
            user_id: user.id.0,
            identity_data: UserMetadata::identity(user),
            provider: "email",
            created_at: timestamp(user.created_at),
            updated_at: timestamp(user.updated_at),
            email: user.email.as_str().to_string(),
        };
        Self {
            id: user.id.0,
            aud: audience.to_string(),
            role: AUTHENTICATED_ROLE,
            email: user.email.as_str().to_string(),
            email_confirmed_at: confirmed_at.clone(),
            phone: "",
            confirmed_at,
            confirmation_sent_at: None,
            recovery_sent_at: None,
            new_email: None,
            email_change_sent_at: None,
            invited_at: None,
            app_metadata: AppMetadata::of(user),
            user_metadata: UserMetadata::of(user),
            // GoTrue scrubs a soft-deleted account's identities.
            identities: if user.deleted_at.is_some() {
                Vec::new()
            } else {
                vec![identity]
            },
            created_at: timestamp(user.created_at),
            updated_at: timestamp(user.updated_at),
            banned_until: user.banned_until.map(timestamp),
            deleted_at: user.deleted_at.map(timestamp),
            is_anonymous: false,
        }
    }
}

impl SupabaseUser {
    /// The user with GoTrue's mail-flow fields: the real confirmation time where one is
    /// recorded, what was sent when, a pending new address; no identities where GoTrue shows
    /// none (a stand-in for a taken address, an invited account).
    pub(crate) fn with_mail(mail_user: &MailUser, audience: &str) -> Self {
        let mut user = Self::new(&mail_user.user, audience);
        let mail = &mail_user.mail;
        if mail_user.user.email_confirmed {
            if let Some(confirmed) = mail.email_confirmed_at {
                user.email_confirmed_at = Some(timestamp(confirmed));
                user.confirmed_at = Some(timestamp(confirmed));
            }
        }
        user.confirmation_sent_at = mail.confirmation_sent_at.map(timestamp);
        user.recovery_sent_at = mail.recovery_sent_at.map(timestamp);
        user.new_email = mail.new_email.as_ref().map(|e| e.as_str().to_string());
        user.email_change_sent_at = mail.email_change_sent_at.map(timestamp);
        user.invited_at = mail.invited_at.map(timestamp);
        if !mail_user.identities {
            user.identities.clear();
        }
        user
    }
}

/// GoTrue's `AccessTokenResponse`.
#[derive(Serialize, ToSchema)]
#[schema(as = Session)]
pub(crate) struct SupabaseSession {
    access_token: String,
    /// Always `bearer`.
    #[schema(value_type = String, example = "bearer")]
    token_type: &'static str,
    expires_in: i64,
    expires_at: i64,
    refresh_token: String,
    user: SupabaseUser,
    /// GoTrue reports here a stored password that no longer meets its policy; Velro does not
    /// grade stored passwords at sign-in, so it is always null.
    #[schema(value_type = Option<Object>)]
    weak_password: Option<()>,
}

impl SupabaseSession {
    pub(crate) fn new(issued: IssuedSession, audience: &str) -> Self {
        Self {
            access_token: issued.access_token.expose().clone(),
            token_type: "bearer",
            expires_in: issued.expires_in,
            expires_at: issued.expires_at,
            refresh_token: issued.refresh_token.expose().clone(),
            user: SupabaseUser::new(&issued.user, audience),
            weak_password: None,
        }
    }
}

/// `GET /admin/users`: one page, newest first; the total is in `X-Total-Count`.
#[derive(Serialize, ToSchema)]
#[schema(as = UserList)]
pub(crate) struct SupabaseUserList {
    pub(crate) users: Vec<SupabaseUser>,
    pub(crate) aud: String,
}

/// `{}`: GoTrue's answer where there is nothing to say (and nothing to give away).
#[derive(Serialize, ToSchema)]
#[schema(as = Empty)]
pub(crate) struct Empty {}
