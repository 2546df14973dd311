//! A Supabase project's keys and settings: `VELRO_JWT_KEYS` (RS256 / ES256 JWKs) signing and
//! verifying both surfaces and published in the JWKS, the anon / service_role API keys, the
//! deployment's password policy on both surfaces, and row-level security with asymmetric tokens.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, DecodingKey};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use velro::config::{ApiKeysSetting, Config};
use velro::startup::Application;
use velro_core::Secret;

use crate::both_stores;
use crate::helpers::{
    expect_error, expect_json, expect_session, sign_jwt, unique_email, TestApp, JWT_SECRET,
    PASSWORD,
};
use crate::supabase::{access, call, notes_visible_with, SUPABASE_SCHEMA};

both_stores!(
    with_jwt_keys_both_surfaces_sign_with_the_sign_key_and_the_jwks_lists_the_public_keys,
    a_token_signed_before_the_signing_key_changed_still_verifies_by_its_kid,
    the_service_role_key_without_kid_is_checked_with_the_jwt_secret_whatever_signs,
    the_password_policy_is_the_deployments_on_both_surfaces,
    the_default_password_policy_stays_the_v1_contracts_on_the_supabase_surface,
    with_api_keys_required_the_auth_surface_wants_an_anon_or_service_role_key,
    without_the_api_key_setting_no_apikey_is_needed,
);

const FIXTURE: &str = include_str!("../fixtures/test-jwks.json");

/// A fixture key (`rsa` or `ec`), signing or verifying only.
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

/// The key without its private members: what a project keeps of a key it no longer holds.
fn public_only(mut key: Value) -> Value {
    let members = key.as_object_mut().expect("a JWK object");
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        members.remove(private);
    }
    key
}

fn jwt_keys(keys: &[Value]) -> Option<Secret<String>> {
    Some(Secret::new(Value::Array(keys.to_vec()).to_string()))
}

/// A JWT signed HS256 with the project's secret and no `kid`, as Supabase's API keys are.
fn project_key(claims: &Value) -> String {
    sign_jwt(claims, JWT_SECRET, Algorithm::HS256)
}

fn header(token: &str) -> Value {
    let part = token.split('.').next().expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).expect("base64url")).expect("JSON header")
}

async fn jwks_at(app: &TestApp, path: &str) -> Value {
    let response = app.client.get(app.url(path)).send().await.expect("sent");
    expect_json(response, StatusCode::OK).await
}

/// What a verifier given only the JWKS does (supabase-js `getClaims`, PostgREST with a JWKS):
/// find the key by `kid` and check the token with it.
fn verify_through_jwks(jwks: &Value, token: &str) -> Value {
    let kid = header(token)["kid"].as_str().expect("a kid").to_string();
    let jwk = jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|key| key["kid"] == kid.as_str())
        .expect("the token's kid is published");
    let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("a JWK");
    let algorithm: Algorithm = header(token)["alg"]
        .as_str()
        .expect("alg")
        .parse()
        .expect("known alg");
    let mut validation = jsonwebtoken::Validation::new(algorithm);
    validation.set_audience(&["authenticated"]);
    let key = DecodingKey::from_jwk(&jwk).expect("usable key");
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .expect("verifies with the published key")
        .claims
}

async fn supabase_sign_up(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    let body = json!({"email": email, "password": password});
    call(app, Method::POST, "/signup", None, Some(body)).await
}

