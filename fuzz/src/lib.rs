//! Fixtures shared by the fuzz targets: a fixed clock, fixed signing keys, and the real router
//! over a store that knows one session and is unavailable for everything else. The assertions
//! belong in the targets, not here.

// `velro_core::impl_store!` looks up each listed method's signature in turn, two macro levels
// per method: a full forward list goes past the default limit of 128.
#![recursion_limit = "256"]

use std::sync::Arc;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use ring::signature::Ed25519KeyPair;
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::cache::NoCache;
use velro_core::domain::{Email, Role, SessionId, SessionRecord, User, UserId};
use velro_core::hashing::{HashingConfig, PasswordHasher};
use velro_core::limits::Limits;
use velro_core::mail::{MailError, Mailer, OutgoingMail};
use velro_core::service::{
    AdminService, AuthService, AuthSettings, ConsoleService, Dependencies, StatusService,
    StatusSettings, SupabaseAdmin, SupabaseAuth, SupabaseSettings,
};
use velro_core::store::{SessionWithUser, Store};
use velro_core::tokens::{
    AccessTokenConfig, AccessTokens, AuthMethod, KeySet, RefreshTokens, ServiceKey, SigningKey,
    SupabaseTokenProfile,
};
use velro_core::{Clock, Secret, StoreError};
use velro_http::{AppState, AppStateFields, HttpSettings, Monitor};

/// 2026-01-01T00:00:00Z: every fixture token is issued and checked at this instant, so the seed
/// corpus never expires.
pub const NOW: i64 = 1_767_225_600;
pub const ISSUER: &str = "velro";
pub const LEEWAY_SECS: i64 = 5;
pub const HS_KID: &str = "fuzz-hs";
pub const ED_KID: &str = "fuzz-ed";
pub const HS_SECRET: [u8; 32] = [0x5a; 32];
const ED_SEED: [u8; 32] = [7; 32];
/// At least 32 printable characters, as `VELRO_SERVICE_KEY` requires.
pub const SERVICE_KEY: &str = "fuzz-service-key-0123456789abcdefghij";

pub fn now() -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(NOW).expect("a valid timestamp")
}

#[derive(Debug)]
pub struct FixedClock;

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        now()
    }
}

/// The Ed25519 key as a PKCS#8 v1 document (RFC 8410): the fixed prefix, then the seed.
fn ed25519_pkcs8() -> Vec<u8> {
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    [PREFIX.as_slice(), ED_SEED.as_slice()].concat()
}

/// Both keys, with `active` signing (and verifying tokens without a `kid`). The other key's
/// algorithm is not the active one's, so it must never verify anything.
pub fn access_tokens(active: &str) -> AccessTokens {
    let hs = SigningKey::hs256(HS_KID, Secret::new(HS_SECRET.to_vec()), now()).expect("HS256 key");
    let ed = SigningKey::ed25519(ED_KID, Secret::new(ed25519_pkcs8()), now()).expect("Ed25519 key");
    let keys = KeySet::new(vec![hs, ed], active, Some(active)).expect("a valid key set");
    AccessTokens::new(&AccessTokenConfig {
        keys,
        issuer: ISSUER.into(),
        lifetime: time::Duration::hours(1),
        leeway: time::Duration::seconds(LEEWAY_SECS),
    })
}

/// HMAC-SHA256 with the fixture secret, for tokens whose header and claims the fuzzer wrote.
pub fn sign_hs256(message: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(&HS_SECRET).expect("HMAC takes any key");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Ed25519 with the fixture key.
pub fn sign_ed25519(message: &[u8]) -> Vec<u8> {
    let pair = Ed25519KeyPair::from_seed_unchecked(&ED_SEED).expect("a 32-byte seed");
    pair.sign(message).as_ref().to_vec()
}

/// The user and session behind [`App::user_token`].
pub fn user() -> User {
    User {
        id: UserId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0001)),
        email: Email::parse("ada.lovelace@example.com").expect("valid"),
        display_name: Some("Ada".into()),
        avatar_url: None,
        credits_balance: 1000,
        role: Role::Viewer,
        email_confirmed: true,
        disabled: false,
        created_at: now(),
        updated_at: now(),
        user_metadata: None,
        app_metadata: None,
        banned_until: None,
        deleted_at: None,
    }
}

pub fn session_id() -> SessionId {
    SessionId(Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0002))
}

/// Knows the one fixture session; everything else is `Unavailable`, so a request whose body
/// parsed reaches the service and ends as 503 without any I/O.
struct OneSessionStore;

fn unavailable<T>() -> Result<T, StoreError> {
    Err(StoreError::Unavailable("fuzzing: no store".into()))
}

