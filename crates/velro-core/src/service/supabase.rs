//! The Supabase Auth (GoTrue) use cases: thin variants of registration, sign-in, refresh,
//! authentication and logout that hand out GoTrue-shaped access tokens. Every rule (password
//! check, rate limits, failed-login back-off, rotation, revocation, cache invalidation) is the
//! one `AuthService` applies to the v1 API; nothing here repeats one.

use std::sync::Arc;

use time::OffsetDateTime;

use super::{
    AuthService, Authenticated, ClientInfo, IssuedSession, Login, LogoutScope, Registration,
};
use crate::domain::{Email, NewPassword, ProfileChange, SessionId, User, UserId};
use crate::redirect::RedirectPolicy;
use crate::tokens::{AdminToken, AuthMethod, SupabaseTokenProfile};
use crate::{AuthError, Secret};

/// The settings of the Supabase surface, named after GoTrue's.
#[derive(Debug, Clone)]
pub struct SupabaseSettings {
    pub tokens: SupabaseTokenProfile,
    /// GoTrue's `DISABLE_SIGNUP`: `/signup` refuses everyone.
    pub disable_signup: bool,
    /// `SITE_URL` and `URI_ALLOW_LIST`: where mail links may send the browser.
    pub redirects: RedirectPolicy,
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
}

/// What `PUT /user` may change: the password, and the metadata keys Velro keeps.
#[derive(Debug, Default)]
pub struct SupabaseUserChange {
    pub password: Option<NewPassword>,
    pub profile: ProfileChange,
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

    /// Registration with auto-confirm: the v1 use case creates the account already confirmed
    /// and signs it in, as GoTrue does when `MAILER_AUTOCONFIRM` is on.
    pub async fn sign_up(
        &self,
        registration: Registration,
        client: ClientInfo,
    ) -> Result<IssuedSession, SupabaseError> {
        self.check_signup_allowed()?;
        let issued = self.auth.register_with(registration, true, client).await?;
        Ok(self.reissue(issued)?)
    }

    /// `grant_type=password`: the v1 login (limits, back-off, dummy hash for unknown emails,
    /// rehash) with a Supabase token.
    pub async fn sign_in(
        &self,
        email: Email,
        password: Secret<String>,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        // GoTrue sessions have no "remember me": the ordinary refresh-token lifetime.
        let login = Login {
            email,
            password,
            remember_me: false,
        };
        let issued = self.auth.login(login, client).await?;
        self.reissue(issued)
    }

    /// `grant_type=refresh_token`: the same rotation, reuse window and family revocation.
    pub async fn refresh(
        &self,
        presented: Secret<String>,
        client: ClientInfo,
    ) -> Result<IssuedSession, AuthError> {
        let issued = self.auth.refresh(presented, client).await?;
        self.reissue(issued)
    }

    /// A Supabase user token whose session is live; Velro's own tokens are refused.
    pub async fn authenticate(&self, access_token: &str) -> Result<Authenticated, AuthError> {
        let deps = self.auth.deps();
        let verified = deps.access_tokens.verify_supabase(
            &self.settings.tokens,
            access_token,
            deps.clock.now(),
        )?;
        self.auth.live_session(verified).await
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
        client: ClientInfo,
    ) -> Result<User, SupabaseError> {
        let deps = self.auth.deps();
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
            self.auth.set_password(caller, password).await?;
        }
        let profile = change.profile;
        if profile.display_name.is_some() || profile.avatar_url.is_some() {
            return Ok(self.auth.update_profile(caller, profile).await?);
        }
        Ok(deps
            .store
            .find_user(caller.user.id)
            .await
            .map_err(AuthError::from)?
            .ok_or(AuthError::SessionRevoked)?)
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

    /// A user by id, for an admin (`authorize_admin` has passed).
    pub async fn find_user(&self, _admin: &AdminToken, user_id: UserId) -> Result<User, AuthError> {
        self.auth
            .deps()
            .store
            .find_user(user_id)
            .await?
            .ok_or(AuthError::NotFound)
    }

    /// GoTrue's admin listing, newest first: page `page` (from 1) of `per_page` users, and
    /// how many users there are in all.
    pub async fn page_users(
        &self,
        _admin: &AdminToken,
        page: u64,
        per_page: u32,
    ) -> Result<(Vec<User>, u64), AuthError> {
        let offset = page.saturating_sub(1).saturating_mul(u64::from(per_page));
        Ok(self.auth.deps().store.page_users(offset, per_page).await?)
    }

    /// The session the v1 use case issued, with a Supabase access token in place of the v1 one.
    fn reissue(&self, issued: IssuedSession) -> Result<IssuedSession, AuthError> {
        let deps = self.auth.deps();
        let now: OffsetDateTime = deps.clock.now();
        let method = AuthMethod {
            method: "password",
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
