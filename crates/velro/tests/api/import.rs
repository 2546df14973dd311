//! `velro import supabase` against a real PostgreSQL holding a Supabase `auth` schema seeded
//! with real bcrypt hashes: ids kept, old passwords and live sessions work through the v1
//! API, bans and deletions hold, and reruns are idempotent. Velro's own store is SQLite or
//! PostgreSQL, like every API test.

use std::ops::Range;
use std::sync::OnceLock;

use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use velro::import::{import_into, Report, SupabaseArgs};
use velro_core::domain::UserId;
use velro_supabasetest::{Kind, SeededUser};

use crate::both_stores;
use crate::helpers::{expect_error, expect_json, sign_jwt, TestApp, JWT_SECRET};

/// Made once per test process: bcrypt at GoTrue's cost is slow in a debug build.
fn hashes() -> &'static [String] {
    static HASHES: OnceLock<Vec<String>> = OnceLock::new();
    HASHES.get_or_init(|| velro_supabasetest::password_hashes().expect("bcrypt hashes"))
}

/// A fresh Supabase-shaped database holding users `range`.
async fn supabase(range: Range<u64>) -> Option<String> {
    let url = velro_pgtest::fresh_database().await?;
    velro_supabasetest::create_schema(&url)
        .await
        .expect("the auth schema is created");
    seed(&url, range).await;
    Some(url)
}

async fn seed(url: &str, range: Range<u64>) {
    velro_supabasetest::seed(url, range, hashes())
        .await
        .expect("the fixture is seeded");
}

fn args(from: &str, dry_run: bool) -> SupabaseArgs {
    SupabaseArgs {
        from: from.to_owned(),
        dry_run,
        profiles_table: Some("public.profiles".to_owned()),
        profiles_key: "id".to_owned(),
        map: vec![
            "display_name=full_name".to_owned(),
            "role=role".to_owned(),
            "credits=credits".to_owned(),
        ],
        batch_size: 7,
    }
}

async fn import(app: &TestApp, from: &str, dry_run: bool) -> Report {
    import_into(&app.config, app.clock.clone(), &args(from, dry_run))
        .await
        .expect("the import runs")
}

fn first(kind: Kind) -> SeededUser {
    (0..)
        .map(velro_supabasetest::user)
        .find(|u| u.kind == kind)
        .expect("the fixture has one")
}

fn live(user: &SeededUser, session: usize) -> String {
    user.sessions[session]
        .live_token
        .clone()
        .expect("a live token")
}

/// In 0..40: 2 anonymous and 4 soft-deleted users stay behind.
const IMPORTED_OF_40: u64 = 34;

