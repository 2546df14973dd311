//! Access-token verification and the opaque-token helpers, fed arbitrary bytes.
//!
//! - The whole input is a bearer token for an HS256 verifier and an EdDSA verifier (each also
//!   holding the other algorithm's key): never a panic, and every refusal is `TokenInvalid` or
//!   `TokenExpired`.
//! - If the input holds a NUL byte, the part before it is taken as a JWT header and the part
//!   after as claims, both signed with the fixture keys, so the fuzzer gets past the signature
//!   and reaches claim parsing and the time checks. A token is accepted only if its `alg` is the
//!   verifier's, its claims name our issuer and audience, and it is neither expired nor early.
//! - The input is also an opaque (refresh or reset) token and a service key.

#![no_main]

use std::sync::LazyLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use velro_core::tokens::{
    hash_token, AccessTokens, RefreshTokens, ServiceKey, VerifiedAccess, AUDIENCE,
};
use velro_core::{AuthError, Secret};
use velro_fuzz::{ED_KID, HS_KID, ISSUER, LEEWAY_SECS, NOW, SERVICE_KEY};

struct Fixtures {
    hs256: AccessTokens,
    eddsa: AccessTokens,
    refresh: RefreshTokens,
    service_key: ServiceKey,
}

static FIXTURES: LazyLock<Fixtures> = LazyLock::new(|| Fixtures {
    hs256: velro_fuzz::access_tokens(HS_KID),
    eddsa: velro_fuzz::access_tokens(ED_KID),
    refresh: RefreshTokens::new(&Secret::new(vec![3; 32])),
    service_key: ServiceKey::parse(&Secret::new(SERVICE_KEY.to_string())).expect("valid key"),
});

fn verify(tokens: &AccessTokens, token: &str) -> Result<VerifiedAccess, AuthError> {
    let verdict = tokens.verify(token, velro_fuzz::now());
    assert!(
        matches!(
            verdict,
            Ok(_) | Err(AuthError::TokenInvalid) | Err(AuthError::TokenExpired)
        ),
        "a refusal other than token_invalid or token_expired: {verdict:?}"
    );
    verdict
}

/// Read leniently: serde skips a field that the target type ignores without checking its UTF-8,
/// so an accepted token may carry invalid UTF-8 in fields nobody reads.
fn json(bytes: &[u8], what: &str) -> Value {
    serde_json::from_str(&String::from_utf8_lossy(bytes))
        .unwrap_or_else(|error| panic!("an accepted {what} is not JSON: {error}"))
}

/// What an accepted token must have carried.
fn assert_acceptable(header: &[u8], claims: &[u8], alg: &str, verified: &VerifiedAccess) {
    let header = json(header, "header");
    assert_eq!(header["alg"], alg, "accepted under another algorithm");
    let claims = json(claims, "claims");
    assert_eq!(claims["iss"], ISSUER, "accepted with another issuer");
    assert_eq!(claims["aud"], AUDIENCE, "accepted with another audience");
    assert_eq!(
        claims["sub"].as_str().map(str::to_ascii_lowercase),
        Some(verified.user_id.0.to_string()),
        "the verified user is not the token's sub"
    );
    assert_eq!(
        claims["sid"].as_str().map(str::to_ascii_lowercase),
        Some(verified.session_id.0.to_string()),
        "the verified session is not the token's sid"
    );
    let exp = claims["exp"]
        .as_i64()
        .expect("an accepted exp is an integer");
    assert!(
        i128::from(exp) + i128::from(LEEWAY_SECS) > i128::from(NOW),
        "accepted after expiry"
    );
    if let Some(nbf) = claims.get("nbf").and_then(Value::as_i64) {
        assert!(nbf <= NOW + LEEWAY_SECS, "accepted before nbf");
    }
}

fuzz_target!(|data: &[u8]| {
    let fixtures = &*FIXTURES;
    let token = String::from_utf8_lossy(data);

    verify(&fixtures.hs256, &token).ok();
    verify(&fixtures.eddsa, &token).ok();

    if let Some(nul) = data.iter().position(|&b| b == 0) {
        let (header, claims) = (&data[..nul], &data[nul + 1..]);
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims)
        );
        let signed_by = [
            (
                &fixtures.hs256,
                "HS256",
                velro_fuzz::sign_hs256(signing_input.as_bytes()),
            ),
            (
                &fixtures.eddsa,
                "EdDSA",
                velro_fuzz::sign_ed25519(signing_input.as_bytes()),
            ),
        ];
        for (tokens, alg, signature) in signed_by {
            let signed = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature));
            if let Ok(verified) = verify(tokens, &signed) {
                assert_acceptable(header, claims, alg, &verified);
            }
        }
    }

    // Refresh and reset tokens are opaque: hashed for lookup, never parsed.
    let _ = hash_token(&token);
    let _ = fixtures.refresh.successor(&token);
    assert_eq!(
        fixtures.service_key.matches(&token),
        token == SERVICE_KEY,
        "the service key comparison is not exact"
    );
});
