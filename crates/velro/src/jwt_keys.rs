//! `VELRO_JWT_KEYS`: a Supabase project's keys as GoTrue's `JWT_KEYS` takes them (a JSON array
//! of JWKs: private ones, and RSA or EC public ones that only verify), turned into the key set both surfaces sign and verify with. Errors name a
//! key by its position and `kid`, never by any of its material.

use anyhow::bail;
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::Deserialize;
use time::OffsetDateTime;
use velro_core::tokens::{KeySet, RsaComponents, RsaPrivateParts, SigningAlgorithm, SigningKey};
use velro_core::Secret;

use crate::keys::SigningKeys;

/// One JWK as configured. No `Debug`: it holds private material.
#[derive(Deserialize)]
struct Jwk {
    kty: Option<String>,
    kid: Option<String>,
    alg: Option<String>,
    crv: Option<String>,
    #[serde(default)]
    key_ops: Vec<String>,
    k: Option<String>,
    n: Option<String>,
    e: Option<String>,
    d: Option<String>,
    p: Option<String>,
    q: Option<String>,
    dp: Option<String>,
    dq: Option<String>,
    qi: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// The key set of `VELRO_JWT_KEYS`: the one key whose `key_ops` has `sign` signs (GoTrue refuses
/// none and several alike), every key verifies by its `kid`. Tokens without a `kid` (Supabase's
/// anon and service_role keys) verify with `secret` (`VELRO_JWT_SECRET`) when it is set, else
/// with the signing key if it is symmetric, else with the first symmetric key.
pub fn key_set(
    text: &Secret<String>,
    secret: Option<&Secret<String>>,
    now: OffsetDateTime,
) -> anyhow::Result<SigningKeys> {
    let values: Vec<serde_json::Value> = serde_json::from_str(text.expose()).map_err(|error| {
        // The parser's message may quote the text; only its position is safe to repeat.
        anyhow::anyhow!(
            "invalid configuration: VELRO_JWT_KEYS is not a JSON array of JWKs (line {}, column {})",
            error.line(),
            error.column()
        )
    })?;
    if values.is_empty() {
        bail!("invalid configuration: VELRO_JWT_KEYS is an empty array");
    }
    let mut keys = Vec::with_capacity(values.len() + 1);
    let mut signers = Vec::new();
    for (index, value) in values.into_iter().enumerate() {
        let jwk: Jwk = serde_json::from_value(value).map_err(|_| {
            anyhow::anyhow!(
                "invalid configuration: VELRO_JWT_KEYS: key {index} is not a JWK object of string members"
            )
        })?;
        let signs = jwk.key_ops.iter().any(|op| op == "sign");
        let key = parse(&jwk, index, now)?;
        if signs && !key.can_sign() {
            bail!(
                "invalid configuration: VELRO_JWT_KEYS: key {index} (kid {:?}) has \"sign\" in its key_ops but no private part",
                key.kid()
            );
        }
        if signs {
            signers.push(key.kid().to_string());
        }
        keys.push(key);
    }
    let active = match signers.as_slice() {
        [one] => one.clone(),
        [] => bail!("invalid configuration: VELRO_JWT_KEYS: no key has \"sign\" in its key_ops; exactly one must"),
        several => bail!(
            "invalid configuration: VELRO_JWT_KEYS: the keys {} all have \"sign\" in their key_ops; exactly one may",
            several.join(", ")
        ),
    };
    let symmetric = |key: &&SigningKey| key.algorithm() == SigningAlgorithm::Hs256;
    let (legacy, successor) = match secret {
        Some(secret) => {
            let bytes = Secret::new(secret.expose().as_bytes().to_vec());
            let same = keys
                .iter()
                .filter(symmetric)
                .find(|key| key.private_material() == Some(&bytes));
            let kid = match same {
                Some(key) => key.kid().to_string(),
                None => {
                    let key =
                        SigningKey::hs256(SigningKey::derived_kid(&bytes), bytes.clone(), now)
                            .map_err(|why| {
                                anyhow::anyhow!("invalid configuration: VELRO_JWT_SECRET {why}")
                            })?;
                    let kid = key.kid().to_string();
                    keys.push(key);
                    kid
                }
            };
            (Some(kid), bytes)
        }
        None => {
            let signer = keys.iter().find(|key| key.kid() == active);
            let legacy = signer
                .filter(symmetric)
                .or_else(|| keys.iter().find(symmetric))
                .map(|key| key.kid().to_string());
            // Refresh-token successors need a secret every instance shares and that outlives
            // the signer; the first symmetric key, else the signer's own material.
            let successor = keys
                .iter()
                .find(symmetric)
                .or(signer)
                .and_then(|key| key.private_material().cloned())
                .unwrap_or_else(|| Secret::new(Vec::new()));
            (legacy, successor)
        }
    };
    let keys = KeySet::new(keys, &active, legacy.as_deref())
        .map_err(|why| anyhow::anyhow!("invalid configuration: VELRO_JWT_KEYS {why}"))?;
    Ok(SigningKeys {
        keys,
        successor_secret: successor,
    })
}

fn parse(jwk: &Jwk, index: usize, now: OffsetDateTime) -> anyhow::Result<SigningKey> {
    let kid = jwk.kid.as_deref().unwrap_or_default();
    let name = if kid.is_empty() {
        format!("key {index}")
    } else {
        format!("key {index} (kid {kid:?})")
    };
    let fail = |why: &str| anyhow::anyhow!("invalid configuration: VELRO_JWT_KEYS: {name} {why}");
    if kid.is_empty() {
        return Err(fail("has no kid"));
    }
    let member = |value: &Option<String>, field: &str| -> anyhow::Result<Vec<u8>> {
        let text = value
            .as_deref()
            .ok_or_else(|| fail(&format!("lacks \"{field}\"")))?;
        decode(text).ok_or_else(|| fail(&format!("has a \"{field}\" that is not base64url")))
    };
    let key_error = |why: velro_core::tokens::KeyError| fail(&why.to_string());
    let kty = jwk.kty.as_deref().unwrap_or_default();
    let alg = jwk.alg.as_deref();
    match (kty, alg) {
        ("oct", None | Some("HS256")) => {
            let secret = Secret::new(member(&jwk.k, "k")?);
            SigningKey::hs256(kid, secret, now).map_err(key_error)
        }
        ("RSA", None | Some("RS256")) if jwk.d.is_none() => {
            let (n, e) = (member(&jwk.n, "n")?, member(&jwk.e, "e")?);
            SigningKey::rsa_public(kid, &n, &e, now).map_err(|_| {
                fail("is not a valid RSA public key (n of 2048 to 8192 bits, e odd and at least 3)")
            })
        }
        ("RSA", None | Some("RS256")) => {
            let private = RsaPrivateParts {
                d: member(&jwk.d, "d")?,
                p: member(&jwk.p, "p")?,
                q: member(&jwk.q, "q")?,
                dp: member(&jwk.dp, "dp")?,
                dq: member(&jwk.dq, "dq")?,
                qi: member(&jwk.qi, "qi")?,
            };
            let components = RsaComponents {
                n: member(&jwk.n, "n")?,
                e: member(&jwk.e, "e")?,
                private: Secret::new(private),
            };
            SigningKey::rsa(kid, components, now).map_err(|_| {
                fail("is not a valid RSA private key of at least 2048 bits (n, e, d, p, q, dp, dq, qi must match)")
            })
        }
        ("EC", None | Some("ES256")) => {
            if jwk.crv.as_deref() != Some("P-256") {
                return Err(fail("must have crv \"P-256\" (ES256 is the only EC algorithm the Supabase clients accept)"));
            }
            let x = member(&jwk.x, "x")?;
            let y = member(&jwk.y, "y")?;
            if jwk.d.is_none() {
                return SigningKey::es256_public(kid, &x, &y, now)
                    .map_err(|_| fail("is not a valid P-256 public key (x, y must be a point of the curve)"));
            }
            let d = Secret::new(member(&jwk.d, "d")?);
            SigningKey::es256(kid, d, &x, &y, now).map_err(|_| {
                fail("is not a valid P-256 private key (d must be the private scalar of x, y)")
            })
        }
        ("oct" | "RSA" | "EC", Some(other)) => Err(fail(&format!(
            "has alg {other:?}: oct keys take HS256, RSA keys RS256, EC keys ES256 (the algorithms the Supabase clients accept)"
        ))),
        _ => Err(fail(
            "has a kty other than \"oct\", \"RSA\" or \"EC\" (OKP/EdDSA keys are not accepted here: the Supabase clients refuse EdDSA tokens)",
        )),
    }
}

/// base64url with or without padding, as JWK producers write it.
fn decode(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(text)
        .or_else(|_| URL_SAFE.decode(text))
        .ok()
        .filter(|bytes| !bytes.is_empty())
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};
    use time::Duration;
    use velro_core::tokens::{
        AccessTokenConfig, AccessTokens, PublicKeyParams, SupabaseTokenProfile,
    };

