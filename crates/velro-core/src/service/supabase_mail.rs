//! GoTrue's confirmation mail flows on the Supabase surface: sign-up without auto-confirm,
//! `/resend`, the email change of `PUT /user`, `/invite` and `/admin/generate_link`. Every
//! mail carries a link token and a six-digit code, stored hashed as single-use, expiring
//! tokens of a purpose (`MailPurpose`); redeeming them is `SupabaseAuth::verify_*`. Sign-in,
//! sessions and limits stay `AuthService`'s.

use rand::rngs::OsRng;
use rand::RngCore;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::supabase::{code_key, six_digit_code};
use super::supabase_pkce::new_link_token;
use super::SupabaseError;
use super::{Authenticated, ClientInfo, IssuedSession, OtpKind, Registration, SupabaseAuth};
use crate::domain::{
    AvatarUrl, CodeChallenge, DisplayName, Email, FlowMethod, MailPurpose, MailState,
    MailTokenIssued, MailTokenPair, Metadata, NewEmailChange, NewMailToken, NewPassword, NewUser,
    PasswordHash, Role, User, UserId,
};
use crate::limits::Policy;
use crate::mail_templates::{MailTemplate, TemplateValues};
use crate::tokens::{default_app_metadata, hash_token, signup_metadata, AdminToken};
use crate::{AuthError, Secret, StoreError};

/// A user with GoTrue's mail-flow fields, as the Supabase answers show it.
#[derive(Debug, Clone)]
pub struct MailUser {
    pub user: User,
    pub mail: MailState,
    /// False where GoTrue answers with `identities: []`: the stand-in for an address that is
    /// already registered, and an invited account.
    pub identities: bool,
}

/// What `/signup` answers.
#[derive(Debug)]
pub enum SignUp {
    /// Auto-confirm: signed in.
    Session(IssuedSession),
    /// A confirmation was mailed (or the address is taken: a stand-in user, see `stand_in`).
    Unconfirmed(MailUser),
}

/// What `/resend` may send again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResendKind {
    Signup,
    EmailChange,
}

/// What an account awaiting confirmation starts with. `full_name` and `avatar_url` are the
/// profile; `data` holds the other `user_metadata` keys.
#[derive(Debug, Default, Clone)]
pub struct PendingProfile {
    pub display_name: Option<DisplayName>,
    pub avatar_url: Option<AvatarUrl>,
    pub data: Metadata,
    /// A sign-up (`/signup`, `/otp`) stores `data` under GoTrue's identity data; an invite and
    /// the admin's links store it exactly as given.
    pub identity_data: bool,
}

/// `/admin/generate_link`'s `type`, with what each needs.
#[derive(Debug)]
pub enum LinkType {
    Signup {
        password: Option<NewPassword>,
        profile: PendingProfile,
    },
    Invite {
        profile: PendingProfile,
    },
    MagicLink,
    Recovery,
    EmailChangeCurrent {
        new_email: Email,
    },
    EmailChangeNew {
        new_email: Email,
    },
}

#[derive(Debug)]
pub struct LinkRequest {
    pub kind: LinkType,
    pub email: Email,
    pub redirect_to: Option<String>,
}

/// A link made for an admin, mailed to nobody.
#[derive(Debug)]
pub struct GeneratedLink {
    pub user: MailUser,
    pub action_link: String,
    pub email_otp: String,
    /// What the link carries as `token` and `verify` takes as `token_hash`.
    pub hashed_token: Secret<String>,
    pub redirect_to: String,
    /// GoTrue's `verification_type`: the type asked for (`signup` for a magic link to an
    /// unknown address); the email-change types keep their names, their links say
    /// `email_change`.
    pub verification_type: &'static str,
}

/// One issued mail's ways in.
struct IssuedLink {
    token: Secret<String>,
    code: String,
    url: String,
    redirect: String,
}

