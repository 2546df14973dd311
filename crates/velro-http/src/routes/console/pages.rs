//! The console's HTML, as maud templates compiled into the binary, with inline CSS and the few
//! inline lines of script that reload the charts and the request lists.

use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use velro_core::domain::{SessionRecord, User};
use velro_core::service::Operator;
use velro_core::store::FlagChange;

use super::charts::CHARTS;
use super::Console;
use crate::monitor::RequestNote;

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1b1f24}\
header{background:#1b1f24;color:#fff;padding:.6rem 1rem;display:flex;justify-content:space-between;align-items:center}\
header a{color:#fff}h1{font-size:1.4rem}\
main{padding:1rem;max-width:1400px;margin:auto}section{background:#fff;border-radius:6px;padding:1rem;margin-bottom:1rem}\
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(440px,1fr));gap:.5rem}.charts img{width:100%;height:auto}\
table{border-collapse:collapse;width:100%;font-size:.9rem}td,th{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #dde}\
button{cursor:pointer}.error{color:#a00;font-weight:bold}form.inline{display:inline}";

/// Reloads every chart and the request lists every few seconds, without reloading the page.
const REFRESH: &str = "setInterval(function(){var t=Date.now();\
document.querySelectorAll('img[data-chart]').forEach(function(i){i.src=i.dataset.chart+'?t='+t;});\
fetch('/admin/requests',{credentials:'same-origin'}).then(function(r){return r.ok?r.text():null})\
.then(function(h){if(h){document.getElementById('requests').innerHTML=h;}});},5000);";

/// The pages' policy: their own inline style and script (by hash), images and fetches from this
/// origin, and nothing from anywhere else.
pub(super) fn content_security_policy() -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use sha2::{Digest, Sha256};
    let hash = |text: &str| STANDARD.encode(Sha256::digest(text.as_bytes()));
    format!(
        "default-src 'none'; img-src 'self' data:; connect-src 'self'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'",
        hash(STYLE),
        hash(REFRESH)
    )
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · Velro" }
                // No icon: without this the browser asks for /favicon.ico, a 404 in the console.
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) }
            }
            body { (body) }
        }
    }
}

fn time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// `j***@example.com`: enough to recognise, not enough to harvest.
pub(super) fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

pub(super) fn sign_in(message: Option<&str>) -> Markup {
    page(
        "Sign in",
        html! {
            header { strong { "Velro operations" } }
            main {
                section {
                    h1 { "Sign in" }
                    @if let Some(message) = message { p.error role="alert" { (message) } }
                    form method="post" action="/admin/sign-in" {
                        h2 { "With an admin account" }
                        p { label { "Email " input type="email" name="email" autocomplete="username"; } }
                        p { label { "Password " input type="password" name="password" autocomplete="current-password"; } }
                        button type="submit" { "Sign in" }
                    }
                    form method="post" action="/admin/sign-in" {
                        h2 { "With the service key" }
                        p { label { "Service key " input type="password" name="service_key" autocomplete="off"; } }
                        button type="submit" { "Sign in" }
                    }
                }
            }
        },
    )
}

fn top(console: &Console) -> Markup {
    let who = match &console.operator {
        Operator::ServiceKey => "the service key".to_string(),
        Operator::Admin { user_id, .. } => format!("admin {user_id}"),
    };
    html! {
        header {
            span { strong { a href="/admin" { "Velro operations" } } " · signed in with " (who) }
            form.inline method="post" action="/admin/sign-out" {
                input type="hidden" name="csrf" value=(console.csrf());
                button type="submit" { "Sign out" }
            }
        }
    }
}

pub(super) fn requests(errors: &[RequestNote], slowest: &[RequestNote]) -> Markup {
    let table = |notes: &[RequestNote]| {
        html! {
            table {
                thead { tr { th { "Time" } th { "Route" } th { "Status" } th { "Duration (ms)" } th { "Request id" } } }
                tbody {
                    @for note in notes {
                        tr {
                            td { (time(note.at)) }
                            td { (note.method) " " (note.route) }
                            td { (note.status) }
                            td { (format!("{:.1}", note.duration_ms)) }
                            td { code { (note.request_id) } }
                        }
                    }
                }
            }
        }
    };
    html! {
        h2 { "Recent errors" }
        @if errors.is_empty() { p { "None since this instance started." } } @else { (table(errors)) }
        h2 { "Slowest recent requests" }
        @if slowest.is_empty() { p { "No requests yet." } } @else { (table(slowest)) }
    }
}

