//! Access tokens as Supabase Auth (GoTrue) issues them, signed and checked by the same key set as
//! Velro's own. The two kinds never stand in for each other: each is checked against its own
//! issuer and must carry its own session claim (`sid` for Velro's, `session_id` here), so a
//! token made for one surface is refused by the other. Admin credentials (the project's
//! `service_role` key) are role-only tokens checked here too; which roles count is configured.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::domain::{Email, Metadata, SessionId, User, UserId};
use crate::AuthError;

use super::access::base_validation;
use super::{AccessTokens, IssuedAccessToken, VerifiedAccess};

/// What Supabase tokens say about where they come from, and who may administer.
#[derive(Debug, Clone)]
pub struct SupabaseTokenProfile {
    /// `iss`: the public URL of the auth API (hosted Supabase: `https://<ref>.supabase.co/auth/v1`).
    pub issuer: String,
    /// `aud` of user tokens (GoTrue's `JWT_AUD`, `authenticated` by default).
    pub audience: String,
    /// `role` values that make a token an admin credential (GoTrue's `JWT_ADMIN_ROLES`).
    pub admin_roles: Vec<String>,
}

/// The database role Supabase puts in `role`; PostgREST switches to it.
pub const AUTHENTICATED_ROLE: &str = "authenticated";

/// `app_metadata` as GoTrue shows it: the stored object (GoTrue's `{"provider": "email",
/// "providers": ["email"]}` for accounts that have none stored), with Velro's own role under
/// `role`, which only an admin can change (users cannot write `app_metadata`).
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct AppMetadata(pub Map<String, Value>);

/// `user_metadata` as GoTrue shows it: the stored object, or for accounts that have none
/// stored (made through the v1 API) the identity data GoTrue copies in at sign-up. Either way
/// `full_name` and `avatar_url` are the account's display name and avatar, so that both
/// surfaces show one profile, and `email_verified`, where present, follows the account.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct UserMetadata(pub Map<String, Value>);

impl AppMetadata {
    pub fn of(user: &User) -> Self {
        let mut map = match &user.app_metadata {
            Some(stored) => stored.as_map().clone(),
            None => default_app_metadata().into_map(),
        };
        map.insert("role".into(), Value::from(user.role.as_str()));
        Self(map)
    }
}

impl UserMetadata {
    pub fn of(user: &User) -> Self {
        let mut map = match &user.user_metadata {
            Some(stored) => stored.as_map().clone(),
            None => Self::identity(user).0,
        };
        if map.contains_key("email_verified") {
            map.insert("email_verified".into(), Value::Bool(user.email_confirmed));
        }
        for (key, value) in [
            ("full_name", &user.display_name),
            ("avatar_url", &user.avatar_url),
        ] {
            match value {
                Some(value) => map.insert(key.into(), Value::from(value.as_str())),
                None => map.remove(key),
            };
        }
        Self(map)
    }

    /// The identity data of the account's one (email) identity.
    pub fn identity(user: &User) -> Self {
        Self(identity_data(user.id, &user.email, user.email_confirmed).into_map())
    }
}

fn identity_data(id: UserId, email: &Email, email_verified: bool) -> Metadata {
    let mut data = Metadata::default();
    data.insert("sub", Value::from(id.0.to_string()));
    data.insert("email", Value::from(email.as_str()));
    data.insert("email_verified", Value::Bool(email_verified));
    data.insert("phone_verified", Value::Bool(false));
    data
}

/// GoTrue's `app_metadata` of an email account.
pub fn default_app_metadata() -> Metadata {
    let mut data = Metadata::default();
    data.insert("provider", Value::from("email"));
    data.insert("providers", Value::Array(vec![Value::from("email")]));
    data
}

/// What `/signup` stores: as `user_metadata`, GoTrue's identity data with the sign-up's other
/// `data` keys added (never replacing one of it), and the email provider as `app_metadata`.
/// Not bounded again: the identity data is small and `data` was bounded.
pub fn signup_metadata(
    id: UserId,
    email: &Email,
    email_verified: bool,
    data: &Metadata,
) -> (Metadata, Metadata) {
    let mut user_metadata = identity_data(id, email, email_verified);
    for (key, value) in data.as_map() {
        if user_metadata.get(key).is_none() && !value.is_null() {
            user_metadata.insert(key.clone(), value.clone());
        }
    }
    (user_metadata, default_app_metadata())
}

