//! Signing keys for access tokens: each with a `kid`, one active signer and any number of keys
//! kept for verification only, so a new key can be rolled out while older tokens stay valid.
//! Where keys are stored is the binary's business; this module only builds and checks them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use rand::RngCore;
use ring::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::Secret;

use super::KeyError;

/// The smallest HS256 secret accepted (RFC 7518 §3.2: at least the hash's size).
pub const MIN_SECRET_BYTES: usize = 32;

/// The algorithm access tokens are signed with. Tokens with any other `alg` are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SigningAlgorithm {
    /// HMAC-SHA256 with a shared secret (the default): every instance needs the secret.
    #[serde(rename = "HS256", alias = "hs256")]
    Hs256,
    /// Ed25519 signatures: instances need the private key, anyone may verify with the public
    /// keys published at `/.well-known/jwks.json`.
    #[serde(rename = "EdDSA", alias = "eddsa", alias = "EDDSA", alias = "Ed25519")]
    EdDsa,
    /// RSASSA-PKCS1-v1_5 with SHA-256: only from a configured JWK (`VELRO_JWT_KEYS`), never
    /// generated.
    #[serde(skip_deserializing)]
    Rs256,
    /// ECDSA on P-256 with SHA-256: only from a configured JWK (`VELRO_JWT_KEYS`).
    #[serde(skip_deserializing)]
    Es256,
}