    use super::*;

    const FIXTURE: &str = include_str!("../tests/fixtures/test-jwks.json");
    const SECRET: &str = "a-supabase-project-jwt-secret-of-32-bytes-or-more";

    fn fixture(which: &str, signs: bool) -> Value {
        let all: Value = serde_json::from_str(FIXTURE).expect("fixture");
        let mut key = all[which].clone();
        key["key_ops"] = if signs {
            json!(["sign", "verify"])
        } else {
            json!(["verify"])
        };
        key
    }

    fn oct(kid: &str, signs: bool) -> Value {
        let ops = if signs {
            json!(["sign", "verify"])
        } else {
            json!(["verify"])
        };
        json!({"kty": "oct", "kid": kid, "alg": "HS256", "key_ops": ops,
               "k": URL_SAFE_NO_PAD.encode(SECRET)})
    }

    fn load(keys: &[Value], secret: Option<&str>) -> anyhow::Result<SigningKeys> {
        let text = Secret::new(Value::Array(keys.to_vec()).to_string());
        let secret = secret.map(|s| Secret::new(s.to_string()));
        key_set(&text, secret.as_ref(), OffsetDateTime::now_utc())
    }

    fn tokens(keys: SigningKeys) -> AccessTokens {
        AccessTokens::new(&AccessTokenConfig {
            keys: keys.keys,
            issuer: "velro".into(),
            lifetime: Duration::hours(1),
            leeway: Duration::ZERO,
        })
    }