velro_core::impl_store! {
    OneSessionStore, answer { unavailable() }:
        ping, create_user, find_credentials_by_email, find_credentials, replace_password_hash,
        create_session, rotate_refresh_token, revoke_session, revoke_sessions,
        list_live_sessions, update_profile, create_reset_token, find_reset_token_user,
        reset_password, redeem_reset_token, change_password, list_users, page_users, find_user, update_user,
        delete_user, record_status, status_history, latest_status, create_incident,
        add_incident_update, list_incidents, create_console_session, touch_console_session,
        find_console_session, delete_console_session, record_flag_change, latest_flag_change,
        server_connections, recent_flag_changes, purge, insert_user, update_account,
        find_refresh_token_user, create_pending_user, mail_state, issue_mail_token,
        redeem_mail_token, create_flow_state, issue_auth_code, find_flow_state, delete_flow_state,
        issue_email_change, redeem_email_change;

    async fn find_live_session(
        &self,
        id: SessionId,
    ) -> Result<Option<Arc<SessionWithUser>>, StoreError> {
        if id != session_id() {
            return Ok(None);
        }
        let user = user();
        Ok(Some(Arc::new(SessionWithUser {
            session: SessionRecord {
                id,
                user_id: user.id,
                created_at: now(),
                last_refreshed_at: None,
                expires_at: now() + time::Duration::days(7),
                remember_me: false,
                user_agent: None,
                ip: None,
            },
            user,
        })))
    }
}

struct NoMail;

#[async_trait]
impl Mailer for NoMail {
    async fn send(&self, _: OutgoingMail) -> Result<(), MailError> {
        Ok(())
    }
}

/// The Supabase surface's token profile in the fixture.
pub fn supabase_profile() -> SupabaseTokenProfile {
    SupabaseTokenProfile {
        issuer: "http://localhost:8000/auth/v1".into(),
        audience: "authenticated".into(),
        admin_roles: vec!["service_role".into()],
    }
}

/// Where /auth/v1's mail links and `GET /verify` land when no allowed `redirect_to` is given.
pub const SITE_URL: &str = "http://localhost:3000";

/// A project's `service_role` key as Supabase makes it: `{"role":"service_role"}`, HS256 over
/// the fixture secret, no `kid`.
pub fn service_role_token() -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(br#"{"role":"service_role"}"#)
    );
    let signature = URL_SAFE_NO_PAD.encode(sign_hs256(signed.as_bytes()));
    format!("{signed}.{signature}")
}

/// The router `velro serve` runs, over the fixtures, with valid access tokens (v1 and
/// Supabase) for the fixture session and the admin API switched on.
pub struct App {
    pub router: axum::Router,
    /// A v1 access token of the fixture session.
    pub user_token: String,
    /// A Supabase (/auth/v1) access token of the fixture session.
    pub supabase_token: String,
}

impl App {
    pub fn new() -> Self {
        let store: Arc<dyn Store> = Arc::new(OneSessionStore);
        let clock: Arc<dyn Clock> = Arc::new(FixedClock);
        // The smallest Argon2 cost: a body that passes validation is hashed before the store
        // refuses it, and the production cost would cap the fuzzer at a few runs per second.
        let hashing = HashingConfig {
            memory_kib: 8,
            iterations: 1,
            parallelism: 1,
            threads: 1,
            ..HashingConfig::default()
        };
        let access_tokens = access_tokens(HS_KID);
        let user_token = access_tokens
            .issue(&user(), session_id(), now())
            .expect("issues")
            .token
            .expose()
            .clone();
        let password = AuthMethod {
            method: "password",
            timestamp: NOW,
        };
        let supabase_token = access_tokens
            .issue_supabase(&supabase_profile(), &user(), session_id(), password, now())
            .expect("issues")
            .token
            .expose()
            .clone();
        let auth = AuthService::new(Dependencies {
            store: store.clone(),
            hasher: PasswordHasher::start(&hashing).expect("a hashing pool"),
            access_tokens,
            refresh_tokens: RefreshTokens::new(&Secret::new(vec![3; 32])),
            mailer: Arc::new(NoMail),
            clock: clock.clone(),
            settings: AuthSettings::default(),
            limits: Limits::off(),
        });
        let service_key =
            ServiceKey::parse(&Secret::new(SERVICE_KEY.to_string())).expect("a valid service key");
        let cache = Arc::new(NoCache);
        let status = StatusService::new(
            store.clone(),
            clock.clone(),
            cache.clone(),
            StatusSettings::default(),
        );
        let admin = AdminService::new(
            store.clone(),
            clock.clone(),
            auth.clone(),
            Some(service_key),
            cache.clone(),
        );
        let console = ConsoleService::new(
            store,
            clock,
            auth.clone(),
            admin.clone(),
            time::Duration::minutes(15),
        );
        let supabase = SupabaseAuth::new(
            auth.clone(),
            SupabaseSettings {
                tokens: supabase_profile(),
                disable_signup: false,
                mailer_autoconfirm: true,
                redirects: velro_core::redirect::RedirectPolicy::new(SITE_URL, &[])
                    .expect("a valid site URL"),
                templates: Default::default(),
                secure_email_change: true,
                smtp_max_frequency: velro_core::service::DEFAULT_SMTP_MAX_FREQUENCY,
            },
        );
        let supabase_admin = SupabaseAdmin::new(supabase.clone(), admin.clone());
        let state = AppState::new(AppStateFields {
            auth,
            admin,
            console,
            monitor: Arc::new(Monitor::default()),
            supabase,
            supabase_admin,
            status,
            cache,
            metrics: Arc::new(String::new),
            settings: HttpSettings::default(),
        });
        Self {
            router: velro_http::router(state),
            user_token,
            supabase_token,
        }
    }
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}