impl SigningAlgorithm {
    /// The name in a JWT header and in JWKS (`HS256`, `EdDSA`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
            Self::Rs256 => "RS256",
            Self::Es256 => "ES256",
        }
    }

    /// The algorithms `VELRO_JWT_ALGORITHM` and the key file know (the generated kinds).
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "HS256" | "hs256" => Some(Self::Hs256),
            "EdDSA" | "eddsa" | "EDDSA" | "Ed25519" => Some(Self::EdDsa),
            _ => None,
        }
    }

    pub(crate) fn jwt(self) -> Algorithm {
        match self {
            Self::Hs256 => Algorithm::HS256,
            Self::EdDsa => Algorithm::EdDSA,
            Self::Rs256 => Algorithm::RS256,
            Self::Es256 => Algorithm::ES256,
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a key is made of. The private parts never leave through `Debug`.
#[derive(Clone)]
enum Material {
    Hmac(Secret<Vec<u8>>),
    Ed25519 {
        /// PKCS#8 v1 or v2 document, as `ring` generates it.
        pkcs8: Secret<Vec<u8>>,
        public: Vec<u8>,
    },
    Rsa {
        /// PKCS#1 `RSAPrivateKey` DER, as `ring` reads it.
        pkcs1: Secret<Vec<u8>>,
        n: Vec<u8>,
        e: Vec<u8>,
    },
    EcP256 {
        /// PKCS#8 v1 document with the public key, as `ring` reads it.
        pkcs8: Secret<Vec<u8>>,
        /// The uncompressed point (`04 || x || y`).
        public: Vec<u8>,
    },
    /// A verify-only RSA key: a JWK given without its private part (GoTrue accepts those in
    /// `JWT_KEYS`, so that a key whose private half is gone keeps verifying its tokens).
    RsaPublic {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// A verify-only P-256 key (the uncompressed point).
    EcP256Public {
        public: Vec<u8>,
    },
}

/// One signing key: a `kid`, an algorithm, when it was made, and its material.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    created_at: OffsetDateTime,
    material: Material,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm())
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// An HS256 key from a secret of at least [`MIN_SECRET_BYTES`] bytes.
    pub fn hs256(
        kid: impl Into<String>,
        secret: Secret<Vec<u8>>,
        created_at: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        if secret.expose().len() < MIN_SECRET_BYTES {
            return Err(KeyError::TooShort);
        }
        Self::checked(kid.into(), created_at, Material::Hmac(secret))
    }

    /// An Ed25519 key from its PKCS#8 (DER) document.
    pub fn ed25519(
        kid: impl Into<String>,
        pkcs8: Secret<Vec<u8>>,
        created_at: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(pkcs8.expose())
            .map_err(|_| KeyError::Malformed)?;
        let public = pair.public_key().as_ref().to_vec();
        Self::checked(kid.into(), created_at, Material::Ed25519 { pkcs8, public })
    }

    /// An RS256 key from its JWK components (big-endian unsigned integers): all eight must be
    /// given, and `ring` checks that they make one key of at least 2048 bits.
    pub fn rsa(
        kid: impl Into<String>,
        components: RsaComponents,
        created_at: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        let RsaComponents { n, e, private } = components;
        let parts = private.expose();
        let mut body = der_unsigned(&[0]);
        for part in [
            &n, &e, &parts.d, &parts.p, &parts.q, &parts.dp, &parts.dq, &parts.qi,
        ] {
            if part.iter().all(|b| *b == 0) {
                return Err(KeyError::Malformed);
            }
            body.extend(der_unsigned(part));
        }
        let pkcs1 = Secret::new(der(0x30, &body));
        RsaKeyPair::from_der(pkcs1.expose()).map_err(|_| KeyError::Malformed)?;
        let n = strip_zeros(&n).to_vec();
        let e = strip_zeros(&e).to_vec();
        Self::checked(kid.into(), created_at, Material::Rsa { pkcs1, n, e })
    }

    /// An ES256 key from its JWK components: the 32-byte private scalar and the public point;
    /// `ring` checks that they belong together.
    pub fn es256(
        kid: impl Into<String>,
        d: Secret<Vec<u8>>,
        x: &[u8],
        y: &[u8],
        created_at: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        if d.expose().len() != 32 || x.len() != 32 || y.len() != 32 {
            return Err(KeyError::Malformed);
        }
        let mut public = Vec::with_capacity(65);
        public.push(0x04);
        public.extend_from_slice(x);
        public.extend_from_slice(y);
        let pkcs8 = Secret::new(p256_pkcs8(d.expose(), &public));
        let rng = ring::rand::SystemRandom::new();
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.expose(), &rng)
            .map_err(|_| KeyError::Malformed)?;
        Self::checked(kid.into(), created_at, Material::EcP256 { pkcs8, public })
    }

    /// A verify-only RS256 key from its public JWK components: a modulus of 2048 to 8192 bits
    /// (the sizes the verifier takes) and an odd public exponent of at least 3.
    pub fn rsa_public(
        kid: impl Into<String>,
        n: &[u8],
        e: &[u8],
        created_at: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        let n = strip_zeros(n);
        let e = strip_zeros(e);
        let modulus_bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
        let odd = |value: &[u8]| value.last().is_some_and(|b| b & 1 == 1);
        let exponent_ok = odd(e) && (e.len() > 1 || e[0] >= 3) && e.len() <= 4;
        if !(2048..=8192).contains(&modulus_bits) || !odd(n) || !exponent_ok {
            return Err(KeyError::Malformed);
        }
        let material = Material::RsaPublic {
            n: n.to_vec(),
            e: e.to_vec(),
        };
        Self::checked(kid.into(), created_at, material)
    }

    /// A verify-only ES256 key from its public point. The point is checked to lie on P-256 by
    /// agreeing a throwaway ECDH secret with it (`ring` validates a peer's point there; it has
    /// no other public check).
    pub fn es256_public(
        kid: impl Into<String>,
        x: &[u8],
        y: &[u8],
        created_at: OffsetDateTime,
    ) -> Result<Self, KeyError> {
        use ring::agreement;
        if x.len() != 32 || y.len() != 32 {
            return Err(KeyError::Malformed);
        }
        let mut public = Vec::with_capacity(65);
        public.push(0x04);
        public.extend_from_slice(x);
        public.extend_from_slice(y);
        let rng = ring::rand::SystemRandom::new();
        let ours = agreement::EphemeralPrivateKey::generate(&agreement::ECDH_P256, &rng)
            .map_err(|_| KeyError::Generation)?;
        let theirs = agreement::UnparsedPublicKey::new(&agreement::ECDH_P256, &public);
        agreement::agree_ephemeral(ours, &theirs, |_| ()).map_err(|_| KeyError::Malformed)?;
        Self::checked(kid.into(), created_at, Material::EcP256Public { public })
    }

    fn checked(
        kid: String,
        created_at: OffsetDateTime,
        material: Material,
    ) -> Result<Self, KeyError> {
        let valid_kid = !kid.is_empty()
            && kid.len() <= 64
            && kid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
        if !valid_kid {
            return Err(KeyError::BadKid);
        }
        Ok(Self {
            kid,
            created_at,
            material,
        })
    }

    /// A new random key: 256-bit secrets for HS256, a fresh Ed25519 pair for EdDSA. The `kid` is
    /// random (it says nothing about the key).
    pub fn generate(algorithm: SigningAlgorithm, now: OffsetDateTime) -> Result<Self, KeyError> {
        let kid = random_kid();
        match algorithm {
            SigningAlgorithm::Hs256 => {
                let mut secret = vec![0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut secret);
                Self::hs256(kid, Secret::new(secret), now)
            }
            SigningAlgorithm::EdDsa => {
                let rng = ring::rand::SystemRandom::new();
                let document =
                    Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generation)?;
                Self::ed25519(kid, Secret::new(document.as_ref().to_vec()), now)
            }
            // Asymmetric keys a Supabase project already has come in VELRO_JWT_KEYS.
            SigningAlgorithm::Rs256 | SigningAlgorithm::Es256 => Err(KeyError::Generation),
        }
    }

    /// The `kid` an HS256 secret gets when it comes from configuration (`VELRO_JWT_SECRET`, or
    /// the secret file of earlier versions): derived from the secret, so every instance that
    /// shares the secret names it alike. A one-way, truncated hash: it reveals nothing a token's
    /// signature does not already.
    pub fn derived_kid(secret: &Secret<Vec<u8>>) -> String {
        let mut hash = Sha256::new();
        hash.update(b"velro kid v1\0");
        hash.update(secret.expose());
        let digest = hash.finalize();
        format!("hs-{}", URL_SAFE_NO_PAD.encode(&digest[..9]))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    pub fn created_at(&self) -> OffsetDateTime {
        self.created_at
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        match self.material {
            Material::Hmac(_) => SigningAlgorithm::Hs256,
            Material::Ed25519 { .. } => SigningAlgorithm::EdDsa,
            Material::Rsa { .. } | Material::RsaPublic { .. } => SigningAlgorithm::Rs256,
            Material::EcP256 { .. } | Material::EcP256Public { .. } => SigningAlgorithm::Es256,
        }
    }

    /// The private material, for the binary to store (HS256 secret, Ed25519 or P-256 PKCS#8,
    /// RSA PKCS#1); `None` for a verify-only key.
    pub fn private_material(&self) -> Option<&Secret<Vec<u8>>> {
        match &self.material {
            Material::Hmac(secret) => Some(secret),
            Material::Ed25519 { pkcs8, .. } | Material::EcP256 { pkcs8, .. } => Some(pkcs8),
            Material::Rsa { pkcs1, .. } => Some(pkcs1),
            Material::RsaPublic { .. } | Material::EcP256Public { .. } => None,
        }
    }

    /// Whether the key can sign (it has its private part).
    pub fn can_sign(&self) -> bool {
        self.private_material().is_some()
    }

    /// The public key to publish, or `None` for a symmetric key (never published).
    pub fn public_jwk(&self) -> Option<PublicJwk> {
        match &self.material {
            Material::Hmac(_) => None,
            Material::Ed25519 { public, .. } => Some(PublicKeyParams::Okp {
                curve: "Ed25519",
                x: URL_SAFE_NO_PAD.encode(public),
            }),
            Material::Rsa { n, e, .. } | Material::RsaPublic { n, e } => {
                Some(PublicKeyParams::Rsa {
                    n: URL_SAFE_NO_PAD.encode(n),
                    e: URL_SAFE_NO_PAD.encode(e),
                })
            }
            Material::EcP256 { public, .. } | Material::EcP256Public { public } => {
                Some(PublicKeyParams::Ec {
                    curve: "P-256",
                    x: URL_SAFE_NO_PAD.encode(&public[1..33]),
                    y: URL_SAFE_NO_PAD.encode(&public[33..]),
                })
            }
        }
        .map(|params| PublicJwk {
            kid: self.kid.clone(),
            algorithm: self.algorithm(),
            params,
        })
    }

    /// `None` for a verify-only key; [`KeySet::new`] refuses one as the signer.
    pub(crate) fn encoding_key(&self) -> Option<EncodingKey> {
        match &self.material {
            Material::Hmac(secret) => Some(EncodingKey::from_secret(secret.expose())),
            Material::Ed25519 { pkcs8, .. } => Some(EncodingKey::from_ed_der(pkcs8.expose())),
            Material::Rsa { pkcs1, .. } => Some(EncodingKey::from_rsa_der(pkcs1.expose())),
            Material::EcP256 { pkcs8, .. } => Some(EncodingKey::from_ec_der(pkcs8.expose())),
            Material::RsaPublic { .. } | Material::EcP256Public { .. } => None,
        }
    }

    pub(crate) fn decoding_key(&self) -> DecodingKey {
        match &self.material {
            Material::Hmac(secret) => DecodingKey::from_secret(secret.expose()),
            Material::Ed25519 { public, .. } => DecodingKey::from_ed_der(public),
            Material::Rsa { n, e, .. } | Material::RsaPublic { n, e } => {
                DecodingKey::from_rsa_raw_components(n, e)
            }
            // jsonwebtoken reads the uncompressed point here, not a DER document.
            Material::EcP256 { public, .. } | Material::EcP256Public { public } => {
                DecodingKey::from_ec_der(public)
            }
        }
    }
}