async fn imported_users_keep_their_ids_passwords_and_profiles(app: TestApp) {
    let Some(from) = supabase(0..40).await else {
        return;
    };
    let report = import(&app, &from, false).await;
    assert_eq!(report.users.read, 40);
    assert_eq!(report.users.imported, IMPORTED_OF_40, "{report}");
    assert_eq!(report.users.skipped_total(), 6, "{report}");
    // Counts and reasons only: no hash, no token.
    let printed = report.to_string();
    assert!(!printed.contains("$2"), "{printed}");
    for seeded in (0..40).map(velro_supabasetest::user) {
        for session in &seeded.sessions {
            for token in session.spent_tokens.iter().chain(&session.live_token) {
                assert!(!printed.contains(token.as_str()), "{printed}");
            }
        }
    }

    let ada = velro_supabasetest::user(0);
    let password = ada.password.expect("a password");
    let tokens = app.login(&ada.email, password).await;
    assert_eq!(tokens.user_id(), ada.id.to_string());
    let me = app.me_json(&tokens.access).await;
    assert_eq!(me["display_name"], "Seed User 0");
    assert_eq!(me["role"], "creator");
    assert_eq!(me["credits_balance"], 100);
    assert_eq!(me["email_confirmed"], true);
    // The bcrypt hash verified as it was and was replaced by an Argon2id one at that sign-in.
    let stored = app
        .store()
        .await
        .find_credentials(UserId(ada.id))
        .await
        .expect("the store answers")
        .expect("the user is there");
    assert!(stored.password_hash.as_str().starts_with("$argon2id$"));
    app.login(&ada.email, password).await;

    // Stored with capitals by hand, signs in lowercased; its unknown profile role is viewer.
    let mixed = first(Kind::MixedCaseEmail);
    let tokens = app
        .login(&mixed.email, mixed.password.expect("a password"))
        .await;
    assert_eq!(app.me_json(&tokens.access).await["role"], "viewer");
    let unconfirmed = first(Kind::Unconfirmed);
    let tokens = app
        .login(
            &unconfirmed.email,
            unconfirmed.password.expect("a password"),
        )
        .await;
    assert_eq!(app.me_json(&tokens.access).await["email_confirmed"], false);

    let banned = first(Kind::Banned);
    let response = app
        .login_response(&banned.email, banned.password.expect("a password"))
        .await;
    expect_error(response, StatusCode::FORBIDDEN, "account_disabled").await;
    let response = app.refresh_response(&live(&banned, 0)).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;

    for kind in [Kind::SoftDeletedKept, Kind::OAuthOnly] {
        let user = (0..40)
            .map(velro_supabasetest::user)
            .find(|u| u.kind == kind)
            .expect("seeded");
        let password = velro_supabasetest::PASSWORDS[(user.index % 4) as usize];
        let response = app.login_response(&user.email, password).await;
        expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    }
}

async fn imported_refresh_tokens_refresh_and_spent_ones_are_reuse(app: TestApp) {
    let Some(from) = supabase(0..40).await else {
        return;
    };
    import(&app, &from, false).await;

    let ada = velro_supabasetest::user(0);
    let refreshed = app.refresh(&live(&ada, 0)).await;
    assert_eq!(refreshed.session_id(), ada.sessions[0].id.to_string());
    assert_eq!(refreshed.user_id(), ada.id.to_string());
    // The token Velro issued rotates in turn; the imported one is now spent.
    app.refresh(&refreshed.refresh).await;

    // GoTrue's v2 scheme: the live token computed from the session's key and counter.
    let v2 = first(Kind::V2Session);
    let refreshed = app.refresh(&live(&v2, 0)).await;
    assert_eq!(refreshed.session_id(), v2.sessions[0].id.to_string());

    // A token Supabase spent long ago is reuse: the session goes, the other one stays.
    let two = first(Kind::TwoSessions);
    let stolen = two.sessions[0].spent_tokens[0].clone();
    let response = app.refresh_response(&stolen).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "refresh_token_reused").await;
    let response = app.refresh_response(&live(&two, 0)).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
    app.refresh(&live(&two, 1)).await;

    // Signed out on Supabase: nothing to carry over.
    let signed_out = first(Kind::SignedOut);
    let last = signed_out.sessions[0]
        .spent_tokens
        .last()
        .expect("tokens")
        .clone();
    let response = app.refresh_response(&last).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
}

