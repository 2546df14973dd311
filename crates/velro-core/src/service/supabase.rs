//! The Supabase Auth (GoTrue) use cases: thin variants of registration, sign-in, refresh,
//! authentication and logout that hand out GoTrue-shaped access tokens. Every rule (password
//! check, rate limits, failed-login back-off, rotation, revocation, cache invalidation) is the
//! one `AuthService` applies to the v1 API; nothing here repeats one.

use std::sync::Arc;

use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::supabase_mail::{MailUser, PendingProfile, SignUp};
use super::supabase_pkce::{link_method, link_token_shape, new_link_token, LinkLanding};
use super::{
    AuthService, Authenticated, ClientInfo, IssuedSession, Login, LogoutScope, Registration,
};
use crate::domain::{
    CodeChallenge, Email, EmailChangeRedeemed, FlowMethod, MailPurpose, MailTokenIssued, Metadata,
    NewMailToken, NewPassword, SessionId, User,
};
use crate::limits::Policy;
use crate::mail_templates::{MailTemplate, MailTemplates, TemplateValues};
use crate::redirect::RedirectPolicy;
use crate::store::TokenHash;
use crate::tokens::{
    generate_opaque_token, hash_token, AdminToken, AuthMethod, SupabaseTokenProfile,
};
use crate::{AuthError, Secret, StoreError};

/// The settings of the Supabase surface, named after GoTrue's.
#[derive(Debug, Clone)]
pub struct SupabaseSettings {
    pub tokens: SupabaseTokenProfile,
    /// GoTrue's `DISABLE_SIGNUP`: `/signup` refuses everyone.
    pub disable_signup: bool,
    /// GoTrue's `MAILER_AUTOCONFIRM`: `/signup` confirms at once; otherwise it mails a
    /// confirmation and the account cannot sign in here until it is confirmed.
    pub mailer_autoconfirm: bool,
    /// `SITE_URL` and `URI_ALLOW_LIST`: where mail links may send the browser.
    pub redirects: RedirectPolicy,
    pub templates: MailTemplates,
    /// GoTrue's `SMTP_MAX_FREQUENCY`: the shortest time between two mails of one kind to one
    /// user (60 s by default).
    pub smtp_max_frequency: Duration,
    /// GoTrue's `MAILER_SECURE_EMAIL_CHANGE_ENABLED`: an email change waits for a mail to the
    /// current address as well as one to the new address.
    pub secure_email_change: bool,
}

/// What a good `verify` ends with.
#[derive(Debug)]
pub enum Verified {
    /// Signed in (a completed email change signs in too).
    Session(Box<IssuedSession>),
    /// One half of a secure email change confirmed: the other address's link or code is
    /// still awaited, and nobody is signed in yet.
    OtherAddressAwaited,
}

/// What spending a mail token did. Lives only between two calls, so the user is not boxed.
#[allow(clippy::large_enum_variant)]
enum Spent {
    /// The token's holder, who may sign in, and what the token was for.
    Holder(User, MailPurpose),
    /// One half of a secure email change: the other is awaited.
    AwaitingOther,
}

/// The `type` of a one-time token that Velro issues: recovery and magic-link mails carry the
/// same kind of token (as GoTrue's magic link reuses its recovery token), sign-up and invite
/// mails a confirmation token, and `email` names either a confirmation or a recovery token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpKind {
    Recovery,
    MagicLink,
    Email,
    Signup,
    Invite,
    EmailChange,
}

impl OtpKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recovery => "recovery",
            Self::MagicLink => "magiclink",
            Self::Email => "email",
            Self::Signup => "signup",
            Self::Invite => "invite",
            Self::EmailChange => "email_change",
        }
    }

    /// The stored tokens a `verify` of this type may redeem (GoTrue's `email` type takes a
    /// confirmation or a recovery token).
    pub fn purposes(self) -> [MailPurpose; 2] {
        use MailPurpose as P;
        match self {
            Self::Recovery | Self::MagicLink => [P::Recovery, P::Recovery],
            Self::Signup | Self::Invite => [P::Confirmation, P::Confirmation],
            Self::Email => [P::Confirmation, P::Recovery],
            Self::EmailChange => [P::EmailChange, P::EmailChange],
        }
    }
}