/// An RSA key's JWK components, decoded from base64url: big-endian unsigned integers.
pub struct RsaComponents {
    pub n: Vec<u8>,
    pub e: Vec<u8>,
    pub private: Secret<RsaPrivateParts>,
}

/// The private half of an RSA JWK (`d`, `p`, `q`, `dp`, `dq`, `qi`).
pub struct RsaPrivateParts {
    pub d: Vec<u8>,
    pub p: Vec<u8>,
    pub q: Vec<u8>,
    pub dp: Vec<u8>,
    pub dq: Vec<u8>,
    pub qi: Vec<u8>,
}

fn strip_zeros(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[start..]
}

/// A DER element: tag, definite length, content.
fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = strip_zeros(&bytes);
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

/// A DER INTEGER holding an unsigned big-endian value (a leading zero keeps it positive).
fn der_unsigned(value: &[u8]) -> Vec<u8> {
    let value = strip_zeros(value);
    let mut content = Vec::with_capacity(value.len() + 1);
    if value.first().is_none_or(|b| b & 0x80 != 0) {
        content.push(0);
    }
    content.extend_from_slice(value);
    der(0x02, &content)
}

/// PKCS#8 v1 (RFC 5208) around an RFC 5915 `ECPrivateKey` on prime256v1, with its public key.
fn p256_pkcs8(d: &[u8], public: &[u8]) -> Vec<u8> {
    const EC_PUBLIC_KEY: [u8; 9] = [0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
    const PRIME256V1: [u8; 10] = [0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
    let mut bit_string = vec![0];
    bit_string.extend_from_slice(public);
    let mut ec_private = der(0x02, &[1]);
    ec_private.extend(der(0x04, d));
    ec_private.extend(der(0xa1, &der(0x03, &bit_string)));
    let mut algorithm = EC_PUBLIC_KEY.to_vec();
    algorithm.extend_from_slice(&PRIME256V1);
    let mut info = der(0x02, &[0]);
    info.extend(der(0x30, &algorithm));
    info.extend(der(0x04, &der(0x30, &ec_private)));
    der(0x30, &info)
}

fn random_kid() -> String {
    let mut bytes = [0u8; 9];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A public key as RFC 7517 describes it; the HTTP layer renders it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicJwk {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub params: PublicKeyParams,
}

/// The key-type-specific members of a public JWK, base64url without padding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKeyParams {
    /// `kty` `OKP` (RFC 8037).
    Okp { curve: &'static str, x: String },
    /// `kty` `RSA` (RFC 7518 §6.3).
    Rsa { n: String, e: String },
    /// `kty` `EC` (RFC 7518 §6.2).
    Ec {
        curve: &'static str,
        x: String,
        y: String,
    },
}

/// The keys loaded at start-up: the active signer and the keys that only verify.
#[derive(Debug, Clone)]
pub struct KeySet {
    keys: Vec<SigningKey>,
    active: usize,
    legacy: Option<usize>,
}

impl KeySet {
    /// `active` must name one of `keys`; kids must be unique. `legacy`, when given, names the
    /// key that tokens without a `kid` (issued before keys had ids) were signed with.
    pub fn new(
        keys: Vec<SigningKey>,
        active: &str,
        legacy: Option<&str>,
    ) -> Result<Self, KeyError> {
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|earlier| earlier.kid == key.kid) {
                return Err(KeyError::DuplicateKid(key.kid.clone()));
            }
        }
        let find = |kid: &str| keys.iter().position(|key| key.kid == kid);
        let active = find(active).ok_or_else(|| KeyError::UnknownKid(active.to_string()))?;
        if !keys[active].can_sign() {
            return Err(KeyError::VerifyOnly(keys[active].kid.clone()));
        }
        let legacy = match legacy {
            Some(kid) => Some(find(kid).ok_or_else(|| KeyError::UnknownKid(kid.to_string()))?),
            None => None,
        };
        Ok(Self {
            keys,
            active,
            legacy,
        })
    }

    /// One key that signs and verifies, and also verifies tokens without a `kid`: the shape of
    /// a configured `VELRO_JWT_SECRET`.
    pub fn single(key: SigningKey) -> Self {
        Self {
            keys: vec![key],
            active: 0,
            legacy: Some(0),
        }
    }

    pub fn active(&self) -> &SigningKey {
        &self.keys[self.active]
    }

    pub fn legacy(&self) -> Option<&SigningKey> {
        self.legacy.map(|i| &self.keys[i])
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.iter().find(|key| key.kid == kid)
    }
}

/// Where a key stands in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Signs new tokens (and verifies).
    Active,
    /// Signed once and verifies until pruned.
    Retired,
    /// Added, verifying only, not yet activated.
    Staged,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Staged => "staged",
        }
    }
}