async fn a_second_run_changes_nothing_and_a_later_run_brings_only_new_sign_ups(app: TestApp) {
    let Some(from) = supabase(0..40).await else {
        return;
    };
    let first_run = import(&app, &from, false).await;
    // A sign-in here rehashes; the rerun must keep that hash.
    let ada = velro_supabasetest::user(0);
    app.login(&ada.email, ada.password.expect("a password"))
        .await;

    let second = import(&app, &from, false).await;
    assert!(second.changed_nothing(), "{second}");
    assert_eq!(second.users.unchanged, IMPORTED_OF_40);
    assert_eq!(second.sessions.unchanged, first_run.sessions.imported);
    app.login(&ada.email, ada.password.expect("a password"))
        .await;

    seed(&from, 40..60).await;
    let third = import(&app, &from, false).await;
    assert_eq!(third.users.read, 60);
    assert_eq!(third.users.imported, 17, "{third}");
    assert_eq!(third.users.updated, 0, "{third}");
    assert_eq!(third.users.unchanged, IMPORTED_OF_40);
    assert_eq!(third.sessions.updated, 0, "{third}");
    let newcomer = velro_supabasetest::user(40);
    let tokens = app
        .login(&newcomer.email, newcomer.password.expect("a password"))
        .await;
    assert_eq!(tokens.user_id(), newcomer.id.to_string());

    // Supabase rotates a session after an import: the next import carries the new token.
    let busy = velro_supabasetest::user(8);
    let pool = sqlx::PgPool::connect(&from).await.expect("connects");
    velro_supabasetest::rotate_legacy(&pool, busy.sessions[0].id, "rotatedafter")
        .await
        .expect("rotates")
        .expect("the session was live");
    pool.close().await;
    let fourth = import(&app, &from, false).await;
    assert_eq!(fourth.sessions.updated, 1, "{fourth}");
    assert_eq!(fourth.users.imported + fourth.users.updated, 0, "{fourth}");
    let refreshed = app.refresh("rotatedafter").await;
    assert_eq!(refreshed.session_id(), busy.sessions[0].id.to_string());

    // Rotated here since: Velro is ahead and the import leaves the session alone.
    let fifth = import(&app, &from, false).await;
    assert!(fifth.changed_nothing(), "{fifth}");
    app.refresh(&refreshed.refresh).await;

    // Signed out on Supabase after an import (GoTrue deletes the session row): revoked here.
    let leaving = velro_supabasetest::user(10);
    let pool = sqlx::PgPool::connect(&from).await.expect("connects");
    sqlx::query("DELETE FROM auth.sessions WHERE id = $1")
        .bind(leaving.sessions[0].id)
        .execute(&pool)
        .await
        .expect("signs out");
    pool.close().await;
    let sixth = import(&app, &from, false).await;
    assert_eq!(sixth.sessions_ended, 1, "{sixth}");
    let response = app.refresh_response(&live(&leaving, 0)).await;
    expect_error(response, StatusCode::UNAUTHORIZED, "refresh_token_invalid").await;
}

async fn a_dry_run_reports_what_it_would_do_and_writes_nothing(app: TestApp) {
    let Some(from) = supabase(0..20).await else {
        return;
    };
    let dry = import(&app, &from, true).await;
    assert!(dry.dry_run);
    assert_eq!(dry.users.imported, 17, "{dry}");
    assert!(dry.sessions.imported > 0, "{dry}");
    assert!(dry.to_string().contains("nothing written"));
    let ada = velro_supabasetest::user(0);
    let response = app
        .login_response(&ada.email, ada.password.expect("a password"))
        .await;
    expect_error(response, StatusCode::UNAUTHORIZED, "invalid_credentials").await;
    let real = import(&app, &from, false).await;
    assert_eq!(real.users.imported, dry.users.imported);
    assert_eq!(real.sessions.imported, dry.sessions.imported);
}

