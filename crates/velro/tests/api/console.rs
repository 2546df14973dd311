//! The operations dashboard at /admin: signing in (admin account or service key), the console
//! cookie and its idle timeout, CSRF on every form, the charts, the request lists, the flags and
//! the support actions.

use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, SET_COOKIE};
use reqwest::{Response, StatusCode};
use serde_json::{json, Value};
use velro::startup::Application;

use crate::both_stores;
use crate::helpers::{unique_email, TestApp, PASSWORD, SERVICE_KEY};

both_stores!(
    an_admin_account_signs_in_with_a_strict_http_only_cookie,
    an_account_that_is_not_an_admin_is_refused_and_its_login_session_ended,
    the_service_key_signs_in_and_a_wrong_key_is_refused,
    the_cookie_is_secure_only_when_a_trusted_proxy_says_https,
    forms_without_or_with_a_wrong_csrf_token_are_refused,
    the_console_session_ends_after_the_idle_timeout_and_on_sign_out,
    a_revoked_or_demoted_admin_loses_the_console,
    charts_are_svg_with_data_after_traffic,
    recent_errors_and_slowest_requests_are_listed_without_secrets,
    a_flag_change_is_recorded_and_applies_to_another_instance,
    support_finds_a_user_revokes_sessions_and_changes_the_account,
    the_console_and_the_supabase_surface_at_the_root_are_served_together,
    console_sign_in_attempts_fall_under_the_login_rate_limit,
);

/// A browser on the console: follows no redirect and sends its console cookie back.
struct Browser<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookie: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .expect("client"),
            cookie: None,
        }
    }

    async fn post_form(&self, path: &str, form: &[(&str, &str)], headers: HeaderMap) -> Response {
        let mut request = self
            .client
            .post(self.app.url(path))
            .form(form)
            .headers(headers);
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("velro_console={cookie}"));
        }
        request.send().await.expect("sent")
    }

    async fn get(&self, path: &str) -> Response {
        let mut request = self.client.get(self.app.url(path));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", format!("velro_console={cookie}"));
        }
        request.send().await.expect("sent")
    }

    async fn page(&self, path: &str) -> String {
        let response = self.get(path).await;
        assert_eq!(response.status(), StatusCode::OK, "GET {path}");
        response.text().await.expect("body")
    }

    /// Signs in with a form; keeps the cookie on success and returns the response.
    async fn sign_in(&mut self, form: &[(&str, &str)]) -> Response {
        let response = self
            .post_form("/admin/sign-in", form, HeaderMap::new())
            .await;
        if let Some(value) = set_cookie(&response) {
            let value = value.split(';').next().unwrap_or_default();
            self.cookie = value
                .strip_prefix("velro_console=")
                .map(str::to_string)
                .filter(|v| !v.is_empty());
        }
        response
    }

    async fn sign_in_with_key(&mut self) {
        let response = self.sign_in(&[("service_key", SERVICE_KEY)]).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert!(self.cookie.is_some());
    }

    /// The CSRF token the dashboard's forms carry.
    async fn csrf(&self) -> String {
        let page = self.page("/admin").await;
        let marker = "name=\"csrf\" value=\"";
        let start = page.find(marker).expect("a form with a CSRF token") + marker.len();
        page[start..]
            .split('"')
            .next()
            .expect("the token")
            .to_string()
    }

    async fn signed_in(&self) -> bool {
        let page = self.page("/admin").await;
        page.contains("Run-time flags")
    }
}