/// One key of a [`KeyRing`] and when it stopped signing.
#[derive(Debug, Clone)]
pub struct RingKey {
    pub key: SigningKey,
    pub retired_at: Option<OffsetDateTime>,
}

/// The keys as rotation manages them: add (staged), activate (the old signer retires), prune
/// (retired keys no live token can need). Where the ring is stored is the binary's business.
#[derive(Debug, Clone)]
pub struct KeyRing {
    keys: Vec<RingKey>,
    active: String,
    legacy: Option<String>,
}

impl KeyRing {
    /// A ring as stored; refused unless [`KeySet::new`] accepts its keys.
    pub fn new(keys: Vec<RingKey>, active: &str, legacy: Option<&str>) -> Result<Self, KeyError> {
        let ring = Self {
            keys,
            active: active.to_string(),
            legacy: legacy.map(str::to_string),
        };
        ring.key_set()?;
        Ok(ring)
    }

    /// A ring of one key that signs; `legacy` when tokens without a `kid` were signed with it.
    pub fn first(key: SigningKey, legacy: bool) -> Self {
        let kid = key.kid().to_string();
        Self {
            keys: vec![RingKey {
                key,
                retired_at: None,
            }],
            legacy: legacy.then(|| kid.clone()),
            active: kid,
        }
    }

