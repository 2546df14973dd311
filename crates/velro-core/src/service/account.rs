//! Accounts: registration, login, profile and password changes.

use uuid::Uuid;

use super::{AuthService, Authenticated, ClientInfo, IssuedSession};
use crate::domain::{
    AvatarUrl, Credentials, DisplayName, Email, Metadata, NewPassword, NewUser, ProfileChange,
    SessionId, User, UserId,
};
use crate::error::FieldError;
use crate::limits::Policy;
use crate::mail::OutgoingMail;
use crate::store::NewSession;
use crate::tokens::{generate_opaque_token, hash_token};
use crate::{AuthError, Secret, StoreError};

/// A registration whose every field has been parsed.
#[derive(Debug)]
pub struct Registration {
    pub email: Email,
    pub password: NewPassword,
    pub display_name: Option<DisplayName>,
    pub avatar_url: Option<AvatarUrl>,
    /// The Supabase sign-up's `data` (its other keys; `full_name` and `avatar_url` are the
    /// fields above): stored as `user_metadata` under GoTrue's identity data. `None` on the v1
    /// API, whose accounts have no stored metadata.
    pub supabase_data: Option<Metadata>,
}

/// A sign-in attempt whose every field has been parsed.
#[derive(Debug)]
pub struct Login {
    pub email: Email,
    pub password: Secret<String>,
    /// Refresh tokens of the new session live the long lifetime.
    pub remember_me: bool,
}

impl AuthService {
    pub async fn register(
        &self,
        registration: Registration,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        self.register_with(registration, false, client).await
    }

    /// Registration, with the address confirmed at once when `email_confirmed` (the Supabase
    /// surface's auto-confirm); the v1 API registers unconfirmed.
    pub(super) async fn register_with(
        &self,
        registration: Registration,
        email_confirmed: bool,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        not_the_email("password", &registration.password, &registration.email)?;
        let deps = self.deps();
        deps.limits
            .check_ip(Policy::RegisterIp, client.ip())
            .await?;
        deps.limits
            .check(Policy::RegisterAccount, registration.email.as_str())
            .await?;
        let password_hash = deps
            .hasher
            .hash(registration.password.into_secret())
            .await?;
        let now = deps.clock.now();
        let user_id = UserId(Uuid::now_v7());
        let refresh_token = generate_opaque_token();
        let session = self.new_session(user_id, false, client, &refresh_token, now);
        let session_id = session.id;
        let (user_metadata, app_metadata) = match &registration.supabase_data {
            Some(data) => {
                let (user_metadata, app_metadata) = crate::tokens::signup_metadata(
                    user_id,
                    &registration.email,
                    email_confirmed,
                    data,
                );
                (Some(user_metadata), Some(app_metadata))
            }
            None => (None, None),
        };
        let user = NewUser {
            id: user_id,
            email: registration.email,
            password_hash,
            display_name: registration.display_name,
            credits_balance: deps.settings.initial_credits,
            email_confirmed,
            avatar_url: registration.avatar_url,
            user_metadata,
            app_metadata,
            now,
        };
        let user = match deps.store.create_user(user, session).await {
            Ok(user) => user,
            Err(StoreError::Conflict("email")) => return Err(AuthError::EmailExists),
            Err(other) => return Err(other.into()),
        };
        tracing::info!(user_id = %user.id, "user registered");
        self.issue(user, session_id, refresh_token, now)
    }

    pub async fn login(
        &self,
        login: Login,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        // Without the confirmation gate there is no `None`.
        self.login_gated(login, client, false)
            .await?
            .ok_or(AuthError::InvalidCredentials)
    }