    fn profile() -> SupabaseTokenProfile {
        SupabaseTokenProfile {
            issuer: "http://localhost:8000/auth/v1".into(),
            audience: "authenticated".into(),
            admin_roles: vec!["service_role".into()],
        }
    }

    fn header(token: &str) -> Value {
        let part = token.split('.').next().expect("header");
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON")
    }

    fn service_role_key(secret: &str) -> String {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &json!({"iss": "supabase", "role": "service_role", "iat": 1_700_000_000}),
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .expect("encodes")
    }

    #[test]
    fn the_sign_key_signs_every_key_verifies_and_the_secret_checks_tokens_without_kid() {
        let now = OffsetDateTime::now_utc();
        for (signer, alg) in [("rsa", "RS256"), ("ec", "ES256")] {
            let other = if signer == "rsa" { "ec" } else { "rsa" };
            let keys = [
                fixture(signer, true),
                fixture(other, false),
                oct("old-hs", false),
            ];
            let set = tokens(load(&keys, Some(SECRET)).expect("loads"));
            let before = tokens(load(&[fixture(other, true)], None).expect("loads"));
            let session = velro_core::domain::SessionId(uuid::Uuid::now_v7());
            let user = test_user();
            let issued = set
                .issue_supabase(&profile(), &user, session, method(now), now)
                .expect("signs");
            let head = header(issued.token.expose());
            assert_eq!(head["alg"], alg);
            assert_eq!(head["kid"], format!("test-{signer}-1"));
            assert!(set
                .verify_supabase(&profile(), issued.token.expose(), now)
                .is_ok());
            let v1 = set.issue(&user, session, now).expect("signs");
            assert!(
                set.verify(v1.token.expose(), now).is_ok(),
                "v1 tokens: same keys"
            );
            // A token the other key signed before the move still verifies by its kid.
            let old = before.issue(&user, session, now).expect("signs");
            assert!(set.verify(old.token.expose(), now).is_ok());
            // Supabase's service_role key: HS256, no kid, the project secret.
            let admin = set.verify_admin(&profile(), &service_role_key(SECRET), now);
            assert_eq!(admin.map(|a| a.role).ok().as_deref(), Some("service_role"));
            assert!(set
                .verify_admin(&profile(), &service_role_key(&"z".repeat(40)), now)
                .is_err());
            let published: Vec<(&str, bool)> = set
                .public_keys()
                .iter()
                .map(|k| {
                    (
                        k.kid.as_str(),
                        matches!(k.params, PublicKeyParams::Rsa { .. }),
                    )
                })
                .collect();
            assert_eq!(published.len(), 2, "never the oct keys: {published:?}");
        }
    }

