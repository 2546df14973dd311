//! `velro admin flags`: `GET` and `PUT /api/v1/admin/flags`. The flag names come from the
//! instance, so a flag it gains later needs no change here.

use clap::Subcommand;
use serde_json::{json, Value};

use super::client::Client;
use super::{table, Failure, Printed};

#[derive(Subcommand)]
pub(super) enum FlagsCommand {
    /// Show every run-time flag and its value
    Get,
    /// Switch one flag, e.g. `flags set cache off`
    Set {
        /// The flag's name, as `flags get` lists it
        name: String,
        /// on|off (or true|false)
        #[arg(value_parser = parse_switch, action = clap::ArgAction::Set)]
        value: bool,
    },
}

fn parse_switch(raw: &str) -> Result<bool, String> {
    match raw {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err("must be on, off, true or false".into()),
    }
}

pub(super) async fn run(client: &Client, command: FlagsCommand) -> Result<Printed, Failure> {
    match command {
        FlagsCommand::Get => {
            let answer = client.get("/flags", &[]).await?;
            Ok(Printed {
                human: render(&answer.value),
                raw: answer.raw,
            })
        }
        FlagsCommand::Set { name, value } => {
            // The API ignores unknown fields: without this check a misspelt flag would "succeed".
            let known = client.get("/flags", &[]).await?;
            if known.value.get(&name).is_none() {
                return Err(Failure::Refused(format!(
                    "the instance has no flag named {name:?} (it has: {})",
                    names(&known.value).join(", ")
                )));
            }
            let answer = client
                .put("/flags", &json!({ name.clone(): value }))
                .await?;
            if answer.value.get(&name) != Some(&Value::Bool(value)) {
                return Err(Failure::Refused(format!(
                    "the instance answered but {name} is not {} afterwards",
                    on_off(value)
                )));
            }
            Ok(Printed {
                human: format!(
                    "{name} is now {}\n\n{}",
                    on_off(value),
                    render(&answer.value)
                ),
                raw: answer.raw,
            })
        }
    }
}

fn names(flags: &Value) -> Vec<String> {
    flags
        .as_object()
        .map(|flags| flags.keys().cloned().collect())
        .unwrap_or_default()
}

fn on_off(value: bool) -> &'static str {
    if value {
        "on"
    } else {
        "off"
    }
}

fn render(flags: &Value) -> String {
    let rows: Vec<Vec<String>> = flags
        .as_object()
        .map(|flags| {
            flags
                .iter()
                .map(|(name, value)| {
                    let shown = match value {
                        Value::Bool(value) => on_off(*value).to_string(),
                        other => other.to_string(),
                    };
                    vec![name.clone(), shown]
                })
                .collect()
        })
        .unwrap_or_default();
    table::columns(&["FLAG", "VALUE"], &rows)
}
