//! The public status page, its JSON and feed, the admin incident routes, and
//! `velro status export`.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use velro::status::StatusCommand;
use velro_core::domain::{unix_minute, Component, ComponentState, StatusSample};
use velro_core::{Clock, SystemClock};

use crate::both_stores;
use crate::helpers::{expect_error, expect_invalid, expect_json, unique_email, TestApp};

both_stores!(
    an_incident_is_opened_updated_listed_and_shown_on_the_page,
    an_open_incident_sets_the_headline_even_while_every_check_passes,
    every_bad_incident_field_is_named,
    an_expected_resolution_in_the_past_is_refused,
    an_update_to_an_unknown_incident_is_not_found,
    incidents_need_the_service_key,
    the_status_json_judges_every_component_with_a_90_day_history,
    the_page_is_cacheable_self_contained_html_linked_from_the_home_page,
    the_feed_is_well_formed_atom_with_the_text_escaped,
    the_export_writes_the_page_json_and_feed_from_the_database,
);

async fn open(app: &TestApp, body: Value) -> Value {
    expect_json(
        app.admin(Method::POST, "/incidents", Some(body)).await,
        StatusCode::CREATED,
    )
    .await
}

async fn status_json(app: &TestApp) -> Value {
    let response = app
        .client
        .get(app.url("/status.json"))
        .send()
        .await
        .expect("sent");
    expect_json(response, StatusCode::OK).await
}

fn component<'a>(status: &'a Value, id: &str) -> &'a Value {
    status["components"]
        .as_array()
        .expect("components")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no component {id} in {status}"))
}