/// One entry of `amr`: how and when the session was authenticated.
#[derive(Debug, Clone, Serialize)]
pub struct AuthMethod {
    pub method: &'static str,
    pub timestamp: i64,
}

#[derive(Serialize)]
struct IssuedClaims<'a> {
    iss: &'a str,
    sub: Uuid,
    aud: &'a str,
    exp: i64,
    iat: i64,
    email: &'a str,
    phone: &'a str,
    app_metadata: AppMetadata,
    user_metadata: UserMetadata,
    role: &'static str,
    aal: &'static str,
    amr: [AuthMethod; 1],
    session_id: Uuid,
    is_anonymous: bool,
}

#[derive(Deserialize)]
struct UserClaims {
    sub: Uuid,
    session_id: Uuid,
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
}

#[derive(Deserialize)]
struct AdminClaims {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    session_id: Option<Uuid>,
    /// Present only in Velro's own user tokens, which are never admin credentials.
    #[serde(default)]
    sid: Option<serde::de::IgnoredAny>,
}

/// An admin credential that passed: signed by our keys, with an admin role.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminToken {
    pub role: String,
    /// GoTrue checks that this session still exists when a credential names one.
    pub session_id: Option<SessionId>,
}

impl AccessTokens {
    /// A Supabase access token for `user` on `session`, with GoTrue's claims.
    pub fn issue_supabase(
        &self,
        profile: &SupabaseTokenProfile,
        user: &User,
        session: SessionId,
        authenticated: AuthMethod,
        now: OffsetDateTime,
    ) -> Result<IssuedAccessToken, AuthError> {
        let issued_at = now.unix_timestamp();
        let expires_at = issued_at + self.lifetime().whole_seconds();
        let claims = IssuedClaims {
            iss: &profile.issuer,
            sub: user.id.0,
            aud: &profile.audience,
            exp: expires_at,
            iat: issued_at,
            email: user.email.as_str(),
            phone: "",
            app_metadata: AppMetadata::of(user),
            user_metadata: UserMetadata::of(user),
            role: AUTHENTICATED_ROLE,
            aal: "aal1",
            amr: [authenticated],
            session_id: session.0,
            is_anonymous: false,
        };
        Ok(IssuedAccessToken {
            token: self.sign(&claims)?,
            issued_at,
            expires_at,
        })
    }

