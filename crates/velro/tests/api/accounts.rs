//! Registration, login and the profile. Password reset and change live in `passwords`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use velro_core::domain::{PasswordHash, UserId};
use velro_core::hashing::{HashingConfig, PasswordHasher};
use velro_core::{Clock, Secret};

use crate::both_stores;
use crate::helpers::{
    error_message, expect_challenge, expect_error, expect_invalid, expect_json, expect_session,
    parse_time, unique_email, wire_time, TestApp, PASSWORD,
};

both_stores!(
    register_returns_a_session_and_normalises_the_email,
    register_issues_an_access_token_with_the_contract_claims,
    register_refuses_a_duplicate_email_in_another_letter_case,
    register_names_every_bad_field,
    register_names_the_password_policy_reason,
    register_counts_password_length_in_characters,
    register_requires_confirm_password_to_match,
    register_bounds_full_name,
    register_reports_missing_fields_and_wrong_types,
    register_refuses_malformed_emails,
    register_accepts_an_email_of_254_characters_and_refuses_255,
    login_returns_a_new_session_for_the_normalised_email,
    login_answers_unknown_email_and_wrong_password_identically,
    login_refuses_a_disabled_account_only_after_the_password,
    login_with_remember_me_keeps_the_session_for_thirty_days,
    login_validates_its_body,
    login_verifies_bcrypt_and_outdated_argon2_hashes_and_rehashes_them,
    profile_changes_show_on_the_next_me,
    profile_leaves_absent_fields_and_clears_null_ones,
    profile_refuses_avatar_urls_that_are_not_absolute_https,
    profile_bounds_full_name_and_refuses_wrong_types,
    profile_names_every_bad_field,
);

const USER_KEYS: [&str; 9] = [
    "avatar_url",
    "created_at",
    "credits_balance",
    "display_name",
    "email",
    "email_confirmed",
    "id",
    "role",
    "updated_at",
];

fn sorted_keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

async fn register_returns_a_session_and_normalises_the_email(app: TestApp) {
    let email = unique_email("Ada");
    // Unicode white space (an em space, an ideographic space) is trimmed too.
    let sent = format!("\u{2003} {}\u{3000}", email.to_uppercase());
    let response = app
        .register_with(json!({"email": sent, "password": PASSWORD, "full_name": "  Ada Lovelace "}))
        .await;
    let tokens = expect_session(response, StatusCode::CREATED).await;
    let body = &tokens.body;
    assert_eq!(
        sorted_keys(body),
        [
            "access_token",
            "expires_at",
            "expires_in",
            "refresh_token",
            "token_type",
            "user"
        ]
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 3600);
    assert!(
        tokens.refresh.len() >= 22,
        "128 bits take at least 22 base64 characters"
    );
    let user = &body["user"];
    assert_eq!(
        sorted_keys(user),
        USER_KEYS,
        "nothing else (no hash, no disabled) leaks"
    );
    assert!(uuid::Uuid::parse_str(user["id"].as_str().expect("id")).is_ok());
    assert_eq!(user["email"], email.to_lowercase());
    assert_eq!(user["display_name"], "Ada Lovelace");
    assert!(user["avatar_url"].is_null());
    assert_eq!(user["credits_balance"], 1000);
    assert_eq!(user["role"], "viewer");
    assert_eq!(user["email_confirmed"], false);
    let now = wire_time(app.clock.now());
    assert_eq!(user["created_at"], now.as_str());
    assert_eq!(user["updated_at"], now.as_str());
    assert!(user["created_at"].as_str().expect("time").ends_with('Z'));
    let me = app.me_json(&tokens.access).await;
    assert_eq!(&me, user);
}

async fn register_issues_an_access_token_with_the_contract_claims(app: TestApp) {
    let email = unique_email("claims");
    let tokens = app.register(&email).await;
    let claims = tokens.claims();
    let mut keys = sorted_keys(&claims);
    keys.retain(|key| !["iss", "aud", "sub", "email", "role", "sid", "iat", "exp"].contains(key));
    assert!(keys.is_empty(), "unexpected claims {keys:?}");
    assert_eq!(claims["iss"], "velro");
    assert_eq!(claims["aud"], "authenticated");
    assert_eq!(claims["sub"], tokens.user_id().as_str());
    assert_eq!(claims["email"], email.as_str());
    assert_eq!(claims["role"], "viewer");
    let iat = claims["iat"].as_i64().expect("iat");
    let exp = claims["exp"].as_i64().expect("exp");
    assert_eq!(iat, app.clock.now().unix_timestamp());
    assert_eq!(
        exp - iat,
        tokens.body["expires_in"].as_i64().expect("expires_in")
    );
    assert_eq!(tokens.body["expires_at"], exp);
    let header: Value = {
        use base64::Engine;
        let part = tokens.access.split('.').next().expect("header part");
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .expect("base64url");
        serde_json::from_slice(&bytes).expect("JSON header")
    };
    assert_eq!(header["alg"], "HS256");
    let sessions = app.sessions(&tokens.access).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], claims["sid"]);
}