    /// The login, refusing with `None` (after the password is proven, as GoTrue checks it) an
    /// account created unconfirmed through /auth/v1 that has not confirmed yet, when
    /// `refuse_awaiting_confirmation`. No session is created then.
    pub(super) async fn login_gated(
        &self,
        login: Login,
        client: ClientInfo,
        refuse_awaiting_confirmation: bool,
    ) -> Result<Option<IssuedSession>, AuthError> {
        let Login {
            email,
            password,
            remember_me,
        } = login;
        let email = &email;
        let deps = self.deps();
        // Unknown and known emails are counted alike, so a refusal says nothing about either.
        deps.limits.check_ip(Policy::LoginIp, client.ip()).await?;
        deps.limits
            .before_login(email.as_str(), client.ip())
            .await?;
        deps.hasher.admit()?;
        let credentials = deps.store.find_credentials_by_email(email).await?;
        let stored_hash = credentials.as_ref().map(|c| c.password_hash.clone());
        let verification = deps.hasher.verify(password.clone(), stored_hash).await?;
        let Some(credentials) = credentials.filter(|_| verification.matches) else {
            deps.limits
                .after_login(email.as_str(), client.ip(), false)
                .await;
            return Err(AuthError::InvalidCredentials);
        };
        let user = credentials.user;
        // Only after the password is proven, so that disabled status does not leak.
        if user.is_refused(deps.clock.now()) {
            return Err(AuthError::AccountDisabled);
        }
        deps.limits
            .after_login(email.as_str(), client.ip(), true)
            .await;
        if verification.needs_rehash {
            self.rehash(user.id, password).await;
        }
        // Only accounts not (yet) confirmed can be awaiting: one read for those alone.
        if refuse_awaiting_confirmation
            && !user.email_confirmed
            && deps.store.mail_state(user.id).await?.awaiting_confirmation
        {
            return Ok(None);
        }
        let now = deps.clock.now();
        let refresh_token = generate_opaque_token();
        let session = self.new_session(user.id, remember_me, client, &refresh_token, now);
        let session_id = session.id;
        deps.store.create_session(session).await?;
        self.issue(user, session_id, refresh_token, now).map(Some)
    }

    /// Counts a sign-in that is not a password login (the console's service-key form) against
    /// the same per-address limit as logins, so that guessing there costs as much.
    pub async fn check_sign_in_ip(&self, client: &ClientInfo) -> Result<(), AuthError> {
        self.deps()
            .limits
            .check_ip(Policy::LoginIp, client.ip())
            .await
    }

    /// Upgrades an outdated or imported hash. A failure here must not fail the login: the old
    /// hash still works and the next login tries again.
    async fn rehash(&self, user_id: UserId, password: Secret<String>) {
        let deps = self.deps();
        let outcome = match deps.hasher.hash(password).await {
            Ok(hash) => deps
                .store
                .replace_password_hash(user_id, &hash, deps.clock.now())
                .await
                .map_err(AuthError::from),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(()) => tracing::info!(%user_id, "password rehashed with current parameters"),
            Err(error) => tracing::warn!(%user_id, error = %error, "password rehash skipped"),
        }
    }

    pub(super) fn new_session(
        &self,
        user_id: UserId,
        remember_me: bool,
        client: ClientInfo,
        refresh_token: &Secret<String>,
        now: time::OffsetDateTime,
    ) -> NewSession {
        let lifetime = self.deps().settings.refresh.lifetime_for(remember_me);
        NewSession {
            id: SessionId(Uuid::now_v7()),
            user_id,
            remember_me,
            user_agent: client.user_agent,
            ip: client.ip,
            refresh_token: hash_token(refresh_token.expose()),
            refresh_expires_at: now + lifetime,
            now,
        }
    }

    pub async fn update_profile(
        &self,
        caller: &Authenticated,
        change: ProfileChange,
    ) -> Result<User, AuthError> {
        let deps = self.deps();
        deps.store
            .update_profile(caller.user.id, &change, deps.clock.now())
            .await?
            .ok_or(AuthError::SessionRevoked)
    }

    /// Answers the same whether or not the account exists: the lookup, the token and the mail
    /// happen after the answer, so neither the body nor the timing tells. The limits count the
    /// email as given, existing or not.
    pub async fn request_password_reset(
        &self,
        email: Email,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        let limits = &self.deps().limits;
        limits
            .check_ip(Policy::PasswordResetIp, client.ip())
            .await?;
        limits
            .check(Policy::PasswordResetAccount, email.as_str())
            .await?;
        let service = self.clone();
        let task = async move {
            if let Err(error) = service.send_reset_mail(&email).await {
                tracing::warn!(error = %error, "password reset mail not sent");
            }
        };
        tokio::spawn(tracing::Instrument::instrument(
            task,
            tracing::Span::current(),
        ));
        Ok(())
    }

