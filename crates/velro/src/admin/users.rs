//! `velro admin users`: find, show and change users through `/api/v1/admin/users`. A user is
//! named by id or by exact email; `find` also takes an email prefix.

use clap::Subcommand;
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use super::client::{Answer, Client, Error};
use super::{table, Failure, Printed};

/// The API's largest page: the fewest round trips when resolving an email.
const PAGE: &str = "200";

#[derive(Subcommand)]
pub(super) enum UsersCommand {
    /// List users whose email starts with a prefix (newest first), or the user with an id
    Find {
        /// An email prefix (case-insensitive), a whole email, or a user id
        query: String,
        /// Page size, 1 to 200
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=200))]
        limit: u32,
        /// The cursor printed after the previous page
        #[arg(long)]
        after: Option<String>,
    },
    /// Show one user
    Show { user: String },
    /// Disable a user: sign-in is refused and every session is revoked at once
    Disable { user: String },
    /// Enable a disabled user (their old sessions stay revoked)
    Enable { user: String },
    /// Set a user's role
    Role {
        user: String,
        #[arg(value_parser = ["viewer", "creator", "admin"])]
        role: String,
    },
    /// Set a user's credits balance
    Credits {
        user: String,
        #[arg(value_parser = clap::value_parser!(i64).range(0..))]
        balance: i64,
    },
    /// Revoke every live session of a user (a disabled user stays disabled, an enabled one may
    /// sign in again)
    RevokeSessions { user: String },
}

pub(super) async fn run(client: &Client, command: UsersCommand) -> Result<Printed, Failure> {
    match command {
        UsersCommand::Find {
            query,
            limit,
            after,
        } => find(client, &query, limit, after.as_deref()).await,
        UsersCommand::Show { user } => {
            let (_, answer) = resolve(client, &user).await?;
            Ok(shown(answer))
        }
        UsersCommand::Disable { user } => {
            let (id, _) = resolve(client, &user).await?;
            change(client, id, &json!({ "disabled": true }), "disabled").await
        }
        UsersCommand::Enable { user } => {
            let (id, _) = resolve(client, &user).await?;
            change(client, id, &json!({ "disabled": false }), "enabled").await
        }
        UsersCommand::Role { user, role } => {
            let (id, _) = resolve(client, &user).await?;
            let done = format!("role set to {role} for");
            change(client, id, &json!({ "role": role }), &done).await
        }
        UsersCommand::Credits { user, balance } => {
            let (id, _) = resolve(client, &user).await?;
            let done = format!("credits set to {balance} for");
            change(client, id, &json!({ "credits_balance": balance }), &done).await
        }
        UsersCommand::RevokeSessions { user } => revoke_sessions(client, &user).await,
    }
}

async fn find(
    client: &Client,
    query: &str,
    limit: u32,
    after: Option<&str>,
) -> Result<Printed, Failure> {
    if let Ok(id) = Uuid::parse_str(query.trim()) {
        let answer = by_id(client, id).await?;
        let rows = vec![row(&answer.value)];
        return Ok(Printed {
            human: table::columns(HEADER, &rows),
            raw: answer.raw,
        });
    }
    let limit = limit.to_string();
    let mut parameters = vec![("email", query.trim()), ("limit", limit.as_str())];
    if let Some(after) = after {
        parameters.push(("after", after));
    }
    let answer = client.get("/users", &parameters).await?;
    let users = users_of(&answer.value);
    let mut human = if users.is_empty() {
        format!("no user's email starts with {:?}\n", query.trim())
    } else {
        table::columns(
            HEADER,
            &users.iter().map(|user| row(user)).collect::<Vec<_>>(),
        )
    };
    if let Some(next) = answer.value.get("next").and_then(Value::as_str) {
        human.push_str(&format!("\nmore: --after {next}\n"));
    }
    Ok(Printed {
        human,
        raw: answer.raw,
    })
}