/// How long a link token is, in characters: what `generate_opaque_token` makes.
pub(super) const LINK_TOKEN_LEN: usize = 43;

/// The stored key of a mailed code. It hashes a byte (0xFF) that no UTF-8 text contains, so no
/// token presented anywhere else (a link token here, a v1 reset token) can hash to it: a
/// six-digit code is only ever tried together with its address, under that address's limit.
pub(super) fn code_key(email: &Email, code: &str) -> TokenHash {
    let mut hasher = Sha256::new();
    hasher.update([0xFF]);
    hasher.update(email.as_str().as_bytes());
    hasher.update([0x00]);
    hasher.update(code.as_bytes());
    TokenHash(hasher.finalize().into())
}

/// Six random digits, uniformly (rejection sampling, no modulo bias).
pub(super) fn six_digit_code() -> String {
    const RANGE: u32 = 1_000_000;
    let limit = u32::MAX - u32::MAX % RANGE;
    loop {
        let mut bytes = [0u8; 4];
        OsRng.fill_bytes(&mut bytes);
        let value = u32::from_le_bytes(bytes);
        if value < limit {
            return format!("{:06}", value % RANGE);
        }
    }
}

/// What only the Supabase surface can end with, besides the shared meanings.
#[derive(Debug, thiserror::Error)]
pub enum SupabaseError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("sign-ups are disabled")]
    SignupDisabled,
    #[error("the new password is the current one")]
    SamePassword,
    /// A one-time link (`link`) or code that is unknown, spent or expired.
    #[error("the one-time token is invalid or expired")]
    OtpInvalid { link: bool },
    /// `POST /otp` for an address with no account, when it may not create one.
    #[error("sign-ups through one-time links are not allowed")]
    OtpSignupsDisabled,
    /// A user token whose user no longer exists.
    #[error("the token's user does not exist")]
    UserGone,
    /// A user token of a banned (or disabled) account.
    #[error("the token's user is banned")]
    UserBanned,
    /// A metadata object that is not an object or is too large.
    #[error("{field} {error}")]
    Metadata {
        field: &'static str,
        error: crate::domain::MetadataError,
    },
    /// Another account has the address (admin create, email change, invite, admin links).
    #[error("another account has this email address")]
    EmailExists,
    /// `PUT /user` with `app_metadata`: only an admin may write it.
    #[error("app_metadata is for admins only")]
    NotAdmin,
    /// The password is right but the account has not confirmed its address.
    #[error("the email address is not confirmed")]
    EmailNotConfirmed,
    /// The previous mail of this kind to this user is younger than GoTrue's frequency limit.
    #[error("a mail was sent to this user moments ago")]
    MailTooSoon { retry_after_secs: u64 },
    /// The deployment's mail budget (GoTrue's `RATE_LIMIT_EMAIL_SENT`) is spent.
    #[error("the mail budget is spent")]
    MailBudgetSpent,
    /// An admin link that needs an account, for an address without one.
    #[error("no user has this email address")]
    LinkUserNotFound,
    /// `grant_type=pkce` with an auth code that is unknown or spent.
    #[error("no flow state has this auth code")]
    FlowStateNotFound,
    /// `grant_type=pkce` with an auth code issued longer ago than the flow-state lifetime.
    #[error("the flow state has expired")]
    FlowStateExpired,
    /// `grant_type=pkce` with a verifier the stored challenge was not made from.
    #[error("the code verifier does not match the code challenge")]
    BadCodeVerifier,
    /// A PKCE link followed for an account with no flow state of the link's kind.
    #[error("no flow state for the link's user and kind")]
    LinkFlowStateMissing,
    /// An admin link for the current address's half of an email change, with secure email
    /// change off.
    #[error("secure email change is disabled")]
    SecureEmailChangeDisabled,
}

/// What `PUT /user` may change: the password, the address (confirmed by a mail to the new
/// one), and `user_metadata` (`data`, merged; its `full_name` and `avatar_url` are the profile).
#[derive(Debug, Default)]
pub struct SupabaseUserChange {
    pub password: Option<NewPassword>,
    pub email: Option<Email>,
    pub data: Option<Metadata>,
    /// The request carried `app_metadata`, which only an admin may write.
    pub app_metadata: bool,
}