fn set_cookie(response: &Response) -> Option<String> {
    response
        .headers()
        .get(SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A registered account made an admin through the admin API.
async fn admin_account(app: &TestApp) -> (String, String) {
    let email = unique_email("operator");
    let tokens = app.register(&email).await;
    let id = tokens.user_id();
    app.admin_patch(&id, json!({"role": "admin"})).await;
    (email, id)
}

async fn an_admin_account_signs_in_with_a_strict_http_only_cookie(app: TestApp) {
    let (email, _) = admin_account(&app).await;
    let mut browser = Browser::new(&app);
    let page = browser.page("/admin").await;
    assert!(page.contains("Sign in") && !page.contains("Run-time flags"));
    let response = browser
        .sign_in(&[("email", &email), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[LOCATION], "/admin");
    let cookie = set_cookie(&response).expect("a cookie");
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/admin"] {
        assert!(cookie.contains(attribute), "{cookie} has {attribute}");
    }
    // The server's idle timeout ends it; a lifetime in the browser would end an active one.
    assert!(
        !cookie.contains("Max-Age") && !cookie.contains("Expires"),
        "{cookie}"
    );
    assert!(!cookie.contains("Secure"), "plain HTTP, no proxy: {cookie}");
    assert!(browser.signed_in().await);
    let dashboard = browser.get("/admin").await;
    let csp = dashboard.headers()["content-security-policy"]
        .to_str()
        .expect("ascii")
        .to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'sha256-"));
    assert!(!dashboard.text().await.expect("body").contains(&email));
}

async fn an_account_that_is_not_an_admin_is_refused_and_its_login_session_ended(app: TestApp) {
    let email = unique_email("viewer");
    let tokens = app.register(&email).await;
    let mut browser = Browser::new(&app);
    let response = browser
        .sign_in(&[("email", &email), ("password", PASSWORD)])
        .await;
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(set_cookie(&response).is_none());
    assert!(response
        .text()
        .await
        .expect("body")
        .contains("not an administrator"));
    // Only the registration's session is live: the console login's was revoked at once.
    assert_eq!(app.sessions(&tokens.access).await.len(), 1);
    let wrong = browser
        .sign_in(&[("email", &email), ("password", "not the password at all")])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(!browser.signed_in().await);
}

async fn the_service_key_signs_in_and_a_wrong_key_is_refused(app: TestApp) {
    let mut browser = Browser::new(&app);
    let wrong = browser
        .sign_in(&[(
            "service_key",
            "a-wrong-key-0123456789abcdefghijklmnopqrstuv",
        )])
        .await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong).is_none());
    browser.sign_in_with_key().await;
    let page = browser.page("/admin").await;
    assert!(page.contains("signed in with the service key"));
}

async fn the_cookie_is_secure_only_when_a_trusted_proxy_says_https(app: TestApp) {
    let mut https = HeaderMap::new();
    https.insert("x-forwarded-proto", "https".parse().expect("header"));
    let untrusted = Browser::new(&app)
        .post_form(
            "/admin/sign-in",
            &[("service_key", SERVICE_KEY)],
            https.clone(),
        )
        .await;
    let cookie = set_cookie(&untrusted).expect("a cookie");
    assert!(
        !cookie.contains("Secure"),
        "an untrusted peer's word: {cookie}"
    );

    let proxied = app
        .with_config(|c| c.trusted_proxies = vec!["127.0.0.1".into()])
        .await;
    let trusted = Browser::new(&proxied)
        .post_form("/admin/sign-in", &[("service_key", SERVICE_KEY)], https)
        .await;
    let cookie = set_cookie(&trusted).expect("a cookie");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let mut forwarded = HeaderMap::new();
    forwarded.insert(
        "forwarded",
        "for=10.0.0.1;proto=https".parse().expect("header"),
    );
    let trusted = Browser::new(&proxied)
        .post_form("/admin/sign-in", &[("service_key", SERVICE_KEY)], forwarded)
        .await;
    assert!(set_cookie(&trusted).expect("a cookie").contains("; Secure"));
}