async fn an_incident_is_opened_updated_listed_and_shown_on_the_page(app: TestApp) {
    let opened = open(
        &app,
        json!({
            "title": "Sign-in <slow> & flaky",
            "status": "investigating",
            "impact": "major",
            "message": "Sign-in takes up to 30 s.\nWe are on it.",
            "components": ["auth_api", "database", "auth_api"],
            "expected_resolution": "2999-01-01T12:00:00Z",
        }),
    )
    .await;
    let id = opened["id"].as_str().expect("an id").to_string();
    assert_eq!(opened["status"], "investigating");
    assert_eq!(opened["impact"], "major");
    assert_eq!(opened["components"], json!(["auth_api", "database"]));
    assert_eq!(opened["expected_resolution"], "2999-01-01T12:00:00Z");
    assert_eq!(opened["resolved_at"], Value::Null);
    assert_eq!(opened["updates"].as_array().map(Vec::len), Some(1));

    let page = status_json(&app).await;
    assert_eq!(page["incidents"][0]["id"], id.as_str());
    let html = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("HTML");
    assert!(html.contains("Current incidents"), "{html}");
    assert!(html.contains("Sign-in &lt;slow&gt; &amp; flaky"), "{html}");
    assert!(!html.contains("<slow>"));
    assert!(html.contains("Expected resolution"));

    let updated = expect_json(
        app.admin(
            Method::PATCH,
            &format!("/incidents/{id}"),
            Some(json!({"status": "resolved", "message": "Fixed: a pool was too small."})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["status"], "resolved");
    assert!(updated["resolved_at"].is_string(), "{updated}");
    let statuses: Vec<&str> = updated["updates"]
        .as_array()
        .expect("updates")
        .iter()
        .filter_map(|u| u["status"].as_str())
        .collect();
    assert_eq!(statuses, ["resolved", "investigating"]);

    let listed = expect_json(
        app.admin(Method::GET, "/incidents", None).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(listed["incidents"][0]["id"], id.as_str());
    assert_eq!(listed["incidents"][0]["status"], "resolved");

    // Resolved: below, no longer "current".
    let html = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("HTML");
    assert!(!html.contains("Current incidents"), "{html}");
    assert!(html.contains("Recently resolved"), "{html}");
    assert_eq!(
        status_json(&app).await["incidents"][0]["status"],
        "resolved"
    );
}

async fn status_html(app: &TestApp) -> String {
    let response = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("HTML")
}

/// The banner paragraph: its class (the colour) and its text.
fn banner(html: &str) -> (String, String) {
    let start = html
        .find("<p class=\"banner ")
        .unwrap_or_else(|| panic!("no banner: {html}"));
    let rest = &html[start + "<p class=\"banner ".len()..];
    let class = rest[..rest.find('"').expect("class ends")].to_string();
    let text =
        rest[rest.find('>').expect("tag ends") + 1..rest.find("</p>").expect("ends")].to_string();
    (class, text)
}

async fn an_open_incident_sets_the_headline_even_while_every_check_passes(app: TestApp) {
    let before = status_json(&app).await;
    assert_eq!(before["status"], "operational", "{before}");
    let (class, text) = banner(&status_html(&app).await);
    assert_eq!(class, "s-operational");
    assert_eq!(text, "All systems operational");

    let minor = open(
        &app,
        json!({"title": "Password-reset mail is late", "status": "investigating",
               "impact": "minor", "message": "Some mails take minutes.", "components": ["email"]}),
    )
    .await;
    assert_eq!(status_json(&app).await["status"], "degraded");
    let major = open(
        &app,
        json!({"title": "Sign-in is slow", "status": "identified", "impact": "major",
               "message": "Sign-in takes up to 30 s.", "components": ["auth_api"]}),
    )
    .await;

    let during = status_json(&app).await;
    assert_eq!(during["status"], "partial_outage", "{during}");
    // The components keep what the checks measured.
    assert_eq!(component(&during, "auth_api")["state"], "operational");
    let html = status_html(&app).await;
    let (class, text) = banner(&html);
    assert_eq!(class, "s-partial_outage");
    assert_eq!(text, "Partial outage · 2 open incidents, see below");
    assert!(!html.contains("All systems operational"), "{html}");
    assert!(
        html.contains("<title>Velro status: Partial outage</title>"),
        "{html}"
    );
    // Next to the measured state, the component names the incident that concerns it.
    let sign_in = &html[html.find("id=\"c-auth_api\"").expect("the sign-in card")..];
    let sign_in = &sign_in[..sign_in.find("</section>").expect("card ends")];
    assert!(
        sign_in.contains(&format!(
            "href=\"#incident-{}\"",
            major["id"].as_str().expect("id")
        )) && sign_in.contains("Sign-in is slow"),
        "{sign_in}"
    );
    assert!(
        !sign_in.contains("Password-reset mail is late"),
        "{sign_in}"
    );

    // Once both are resolved, the checks alone make the headline again.
    for incident in [&major, &minor] {
        let id = incident["id"].as_str().expect("an id");
        expect_json(
            app.admin(
                Method::PATCH,
                &format!("/incidents/{id}"),
                Some(json!({"status": "resolved", "message": "Fixed."})),
            )
            .await,
            StatusCode::OK,
        )
        .await;
    }
    assert_eq!(status_json(&app).await["status"], "operational");
    let (class, text) = banner(&status_html(&app).await);
    assert_eq!(
        (class.as_str(), text.as_str()),
        ("s-operational", "All systems operational")
    );
}

async fn every_bad_incident_field_is_named(app: TestApp) {
    let body = expect_invalid(
        app.admin(
            Method::POST,
            "/incidents",
            Some(json!({
                "title": "  ",
                "status": "panicking",
                "impact": "huge",
                "components": ["auth_api", "the moon"],
                "expected_resolution": "tomorrow",
            })),
        )
        .await,
        &[
            "components",
            "expected_resolution",
            "impact",
            "message",
            "status",
            "title",
        ],
    )
    .await;
    assert!(
        body["errors"].to_string().contains("investigating"),
        "{body}"
    );
    expect_invalid(
        app.admin(
            Method::PATCH,
            &format!("/incidents/{}", uuid::Uuid::now_v7()),
            Some(json!({"status": "done", "message": ""})),
        )
        .await,
        &["message", "status"],
    )
    .await;
    expect_invalid(
        app.admin(
            Method::POST,
            "/incidents",
            Some(json!({"title": "x".repeat(201), "status": "identified", "impact": "minor", "message": "m"})),
        )
        .await,
        &["title"],
    )
    .await;
}

async fn an_expected_resolution_in_the_past_is_refused(app: TestApp) {
    expect_invalid(
        app.admin(
            Method::POST,
            "/incidents",
            Some(json!({
                "title": "Outage",
                "status": "identified",
                "impact": "critical",
                "message": "Fixing",
                "expected_resolution": "2001-01-01T00:00:00Z",
            })),
        )
        .await,
        &["expected_resolution"],
    )
    .await;
}

async fn an_update_to_an_unknown_incident_is_not_found(app: TestApp) {
    for id in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_string()] {
        expect_error(
            app.admin(
                Method::PATCH,
                &format!("/incidents/{id}"),
                Some(json!({"status": "monitoring", "message": "Watching"})),
            )
            .await,
            StatusCode::NOT_FOUND,
            "not_found",
        )
        .await;
    }
}

async fn incidents_need_the_service_key(app: TestApp) {
    let user = app.register(&unique_email("status")).await;
    for (bearer, status, code) in [
        (None, StatusCode::UNAUTHORIZED, "invalid_service_key"),
        (
            Some("wrong"),
            StatusCode::UNAUTHORIZED,
            "invalid_service_key",
        ),
        (
            Some(user.access.as_str()),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
    ] {
        for method in [Method::GET, Method::POST] {
            let response = app.admin_as(bearer, method, "/incidents").await;
            expect_error(response, status, code).await;
        }
    }
}

async fn the_status_json_judges_every_component_with_a_90_day_history(app: TestApp) {
    let user = app.register(&unique_email("status")).await;
    assert_eq!(app.me(&user.access).await.status(), StatusCode::OK);
    // The judgement is held for 5 s of the app's clock.
    app.advance(6);
    let status = status_json(&app).await;
    assert_eq!(status["status"], "operational", "{status}");
    assert_eq!(status["from_memory"], false);
    let ids: Vec<&str> = status["components"]
        .as_array()
        .expect("components")
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        ["auth_api", "token_checks", "database", "cache", "email"]
    );
    for c in status["components"].as_array().expect("components") {
        assert_eq!(c["state"], "operational", "{c}");
        assert!(c["reason"].as_str().is_some_and(|r| !r.is_empty()), "{c}");
        assert_eq!(c["history"].as_array().map(Vec::len), Some(90), "{c}");
    }
    assert_eq!(
        component(&status, "auth_api")["reason"],
        "No failed requests in the last 5 minutes"
    );
    assert!(component(&status, "database")["reason"]
        .as_str()
        .is_some_and(|r| r.starts_with("Database answering in ")));
    // Nothing internal: no address, no host, no request id.
    let text = status.to_string();
    for internal in [
        "127.0.0.1",
        "localhost",
        "postgres://",
        "sqlite",
        "request_id",
    ] {
        assert!(!text.contains(internal), "{internal} in {text}");
    }
}

async fn the_page_is_cacheable_self_contained_html_linked_from_the_home_page(app: TestApp) {
    let response = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("content-type"), "text/html; charset=utf-8");
    assert_eq!(header("cache-control"), "public, max-age=5");
    let csp = header("content-security-policy");
    assert!(csp.starts_with("default-src 'none'"), "{csp}");
    assert!(!csp.contains("script-src"), "{csp}");
    let html = response.text().await.expect("HTML");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<h1>Velro status</h1>"));
    assert!(html.contains("All systems operational"), "{html}");
    // Every colour is said in words too.
    for label in [
        "Operational",
        "Degraded performance",
        "Partial outage",
        "Major outage",
        "No data",
    ] {
        assert!(html.contains(label), "{label}");
    }
    // Nothing from other hosts, no scripts.
    for foreign in ["http://", "https://", "<script", "src="] {
        assert!(!html.contains(foreign), "{foreign} in the page");
    }
    let home = app
        .client
        .get(app.url("/"))
        .header("accept", "text/html")
        .send()
        .await
        .expect("sent")
        .text()
        .await
        .expect("HTML");
    assert!(home.contains("href=\"/status\""), "{home}");
}

async fn the_feed_is_well_formed_atom_with_the_text_escaped(app: TestApp) {
    let title = "Tokens <refused> & \"retried\"";
    let message = "Use ]]> and <script>alert(1)</script> & 'quotes'";
    let opened = open(
        &app,
        json!({"title": title, "status": "identified", "impact": "minor", "message": message}),
    )
    .await;
    let id = opened["id"].as_str().expect("id");
    expect_json(
        app.admin(
            Method::PATCH,
            &format!("/incidents/{id}"),
            Some(json!({"status": "monitoring", "message": "A fix is out."})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let response = app
        .client
        .get(app.url("/status/feed.atom"))
        .send()
        .await
        .expect("sent");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/atom+xml; charset=utf-8")
    );
    let feed = response.text().await.expect("text");
    let document = roxmltree::Document::parse(&feed).expect("well-formed XML");
    let root = document.root_element();
    assert_eq!(root.tag_name().name(), "feed");
    assert_eq!(
        root.tag_name().namespace(),
        Some("http://www.w3.org/2005/Atom")
    );
    let entries: Vec<_> = root
        .children()
        .filter(|n| n.has_tag_name("entry"))
        .collect();
    assert_eq!(entries.len(), 2);
    let text_of = |entry: &roxmltree::Node, tag: &str| {
        entry
            .children()
            .find(|n| n.has_tag_name(tag))
            .and_then(|n| n.text())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(
        text_of(&entries[0], "title"),
        format!("Monitoring: {title}")
    );
    assert_eq!(
        text_of(&entries[1], "title"),
        format!("Identified: {title}")
    );
    assert_eq!(text_of(&entries[1], "content"), message);
    for entry in &entries {
        assert!(text_of(entry, "id").starts_with("urn:uuid:"));
        assert!(!text_of(entry, "updated").is_empty());
    }
}

async fn the_export_writes_the_page_json_and_feed_from_the_database(app: TestApp) {
    open(
        &app,
        json!({"title": "Mail delayed", "status": "monitoring", "impact": "minor", "message": "Queued mail is going out."}),
    )
    .await;
    // What an instance recorded this minute; the worse state stands whatever else is recorded.
    let minute = unix_minute(SystemClock.now());
    app.store()
        .await
        .record_status(
            &[StatusSample {
                component: Component::Email,
                minute,
                state: ComponentState::PartialOutage,
                reason: "3 of 10 deliveries failed in the last hour".into(),
            }],
            0,
        )
        .await
        .expect("records");
    let dir = app.data_dir.path().join("public");
    velro::status::run(&app.config, &StatusCommand::Export { dir: dir.clone() })
        .await
        .expect("exports");

    let json: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("status.json")).expect("status.json"),
    )
    .expect("JSON");
    let email = component(&json, "email");
    assert_eq!(email["state"], "partial_outage", "{json}");
    assert_eq!(
        email["reason"],
        "3 of 10 deliveries failed in the last hour"
    );
    assert_eq!(json["incidents"][0]["title"], "Mail delayed");
    let today = email["history"]
        .as_array()
        .and_then(|days| days.last())
        .expect("today");
    assert_eq!(today["state"], "partial_outage");

    let html = std::fs::read_to_string(dir.join("status.html")).expect("status.html");
    assert!(html.contains("Mail delayed"));
    // Links that work side by side on any host.
    assert!(html.contains("href=\"feed.atom\""), "{html}");
    assert!(html.contains("href=\"status.json\""), "{html}");
    let feed = std::fs::read_to_string(dir.join("feed.atom")).expect("feed.atom");
    roxmltree::Document::parse(&feed).expect("well-formed XML");
    assert!(!dir.join("status.html.tmp").exists());
}

/// PostgreSQL really down (connections refused), after the page has been seen once: the page
/// still answers, from memory, and says which components are down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_down_the_page_answers_from_memory_and_says_so() {
    let Some(app) = TestApp::postgres().await else {
        return;
    };
    open(
        &app,
        json!({"title": "Planned maintenance", "status": "monitoring", "impact": "none", "message": "All good."}),
    )
    .await;
    assert_eq!(status_json(&app).await["status"], "operational");

    let url = app
        .config
        .database_url
        .as_ref()
        .expect("a URL")
        .expose()
        .clone();
    let mut admin_url = url::Url::parse(&url).expect("a URL");
    let database = admin_url.path().trim_start_matches('/').to_string();
    admin_url.set_path("/postgres");
    let admin_url = admin_url.to_string();
    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&admin_url)
        .await
        .expect("connects to the maintenance database");
    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS false"
    ))
    .execute(&mut admin)
    .await
    .expect("refuses new connections");
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND pid <> pg_backend_pid()",
    )
    .bind(&database)
    .execute(&mut admin)
    .await
    .expect("ends the app's connections");

    app.advance(6);
    let status = status_json(&app).await;
    assert_eq!(status["status"], "major_outage", "{status}");
    assert_eq!(component(&status, "database")["state"], "major_outage");
    assert_eq!(component(&status, "auth_api")["state"], "major_outage");
    assert_eq!(status["from_memory"], true);
    assert_eq!(status["incidents"][0]["title"], "Planned maintenance");
    let reason = component(&status, "database")["reason"]
        .as_str()
        .expect("a reason")
        .to_string();
    assert!(reason.starts_with("Database "), "{reason}");
    assert!(!reason.contains(&database), "{reason}");
    let page = app
        .client
        .get(app.url("/status"))
        .send()
        .await
        .expect("sent");
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("HTML");
    assert!(html.contains("Major outage"), "{html}");
    assert!(html.contains("could not be refreshed"), "{html}");

    sqlx::query(&format!(
        "ALTER DATABASE \"{database}\" ALLOW_CONNECTIONS true"
    ))
    .execute(&mut admin)
    .await
    .expect("allows connections again");
}