/// The Supabase-compatible use cases, over the same `AuthService`. Cheap to clone.
#[derive(Clone)]
pub struct SupabaseAuth {
    auth: AuthService,
    settings: Arc<SupabaseSettings>,
}

/// When a session began, for `amr`: sessions ids are UUIDv7, whose first 48 bits are the
/// creation time in milliseconds; `None` for ids made otherwise (imported sessions).
fn session_started(session: SessionId) -> Option<i64> {
    let (seconds, _) = session.0.get_timestamp()?.to_unix();
    i64::try_from(seconds).ok()
}

impl SupabaseAuth {
    pub fn new(auth: AuthService, settings: SupabaseSettings) -> Self {
        Self {
            auth,
            settings: Arc::new(settings),
        }
    }

    pub fn settings(&self) -> &SupabaseSettings {
        &self.settings
    }

    pub fn auth(&self) -> &AuthService {
        &self.auth
    }

    /// GoTrue answers a disabled sign-up before looking at the request; the handler asks
    /// first, and `sign_up` asks again.
    pub fn check_signup_allowed(&self) -> Result<(), SupabaseError> {
        if self.settings.disable_signup {
            return Err(SupabaseError::SignupDisabled);
        }
        Ok(())
    }

    /// Registration. With auto-confirm, the v1 use case creates the account already confirmed
    /// and signs it in, as GoTrue does when `MAILER_AUTOCONFIRM` is on; without, the account
    /// waits for the confirmation mailed to it (see `sign_up_unconfirmed`).
    ///
    /// With `pkce`, the confirmation link is a PKCE one (GoTrue ignores the challenge when it
    /// answers with a session at once, and so does this).
    pub async fn sign_up(
        &self,
        registration: Registration,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: ClientInfo,
    ) -> Result<SignUp, SupabaseError> {
        self.check_signup_allowed()?;
        if !self.settings.mailer_autoconfirm {
            let user = self
                .sign_up_unconfirmed(registration, redirect_to, pkce, client)
                .await?;
            return Ok(SignUp::Unconfirmed(user));
        }
        let issued = self.auth.register_with(registration, true, client).await?;
        Ok(SignUp::Session(self.reissue(issued)?))
    }

    /// `grant_type=password`: the v1 login (limits, back-off, dummy hash for unknown emails,
    /// rehash) with a Supabase token.
    pub async fn sign_in(
        &self,
        email: Email,
        password: Secret<String>,
        client: ClientInfo,
    ) -> Result<IssuedSession, SupabaseError> {
        // GoTrue sessions have no "remember me": the ordinary refresh-token lifetime.
        let login = Login {
            email,
            password,
            remember_me: false,
        };
        let issued = self
            .auth
            .login_gated(login, client, true)
            .await?
            .ok_or(SupabaseError::EmailNotConfirmed)?;
        Ok(self.reissue(issued)?)
    }

    /// `grant_type=refresh_token`: the same rotation, reuse window and family revocation.
    ///
    /// A dead token of a banned account is GoTrue's `user_banned` rather than "not found"
    /// (the ban ended its sessions).
    pub async fn refresh(
        &self,
        presented: Secret<String>,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        let deps = self.auth.deps();
        let key = hash_token(presented.expose());
        let issued = match self.auth.refresh(presented, client).await {
            Ok(issued) => issued,
            Err(AuthError::RefreshTokenInvalid) => {
                let owner = deps.store.find_refresh_token_user(key).await?;
                let banned =
                    |user: &User| user.deleted_at.is_none() && user.is_refused(deps.clock.now());
                if owner.as_ref().is_some_and(banned) {
                    return Err(AuthError::AccountDisabled);
                }
                return Err(AuthError::RefreshTokenInvalid);
            }
            Err(other) => return Err(other),
        };
        self.reissue(issued)
    }