    /// The keys `serve` verifies and signs with.
    pub fn key_set(&self) -> Result<KeySet, KeyError> {
        let keys = self.keys.iter().map(|entry| entry.key.clone()).collect();
        KeySet::new(keys, &self.active, self.legacy.as_deref())
    }

    pub fn keys(&self) -> &[RingKey] {
        &self.keys
    }

    pub fn active(&self) -> &str {
        &self.active
    }

    pub fn legacy(&self) -> Option<&str> {
        self.legacy.as_deref()
    }

    pub fn state(&self, entry: &RingKey) -> KeyState {
        if entry.key.kid() == self.active {
            KeyState::Active
        } else if entry.retired_at.is_some() {
            KeyState::Retired
        } else {
            KeyState::Staged
        }
    }

    /// A new key that verifies but does not sign yet; returns its kid.
    pub fn add(
        &mut self,
        algorithm: SigningAlgorithm,
        now: OffsetDateTime,
    ) -> Result<String, KeyError> {
        let key = SigningKey::generate(algorithm, now)?;
        let kid = key.kid().to_string();
        self.keys.push(RingKey {
            key,
            retired_at: None,
        });
        Ok(kid)
    }

    /// Makes `kid` the signer; the previous signer retires now and keeps verifying.
    pub fn activate(&mut self, kid: &str, now: OffsetDateTime) -> Result<(), KeyError> {
        if !self.keys.iter().any(|entry| entry.key.kid() == kid) {
            return Err(KeyError::UnknownKid(kid.to_string()));
        }
        if self.active == kid {
            return Ok(());
        }
        let retired = std::mem::replace(&mut self.active, kid.to_string());
        for entry in &mut self.keys {
            if entry.key.kid() == retired {
                entry.retired_at = Some(now);
            }
            if entry.key.kid() == kid {
                entry.retired_at = None;
            }
        }
        Ok(())
    }

