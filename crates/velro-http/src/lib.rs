//! The HTTP surface of Velro: routers, extractors, middleware, wire types and the one place that
//! turns errors into responses. It knows the services of velro-core and nothing about storage.

mod error;
mod extract;
mod middleware;
mod monitor;
mod proxies;
mod routes;
mod security;
mod state;
pub mod status_page;
mod tally;
mod wire;

pub use error::ApiError;
pub use extract::CallerSlot;
pub use monitor::{Monitor, SAMPLE_EVERY};
pub use proxies::TrustedProxies;
/// The status page's JSON body, as GET /status.json answers it.
pub use routes::status::json as status_json;
pub use routes::{router, supabase_openapi_document, SupabaseApiKeys};
pub use state::{AppState, AppStateFields, HttpSettings, MetricsRenderer};
