//! Access tokens (JWT, HS256) and the opaque tokens (refresh and reset) that are stored only as
//! hashes. Keys are parsed once, at start-up.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::{SessionId, User, UserId};
use crate::store::TokenHash;
use crate::{AuthError, Secret};

/// The `aud` claim of every access token, as the contract fixes it.
pub const AUDIENCE: &str = "authenticated";
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
    #[error("must be printable ASCII without spaces")]
    NotPrintable,
}

/// Everything needed to issue and check access tokens.
#[derive(Debug, Clone)]
pub struct AccessTokenConfig {
    pub secret: Secret<Vec<u8>>,
    pub issuer: String,
    pub lifetime: Duration,
    /// Tolerance for clock differences between instances when checking `exp`.
    pub leeway: Duration,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub aud: String,
    pub sub: Uuid,
    pub email: String,
    pub role: String,
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
}

#[derive(Debug)]
pub struct IssuedAccessToken {
    pub token: Secret<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

pub struct AccessTokens {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    lifetime: Duration,
    leeway: Duration,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    pub fn new(config: &AccessTokenConfig) -> Result<Self, KeyError> {
        let secret = config.secret.expose();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_issuer(&[config.issuer.as_str()]);
        // Expiry is checked against the service's clock below, not the library's.
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer: config.issuer.clone(),
            lifetime: config.lifetime,
            leeway: config.leeway,
        })
    }

    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    pub fn issue(
        &self,
        user: &User,
        session: SessionId,
        now: OffsetDateTime,
    ) -> Result<IssuedAccessToken, AuthError> {
        let issued_at = now.unix_timestamp();
        let expires_at = issued_at + self.lifetime.whole_seconds();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            aud: AUDIENCE.to_string(),
            sub: user.id.0,
            email: user.email.as_str().to_string(),
            role: user.role.as_str().to_string(),
            sid: session.0,
            iat: issued_at,
            exp: expires_at,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AuthError::internal)?;
        Ok(IssuedAccessToken {
            token: Secret::new(token),
            issued_at,
            expires_at,
        })
    }

    /// Checks signature, algorithm, audience, issuer and expiry. The session is checked by the
    /// caller.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<VerifiedAccess, AuthError> {
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &self.validation)
            .map_err(|_| AuthError::TokenInvalid)?;
        let claims = data.claims;
        if claims.exp + self.leeway.whole_seconds() <= now.unix_timestamp() {
            return Err(AuthError::TokenExpired);
        }
        Ok(VerifiedAccess {
            user_id: UserId(claims.sub),
            session_id: SessionId(claims.sid),
        })
    }
}

/// Who an access token speaks for, once its signature and expiry have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAccess {
    pub user_id: UserId,
    pub session_id: SessionId,
}

/// Opaque tokens: 256 random bits, base64url. Stored as SHA-256, which suffices for values of
/// that entropy (no salt or slow hash needed, unlike passwords).
pub fn generate_opaque_token() -> Secret<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    Secret::new(URL_SAFE_NO_PAD.encode(bytes))
}

pub fn hash_token(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
}

/// Derives a refresh token's successor with a keyed hash, so that a spent token presented again
/// within the grace window yields the same successor while only hashes are stored.
#[derive(Clone)]
pub struct RefreshTokens {
    key: Hmac<Sha256>,
}

impl std::fmt::Debug for RefreshTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshTokens { .. }")
    }
}

impl RefreshTokens {
    /// `secret` is the service's signing secret; the successor key is derived from it with a
    /// label, so the two uses never share a key.
    pub fn new(secret: &Secret<Vec<u8>>) -> Self {
        let mut derive = Hmac::<Sha256>::new_from_slice(secret.expose())
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        derive.update(b"velro refresh-token successor v1");
        let derived = derive.finalize().into_bytes();
        let key = Hmac::<Sha256>::new_from_slice(&derived)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
        Self { key }
    }

    pub fn successor(&self, token: &str) -> Secret<String> {
        let mut mac = self.key.clone();
        mac.update(token.as_bytes());
        Secret::new(URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }
}

/// The admin API's key, checked once at start-up and then by one constant-time comparison.
#[derive(Clone)]
pub struct ServiceKey {
    digest: [u8; 32],
}

impl std::fmt::Debug for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceKey([redacted])")
    }
}

