//! The attacker's cases on /auth/v1 that the protocol tests (supabase.rs, supabase_mail.rs) do
//! not already cover: enumeration through /signup and /recover whatever the account's state,
//! open redirects through `redirect_to` on /otp and on a failing `GET /verify`, refresh tokens
//! carried from one surface to the other, and forged admin credentials.
//!
//! Access tokens are bound to their surface (a v1 token has `iss` velro and `sid`; a Supabase
//! token the site's auth URL, `aud` and `session_id`): both are signed and verified by the one key
//! set, but each surface accepts only its own claims (tests in supabase.rs). A refresh token is
//! the session's, not the surface's: it rotates the same session from either side, and the
//! access token it yields is the redeeming surface's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::both_stores;
use crate::helpers::{
    expect_error, expect_json, expect_rejected_token, jwt_claims, sign_jwt, unique_email, TestApp,
    JWT_SECRET, PASSWORD, SERVICE_KEY,
};

both_stores!(
    sign_up_answers_every_taken_address_alike_whatever_the_account_state,
    recover_answers_disabled_and_recased_addresses_as_it_answers_unknown_ones,
    otp_and_a_failing_verify_link_never_redirect_off_the_allow_list,
    a_refresh_token_rotates_its_session_from_either_surface,
    a_spent_refresh_token_replayed_on_the_other_surface_revokes_the_session,
    forged_admin_credentials_are_refused_on_auth_v1_admin,
);

const VERSION: &str = "2024-01-01";

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> Response {
    let mut request = app
        .client
        .request(method, app.url(&format!("/auth/v1{path}")))
        .header("x-supabase-api-version", VERSION);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    request.send().await.expect("request sent")
}

/// Status, headers (but the date and request id) and body, for comparing answers.
async fn answer(response: Response) -> (StatusCode, Vec<(String, Vec<u8>)>, Vec<u8>) {
    let status = response.status();
    let mut headers: Vec<_> = response
        .headers()
        .iter()
        .filter(|(name, _)| *name != "date" && *name != "x-request-id")
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    headers.sort();
    let body = response.bytes().await.expect("body").to_vec();
    (status, headers, body)
}

async fn expect_gotrue(response: Response, status: StatusCode, code: &str) {
    let actual = response.status();
    let body: Value = response.json().await.expect("JSON body");
    assert_eq!(actual, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
}

async fn supabase_sign_up(app: &TestApp, email: &str) -> Value {
    let body = json!({"email": email, "password": PASSWORD});
    expect_json(
        call(app, Method::POST, "/signup", None, Some(body)).await,
        StatusCode::OK,
    )
    .await
}

async fn refresh_grant(app: &TestApp, refresh_token: &str) -> Response {
    call(
        app,
        Method::POST,
        "/token?grant_type=refresh_token",
        None,
        Some(json!({"refresh_token": refresh_token})),
    )
    .await
}

fn text<'a>(value: &'a Value, key: &str) -> &'a str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} in {value}"))
}

fn urlencode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

async fn sign_up_answers_every_taken_address_alike_whatever_the_account_state(app: TestApp) {
    let through_supabase = unique_email("enum-supabase");
    supabase_sign_up(&app, &through_supabase).await;
    let through_v1 = unique_email("enum-v1");
    app.register(&through_v1).await;
    let disabled = unique_email("enum-disabled");
    let id = app.register(&disabled).await.user_id();
    app.admin_patch(&id, json!({"disabled": true})).await;
    let recased = format!("  {}  ", through_supabase.to_uppercase());

    let mut answers = Vec::new();
    for email in [&through_supabase, &through_v1, &disabled, &recased] {
        // The account's own password and another one: neither tells more.
        for password in [PASSWORD, "an entirely different passphrase 7"] {
            let body = json!({"email": email, "password": password});
            let response = call(&app, Method::POST, "/signup", None, Some(body)).await;
            answers.push((email.clone(), answer(response).await));
        }
    }
    let (_, first) = &answers[0];
    assert_eq!(first.0, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&first.2).expect("JSON");
    assert_eq!(
        body,
        json!({"code": "user_already_exists", "message": "User already registered"})
    );
    for (email, other) in &answers[1..] {
        assert_eq!(other, first, "{email} is told apart");
    }
    // No session came of it: the disabled account stays signed out.
    let disabled_user = app.admin_user(&id).await;
    assert_eq!(disabled_user["disabled"], true);

    let fresh = supabase_sign_up(&app, &unique_email("enum-fresh")).await;
    assert!(fresh["access_token"].is_string());
}