/// An id, or an exact email (trimmed and lowercased, as the service stores it).
async fn resolve(client: &Client, user: &str) -> Result<(Uuid, Answer), Failure> {
    let user = user.trim();
    if let Ok(id) = Uuid::parse_str(user) {
        return Ok((id, by_id(client, id).await?));
    }
    if !user.contains('@') {
        return Err(Failure::Local(format!(
            "{user:?} is neither a user id nor an email (use `users find` for a prefix)"
        )));
    }
    let email = user.to_lowercase();
    let mut after: Option<String> = None;
    // The prefix also matches longer emails (ada@example.com.au): page until the exact one.
    loop {
        let mut parameters = vec![("email", email.as_str()), ("limit", PAGE)];
        if let Some(after) = &after {
            parameters.push(("after", after.as_str()));
        }
        let page = client.get("/users", &parameters).await?;
        let found = users_of(&page.value)
            .into_iter()
            .find(|candidate| candidate.get("email").and_then(Value::as_str) == Some(&email))
            .and_then(|candidate| candidate.get("id").and_then(Value::as_str))
            .and_then(|id| Uuid::parse_str(id).ok());
        if let Some(id) = found {
            // The list's row is a page entry; the user's own answer is what `--json` prints.
            return Ok((id, by_id(client, id).await?));
        }
        match page.value.get("next").and_then(Value::as_str) {
            Some(next) => after = Some(next.to_string()),
            None => return Err(Failure::Refused(format!("no user with email {email}"))),
        }
    }
}

async fn by_id(client: &Client, id: Uuid) -> Result<Answer, Failure> {
    client
        .get(&format!("/users/{id}"), &[])
        .await
        .map_err(|error| not_found_is_no_user(error, id))
}

fn not_found_is_no_user(error: Error, id: Uuid) -> Failure {
    match error {
        Error::Refused(refusal) if refusal.status == StatusCode::NOT_FOUND => {
            Failure::Refused(format!("no user with id {id}"))
        }
        other => other.into(),
    }
}

async fn change(client: &Client, id: Uuid, body: &Value, done: &str) -> Result<Printed, Failure> {
    let answer = client
        .patch(&format!("/users/{id}"), body)
        .await
        .map_err(|error| not_found_is_no_user(error, id))?;
    let email = text(&answer.value, "email");
    let mut printed = shown(answer);
    printed.human = format!("{done} {email}\n\n{}", printed.human);
    Ok(printed)
}

/// `DELETE /api/v1/admin/users/{id}/sessions`: every live session of the user is revoked at
/// once, and the user stays as they were (enabled users may sign in again).
async fn revoke_sessions(client: &Client, user: &str) -> Result<Printed, Failure> {
    let (id, current) = resolve(client, user).await?;
    let email = text(&current.value, "email");
    let answer = client
        .delete(&format!("/users/{id}/sessions"))
        .await
        .map_err(|error| not_found_is_no_user(error, id))?;
    let count = answer
        .value
        .get("revoked")
        .and_then(Value::as_u64)
        .unwrap_or_default();
    let sessions = if count == 1 { "session" } else { "sessions" };
    Ok(Printed {
        human: format!("revoked every session of {email} ({count} live {sessions})\n"),
        raw: answer.raw,
    })
}

const HEADER: &[&str] = &[
    "ID",
    "EMAIL",
    "ROLE",
    "CREDITS",
    "CONFIRMED",
    "DISABLED",
    "CREATED",
];

fn row(user: &Value) -> Vec<String> {
    vec![
        text(user, "id"),
        text(user, "email"),
        text(user, "role"),
        text(user, "credits_balance"),
        yes_no(user, "email_confirmed"),
        yes_no(user, "disabled"),
        text(user, "created_at"),
    ]
}

fn shown(answer: Answer) -> Printed {
    let user = &answer.value;
    let human = table::record(&[
        ("id", text(user, "id")),
        ("email", text(user, "email")),
        ("display name", text(user, "display_name")),
        ("role", text(user, "role")),
        ("credits", text(user, "credits_balance")),
        ("email confirmed", yes_no(user, "email_confirmed")),
        ("disabled", yes_no(user, "disabled")),
        ("avatar", text(user, "avatar_url")),
        ("created", text(user, "created_at")),
        ("updated", text(user, "updated_at")),
    ]);
    Printed {
        human,
        raw: answer.raw,
    }
}

fn users_of(page: &Value) -> Vec<&Value> {
    page.get("users")
        .and_then(Value::as_array)
        .map(|users| users.iter().collect())
        .unwrap_or_default()
}

/// A field as text; a null or absent one as `-`.
fn text(user: &Value, key: &str) -> String {
    match user.get(key) {
        None | Some(Value::Null) => "-".into(),
        Some(Value::String(value)) => value.clone(),
        Some(other) => other.to_string(),
    }
}

fn yes_no(user: &Value, key: &str) -> String {
    match user.get(key) {
        Some(Value::Bool(true)) => "yes".into(),
        Some(Value::Bool(false)) => "no".into(),
        _ => "-".into(),
    }
}
