//! The status page's markup: the HTML page (maud, compiled in, inline CSS, no scripts, nothing
//! from other hosts) and the Atom feed of incident updates, both from one `StatusReport`. Used
//! by the handlers and by `velro status export`; no I/O and no judging happens here.

use std::fmt::Write as _;

use maud::{html, Markup, PreEscaped, DOCTYPE};
use time::OffsetDateTime;
use velro_core::domain::{ComponentState, Incident};
use velro_core::service::{ComponentHistory, StatusReport};

use crate::wire::rfc3339;

/// Where the page's companions are, as seen from the page.
#[derive(Debug, Clone, Copy)]
pub struct Links {
    pub page: &'static str,
    pub json: &'static str,
    pub feed: &'static str,
}

impl Links {
    /// As the service serves them.
    pub const SERVED: Self = Self {
        page: "/status",
        json: "/status.json",
        feed: "/status/feed.atom",
    };
    /// As `velro status export` writes them, side by side in one folder.
    pub const EXPORTED: Self = Self {
        page: "status.html",
        json: "status.json",
        feed: "feed.atom",
    };
}

/// Colours meet 3:1 against white as graphics and 4.5:1 under white text; every colour is
/// also said in words next to it.
const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;background:#f6f8fa}
main{max-width:56rem;margin:0 auto;padding:1rem}
h1{font-size:1.6rem;margin:.5rem 0 1rem}
h2{font-size:1.25rem;margin:2rem 0 .75rem}
h3{font-size:1.05rem;margin:0}
a{color:#0550ae}
.banner{padding:1rem;border-radius:.5rem;color:#fff;font-weight:600;font-size:1.15rem;margin:0}
.card{background:#fff;border:1px solid #d0d7de;border-radius:.5rem;padding:1rem;margin-bottom:.75rem}
.row{display:flex;justify-content:space-between;gap:.5rem 1rem;flex-wrap:wrap;align-items:baseline}
.state{font-weight:600;white-space:nowrap}
.dot{display:inline-block;width:.8rem;height:.8rem;border-radius:50%;margin-right:.4rem}
.muted{color:#59636e}
.reason{margin:.25rem 0 .75rem}
.bars{display:flex;gap:2px;height:2.25rem;margin:0}
.bars span{flex:1;border-radius:2px;min-width:2px}
.axis{display:flex;justify-content:space-between;font-size:.85rem;color:#59636e;margin-top:.25rem}
.s-operational{background:#1a7f37}.s-degraded{background:#9a6700}
.s-partial_outage{background:#bc4c00}.s-major_outage{background:#cf222e}.s-none{background:#afb8c1}
.legend{display:flex;flex-wrap:wrap;gap:.25rem 1rem;padding:0;list-style:none;font-size:.9rem;color:#59636e}
.timeline{list-style:none;padding:0;margin:.75rem 0 0}
.timeline li{border-left:3px solid #d0d7de;padding:.1rem 0 .1rem .75rem;margin-bottom:.6rem}
.message{white-space:pre-line;margin:.2rem 0 0}
.notice{background:#fff8c5;border:1px solid #9a6700;padding:.75rem 1rem;border-radius:.5rem}
footer{color:#59636e;font-size:.9rem;margin:2rem 0 1rem}
.narrow{display:none}
@media (max-width:40rem){
 .bars span:nth-child(-n+60){display:none}
 .wide{display:none}.narrow{display:inline}
 h1{font-size:1.35rem}
}
"#;

fn headline(state: ComponentState) -> &'static str {
    match state {
        ComponentState::Operational => "All systems operational",
        ComponentState::Degraded => "Some systems are degraded",
        ComponentState::PartialOutage => "Partial outage",
        ComponentState::MajorOutage => "Major outage",
    }
}

fn class(state: Option<ComponentState>) -> &'static str {
    match state {
        Some(ComponentState::Operational) => "s-operational",
        Some(ComponentState::Degraded) => "s-degraded",
        Some(ComponentState::PartialOutage) => "s-partial_outage",
        Some(ComponentState::MajorOutage) => "s-major_outage",
        None => "s-none",
    }
}

/// "2026-12-02 14:05 UTC": unambiguous for readers in any time zone.
fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!("{} {:02}:{:02} UTC", t.date(), t.hour(), t.minute())
}

fn percent(share: f64) -> String {
    format!("{:.2}%", share * 100.0)
}

fn history_markup(history: &ComponentHistory) -> Markup {
    let days = history.days.len();
    let outage_days = history
        .days
        .iter()
        .filter(|d| d.worst >= Some(ComponentState::PartialOutage))
        .count();
    let uptime = history.uptime.map_or_else(
        || "no data".to_string(),
        |u| format!("{} uptime", percent(u)),
    );
    let summary = format!("{days}-day history: {uptime}, {outage_days} day(s) with an outage");
    html! {
        div.bars role="img" aria-label=(summary) {
            @for day in &history.days {
                @let label = match (day.worst, day.uptime) {
                    (Some(worst), Some(up)) => format!("{}: {}, {} uptime", day.date, worst.label(), percent(up)),
                    _ => format!("{}: no data", day.date),
                };
                span class=(class(day.worst)) title=(label) {}
            }
        }
        div.axis aria-hidden="true" {
            span.wide { (days) " days ago" }
            span.narrow { "30 days ago" }
            span { (uptime) }
            span { "Today" }
        }
    }
}

fn incident_markup(incident: &Incident) -> Markup {
    html! {
        article.card id=(format!("incident-{}", incident.id)) {
            div.row {
                h3 { (incident.title.as_str()) }
                span.state { (incident.status.label()) }
            }
            p.muted {
                (incident.impact.label())
                @if !incident.components.is_empty() {
                    " · Affects: "
                    (incident.components.iter().map(|c| c.label()).collect::<Vec<_>>().join(", "))
                }
                @if let (true, Some(expected)) = (incident.is_open(), incident.expected_resolution) {
                    br;
                    "Expected resolution: " time datetime=(rfc3339(expected)) { (when(expected)) }
                }
            }
            ol.timeline {
                @for update in &incident.updates {
                    li {
                        strong { (update.status.label()) }
                        " · " time.muted datetime=(rfc3339(update.created_at)) { (when(update.created_at)) }
                        p.message { (update.message.as_str()) }
                    }
                }
            }
        }
    }
}

/// The whole page.
pub fn html(report: &StatusReport, links: Links) -> String {
    let overall = report.overall();
    let (open, resolved): (Vec<&Incident>, Vec<&Incident>) =
        report.incidents.iter().partition(|i| i.is_open());
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                // Reloads itself; no script needed.
                meta http-equiv="refresh" content="60";
                title { "Velro status: " (headline(overall)) }
                link rel="alternate" type="application/atom+xml" title="Incident updates" href=(links.feed);
                // No icon: without this the browser asks the host for /favicon.ico.
                link rel="icon" href="data:,";
                style { (PreEscaped(STYLE)) }
            }
            body {
                main {
                    h1 { "Velro status" }
                    p class={ "banner " (class(Some(overall))) } role="status" {
                        (headline(overall))
                        @match open.len() {
                            0 => {},
                            1 => { " · 1 open incident, see below" },
                            n => { " · " (n) " open incidents, see below" },
                        }
                    }
                    @if report.from_memory {
                        p.notice {
                            "Part of this page could not be refreshed just now: the uptime history and incidents are the last ones this server held."
                        }
                    }
                    @if !open.is_empty() {
                        h2 { "Current incidents" }
                        @for incident in &open { (incident_markup(incident)) }
                    }
                    h2 { "Components" }
                    ul.legend aria-label="Colour legend" {
                        @for state in ComponentState::ALL {
                            li { span class={ "dot " (class(Some(state))) } aria-hidden="true" {} (state.label()) }
                        }
                        li { span class="dot s-none" aria-hidden="true" {} "No data" }
                    }
                    @for component in &report.components {
                        section.card aria-labelledby=(format!("c-{}", component.component.as_str())) {
                            div.row {
                                h3 id=(format!("c-{}", component.component.as_str())) { (component.component.label()) }
                                span.state {
                                    span class={ "dot " (class(Some(component.state))) } aria-hidden="true" {}
                                    (component.state.label())
                                }
                            }
                            p.reason.muted { (component.reason) }
                            // The state above is what the checks measured; an operator's open
                            // incident on this component is said next to it, not hidden by it.
                            @for incident in open.iter().filter(|i| i.components.contains(&component.component)) {
                                p.reason {
                                    "Open incident: "
                                    a href=(format!("#incident-{}", incident.id)) { (incident.title.as_str()) }
                                    " (" (incident.impact.label().to_lowercase()) ")"
                                }
                            }
                            @if let Some(history) = report.history.iter().find(|h| h.component == component.component) {
                                (history_markup(history))
                            }
                        }
                    }
                    @if !resolved.is_empty() {
                        h2 { "Recently resolved" }
                        @for incident in &resolved { (incident_markup(incident)) }
                    }
                    footer {
                        p {
                            "Checked " time datetime=(rfc3339(report.generated_at)) { (when(report.generated_at)) }
                            ". This page refreshes every minute. "
                            a href=(links.feed) { "Subscribe to incident updates (Atom)" }
                            " · "
                            a href=(links.json) { "JSON" }
                        }
                    }
                }
            }
        }
    };
    page.into_string()
}

/// Escapes text for XML, dropping the characters XML 1.0 cannot carry at all.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c.is_control() || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}

/// A fixed identity for the feed, so that readers recognise it wherever it is published.
const FEED_ID: &str = "urn:uuid:5b0e6c2e-8f1d-4c57-9a36-2f7d0b4e91c3";
/// Entries in the feed at most.
const FEED_ENTRIES: usize = 100;

/// The Atom feed: one entry per incident update, newest first.
pub fn atom(report: &StatusReport, links: Links) -> String {
    let mut entries: Vec<(&Incident, &velro_core::domain::IncidentUpdate)> = report
        .incidents
        .iter()
        .flat_map(|i| i.updates.iter().map(move |u| (i, u)))
        .collect();
    entries.sort_by_key(|(_, u)| std::cmp::Reverse((u.created_at, u.id)));
    entries.truncate(FEED_ENTRIES);
    let updated = entries
        .first()
        .map_or(report.generated_at, |(_, u)| u.created_at);
    let mut feed = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        feed,
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\">\n\
         <title>Velro status: incident updates</title>\n\
         <id>{FEED_ID}</id>\n\
         <updated>{}</updated>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{}\"/>\n\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{}\"/>\n\
         <author><name>Velro operations</name></author>\n",
        rfc3339(updated),
        xml(links.page),
        xml(links.feed),
    );
    for (incident, update) in entries {
        let _ = write!(
            feed,
            "<entry>\n\
             <id>urn:uuid:{}</id>\n\
             <title>{}: {}</title>\n\
             <updated>{}</updated>\n\
             <link rel=\"alternate\" type=\"text/html\" href=\"{}#incident-{}\"/>\n\
             <content type=\"text\">{}</content>\n\
             </entry>\n",
            update.id,
            xml(update.status.label()),
            xml(incident.title.as_str()),
            rfc3339(update.created_at),
            xml(links.page),
            incident.id,
            xml(update.message.as_str()),
        );
    }
    feed.push_str("</feed>\n");
    feed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped_and_unrepresentable_characters_dropped() {
        assert_eq!(
            xml("<a href=\"x\">&'</a>\u{1}\u{FFFE}\n"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;\n"
        );
    }
}