impl SupabaseAuth {
    /// The user with its mail-flow state.
    pub async fn with_mail_state(&self, user: User) -> Result<MailUser, AuthError> {
        let mail = self.auth().deps().store.mail_state(user.id).await?;
        Ok(MailUser {
            identities: mail.invited_at.is_none() || user.email_confirmed,
            user,
            mail,
        })
    }

    /// Sign-up without auto-confirm. A new address gets an account awaiting confirmation and
    /// a confirmation mail; an address awaiting confirmation gets the mail again (429 within
    /// a minute of the last); any other registered address gets a stand-in user and no mail,
    /// so that the answer does not tell (GoTrue's anti-enumeration). The password is hashed
    /// in every case, so the three cost the same.
    pub(super) async fn sign_up_unconfirmed(
        &self,
        registration: Registration,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: ClientInfo,
    ) -> Result<MailUser, SupabaseError> {
        super::account::not_the_email("password", &registration.password, &registration.email)?;
        let deps = self.auth().deps();
        deps.limits
            .check_ip(Policy::RegisterIp, client.ip())
            .await?;
        deps.limits
            .check(Policy::RegisterAccount, registration.email.as_str())
            .await?;
        let existing = deps
            .store
            .find_credentials_by_email(&registration.email)
            .await
            .map_err(AuthError::from)?;
        let password_hash = deps
            .hasher
            .hash(registration.password.into_secret())
            .await?;
        let redirect = self.settings().redirects.resolve(redirect_to);
        let user = match existing {
            Some(credentials) => credentials.user,
            None => {
                let created = self
                    .create_pending(
                        registration.email.clone(),
                        password_hash,
                        PendingProfile {
                            display_name: registration.display_name.clone(),
                            avatar_url: registration.avatar_url.clone(),
                            data: registration.supabase_data.clone().unwrap_or_default(),
                            identity_data: true,
                        },
                        false,
                    )
                    .await;
                match created {
                    Ok(user) => user,
                    Err(SupabaseError::EmailExists) => {
                        return Ok(self.stand_in(registration.email, registration.display_name))
                    }
                    Err(error) => return Err(error),
                }
            }
        };
        let state = deps
            .store
            .mail_state(user.id)
            .await
            .map_err(AuthError::from)?;
        if !state.awaiting_confirmation {
            return Ok(self.stand_in(registration.email, registration.display_name));
        }
        self.send_confirmation(
            &user,
            OtpKind::Signup,
            &redirect,
            self.mail_frequency(),
            pkce,
        )
        .await?;
        tracing::info!(user_id = %user.id, "sign-up awaiting confirmation");
        Ok(self.with_mail_state(user).await?)
    }

    /// GoTrue's answer for a registered address: a user that does not exist, with a random
    /// id, no identities, and the confirmation "just sent".
    fn stand_in(&self, email: Email, display_name: Option<DisplayName>) -> MailUser {
        let now = self.auth().deps().clock.now();
        let user = User {
            id: UserId(Uuid::new_v4()),
            email,
            display_name: display_name.map(|name| name.as_str().to_string()),
            avatar_url: None,
            credits_balance: 0,
            role: Role::default(),
            email_confirmed: false,
            disabled: false,
            created_at: now,
            updated_at: now,
            user_metadata: None,
            app_metadata: None,
            banned_until: None,
            deleted_at: None,
        };
        MailUser {
            user,
            mail: MailState {
                confirmation_sent_at: Some(now),
                ..MailState::default()
            },
            identities: false,
        }
    }