async fn flags(app: &TestApp) -> Value {
    let response = app.admin(reqwest::Method::GET, "/flags", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.expect("json")
}

async fn forms_without_or_with_a_wrong_csrf_token_are_refused(app: TestApp) {
    let mut browser = Browser::new(&app);
    browser.sign_in_with_key().await;
    let before = flags(&app).await["cache"].clone();
    let off = [("flag", "cache"), ("value", "off")];
    let missing = browser
        .post_form("/admin/flags", &off, HeaderMap::new())
        .await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let wrong = browser
        .post_form(
            "/admin/flags",
            &[("flag", "cache"), ("value", "off"), ("csrf", "forged")],
            HeaderMap::new(),
        )
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    // Another console session's token is no good either.
    let mut other = Browser::new(&app);
    other.sign_in_with_key().await;
    let foreign = other.csrf().await;
    let stolen = browser
        .post_form(
            "/admin/flags",
            &[("flag", "cache"), ("value", "off"), ("csrf", &foreign)],
            HeaderMap::new(),
        )
        .await;
    assert_eq!(stolen.status(), StatusCode::FORBIDDEN);
    let sign_out = browser
        .post_form("/admin/sign-out", &[], HeaderMap::new())
        .await;
    assert_eq!(sign_out.status(), StatusCode::FORBIDDEN);
    assert_eq!(flags(&app).await["cache"], before);
    assert!(browser.signed_in().await);

    let csrf = browser.csrf().await;
    let done = browser
        .post_form(
            "/admin/flags",
            &[("flag", "cache"), ("value", "off"), ("csrf", &csrf)],
            HeaderMap::new(),
        )
        .await;
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert_eq!(flags(&app).await["cache"], false);
}

async fn the_console_session_ends_after_the_idle_timeout_and_on_sign_out(app: TestApp) {
    let mut browser = Browser::new(&app);
    browser.sign_in_with_key().await;
    // Activity keeps it alive: two steps of 10 minutes, each within the 15-minute timeout.
    app.advance(600);
    assert!(browser.signed_in().await);
    app.advance(600);
    assert!(browser.signed_in().await);
    // The page's own reloads (charts, request lists) do not count as activity: an unattended
    // dashboard still times out.
    app.advance(600);
    assert_eq!(
        browser.get("/admin/charts/requests.svg").await.status(),
        StatusCode::OK
    );
    assert_eq!(
        browser.get("/admin/requests").await.status(),
        StatusCode::OK
    );
    app.advance(301);
    assert_eq!(
        browser.get("/admin/requests").await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert!(!browser.signed_in().await);
    assert_eq!(
        browser.get("/admin/charts/requests.svg").await.status(),
        StatusCode::UNAUTHORIZED
    );

    browser.sign_in_with_key().await;
    let csrf = browser.csrf().await;
    let out = browser
        .post_form("/admin/sign-out", &[("csrf", &csrf)], HeaderMap::new())
        .await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(set_cookie(&out).expect("cleared").contains("Max-Age=0"));
    // The old cookie, replayed, is dead on the server.
    assert!(!browser.signed_in().await);
}

async fn a_revoked_or_demoted_admin_loses_the_console(app: TestApp) {
    let (email, id) = admin_account(&app).await;
    let mut browser = Browser::new(&app);
    browser
        .sign_in(&[("email", &email), ("password", PASSWORD)])
        .await;
    assert!(browser.signed_in().await);
    app.admin_patch(&id, json!({"role": "viewer"})).await;
    assert!(!browser.signed_in().await);

    app.admin_patch(&id, json!({"role": "admin"})).await;
    browser
        .sign_in(&[("email", &email), ("password", PASSWORD)])
        .await;
    assert!(browser.signed_in().await);
    app.admin_patch(&id, json!({"disabled": true})).await;
    assert!(!browser.signed_in().await);
}

async fn charts_are_svg_with_data_after_traffic(app: TestApp) {
    let mut browser = Browser::new(&app);
    browser.sign_in_with_key().await;
    for _ in 0..5 {
        app.client
            .get(app.url("/health"))
            .send()
            .await
            .expect("sent");
    }
    let response = browser.get("/admin/charts/requests.svg").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[CONTENT_TYPE], "image/svg+xml");
    let svg = response.text().await.expect("body");
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.contains("GET /health"), "the route is drawn");
    assert!(svg.contains("<polyline"), "a line is drawn");
    for chart in ["latency", "statuses", "cache", "pool", "hashing", "limits"] {
        let response = browser.get(&format!("/admin/charts/{chart}.svg")).await;
        assert_eq!(response.status(), StatusCode::OK, "{chart}");
        assert!(response.text().await.expect("body").contains("<svg"));
    }
    assert_eq!(
        browser.get("/admin/charts/nothing.svg").await.status(),
        StatusCode::NOT_FOUND
    );
    let page = browser.page("/admin").await;
    assert!(page.contains("/admin/charts/latency.svg") && page.contains("setInterval"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "nothing from another host"
    );
    let anonymous = Browser::new(&app).get("/admin/charts/requests.svg").await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
}

async fn recent_errors_and_slowest_requests_are_listed_without_secrets(app: TestApp) {
    let mut browser = Browser::new(&app);
    browser.sign_in_with_key().await;
    let email = unique_email("secret");
    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("x-request-id", "find-me-in-the-console")
        .json(&json!({"email": email, "password": "hunter2-is-my-password"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let fragment = browser.page("/admin/requests").await;
    assert!(fragment.contains("find-me-in-the-console"));
    assert!(fragment.contains("POST /api/v1/auth/login"));
    assert!(fragment.contains("401"));
    assert!(!fragment.contains(&email) && !fragment.contains("hunter2"));
    let page = browser.page("/admin").await;
    assert!(page.contains("find-me-in-the-console") && page.contains("Slowest recent requests"));
}

async fn a_flag_change_is_recorded_and_applies_to_another_instance(app: TestApp) {
    // A second instance on the same database (and Redis), as behind a load balancer.
    let twin = Application::build(&app.config)
        .await
        .expect("second instance");
    let twin_url = format!("http://{}", twin.local_addr().expect("bound"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(twin.run_until_stopped(async move {
        let _ = stopped.await;
    }));
    let twin_flags = || async {
        app.client
            .get(format!("{twin_url}/api/v1/admin/flags"))
            .bearer_auth(SERVICE_KEY)
            .send()
            .await
            .expect("sent")
            .json::<Value>()
            .await
            .expect("json")
    };
    assert_eq!(twin_flags().await["cache"], true);

    let (_, id) = admin_account(&app).await;
    let email = app.admin_user(&id).await["email"]
        .as_str()
        .expect("email")
        .to_string();
    let mut browser = Browser::new(&app);
    browser
        .sign_in(&[("email", &email), ("password", PASSWORD)])
        .await;
    let csrf = browser.csrf().await;
    let off = browser
        .post_form(
            "/admin/flags",
            &[("flag", "cache"), ("value", "off"), ("csrf", &csrf)],
            HeaderMap::new(),
        )
        .await;
    assert_eq!(off.status(), StatusCode::SEE_OTHER);
    assert_eq!(flags(&app).await["cache"], false);
    let page = browser.page("/admin").await;
    assert!(
        page.contains(&format!("user:{id}")),
        "who changed it is shown"
    );
    assert!(page.contains("Switch the cache on"));

    // The twin reads the record within its sync period; a bounded wait, not a sleep-and-hope.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        if twin_flags().await["cache"] == false {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the twin never switched"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // The admin API records its changes too.
    let response = app
        .admin(reqwest::Method::PUT, "/flags", Some(json!({"cache": true})))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(browser.page("/admin").await.contains("service-key"));
    drop(stop);
}

async fn support_finds_a_user_revokes_sessions_and_changes_the_account(app: TestApp) {
    let mut browser = Browser::new(&app);
    browser.sign_in_with_key().await;
    let email = unique_email("support");
    let first = app.register(&email).await;
    let second = app.login(&email, PASSWORD).await;
    let id = first.user_id();

    let by_email = browser
        .page(&format!("/admin/accounts?q={}", email.to_uppercase()))
        .await;
    assert!(by_email.contains(&id));
    assert!(by_email.contains("Live sessions (2)"));
    assert!(!by_email.contains(&email), "the email is shown masked");
    let by_id = browser.page(&format!("/admin/accounts?q={id}")).await;
    assert!(by_id.contains(&first.session_id()) && by_id.contains(&second.session_id()));
    let nobody = browser.page("/admin/accounts?q=nobody%40example.com").await;
    assert!(nobody.contains("No user matches"));

    let csrf = browser.csrf().await;
    let post = |path: String, form: Vec<(&'static str, String)>| {
        let browser = &browser;
        let csrf = csrf.clone();
        async move {
            let mut form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
            form.push(("csrf", &csrf));
            browser.post_form(&path, &form, HeaderMap::new()).await
        }
    };
    let revoke_one = post(
        format!("/admin/accounts/{id}/revoke"),
        vec![("session", second.session_id())],
    )
    .await;
    assert_eq!(revoke_one.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.me(&second.access).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.me(&first.access).await.status(), StatusCode::OK);
    let revoke_all = post(format!("/admin/accounts/{id}/revoke"), vec![]).await;
    assert_eq!(revoke_all.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        app.me(&first.access).await.status(),
        StatusCode::UNAUTHORIZED
    );

    for (form, field, value) in [
        (
            vec![
                ("action", "role".to_string()),
                ("role", "creator".to_string()),
            ],
            "role",
            json!("creator"),
        ),
        (
            vec![
                ("action", "credits".to_string()),
                ("credits_balance", "42".to_string()),
            ],
            "credits_balance",
            json!(42),
        ),
        (
            vec![("action", "disable".to_string())],
            "disabled",
            json!(true),
        ),
        (
            vec![("action", "enable".to_string())],
            "disabled",
            json!(false),
        ),
    ] {
        let done = post(format!("/admin/accounts/{id}"), form).await;
        assert_eq!(done.status(), StatusCode::SEE_OTHER, "{field}");
        assert_eq!(app.admin_user(&id).await[field], value, "{field}");
    }
    let bad = post(
        format!("/admin/accounts/{id}"),
        vec![
            ("action", "credits".to_string()),
            ("credits_balance", "-1".to_string()),
        ],
    )
    .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn console_sign_in_attempts_fall_under_the_login_rate_limit(app: TestApp) {
    let app = app
        .with_config(|c| {
            c.rate_limits = velro::config::Switch::On;
            c.rate_limit_login_ip = "3/1m".parse().expect("quota");
        })
        .await;
    let (email, _) = admin_account(&app).await;
    let mut browser = Browser::new(&app);
    for _ in 0..3 {
        let wrong = browser
            .sign_in(&[(
                "service_key",
                "a-wrong-key-0123456789abcdefghijklmnopqrstuv",
            )])
            .await;
        assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    }
    for form in [
        vec![("service_key", SERVICE_KEY)],
        vec![("email", email.as_str()), ("password", PASSWORD)],
    ] {
        let refused = browser.sign_in(&form).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(refused.headers().contains_key(reqwest::header::RETRY_AFTER));
        assert!(set_cookie(&refused).is_none());
    }
    assert!(browser.cookie.is_none());
}

async fn the_console_and_the_supabase_surface_at_the_root_are_served_together(app: TestApp) {
    let app = app.with_config(|c| c.supabase_at_root = true).await;
    let mut browser = Browser::new(&app);
    browser.sign_in_with_key().await;
    let email = unique_email("both");
    let id = app.register(&email).await.user_id();
    assert!(browser
        .page(&format!("/admin/accounts?q={id}"))
        .await
        .contains("Live sessions (1)"));
}