/// A GoTrue grant as the official clients send it.
async fn grant(app: &TestApp, grant_type: &str, body: Value) -> Response {
    app.client
        .post(app.url(&format!("/auth/v1/token?grant_type={grant_type}")))
        .header("x-supabase-api-version", "2024-01-01")
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

async fn imported_accounts_sign_in_and_refresh_through_the_supabase_surface(app: TestApp) {
    let Some(from) = supabase(0..40).await else {
        return;
    };
    import(&app, &from, false).await;

    let ada = velro_supabasetest::user(12);
    assert_eq!(ada.kind, Kind::Normal);
    let password = ada.password.expect("a password");
    let body = json!({"email": ada.email, "password": password});
    let session = expect_json(grant(&app, "password", body).await, StatusCode::OK).await;
    assert_eq!(session["user"]["id"], ada.id.to_string());
    let stored = app
        .store()
        .await
        .find_credentials(UserId(ada.id))
        .await
        .expect("the store answers")
        .expect("the user is there");
    assert!(stored.password_hash.as_str().starts_with("$argon2id$"));

    // The token the client got from Supabase before the switch.
    let body = json!({"refresh_token": live(&ada, 0)});
    let refreshed = expect_json(grant(&app, "refresh_token", body).await, StatusCode::OK).await;
    assert_eq!(refreshed["user"]["id"], ada.id.to_string());
    let v2 = first(Kind::V2Session);
    let body = json!({"refresh_token": live(&v2, 0)});
    let refreshed = expect_json(grant(&app, "refresh_token", body).await, StatusCode::OK).await;
    assert_eq!(refreshed["user"]["id"], v2.id.to_string());

    let banned = first(Kind::Banned);
    let body = json!({"email": banned.email, "password": banned.password.expect("a password")});
    let refused = expect_json(grant(&app, "password", body).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["code"], "user_banned", "{refused}");

    // GoTrue's rule for an address never confirmed: the right password, and still no session.
    let unconfirmed = first(Kind::Unconfirmed);
    let body = json!({
        "email": unconfirmed.email,
        "password": unconfirmed.password.expect("a password"),
    });
    let refused = expect_json(grant(&app, "password", body).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["code"], "email_not_confirmed", "{refused}");
    let resend = app
        .client
        .post(app.url("/auth/v1/resend"))
        .json(&json!({"type": "signup", "email": unconfirmed.email}))
        .send()
        .await
        .expect("the request is sent");
    assert_eq!(resend.status(), StatusCode::OK);
    assert_eq!(app.mail_to(&unconfirmed.email).len(), 1);
}

/// What Supabase issued before the switch keeps working until it expires: an access token
/// GoTrue signed with the project's JWT secret (the one Velro is configured with) for a session
/// the import carried over.
async fn access_tokens_supabase_issued_before_the_switch_stay_valid(app: TestApp) {
    let Some(from) = supabase(0..40).await else {
        return;
    };
    import(&app, &from, false).await;
    let ada = velro_supabasetest::user(12);
    assert_eq!(ada.kind, Kind::Normal);
    let now = velro_core::clock::Clock::now(app.clock.as_ref()).unix_timestamp();
    let claims = json!({
        "aud": "authenticated",
        "exp": now + 1_800,
        "iat": now - 1_800,
        "iss": "http://localhost:8000/auth/v1",
        "sub": ada.id.to_string(),
        "email": ada.email,
        "phone": "",
        "app_metadata": {"provider": "email", "providers": ["email"]},
        "user_metadata": {},
        "role": "authenticated",
        "aal": "aal1",
        "amr": [{"method": "password", "timestamp": now - 1_800}],
        "session_id": ada.sessions[0].id.to_string(),
        "is_anonymous": false,
    });
    let token = sign_jwt(&claims, JWT_SECRET, jsonwebtoken::Algorithm::HS256);
    let user = app
        .client
        .get(app.url("/auth/v1/user"))
        .header("x-supabase-api-version", "2024-01-01")
        .bearer_auth(&token)
        .send()
        .await
        .expect("request sent");
    let user = expect_json(user, StatusCode::OK).await;
    assert_eq!(user["id"], ada.id.to_string());

    // Once it has expired, it is refused like any other.
    app.advance(1_800 + 60);
    let expired = app
        .client
        .get(app.url("/auth/v1/user"))
        .header("x-supabase-api-version", "2024-01-01")
        .bearer_auth(&token)
        .send()
        .await
        .expect("request sent");
    assert_eq!(expired.status(), StatusCode::FORBIDDEN);
}

both_stores!(
    access_tokens_supabase_issued_before_the_switch_stay_valid,
    imported_accounts_sign_in_and_refresh_through_the_supabase_surface,
    imported_users_keep_their_ids_passwords_and_profiles,
    imported_refresh_tokens_refresh_and_spent_ones_are_reuse,
    a_second_run_changes_nothing_and_a_later_run_brings_only_new_sign_ups,
    a_dry_run_reports_what_it_would_do_and_writes_nothing,
);