    /// `POST /otp` for a new address without auto-confirm: an account with a password nobody
    /// knows, awaiting the confirmation mailed to it.
    pub(super) async fn otp_sign_up_unconfirmed(
        &self,
        email: Email,
        profile: PendingProfile,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: ClientInfo,
    ) -> Result<(), SupabaseError> {
        let deps = self.auth().deps();
        deps.limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        deps.limits
            .check(Policy::PasswordResetAccount, email.as_str())
            .await?;
        let hash = self.unknown_password_hash().await?;
        let user = match self.create_pending(email, hash, profile, false).await {
            Ok(user) => user,
            // Registered meanwhile by a concurrent request.
            Err(SupabaseError::EmailExists) => return Ok(()),
            Err(error) => return Err(error),
        };
        let redirect = self.settings().redirects.resolve(redirect_to);
        self.send_confirmation(
            &user,
            OtpKind::Signup,
            &redirect,
            self.mail_frequency(),
            pkce,
        )
        .await
    }

    /// `POST /resend`: the pending confirmation or email change mailed again. An unknown
    /// address, or one with nothing pending, answers the same as a resent one; within a minute
    /// of the previous mail, 429 (GoTrue's answer, which does tell that something is pending).
    pub async fn resend(
        &self,
        kind: ResendKind,
        email: Email,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: ClientInfo,
    ) -> Result<(), SupabaseError> {
        let deps = self.auth().deps();
        deps.limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        deps.limits
            .check(Policy::PasswordResetAccount, email.as_str())
            .await?;
        let Some(credentials) = deps
            .store
            .find_credentials_by_email(&email)
            .await
            .map_err(AuthError::from)?
        else {
            return Ok(());
        };
        let user = credentials.user;
        if user.disabled {
            return Ok(());
        }
        let state = deps
            .store
            .mail_state(user.id)
            .await
            .map_err(AuthError::from)?;
        let redirect = self.settings().redirects.resolve(redirect_to);
        match kind {
            ResendKind::Signup => {
                if !state.awaiting_confirmation || user.email_confirmed {
                    return Ok(());
                }
                self.send_confirmation(
                    &user,
                    OtpKind::Signup,
                    &redirect,
                    self.mail_frequency(),
                    pkce,
                )
                .await
            }
            ResendKind::EmailChange => {
                let Some(new_email) = state.new_email else {
                    return Ok(());
                };
                self.send_email_change(&user, &new_email, &redirect, pkce)
                    .await
            }
        }
    }

    /// `PUT /user` with another address: the change waits for the link or code mailed to the
    /// new address (GoTrue's email change with one confirmation; see the README).
    pub(super) async fn request_email_change(
        &self,
        caller: &Authenticated,
        new_email: Email,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: &ClientInfo,
    ) -> Result<(), SupabaseError> {
        let deps = self.auth().deps();
        deps.limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        deps.limits
            .check(Policy::PasswordResetAccount, caller.user.email.as_str())
            .await?;
        if deps
            .store
            .find_credentials_by_email(&new_email)
            .await
            .map_err(AuthError::from)?
            .is_some()
        {
            return Err(SupabaseError::EmailExists);
        }
        let redirect = self.settings().redirects.resolve(redirect_to);
        self.send_email_change(&caller.user, &new_email, &redirect, pkce)
            .await?;
        tracing::info!(user_id = %caller.user.id, "email change mailed");
        Ok(())
    }

    /// `POST /invite`: an account awaiting confirmation, invited now, and the invite mail. An
    /// invited address that has not accepted yet is invited again; any other registered
    /// address is `EmailExists`.
    pub async fn invite(
        &self,
        _admin: &AdminToken,
        email: Email,
        profile: PendingProfile,
        redirect_to: Option<&str>,
    ) -> Result<MailUser, SupabaseError> {
        let user = self.pending_user_for(email, None, profile, true).await?;
        let redirect = self.settings().redirects.resolve(redirect_to);
        self.send_confirmation(&user, OtpKind::Invite, &redirect, Duration::ZERO, None)
            .await?;
        tracing::info!(user_id = %user.id, "user invited");
        Ok(self.with_mail_state(user).await?)
    }

