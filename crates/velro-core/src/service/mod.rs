//! The use cases. Handlers call exactly one method here per request; these methods own the
//! order of checks the contract prescribes.

mod account;
mod admin;
mod console;
mod import;
mod purge;
mod session;
mod status;
mod supabase;
mod supabase_admin;
mod supabase_limits;
mod supabase_mail;
mod supabase_pkce;

use std::sync::Arc;

use time::Duration;

pub use account::{Login, Registration};
pub use admin::AdminService;
pub use console::{ConsoleService, ConsoleSignIn, Operator, CACHE_FLAG};
pub use import::{ForeignSession, ForeignUser, ImportService};
pub use purge::{PurgeReport, PurgeService, PurgeSettings};
pub use session::{Authenticated, LogoutScope};
pub use status::{
    ComponentHistory, DayUptime, StatusReport, StatusService, StatusSettings, Surface,
};
pub use supabase::{
    OtpKind, SupabaseAuth, SupabaseError, SupabaseSettings, SupabaseUserChange, Verified,
};
pub use supabase_admin::{
    parse_metadata, take_profile, AdminCreate, AdminPassword, AdminUpdate, SupabaseAdmin,
};
pub use supabase_limits::DEFAULT_SMTP_MAX_FREQUENCY;
pub use supabase_mail::{
    GeneratedLink, LinkRequest, LinkType, MailUser, PendingProfile, ResendKind, SignUp,
};
pub use supabase_pkce::{LinkLanding, PKCE_PREFIX};

use crate::domain::{PasswordPolicy, PasswordRules, SessionId, User};
use crate::hashing::PasswordHasher;
use crate::limits::Limits;
use crate::mail::Mailer;
use crate::store::{RefreshPolicy, Store};
use crate::tokens::{AccessTokens, RefreshTokens};
use crate::{AuthError, Clock, Secret};

/// The lifetimes and grants the contract leaves to configuration.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    pub refresh: RefreshPolicy,
    pub reset_token_lifetime: Duration,
    pub initial_credits: i64,
    /// The deployment's password policy, for both surfaces.
    pub password: PasswordRules,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            refresh: RefreshPolicy {
                lifetime: Duration::days(7),
                remember_me_lifetime: Duration::days(30),
                reuse_grace: Duration::seconds(10),
            },
            reset_token_lifetime: Duration::hours(1),
            initial_credits: 1000,
            password: PasswordRules::default(),
        }
    }
}

/// Where a request came from, as recorded on the sessions it creates and as rate limits key it.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// The client's address as the HTTP layer determines it (trusted proxies honoured).
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

impl ClientInfo {
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }
}

/// A signed-in session as register, login and refresh return it.
#[derive(Debug)]
pub struct IssuedSession {
    pub access_token: Secret<String>,
    pub expires_in: i64,
    pub expires_at: i64,
    pub refresh_token: Secret<String>,
    pub session_id: SessionId,
    pub user: User,
}

/// Everything the services need, built once at start-up.
pub struct Dependencies {
    pub store: Arc<dyn Store>,
    pub hasher: PasswordHasher,
    pub access_tokens: AccessTokens,
    pub refresh_tokens: RefreshTokens,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub settings: AuthSettings,
    /// Rate limits and failed-login back-off (`Limits::off()` for none).
    pub limits: Limits,
}

/// The account and session use cases. Cheap to clone.
#[derive(Clone)]
pub struct AuthService {
    inner: Arc<Inner>,
}

struct Inner {
    deps: Dependencies,
    policy: PasswordPolicy,
}

impl AuthService {
    pub fn new(deps: Dependencies) -> Self {
        let policy = PasswordPolicy::with_rules(deps.settings.password.clone());
        Self {
            inner: Arc::new(Inner { deps, policy }),
        }
    }

    pub fn password_policy(&self) -> &PasswordPolicy {
        &self.inner.policy
    }

    /// An `apikey` as Supabase's gateway checks it: one of the project's anon / service_role
    /// keys (JWTs signed by our keys). Returns the key's role.
    pub fn check_api_key(&self, key: &str) -> Result<&'static str, AuthError> {
        let now = self.inner.deps.clock.now();
        self.inner.deps.access_tokens.verify_api_key(key, now)
    }

    /// The access-token keys, for publishing the public ones (`/.well-known/jwks.json`).
    pub fn access_tokens(&self) -> &AccessTokens {
        &self.inner.deps.access_tokens
    }

    fn deps(&self) -> &Dependencies {
        &self.inner.deps
    }

    /// A database round trip, for readiness checks.
    pub async fn check_store(&self) -> Result<(), crate::StoreError> {
        self.deps().store.ping().await
    }
}
