//! GoTrue's admin use cases (`/admin/users`): create, change, ban, soft and hard delete, with
//! the metadata rules they share with `/signup` and `PUT /user`. Velro's role travels in
//! `app_metadata.role` and changes only through [`AdminService::update_user`], so the v1 API
//! sees it; every change that ends sessions ends them on both surfaces, with the cache told.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::Value;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{AdminService, Authenticated, SupabaseAuth, SupabaseError};
use crate::domain::{
    AccountChange, AvatarUrl, BanDuration, DisplayName, Email, Metadata, MetadataError,
    MetadataWrite, NewPassword, NewUser, PasswordHash, ProfileChange, Role, SessionId, User,
    UserId,
};
use crate::error::FieldError;
use crate::store::AccountUpdate;
use crate::tokens::{default_app_metadata, AdminToken, UserMetadata};
use crate::{AuthError, StoreError};

/// What a password hash of an account without a password is: no hash verifies it.
const NO_PASSWORD: &str = "!no-password";

/// The keys of `user_metadata` that are the account's profile (the v1 API's `display_name` and
/// `avatar_url`), under the names Supabase's own providers use.
const FULL_NAME: &str = "full_name";
const AVATAR_URL: &str = "avatar_url";

/// The key of `app_metadata` that is Velro's role.
const ROLE: &str = "role";

fn validation(field: &str, message: impl Into<String>) -> SupabaseError {
    SupabaseError::Auth(AuthError::Validation(vec![FieldError::new(field, message)]))
}

/// A metadata object from a request (`data`, `user_metadata`, `app_metadata`): an object of at
/// most [`crate::domain::MAX_METADATA_BYTES`].
pub fn parse_metadata(field: &'static str, value: Value) -> Result<Metadata, SupabaseError> {
    Metadata::parse(value).map_err(|error| SupabaseError::Metadata { field, error })
}

/// Takes `full_name` and `avatar_url` out of `user_metadata` updates, as the profile change
/// they are: a string sets the field (within the v1 API's bounds), `null` clears it.
pub fn take_profile(updates: &mut Metadata) -> Result<ProfileChange, SupabaseError> {
    let mut change = ProfileChange::default();
    if let Some(value) = updates.remove(FULL_NAME) {
        change.display_name = Some(match value {
            Value::Null => None,
            Value::String(name) => Some(
                DisplayName::parse(&name)
                    .map_err(|why| validation("data.full_name", format!("full_name {why}")))?,
            ),
            _ => return Err(validation("data.full_name", "full_name must be a string")),
        });
    }
    if let Some(value) = updates.remove(AVATAR_URL) {
        change.avatar_url = Some(match value {
            Value::Null => None,
            Value::String(url) => Some(
                AvatarUrl::parse(&url)
                    .map_err(|why| validation("data.avatar_url", format!("avatar_url {why}")))?,
            ),
            _ => return Err(validation("data.avatar_url", "avatar_url must be a string")),
        });
    }
    Ok(change)
}

/// Takes Velro's role out of `app_metadata` updates.
fn take_role(updates: &mut Metadata) -> Result<Option<Role>, SupabaseError> {
    match updates.remove(ROLE) {
        None => Ok(None),
        Some(Value::String(role)) => role
            .parse::<Role>()
            .map(Some)
            .map_err(|why| validation("app_metadata.role", format!("role {why}"))),
        Some(_) => Err(validation(
            "app_metadata.role",
            "role must be one of viewer, creator, admin",
        )),
    }
}

/// A merge of updates into a user's `user_metadata`; an account without one starts from the
/// identity data it shows.
fn user_metadata_merge(user: &User, updates: Metadata) -> MetadataWrite {
    let mut identity = Metadata::from(UserMetadata::identity(user).0);
    identity.remove(FULL_NAME);
    identity.remove(AVATAR_URL);
    MetadataWrite::merge(updates, identity)
}

fn app_metadata_merge(updates: Metadata) -> MetadataWrite {
    MetadataWrite::merge(updates, default_app_metadata())
}

