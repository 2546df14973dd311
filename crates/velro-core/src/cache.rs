//! The cache's control port: switched on and off at run time, and its health for readiness.
//! The cache itself is a decorator around the `Store` (velro-cache); nothing here does I/O.

/// The cache's state as readiness reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheHealth {
    /// Switched off: every request goes to the store.
    Disabled,
    /// Serving from the in-process layer only (no shared layer configured).
    LocalOnly,
    Ok,
    /// The shared layer is failing or its invalidation feed is lost; requests fall through to the
    /// store. The reason is for operators.
    Degraded(String),
}

impl CacheHealth {
    pub fn status(&self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::LocalOnly | Self::Ok => "ok",
            Self::Degraded(_) => "degraded",
        }
    }
}

pub trait CacheControl: Send + Sync + 'static {
    fn enabled(&self) -> bool;
    /// Takes effect for the next request. Switching off also empties the local layer, so that
    /// switching on again never serves entries that missed invalidations meanwhile.
    fn set_enabled(&self, enabled: bool);
    fn health(&self) -> CacheHealth;
}

/// For a process with no cache at all.
#[derive(Debug, Default)]
pub struct NoCache;

impl CacheControl for NoCache {
    fn enabled(&self) -> bool {
        false
    }

    fn set_enabled(&self, _enabled: bool) {}

    fn health(&self) -> CacheHealth {
        CacheHealth::Disabled
    }
}
