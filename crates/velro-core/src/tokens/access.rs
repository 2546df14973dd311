//! Access tokens: JWTs signed by the key set's active key, carrying its `kid`, and verified
//! against the key the `kid` names, under that key's own algorithm only. Every refusal is
//! `token_invalid` except a passed `exp`, which is `token_expired`.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::domain::{SessionId, User, UserId};
use crate::{AuthError, Secret};

use super::keys::{KeySet, PublicJwk, SigningAlgorithm};
use super::KeyError;

/// The `aud` claim of every access token, as the contract fixes it.
pub const AUDIENCE: &str = "authenticated";

/// Everything needed to issue and check access tokens.
#[derive(Debug, Clone)]
pub struct AccessTokenConfig {
    /// The active key signs; every key verifies the tokens of its own algorithm.
    pub keys: KeySet,
    pub issuer: String,
    pub lifetime: Duration,
    /// Tolerance for clock differences between instances when checking `exp` and `nbf`.
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
    /// Not issued by Velro, but honoured when a token carries it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
}

#[derive(Debug)]
pub struct IssuedAccessToken {
    pub token: Secret<String>,
    pub issued_at: i64,
    pub expires_at: i64,
}

/// Who an access token speaks for, once its signature and expiry have been checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerifiedAccess {
    pub user_id: UserId,
    pub session_id: SessionId,
}

pub struct AccessTokens {
    algorithm: SigningAlgorithm,
    signing_kid: String,
    /// `None` only if the active key were verify-only, which `KeySet::new` refuses.
    encoding: Option<EncodingKey>,
    /// By `kid`, each with its key's algorithm: a key never verifies under another algorithm.
    verifying: HashMap<String, (Algorithm, DecodingKey)>,
    /// For tokens without a `kid` (issued before keys had ids, and Supabase's API keys).
    legacy: Option<(Algorithm, DecodingKey)>,
    /// One per algorithm of our keys: jsonwebtoken wants a validation's algorithms all of the
    /// key's family, so each token is checked under exactly its key's algorithm.
    validations: Vec<(Algorithm, Validation)>,
    public_keys: Vec<PublicJwk>,
    issuer: String,
    lifetime: Duration,
    leeway: Duration,
}

