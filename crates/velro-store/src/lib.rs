//! The `velro_core::store::Store` port for SQLite (embedded, the default) and PostgreSQL
//! (production), with their migrations: one body (`store`), two dialects. The only crate that
//! speaks SQL; no business rules live here beyond what atomicity needs.

mod database_url;
mod error;
mod import;
mod page;
mod postgres;
mod rotation;
mod rows;
mod sql;
mod sqlite;
mod store;

pub use database_url::DatabaseUrl;
pub use postgres::{PgConfig, PgStore};
pub use sqlite::{SqliteConfig, SqliteStore};

/// A snapshot of a store's connection pool(s), for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Open connections, busy or idle.
    pub size: u32,
    /// Open connections waiting to be used.
    pub idle: u32,
    /// Store calls waiting for a connection right now (sqlx does not count them, so the stores
    /// do, around every acquire).
    pub waiting: u32,
}

/// Counts callers inside `acquire`; the guard keeps the count right when a caller is cancelled
/// (the request deadline) while it waits.
#[derive(Debug, Default)]
pub(crate) struct WaitCounter(std::sync::atomic::AtomicU32);

impl WaitCounter {
    pub(crate) async fn around<T>(&self, acquire: impl std::future::Future<Output = T>) -> T {
        struct Waiting<'a>(&'a std::sync::atomic::AtomicU32);
        impl Drop for Waiting<'_> {
            fn drop(&mut self) {
                self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
        }
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let _waiting = Waiting(&self.0);
        acquire.await
    }

    pub(crate) fn get(&self) -> u32 {
        self.0.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_wait_counter_counts_pending_acquires_and_forgets_cancelled_ones() {
        let counter = WaitCounter::default();
        let (release, pending) = tokio::sync::oneshot::channel::<()>();
        let waiting = counter.around(pending);
        tokio::pin!(waiting);
        // Polled once: inside the acquire.
        assert!(futures_poll_once(waiting.as_mut()).await.is_none());
        assert_eq!(counter.get(), 1);
        release.send(()).expect("receiver alive");
        assert!(waiting.await.is_ok());
        assert_eq!(counter.get(), 0);

        let (_keep, never) = tokio::sync::oneshot::channel::<()>();
        let cancelled =
            tokio::time::timeout(std::time::Duration::from_millis(5), counter.around(never)).await;
        assert!(cancelled.is_err());
        assert_eq!(counter.get(), 0);
    }

    /// Polls a future once, returning its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(future: F) -> Option<F::Output> {
        let mut future = future;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
                std::task::Poll::Ready(output) => Some(output),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}