    /// `POST /admin/generate_link`: the link and code a mail would carry, mailed to nobody and
    /// under no frequency limit. `magiclink` for an unknown address makes a sign-up link;
    /// `recovery` and the email changes need an account.
    pub async fn generate_link(
        &self,
        _admin: &AdminToken,
        request: LinkRequest,
    ) -> Result<GeneratedLink, SupabaseError> {
        let deps = self.auth().deps();
        let redirect = self
            .settings()
            .redirects
            .resolve(request.redirect_to.as_deref());
        let existing = deps
            .store
            .find_credentials_by_email(&request.email)
            .await
            .map_err(AuthError::from)?
            .map(|credentials| credentials.user);
        let named = match &request.kind {
            LinkType::EmailChangeCurrent { .. } => Some("email_change_current"),
            LinkType::EmailChangeNew { .. } => Some("email_change_new"),
            _ => None,
        };
        let (user, kind, purpose, code_email, new_email) = match request.kind {
            LinkType::Signup { password, profile } => {
                let user = self
                    .pending_user_for(request.email, password, profile, false)
                    .await?;
                let email = user.email.clone();
                (
                    user,
                    OtpKind::Signup,
                    MailPurpose::Confirmation,
                    email,
                    None,
                )
            }
            LinkType::Invite { profile } => {
                let user = self
                    .pending_user_for(request.email, None, profile, true)
                    .await?;
                let email = user.email.clone();
                (
                    user,
                    OtpKind::Invite,
                    MailPurpose::Confirmation,
                    email,
                    None,
                )
            }
            LinkType::MagicLink => match existing {
                Some(user) => {
                    let email = user.email.clone();
                    (user, OtpKind::MagicLink, MailPurpose::Recovery, email, None)
                }
                None => {
                    let user = self
                        .pending_user_for(request.email, None, PendingProfile::default(), false)
                        .await?;
                    let email = user.email.clone();
                    (
                        user,
                        OtpKind::Signup,
                        MailPurpose::Confirmation,
                        email,
                        None,
                    )
                }
            },
            LinkType::Recovery => {
                let user = existing.ok_or(SupabaseError::LinkUserNotFound)?;
                let email = user.email.clone();
                (user, OtpKind::Recovery, MailPurpose::Recovery, email, None)
            }
            LinkType::EmailChangeCurrent { new_email } => {
                let user = existing.ok_or(SupabaseError::LinkUserNotFound)?;
                self.ensure_free(&new_email).await?;
                let email = user.email.clone();
                (
                    user,
                    OtpKind::EmailChange,
                    MailPurpose::EmailChange,
                    email,
                    Some(new_email),
                )
            }
            LinkType::EmailChangeNew { new_email } => {
                let user = existing.ok_or(SupabaseError::LinkUserNotFound)?;
                self.ensure_free(&new_email).await?;
                (
                    user,
                    OtpKind::EmailChange,
                    MailPurpose::EmailChange,
                    new_email.clone(),
                    Some(new_email),
                )
            }
        };
        let link = match (&named, &new_email) {
            (Some(name), Some(new_email)) => {
                let current = *name == "email_change_current";
                self.issue_email_change_half(&user, new_email, current, &redirect)
                    .await?
            }
            _ => {
                self.issue_link(
                    user.id,
                    purpose,
                    kind,
                    &code_email,
                    new_email.as_ref(),
                    &redirect,
                    Duration::ZERO,
                    None,
                )
                .await?
            }
        };
        tracing::info!(user_id = %user.id, kind = kind.as_str(), "admin link generated");
        Ok(GeneratedLink {
            user: self.with_mail_state(user).await?,
            action_link: link.url,
            email_otp: link.code,
            hashed_token: link.token,
            redirect_to: link.redirect,
            verification_type: named.unwrap_or(kind.as_str()),
        })
    }

    async fn ensure_free(&self, email: &Email) -> Result<(), SupabaseError> {
        let taken = self
            .auth()
            .deps()
            .store
            .find_credentials_by_email(email)
            .await
            .map_err(AuthError::from)?
            .is_some();
        if taken {
            return Err(SupabaseError::EmailExists);
        }
        Ok(())
    }