impl ServiceKey {
    pub fn parse(raw: &Secret<String>) -> Result<Self, KeyError> {
        let key = raw.expose();
        if key.len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(KeyError::NotPrintable);
        }
        Ok(Self {
            digest: Sha256::digest(key.as_bytes()).into(),
        })
    }

    /// Compares digests so that neither the content nor the length of the key leaks by timing.
    pub fn matches(&self, presented: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        self.digest.ct_eq(&presented).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Email, Role};
    use crate::{Clock, SystemClock};

    fn config(secret: &[u8]) -> AccessTokenConfig {
        AccessTokenConfig {
            secret: Secret::new(secret.to_vec()),
            issuer: "velro".into(),
            lifetime: Duration::seconds(3600),
            leeway: Duration::ZERO,
        }
    }

    fn user() -> User {
        let now = SystemClock.now();
        User {
            id: UserId(Uuid::new_v4()),
            email: Email::parse("ada@example.com").expect("valid"),
            display_name: None,
            avatar_url: None,
            credits_balance: 1000,
            role: Role::Viewer,
            email_confirmed: false,
            disabled: false,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn issued_tokens_verify_until_they_expire() {
        let tokens = AccessTokens::new(&config(&[7; 32])).expect("key ok");
        let now = SystemClock.now();
        let session = SessionId(Uuid::new_v4());
        let issued = tokens.issue(&user(), session, now).expect("issues");
        assert_eq!(issued.expires_at - issued.issued_at, 3600);
        let verified = tokens.verify(issued.token.expose(), now).expect("verifies");
        assert_eq!(verified.session_id, session);
        let later = now + Duration::seconds(3600);
        assert!(matches!(
            tokens.verify(issued.token.expose(), later),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn foreign_keys_issuers_and_algorithms_are_refused() {
        let ours = AccessTokens::new(&config(&[7; 32])).expect("key ok");
        let theirs = AccessTokens::new(&config(&[8; 32])).expect("key ok");
        let mut other_issuer = config(&[7; 32]);
        other_issuer.issuer = "someone-else".into();
        let other_issuer = AccessTokens::new(&other_issuer).expect("key ok");
        let now = SystemClock.now();
        let session = SessionId(Uuid::new_v4());
        for issuer in [&theirs, &other_issuer] {
            let token = issuer.issue(&user(), session, now).expect("issues");
            assert!(matches!(
                ours.verify(token.token.expose(), now),
                Err(AuthError::TokenInvalid)
            ));
        }
        let token = ours.issue(&user(), session, now).expect("issues");
        let payload = token
            .token
            .expose()
            .split('.')
            .nth(1)
            .expect("three parts")
            .to_string();
        let unsigned = format!(
            "{}.{payload}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
        );
        let hs512 = format!(
            "{}.{payload}.x",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","typ":"JWT"}"#)
        );
        for forged in [unsigned.as_str(), hs512.as_str(), "garbage", ""] {
            assert!(
                matches!(ours.verify(forged, now), Err(AuthError::TokenInvalid)),
                "{forged}"
            );
        }
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(matches!(
            AccessTokens::new(&config(&[1; 31])),
            Err(KeyError::TooShort)
        ));
    }

    #[test]
    fn successors_are_deterministic_per_key() {
        let a = RefreshTokens::new(&Secret::new(vec![1; 32]));
        let b = RefreshTokens::new(&Secret::new(vec![2; 32]));
        let token = generate_opaque_token();
        assert_eq!(a.successor(token.expose()), a.successor(token.expose()));
        assert_ne!(a.successor(token.expose()), b.successor(token.expose()));
        assert_ne!(generate_opaque_token(), token);
        assert_eq!(token.expose().len(), 43);
    }

    #[test]
    fn service_keys_compare_exactly() {
        let raw = Secret::new("k".repeat(40));
        let key = ServiceKey::parse(&raw).expect("long enough");
        assert!(key.matches(&"k".repeat(40)));
        assert!(!key.matches(&"k".repeat(39)));
        assert!(ServiceKey::parse(&Secret::new("short".into())).is_err());
        assert!(ServiceKey::parse(&Secret::new(format!("{} x", "k".repeat(40)))).is_err());
    }
}
