//! Signing keys: `kid`s, rotation across a restart, EdDSA with its JWKS, and the refusals
//! (algorithm confusion, unknown keys, `nbf`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use reqwest::StatusCode;
use serde_json::{json, Value};
use velro::keys::KeysCommand;
use velro::startup::Application;
use velro_core::tokens::SigningAlgorithm;

use crate::both_stores;
use crate::helpers::{
    expect_json, expect_rejected_token, expect_session, sign_jwt, unique_email, TestApp,
    JWT_SECRET, PASSWORD,
};

both_stores!(
    with_hs256_the_jwks_is_empty,
    tokens_carry_a_kid_and_tokens_without_one_still_verify_with_the_configured_secret,
    an_unknown_kid_is_token_invalid,
    a_token_before_its_nbf_is_token_invalid_until_then,
    with_eddsa_tokens_verify_with_the_published_public_key,
    an_eddsa_service_refuses_hs256_and_unsigned_tokens,
    a_token_issued_before_a_rotation_stays_valid_after_a_restart,
);

fn header(token: &str) -> Value {
    let part = token.split('.').next().expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON header")
}

fn sign_with(header: Header, claims: &Value, key: &EncodingKey) -> String {
    jsonwebtoken::encode(&header, claims, key).expect("JWT encodes")
}

fn with_kid(algorithm: Algorithm, kid: &str) -> Header {
    let mut header = Header::new(algorithm);
    header.kid = Some(kid.to_string());
    header
}

async fn jwks(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .expect("sent");
    expect_json(response, StatusCode::OK).await
}

async fn eddsa_app(app: &TestApp) -> TestApp {
    app.with_config(|config| {
        config.jwt_secret = None;
        config.jwt_algorithm = SigningAlgorithm::EdDsa;
    })
    .await
}

async fn with_hs256_the_jwks_is_empty(app: TestApp) {
    assert_eq!(jwks(&app).await, json!({"keys": []}));
    let generated = app.with_config(|config| config.jwt_secret = None).await;
    assert_eq!(jwks(&generated).await, json!({"keys": []}));
}

async fn tokens_carry_a_kid_and_tokens_without_one_still_verify_with_the_configured_secret(
    app: TestApp,
) {
    let tokens = app.register(&unique_email("kid")).await;
    let header = header(&tokens.access);
    assert_eq!(header["alg"], "HS256");
    assert!(
        header["kid"].as_str().is_some_and(|kid| !kid.is_empty()),
        "{header}"
    );
    // As tokens were signed before keys had ids.
    let legacy = sign_jwt(&tokens.claims(), JWT_SECRET, Algorithm::HS256);
    assert!(self::header(&legacy).get("kid").is_none());
    app.me_json(&legacy).await;
}

async fn an_unknown_kid_is_token_invalid(app: TestApp) {
    let tokens = app.register(&unique_email("unknown-kid")).await;
    let secret = EncodingKey::from_secret(JWT_SECRET.as_bytes());
    let forged = sign_with(
        with_kid(Algorithm::HS256, "not-ours"),
        &tokens.claims(),
        &secret,
    );
    expect_rejected_token(app.me(&forged).await, "token_invalid").await;
    let kid = header(&tokens.access)["kid"]
        .as_str()
        .expect("kid")
        .to_string();
    let resigned = sign_with(with_kid(Algorithm::HS256, &kid), &tokens.claims(), &secret);
    app.me_json(&resigned).await;
}

async fn a_token_before_its_nbf_is_token_invalid_until_then(app: TestApp) {
    let tokens = app.register(&unique_email("nbf")).await;
    let mut claims = tokens.claims();
    let iat = claims["iat"].as_i64().expect("iat");
    // The default leeway is 5 seconds.
    claims["nbf"] = json!(iat + 60);
    let early = sign_jwt(&claims, JWT_SECRET, Algorithm::HS256);
    expect_rejected_token(app.me(&early).await, "token_invalid").await;
    app.advance(56);
    app.me_json(&early).await;
}