    #[test]
    fn without_a_secret_the_symmetric_key_checks_tokens_without_kid() {
        let now = OffsetDateTime::now_utc();
        let set = tokens(load(&[fixture("ec", true), oct("hs", false)], None).expect("loads"));
        assert!(set
            .verify_admin(&profile(), &service_role_key(SECRET), now)
            .is_ok());
        let asymmetric_only = tokens(load(&[fixture("ec", true)], None).expect("loads"));
        assert!(asymmetric_only
            .verify_admin(&profile(), &service_role_key(SECRET), now)
            .is_err());
        let same = load(&[oct("hs", true)], Some(SECRET)).expect("loads");
        assert_eq!(
            same.keys.keys().len(),
            1,
            "the secret is the oct key already there"
        );
    }

    #[test]
    fn bad_keys_are_named_by_position_and_kid_and_their_material_never_shown() {
        let all: Value = serde_json::from_str(FIXTURE).expect("fixture");
        let rsa_d = all["rsa"]["d"].as_str().expect("d").to_string();
        let ec_d = all["ec"]["d"].as_str().expect("d").to_string();
        let mut wrong_d = fixture("rsa", true);
        wrong_d["d"] = all["rsa"]["p"].clone();
        let mut wrong_ec = fixture("ec", false);
        wrong_ec["x"] = all["ec"]["y"].clone();
        let mut no_kid = fixture("ec", false);
        no_kid.as_object_mut().expect("object").remove("kid");
        let mut rs512 = fixture("rsa", false);
        rs512["alg"] = json!("RS512");
        let mut short = oct("short", true);
        short["k"] = json!(URL_SAFE_NO_PAD.encode("only-16-bytes-ab"));
        let mut number = oct("n", false);
        number["k"] = json!(12345);
        let cases: Vec<(Vec<Value>, &str)> = vec![
            (vec![], "empty array"),
            (vec![fixture("rsa", false)], "no key has \"sign\""),
            (
                vec![fixture("rsa", true), fixture("ec", true)],
                "test-rsa-1, test-ec-1 all have",
            ),
            (
                vec![fixture("ec", true), wrong_d],
                "key 1 (kid \"test-rsa-1\") is not a valid RSA",
            ),
            (
                vec![fixture("rsa", true), wrong_ec],
                "key 1 (kid \"test-ec-1\") is not a valid P-256",
            ),
            (vec![fixture("rsa", true), no_kid], "key 1 has no kid"),
            (vec![fixture("ec", true), rs512], "has alg \"RS512\""),
            (vec![short], "at least 32 bytes"),
            (
                vec![fixture("ec", true), number],
                "key 1 is not a JWK object",
            ),
            (vec![fixture("ec", true), fixture("ec", false)], "twice"),
        ];
        for (keys, expected) in cases {
            let error = load(&keys, None)
                .err()
                .unwrap_or_else(|| panic!("refused: {expected}"))
                .to_string();
            assert!(error.contains(expected), "{expected}: {error}");
            for secret in [&rsa_d, &ec_d, &URL_SAFE_NO_PAD.encode(SECRET)] {
                assert!(!error.contains(secret.as_str()), "material in {error}");
            }
        }
        let text = Secret::new(format!("[{{\"kty\":\"oct\",\"k\":\"{rsa_d}\"}}"));
        let error = key_set(&text, None, OffsetDateTime::now_utc())
            .err()
            .expect("refused")
            .to_string();
        assert!(
            error.contains("not a JSON array") && !error.contains(&rsa_d),
            "{error}"
        );
    }

