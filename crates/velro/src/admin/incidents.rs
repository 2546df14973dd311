//! `velro admin incidents`: open, update, resolve and list the status page's incidents through
//! `/api/v1/admin/incidents`. Statuses, impacts and component names are checked by the instance,
//! not here, so that its answer (one line per bad field) is the one source of truth.

use clap::Subcommand;
use reqwest::StatusCode;
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::client::{Answer, Client, Error};
use super::{table, Failure, Printed};

#[derive(Subcommand)]
pub(super) enum IncidentsCommand {
    /// Open an incident with its first update; it shows on the status page at once
    Open {
        /// The headline, e.g. "Sign-in is slow"
        title: String,
        /// How much of the service it affects: none, minor, major or critical
        #[arg(long)]
        impact: String,
        /// The first update's text, shown on the page and in the feed
        #[arg(long)]
        message: String,
        /// investigating, identified, monitoring or resolved
        #[arg(long, default_value = "investigating")]
        status: String,
        /// An affected component (repeat it, or separate with commas): auth_api, token_checks,
        /// database, cache, email
        #[arg(long = "component", value_delimiter = ',')]
        components: Vec<String>,
        /// When it should be fixed, as an RFC 3339 time in the future, e.g. 2026-12-02T16:00:00Z
        #[arg(long)]
        expected_resolution: Option<String>,
    },
    /// Add an update to an incident's timeline; it also sets the incident's status
    Update {
        /// The incident's id, as `incidents list` prints it
        id: Uuid,
        /// investigating, identified, monitoring or resolved (any but resolved reopens it)
        #[arg(long)]
        status: String,
        /// The update's text, shown on the page and in the feed
        #[arg(long)]
        message: String,
    },
    /// Close an incident: an update with the status resolved
    Resolve {
        /// The incident's id, as `incidents list` prints it
        id: Uuid,
        /// The closing update's text, e.g. what was fixed
        #[arg(long)]
        message: String,
    },
    /// The newest incidents (up to 50), open or resolved, newest first
    List,
}

pub(super) async fn run(client: &Client, command: IncidentsCommand) -> Result<Printed, Failure> {
    match command {
        IncidentsCommand::Open {
            title,
            impact,
            message,
            status,
            components,
            expected_resolution,
        } => {
            let mut body = Map::new();
            body.insert("title".into(), json!(title));
            body.insert("status".into(), json!(status));
            body.insert("impact".into(), json!(impact));
            body.insert("message".into(), json!(message));
            // Absent rather than empty or null: the API's defaults apply.
            if !components.is_empty() {
                body.insert("components".into(), json!(components));
            }
            if let Some(expected) = expected_resolution {
                body.insert("expected_resolution".into(), json!(expected));
            }
            let answer = client.post("/incidents", &Value::Object(body)).await?;
            Ok(shown(answer, "opened incident"))
        }
        IncidentsCommand::Update {
            id,
            status,
            message,
        } => update(client, id, &status, &message, "updated incident").await,
        IncidentsCommand::Resolve { id, message } => {
            update(client, id, "resolved", &message, "resolved incident").await
        }
        IncidentsCommand::List => {
            let answer = client.get("/incidents", &[]).await?;
            let incidents: Vec<&Value> = answer
                .value
                .get("incidents")
                .and_then(Value::as_array)
                .map(|incidents| incidents.iter().collect())
                .unwrap_or_default();
            let human = if incidents.is_empty() {
                "no incidents\n".to_string()
            } else {
                table::columns(
                    &["ID", "STATUS", "IMPACT", "COMPONENTS", "UPDATED", "TITLE"],
                    &incidents
                        .iter()
                        .map(|incident| {
                            vec![
                                text(incident, "id"),
                                text(incident, "status"),
                                text(incident, "impact"),
                                components(incident),
                                text(incident, "updated_at"),
                                text(incident, "title"),
                            ]
                        })
                        .collect::<Vec<_>>(),
                )
            };
            Ok(Printed {
                human,
                raw: answer.raw,
            })
        }
    }
}

async fn update(
    client: &Client,
    id: Uuid,
    status: &str,
    message: &str,
    done: &str,
) -> Result<Printed, Failure> {
    let answer = client
        .patch(
            &format!("/incidents/{id}"),
            &json!({ "status": status, "message": message }),
        )
        .await
        .map_err(|error| match error {
            // The route exists on every instance with incidents; a 404 is the id.
            Error::Refused(refusal) if refusal.status == StatusCode::NOT_FOUND => {
                Failure::Refused(format!("no incident with id {id}"))
            }
            other => other.into(),
        })?;
    Ok(shown(answer, done))
}

/// The incident as a record, then its timeline newest first.
fn shown(answer: Answer, done: &str) -> Printed {
    let incident = &answer.value;
    let mut human = format!("{done} {}\n\n", text(incident, "id"));
    human.push_str(&table::record(&[
        ("id", text(incident, "id")),
        ("title", text(incident, "title")),
        ("status", text(incident, "status")),
        ("impact", text(incident, "impact")),
        ("components", components(incident)),
        ("expected resolution", text(incident, "expected_resolution")),
        ("created", text(incident, "created_at")),
        ("updated", text(incident, "updated_at")),
        ("resolved", text(incident, "resolved_at")),
    ]));
    let updates: Vec<Vec<String>> = incident
        .get("updates")
        .and_then(Value::as_array)
        .map(|updates| {
            updates
                .iter()
                .map(|update| {
                    vec![
                        text(update, "created_at"),
                        text(update, "status"),
                        // A message may span lines; the table keeps one row per update.
                        text(update, "message").replace(['\n', '\r'], " "),
                    ]
                })
                .collect()
        })
        .unwrap_or_default();
    if !updates.is_empty() {
        human.push('\n');
        human.push_str(&table::columns(&["AT", "STATUS", "MESSAGE"], &updates));
    }
    Printed {
        human,
        raw: answer.raw,
    }
}

fn components(incident: &Value) -> String {
    let names: Vec<&str> = incident
        .get("components")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if names.is_empty() {
        "-".into()
    } else {
        names.join(",")
    }
}

/// A field as text; a null or absent one as `-`.
fn text(value: &Value, key: &str) -> String {
    match value.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
    }
}