async fn register_refuses_a_duplicate_email_in_another_letter_case(app: TestApp) {
    let email = unique_email("dup");
    app.register(&email).await;
    let again = app.register_response(&email.to_uppercase(), PASSWORD).await;
    expect_error(again, StatusCode::CONFLICT, "email_exists").await;
    let padded = app
        .register_response(&format!("  {email} "), "another fine password")
        .await;
    expect_error(padded, StatusCode::CONFLICT, "email_exists").await;
}

async fn register_names_every_bad_field(app: TestApp) {
    let response = app
        .register_with(json!({"email": "not-an-email", "password": "password", "full_name": "", "confirm_password": "other"}))
        .await;
    let body = expect_invalid(
        response,
        &["confirm_password", "email", "full_name", "password"],
    )
    .await;
    assert!(error_message(&body, "password").contains("too_common"));
}

async fn register_names_the_password_policy_reason(app: TestApp) {
    let email = unique_email("policy");
    let local = email.split('@').next().expect("local part").to_string();
    let cases = [
        ("short1".to_string(), "too_short"),
        ("x".repeat(129), "too_long"),
        ("password".to_string(), "too_common"),
        ("PassWord".to_string(), "too_common"),
        ("qwertyuiop".to_string(), "too_common"),
        (email.clone(), "contains_email"),
        (email.to_uppercase(), "contains_email"),
        (local.clone(), "contains_email"),
        (local.to_uppercase(), "contains_email"),
    ];
    for (password, reason) in cases {
        let body = expect_invalid(
            app.register_response(&email, &password).await,
            &["password"],
        )
        .await;
        let message = error_message(&body, "password");
        assert!(
            message.contains(reason),
            "{password:?}: expected {reason} in {message:?}"
        );
    }
    // Containing the local part is fine; only equality is refused.
    let response = app
        .register_response(&email, &format!("{local} is my name"))
        .await;
    expect_session(response, StatusCode::CREATED).await;
}