/// The store's answer to an account change, as the Supabase surface's outcome.
fn account_updated(
    outcome: Result<AccountUpdate, StoreError>,
    no_user: AuthError,
) -> Result<(User, Vec<SessionId>), SupabaseError> {
    match outcome {
        Ok(AccountUpdate::Updated { user, revoked }) => Ok((user, revoked)),
        Ok(AccountUpdate::NoUser) => Err(no_user.into()),
        Ok(AccountUpdate::TooLarge(field)) => Err(SupabaseError::Metadata {
            field: field.as_str(),
            error: MetadataError::TooLarge,
        }),
        Err(StoreError::Conflict("email")) => Err(SupabaseError::EmailExists),
        Err(other) => Err(AuthError::from(other).into()),
    }
}

/// GoTrue's obfuscation of a soft-deleted account's address: unique per account, and not an
/// address anyone can sign in with or register.
fn obfuscated_email(id: UserId, email: &Email) -> Email {
    let digest = Sha256::digest(format!("{}{}", id.0, email.as_str()).as_bytes());
    Email::from_trusted(URL_SAFE_NO_PAD.encode(digest))
}

/// A hash carried over from another server (`password_hash`): bcrypt or Argon2, which Velro
/// verifies (and rehashes at the next sign-in).
fn imported_hash(raw: &str) -> Result<PasswordHash, SupabaseError> {
    let bcrypt = ["$2a$", "$2b$", "$2y$"]
        .iter()
        .any(|prefix| raw.starts_with(prefix))
        && raw.len() == 60;
    let argon2 = raw.starts_with("$argon2id$v=19$") || raw.starts_with("$argon2i$v=19$");
    if bcrypt || argon2 {
        Ok(PasswordHash::new(raw.to_owned()))
    } else {
        Err(validation(
            "password_hash",
            "password_hash must be a bcrypt or Argon2 hash",
        ))
    }
}

/// The password of an admin create or update.
#[derive(Debug)]
pub enum AdminPassword {
    Plain(NewPassword),
    /// A hash from another server, verbatim.
    Hash(String),
}

/// `POST /admin/users`, parsed.
#[derive(Debug)]
pub struct AdminCreate {
    pub id: Option<UserId>,
    pub email: Email,
    pub password: Option<AdminPassword>,
    pub email_confirm: bool,
    pub user_metadata: Option<Metadata>,
    pub app_metadata: Option<Metadata>,
    pub ban: Option<BanDuration>,
}

/// `PUT /admin/users/{id}`, parsed. `None` leaves a field alone; `email_confirm: false` does
/// nothing, as in GoTrue.
#[derive(Debug, Default)]
pub struct AdminUpdate {
    pub email: Option<Email>,
    pub password: Option<NewPassword>,
    pub email_confirm: bool,
    pub user_metadata: Option<Metadata>,
    pub app_metadata: Option<Metadata>,
    pub ban: Option<BanDuration>,
}

/// GoTrue's admin API over Velro's users. Cheap to clone.
#[derive(Clone)]
pub struct SupabaseAdmin {
    supabase: SupabaseAuth,
    admin: AdminService,
}

impl SupabaseAdmin {
    pub fn new(supabase: SupabaseAuth, admin: AdminService) -> Self {
        Self { supabase, admin }
    }

    fn now(&self) -> OffsetDateTime {
        self.supabase.auth().deps().clock.now()
    }

    /// A user by id, soft-deleted ones included.
    pub async fn find_user(&self, _admin: &AdminToken, user_id: UserId) -> Result<User, AuthError> {
        self.admin.get_user(user_id).await
    }

    /// GoTrue's listing, newest first: page `page` (from 1) of `per_page` users, and how many
    /// there are in all; with `filter`, only users whose email or full name contains it.
    pub async fn page_users(
        &self,
        _admin: &AdminToken,
        page: u64,
        per_page: u32,
        filter: Option<&str>,
    ) -> Result<(Vec<User>, u64), AuthError> {
        let offset = page.saturating_sub(1).saturating_mul(u64::from(per_page));
        Ok(self
            .supabase
            .auth()
            .deps()
            .store
            .page_users(offset, per_page, filter)
            .await?)
    }