    /// Removes the keys retired longer ago than `token_lifetime` (the access-token lifetime plus
    /// the leeway): no token they signed can still be valid. Never the active key or staged
    /// ones. Returns the kids removed.
    pub fn prune(&mut self, now: OffsetDateTime, token_lifetime: time::Duration) -> Vec<String> {
        let cutoff = now
            .checked_sub(token_lifetime)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let pruned: Vec<String> = self
            .keys
            .iter()
            .filter(|entry| {
                entry.key.kid() != self.active
                    && entry.retired_at.is_some_and(|retired| retired < cutoff)
            })
            .map(|entry| entry.key.kid().to_string())
            .collect();
        self.keys
            .retain(|entry| !pruned.iter().any(|kid| kid == entry.key.kid()));
        if self.legacy.as_ref().is_some_and(|kid| pruned.contains(kid)) {
            self.legacy = None;
        }
        pruned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_have_distinct_kids_and_the_requested_algorithm() {
        let now = OffsetDateTime::now_utc();
        for algorithm in [SigningAlgorithm::Hs256, SigningAlgorithm::EdDsa] {
            let a = SigningKey::generate(algorithm, now).expect("generates");
            let b = SigningKey::generate(algorithm, now).expect("generates");
            assert_eq!(a.algorithm(), algorithm);
            assert_ne!(a.kid(), b.kid());
            assert_ne!(a.private_material(), b.private_material());
        }
    }

    #[test]
    fn stored_ed25519_keys_load_back_with_the_same_public_key() {
        let now = OffsetDateTime::now_utc();
        let key = SigningKey::generate(SigningAlgorithm::EdDsa, now).expect("generates");
        let again = SigningKey::ed25519(
            key.kid(),
            key.private_material().expect("private").clone(),
            now,
        )
        .expect("loads");
        assert_eq!(key.public_jwk(), again.public_jwk());
        let jwk = key.public_jwk().expect("public");
        let PublicKeyParams::Okp { x, .. } = &jwk.params else {
            panic!("an OKP key: {jwk:?}");
        };
        assert_eq!(URL_SAFE_NO_PAD.decode(x).expect("base64url").len(), 32);
        assert!(SigningKey::ed25519("k", Secret::new(vec![1; 48]), now).is_err());
    }

    /// The test keys of the API tests (published with the source, used nowhere else).
    fn fixture() -> serde_json::Value {
        serde_json::from_str(include_str!("../../../velro/tests/fixtures/test-jwks.json"))
            .expect("fixture")
    }

    fn member(jwk: &serde_json::Value, name: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect("member"))
            .expect("base64url")
    }

    fn rsa_components(jwk: &serde_json::Value) -> RsaComponents {
        RsaComponents {
            n: member(jwk, "n"),
            e: member(jwk, "e"),
            private: Secret::new(RsaPrivateParts {
                d: member(jwk, "d"),
                p: member(jwk, "p"),
                q: member(jwk, "q"),
                dp: member(jwk, "dp"),
                dq: member(jwk, "dq"),
                qi: member(jwk, "qi"),
            }),
        }
    }

    #[test]
    fn rsa_and_p256_keys_load_from_jwk_components_and_publish_them_back() {
        let now = OffsetDateTime::now_utc();
        let keys = fixture();
        let rsa = SigningKey::rsa("r", rsa_components(&keys["rsa"]), now).expect("valid RSA");
        assert_eq!(rsa.algorithm(), SigningAlgorithm::Rs256);
        let PublicKeyParams::Rsa { n, e } = rsa.public_jwk().expect("public").params else {
            panic!("an RSA key");
        };
        assert_eq!(
            (n.as_str(), e.as_str()),
            (keys["rsa"]["n"].as_str().expect("n"), "AQAB")
        );
        let ec = &keys["ec"];
        let es = SigningKey::es256(
            "e",
            Secret::new(member(ec, "d")),
            &member(ec, "x"),
            &member(ec, "y"),
            now,
        )
        .expect("valid P-256");
        assert_eq!(es.algorithm(), SigningAlgorithm::Es256);
        let PublicKeyParams::Ec { curve, x, y } = es.public_jwk().expect("public").params else {
            panic!("an EC key");
        };
        assert_eq!(curve, "P-256");
        assert_eq!(x, ec["x"].as_str().expect("x"));
        assert_eq!(y, ec["y"].as_str().expect("y"));
    }