    /// The account a sign-up or invite link is for: a new one awaiting confirmation, or the
    /// existing one if it still awaits; otherwise `EmailExists`.
    async fn pending_user_for(
        &self,
        email: Email,
        password: Option<NewPassword>,
        profile: PendingProfile,
        invited: bool,
    ) -> Result<User, SupabaseError> {
        let deps = self.auth().deps();
        if let Some(credentials) = deps
            .store
            .find_credentials_by_email(&email)
            .await
            .map_err(AuthError::from)?
        {
            let state = deps
                .store
                .mail_state(credentials.user.id)
                .await
                .map_err(AuthError::from)?;
            if state.awaiting_confirmation && !credentials.user.email_confirmed {
                return Ok(credentials.user);
            }
            return Err(SupabaseError::EmailExists);
        }
        let hash = match password {
            Some(password) => deps.hasher.hash(password.into_secret()).await?,
            None => self.unknown_password_hash().await?,
        };
        self.create_pending(email, hash, profile, invited).await
    }

    /// The hash of a random password nobody is told (invited and one-time-link accounts).
    async fn unknown_password_hash(&self) -> Result<PasswordHash, AuthError> {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        let random = Secret::new(bytes.iter().map(|b| format!("{b:02x}")).collect::<String>());
        self.auth().deps().hasher.hash(random).await
    }

    async fn create_pending(
        &self,
        email: Email,
        password_hash: PasswordHash,
        profile: PendingProfile,
        invited: bool,
    ) -> Result<User, SupabaseError> {
        let deps = self.auth().deps();
        let id = UserId(Uuid::now_v7());
        let (user_metadata, app_metadata) = if profile.identity_data {
            signup_metadata(id, &email, false, &profile.data)
        } else {
            (profile.data, default_app_metadata())
        };
        let user = NewUser {
            id,
            email,
            password_hash,
            display_name: profile.display_name,
            credits_balance: deps.settings.initial_credits,
            email_confirmed: false,
            avatar_url: profile.avatar_url,
            user_metadata: Some(user_metadata),
            app_metadata: Some(app_metadata),
            now: deps.clock.now(),
        };
        match deps.store.create_pending_user(user, invited).await {
            Ok(user) => Ok(user),
            Err(StoreError::Conflict("email")) => Err(SupabaseError::EmailExists),
            Err(error) => Err(AuthError::from(error).into()),
        }
    }

    /// A confirmation (sign-up) or invite mail to the account's address; a PKCE link with
    /// `pkce`.
    async fn send_confirmation(
        &self,
        user: &User,
        kind: OtpKind,
        redirect: &str,
        min_interval: Duration,
        pkce: Option<&CodeChallenge>,
    ) -> Result<(), SupabaseError> {
        self.spend_mail_budget().await?;
        let method = match kind {
            OtpKind::Invite => FlowMethod::Invite,
            _ => FlowMethod::Signup,
        };
        let link = self
            .issue_link(
                user.id,
                MailPurpose::Confirmation,
                kind,
                &user.email,
                None,
                redirect,
                min_interval,
                pkce.map(|challenge| (method, challenge)),
            )
            .await?;
        let templates = &self.settings().templates;
        let template = match kind {
            OtpKind::Invite => &templates.invite,
            _ => &templates.confirmation,
        };
        self.send_link_mail(template, &link, &user.email, None)
            .await?;
        Ok(())
    }