async fn recover_answers_disabled_and_recased_addresses_as_it_answers_unknown_ones(app: TestApp) {
    let known = unique_email("recover-enum-known");
    supabase_sign_up(&app, &known).await;
    let disabled = unique_email("recover-enum-disabled");
    let id = app.register(&disabled).await.user_id();
    app.admin_patch(&id, json!({"disabled": true})).await;
    let unknown = unique_email("recover-enum-unknown");
    let recased = known.to_uppercase();

    let mut answers = Vec::new();
    for email in [&unknown, &disabled, &recased] {
        let body = json!({"email": email});
        answers.push(answer(call(&app, Method::POST, "/recover", None, Some(body)).await).await);
    }
    assert_eq!(answers[0].0, StatusCode::OK);
    assert_eq!(answers[0].2, b"{}");
    assert_eq!(answers[1], answers[0], "a disabled account is told apart");
    assert_eq!(answers[2], answers[0], "a recased address is told apart");

    // The recased address reached the account; the disabled one got nothing.
    for _ in 0..500 {
        if !app.mail_to(&known).is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(app.mail_to(&known).len(), 1);
    assert!(app.mail_to(&disabled).is_empty());
    assert!(app.mail_to(&unknown).is_empty());
}

/// The newest mail link to `to` once more than `earlier` messages have arrived.
async fn mailed_link(app: &TestApp, to: &str, earlier: usize) -> url::Url {
    for _ in 0..500 {
        let messages = app.mail_to(to);
        if messages.len() > earlier {
            let body = messages.last().cloned().unwrap_or_default();
            let link = body
                .lines()
                .map(str::trim)
                .find(|line| line.starts_with("http") && line.contains("/verify?"))
                .expect("the message carries a link");
            return url::Url::parse(link).expect("a URL");
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no message for {to} arrived");
}

fn query_value(link: &url::Url, name: &str) -> Option<String> {
    link.query_pairs()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `GET` a path as a browser following a mail link would, stopping at the redirect.
async fn landing(app: &TestApp, path_and_query: &str) -> url::Url {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("a client");
    let response = client
        .get(app.url(path_and_query))
        .send()
        .await
        .expect("request sent");
    assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path_and_query}");
    let location = response.headers()[reqwest::header::LOCATION]
        .to_str()
        .expect("an ASCII location");
    url::Url::parse(location).expect("an absolute location")
}

fn without_fragment(url: &url::Url) -> String {
    let mut url = url.clone();
    url.set_fragment(None);
    url.to_string()
}

async fn otp_and_a_failing_verify_link_never_redirect_off_the_allow_list(app: TestApp) {
    let site = "https://app.example.com/welcome";
    let app = app
        .with_config(|config| {
            config.site_url = site.into();
            config.uri_allow_list = vec!["https://*.partner.example/**".into()];
        })
        .await;
    let email = unique_email("otp-redirect");
    supabase_sign_up(&app, &email).await;
    let hostile_targets = [
        "https://evil.example/steal",
        "//evil.example/x",
        "https://app.example.com.evil.example/welcome",
        "https://app.example.com@evil.example/",
        "https://docs.partner.example%2F@evil.example/",
        "data:text/html,<script>alert(1)</script>",
    ];
    for (earlier, hostile) in hostile_targets.iter().enumerate() {
        let path = format!("/otp?redirect_to={}", urlencode(hostile));
        let body = json!({"email": email, "create_user": false});
        let sent = call(&app, Method::POST, &path, None, Some(body)).await;
        assert_eq!(sent.status(), StatusCode::OK, "{hostile}");
        let link = mailed_link(&app, &email, earlier).await;
        // One magic link a minute (GoTrue's SMTP_MAX_FREQUENCY).
        app.advance(60);
        assert_eq!(
            query_value(&link, "redirect_to").as_deref(),
            Some(site),
            "{hostile}"
        );

        // A link that fails (a made-up token, or no type) lands on the site URL too, with the
        // error in the fragment.
        for made_up in [
            format!(
                "type=magiclink&token=made-up&redirect_to={}",
                urlencode(hostile)
            ),
            format!("token=made-up&redirect_to={}", urlencode(hostile)),
            format!("redirect_to={}", urlencode(hostile)),
        ] {
            let location = landing(&app, &format!("/auth/v1/verify?{made_up}")).await;
            assert_eq!(without_fragment(&location), site, "{made_up}");
            let fragment = location.fragment().unwrap_or_default();
            assert!(fragment.contains("error_code="), "{fragment}");
            assert!(!fragment.contains("access_token"), "{fragment}");
        }
    }
    // The allow list is honoured, so the refusals above are the policy's.
    let allowed = "https://docs.partner.example/return";
    let location = landing(
        &app,
        &format!(
            "/auth/v1/verify?type=magiclink&token=made-up&redirect_to={}",
            urlencode(allowed)
        ),
    )
    .await;
    assert_eq!(without_fragment(&location), allowed);
}

async fn a_refresh_token_rotates_its_session_from_either_surface(app: TestApp) {
    let email = unique_email("cross-refresh");
    app.register(&email).await;
    let v1 = app.login(&email, PASSWORD).await;

    // A v1 refresh token at /auth/v1/token: the same session, now with a Supabase token.
    let supabase = expect_json(refresh_grant(&app, &v1.refresh).await, StatusCode::OK).await;
    let supabase_access = text(&supabase, "access_token");
    assert_eq!(
        jwt_claims(supabase_access)["session_id"].as_str(),
        Some(v1.session_id().as_str())
    );
    assert_eq!(jwt_claims(supabase_access)["role"], "authenticated");
    let user = call(&app, Method::GET, "/user", Some(supabase_access), None).await;
    assert_eq!(user.status(), StatusCode::OK);
    expect_rejected_token(app.me(supabase_access).await, "token_invalid").await;

    // Its refresh token back at the v1 API: a v1 token for the same session again.
    let back = app.refresh(text(&supabase, "refresh_token")).await;
    assert_eq!(back.session_id(), v1.session_id());
    assert_eq!(app.me(&back.access).await.status(), StatusCode::OK);
    expect_gotrue(
        call(&app, Method::GET, "/user", Some(&back.access), None).await,
        StatusCode::FORBIDDEN,
        "bad_jwt",
    )
    .await;
}

async fn a_spent_refresh_token_replayed_on_the_other_surface_revokes_the_session(app: TestApp) {
    let email = unique_email("cross-replay");
    app.register(&email).await;
    let v1 = app.login(&email, PASSWORD).await;
    let next = app.refresh(&v1.refresh).await;

    // Past the reuse window, the spent v1 token presented to /auth/v1 is a replay.
    app.advance(11);
    expect_gotrue(
        refresh_grant(&app, &v1.refresh).await,
        StatusCode::BAD_REQUEST,
        "refresh_token_already_used",
    )
    .await;
    // The family is revoked on both surfaces.
    expect_error(
        app.refresh_response(&next.refresh).await,
        StatusCode::UNAUTHORIZED,
        "refresh_token_invalid",
    )
    .await;
    expect_rejected_token(app.me(&next.access).await, "session_revoked").await;
}

/// A JWT with the given header and claims and the given signature bytes, as an attacker
/// assembles one by hand.
fn hand_made_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        URL_SAFE_NO_PAD.encode(signature)
    )
}

async fn forged_admin_credentials_are_refused_on_auth_v1_admin(app: TestApp) {
    let session = supabase_sign_up(&app, &unique_email("forge-admin")).await;
    let user_token = text(&session, "access_token");
    let path = "/admin/users";
    let service_role = json!({"role": "service_role"});

    let mut forged = Vec::new();
    // alg none, with and without a signature.
    for alg in ["none", "None", "NONE"] {
        let header = json!({"alg": alg, "typ": "JWT"});
        forged.push(hand_made_jwt(&header, &service_role, b""));
        forged.push(hand_made_jwt(&header, &service_role, b"signature"));
    }
    // The user's own token with `role` edited, the signature kept.
    let parts: Vec<&str> = user_token.split('.').collect();
    let mut claims = jwt_claims(user_token);
    claims["role"] = json!("service_role");
    forged.push(format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        parts[2]
    ));
    // The same claims, and a bare service_role key, signed with a wrong secret.
    let wrong = "not-the-project-secret-0123456789abcdefghijkl";
    forged.push(sign_jwt(&claims, wrong, jsonwebtoken::Algorithm::HS256));
    forged.push(sign_jwt(
        &service_role,
        wrong,
        jsonwebtoken::Algorithm::HS256,
    ));
    // The right secret under another HMAC, and the secret itself as a bearer.
    forged.push(sign_jwt(
        &service_role,
        JWT_SECRET,
        jsonwebtoken::Algorithm::HS512,
    ));
    forged.push(JWT_SECRET.to_string());
    for token in &forged {
        let refused = call(&app, Method::GET, path, Some(token), None).await;
        expect_gotrue(refused, StatusCode::FORBIDDEN, "bad_jwt").await;
    }

    // Well signed but not an admin: a v1 token of a Velro admin, and that admin's Supabase
    // token (Velro's role travels in app_metadata, never in `role`).
    let admin_email = unique_email("forge-velro-admin");
    let id = app.register(&admin_email).await.user_id();
    app.admin_patch(&id, json!({"role": "admin"})).await;
    let v1_admin = app.login(&admin_email, PASSWORD).await;
    let supabase_admin = expect_json(
        call(
            &app,
            Method::POST,
            "/token?grant_type=password",
            None,
            Some(json!({"email": admin_email, "password": PASSWORD})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(supabase_admin["user"]["app_metadata"]["role"], "admin");
    for token in [
        v1_admin.access.as_str(),
        text(&supabase_admin, "access_token"),
    ] {
        let refused = call(&app, Method::GET, path, Some(token), None).await;
        expect_gotrue(refused, StatusCode::FORBIDDEN, "not_admin").await;
    }
    // The v1 service key is not a JWT of the project.
    let refused = call(&app, Method::GET, path, Some(SERVICE_KEY), None).await;
    expect_gotrue(refused, StatusCode::FORBIDDEN, "bad_jwt").await;

    // And the other way: the project's service_role key opens nothing on the v1 admin API.
    let real = sign_jwt(&service_role, JWT_SECRET, jsonwebtoken::Algorithm::HS256);
    let listed = call(&app, Method::GET, path, Some(&real), None).await;
    assert_eq!(listed.status(), StatusCode::OK);
    let v1 = app.admin_as(Some(&real), Method::GET, "/users").await;
    expect_error(v1, StatusCode::UNAUTHORIZED, "invalid_service_key").await;
}