/// Another instance over the same database and clock, with `change` made to the settings: a
/// restart with new keys. Returns its base URL (the instance runs until the test ends).
async fn restart_with(app: &TestApp, change: impl FnOnce(&mut Config)) -> String {
    let mut config = app.config.clone();
    change(&mut config);
    let restarted = Application::build_with_clock(&config, app.clock.clone())
        .await
        .expect("restarts");
    let address = format!("http://{}", restarted.local_addr().expect("bound"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    // Kept alive by leaking the sender: the instance ends with the test's runtime.
    std::mem::forget(stop);
    tokio::spawn(restarted.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    address
}

async fn with_jwt_keys_both_surfaces_sign_with_the_sign_key_and_the_jwks_lists_the_public_keys(
    app: TestApp,
) {
    let app = app
        .with_config(|config| {
            config.jwt_keys = jwt_keys(&[fixture("ec", true), fixture("rsa", false)])
        })
        .await;
    let v1_jwks = jwks_at(&app, "/.well-known/jwks.json").await;
    let supabase_jwks = jwks_at(&app, "/auth/v1/.well-known/jwks.json").await;
    assert_eq!(v1_jwks, supabase_jwks);
    let keys = v1_jwks["keys"].as_array().expect("keys");
    assert_eq!(keys.len(), 2, "{v1_jwks}");
    for key in keys {
        assert_eq!(key["use"], "sig");
        assert_eq!(key["key_ops"], json!(["verify"]));
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "{private} published: {key}");
        }
    }
    let ec = keys
        .iter()
        .find(|k| k["kid"] == "test-ec-1")
        .expect("EC key");
    assert_eq!(
        (&ec["kty"], &ec["alg"], &ec["crv"]),
        (&json!("EC"), &json!("ES256"), &json!("P-256"))
    );
    let rsa = keys
        .iter()
        .find(|k| k["kid"] == "test-rsa-1")
        .expect("RSA key");
    assert_eq!(
        (&rsa["kty"], &rsa["alg"], &rsa["e"]),
        (&json!("RSA"), &json!("RS256"), &json!("AQAB"))
    );

    let email = unique_email("jwt-keys");
    let session = expect_json(
        supabase_sign_up(&app, &email, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let token = access(&session);
    assert_eq!(header(token)["alg"], "ES256");
    assert_eq!(header(token)["kid"], "test-ec-1");
    let claims = verify_through_jwks(&supabase_jwks, token);
    assert_eq!(claims["role"], "authenticated");
    assert_eq!(claims["email"], email.as_str());
    let user = call(&app, Method::GET, "/user", Some(token), None).await;
    expect_json(user, StatusCode::OK).await;

    let v1 = app.login(&email, PASSWORD).await;
    assert_eq!(header(&v1.access)["alg"], "ES256");
    expect_json(app.me(&v1.access).await, StatusCode::OK).await;
}

async fn a_token_signed_before_the_signing_key_changed_still_verifies_by_its_kid(app: TestApp) {
    let app = app
        .with_config(|config| config.jwt_keys = jwt_keys(&[fixture("rsa", true)]))
        .await;
    let email = unique_email("jwt-keys-move");
    let session = expect_json(
        supabase_sign_up(&app, &email, PASSWORD).await,
        StatusCode::OK,
    )
    .await;
    let before = access(&session).to_string();
    assert_eq!(header(&before)["alg"], "RS256");
    let v1_before = app.login(&email, PASSWORD).await;
    let address = restart_with(&app, |config| {
        config.jwt_keys = jwt_keys(&[fixture("ec", true), fixture("rsa", false)]);
    })
    .await;
    let user = app
        .client
        .get(format!("{address}/auth/v1/user"))
        .bearer_auth(&before)
        .send()
        .await
        .expect("sent");
    expect_json(user, StatusCode::OK).await;
    let me = app
        .client
        .get(format!("{address}/api/v1/auth/me"))
        .bearer_auth(&v1_before.access)
        .send()
        .await
        .expect("sent");
    expect_json(me, StatusCode::OK).await;
    // The old key's public half alone keeps its tokens verifying, and stays published.
    for old in ["rsa", "ec"] {
        let signer = if old == "rsa" { "ec" } else { "rsa" };
        let address = restart_with(&app, |config| {
            config.jwt_keys = jwt_keys(&[fixture(signer, true), public_only(fixture(old, false))]);
        })
        .await;
        if old == "rsa" {
            let user = app
                .client
                .get(format!("{address}/auth/v1/user"))
                .bearer_auth(&before)
                .send()
                .await
                .expect("sent");
            expect_json(user, StatusCode::OK).await;
        }
        let jwks: Value = app
            .client
            .get(format!("{address}/auth/v1/.well-known/jwks.json"))
            .send()
            .await
            .expect("sent")
            .json()
            .await
            .expect("JSON");
        let kids: Vec<&str> = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .filter_map(|key| key["kid"].as_str())
            .collect();
        assert!(kids.contains(&format!("test-{old}-1").as_str()), "{jwks}");
        assert!(
            !jwks.to_string().contains("\"d\""),
            "no private member: {jwks}"
        );
    }
    // Once the old key is dropped from the set, its tokens are refused.
    let address = restart_with(&app, |config| {
        config.jwt_keys = jwt_keys(&[fixture("ec", true)]);
    })
    .await;
    let user = app
        .client
        .get(format!("{address}/auth/v1/user"))
        .bearer_auth(&before)
        .send()
        .await
        .expect("sent");
    assert_eq!(user.status(), StatusCode::FORBIDDEN);
}

async fn the_service_role_key_without_kid_is_checked_with_the_jwt_secret_whatever_signs(
    app: TestApp,
) {
    // The helpers configure VELRO_JWT_SECRET = JWT_SECRET; the JWKs sign.
    let app = app
        .with_config(|config| config.jwt_keys = jwt_keys(&[fixture("ec", true)]))
        .await;
    let service_role =
        project_key(&json!({"iss": "supabase", "role": "service_role", "iat": 1_700_000_000}));
    assert!(header(&service_role).get("kid").is_none());
    let list = call(&app, Method::GET, "/admin/users", Some(&service_role), None).await;
    expect_json(list, StatusCode::OK).await;
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &json!({"role": "service_role"}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-project-secret-but-32-bytes-long"),
    )
    .expect("encodes");
    let refused = call(&app, Method::GET, "/admin/users", Some(&forged), None).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Without a JWT secret and with asymmetric keys only, nothing verifies a token without kid.
    let asymmetric_only = app
        .with_config(|config| {
            config.jwt_secret = None;
            config.jwt_keys = jwt_keys(&[fixture("ec", true)]);
        })
        .await;
    let refused = call(
        &asymmetric_only,
        Method::GET,
        "/admin/users",
        Some(&service_role),
        None,
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
}

const LOWER_UPPER_DIGITS: &str = "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789";

async fn the_password_policy_is_the_deployments_on_both_surfaces(app: TestApp) {
    let app = app
        .with_config(|config| {
            config.password_min_length = 6;
            config.password_required_characters = LOWER_UPPER_DIGITS.into();
        })
        .await;
    let weak = |password: &'static str| {
        let app = &app;
        async move {
            let response = supabase_sign_up(app, &unique_email("policy"), password).await;
            let body = expect_json(response, StatusCode::UNPROCESSABLE_ENTITY).await;
            assert_eq!(body["code"], "weak_password", "{body}");
            (
                body["message"].clone(),
                body["weak_password"]["reasons"].clone(),
            )
        }
    };
    assert_eq!(
        weak("Ab1").await,
        (
            json!("Password should be at least 6 characters."),
            json!(["length"])
        )
    );
    assert_eq!(
        weak("abcdefg1").await,
        (
            json!("Password should contain at least one character of each: abcdefghijklmnopqrstuvwxyz, ABCDEFGHIJKLMNOPQRSTUVWXYZ, 0123456789."),
            json!(["characters"])
        )
    );
    let ok = supabase_sign_up(&app, &unique_email("policy-ok"), "Zq8wxk").await;
    expect_json(ok, StatusCode::OK).await;

    let refused = app
        .register_response(&unique_email("policy-v1"), "abcdefg1")
        .await;
    let body = expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(body.to_string().contains("missing_characters"), "{body}");
    let refused = app
        .register_response(&unique_email("policy-v1"), "Ab1")
        .await;
    let body = expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(body.to_string().contains("at least 6 characters"), "{body}");
    let accepted = app
        .register_response(&unique_email("policy-v1"), "Zq8wxk")
        .await;
    expect_session(accepted, StatusCode::CREATED).await;
}

async fn the_default_password_policy_stays_the_v1_contracts_on_the_supabase_surface(app: TestApp) {
    let response = supabase_sign_up(&app, &unique_email("policy-default"), "zq8wxkv").await;
    let body = expect_json(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body["message"], "Password should be at least 8 characters.");
    assert_eq!(body["weak_password"]["reasons"], json!(["length"]));
    let refused = app
        .register_response(&unique_email("policy-default"), "zq8wxkv")
        .await;
    let body = expect_error(
        refused,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    )
    .await;
    assert!(body.to_string().contains("too_short"), "{body}");
}

async fn gateway(app: &TestApp, path: &str, apikey: Option<&str>) -> (StatusCode, Value) {
    // Redirects not followed: `/verify` answers 303 to the site, which is not running.
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let mut request = client.get(app.url(path));
    if let Some(key) = apikey {
        request = request.header("apikey", key);
    }
    let response = request.send().await.expect("sent");
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn with_api_keys_required_the_auth_surface_wants_an_anon_or_service_role_key(app: TestApp) {
    let app = app
        .with_config(|config| config.supabase_api_keys = ApiKeysSetting::Required)
        .await;
    let anon = project_key(&json!({"iss": "supabase", "ref": "velro", "role": "anon",
                                "iat": 1_700_000_000, "exp": 4_000_000_000_i64}));
    let service_role = project_key(&json!({"role": "service_role"}));
    assert_eq!(
        gateway(&app, "/auth/v1/settings", None).await,
        (
            StatusCode::UNAUTHORIZED,
            json!({"message": "No API key found in request"})
        )
    );
    let invalid = (
        StatusCode::UNAUTHORIZED,
        json!({"message": "Invalid authentication credentials"}),
    );
    assert_eq!(
        gateway(&app, "/auth/v1/settings", Some("sb_publishable_x")).await,
        invalid
    );
    let session = expect_json(
        {
            let body = json!({"email": unique_email("apikey"), "password": PASSWORD});
            app.client
                .post(app.url("/auth/v1/signup"))
                .header("apikey", &anon)
                .json(&body)
                .send()
                .await
                .expect("sent")
        },
        StatusCode::OK,
    )
    .await;
    // A user's own token is not an API key, nor is a key signed with another secret.
    assert_eq!(
        gateway(&app, "/auth/v1/settings", Some(access(&session))).await,
        invalid
    );
    let forged = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(Algorithm::HS256),
        &json!({"role": "anon"}),
        &jsonwebtoken::EncodingKey::from_secret(b"not-the-project-secret-but-32-bytes-long"),
    )
    .expect("encodes");
    assert_eq!(
        gateway(&app, "/auth/v1/settings", Some(&forged)).await,
        invalid
    );
    for key in [&anon, &service_role] {
        assert_eq!(
            gateway(&app, "/auth/v1/settings", Some(key)).await.0,
            StatusCode::OK
        );
    }
    let query = gateway(&app, &format!("/auth/v1/settings?apikey={anon}"), None).await;
    assert_eq!(query.0, StatusCode::OK);
    // Kong's open routes, and the v1 API, need no key.
    assert_eq!(
        gateway(&app, "/auth/v1/.well-known/jwks.json", None)
            .await
            .0,
        StatusCode::OK
    );
    assert_ne!(
        gateway(&app, "/auth/v1/verify?type=signup&token=x", None)
            .await
            .0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(gateway(&app, "/health", None).await.0, StatusCode::OK);
    let preflight = app
        .client
        .request(Method::OPTIONS, app.url("/auth/v1/token"))
        .send()
        .await
        .expect("sent");
    assert_ne!(preflight.status(), StatusCode::UNAUTHORIZED);
}

async fn without_the_api_key_setting_no_apikey_is_needed(app: TestApp) {
    assert_eq!(
        gateway(&app, "/auth/v1/settings", None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        gateway(&app, "/auth/v1/settings", Some("garbage")).await.0,
        StatusCode::OK
    );
}

/// The proof for asymmetric keys: tokens signed RS256 and ES256 pass an `auth.uid()`
/// policy once checked with the public key the JWKS publishes, as PostgREST does when given it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_with_auth_uid_accepts_rs256_and_es256_tokens_through_the_jwks() {
    let Some(url) = velro_pgtest::fresh_database().await else {
        return;
    };
    let mut database = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("connects");
    for statement in SUPABASE_SCHEMA {
        sqlx::query(statement)
            .execute(&mut database)
            .await
            .unwrap_or_else(|e| panic!("{statement}: {e}"));
    }
    for (signer, expected_alg) in [("rsa", "RS256"), ("ec", "ES256")] {
        let app = TestApp::sqlite()
            .await
            .with_config(|config| config.jwt_keys = jwt_keys(&[fixture(signer, true)]))
            .await;
        let jwks = jwks_at(&app, "/auth/v1/.well-known/jwks.json").await;
        let email = unique_email(&format!("rls-{signer}"));
        let session = expect_json(
            supabase_sign_up(&app, &email, PASSWORD).await,
            StatusCode::OK,
        )
        .await;
        let token = access(&session);
        assert_eq!(header(token)["alg"], expected_alg);
        let owner: uuid::Uuid = session["user"]["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a uuid");
        let body = format!("{signer} note");
        sqlx::query("INSERT INTO notes (owner, body) VALUES ($1, $2)")
            .bind(owner)
            .bind(&body)
            .execute(&mut database)
            .await
            .expect("inserts");
        verify_through_jwks(&jwks, token);
        let jwk = jwks["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .find(|key| key["kid"] == header(token)["kid"])
            .expect("published");
        let jwk: Jwk = serde_json::from_value(jwk.clone()).expect("a JWK");
        let key = DecodingKey::from_jwk(&jwk).expect("usable key");
        let algorithm: Algorithm = expected_alg.parse().expect("known");
        assert_eq!(
            notes_visible_with(&mut database, token, &key, algorithm).await,
            [body]
        );
    }
}
