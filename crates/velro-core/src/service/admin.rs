//! The admin use cases, behind the service key.

use std::sync::Arc;

use super::AuthService;
use crate::cache::CacheControl;
use crate::domain::{AdminUserChange, User, UserId, UserPage, UserQuery};
use crate::store::Store;
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

    pub fn set_cache_enabled(&self, enabled: bool) {
        self.cache.set_enabled(enabled);
        tracing::warn!(enabled, "cache switched by admin");
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

    pub async fn delete_user(&self, user_id: UserId) -> Result<(), AuthError> {
        if self.store.delete_user(user_id).await? {
            tracing::info!(%user_id, "user deleted by admin");
            Ok(())
        } else {
            Err(AuthError::NotFound)
        }
    }
}
