//! The Grafana dashboard (deploy/grafana/velro.json) and the Prometheus alert rules
//! (deploy/prometheus/alerts.yml) query only metrics that the service really exports: every
//! metric name in their PromQL is checked against a live /metrics after some traffic. promtool
//! checks the rules' syntax and behaviour in CI; this catches a renamed or never-exported metric,
//! which both tools would accept as a query that is silently empty.

use std::collections::BTreeSet;
use std::path::PathBuf;

use reqwest::StatusCode;
use serde_json::Value;
use velro::config::Switch;

use crate::both_stores;
use crate::helpers::{unique_email, TestApp, PASSWORD};

/// Series that Prometheus makes itself rather than scraping them from the service.
const MADE_BY_PROMETHEUS: &[&str] = &["up"];

/// PromQL words that look like metric names but are not: binary operators, modifiers and the
/// number literals.
const KEYWORDS: &[&str] = &[
    "and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
];

/// Aggregations, which may put their `by (…)` before the parenthesis: `sum by (le) (…)`.
const AGGREGATIONS: &[&str] = &[
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// Modifiers followed by a parenthesised list of label names.
const LABEL_LISTS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

fn repository_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path);
    std::fs::read_to_string(&full)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", full.display()))
}

/// The index just past the delimiter that closes the one at `open`, skipping quoted strings.
fn past_closing(chars: &[char], open: usize, close: char) -> usize {
    let opener = chars[open];
    let mut depth = 0;
    let mut i = open;
    while i < chars.len() {
        match chars[i] {
            '"' | '\'' | '`' => i = past_string(chars, i) - 1,
            c if c == opener => depth += 1,
            c if c == close => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
    panic!(
        "unbalanced {opener} in {:?}",
        chars.iter().collect::<String>()
    );
}

/// The index just past the string literal that starts at `start`.
fn past_string(chars: &[char], start: usize) -> usize {
    let quote = chars[start];
    let mut i = start + 1;
    while i < chars.len() {
        match chars[i] {
            '\\' if quote != '`' => i += 1,
            c if c == quote => return i + 1,
            _ => {}
        }
        i += 1;
    }
    panic!(
        "unterminated string in {:?}",
        chars.iter().collect::<String>()
    );
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || c == ':'
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == ':'
}

/// The metric names a PromQL expression (or Grafana's `label_values(selector, label)`) selects:
/// label matchers, range durations, label lists after `by` and the like, function names,
/// keywords, numbers and Grafana variables (`$job`, `${x}`, `$__rate_interval`) are not.
fn metric_names_in(expr: &str) -> BTreeSet<String> {
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' || c == '`' {
            i = past_string(&chars, i);
        } else if c == '{' {
            i = past_closing(&chars, i, '}');
        } else if c == '[' {
            i = past_closing(&chars, i, ']');
        } else if c == '$' {
            i += 1;
            if chars.get(i) == Some(&'{') {
                i = past_closing(&chars, i, '}');
            } else {
                while i < chars.len() && is_name_char(chars[i]) {
                    i += 1;
                }
            }
        } else if c.is_ascii_digit() || c == '.' {
            // Numbers and durations (0.99, 1e-3, 5m).
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if is_name_start(c) {
            let start = i;
            while i < chars.len() && is_name_char(chars[i]) {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let rest: String = chars[next..].iter().collect();
            let is_call = rest.starts_with('(')
                || (AGGREGATIONS.contains(&word.as_str())
                    && ["by", "without"].iter().any(|modifier| {
                        rest.strip_prefix(modifier)
                            .is_some_and(|after| !after.starts_with(is_name_char))
                    }));
            if LABEL_LISTS.contains(&word.as_str()) {
                if rest.starts_with('(') {
                    i = past_closing(&chars, next, ')');
                }
            } else if word == "label_values" && rest.starts_with('(') {
                let end = past_closing(&chars, next, ')');
                let inside: String = chars[next + 1..end - 1].iter().collect();
                // With two arguments the first is a selector and the second a label name.
                if let Some((selector, _label)) = inside.rsplit_once(',') {
                    names.extend(metric_names_in(selector));
                }
                i = end;
            } else if !is_call && !KEYWORDS.contains(&word.to_ascii_lowercase().as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The `expr:` values of a rules file: plain one-line scalars and `|` blocks, the two forms
/// alerts.yml uses. Any other form fails loudly rather than being skipped.
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let trimmed = line.trim_start();
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        let indent = line.len() - trimmed.len();
        if value == "|" || value == "|-" {
            let block: Vec<&str> = lines[index + 1..]
                .iter()
                .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
                .map(|l| l.trim())
                .collect();
            exprs.push(block.join(" "));
        } else {
            assert!(
                !value.is_empty() && !value.starts_with(['"', '\'', '>', '|']),
                "alerts.yml line {}: write expr as a plain scalar or a | block",
                index + 1
            );
            exprs.push(value.to_string());
        }
    }
    exprs
}

/// Every PromQL string in a Grafana dashboard: each target's `expr` and each query variable's
/// query (a string, or an object whose `query` is one).
fn dashboard_expressions(dashboard: &Value) -> Vec<String> {
    fn walk(value: &Value, found: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, inner) in map {
                    if let ("expr", Value::String(expr)) = (key.as_str(), inner) {
                        found.push(expr.clone());
                    }
                    walk(inner, found);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, found)),
            _ => {}
        }
    }
    let mut found = Vec::new();
    walk(dashboard, &mut found);
    for variable in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        if variable["type"] == "query" {
            let query = &variable["query"];
            let text = query["query"]
                .as_str()
                .or_else(|| query.as_str())
                .expect("a query variable has a query");
            found.push(text.to_string());
        }
    }
    found
}

/// The names of the samples in a Prometheus text exposition (a histogram's are its `_bucket`,
/// `_sum` and `_count` series, exactly as PromQL must name them).
fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

/// Traffic that makes every metric the files query exist: sign-up, sign-in, cached session
/// checks, a logout (an invalidation), failed sign-ins until the back-off refuses one.
async fn exercise(app: &TestApp) -> String {
    let email = unique_email("dashboards");
    let tokens = app.register(&email).await;
    assert_eq!(tokens.body["user"]["email"], email.as_str());
    let tokens = app.login(&email, PASSWORD).await;
    for _ in 0..2 {
        assert_eq!(app.me(&tokens.access).await.status(), StatusCode::OK);
    }
    assert_eq!(
        app.logout(&tokens.access, None).await.status(),
        StatusCode::OK
    );
    let mut refused = false;
    for _ in 0..10 {
        let response = app.login_response(&email, "not the password at all").await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = true;
            break;
        }
    }
    assert!(refused, "the failed-login back-off refused an attempt");
    let response = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("exposition text")
}

fn missing(wanted: &BTreeSet<String>, exposed: &BTreeSet<String>) -> Vec<String> {
    wanted
        .iter()
        .filter(|name| !exposed.contains(*name) && !MADE_BY_PROMETHEUS.contains(&name.as_str()))
        .cloned()
        .collect()
}

async fn every_metric_the_dashboard_and_the_alerts_query_is_exported(app: TestApp) {
    let app = app
        .with_config(|config| config.rate_limits = Switch::On)
        .await;
    let exposed = exposed_names(&exercise(&app).await);

    let dashboard: Value = serde_json::from_str(&repository_file("deploy/grafana/velro.json"))
        .expect("deploy/grafana/velro.json is JSON");
    let panels = dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels");
    for panel in panels.iter().filter(|panel| panel["type"] != "row") {
        let targets = panel["targets"].as_array().map_or(&[][..], Vec::as_slice);
        assert!(
            !targets.is_empty()
                && targets
                    .iter()
                    .all(|t| t["expr"].as_str().is_some_and(|e| !e.trim().is_empty())),
            "panel {:?} has queries, none empty",
            panel["title"]
        );
    }
    let dashboard_names: BTreeSet<String> = dashboard_expressions(&dashboard)
        .iter()
        .flat_map(|expr| metric_names_in(expr))
        .collect();
    assert!(dashboard_names.len() >= 10, "found {dashboard_names:?}");
    assert_eq!(
        missing(&dashboard_names, &exposed),
        Vec::<String>::new(),
        "metrics the dashboard queries but /metrics does not have"
    );

    let rule_names: BTreeSet<String> =
        rule_expressions(&repository_file("deploy/prometheus/alerts.yml"))
            .iter()
            .flat_map(|expr| metric_names_in(expr))
            .collect();
    assert!(rule_names.len() >= 6, "found {rule_names:?}");
    assert_eq!(
        missing(&rule_names, &exposed),
        Vec::<String>::new(),
        "metrics the alert rules query but /metrics does not have"
    );
}

both_stores!(every_metric_the_dashboard_and_the_alerts_query_is_exported);

#[test]
fn metric_names_leave_out_labels_functions_durations_and_variables() {
    let names = |expr: &str| -> Vec<String> { metric_names_in(expr).into_iter().collect() };
    assert_eq!(
        names(
            r#"histogram_quantile(0.99, sum by (job, le) (rate(velro_a_bucket{route="/api/v1/auth/login", status!~"429|503"}[$__rate_interval])))"#
        ),
        ["velro_a_bucket"]
    );
    assert_eq!(
        names("sum(rate(velro_b_sum[5m])) / on (instance) group_left sum without (le) (rate(velro_b_count{x=\"a}b\"}[1m] offset 5m)) > bool 1e-3"),
        ["velro_b_count", "velro_b_sum"]
    );
    assert_eq!(
        names(
            r#"velro_c{job="$job", instance=~"${instance}"} and up{job="velro"} == 0 or sum(velro_d) by (le)"#
        ),
        ["up", "velro_c", "velro_d"]
    );
    assert_eq!(
        names(r#"label_values(velro_e{job="$job"}, instance)"#),
        ["velro_e"]
    );
}

#[test]
fn rule_expressions_read_plain_and_block_scalars() {
    let yaml = "groups:\n  - rules:\n      - alert: A\n        expr: up == 0\n        for: 1m\n      - alert: B\n        expr: |\n          sum(rate(x[5m]))\n            / sum(rate(y[5m]))\n\n          > 0.01\n        for: 5m\n";
    assert_eq!(
        rule_expressions(yaml),
        ["up == 0", "sum(rate(x[5m])) / sum(rate(y[5m]))  > 0.01"]
    );
}

#[test]
fn exposed_names_are_the_sample_names_histograms_included() {
    let exposition = "# HELP h_seconds a histogram\n# TYPE h_seconds histogram\nh_seconds_bucket{le=\"0.5\"} 1\nh_seconds_sum 0.2\nh_seconds_count 1\n\n# TYPE g gauge\ng 3\nc_total{a=\"b c\"} 2\n";
    let names: Vec<String> = exposed_names(exposition).into_iter().collect();
    assert_eq!(
        names,
        [
            "c_total",
            "g",
            "h_seconds_bucket",
            "h_seconds_count",
            "h_seconds_sum"
        ]
    );
}