impl std::fmt::Debug for AccessTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessTokens")
            .field("algorithm", &self.algorithm)
            .field("signing_kid", &self.signing_kid)
            .field("verifying", &self.verifying.keys().collect::<Vec<_>>())
            .field("issuer", &self.issuer)
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl AccessTokens {
    pub fn new(config: &AccessTokenConfig) -> Self {
        let active = config.keys.active();
        let algorithm = active.algorithm();
        let keys = config.keys.keys();
        let verifying = keys
            .iter()
            .map(|key| {
                let entry = (key.algorithm().jwt(), key.decoding_key());
                (key.kid().to_string(), entry)
            })
            .collect();
        let legacy = config
            .keys
            .legacy()
            .map(|key| (key.algorithm().jwt(), key.decoding_key()));
        let public_keys = keys.iter().filter_map(|key| key.public_jwk()).collect();
        // Only the algorithms of our keys, and `key_for` further pins each token to the algorithm
        // of the key its `kid` names: `alg: none`, HS512, HS256 keyed with a public key, or an
        // EdDSA token shown to an HS256 key (and the reverse) are all refused.
        let mut validations: Vec<(Algorithm, Validation)> = Vec::new();
        for key in keys {
            let algorithm = key.algorithm().jwt();
            if validations.iter().any(|(known, _)| *known == algorithm) {
                continue;
            }
            let mut validation = base_validation(algorithm);
            validation.set_audience(&[AUDIENCE]);
            validation.set_issuer(&[config.issuer.as_str()]);
            validation.set_required_spec_claims(&["exp", "iat", "sub", "aud", "iss"]);
            validations.push((algorithm, validation));
        }
        Self {
            algorithm,
            signing_kid: active.kid().to_string(),
            encoding: active.encoding_key(),
            verifying,
            legacy,
            validations,
            public_keys,
            issuer: config.issuer.clone(),
            lifetime: config.lifetime,
            leeway: config.leeway,
        }
    }

    pub fn algorithm(&self) -> SigningAlgorithm {
        self.algorithm
    }

    /// The `kid` new tokens carry.
    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    /// The public keys that verify tokens (for `/.well-known/jwks.json`); never an HS256 key,
    /// which is secret.
    pub fn public_keys(&self) -> &[PublicJwk] {
        &self.public_keys
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
            nbf: None,
        };
        Ok(IssuedAccessToken {
            token: self.sign(&claims)?,
            issued_at,
            expires_at,
        })
    }

    /// Signs any claims with the active key, naming its `kid`: one signer for every kind of
    /// token (the Supabase-compatible ones included).
    pub(super) fn sign<T: Serialize>(&self, claims: &T) -> Result<Secret<String>, AuthError> {
        let mut header = Header::new(self.algorithm.jwt());
        header.kid = Some(self.signing_kid.clone());
        let key = self
            .encoding
            .as_ref()
            .ok_or_else(|| AuthError::internal(KeyError::VerifyOnly(self.signing_kid.clone())))?;
        jsonwebtoken::encode(&header, claims, key)
            .map(Secret::new)
            .map_err(AuthError::internal)
    }

    /// The key that may check `token`, named by its `kid` (or the legacy key when it has none),
    /// and only when the token's `alg` is that key's algorithm.
    pub(super) fn key_for(&self, token: &str) -> Result<(Algorithm, &DecodingKey), AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::TokenInvalid)?;
        let (algorithm, key) = match header.kid.as_deref() {
            Some(kid) => self.verifying.get(kid),
            None => self.legacy.as_ref(),
        }
        .ok_or(AuthError::TokenInvalid)?;
        if header.alg != *algorithm {
            return Err(AuthError::TokenInvalid);
        }
        Ok((*algorithm, key))
    }

    pub(super) fn leeway(&self) -> Duration {
        self.leeway
    }

    pub(super) fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Checks algorithm, key, signature, audience, issuer, `nbf` and expiry. The session is
    /// checked by the caller.
    pub fn verify(&self, token: &str, now: OffsetDateTime) -> Result<VerifiedAccess, AuthError> {
        let (algorithm, key) = self.key_for(token)?;
        let validation = self
            .validations
            .iter()
            .find_map(|(known, validation)| (*known == algorithm).then_some(validation))
            .ok_or(AuthError::TokenInvalid)?;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, key, validation)
            .map_err(|_| AuthError::TokenInvalid)?
            .claims;
        let now = now.unix_timestamp();
        let leeway = self.leeway.whole_seconds();
        if claims.nbf.is_some_and(|nbf| nbf > now + leeway) {
            return Err(AuthError::TokenInvalid);
        }
        // Saturating: a signed `exp` near i64::MAX must not overflow (a panic with overflow
        // checks, a wrap to "expired" without).
        if claims.exp.saturating_add(leeway) <= now {
            return Err(AuthError::TokenExpired);
        }
        Ok(VerifiedAccess {
            user_id: UserId(claims.sub),
            session_id: SessionId(claims.sid),
        })
    }
}