    #[test]
    fn a_public_key_verifies_but_cannot_be_the_signer() {
        let now = OffsetDateTime::now_utc();
        let keys = fixture();
        let ec = &keys["ec"];
        let public = SigningKey::es256_public("pub", &member(ec, "x"), &member(ec, "y"), now)
            .expect("a P-256 point");
        assert!(!public.can_sign());
        assert_eq!(public.algorithm(), SigningAlgorithm::Es256);
        let private = SigningKey::es256(
            "priv",
            Secret::new(member(ec, "d")),
            &member(ec, "x"),
            &member(ec, "y"),
            now,
        )
        .expect("valid");
        assert_eq!(
            public.public_jwk().map(|jwk| jwk.params),
            private.public_jwk().map(|jwk| jwk.params)
        );
        let signer = SigningKey::generate(SigningAlgorithm::Hs256, now).expect("generates");
        let signer_kid = signer.kid().to_string();
        assert!(KeySet::new(vec![signer, public.clone()], &signer_kid, None).is_ok());
        assert!(matches!(
            KeySet::new(vec![public], "pub", None),
            Err(KeyError::VerifyOnly(kid)) if kid == "pub"
        ));
        let rsa = &keys["rsa"];
        let rsa_public =
            SigningKey::rsa_public("r", &member(rsa, "n"), &member(rsa, "e"), now).expect("valid");
        assert!(!rsa_public.can_sign());
        assert!(
            SigningKey::rsa_public("r", &member(rsa, "n")[..128], &member(rsa, "e"), now).is_err()
        );
        assert!(SigningKey::rsa_public("r", &member(rsa, "n"), &[1], now).is_err());
    }

    #[test]
    fn mismatched_or_truncated_asymmetric_keys_are_refused() {
        let now = OffsetDateTime::now_utc();
        let keys = fixture();
        let rsa = &keys["rsa"];
        let mut wrong_d = rsa_components(rsa);
        wrong_d.private = Secret::new(RsaPrivateParts {
            d: member(rsa, "p"),
            p: member(rsa, "p"),
            q: member(rsa, "q"),
            dp: member(rsa, "dp"),
            dq: member(rsa, "dq"),
            qi: member(rsa, "qi"),
        });
        assert!(matches!(
            SigningKey::rsa("r", wrong_d, now),
            Err(KeyError::Malformed)
        ));
        let mut short = rsa_components(&keys["rsa"]);
        short.n.truncate(64);
        assert!(SigningKey::rsa("r", short, now).is_err());
        let ec = &keys["ec"];
        let (d, x, y) = (member(ec, "d"), member(ec, "x"), member(ec, "y"));
        assert!(SigningKey::es256("e", Secret::new(d.clone()), &y, &x, now).is_err());
        assert!(SigningKey::es256("e", Secret::new(d[1..].to_vec()), &x, &y, now).is_err());
        let mut other = d.clone();
        other[31] ^= 1;
        assert!(SigningKey::es256("e", Secret::new(other), &x, &y, now).is_err());
        assert!(SigningKey::generate(SigningAlgorithm::Rs256, now).is_err());
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(der_unsigned(&[0]), [0x02, 0x01, 0x00]);
        assert_eq!(der_unsigned(&[0, 0, 0x7f]), [0x02, 0x01, 0x7f]);
        assert_eq!(der_unsigned(&[0x80]), [0x02, 0x02, 0x00, 0x80]);
        let long = der(0x04, &[1; 300]);
        assert_eq!(&long[..4], &[0x04, 0x82, 0x01, 0x2c]);
    }

    #[test]
    fn symmetric_keys_are_never_published() {
        let key = SigningKey::generate(SigningAlgorithm::Hs256, OffsetDateTime::now_utc())
            .expect("generates");
        assert!(key.public_jwk().is_none());
    }

    #[test]
    fn derived_kids_are_stable_and_reveal_nothing_of_the_secret() {
        let secret = Secret::new(b"a-configured-secret-0123456789abcdef".to_vec());
        let kid = SigningKey::derived_kid(&secret);
        assert_eq!(kid, SigningKey::derived_kid(&secret));
        assert_ne!(kid, SigningKey::derived_kid(&Secret::new(vec![1; 32])));
        assert!(!kid.contains("configured"));
        assert!(SigningKey::hs256(kid, secret, OffsetDateTime::now_utc()).is_ok());
    }