    /// `POST /admin/users`. `user_metadata` is stored as given (`{}` when absent),
    /// `app_metadata` is GoTrue's provider object with the given keys merged in, and a role in
    /// it becomes the account's role. Without a password the account has none that verifies.
    pub async fn create_user(
        &self,
        _admin: &AdminToken,
        create: AdminCreate,
    ) -> Result<User, SupabaseError> {
        let deps = self.supabase.auth().deps();
        let mut user_metadata = create.user_metadata.unwrap_or_default();
        let profile = take_profile(&mut user_metadata)?;
        let mut app_updates = create.app_metadata.unwrap_or_default();
        let role = take_role(&mut app_updates)?;
        let app_metadata =
            Metadata::merged(Some(&default_app_metadata()), &app_updates).map_err(|error| {
                SupabaseError::Metadata {
                    field: "app_metadata",
                    error,
                }
            })?;
        if create.email_confirm {
            // GoTrue's confirmation marks the metadata too.
            user_metadata.insert("email_verified", Value::Bool(true));
        }
        let password_hash = match create.password {
            Some(AdminPassword::Plain(password)) => {
                super::account::not_the_email("password", &password, &create.email)?;
                deps.hasher.admit()?;
                deps.hasher.hash(password.into_secret()).await?
            }
            Some(AdminPassword::Hash(raw)) => imported_hash(&raw)?,
            None => PasswordHash::new(NO_PASSWORD.to_owned()),
        };
        let now = deps.clock.now();
        let new_user = NewUser {
            id: create.id.unwrap_or_else(|| UserId(Uuid::now_v7())),
            email: create.email,
            password_hash,
            display_name: profile.display_name.flatten(),
            credits_balance: deps.settings.initial_credits,
            email_confirmed: create.email_confirm,
            avatar_url: profile.avatar_url.flatten(),
            user_metadata: Some(user_metadata),
            app_metadata: Some(app_metadata),
            now,
        };
        // One statement with the role and the ban: a refused create leaves no account behind.
        let banned_until = create.ban.and_then(|ban| ban_end(ban, now));
        let role = role.unwrap_or_default();
        let user = match deps.store.insert_user(new_user, role, banned_until).await {
            Ok(user) => user,
            Err(StoreError::Conflict("email")) => return Err(SupabaseError::EmailExists),
            Err(StoreError::Conflict("user_id")) => {
                return Err(validation("id", "a user with this id already exists"))
            }
            Err(other) => return Err(AuthError::from(other).into()),
        };
        tracing::info!(user_id = %user.id, role = role.as_str(),
            "user created through the Supabase admin API");
        Ok(user)
    }

    /// `PUT /admin/users/{id}`. The email changes at once; a new password ends every session;
    /// metadata merges (a `null` deletes a key); a ban ends every session and is refused at
    /// sign-in until it ends; `"none"` lifts it. All of it is one write: when a part is refused
    /// (a merged object too large, a taken address), nothing changes.
    pub async fn update_user(
        &self,
        _admin: &AdminToken,
        user_id: UserId,
        update: AdminUpdate,
    ) -> Result<User, SupabaseError> {
        let deps = self.supabase.auth().deps();
        let user = self.admin.get_user(user_id).await?;
        let mut change = AccountChange::default();
        if let Some(mut updates) = update.user_metadata {
            let profile = take_profile(&mut updates)?;
            change.display_name = profile.display_name;
            change.avatar_url = profile.avatar_url;
            change.user_metadata = Some(user_metadata_merge(&user, updates));
        }
        if let Some(mut updates) = update.app_metadata {
            change.role = take_role(&mut updates)?;
            change.app_metadata = Some(app_metadata_merge(updates));
        }
        if let Some(email) = update.email {
            if email != user.email {
                change.email = Some(email);
            }
        }
        if let Some(password) = update.password {
            let email = change.email.as_ref().unwrap_or(&user.email);
            super::account::not_the_email("password", &password, email)?;
            deps.hasher.admit()?;
            change.password_hash = Some(deps.hasher.hash(password.into_secret()).await?);
            change.revoke_sessions = true;
            change.spend_reset_tokens = true;
        }
        if update.email_confirm {
            change.email_confirmed = Some(true);
            // GoTrue's confirmation marks the metadata too.
            change
                .user_metadata
                .get_or_insert_with(|| user_metadata_merge(&user, Metadata::default()))
                .set("email_verified", Value::Bool(true));
        }
        if let Some(ban) = update.ban {
            let ban = ban_change(ban, deps.clock.now());
            change.banned_until = ban.banned_until;
            change.revoke_sessions |= ban.revoke_sessions;
        }
        let role = change.role;
        let changed = self.apply(user_id, change).await?;
        if let Some(role) = role {
            tracing::info!(%user_id, role = role.as_str(), "role set through the Supabase admin API");
        }
        Ok(changed)
    }