pub(super) fn dashboard(
    console: &Console,
    cache: bool,
    changes: &[FlagChange],
    errors: &[RequestNote],
    slowest: &[RequestNote],
) -> Markup {
    let csrf = console.csrf();
    page(
        "Dashboard",
        html! {
            (top(console))
            main {
                section {
                    h1 { "Live (this instance, last 15 minutes)" }
                    div.charts {
                        @for (name, title) in CHARTS {
                            img src=(format!("/admin/charts/{name}.svg")) data-chart=(format!("/admin/charts/{name}.svg")) alt=(title) width="640" height="300";
                        }
                    }
                }
                section #flags {
                    h2 { "Run-time flags" }
                    p { "Changes apply to every instance sharing this database within a second." }
                    table {
                        tr {
                            th { "cache" }
                            td #flag-cache { @if cache { "on" } @else { "off" } }
                            td {
                                form.inline method="post" action="/admin/flags" {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="flag" value="cache";
                                    input type="hidden" name="value" value=(if cache { "off" } else { "on" });
                                    button #toggle-cache type="submit" { @if cache { "Switch the cache off" } @else { "Switch the cache on" } }
                                }
                            }
                        }
                    }
                    h3 { "Changes" }
                    @if changes.is_empty() { p { "No change recorded." } } @else {
                        table {
                            thead { tr { th { "When" } th { "Flag" } th { "Old" } th { "New" } th { "Who" } } }
                            tbody {
                                @for change in changes {
                                    tr { td { (time(change.changed_at)) } td { (change.flag) } td { (change.old_value) } td { (change.new_value) } td { (change.actor) } }
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { "Find a user" }
                    form method="get" action="/admin/accounts" {
                        label { "Email or id " input type="search" name="q"; }
                        " " button type="submit" { "Find" }
                    }
                }
                section #requests { (requests(errors, slowest)) }
            }
            script { (PreEscaped(REFRESH)) }
        },
    )
}

pub(super) fn user(
    console: &Console,
    needle: &str,
    found: Option<&(User, Vec<SessionRecord>)>,
) -> Markup {
    let csrf = console.csrf();
    page(
        "User",
        html! {
            (top(console))
            main {
                section {
                    form method="get" action="/admin/accounts" {
                        label { "Email or id " input type="search" name="q" value=(needle); }
                        " " button type="submit" { "Find" }
                    }
                }
                @match found {
                    None => { @if !needle.is_empty() { section { p { "No user matches." } } } }
                    Some((user, sessions)) => {
                        @let action = format!("/admin/accounts/{}", user.id);
                        @let revoke = format!("/admin/accounts/{}/revoke", user.id);
                        section {
                            h1 { "User " code { (user.id) } }
                            table {
                                tr { th { "Email" } td { (mask_email(user.email.as_str())) } }
                                tr { th { "Role" } td #user-role { (user.role.as_str()) } }
                                tr { th { "Credits" } td #user-credits { (user.credits_balance) } }
                                tr { th { "Disabled" } td #user-disabled { (user.disabled) } }
                                tr { th { "Created" } td { (time(user.created_at)) } }
                            }
                            p {
                                form.inline method="post" action=(action) {
                                    input type="hidden" name="csrf" value=(csrf);
                                    input type="hidden" name="action" value=(if user.disabled { "enable" } else { "disable" });
                                    button type="submit" { @if user.disabled { "Enable" } @else { "Disable (revokes every session)" } }
                                }
                            }
                            form method="post" action=(action) {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="action" value="role";
                                label { "Role " select name="role" {
                                    @for role in ["viewer", "creator", "admin"] {
                                        option value=(role) selected[role == user.role.as_str()] { (role) }
                                    }
                                } }
                                " " button type="submit" { "Change role" }
                            }
                            form method="post" action=(action) {
                                input type="hidden" name="csrf" value=(csrf);
                                input type="hidden" name="action" value="credits";
                                label { "Credits " input type="number" min="0" name="credits_balance" value=(user.credits_balance); }
                                " " button type="submit" { "Set credits" }
                            }
                        }
                        section {
                            h2 { "Live sessions (" (sessions.len()) ")" }
                            form method="post" action=(revoke) {
                                input type="hidden" name="csrf" value=(csrf);
                                button type="submit" { "Revoke every session" }
                            }
                            table {
                                thead { tr { th { "Session" } th { "Created" } th { "Expires" } th { "Address" } th { "Agent" } th {} } }
                                tbody {
                                    @for session in sessions {
                                        tr {
                                            td { code { (session.id) } }
                                            td { (time(session.created_at)) }
                                            td { (time(session.expires_at)) }
                                            td { (session.ip.as_deref().unwrap_or("-")) }
                                            td { (session.user_agent.as_deref().unwrap_or("-")) }
                                            td {
                                                form.inline method="post" action=(revoke) {
                                                    input type="hidden" name="csrf" value=(csrf);
                                                    input type="hidden" name="session" value=(session.id.to_string());
                                                    button type="submit" { "Revoke" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}