    /// A Supabase user token whose session is live; Velro's own tokens are refused. A dead
    /// session is told apart as GoTrue does: its user deleted (`UserGone`), banned or disabled
    /// (`UserBanned`), or only the session ended (`SessionRevoked`).
    pub async fn authenticate(&self, access_token: &str) -> Result<Authenticated, SupabaseError> {
        let deps = self.auth.deps();
        let now = deps.clock.now();
        let verified =
            deps.access_tokens
                .verify_supabase(&self.settings.tokens, access_token, now)?;
        let user_id = verified.user_id;
        match self.auth.live_session(verified).await {
            Err(AuthError::SessionRevoked) => {
                match deps
                    .store
                    .find_user(user_id)
                    .await
                    .map_err(AuthError::from)?
                {
                    None => Err(SupabaseError::UserGone),
                    Some(user) if user.deleted_at.is_none() && user.is_refused(now) => {
                        Err(SupabaseError::UserBanned)
                    }
                    Some(_) => Err(AuthError::SessionRevoked.into()),
                }
            }
            other => Ok(other?),
        }
    }

    pub async fn logout(
        &self,
        caller: &Authenticated,
        scope: LogoutScope,
    ) -> Result<(), AuthError> {
        self.auth.logout(caller, scope).await
    }

    /// `PUT /user`. A new password goes through the same limits and storage as the v1 change
    /// (every other session revoked, the caller's kept) but, as in GoTrue, needs no current
    /// password: holding the session is enough. It must differ from the current one.
    pub async fn update_user(
        &self,
        caller: &Authenticated,
        change: SupabaseUserChange,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: ClientInfo,
    ) -> Result<MailUser, SupabaseError> {
        let deps = self.auth.deps();
        if change.app_metadata {
            return Err(SupabaseError::NotAdmin);
        }
        if let Some(email) = change.email.filter(|email| *email != caller.user.email) {
            self.request_email_change(caller, email, redirect_to, pkce, &client)
                .await?;
        }
        let mut password_hash = None;
        if let Some(password) = change.password {
            super::account::not_the_email("password", &password, &caller.user.email)?;
            let credentials = self.auth.before_password_change(caller, &client).await?;
            let same = deps
                .hasher
                .verify(
                    Secret::new(password.expose().to_string()),
                    Some(credentials.password_hash),
                )
                .await?
                .matches;
            if same {
                return Err(SupabaseError::SamePassword);
            }
            password_hash = Some(deps.hasher.hash(password.into_secret()).await?);
        }
        // The password and the data are one write, as in GoTrue's one transaction.
        let user = if change.data.is_some() || password_hash.is_some() {
            self.update_own_account(caller, change.data, password_hash)
                .await?
        } else {
            deps.store
                .find_user(caller.user.id)
                .await
                .map_err(AuthError::from)?
                .ok_or(AuthError::SessionRevoked)?
        };
        Ok(self.with_mail_state(user).await?)
    }

    /// An admin credential (`service_role` key or any token with an admin role signed by our
    /// keys). A credential naming a session holds only while that session is live.
    pub async fn authorize_admin(&self, bearer: Option<&str>) -> Result<AdminToken, AuthError> {
        let token = bearer.ok_or(AuthError::TokenMissing)?;
        let deps = self.auth.deps();
        let admin =
            deps.access_tokens
                .verify_admin(&self.settings.tokens, token, deps.clock.now())?;
        if let Some(session) = admin.session_id {
            if deps.store.find_live_session(session).await?.is_none() {
                return Err(AuthError::SessionRevoked);
            }
        }
        Ok(admin)
    }

    /// `POST /recover`: answers the same whether or not the address has an account (the
    /// lookup and the mail happen after the answer), under the v1 password-reset limits.
    /// `redirect_to` is kept only if the redirect policy allows it. The mail budget is spent
    /// for every address, so that its 429 tells nothing either; a mail within
    /// `SMTP_MAX_FREQUENCY` of the previous one is not sent, silently (GoTrue answers 429,
    /// which tells that the address has an account; see SECURITY.md).
    pub async fn recover(
        &self,
        email: Email,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: ClientInfo,
    ) -> Result<(), SupabaseError> {
        self.check_one_time_link_limits(&email, &client).await?;
        self.spend_mail_budget().await?;
        let redirect = self.settings.redirects.resolve(redirect_to);
        let service = self.clone();
        let pkce = pkce.cloned();
        let task = async move {
            let kind = OtpKind::Recovery;
            match service
                .mail_one_time_link(kind, &email, &redirect, pkce.as_ref(), false)
                .await
            {
                Ok(()) => {}
                Err(SupabaseError::MailTooSoon { retry_after_secs }) => {
                    tracing::info!(
                        retry_after_secs,
                        "recovery mail not sent: one went out moments ago"
                    );
                }
                Err(error) => {
                    tracing::warn!(error = %error, kind = kind.as_str(), "one-time link mail not sent");
                }
            }
        };
        tokio::spawn(tracing::Instrument::instrument(
            task,
            tracing::Span::current(),
        ));
        Ok(())
    }