    /// `DELETE /admin/users/{id}`. Hard: the account and everything of it goes. Soft (GoTrue's
    /// `should_soft_delete`): the row stays with its address obfuscated, no password, empty
    /// metadata, disabled, `deleted_at` set; a second soft delete changes nothing. Either way
    /// every session ends on both surfaces.
    pub async fn delete_user(
        &self,
        _admin: &AdminToken,
        user_id: UserId,
        soft: bool,
    ) -> Result<(), SupabaseError> {
        if !soft {
            self.admin.delete_user(user_id).await?;
            return Ok(());
        }
        let user = self.admin.get_user(user_id).await?;
        if user.deleted_at.is_some() {
            return Ok(());
        }
        let change = AccountChange {
            email: Some(obfuscated_email(user.id, &user.email)),
            password_hash: Some(PasswordHash::new(NO_PASSWORD.to_owned())),
            display_name: Some(None),
            avatar_url: Some(None),
            user_metadata: Some(MetadataWrite::Replace(Metadata::default())),
            app_metadata: Some(MetadataWrite::Replace(Metadata::default())),
            disabled: Some(true),
            deleted_at: Some(self.now()),
            revoke_sessions: true,
            spend_reset_tokens: true,
            ..AccountChange::default()
        };
        self.apply(user_id, change).await?;
        tracing::info!(%user_id, "user soft-deleted through the Supabase admin API");
        Ok(())
    }

    async fn apply(&self, user_id: UserId, change: AccountChange) -> Result<User, SupabaseError> {
        let deps = self.supabase.auth().deps();
        let outcome = deps
            .store
            .update_account(user_id, &change, deps.clock.now())
            .await;
        let (user, revoked) = account_updated(outcome, AuthError::NotFound)?;
        if !revoked.is_empty() {
            tracing::info!(%user_id, sessions_revoked = revoked.len(),
                "sessions ended by a Supabase admin change");
        }
        Ok(user)
    }
}

/// When a ban ends; `None` when it lifts one.
fn ban_end(ban: BanDuration, now: OffsetDateTime) -> Option<OffsetDateTime> {
    match ban {
        BanDuration::Lift => None,
        BanDuration::For(duration) => now.checked_add(duration),
    }
}

/// A ban as a change: a future end revokes every session; a lift (or a past end) only records.
fn ban_change(ban: BanDuration, now: OffsetDateTime) -> AccountChange {
    let banned_until = ban_end(ban, now);
    AccountChange {
        revoke_sessions: banned_until.is_some_and(|until| until > now),
        banned_until: Some(banned_until),
        ..AccountChange::default()
    }
}