    #[test]
    fn loaded_keys_never_reach_debug_output() {
        let all: Value = serde_json::from_str(FIXTURE).expect("fixture");
        let loaded =
            load(&[fixture("rsa", true), fixture("ec", false)], Some(SECRET)).expect("loads");
        let keys = format!("{:?}", loaded.keys);
        let shown = format!("{keys} {:?}", tokens(loaded));
        for secret in [&all["rsa"]["d"], &all["rsa"]["p"], &all["ec"]["d"]] {
            let secret = secret.as_str().expect("string");
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(!shown.contains(SECRET));
        assert!(shown.contains("test-rsa-1"));
    }

    fn public_only(mut key: Value) -> Value {
        let members = key.as_object_mut().expect("object");
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            members.remove(private);
        }
        key
    }

    #[test]
    fn public_only_keys_verify_their_tokens_and_are_published_but_never_sign() {
        let now = OffsetDateTime::now_utc();
        let user = test_user();
        let session = velro_core::domain::SessionId(uuid::Uuid::now_v7());
        for (old, signer) in [("rsa", "ec"), ("ec", "rsa")] {
            let before = tokens(load(&[fixture(old, true)], None).expect("loads"));
            let issued = before.issue(&user, session, now).expect("signs");
            let supabase = before
                .issue_supabase(&profile(), &user, session, method(now), now)
                .expect("signs");
            let keys = [fixture(signer, true), public_only(fixture(old, false))];
            let after = tokens(load(&keys, None).expect("a public-only key loads"));
            assert!(after.verify(issued.token.expose(), now).is_ok());
            assert!(after
                .verify_supabase(&profile(), supabase.token.expose(), now)
                .is_ok());
            assert_eq!(after.public_keys().len(), 2, "both published");
            let fresh = after.issue(&user, session, now).expect("signs");
            assert_eq!(
                header(fresh.token.expose())["kid"],
                format!("test-{signer}-1")
            );

            let error = load(&[public_only(fixture(old, true))], None)
                .err()
                .expect("a public key cannot sign")
                .to_string();
            assert!(error.contains("no private part"), "{error}");
        }
    }

    #[test]
    fn public_keys_that_are_not_keys_are_refused() {
        let mut off_curve = public_only(fixture("ec", false));
        off_curve["y"] = Value::String(URL_SAFE_NO_PAD.encode([7u8; 32]));
        let error = load(&[fixture("rsa", true), off_curve], None)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("P-256 public key"), "{error}");
        let mut short = public_only(fixture("rsa", false));
        short["n"] = Value::String(URL_SAFE_NO_PAD.encode([0xc5u8; 128]));
        let error = load(&[fixture("ec", true), short], None)
            .err()
            .expect("refused")
            .to_string();
        assert!(error.contains("RSA public key"), "{error}");
    }

    fn test_user() -> velro_core::domain::User {
        let now = OffsetDateTime::now_utc();
        velro_core::domain::User {
            id: velro_core::domain::UserId(uuid::Uuid::new_v4()),
            email: velro_core::domain::Email::parse("ada@example.com").expect("valid"),
            display_name: None,
            avatar_url: None,
            credits_balance: 0,
            role: velro_core::domain::Role::Viewer,
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

    fn method(now: OffsetDateTime) -> velro_core::tokens::AuthMethod {
        velro_core::tokens::AuthMethod {
            method: "password",
            timestamp: now.unix_timestamp(),
        }
    }
}