    /// The email-change mails: to the new address and, for a secure change, to the current
    /// one, each with its own link and code (GoTrue's `sendEmailChange`); PKCE links with
    /// `pkce`.
    async fn send_email_change(
        &self,
        user: &User,
        new_email: &Email,
        redirect: &str,
        pkce: Option<&CodeChallenge>,
    ) -> Result<(), SupabaseError> {
        self.spend_mail_budget().await?;
        let (to_new, to_current) = self
            .issue_email_change_links(user, new_email, redirect, pkce)
            .await?;
        let templates = &self.settings().templates;
        self.send_link_mail(&templates.email_change, &to_new, new_email, Some(new_email))
            .await?;
        if let Some(to_current) = to_current {
            self.send_link_mail(
                &templates.email_change_current,
                &to_current,
                &user.email,
                Some(new_email),
            )
            .await?;
        }
        Ok(())
    }

    /// Both halves of an email change asked for by the user, stored at once: the new
    /// address's link and code and, when secure email change is on, the current address's;
    /// every earlier email-change token is spent.
    async fn issue_email_change_links(
        &self,
        user: &User,
        new_email: &Email,
        redirect: &str,
        pkce: Option<&CodeChallenge>,
    ) -> Result<(IssuedLink, Option<IssuedLink>), SupabaseError> {
        let secure = self.settings().secure_email_change;
        let (to_new, new_pair) = self.email_change_link(new_email, redirect, pkce.is_some())?;
        let (to_current, current_pair) = if secure {
            let (link, pair) = self.email_change_link(&user.email, redirect, pkce.is_some())?;
            (Some(link), Some(pair))
        } else {
            (None, None)
        };
        self.store_email_change(NewEmailChange {
            user_id: user.id,
            new_email: new_email.clone(),
            new_address: Some(new_pair),
            current_address: current_pair,
            confirmations: if secure { 2 } else { 1 },
            replace_all: true,
            expires_at: self.mail_token_expiry(),
            min_interval: self.mail_frequency(),
            now: self.auth().deps().clock.now(),
        })
        .await?;
        if let Some(challenge) = pkce {
            self.start_flow(user.id, FlowMethod::EmailChange, challenge)
                .await?;
        }
        Ok((to_new, to_current))
    }

    /// An admin's link for one half of an email change (`email_change_current` or
    /// `email_change_new`): it replaces that half's earlier tokens and keeps the other's, as
    /// GoTrue's `generate_link` does; with secure email change the change still waits for
    /// both halves.
    async fn issue_email_change_half(
        &self,
        user: &User,
        new_email: &Email,
        current: bool,
        redirect: &str,
    ) -> Result<IssuedLink, SupabaseError> {
        let secure = self.settings().secure_email_change;
        if current && !secure {
            return Err(SupabaseError::SecureEmailChangeDisabled);
        }
        let code_email = if current { &user.email } else { new_email };
        let (link, pair) = self.email_change_link(code_email, redirect, false)?;
        let (new_address, current_address) = if current {
            (None, Some(pair))
        } else {
            (Some(pair), None)
        };
        self.store_email_change(NewEmailChange {
            user_id: user.id,
            new_email: new_email.clone(),
            new_address,
            current_address,
            confirmations: if secure { 2 } else { 1 },
            replace_all: false,
            expires_at: self.mail_token_expiry(),
            min_interval: Duration::ZERO,
            now: self.auth().deps().clock.now(),
        })
        .await?;
        Ok(link)
    }

    fn mail_token_expiry(&self) -> OffsetDateTime {
        let deps = self.auth().deps();
        deps.clock.now() + deps.settings.reset_token_lifetime
    }

    async fn store_email_change(&self, change: NewEmailChange) -> Result<(), SupabaseError> {
        let issued = self
            .auth()
            .deps()
            .store
            .issue_email_change(change)
            .await
            .map_err(AuthError::from)?;
        if let MailTokenIssued::TooSoon { retry_after_secs } = issued {
            return Err(SupabaseError::MailTooSoon { retry_after_secs });
        }
        Ok(())
    }

