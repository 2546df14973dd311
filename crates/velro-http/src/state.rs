//! What every handler can reach: the services and the HTTP settings, built once at start-up.

use std::sync::Arc;
use std::time::Duration;

use velro_core::cache::CacheControl;
use velro_core::service::{AdminService, AuthService};

#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// The one deadline of every request; inner waits are shorter.
    pub request_timeout: Duration,
    /// Bound of each readiness check.
    pub readiness_timeout: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    pub version: &'static str,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            request_timeout: Duration::from_secs(5),
            readiness_timeout: Duration::from_millis(400),
            max_body_bytes: 16 * 1024,
            version: env!("CARGO_PKG_VERSION"),
        }
    }
}

/// Renders the Prometheus text exposition; the binary owns the recorder.
pub type MetricsRenderer = Arc<dyn Fn() -> String + Send + Sync>;

#[derive(Clone)]
pub struct AppState {
    pub auth: AuthService,
    pub admin: AdminService,
    pub cache: Arc<dyn CacheControl>,
    pub metrics: MetricsRenderer,
    pub settings: HttpSettings,
}