async fn register_counts_password_length_in_characters(app: TestApp) {
    // Seven two-byte characters are fourteen bytes, still too short.
    let body = expect_invalid(
        app.register_response(&unique_email("e7"), &"é".repeat(7))
            .await,
        &["password"],
    )
    .await;
    assert!(error_message(&body, "password").contains("too_short"));
    expect_session(
        app.register_response(&unique_email("e8"), &"é".repeat(8))
            .await,
        StatusCode::CREATED,
    )
    .await;
    expect_session(
        app.register_response(&unique_email("e128"), &"é".repeat(128))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let body = expect_invalid(
        app.register_response(&unique_email("e129"), &"é".repeat(129))
            .await,
        &["password"],
    )
    .await;
    assert!(error_message(&body, "password").contains("too_long"));
}

async fn register_requires_confirm_password_to_match(app: TestApp) {
    let email = unique_email("confirm");
    let mismatch = json!({"email": email, "password": PASSWORD, "confirm_password": "correct horse battery stapler"});
    expect_invalid(app.register_with(mismatch).await, &["confirm_password"]).await;
    let matching = json!({"email": email, "password": PASSWORD, "confirm_password": PASSWORD});
    expect_session(app.register_with(matching).await, StatusCode::CREATED).await;
}

async fn register_bounds_full_name(app: TestApp) {
    for bad in [
        json!(""),
        json!("   "),
        json!("\u{3000}\u{2003}"),
        json!("a".repeat(101)),
    ] {
        let body = json!({"email": unique_email("name"), "password": PASSWORD, "full_name": bad});
        expect_invalid(app.register_with(body).await, &["full_name"]).await;
    }
    let longest = "é".repeat(100);
    let body = json!({"email": unique_email("name"), "password": PASSWORD, "full_name": format!(" {longest} ")});
    let tokens = expect_session(app.register_with(body).await, StatusCode::CREATED).await;
    assert_eq!(tokens.body["user"]["display_name"], longest.as_str());
    let none = app.register(&unique_email("noname")).await;
    assert!(none.body["user"]["display_name"].is_null());
}

async fn register_reports_missing_fields_and_wrong_types(app: TestApp) {
    expect_invalid(app.register_with(json!({})).await, &["email", "password"]).await;
    expect_invalid(
        app.register_with(json!({"email": null, "password": null}))
            .await,
        &["email", "password"],
    )
    .await;
    let wrong = json!({"email": 42, "password": true, "full_name": 7, "confirm_password": ["x"]});
    expect_invalid(
        app.register_with(wrong).await,
        &["confirm_password", "email", "full_name", "password"],
    )
    .await;
    let only_email = json!({"email": unique_email("half")});
    expect_invalid(app.register_with(only_email).await, &["password"]).await;
}

async fn register_refuses_malformed_emails(app: TestApp) {
    let cases = [
        "",
        "   ",
        "ada",
        "ada@",
        "@example.com",
        "ada@[127.0.0.1]",
        "ada@127.0.0.1",
        "ada@localhost",
        "ada@example",
        "a..da@example.com",
        "ada@example..com",
        ".ada@example.com",
        "ada.@example.com",
        "ada@.example.com",
        "ada@example.com.",
        "\"ada\"@example.com",
        "ada lovelace@example.com",
        "ada@exa_mple.com",
        "ada@ex@ample.com",
    ];
    for email in cases {
        let body = expect_invalid(app.register_response(email, PASSWORD).await, &["email"]).await;
        assert!(!error_message(&body, "email").is_empty(), "{email:?}");
    }
}

/// `local@` plus three 63-character labels and a last label of `last` characters, `.com`.
fn long_email(last: usize) -> String {
    let label = |c: &str, n: usize| c.repeat(n);
    format!(
        "user@{}.{}.{}.{}.com",
        label("a", 63),
        label("b", 63),
        label("c", 63),
        label("d", last)
    )
}

async fn register_accepts_an_email_of_254_characters_and_refuses_255(app: TestApp) {
    let longest = long_email(53);
    assert_eq!(longest.len(), 254);
    expect_session(
        app.register_response(&longest, PASSWORD).await,
        StatusCode::CREATED,
    )
    .await;
    let too_long = long_email(54);
    assert_eq!(too_long.len(), 255);
    expect_invalid(app.register_response(&too_long, PASSWORD).await, &["email"]).await;
}

async fn login_returns_a_new_session_for_the_normalised_email(app: TestApp) {
    let email = unique_email("login");
    let registered = app.register(&email).await;
    let tokens = app
        .login(&format!("  {} ", email.to_uppercase()), PASSWORD)
        .await;
    assert_eq!(tokens.body["token_type"], "bearer");
    assert_eq!(tokens.body["expires_in"], 3600);
    assert_eq!(tokens.body["user"], registered.body["user"]);
    assert_ne!(tokens.session_id(), registered.session_id());
    assert_ne!(tokens.refresh, registered.refresh);
    assert_eq!(
        app.me_json(&tokens.access).await["id"],
        registered.user_id().as_str()
    );
    assert_eq!(app.sessions(&tokens.access).await.len(), 2);
}

async fn login_answers_unknown_email_and_wrong_password_identically(app: TestApp) {
    let email = unique_email("known");
    app.register(&email).await;
    let wrong = app.login_response(&email, "not the right password").await;
    let wrong_headers = wrong.headers().clone();
    let mut wrong = expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let unknown = app
        .login_response(&unique_email("unknown"), "not the right password")
        .await;
    let unknown_headers = unknown.headers().clone();
    let mut unknown = expect_error(unknown, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    assert_ne!(wrong["request_id"], unknown["request_id"]);
    wrong["request_id"] = Value::Null;
    unknown["request_id"] = Value::Null;
    assert_eq!(wrong, unknown);
    let names = |headers: &reqwest::header::HeaderMap| {
        let mut names: Vec<String> = headers.keys().map(|k| k.as_str().to_string()).collect();
        names.retain(|name| name != "date");
        names.sort();
        names
    };
    assert_eq!(names(&wrong_headers), names(&unknown_headers));
    // Login takes no Bearer token, so its 401 names no scheme to retry with.
    assert!(!wrong_headers.contains_key(reqwest::header::WWW_AUTHENTICATE));
}

async fn login_refuses_a_disabled_account_only_after_the_password(app: TestApp) {
    let email = unique_email("disabled");
    let tokens = app.register(&email).await;
    app.admin_patch(&tokens.user_id(), json!({"disabled": true}))
        .await;
    let wrong = app.login_response(&email, "not the right password").await;
    expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let right = app.login_response(&email, PASSWORD).await;
    expect_error(right, StatusCode::FORBIDDEN, "account_disabled").await;
    app.admin_patch(&tokens.user_id(), json!({"disabled": false}))
        .await;
    app.login(&email, PASSWORD).await;
}

async fn login_with_remember_me_keeps_the_session_for_thirty_days(app: TestApp) {
    let email = unique_email("remember");
    app.register(&email).await;
    let remembered = app.login_remembered(&email, true).await;
    let forgotten = app.login_remembered(&email, false).await;
    let sessions = app.sessions(&remembered.access).await;
    assert_eq!(sessions.len(), 3);
    let lifetime = |sid: &str| {
        let session = sessions.iter().find(|s| s["id"] == sid).expect("listed");
        parse_time(&session["expires_at"]) - parse_time(&session["created_at"])
    };
    assert_eq!(lifetime(&remembered.session_id()), time::Duration::days(30));
    assert_eq!(lifetime(&forgotten.session_id()), time::Duration::days(7));
    let expected = wire_time(app.clock.now() + time::Duration::days(30));
    let listed = sessions
        .iter()
        .find(|s| s["id"] == remembered.session_id().as_str())
        .expect("listed");
    assert_eq!(listed["expires_at"], expected.as_str());
}

async fn login_validates_its_body(app: TestApp) {
    let login = |body: Value| app.post("/api/v1/auth/login", body);
    expect_invalid(login(json!({})).await, &["email", "password"]).await;
    expect_invalid(
        login(json!({"email": "nope", "password": PASSWORD})).await,
        &["email"],
    )
    .await;
    let email = unique_email("validate");
    expect_invalid(
        login(json!({"email": email, "password": ""})).await,
        &["password"],
    )
    .await;
    expect_invalid(
        login(json!({"email": email, "password": 12345678})).await,
        &["password"],
    )
    .await;
    let remember = json!({"email": email, "password": PASSWORD, "remember_me": "yes"});
    expect_invalid(login(remember).await, &["remember_me"]).await;
}

async fn login_verifies_bcrypt_and_outdated_argon2_hashes_and_rehashes_them(app: TestApp) {
    let bcrypt = |version| {
        let hash = bcrypt::hash_with_result(PASSWORD, 4).expect("bcrypt hashes");
        hash.format_for_version(version)
    };
    // Argon2id with other parameters than the app's (m=64, t=1), as an older deployment made.
    let older = HashingConfig {
        memory_kib: 128,
        iterations: 2,
        threads: 1,
        ..HashingConfig::default()
    };
    let older = PasswordHasher::start(&older).expect("hasher starts");
    let argon2 = older
        .hash(Secret::new(PASSWORD.to_string()))
        .await
        .expect("hashes");
    let imported = [
        bcrypt(bcrypt::Version::TwoA),
        bcrypt(bcrypt::Version::TwoB),
        bcrypt(bcrypt::Version::TwoY),
        argon2.as_str().to_string(),
    ];
    let store = app.store().await;
    for hash in imported {
        let email = unique_email("imported");
        let user_id =
            UserId(uuid::Uuid::parse_str(&app.register(&email).await.user_id()).expect("uuid"));
        store
            .replace_password_hash(user_id, &PasswordHash::new(hash.clone()), app.clock.now())
            .await
            .expect("hash imported");
        let wrong = app.login_response(&email, "not the right password").await;
        expect_error(wrong, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
        let still = store
            .find_credentials(user_id)
            .await
            .expect("lookup")
            .expect("user");
        assert_eq!(
            still.password_hash.as_str(),
            hash,
            "a failed login rehashes nothing"
        );
        app.login(&email, PASSWORD).await;
        let stored = store
            .find_credentials(user_id)
            .await
            .expect("lookup")
            .expect("user");
        let stored = stored.password_hash.as_str();
        assert!(
            stored.starts_with("$argon2id$v=19$m=64,t=1,p=1$"),
            "{hash} became {stored}"
        );
        app.login(&email, PASSWORD).await;
    }
}

async fn profile_changes_show_on_the_next_me(app: TestApp) {
    let tokens = app.register(&unique_email("profile")).await;
    let created_at = tokens.body["user"]["created_at"].clone();
    app.advance(2);
    let avatar = "https://cdn.example.com/avatars/grace.png?size=64";
    let response = app
        .patch_profile(
            &tokens.access,
            json!({"full_name": "\u{2003}Grace Hopper ", "avatar_url": avatar}),
        )
        .await;
    let user = expect_json(response, StatusCode::OK).await;
    assert_eq!(sorted_keys(&user), USER_KEYS);
    assert_eq!(user["display_name"], "Grace Hopper");
    assert_eq!(user["avatar_url"], avatar);
    assert_eq!(user["created_at"], created_at);
    assert_eq!(user["updated_at"], wire_time(app.clock.now()).as_str());
    let me = app.me_json(&tokens.access).await;
    assert_eq!(me, user);
    let unauthenticated = app
        .request(Method::PUT, "/api/v1/auth/profile", None, Some(json!({})))
        .await;
    expect_challenge(unauthenticated, "token_missing", "Bearer").await;
}

async fn profile_leaves_absent_fields_and_clears_null_ones(app: TestApp) {
    let tokens = app.register(&unique_email("clear")).await;
    let avatar = "https://example.com/a.png";
    let set = json!({"full_name": "Grace", "avatar_url": avatar});
    expect_json(app.patch_profile(&tokens.access, set).await, StatusCode::OK).await;
    let unchanged = expect_json(
        app.patch_profile(&tokens.access, json!({})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unchanged["display_name"], "Grace");
    assert_eq!(unchanged["avatar_url"], avatar);
    let name_cleared = expect_json(
        app.patch_profile(&tokens.access, json!({"full_name": null}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(name_cleared["display_name"].is_null());
    assert_eq!(name_cleared["avatar_url"], avatar);
    let me = app.me_json(&tokens.access).await;
    assert!(me["display_name"].is_null());
    assert_eq!(me["avatar_url"], avatar);
    let avatar_cleared = expect_json(
        app.patch_profile(&tokens.access, json!({"avatar_url": null}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(avatar_cleared["avatar_url"].is_null());
    assert!(app.me_json(&tokens.access).await["avatar_url"].is_null());
}

async fn profile_refuses_avatar_urls_that_are_not_absolute_https(app: TestApp) {
    let tokens = app.register(&unique_email("avatar")).await;
    let kept = "https://example.com/kept.png";
    expect_json(
        app.patch_profile(&tokens.access, json!({"avatar_url": kept}))
            .await,
        StatusCode::OK,
    )
    .await;
    let too_long = format!("https://example.com/{}", "a".repeat(2029));
    assert_eq!(too_long.len(), 2049);
    let bad = [
        "http://example.com/a.png",
        "",
        "/a.png",
        "a.png",
        "example.com/a.png",
        "https://",
        "ftp://example.com/a",
        "javascript:alert(1)",
        // Repaired into a URL with a host by the parser, but hostless as written and stored.
        "https:///avatars/a.png",
        "https:/cdn.example.com/a.png",
        "https:\\\\cdn.example.com\\a.png",
        too_long.as_str(),
    ];
    for url in bad {
        let response = app
            .patch_profile(&tokens.access, json!({"avatar_url": url}))
            .await;
        expect_invalid(response, &["avatar_url"]).await;
    }
    assert_eq!(app.me_json(&tokens.access).await["avatar_url"], kept);
    let longest = format!("https://example.com/{}", "a".repeat(2028));
    assert_eq!(longest.len(), 2048);
    let user = expect_json(
        app.patch_profile(&tokens.access, json!({"avatar_url": longest}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["avatar_url"], longest.as_str());
}

async fn profile_bounds_full_name_and_refuses_wrong_types(app: TestApp) {
    let tokens = app.register(&unique_email("bounds")).await;
    for body in [
        json!({"full_name": ""}),
        json!({"full_name": " \u{3000} "}),
        json!({"full_name": "a".repeat(101)}),
        json!({"full_name": 5}),
        json!({"full_name": ["Ada"]}),
    ] {
        expect_invalid(
            app.patch_profile(&tokens.access, body).await,
            &["full_name"],
        )
        .await;
    }
    for body in [
        json!({"avatar_url": true}),
        json!({"avatar_url": {"href": "https://example.com"}}),
    ] {
        expect_invalid(
            app.patch_profile(&tokens.access, body).await,
            &["avatar_url"],
        )
        .await;
    }
    let longest = "n".repeat(100);
    let user = expect_json(
        app.patch_profile(&tokens.access, json!({"full_name": longest}))
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(user["display_name"], longest.as_str());
}

async fn profile_names_every_bad_field(app: TestApp) {
    let tokens = app.register(&unique_email("both")).await;
    let body = json!({"full_name": "", "avatar_url": "http://example.com/a.png"});
    expect_invalid(
        app.patch_profile(&tokens.access, body).await,
        &["avatar_url", "full_name"],
    )
    .await;
    let body = json!({"full_name": 1, "avatar_url": ""});
    expect_invalid(
        app.patch_profile(&tokens.access, body).await,
        &["avatar_url", "full_name"],
    )
    .await;
    let me = app.me_json(&tokens.access).await;
    assert!(
        me["display_name"].is_null() && me["avatar_url"].is_null(),
        "nothing changed: {me}"
    );
}