    /// One email-change mail's link (`type=email_change`; a `pkce_` token with `pkce`) and code
    /// (keyed to `code_email`, the address it goes to), and their hashes.
    fn email_change_link(
        &self,
        code_email: &Email,
        redirect: &str,
        pkce: bool,
    ) -> Result<(IssuedLink, MailTokenPair), SupabaseError> {
        let token = new_link_token(pkce);
        let code = six_digit_code();
        let pair = MailTokenPair {
            link: hash_token(token.expose()),
            code: code_key(code_email, &code),
        };
        let mut url = url::Url::parse(&format!("{}/verify", self.settings().tokens.issuer))
            .map_err(AuthError::internal)?;
        url.query_pairs_mut()
            .append_pair("token", token.expose())
            .append_pair("type", OtpKind::EmailChange.as_str())
            .append_pair("redirect_to", redirect);
        let link = IssuedLink {
            token,
            code,
            url: url.into(),
            redirect: redirect.to_string(),
        };
        Ok((link, pair))
    }

    /// Stores a link token and a code for `purpose` (the code keyed to `code_email`, the
    /// address it is verified with) and makes the link, GoTrue's
    /// `{API_EXTERNAL_URL}/verify?token=…&type=…&redirect_to=…`. With `pkce`, the token is a
    /// `pkce_` one and, once the tokens are stored, the flow state is too.
    #[allow(clippy::too_many_arguments)]
    async fn issue_link(
        &self,
        user_id: UserId,
        purpose: MailPurpose,
        kind: OtpKind,
        code_email: &Email,
        new_email: Option<&Email>,
        redirect: &str,
        min_interval: Duration,
        pkce: Option<(FlowMethod, &CodeChallenge)>,
    ) -> Result<IssuedLink, SupabaseError> {
        let deps = self.auth().deps();
        let now: OffsetDateTime = deps.clock.now();
        let expires_at = now + deps.settings.reset_token_lifetime;
        let token = new_link_token(pkce.is_some());
        let code = six_digit_code();
        let link_hash = hash_token(token.expose());
        let code_hash = code_key(code_email, &code);
        match purpose {
            MailPurpose::Recovery => {
                for hash in [link_hash, code_hash] {
                    deps.store
                        .create_reset_token(user_id, hash, expires_at, now)
                        .await
                        .map_err(AuthError::from)?;
                }
            }
            MailPurpose::Confirmation
            | MailPurpose::EmailChange
            | MailPurpose::EmailChangeCurrent => {
                let issued = deps
                    .store
                    .issue_mail_token(NewMailToken {
                        user_id,
                        purpose,
                        link: link_hash,
                        code: code_hash,
                        new_email: new_email.cloned(),
                        expires_at,
                        min_interval,
                        now,
                    })
                    .await
                    .map_err(AuthError::from)?;
                if let MailTokenIssued::TooSoon { retry_after_secs } = issued {
                    return Err(SupabaseError::MailTooSoon { retry_after_secs });
                }
            }
        }
        if let Some((method, challenge)) = pkce {
            self.start_flow(user_id, method, challenge).await?;
        }
        let mut url = url::Url::parse(&format!("{}/verify", self.settings().tokens.issuer))
            .map_err(AuthError::internal)?;
        url.query_pairs_mut()
            .append_pair("token", token.expose())
            .append_pair("type", kind.as_str())
            .append_pair("redirect_to", redirect);
        Ok(IssuedLink {
            token,
            code,
            url: url.into(),
            redirect: redirect.to_string(),
        })
    }

    async fn send_link_mail(
        &self,
        template: &MailTemplate,
        link: &IssuedLink,
        to: &Email,
        new_email: Option<&Email>,
    ) -> Result<(), AuthError> {
        let mail = template.render(&TemplateValues {
            confirmation_url: &link.url,
            token: &link.code,
            token_hash: link.token.expose(),
            site_url: self.settings().redirects.site_url(),
            redirect_to: &link.redirect,
            email: to,
            new_email,
        });
        self.auth()
            .deps()
            .mailer
            .send(mail)
            .await
            .map_err(AuthError::internal)
    }
}
