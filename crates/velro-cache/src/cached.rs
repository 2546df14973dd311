//! `CachedStore`: the `Store` decorator. Caches `find_live_session` (L1, then L2, then the
//! store); every write that can make a cached session stale invalidates it in both layers and
//! tells the other instances before it returns. Everything else passes through.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use metrics::Counter;
use time::OffsetDateTime;
use tokio::sync::{watch, OnceCell};
use tokio::task::JoinHandle;
use uuid::Uuid;
use velro_core::domain::{
    AccountChange, AdminUserChange, EmailChangeRedeemed, MailPurpose, PasswordHash, ProfileChange,
    RedeemedMailToken, SessionId, User, UserId,
};
use velro_core::store::{
    AccountUpdate, RefreshPolicy, Rotation, SessionWithUser, Store, TokenHash,
};
use velro_core::StoreError;

use crate::l2::{stopped_during, Lookup};
use crate::Shared;

/// A second round of L2 deletes and messages this long after each invalidation: it removes an
/// entry that a concurrent lookup on another instance read from the store before the write and
/// stored in L2 after the first round (see the crate docs).
const SECOND_ROUND_DELAY: Duration = Duration::from_secs(1);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

pub struct CachedStore {
    inner: Arc<dyn Store>,
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    /// The loads (L2, then the store) in progress, one per session id; see [`Self::lookup`].
    flights: Mutex<HashMap<Uuid, Flight>>,
    lookups: LookupCounters,
}

/// `velro_cache_lookups_total`'s four series, registered once: `counter!` with labels builds
/// the key and looks the series up on every call, and an L1 hit is every token check's path.
struct LookupCounters {
    l1_hit: Counter,
    l1_miss: Counter,
    l2_hit: Counter,
    l2_miss: Counter,
}

impl LookupCounters {
    fn register() -> Self {
        let series = |layer: &'static str, result: &'static str| {
            metrics::counter!(
                "velro_cache_lookups_total",
                "layer" => layer,
                "result" => result
            )
        };
        Self {
            l1_hit: series("l1", "hit"),
            l1_miss: series("l1", "miss"),
            l2_hit: series("l2", "hit"),
            l2_miss: series("l2", "miss"),
        }
    }
}

/// What a load ends with. The error is shared by every lookup that waited for the load.
type Loaded = Result<Option<Arc<SessionWithUser>>, Arc<StoreError>>;

/// One load in progress: the epoch its loader read before reading anything, the cell that
/// every lookup riding on it waits on, and how many lookups ride on it.
struct Flight {
    epoch: u64,
    result: Arc<OnceCell<Loaded>>,
    riders: usize,
}

/// A lookup's place on a flight. Dropped (finished or cancelled), it takes the flight off the
/// board once the flight has a result or nobody is left on it, so the map only holds loads in
/// progress and a later lookup starts afresh (an error or `None` is never kept).
struct Seat<'a> {
    flights: &'a Mutex<HashMap<Uuid, Flight>>,
    key: Uuid,
    result: Arc<OnceCell<Loaded>>,
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        let done = match flights.get_mut(&self.key) {
            // Not ours: a newer flight replaced it.
            Some(flight) if Arc::ptr_eq(&flight.result, &self.result) => {
                flight.riders -= 1;
                flight.result.initialized() || flight.riders == 0
            }
            _ => false,
        };
        if done {
            flights.remove(&self.key);
        }
    }
}

impl std::fmt::Debug for CachedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedStore")
            .field("enabled", &self.shared.enabled.load(Ordering::Relaxed))
            .field("l2", &self.shared.redis.is_some())
            .finish_non_exhaustive()
    }
}

impl CachedStore {
    pub(crate) fn new(
        inner: Arc<dyn Store>,
        shared: Arc<Shared>,
        shutdown: watch::Sender<bool>,
        tasks: Vec<JoinHandle<()>>,
    ) -> Self {
        Self {
            inner,
            shared,
            shutdown,
            tasks: Mutex::new(tasks),
            flights: Mutex::new(HashMap::new()),
            lookups: LookupCounters::register(),
        }
    }

    /// Stops the background tasks (connection, invalidation feed, retries). Lookups keep
    /// working afterwards, from L1 and the store.
    pub async fn shutdown(&self) {
        self.shutdown.send_replace(true);
        let tasks = std::mem::take(
            &mut *self
                .tasks
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for task in tasks {
            let abort = task.abort_handle();
            if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
                abort.abort();
            }
        }
    }

