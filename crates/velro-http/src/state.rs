//! What every handler can reach: the services and the HTTP settings, built once at start-up.

use std::sync::Arc;
use std::time::Duration;

use velro_core::cache::CacheControl;
use velro_core::service::{
    AdminService, AuthService, ConsoleService, StatusService, SupabaseAdmin, SupabaseAuth,
};

use crate::monitor::Monitor;

use crate::TrustedProxies;

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The one deadline of every request; inner waits are shorter.
    pub request_timeout: Duration,
    /// Bound of each readiness check.
    pub readiness_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Largest accepted request target plus headers (431 beyond it).
    pub max_header_bytes: usize,
    /// Peers whose `Forwarded` / `X-Forwarded-For` name the client; nobody else's are read.
    pub trusted_proxies: TrustedProxies,
    /// Origins allowed by CORS; empty: no CORS headers at all. `*` only without credentials.
    pub cors_allowed_origins: Vec<String>,
    pub cors_allow_credentials: bool,
    /// Also serve the Supabase Auth surface at `/` (as GoTrue itself does), besides `/auth/v1`.
    pub supabase_at_root: bool,
    /// Whether `/auth/v1` requires one of the project's API keys in `apikey`, as Supabase's
    /// gateway does.
    pub supabase_api_keys: crate::SupabaseApiKeys,
    pub version: &'static str,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            readiness_timeout: Duration::from_millis(400),
            max_body_bytes: 16 * 1024,
            max_header_bytes: 16 * 1024,
            trusted_proxies: TrustedProxies::default(),
            cors_allowed_origins: Vec::new(),
            cors_allow_credentials: false,
            supabase_at_root: false,
            supabase_api_keys: crate::SupabaseApiKeys::Off,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Renders the Prometheus text exposition; the binary owns the recorder.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

/// Cloned for every request by each layer and extractor that takes the state (four to six
/// times per request): one `Arc`, so a clone is one atomic increment, where cloning the fields
/// themselves took a dozen atomic increments and copies of the settings' vectors (origins,
/// proxies), and as many decrements and frees when each clone dropped (issue 11's profile of
/// GET /me: 7 % of the server's CPU).
#[derive(Clone)]
pub struct AppState(Arc<AppStateFields>);

impl AppState {
    pub fn new(fields: AppStateFields) -> Self {
        Self(Arc::new(fields))
    }
}

impl std::ops::Deref for AppState {
    type Target = AppStateFields;

    fn deref(&self) -> &AppStateFields {
        &self.0
    }
}

pub struct AppStateFields {
    pub auth: AuthService,
    pub admin: AdminService,
    pub console: ConsoleService,
    /// This instance's recent traffic, for the dashboard.
    pub monitor: Arc<Monitor>,
    /// The Supabase Auth (GoTrue) surface's use cases, over the same `auth`.
    pub supabase: SupabaseAuth,
    /// GoTrue's admin API (`/admin/users`) over the same users, through `admin` for roles.
    pub supabase_admin: SupabaseAdmin,
    /// The status page's judgement, the traffic it is fed, and the incidents.
    pub status: StatusService,
    pub cache: Arc<dyn CacheControl>,
    pub metrics: MetricsRenderer,
    pub settings: HttpSettings,
}