    /// `POST /otp` by email: a magic link and code. An address without an account gets one
    /// (confirmed, with a random password nobody knows, as GoTrue makes it) when `create_user`
    /// and sign-ups allow, else `OtpSignupsDisabled`, GoTrue's answer, which tells that the
    /// address has no account, as GoTrue's does.
    pub async fn send_magic_link(
        &self,
        email: Email,
        create_user: bool,
        profile: PendingProfile,
        redirect_to: Option<&str>,
        pkce: Option<&CodeChallenge>,
        client: ClientInfo,
    ) -> Result<(), SupabaseError> {
        let deps = self.auth.deps();
        let exists = deps
            .store
            .find_credentials_by_email(&email)
            .await
            .map_err(AuthError::from)?
            .is_some();
        if !exists {
            if !create_user || self.settings.disable_signup {
                return Err(SupabaseError::OtpSignupsDisabled);
            }
            if !self.settings.mailer_autoconfirm {
                // GoTrue: a new address gets an unconfirmed account and a confirmation mail.
                return self
                    .otp_sign_up_unconfirmed(email, profile, redirect_to, pkce, client)
                    .await;
            }
            let random = generate_opaque_token();
            let password = NewPassword::generated(random);
            let registration = Registration {
                email: email.clone(),
                password,
                display_name: profile.display_name,
                avatar_url: profile.avatar_url,
                supabase_data: Some(profile.data),
            };
            let issued = match self
                .auth
                .register_with(registration, true, client.clone())
                .await
            {
                Ok(issued) => Some(issued),
                // Registered meanwhile by a concurrent request: mail it like any account.
                Err(AuthError::EmailExists) => None,
                Err(error) => return Err(error.into()),
            };
            if let Some(issued) = issued {
                // Registration signs in; nobody holds that session, so it ends at once.
                deps.store
                    .revoke_session(issued.user.id, issued.session_id, deps.clock.now())
                    .await
                    .map_err(AuthError::from)?;
            }
        }
        // GoTrue's answer to the address itself: 429 within `SMTP_MAX_FREQUENCY` of its last
        // mail. Here it tells nothing new: a known address answers `otp_disabled` when it may
        // not sign up, and a new one is registered by the first request.
        self.check_one_time_link_limits(&email, &client).await?;
        let redirect = self.settings.redirects.resolve(redirect_to);
        self.mail_one_time_link(OtpKind::MagicLink, &email, &redirect, pkce, true)
            .await
    }

    async fn check_one_time_link_limits(
        &self,
        email: &Email,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let limits = &self.auth.deps().limits;
        limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        limits
            .check(Policy::PasswordResetAccount, email.as_str())
            .await
    }