    fn enabled(&self) -> bool {
        self.shared.enabled.load(Ordering::SeqCst)
    }

    /// L1, else one load per session id at a time: concurrent misses of the same session (a hot
    /// session's L1 entry expiring under load) wait for the first one's load instead of all
    /// going to L2 and the store.
    ///
    /// Invalidations: a lookup must never answer with an entry that an invalidation which
    /// happened before the lookup started should have removed. The loader reads the epoch before
    /// reading L2 or the store and fills L1 only if it is unchanged (`Local::fill`). A lookup
    /// joins a flight only if the flight's epoch is at least the one it read itself after its
    /// L1 miss. An invalidation that happened before this lookup started bumped the epoch before
    /// that read, so the flight's epoch was read after the bump too, and so were its L2 and store
    /// reads, which therefore see the write (the write commits before its invalidation runs).
    /// Otherwise (an invalidation since the flight started) the lookup starts a new flight,
    /// which replaces the old one on the board; the old one's riders keep their (concurrent)
    /// answer, and its fill is skipped by the epoch check as before. An invalidation after this
    /// lookup started is concurrent with it: either answer is allowed, as without coalescing.
    ///
    /// A `None` or an error goes to every rider of the flight and is not kept: the flight leaves
    /// the board with its result. If the loader is cancelled (a request deadline), the next rider
    /// runs the load itself (`OnceCell::get_or_init`).
    async fn lookup(
        &self,
        session_id: SessionId,
    ) -> Result<Option<Arc<SessionWithUser>>, StoreError> {
        if let Some(hit) = self.shared.local.get(session_id.0).await {
            self.lookups.l1_hit.increment(1);
            return Ok(Some(hit));
        }
        self.lookups.l1_miss.increment(1);
        // Boxed apart: held inline, the miss's state (L2's and the store's calls) would size
        // every lookup's future, which is boxed and allocated on each token check, hits included.
        Box::pin(self.coalesced_load(session_id)).await
    }

    /// [`Self::lookup`] after an L1 miss.
    async fn coalesced_load(
        &self,
        session_id: SessionId,
    ) -> Result<Option<Arc<SessionWithUser>>, StoreError> {
        let local = &self.shared.local;
        // Before any read below: a fill is skipped if an invalidation ran since.
        let epoch = local.epoch();
        let seat = self.board(session_id.0, epoch);
        let mut loaded_here = false;
        let loaded = seat
            .result
            .get_or_init(|| {
                loaded_here = true;
                self.load(session_id, epoch)
            })
            .await;
        if !loaded_here {
            metrics::counter!("velro_cache_coalesced_total").increment(1);
        }
        match loaded {
            Ok(live) => Ok(live.clone()),
            Err(e) => Err(shared_error(e)),
        }
    }

    /// A seat on the flight for `key` if it started at `epoch` or later, else on a new one.
    fn board(&self, key: Uuid, epoch: u64) -> Seat<'_> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        let result = match flights.get_mut(&key) {
            Some(flight) if flight.epoch >= epoch => {
                flight.riders += 1;
                flight.result.clone()
            }
            _ => {
                let result = Arc::new(OnceCell::new());
                flights.insert(
                    key,
                    Flight {
                        epoch,
                        result: result.clone(),
                        riders: 1,
                    },
                );
                result
            }
        };
        Seat {
            flights: &self.flights,
            key,
            result,
        }
    }

    /// L2, then the store; fills L1 (and L2) unless an invalidation ran since `epoch`.
    async fn load(&self, session_id: SessionId, epoch: u64) -> Loaded {
        let local = &self.shared.local;
        let still_on = || self.enabled();
        if let Some(redis) = &self.shared.redis {
            match redis.get_session(session_id.0).await {
                Lookup::Hit(live) => {
                    self.lookups.l2_hit.increment(1);
                    local.fill(epoch, live.clone(), still_on).await;
                    return Ok(Some(live));
                }
                Lookup::Miss => self.lookups.l2_miss.increment(1),
                Lookup::Unavailable => {}
            }
        }
        let Some(live) = self
            .inner
            .find_live_session(session_id)
            .await
            .map_err(Arc::new)?
        else {
            return Ok(None);
        };
        let current = local.fill(epoch, live.clone(), still_on).await;
        if let Some(redis) = &self.shared.redis {
            // Without the feed, a peer's invalidation would not reach the epoch, and this write
            // could land after the peer's delete.
            if current && redis.subscribed() {
                redis.put_session(&live).await;
            }
        }
        Ok(Some(live))
    }

    /// Drops the entries everywhere: L1 here at once, then L2 and the other instances' L1.
    /// Runs whether or not the cache is switched on, so that switching on never serves an entry
    /// that missed an invalidation.
    async fn invalidate(&self, sessions: &[SessionId], users: &[UserId]) {
        if sessions.is_empty() && users.is_empty() {
            return;
        }
        let sessions: Vec<Uuid> = sessions.iter().map(|id| id.0).collect();
        let users: Vec<Uuid> = users.iter().map(|id| id.0).collect();
        self.shared.local.drop_entries(&sessions, &users).await;
        metrics::counter!("velro_cache_invalidations_total", "kind" => "session")
            .increment(sessions.len() as u64);
        metrics::counter!("velro_cache_invalidations_total", "kind" => "user")
            .increment(users.len() as u64);
        let Some(redis) = &self.shared.redis else {
            return;
        };
        if !redis.invalidate(&sessions, &users).await {
            redis.keep_pending(&sessions, &users);
        }
        let redis = redis.clone();
        let mut shutdown = self.shutdown.subscribe();
        tokio::spawn(async move {
            if stopped_during(&mut shutdown, SECOND_ROUND_DELAY).await {
                return;
            }
            if !redis.invalidate(&sessions, &users).await {
                redis.keep_pending(&sessions, &users);
            }
        });
    }

    async fn invalidate_user(&self, user_id: UserId) {
        self.invalidate(&[], &[user_id]).await;
    }
}

