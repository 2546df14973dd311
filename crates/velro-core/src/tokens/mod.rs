//! Access tokens (JWT, signed with a key set that rotates) and the opaque tokens (refresh and
//! reset) that are stored only as hashes. Keys are parsed once, at start-up; reading them from
//! files or the environment belongs to the binary.

mod access;
mod keys;
mod supabase;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::TokenHash;
use crate::Secret;

pub use access::{
    AccessClaims, AccessTokenConfig, AccessTokens, IssuedAccessToken, VerifiedAccess, AUDIENCE,
};
pub use keys::{
    KeyRing, KeySet, KeyState, PublicJwk, PublicKeyParams, RingKey, RsaComponents, RsaPrivateParts,
    SigningAlgorithm, SigningKey, MIN_SECRET_BYTES,
};
pub use supabase::{
    default_app_metadata, signup_metadata, AdminToken, AppMetadata, AuthMethod,
    SupabaseTokenProfile, UserMetadata, API_KEY_ROLES, AUTHENTICATED_ROLE,
};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("must be at least {MIN_SECRET_BYTES} bytes")]
    TooShort,
    #[error("must be printable ASCII without spaces")]
    NotPrintable,
    #[error("is not a valid key")]
    Malformed,
    #[error("could not be generated")]
    Generation,
    #[error("has a kid that is empty, longer than 64 characters, or not made of [A-Za-z0-9._-]")]
    BadKid,
    #[error("names the kid {0} twice")]
    DuplicateKid(String),
    #[error("names the kid {0}, which is not in the key set")]
    UnknownKid(String),
    #[error("would sign with the key {0}, which has no private part")]
    VerifyOnly(String),
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
    /// `secret` is a secret that outlives key rotation (the key set's successor secret, or a
    /// configured `VELRO_JWT_SECRET`); the successor key is derived from it with a label, so the
    /// two uses never share a key. Changing it only affects spent tokens replayed within the
    /// grace window at that moment.
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