    #[test]
    fn key_sets_refuse_duplicate_and_unknown_kids_and_bad_keys() {
        let now = OffsetDateTime::now_utc();
        let a = SigningKey::hs256("a", Secret::new(vec![1; 32]), now).expect("valid");
        let also_a = SigningKey::hs256("a", Secret::new(vec![2; 32]), now).expect("valid");
        assert!(matches!(
            KeySet::new(vec![a.clone(), also_a], "a", None),
            Err(KeyError::DuplicateKid(_))
        ));
        assert!(matches!(
            KeySet::new(vec![a.clone()], "b", None),
            Err(KeyError::UnknownKid(_))
        ));
        assert!(matches!(
            KeySet::new(vec![a], "a", Some("b")),
            Err(KeyError::UnknownKid(_))
        ));
        assert!(matches!(
            SigningKey::hs256("a", Secret::new(vec![1; 31]), now),
            Err(KeyError::TooShort)
        ));
        for kid in ["", "has space", "quote\"", &"k".repeat(65)] {
            assert!(matches!(
                SigningKey::hs256(kid, Secret::new(vec![1; 32]), now),
                Err(KeyError::BadKid)
            ));
        }
    }

    #[test]
    fn algorithm_names_parse_as_configured() {
        assert_eq!(
            SigningAlgorithm::parse("HS256"),
            Some(SigningAlgorithm::Hs256)
        );
        assert_eq!(
            SigningAlgorithm::parse("EdDSA"),
            Some(SigningAlgorithm::EdDsa)
        );
        assert_eq!(SigningAlgorithm::parse("none"), None);
        assert_eq!(SigningAlgorithm::parse("RS256"), None);
    }

    fn ring() -> (KeyRing, OffsetDateTime) {
        let start = OffsetDateTime::now_utc() - time::Duration::days(1);
        let first = SigningKey::generate(SigningAlgorithm::Hs256, start).expect("generates");
        (KeyRing::first(first, true), start)
    }

    #[test]
    fn an_added_key_is_staged_until_activated_and_the_old_signer_then_retires() {
        let (mut ring, start) = ring();
        let first = ring.active().to_string();
        let staged = ring.add(SigningAlgorithm::EdDsa, start).expect("adds");
        assert_eq!(ring.active(), first);
        let states: Vec<KeyState> = ring.keys().iter().map(|e| ring.state(e)).collect();
        assert_eq!(states, [KeyState::Active, KeyState::Staged]);
        let later = start + time::Duration::minutes(5);
        ring.activate(&staged, later).expect("activates");
        assert_eq!(ring.active(), staged);
        assert_eq!(ring.keys()[0].retired_at, Some(later));
        let states: Vec<KeyState> = ring.keys().iter().map(|e| ring.state(e)).collect();
        assert_eq!(states, [KeyState::Retired, KeyState::Active]);
        assert_eq!(ring.key_set().expect("loads").active().kid(), staged);
        assert_eq!(
            ring.legacy(),
            Some(first.as_str()),
            "old tokens without a kid still verify"
        );
        assert!(matches!(
            ring.activate("nope", later),
            Err(KeyError::UnknownKid(_))
        ));
        ring.activate(&staged, later + time::Duration::hours(1))
            .expect("already active");
        assert_eq!(
            ring.keys()[0].retired_at,
            Some(later),
            "a no-op changes nothing"
        );
    }

    #[test]
    fn prune_removes_only_keys_retired_longer_ago_than_a_token_lives() {
        let (mut ring, start) = ring();
        let first = ring.active().to_string();
        let staged = ring.add(SigningAlgorithm::Hs256, start).expect("adds");
        let next = ring.add(SigningAlgorithm::Hs256, start).expect("adds");
        ring.activate(&next, start).expect("activates");
        let lifetime = time::Duration::hours(1);
        assert!(
            ring.prune(start + lifetime, lifetime).is_empty(),
            "retired just a lifetime ago"
        );
        let pruned = ring.prune(start + lifetime + time::Duration::seconds(1), lifetime);
        assert_eq!(pruned, [first]);
        let kids: Vec<&str> = ring.keys().iter().map(|e| e.key.kid()).collect();
        assert_eq!(
            kids,
            [staged.as_str(), next.as_str()],
            "staged and active keys stay"
        );
        assert_eq!(ring.legacy(), None, "the legacy key went with it");
        assert!(ring.key_set().is_ok());
    }

    #[test]
    fn a_stored_ring_must_name_its_keys() {
        let (ring, _) = ring();
        let keys = ring.keys().to_vec();
        assert!(KeyRing::new(keys.clone(), "other", None).is_err());
        assert!(KeyRing::new(keys.clone(), ring.active(), Some("other")).is_err());
        assert!(KeyRing::new(keys, ring.active(), None).is_ok());
    }
}