    async fn send_reset_mail(&self, email: &Email) -> Result<(), AuthError> {
        let deps = self.deps();
        let Some(credentials) = deps.store.find_credentials_by_email(email).await? else {
            return Ok(());
        };
        let now = deps.clock.now();
        let token = generate_opaque_token();
        let expires_at = now + deps.settings.reset_token_lifetime;
        deps.store
            .create_reset_token(
                credentials.user.id,
                hash_token(token.expose()),
                expires_at,
                now,
            )
            .await?;
        let minutes = deps.settings.reset_token_lifetime.whole_minutes();
        let mail = OutgoingMail {
            to: credentials.user.email.clone(),
            subject: "Reset your Velro password".into(),
            body: format!(
                "Someone asked to reset the password of your Velro account.\n\n\
                 Your reset token (valid for {minutes} minutes, usable once):\n\n{}\n\n\
                 If this was not you, ignore this message: your password stays as it is.\n",
                token.expose()
            ),
        };
        deps.mailer.send(mail).await.map_err(AuthError::internal)?;
        tracing::info!(user_id = %credentials.user.id, "password reset mail sent");
        Ok(())
    }

    pub async fn confirm_password_reset(
        &self,
        token: Secret<String>,
        new_password: NewPassword,
    ) -> Result<(), AuthError> {
        let deps = self.deps();
        let token_hash = hash_token(token.expose());
        let Some(credentials) = deps
            .store
            .find_reset_token_user(token_hash, deps.clock.now())
            .await?
        else {
            return Err(AuthError::ResetTokenInvalid);
        };
        not_the_email("new_password", &new_password, &credentials.user.email)?;
        let hash = deps.hasher.hash(new_password.into_secret()).await?;
        let outcome = deps
            .store
            .reset_password(token_hash, &hash, deps.clock.now())
            .await?;
        let Some((user_id, revoked)) = outcome else {
            // Spent by a concurrent request between the lookup and now.
            return Err(AuthError::ResetTokenInvalid);
        };
        tracing::info!(%user_id, sessions_revoked = revoked.len(), "password reset");
        Ok(())
    }

    /// `new_password` has passed the policy's password-only part; the email part is checked
    /// here, before anything else.
    pub async fn change_password(
        &self,
        caller: &Authenticated,
        current_password: Secret<String>,
        new_password: NewPassword,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        not_the_email("new_password", &new_password, &caller.user.email)?;
        let credentials = self.before_password_change(caller, &client).await?;
        let verification = self
            .deps()
            .hasher
            .verify(current_password, Some(credentials.password_hash))
            .await?;
        if !verification.matches {
            return Err(AuthError::InvalidCredentials);
        }
        self.set_password(caller, new_password).await
    }

    /// The limits and the hashing pool's admission that every password change passes first;
    /// the caller's credentials.
    pub(super) async fn before_password_change(
        &self,
        caller: &Authenticated,
        client: &ClientInfo,
    ) -> Result<Credentials, AuthError> {
        let deps = self.deps();
        deps.limits
            .check_ip(Policy::ChangePasswordIp, client.ip())
            .await?;
        deps.limits
            .check(Policy::ChangePasswordAccount, caller.user.email.as_str())
            .await?;
        deps.hasher.admit()?;
        deps.store
            .find_credentials(caller.user.id)
            .await?
            .ok_or(AuthError::SessionRevoked)
    }

    /// Sets the password and revokes every other session of the user; the caller's stays.
    pub(super) async fn set_password(
        &self,
        caller: &Authenticated,
        new_password: NewPassword,
    ) -> Result<(), AuthError> {
        let deps = self.deps();
        let hash = deps.hasher.hash(new_password.into_secret()).await?;
        let revoked = deps
            .store
            .change_password(caller.user.id, &hash, caller.session.id, deps.clock.now())
            .await?;
        tracing::info!(user_id = %caller.user.id, sessions_revoked = revoked.len(), "password changed");
        Ok(())
    }
}

/// The one place the "new password must not be the email" rule is applied, for every use case
/// that sets a password; the answer names the field as the request does.
pub(super) fn not_the_email(
    field: &str,
    password: &NewPassword,
    email: &Email,
) -> Result<(), AuthError> {
    password.check_email(email).map_err(|violation| {
        AuthError::Validation(vec![FieldError::new(field, violation.to_string())])
    })
}
