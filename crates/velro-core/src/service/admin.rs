//! The admin use cases, behind the service key.

use std::sync::Arc;

use super::console::CACHE_FLAG;
use super::AuthService;
use crate::cache::CacheControl;
use crate::domain::{AdminUserChange, User, UserId, UserPage, UserQuery};
use crate::store::{FlagChange, Store};
use crate::tokens::ServiceKey;
use crate::{AuthError, Clock};

#[derive(Clone)]
pub struct AdminService {
    store: Arc<dyn Store>,
    clock: Arc<dyn Clock>,
    auth: AuthService,
    /// `None`: the admin API is off and every call is refused.
    key: Option<ServiceKey>,
    cache: Arc<dyn CacheControl>,
}

impl AdminService {
    pub fn new(
        store: Arc<dyn Store>,
        clock: Arc<dyn Clock>,
        auth: AuthService,
        key: Option<ServiceKey>,
        cache: Arc<dyn CacheControl>,
    ) -> Self {
        Self {
            store,
            clock,
            auth,
            key,
            cache,
        }
    }

    pub fn cache_enabled(&self) -> bool {
        self.cache.enabled()
    }

    /// Switches the cache here and records the change, which every other instance sharing the
    /// database applies on its next [`AdminService::sync_flags`]. The record is written first: a
    /// switch that could not be recorded would hold on this instance only.
    pub async fn set_cache_flag(&self, actor: &str, enabled: bool) -> Result<(), AuthError> {
        let old = self.cache.enabled();
        self.store
            .record_flag_change(&FlagChange {
                flag: CACHE_FLAG.to_string(),
                old_value: old,
                new_value: enabled,
                actor: actor.to_string(),
                changed_at: self.clock.now(),
            })
            .await?;
        self.cache.set_enabled(enabled);
        tracing::warn!(
            flag = CACHE_FLAG,
            old,
            new = enabled,
            actor,
            "run-time flag changed"
        );
        Ok(())
    }

    /// Applies the newest recorded value of every flag, for flags changed through another
    /// instance. Run every few hundred milliseconds; a flag never changed keeps its configured
    /// value.
    pub async fn sync_flags(&self) -> Result<(), AuthError> {
        if let Some(change) = self.store.latest_flag_change(CACHE_FLAG).await? {
            if change.new_value != self.cache.enabled() {
                self.cache.set_enabled(change.new_value);
                tracing::warn!(flag = CACHE_FLAG, new = change.new_value, actor = %change.actor,
                    "run-time flag changed through another instance");
            }
        }
        Ok(())
    }

    /// The database server's connections by state, for the dashboard; empty on SQLite.
    pub async fn server_connections(&self) -> Result<Vec<(String, i64)>, AuthError> {
        Ok(self.store.server_connections().await?)
    }

    /// A constant-time comparison with the service key; false when there is none.
    pub fn key_matches(&self, presented: &str) -> bool {
        self.key.as_ref().is_some_and(|key| key.matches(presented))
    }

    pub fn enabled(&self) -> bool {
        self.key.is_some()
    }

    /// The service key passes; a valid user token is `Forbidden`; anything else is
    /// `InvalidServiceKey`.
    pub async fn authorize(&self, bearer: Option<&str>) -> Result<(), AuthError> {
        let (Some(key), Some(presented)) = (&self.key, bearer) else {
            return Err(AuthError::InvalidServiceKey);
        };
        if key.matches(presented) {
            return Ok(());
        }
        match self.auth.authenticate(presented).await {
            Ok(_) => Err(AuthError::Forbidden),
            Err(AuthError::Unavailable(error)) => Err(AuthError::Unavailable(error)),
            Err(_) => Err(AuthError::InvalidServiceKey),
        }
    }

    pub async fn list_users(&self, query: &UserQuery) -> Result<UserPage, AuthError> {
        Ok(self.store.list_users(query).await?)
    }

    pub async fn get_user(&self, user_id: UserId) -> Result<User, AuthError> {
        self.store
            .find_user(user_id)
            .await?
            .ok_or(AuthError::NotFound)
    }

    pub async fn update_user(
        &self,
        user_id: UserId,
        change: &AdminUserChange,
    ) -> Result<User, AuthError> {
        let user = self
            .store
            .update_user(user_id, change, self.clock.now())
            .await?
            .ok_or(AuthError::NotFound)?;
        tracing::info!(%user_id, disabled = ?change.disabled, role = ?change.role.map(|r| r.as_str()),
            credits = ?change.credits_balance, "user changed by admin");
        Ok(user)
    }

    /// Revokes every live session of a user and says how many there were; the user stays
    /// enabled and may sign in again. The caching store invalidates each session before this
    /// returns, so the old access tokens are refused on the next request everywhere.
    pub async fn revoke_sessions(&self, user_id: UserId) -> Result<usize, AuthError> {
        if self.store.find_user(user_id).await?.is_none() {
            return Err(AuthError::NotFound);
        }
        let revoked = self
            .store
            .revoke_sessions(user_id, None, self.clock.now())
            .await?;
        tracing::info!(%user_id, count = revoked.len(), "sessions revoked by admin");
        Ok(revoked.len())
    }

    pub async fn delete_user(&self, user_id: UserId) -> Result<(), AuthError> {
        if self.store.delete_user(user_id).await? {
            tracing::info!(%user_id, "user deleted by admin");
            Ok(())
        } else {
            Err(AuthError::NotFound)
        }
    }
}