    /// One mail, two ways in: a link token (256 bits) and a six-digit code, stored hashed as
    /// recovery tokens with the reset lifetime; redeeming either spends both, and a new mail
    /// spends the earlier ones. With `pkce`, the link token is a PKCE one and a flow state is
    /// stored with it. Nothing for an unknown or refused account; `MailTooSoon`
    /// within `SMTP_MAX_FREQUENCY` of the previous recovery or magic-link mail. `spend_budget`
    /// is false where the caller spent it already.
    async fn mail_one_time_link(
        &self,
        kind: OtpKind,
        email: &Email,
        redirect: &str,
        pkce: Option<&CodeChallenge>,
        spend_budget: bool,
    ) -> Result<(), SupabaseError> {
        let deps = self.auth.deps();
        let Some(credentials) = deps
            .store
            .find_credentials_by_email(email)
            .await
            .map_err(AuthError::from)?
        else {
            return Ok(());
        };
        let user = credentials.user;
        if user.is_refused(deps.clock.now()) {
            return Ok(());
        }
        if spend_budget {
            self.spend_mail_budget().await?;
        }
        let now = deps.clock.now();
        let link_token = new_link_token(pkce.is_some());
        let code = six_digit_code();
        let issued = deps
            .store
            .issue_mail_token(NewMailToken {
                user_id: user.id,
                purpose: MailPurpose::Recovery,
                link: hash_token(link_token.expose()),
                code: code_key(&user.email, &code),
                new_email: None,
                expires_at: now + deps.settings.reset_token_lifetime,
                min_interval: self.mail_frequency(),
                now,
            })
            .await
            .map_err(AuthError::from)?;
        if let MailTokenIssued::TooSoon { retry_after_secs } = issued {
            return Err(SupabaseError::MailTooSoon { retry_after_secs });
        }
        if let Some(challenge) = pkce {
            let method = match kind {
                OtpKind::MagicLink => FlowMethod::MagicLink,
                _ => FlowMethod::Recovery,
            };
            self.start_flow(user.id, method, challenge).await?;
        }
        let mut link = url::Url::parse(&format!("{}/verify", self.settings.tokens.issuer))
            .map_err(AuthError::internal)?;
        link.query_pairs_mut()
            .append_pair("token", link_token.expose())
            .append_pair("type", kind.as_str())
            .append_pair("redirect_to", redirect);
        let template: &MailTemplate = match kind {
            OtpKind::MagicLink => &self.settings.templates.magic_link,
            // This path mails recovery tokens only: `/recover` and `/otp`.
            _ => &self.settings.templates.recovery,
        };
        let mail = template.render(&TemplateValues {
            confirmation_url: link.as_str(),
            token: &code,
            token_hash: link_token.expose(),
            site_url: self.settings.redirects.site_url(),
            redirect_to: redirect,
            email: &user.email,
            new_email: None,
        });
        deps.mailer.send(mail).await.map_err(AuthError::internal)?;
        tracing::info!(user_id = %user.id, kind = kind.as_str(), "one-time link mail sent");
        Ok(())
    }

    /// `POST /verify` with a link token (`token_hash`): a session, for a PKCE link's token too
    /// (GoTrue's `verifyPost` checks no flow state).
    pub async fn verify_link(
        &self,
        token: &str,
        kind: OtpKind,
        client: ClientInfo,
    ) -> Result<Verified, SupabaseError> {
        let limits = &self.auth.deps().limits;
        limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        if link_token_shape(token).is_none() {
            return Err(SupabaseError::OtpInvalid { link: true });
        }
        self.redeem(hash_token(token), kind, client, true).await
    }

    /// `GET /verify`, a followed mail link: a session for an implicit-flow token; for a PKCE
    /// one (`pkce_…`), the token is spent and applied as ever, and the auth code of the user's
    /// flow state of the link's kind is issued instead of a session.
    pub async fn follow_link(
        &self,
        token: &str,
        kind: OtpKind,
        client: ClientInfo,
    ) -> Result<LinkLanding, SupabaseError> {
        let limits = &self.auth.deps().limits;
        limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        let Some(pkce) = link_token_shape(token) else {
            return Err(SupabaseError::OtpInvalid { link: true });
        };
        if !pkce {
            return Ok(
                match self.redeem(hash_token(token), kind, client, true).await? {
                    Verified::Session(issued) => LinkLanding::Session(issued),
                    Verified::OtherAddressAwaited => LinkLanding::OtherAddressAwaited,
                },
            );
        }
        let (user, purpose) = match self.spend(hash_token(token), kind, true).await? {
            Spent::Holder(user, purpose) => (user, purpose),
            Spent::AwaitingOther => return Ok(LinkLanding::OtherAddressAwaited),
        };
        let code = self
            .issue_auth_code(user.id, link_method(kind, purpose))
            .await?;
        tracing::info!(user_id = %user.id, kind = kind.as_str(), "auth code issued by a link");
        Ok(LinkLanding::AuthCode(code))
    }

