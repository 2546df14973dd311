//! L1: the in-process layer (moka, bounded, TTL), and the guard that keeps a lookup which read
//! the store before an invalidation from filling the cache after it. No Redis here.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::RwLock;
use uuid::Uuid;
use velro_core::store::SessionWithUser;

pub(crate) struct Local {
    cache: moka::future::Cache<Uuid, Arc<SessionWithUser>>,
    /// Bumped by every invalidation this process applies (its own writes, peers' messages,
    /// switching off). A fill proceeds only if it is unchanged since before the fill's read.
    epoch: AtomicU64,
    /// Makes "epoch still unchanged? then insert" atomic with respect to "bump, then drop":
    /// fills share it, invalidations take it alone (both are short and never do I/O).
    guard: RwLock<()>,
}

impl Local {
    pub(crate) fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: moka::future::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .support_invalidation_closures()
                .build(),
            epoch: AtomicU64::new(0),
            guard: RwLock::new(()),
        }
    }

    pub(crate) async fn get(&self, session_id: Uuid) -> Option<Arc<SessionWithUser>> {
        self.cache.get(&session_id).await
    }

    /// Read this before reading the layer below or the store; pass it to [`Self::fill`].
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Inserts unless an invalidation ran since `epoch` was read or `still_wanted` says no.
    /// Returns whether the value was current enough to be inserted.
    pub(crate) async fn fill(
        &self,
        epoch: u64,
        live: Arc<SessionWithUser>,
        still_wanted: impl Fn() -> bool,
    ) -> bool {
        let key = live.session.id.0;
        let _shared = self.guard.read().await;
        if !still_wanted() || self.epoch() != epoch {
            return false;
        }
        self.cache.insert(key, live).await;
        // `clear_now` (switching off) cannot wait for the guard: it bumps the epoch without it,
        // so look again and take the entry back if that happened meanwhile.
        if self.epoch() != epoch || !still_wanted() {
            self.cache.invalidate(&key).await;
            return false;
        }
        true
    }

    pub(crate) async fn drop_entries(&self, sessions: &[Uuid], users: &[Uuid]) {
        let _alone = self.guard.write().await;
        self.epoch.fetch_add(1, Ordering::SeqCst);
        for id in sessions {
            self.cache.invalidate(id).await;
        }
        if !users.is_empty() {
            let users: HashSet<Uuid> = users.iter().copied().collect();
            let dropped = self
                .cache
                .invalidate_entries_if(move |_, live| users.contains(&live.user.id.0));
            if let Err(e) = dropped {
                // Only possible if the builder lost support_invalidation_closures; the safe
                // answer is to drop everything.
                tracing::error!(error = %e, "cannot invalidate by user; clearing L1");
                self.cache.invalidate_all();
            }
        }
    }

    pub(crate) async fn drop_all(&self) {
        let _alone = self.guard.write().await;
        self.clear_now();
    }

    /// For callers that cannot wait (switching off); see the note in [`Self::fill`].
    pub(crate) fn clear_now(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.cache.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use time::OffsetDateTime;
    use velro_core::domain::{Email, Role, SessionId, SessionRecord, User, UserId};

    use super::*;

    fn live(user: Uuid) -> Arc<SessionWithUser> {
        let at = OffsetDateTime::UNIX_EPOCH;
        Arc::new(SessionWithUser {
            session: SessionRecord {
                id: SessionId(Uuid::new_v4()),
                user_id: UserId(user),
                created_at: at,
                last_refreshed_at: None,
                expires_at: at,
                remember_me: false,
                user_agent: None,
                ip: None,
            },
            user: User {
                id: UserId(user),
                email: Email::from_trusted("ada@example.com".into()),
                display_name: None,
                avatar_url: None,
                credits_balance: 0,
                role: Role::Viewer,
                email_confirmed: false,
                disabled: false,
                created_at: at,
                updated_at: at,
                user_metadata: None,
                app_metadata: None,
                banned_until: None,
                deleted_at: None,
            },
        })
    }

    fn local() -> Local {
        Local::new(100, Duration::from_secs(60))
    }

    #[tokio::test]
    async fn a_fill_that_read_before_an_invalidation_is_skipped() {
        let local = local();
        let stale = live(Uuid::new_v4());
        let key = stale.session.id.0;
        let epoch = local.epoch();
        // The write and its invalidation land between the lookup's read and its fill.
        local.drop_entries(&[key], &[]).await;
        assert!(!local.fill(epoch, stale.clone(), || true).await);
        assert!(local.get(key).await.is_none());
        // A lookup that read after the invalidation fills as usual.
        assert!(local.fill(local.epoch(), stale, || true).await);
        assert!(local.get(key).await.is_some());
    }

    #[tokio::test]
    async fn a_fill_after_switching_off_is_skipped_or_taken_back() {
        let local = local();
        let entry = live(Uuid::new_v4());
        let key = entry.session.id.0;
        let epoch = local.epoch();
        local.clear_now();
        assert!(!local.fill(epoch, entry.clone(), || true).await);
        assert!(!local.fill(local.epoch(), entry, || false).await);
        assert!(local.get(key).await.is_none());
    }

    #[tokio::test]
    async fn dropping_a_user_drops_all_of_its_entries_and_no_others() {
        let local = local();
        let (ada, grace) = (Uuid::new_v4(), Uuid::new_v4());
        let entries = [live(ada), live(ada), live(grace)];
        for entry in &entries {
            assert!(local.fill(local.epoch(), entry.clone(), || true).await);
        }
        local.drop_entries(&[], &[ada]).await;
        assert!(local.get(entries[0].session.id.0).await.is_none());
        assert!(local.get(entries[1].session.id.0).await.is_none());
        assert!(local.get(entries[2].session.id.0).await.is_some());
        // Entries inserted after the invalidation are not affected by it.
        let later = live(ada);
        assert!(local.fill(local.epoch(), later.clone(), || true).await);
        assert!(local.get(later.session.id.0).await.is_some());
    }
}