    /// Checks a Supabase user token: key, signature, `iss`, `aud`, `nbf`, expiry, and that it
    /// names a session. The session itself is checked by the caller.
    pub fn verify_supabase(
        &self,
        profile: &SupabaseTokenProfile,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<VerifiedAccess, AuthError> {
        let (algorithm, key) = self.key_for(token)?;
        let mut validation = base_validation(algorithm);
        validation.set_audience(&[profile.audience.as_str()]);
        validation.set_issuer(&[profile.issuer.as_str()]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        let claims = jsonwebtoken::decode::<UserClaims>(token, key, &validation)
            .map_err(|_| AuthError::TokenInvalid)?
            .claims;
        let now = now.unix_timestamp();
        let leeway = self.leeway().whole_seconds();
        if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(AuthError::TokenInvalid);
        }
        if claims.exp.saturating_add(leeway) <= now {
            return Err(AuthError::TokenExpired);
        }
        Ok(VerifiedAccess {
            user_id: UserId(claims.sub),
            session_id: SessionId(claims.session_id),
        })
    }

    /// Checks an admin credential as GoTrue does: signed by one of our keys (a token without
    /// `kid` by the legacy secret, which is how Supabase's `service_role` key is made), `exp`
    /// honoured when present, and nothing else required but an admin `role`. `TokenInvalid`
    /// when it does not verify, `Forbidden` when it verifies without an admin role.
    pub fn verify_admin(
        &self,
        profile: &SupabaseTokenProfile,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<AdminToken, AuthError> {
        let (algorithm, key) = self.key_for(token)?;
        let mut validation = base_validation(algorithm);
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
        let claims = jsonwebtoken::decode::<AdminClaims>(token, key, &validation)
            .map_err(|_| AuthError::TokenInvalid)?
            .claims;
        let leeway = self.leeway().whole_seconds();
        if claims
            .exp
            .is_some_and(|exp| exp.saturating_add(leeway) <= now.unix_timestamp())
        {
            return Err(AuthError::TokenExpired);
        }
        let role = claims.role.unwrap_or_default();
        if claims.sid.is_some() || !profile.admin_roles.contains(&role) {
            return Err(AuthError::Forbidden);
        }
        Ok(AdminToken {
            role,
            session_id: claims.session_id.map(SessionId),
        })
    }
}

/// The `role`s of a project's API keys, as Supabase's gateway has them as consumers.
pub const API_KEY_ROLES: [&str; 2] = ["anon", "service_role"];

#[derive(Deserialize)]
struct ApiKeyClaims {
    #[serde(default)]
    role: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
}

impl AccessTokens {
    /// Checks an `apikey` as Supabase's gateway accepts it: one of the project's API keys, that
    /// is a JWT signed by our keys (the anon and service_role keys have no `kid`: the legacy
    /// secret) whose `role` is `anon` or `service_role`, not expired when it says when. Returns
    /// the role. A user's access token is not an API key.
    pub fn verify_api_key(
        &self,
        key: &str,
        now: OffsetDateTime,
    ) -> Result<&'static str, AuthError> {
        let (algorithm, decoding) = self.key_for(key)?;
        let mut validation = base_validation(algorithm);
        validation.validate_aud = false;
        validation.set_required_spec_claims::<&str>(&[]);
        let claims = jsonwebtoken::decode::<ApiKeyClaims>(key, decoding, &validation)
            .map_err(|_| AuthError::TokenInvalid)?
            .claims;
        let leeway = self.leeway().whole_seconds();
        if claims
            .exp
            .is_some_and(|exp| exp.saturating_add(leeway) <= now.unix_timestamp())
        {
            return Err(AuthError::TokenExpired);
        }
        let role = claims.role.unwrap_or_default();
        API_KEY_ROLES
            .into_iter()
            .find(|known| *known == role)
            .ok_or(AuthError::TokenInvalid)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::Duration;

    use super::*;
    use crate::domain::{Email, Role};
    use crate::tokens::{AccessTokenConfig, KeySet, SigningKey};
    use crate::{Clock, Secret, SystemClock};

    const SECRET: &[u8] = b"a-project-jwt-secret-of-at-least-32-bytes";

    fn key() -> SigningKey {
        SigningKey::hs256("ours", Secret::new(SECRET.to_vec()), SystemClock.now()).expect("valid")
    }

    fn tokens() -> AccessTokens {
        AccessTokens::new(&AccessTokenConfig {
            keys: KeySet::single(key()),
            issuer: "velro".into(),
            lifetime: Duration::seconds(3600),
            leeway: Duration::seconds(0),
        })
    }

    fn profile() -> SupabaseTokenProfile {
        SupabaseTokenProfile {
            issuer: "https://auth.example.com/auth/v1".into(),
            audience: "authenticated".into(),
            admin_roles: vec!["service_role".into(), "supabase_admin".into()],
        }
    }

    fn user(role: Role) -> User {
        let now = SystemClock.now();
        User {
            id: UserId(Uuid::new_v4()),
            email: Email::parse("ada@example.com").expect("valid"),
            display_name: None,
            avatar_url: None,
            credits_balance: 0,
            role,
            email_confirmed: true,
            disabled: false,
            created_at: now,
            updated_at: now,
            user_metadata: None,
            app_metadata: None,
            banned_until: None,
            deleted_at: None,
        }
    }

    fn method(now: OffsetDateTime) -> AuthMethod {
        AuthMethod {
            method: "password",
            timestamp: now.unix_timestamp(),
        }
    }

    /// A token without `kid`, as Supabase's anon and service_role keys are made.
    fn legacy_token(claims: serde_json::Value) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET),
        )
        .expect("encodes")
    }

    #[test]
    fn supabase_tokens_verify_here_and_v1_tokens_do_not() {
        let tokens = tokens();
        let now = SystemClock.now();
        let user = user(Role::Viewer);
        let session = SessionId(Uuid::now_v7());
        let supabase = tokens
            .issue_supabase(&profile(), &user, session, method(now), now)
            .expect("issues");
        let verified = tokens
            .verify_supabase(&profile(), supabase.token.expose(), now)
            .expect("verifies");
        assert_eq!(verified.session_id, session);
        assert_eq!(verified.user_id, user.id);
        assert!(tokens.verify(supabase.token.expose(), now).is_err());

        let v1 = tokens.issue(&user, session, now).expect("issues");
        assert!(tokens
            .verify_supabase(&profile(), v1.token.expose(), now)
            .is_err());
        let later = now + Duration::seconds(3601);
        assert!(matches!(
            tokens.verify_supabase(&profile(), supabase.token.expose(), later),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn admin_credentials_need_an_admin_role_and_nothing_else() {
        let tokens = tokens();
        let now = SystemClock.now();
        let admin = |claims| tokens.verify_admin(&profile(), &legacy_token(claims), now);
        assert_eq!(
            admin(json!({"role": "service_role"})).ok().map(|t| t.role),
            Some("service_role".to_string())
        );
        assert!(admin(json!({"sub": "1234567890", "role": "supabase_admin"})).is_ok());
        assert!(matches!(
            admin(json!({"role": "anon"})),
            Err(AuthError::Forbidden)
        ));
        assert!(matches!(admin(json!({})), Err(AuthError::Forbidden)));
        assert!(matches!(
            admin(json!({"role": "service_role", "exp": now.unix_timestamp() - 1})),
            Err(AuthError::TokenExpired)
        ));
        // Velro's own user tokens never pass, whatever role they carry.
        let v1 = tokens
            .issue(&user(Role::Admin), SessionId(Uuid::now_v7()), now)
            .expect("issues");
        let with_admin_roles = SupabaseTokenProfile {
            admin_roles: vec!["admin".into()],
            ..profile()
        };
        assert!(matches!(
            tokens.verify_admin(&with_admin_roles, v1.token.expose(), now),
            Err(AuthError::Forbidden)
        ));
        let user_token = tokens
            .issue_supabase(
                &profile(),
                &user(Role::Admin),
                SessionId(Uuid::now_v7()),
                method(now),
                now,
            )
            .expect("issues");
        assert!(matches!(
            tokens.verify_admin(&profile(), user_token.token.expose(), now),
            Err(AuthError::Forbidden)
        ));
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"role": "service_role"}),
            &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
        )
        .expect("encodes");
        assert!(matches!(
            tokens.verify_admin(&profile(), &forged, now),
            Err(AuthError::TokenInvalid)
        ));
    }

    #[test]
    fn api_keys_are_project_jwts_with_the_anon_or_service_role_role() {
        let tokens = tokens();
        let now = SystemClock.now();
        let later = now.unix_timestamp() + 3600;
        let key = |claims| tokens.verify_api_key(&legacy_token(claims), now);
        assert_eq!(
            key(json!({"iss": "supabase", "role": "anon", "exp": later})).ok(),
            Some("anon")
        );
        assert_eq!(
            key(json!({"role": "service_role"})).ok(),
            Some("service_role")
        );
        assert!(key(json!({"role": "authenticated", "exp": later})).is_err());
        assert!(key(json!({"exp": later})).is_err());
        assert!(key(json!({"role": "anon", "exp": now.unix_timestamp() - 1})).is_err());
        let user_token = tokens
            .issue_supabase(
                &profile(),
                &user(Role::Viewer),
                SessionId(Uuid::now_v7()),
                method(now),
                now,
            )
            .expect("issues");
        assert!(tokens
            .verify_api_key(user_token.token.expose(), now)
            .is_err());
        let forged = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"role": "anon"}),
            &jsonwebtoken::EncodingKey::from_secret(b"another-secret-of-at-least-32-bytes!!"),
        )
        .expect("encodes");
        assert!(tokens.verify_api_key(&forged, now).is_err());
        assert!(tokens.verify_api_key("sb_publishable_abc", now).is_err());
    }
}