    /// `verify` with an address and the code mailed to it, under that address's limit.
    pub async fn verify_code(
        &self,
        email: Email,
        code: &str,
        kind: OtpKind,
        client: ClientInfo,
    ) -> Result<Verified, SupabaseError> {
        let limits = &self.auth.deps().limits;
        limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        limits
            .check(Policy::PasswordResetAccount, email.as_str())
            .await?;
        if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SupabaseError::OtpInvalid { link: false });
        }
        self.redeem(code_key(&email, code), kind, client, false)
            .await
    }

    /// Spends the token (only of the purposes `kind` names) and applies it (a confirmation,
    /// an email change, or one half of a secure one), then signs its holder in.
    async fn redeem(
        &self,
        key: TokenHash,
        kind: OtpKind,
        client: ClientInfo,
        link: bool,
    ) -> Result<Verified, SupabaseError> {
        Ok(match self.spend(key, kind, link).await? {
            Spent::AwaitingOther => Verified::OtherAddressAwaited,
            Spent::Holder(user, _) => {
                Verified::Session(Box::new(self.sign_in_holder(user, client, "otp").await?))
            }
        })
    }

    /// Spends the token and applies it: its holder, who may sign in, and what it was; or, for
    /// one half of a secure email change, that the other half is awaited.
    async fn spend(
        &self,
        key: TokenHash,
        kind: OtpKind,
        link: bool,
    ) -> Result<Spent, SupabaseError> {
        let deps = self.auth.deps();
        let now = deps.clock.now();
        let invalid = || SupabaseError::OtpInvalid { link };
        let redeemed = if kind == OtpKind::EmailChange {
            match deps.store.redeem_email_change(key, now).await {
                Ok(Some(EmailChangeRedeemed::AwaitingOther { user_id })) => {
                    tracing::info!(%user_id, "email change: one address confirmed");
                    return Ok(Spent::AwaitingOther);
                }
                Ok(Some(EmailChangeRedeemed::Changed { user_id })) => {
                    Ok(Some((user_id, MailPurpose::EmailChange)))
                }
                Ok(None) => Ok(None),
                Err(error) => Err(error),
            }
        } else {
            deps.store
                .redeem_mail_token(key, kind.purposes(), now)
                .await
                .map(|redeemed| redeemed.map(|redeemed| (redeemed.user_id, redeemed.purpose)))
        };
        let (user_id, purpose) = match redeemed {
            Ok(Some(redeemed)) => redeemed,
            Ok(None) => return Err(invalid()),
            // The pending address was taken after the change was asked for.
            Err(StoreError::Conflict("email")) => return Err(SupabaseError::EmailExists),
            Err(error) => return Err(AuthError::from(error).into()),
        };
        let user = deps
            .store
            .find_user(user_id)
            .await
            .map_err(AuthError::from)?
            .ok_or_else(invalid)?;
        if user.is_refused(now) {
            return Err(AuthError::AccountDisabled.into());
        }
        Ok(Spent::Holder(user, purpose))
    }

    /// A new session for the holder of a spent token or auth code, `method` its `amr`.
    pub(super) async fn sign_in_holder(
        &self,
        user: User,
        client: ClientInfo,
        method: &'static str,
    ) -> Result<IssuedSession, AuthError> {
        let deps = self.auth.deps();
        let now = deps.clock.now();
        let refresh_token = generate_opaque_token();
        let session = self
            .auth
            .new_session(user.id, false, client, &refresh_token, now);
        let session_id = session.id;
        deps.store.create_session(session).await?;
        tracing::info!(user_id = %user.id, method, "signed in by a one-time token");
        let issued = self.auth.issue(user, session_id, refresh_token, now)?;
        self.reissue_with(issued, method)
    }

    /// The session the v1 use case issued, with a Supabase access token in place of the v1 one.
    fn reissue(&self, issued: IssuedSession) -> Result<IssuedSession, AuthError> {
        self.reissue_with(issued, "password")
    }

    fn reissue_with(
        &self,
        issued: IssuedSession,
        method: &'static str,
    ) -> Result<IssuedSession, AuthError> {
        let deps = self.auth.deps();
        let now: OffsetDateTime = deps.clock.now();
        let method = AuthMethod {
            method,

            timestamp: session_started(issued.session_id).unwrap_or(now.unix_timestamp()),
        };
        let access = deps.access_tokens.issue_supabase(
            &self.settings.tokens,
            &issued.user,
            issued.session_id,
            method,
            now,
        )?;
        Ok(IssuedSession {
            access_token: access.token,
            expires_in: access.expires_at - access.issued_at,
            expires_at: access.expires_at,
            ..issued
        })
    }
}