impl SupabaseAuth {
    /// `PUT /user`'s account part in one write: `data` merged into the caller's
    /// `user_metadata` (`full_name` and `avatar_url` are the profile) and, when `password_hash`
    /// is given, the new password with every other session ended. Users never write
    /// `app_metadata`. Refused data (too large once merged) changes nothing.
    pub(super) async fn update_own_account(
        &self,
        caller: &Authenticated,
        data: Option<Metadata>,
        password_hash: Option<PasswordHash>,
    ) -> Result<User, SupabaseError> {
        let mut change = AccountChange::default();
        if let Some(mut updates) = data {
            let profile = take_profile(&mut updates)?;
            change.display_name = profile.display_name;
            change.avatar_url = profile.avatar_url;
            change.user_metadata = Some(user_metadata_merge(&caller.user, updates));
        }
        let password_changed = password_hash.is_some();
        if password_changed {
            change.password_hash = password_hash;
            change.revoke_sessions = true;
            change.keep_session = Some(caller.session.id);
        }
        let deps = self.auth().deps();
        let outcome = deps
            .store
            .update_account(caller.user.id, &change, deps.clock.now())
            .await;
        let (user, revoked) = account_updated(outcome, AuthError::SessionRevoked)?;
        if password_changed {
            tracing::info!(user_id = %user.id, sessions_revoked = revoked.len(), "password changed");
        }
        Ok(user)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(value: Value) -> Metadata {
        Metadata::parse(value).expect("an object")
    }

    #[test]
    fn profile_keys_leave_the_metadata_and_become_the_profile() {
        let mut updates = meta(json!({"full_name": "Ada", "avatar_url": null, "plan": "pro"}));
        let profile = take_profile(&mut updates).expect("valid");
        assert_eq!(
            profile
                .display_name
                .flatten()
                .map(|n| n.as_str().to_owned()),
            Some("Ada".to_owned())
        );
        assert!(matches!(profile.avatar_url, Some(None)));
        assert_eq!(Value::Object(updates.into_map()), json!({"plan": "pro"}));
        assert!(take_profile(&mut meta(json!({"full_name": 3}))).is_err());
        assert!(take_profile(&mut meta(json!({"avatar_url": "http://x.example/a.png"}))).is_err());
    }

    #[test]
    fn only_velro_roles_are_taken_from_app_metadata() {
        let mut updates = meta(json!({"role": "creator", "plan": "pro"}));
        assert_eq!(take_role(&mut updates).expect("valid"), Some(Role::Creator));
        assert_eq!(Value::Object(updates.into_map()), json!({"plan": "pro"}));
        assert!(take_role(&mut meta(json!({"role": "owner"}))).is_err());
        assert!(take_role(&mut meta(json!({"role": null}))).is_err());
        assert_eq!(take_role(&mut meta(json!({}))).expect("valid"), None);
    }

    #[test]
    fn a_soft_deleted_address_is_gotrues_obfuscation() {
        let id = UserId(Uuid::from_u128(1));
        let email = Email::parse("ada@example.com").expect("valid");
        let obfuscated = obfuscated_email(id, &email);
        assert_eq!(obfuscated.as_str().len(), 43);
        assert!(!obfuscated.as_str().contains('@'));
        assert_ne!(
            obfuscated,
            obfuscated_email(UserId(Uuid::from_u128(2)), &email)
        );
    }

    #[test]
    fn only_bcrypt_and_argon2_hashes_are_taken() {
        let bcrypt = format!("$2a$10${}", "a".repeat(53));
        assert!(imported_hash(&bcrypt).is_ok());
        assert!(imported_hash("$argon2id$v=19$m=19456,t=2,p=1$salt$hash").is_ok());
        assert!(imported_hash("plaintext").is_err());
        assert!(imported_hash("$2a$10$short").is_err());
    }

    #[test]
    fn a_ban_in_the_future_ends_sessions_and_a_lift_does_not() {
        let now = OffsetDateTime::UNIX_EPOCH;
        let ban = ban_change(BanDuration::For(time::Duration::hours(24)), now);
        assert_eq!(
            ban.banned_until,
            Some(Some(now + time::Duration::hours(24)))
        );
        assert!(ban.revoke_sessions);
        let lift = ban_change(BanDuration::Lift, now);
        assert_eq!(lift.banned_until, Some(None));
        assert!(!lift.revoke_sessions);
        let past = ban_change(BanDuration::For(time::Duration::hours(-1)), now);
        assert!(!past.revoke_sessions);
    }
}