async fn with_eddsa_tokens_verify_with_the_published_public_key(app: TestApp) {
    let app = eddsa_app(&app).await;
    let tokens = app.register(&unique_email("eddsa")).await;
    let header = header(&tokens.access);
    assert_eq!(header["alg"], "EdDSA");
    let set = jwks(&app).await;
    let keys = set["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 1, "{set}");
    let key = &keys[0];
    let mut fields: Vec<&str> = key
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["alg", "crv", "key_ops", "kid", "kty", "use", "x"],
        "no private part: {key}"
    );
    assert_eq!(key["kty"], "OKP");
    assert_eq!(key["crv"], "Ed25519");
    assert_eq!(key["alg"], "EdDSA");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], header["kid"]);
    // Any verifier can check our tokens with the published key alone.
    let decoding =
        DecodingKey::from_ed_components(key["x"].as_str().expect("x")).expect("an Ed25519 key");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["authenticated"]);
    validation.set_issuer(&["velro"]);
    let data =
        jsonwebtoken::decode::<Value>(&tokens.access, &decoding, &validation).expect("verifies");
    assert_eq!(data.claims["sid"], tokens.session_id().as_str());
    app.me_json(&tokens.access).await;
    let refreshed = app.refresh(&tokens.refresh).await;
    app.me_json(&refreshed.access).await;
}

async fn an_eddsa_service_refuses_hs256_and_unsigned_tokens(hs256_app: TestApp) {
    let hs256_tokens = hs256_app.register(&unique_email("hs")).await;
    let app = eddsa_app(&hs256_app).await;
    let tokens = app.register(&unique_email("confused")).await;
    let claims = tokens.claims();
    let set = jwks(&app).await;
    let kid = set["keys"][0]["kid"].as_str().expect("kid").to_string();
    let public = URL_SAFE_NO_PAD
        .decode(set["keys"][0]["x"].as_str().expect("x"))
        .expect("base64url");
    let payload = tokens
        .access
        .split('.')
        .nth(1)
        .expect("payload")
        .to_string();
    let forged = [
        (
            "HS256 keyed with the public key",
            sign_with(
                with_kid(Algorithm::HS256, &kid),
                &claims,
                &EncodingKey::from_secret(&public),
            ),
        ),
        (
            "HS256 with the test secret",
            sign_jwt(&claims, JWT_SECRET, Algorithm::HS256),
        ),
        ("a token of an HS256 service", hs256_tokens.access.clone()),
        (
            "alg none",
            format!(
                "{}.{payload}.",
                URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{kid}"}}"#))
            ),
        ),
        (
            "stripped signature",
            format!(
                "{}.{payload}.",
                tokens.access.split('.').next().expect("header")
            ),
        ),
    ];
    for (what, token) in forged {
        let response = app.me(&token).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{what}");
        expect_rejected_token(response, "token_invalid").await;
    }
    // And the reverse: the HS256 service refuses the EdDSA service's token.
    expect_rejected_token(hs256_app.me(&tokens.access).await, "token_invalid").await;
}

async fn a_token_issued_before_a_rotation_stays_valid_after_a_restart(app: TestApp) {
    let app = app.with_config(|config| config.jwt_secret = None).await;
    let email = unique_email("rotation");
    let before = app.register(&email).await;
    let old_kid = header(&before.access)["kid"].clone();
    velro::keys::run(&app.config, &KeysCommand::Rotate).expect("rotates");
    // The running instance reads keys at start-up only: it still signs with the old key.
    assert_eq!(
        header(&app.login(&email, PASSWORD).await.access)["kid"],
        old_kid
    );

    let restarted = Application::build_with_clock(&app.config, app.clock.clone())
        .await
        .expect("restarts");
    let address = format!("http://{}", restarted.local_addr().expect("bound"));
    let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(restarted.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let me = |token: String| {
        let request = app
            .client
            .get(format!("{address}/api/v1/auth/me"))
            .bearer_auth(token);
        async move { request.send().await.expect("sent") }
    };
    expect_json(me(before.access.clone()).await, StatusCode::OK).await;
    let login = app
        .client
        .post(format!("{address}/api/v1/auth/login"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .expect("sent");
    let after = expect_session(login, StatusCode::OK).await;
    assert_ne!(header(&after.access)["kid"], old_kid);
    expect_json(me(after.access.clone()).await, StatusCode::OK).await;
    // An instance not yet restarted does not know the new key: why several instances must
    // learn a key (`velro keys add`) before any of them signs with it (`velro keys activate`).
    expect_rejected_token(app.me(&after.access).await, "token_invalid").await;
    // The refresh-token successor secret survived the rotation: a replay within the grace
    // window on the restarted instance yields the successor the old instance handed out.
    let refreshed = app.refresh(&before.refresh).await;
    let replay = app
        .client
        .post(format!("{address}/api/v1/auth/refresh"))
        .json(&json!({"refresh_token": before.refresh}))
        .send()
        .await
        .expect("sent");
    assert_eq!(
        expect_session(replay, StatusCode::OK).await.refresh,
        refreshed.refresh
    );
}