/// A store error for one rider of a flight: the same kind, and the same message and causes.
fn shared_error(e: &Arc<StoreError>) -> StoreError {
    match &**e {
        StoreError::Conflict(key) => StoreError::Conflict(key),
        StoreError::Unavailable(_) => StoreError::Unavailable(Box::new(SharedCause(e.clone()))),
        StoreError::Other(_) => StoreError::Other(Box::new(SharedCause(e.clone()))),
    }
}

/// The cause inside a shared `StoreError`, shown as itself.
#[derive(Debug)]
struct SharedCause(Arc<StoreError>);

impl SharedCause {
    fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        match &*self.0 {
            StoreError::Unavailable(cause) | StoreError::Other(cause) => Some(cause.as_ref()),
            StoreError::Conflict(_) => None,
        }
    }
}

impl std::fmt::Display for SharedCause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.cause() {
            Some(cause) => std::fmt::Display::fmt(cause, f),
            None => std::fmt::Display::fmt(&self.0, f),
        }
    }
}

impl std::error::Error for SharedCause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.cause().and_then(|cause| cause.source())
    }
}

velro_core::impl_store! {
    // `purge` removes only ended sessions, which were invalidated when they were revoked, or
    // expired ones, whose access tokens have expired too (the retention outlasts them).
    CachedStore, forward to inner:
        ping, create_user, find_credentials_by_email, find_credentials, create_session,
        list_live_sessions, create_reset_token, find_reset_token_user, redeem_reset_token, list_users, page_users,
        find_user, record_status, status_history, latest_status, create_incident,
        add_incident_update, list_incidents, create_console_session, touch_console_session,
        find_console_session, delete_console_session, record_flag_change, latest_flag_change,
        server_connections, recent_flag_changes, purge, insert_user, find_refresh_token_user,
        create_pending_user, mail_state, issue_mail_token, create_flow_state, issue_auth_code,
        find_flow_state, delete_flow_state, issue_email_change;

    async fn replace_password_hash(
        &self,
        user_id: UserId,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let result = self.inner.replace_password_hash(user_id, hash, now).await;
        // Also on error: the write may have committed before the error (a lost reply).
        self.invalidate_user(user_id).await;
        result
    }

    async fn find_live_session(
        &self,
        session_id: SessionId,
    ) -> Result<Option<Arc<SessionWithUser>>, StoreError> {
        if !self.enabled() {
            return self.inner.find_live_session(session_id).await;
        }
        self.lookup(session_id).await
    }

    async fn rotate_refresh_token(
        &self,
        presented: TokenHash,
        successor: TokenHash,
        policy: RefreshPolicy,
        now: OffsetDateTime,
    ) -> Result<Rotation, StoreError> {
        let rotation = self
            .inner
            .rotate_refresh_token(presented, successor, policy, now)
            .await?;
        let changed = match &rotation {
            Rotation::Rotated { session, .. } | Rotation::ReusedWithinGrace { session, .. } => {
                Some(session.id)
            }
            Rotation::ReusedAfterGrace { session_id } => Some(*session_id),
            Rotation::Invalid => None,
        };
        if let Some(session_id) = changed {
            self.invalidate(&[session_id], &[]).await;
        }
        Ok(rotation)
    }

    async fn revoke_session(
        &self,
        user_id: UserId,
        session_id: SessionId,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let result = self.inner.revoke_session(user_id, session_id, now).await;
        // Nothing changed on Ok(false); on error the revocation may still have committed.
        if !matches!(result, Ok(false)) {
            self.invalidate(&[session_id], &[]).await;
        }
        result
    }

    async fn revoke_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        match self.inner.revoke_sessions(user_id, keep, now).await {
            Ok(revoked) => {
                self.invalidate(&revoked, &[]).await;
                Ok(revoked)
            }
            Err(e) => {
                self.invalidate_user(user_id).await;
                Err(e)
            }
        }
    }

    async fn update_profile(
        &self,
        user_id: UserId,
        change: &ProfileChange,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let result = self.inner.update_profile(user_id, change, now).await;
        if !matches!(result, Ok(None)) {
            self.invalidate_user(user_id).await;
        }
        result
    }

    async fn reset_password(
        &self,
        token: TokenHash,
        hash: &PasswordHash,
        now: OffsetDateTime,
    ) -> Result<Option<(UserId, Vec<SessionId>)>, StoreError> {
        let result = self.inner.reset_password(token, hash, now).await?;
        if let Some((user_id, revoked)) = &result {
            self.invalidate(revoked, &[*user_id]).await;
        }
        Ok(result)
    }

    async fn change_password(
        &self,
        user_id: UserId,
        hash: &PasswordHash,
        keep: SessionId,
        now: OffsetDateTime,
    ) -> Result<Vec<SessionId>, StoreError> {
        let result = self.inner.change_password(user_id, hash, keep, now).await;
        // The kept session is cached too, with the user's old `updated_at`: drop the user.
        let revoked = result.as_deref().unwrap_or_default();
        self.invalidate(revoked, &[user_id]).await;
        result
    }

    /// Confirming or changing the address changes the user that cached sessions carry.
    async fn redeem_mail_token(
        &self,
        token: TokenHash,
        purposes: [MailPurpose; 2],
        now: OffsetDateTime,
    ) -> Result<Option<RedeemedMailToken>, StoreError> {
        let result = self.inner.redeem_mail_token(token, purposes, now).await?;
        if let Some(redeemed) = &result {
            self.invalidate_user(redeemed.user_id).await;
        }
        Ok(result)
    }

    /// A completed change moves the user that cached sessions carry; a half changes nothing
    /// they show.
    async fn redeem_email_change(
        &self,
        token: TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<EmailChangeRedeemed>, StoreError> {
        let result = self.inner.redeem_email_change(token, now).await?;
        if let Some(EmailChangeRedeemed::Changed { user_id }) = result {
            self.invalidate_user(user_id).await;
        }
        Ok(result)
    }

    async fn update_user(
        &self,
        user_id: UserId,
        change: &AdminUserChange,
        now: OffsetDateTime,
    ) -> Result<Option<User>, StoreError> {
        let result = self.inner.update_user(user_id, change, now).await;
        if !matches!(result, Ok(None)) {
            self.invalidate_user(user_id).await;
        }
        result
    }

    async fn update_account(
        &self,
        user_id: UserId,
        change: &AccountChange,
        now: OffsetDateTime,
    ) -> Result<AccountUpdate, StoreError> {
        let result = self.inner.update_account(user_id, change, now).await;
        // Every cached session of the user holds the old user: drop them all, and the revoked
        // ones by id too. Also on error: the change may have committed before the error. A
        // refused change wrote nothing, so nothing cached went stale.
        let revoked = match &result {
            Ok(AccountUpdate::Updated { revoked, .. }) => revoked.as_slice(),
            Ok(AccountUpdate::NoUser | AccountUpdate::TooLarge(_)) => return result,
            Err(_) => &[],
        };
        self.invalidate(revoked, &[user_id]).await;
        result
    }

    async fn delete_user(&self, user_id: UserId) -> Result<bool, StoreError> {
        let result = self.inner.delete_user(user_id).await;
        if !matches!(result, Ok(false)) {
            self.invalidate_user(user_id).await;
        }
        result
    }
}