/// A validation for tokens of `algorithm` only, with the time checks left to the caller (they
/// use the service's clock, not the library's).
pub(super) fn base_validation(algorithm: Algorithm) -> Validation {
    let mut validation = Validation::new(algorithm);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::Algorithm;
    use serde_json::{json, Value};

    use super::*;
    use crate::domain::{Email, Role};
    use crate::tokens::{PublicKeyParams, SigningKey};
    use crate::{Clock, SystemClock};

    const SECRET: [u8; 32] = [7; 32];

    fn hs256(kid: &str, secret: &[u8]) -> SigningKey {
        SigningKey::hs256(kid, Secret::new(secret.to_vec()), SystemClock.now()).expect("valid key")
    }

    fn eddsa() -> SigningKey {
        SigningKey::generate(SigningAlgorithm::EdDsa, SystemClock.now()).expect("generates")
    }

    fn with_keys(keys: KeySet, leeway: i64) -> AccessTokens {
        AccessTokens::new(&AccessTokenConfig {
            keys,
            issuer: "velro".into(),
            lifetime: Duration::seconds(3600),
            leeway: Duration::seconds(leeway),
        })
    }

    fn single(key: SigningKey) -> AccessTokens {
        with_keys(KeySet::single(key), 0)
    }

    fn ours() -> AccessTokens {
        single(hs256("ours", &SECRET))
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
            user_metadata: None,
            app_metadata: None,
            banned_until: None,
            deleted_at: None,
        }
    }

    fn issue(tokens: &AccessTokens, now: OffsetDateTime) -> String {
        let issued = tokens
            .issue(&user(), SessionId(Uuid::new_v4()), now)
            .expect("issues");
        issued.token.expose().clone()
    }

    fn part(token: &str, index: usize) -> Value {
        let part = token.split('.').nth(index).expect("three parts");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    }

    /// A token with this header and these claims, signed with `key` under the header's `alg`.
    fn signed(header: &Value, claims: &Value, key: &EncodingKey) -> String {
        let header: Header = serde_json::from_value(header.clone()).expect("header");
        jsonwebtoken::encode(&header, claims, key).expect("encodes")
    }

    fn claims_at(now: OffsetDateTime) -> Value {
        let now = now.unix_timestamp();
        json!({"iss": "velro", "aud": AUDIENCE, "sub": Uuid::new_v4(), "email": "ada@example.com",
               "role": "viewer", "sid": Uuid::new_v4(), "iat": now, "exp": now + 3600})
    }

    fn assert_invalid(tokens: &AccessTokens, token: &str, now: OffsetDateTime, what: &str) {
        assert!(
            matches!(tokens.verify(token, now), Err(AuthError::TokenInvalid)),
            "{what}: {:?}",
            tokens.verify(token, now)
        );
    }

    #[test]
    fn issued_tokens_carry_the_kid_and_verify_until_they_expire() {
        let tokens = ours();
        let now = SystemClock.now();
        let session = SessionId(Uuid::new_v4());
        let issued = tokens.issue(&user(), session, now).expect("issues");
        assert_eq!(issued.expires_at - issued.issued_at, 3600);
        let header = part(issued.token.expose(), 0);
        assert_eq!(header["kid"], "ours");
        assert_eq!(header["alg"], "HS256");
        assert!(part(issued.token.expose(), 1).get("nbf").is_none());
        let verified = tokens.verify(issued.token.expose(), now).expect("verifies");
        assert_eq!(verified.session_id, session);
        let later = now + Duration::seconds(3600);
        assert!(matches!(
            tokens.verify(issued.token.expose(), later),
            Err(AuthError::TokenExpired)
        ));
    }

    #[test]
    fn the_leeway_extends_expiry_and_not_before_by_its_seconds_only() {
        let tokens = with_keys(KeySet::single(hs256("ours", &SECRET)), 5);
        let now = SystemClock.now();
        let token = issue(&tokens, now);
        assert!(tokens.verify(&token, now + Duration::seconds(3604)).is_ok());
        assert!(matches!(
            tokens.verify(&token, now + Duration::seconds(3605)),
            Err(AuthError::TokenExpired)
        ));
        let key = EncodingKey::from_secret(&SECRET);
        let header = json!({"alg": "HS256", "typ": "JWT", "kid": "ours"});
        let mut claims = claims_at(now);
        claims["nbf"] = json!(now.unix_timestamp() + 5);
        assert!(tokens.verify(&signed(&header, &claims, &key), now).is_ok());
        claims["nbf"] = json!(now.unix_timestamp() + 6);
        assert_invalid(
            &tokens,
            &signed(&header, &claims, &key),
            now,
            "nbf beyond the leeway",
        );
    }

    #[test]
    fn an_exp_at_the_end_of_time_verifies_without_overflowing() {
        let tokens = with_keys(KeySet::single(hs256("ours", &SECRET)), 5);
        let now = SystemClock.now();
        let mut claims = claims_at(now);
        claims["exp"] = json!(i64::MAX);
        let header = json!({"alg": "HS256", "kid": "ours"});
        let token = signed(&header, &claims, &EncodingKey::from_secret(&SECRET));
        assert!(tokens.verify(&token, now).is_ok());
    }

    #[test]
    fn a_token_not_yet_valid_is_refused_until_its_nbf() {
        let tokens = ours();
        let now = SystemClock.now();
        let mut claims = claims_at(now);
        claims["nbf"] = json!(now.unix_timestamp() + 60);
        let token = signed(
            &json!({"alg": "HS256", "kid": "ours"}),
            &claims,
            &EncodingKey::from_secret(&SECRET),
        );
        assert_invalid(&tokens, &token, now, "nbf in the future");
        assert!(tokens.verify(&token, now + Duration::seconds(60)).is_ok());
    }

    #[test]
    fn forged_and_confused_tokens_are_token_invalid() {
        let tokens = ours();
        let now = SystemClock.now();
        let claims = claims_at(now);
        let good = EncodingKey::from_secret(&SECRET);
        let payload = issue(&tokens, now)
            .split('.')
            .nth(1)
            .expect("three parts")
            .to_string();
        let unsigned = |alg: &str| {
            format!(
                "{}.{payload}.",
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}","typ":"JWT","kid":"ours"}}"#))
            )
        };
        let mut wrong_aud = claims.clone();
        wrong_aud["aud"] = json!("anonymous");
        let mut wrong_iss = claims.clone();
        wrong_iss["iss"] = json!("someone-else");
        let mut no_exp = claims.clone();
        no_exp.as_object_mut().expect("object").remove("exp");
        let header = json!({"alg": "HS256", "kid": "ours"});
        let ed = eddsa();
        let cases = [
            ("alg none", unsigned("none")),
            ("alg None", unsigned("None")),
            (
                "alg none, no kid",
                format!("{}.{payload}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#)),
            ),
            (
                "HS512 with our secret",
                signed(&json!({"alg": "HS512", "kid": "ours"}), &claims, &good),
            ),
            (
                "HS384 with our secret",
                signed(&json!({"alg": "HS384", "kid": "ours"}), &claims, &good),
            ),
            ("RS256 header over an HMAC signature", {
                let token = signed(&header, &claims, &good);
                let (_, rest) = token.split_once('.').expect("parts");
                format!(
                    "{}.{rest}",
                    URL_SAFE_NO_PAD.encode(r#"{"alg":"RS256","kid":"ours"}"#)
                )
            }),
            (
                "EdDSA token to an HS256 verifier",
                signed(
                    &json!({"alg": "EdDSA", "kid": "ours"}),
                    &claims,
                    &ed.encoding_key().expect("signs"),
                ),
            ),
            (
                "another secret",
                signed(&header, &claims, &EncodingKey::from_secret(&[8; 32])),
            ),
            (
                "unknown kid",
                signed(&json!({"alg": "HS256", "kid": "theirs"}), &claims, &good),
            ),
            ("wrong aud", signed(&header, &wrong_aud, &good)),
            ("wrong iss", signed(&header, &wrong_iss, &good)),
            ("no exp", signed(&header, &no_exp, &good)),
            ("garbage", "garbage".into()),
            ("empty", String::new()),
            ("two parts", "a.b".into()),
        ];
        for (what, token) in cases {
            assert_invalid(&tokens, &token, now, what);
        }
        assert!(tokens.verify(&signed(&header, &claims, &good), now).is_ok());
    }

    #[test]
    fn an_eddsa_verifier_refuses_hs256_tokens_even_keyed_with_its_public_key() {
        let key = eddsa();
        let kid = key.kid().to_string();
        let PublicKeyParams::Okp { x, .. } = key.public_jwk().expect("public").params else {
            panic!("an OKP key");
        };
        let public = URL_SAFE_NO_PAD.decode(x).expect("base64url");
        let tokens = single(key);
        let now = SystemClock.now();
        let token = issue(&tokens, now);
        assert_eq!(part(&token, 0)["alg"], "EdDSA");
        assert!(tokens.verify(&token, now).is_ok());
        let claims = claims_at(now);
        let confused = signed(
            &json!({"alg": "HS256", "kid": kid}),
            &claims,
            &EncodingKey::from_secret(&public),
        );
        assert_invalid(&tokens, &confused, now, "HS256 keyed with the public key");
        let other = eddsa();
        let forged = signed(
            &json!({"alg": "EdDSA", "kid": kid}),
            &claims,
            &other.encoding_key().expect("signs"),
        );
        assert_invalid(&tokens, &forged, now, "another Ed25519 key under our kid");
        assert_invalid(&tokens, &issue(&ours(), now), now, "an HS256 token");
    }

    #[test]
    fn tokens_without_a_kid_verify_only_against_the_legacy_key() {
        let now = SystemClock.now();
        let claims = claims_at(now);
        let no_kid = signed(
            &json!({"alg": "HS256"}),
            &claims,
            &EncodingKey::from_secret(&SECRET),
        );
        let legacy = KeySet::new(
            vec![hs256("old", &SECRET), hs256("new", &[9; 32])],
            "new",
            Some("old"),
        )
        .expect("valid set");
        assert!(with_keys(legacy, 0).verify(&no_kid, now).is_ok());
        let without_legacy = KeySet::new(
            vec![hs256("old", &SECRET), hs256("new", &[9; 32])],
            "new",
            None,
        )
        .expect("valid set");
        assert_invalid(&with_keys(without_legacy, 0), &no_kid, now, "no legacy key");
    }

    #[test]
    fn after_a_rotation_old_tokens_stay_valid_and_new_ones_use_the_new_key() {
        let now = SystemClock.now();
        let before = with_keys(
            KeySet::new(vec![hs256("one", &SECRET)], "one", None).expect("valid set"),
            0,
        );
        let old_token = issue(&before, now);
        let rotated = with_keys(
            KeySet::new(
                vec![hs256("one", &SECRET), hs256("two", &[9; 32])],
                "two",
                None,
            )
            .expect("valid set"),
            0,
        );
        let new_token = issue(&rotated, now);
        assert_eq!(part(&new_token, 0)["kid"], "two");
        assert!(rotated.verify(&old_token, now).is_ok());
        assert!(rotated.verify(&new_token, now).is_ok());
        assert_invalid(&before, &new_token, now, "an instance without the new key");
        let pruned = with_keys(
            KeySet::new(vec![hs256("two", &[9; 32])], "two", None).expect("valid set"),
            0,
        );
        assert_invalid(&pruned, &old_token, now, "a pruned key");
    }

    #[test]
    fn each_key_verifies_only_under_its_own_algorithm_and_only_asymmetric_keys_are_published() {
        let now = SystemClock.now();
        let ed_old = eddsa();
        let ed_new = eddsa();
        let hs = hs256("hs", &SECRET);
        let hs_token = issue(&single(hs.clone()), now);
        let old_token = issue(&single(ed_old.clone()), now);
        let set = KeySet::new(
            vec![hs, ed_old.clone(), ed_new.clone()],
            ed_new.kid(),
            Some("hs"),
        )
        .expect("valid set");
        let tokens = with_keys(set, 0);
        assert_eq!(tokens.algorithm(), SigningAlgorithm::EdDsa);
        assert!(tokens.verify(&old_token, now).is_ok());
        assert!(
            tokens.verify(&hs_token, now).is_ok(),
            "an HS256 key of the set verifies its own tokens"
        );
        // The HS256 key's kid on an EdDSA token, and an EdDSA key's kid on an HS256 token.
        let claims = claims_at(now);
        let swapped = signed(
            &json!({"alg": "HS256", "typ": "JWT", "kid": ed_old.kid()}),
            &claims,
            &EncodingKey::from_secret(&SECRET),
        );
        assert_invalid(&tokens, &swapped, now, "HS256 under an EdDSA kid");
        let no_kid = signed(
            &json!({"alg": "HS256", "typ": "JWT"}),
            &claims,
            &EncodingKey::from_secret(&SECRET),
        );
        assert!(
            tokens.verify(&no_kid, now).is_ok(),
            "no kid: the legacy HS256 key, whatever key signs"
        );
        let kids: Vec<&str> = tokens
            .public_keys()
            .iter()
            .map(|k| k.kid.as_str())
            .collect();
        assert_eq!(kids, [ed_old.kid(), ed_new.kid()]);
        assert!(tokens.public_keys().iter().all(|k| matches!(
            k.params,
            PublicKeyParams::Okp {
                curve: "Ed25519",
                ..
            }
        )));
        assert!(ours().public_keys().is_empty());
    }

    #[test]
    fn a_library_verifier_accepts_our_eddsa_tokens_through_the_published_jwk() {
        let key = eddsa();
        let tokens = single(key);
        let now = SystemClock.now();
        let token = issue(&tokens, now);
        let jwk = &tokens.public_keys()[0];
        let PublicKeyParams::Okp { x, .. } = &jwk.params else {
            panic!("an OKP key: {jwk:?}");
        };
        let decoding = DecodingKey::from_ed_components(x).expect("jwk x");
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_audience(&[AUDIENCE]);
        let data =
            jsonwebtoken::decode::<AccessClaims>(&token, &decoding, &validation).expect("verifies");
        assert_eq!(data.header.kid.as_deref(), Some(jwk.kid.as_str()));
    }
}
