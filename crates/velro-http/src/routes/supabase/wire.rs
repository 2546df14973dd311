//! GoTrue's user and session JSON (`models.User`, `AccessTokenResponse`), built from Velro's
//! users and sessions. Keys GoTrue omits when empty are omitted here too; keys it always sends
//! are always sent, with `""` for a missing phone as the clients expect.

use serde::Serialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;
use velro_core::domain::User;
use velro_core::service::IssuedSession;
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
    /// `provider`, `providers` and Velro's own `role` (viewer, creator, admin).
    #[schema(value_type = Object)]
    app_metadata: AppMetadata,
    /// `full_name` and `avatar_url` when set.
    #[schema(value_type = Object)]
    user_metadata: UserMetadata,
    identities: Vec<Identity>,
    created_at: String,
    updated_at: String,
    is_anonymous: bool,
}

impl SupabaseUser {
    pub(crate) fn new(user: &User, audience: &str) -> Self {
        let confirmed_at = user.email_confirmed.then(|| timestamp(user.created_at));
        let identity = Identity {
            identity_id: user.id.0,
            id: user.id.0.to_string(),
            user_id: user.id.0,
            identity_data: UserMetadata::of(user),
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
            app_metadata: AppMetadata::of(user),
            user_metadata: UserMetadata::of(user),
            identities: vec![identity],
            created_at: timestamp(user.created_at),
            updated_at: timestamp(user.updated_at),
            is_anonymous: false,
        }
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
