//! `DATABASE_URL`-style strings: which backend, and where. Connecting is the stores' business.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use sqlx::postgres::PgConnectOptions;

/// Where the data lives. `Debug` never shows a PostgreSQL URL: it may hold a password.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(_) => f.debug_tuple("Postgres").field(&"[redacted]").finish(),
        }
    }
}

impl DatabaseUrl {
    /// `sqlite://path` or `sqlite:path` is a SQLite file at that path (`sqlite:///abs/path` is
    /// absolute); `postgres://…` or `postgresql://…` is PostgreSQL. The error says what is wrong
    /// and never repeats the URL, which may hold a password.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        let Some((scheme, rest)) = raw.split_once(':') else {
            return Err(
                "the database URL has no scheme: expected sqlite:<path> or postgres://…".into(),
            );
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => parse_sqlite(rest),
            "postgres" | "postgresql" => parse_postgres(raw, rest),
            _ if is_scheme(scheme) => Err(format!(
                "unsupported database URL scheme `{scheme}`: expected sqlite: or postgres://"
            )),
            _ => Err(
                "the database URL does not start with a scheme: expected sqlite:<path> or \
                 postgres://…"
                    .into(),
            ),
        }
    }
}

fn parse_sqlite(rest: &str) -> Result<DatabaseUrl, String> {
    let path = rest.strip_prefix("//").unwrap_or(rest);
    if path.contains('?') {
        return Err(
            "the SQLite URL has query parameters; none are supported (the file is created when \
             missing): use sqlite:<path>"
                .into(),
        );
    }
    if path.is_empty() {
        return Err("the SQLite URL has no file path: expected sqlite:<path>".into());
    }
    if path == ":memory:" || path.starts_with("file::memory:") {
        return Err("in-memory SQLite is not supported: give a file path".into());
    }
    Ok(DatabaseUrl::Sqlite(PathBuf::from(path)))
}

fn parse_postgres(raw: &str, rest: &str) -> Result<DatabaseUrl, String> {
    if !rest.starts_with("//") {
        return Err("a PostgreSQL URL must start with postgres:// or postgresql://".into());
    }
    // sqlx's parse errors name the part that is wrong (port, sslmode, …), never the password.
    PgConnectOptions::from_str(raw)
        .map_err(|e| format!("invalid PostgreSQL URL: {}", configuration_message(&e)))?;
    Ok(DatabaseUrl::Postgres(raw.to_string()))
}

fn configuration_message(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Configuration(inner) => inner.to_string(),
        other => other.to_string(),
    }
}

/// RFC 3986: a letter, then letters, digits, `+`, `-` or `.`. Only such a word is echoed back.
fn is_scheme(word: &str) -> bool {
    let mut chars = word.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && word.len() <= 32
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recognises_both_backends() {
        let cases = [
            ("sqlite://velro.db", DatabaseUrl::Sqlite("velro.db".into())),
            ("sqlite:velro.db", DatabaseUrl::Sqlite("velro.db".into())),
            (
                "sqlite://velro-data/velro.db",
                DatabaseUrl::Sqlite("velro-data/velro.db".into()),
            ),
            (
                "sqlite:///var/lib/velro/velro.db",
                DatabaseUrl::Sqlite("/var/lib/velro/velro.db".into()),
            ),
            ("SQLite:x.db", DatabaseUrl::Sqlite("x.db".into())),
            (
                "postgres://velro:pw@db:5432/velro",
                DatabaseUrl::Postgres("postgres://velro:pw@db:5432/velro".into()),
            ),
            (
                "postgresql://db/velro?sslmode=require",
                DatabaseUrl::Postgres("postgresql://db/velro?sslmode=require".into()),
            ),
            (
                "  postgres://db/velro \n",
                DatabaseUrl::Postgres("postgres://db/velro".into()),
            ),
        ];
        for (raw, expected) in cases {
            assert_eq!(DatabaseUrl::parse(raw), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn refuses_what_it_cannot_serve_and_says_why() {
        let cases = [
            ("", "no scheme"),
            ("velro.db", "no scheme"),
            ("sqlite:", "no file path"),
            ("sqlite://", "no file path"),
            ("sqlite::memory:", "in-memory"),
            ("sqlite://velro.db?mode=rwc", "query parameters"),
            (
                "mysql://root:pw@db/velro",
                "unsupported database URL scheme `mysql`",
            ),
            ("postgres:velro", "must start with postgres://"),
            ("postgres://db:notaport/velro", "invalid PostgreSQL URL"),
            (
                "postgres://db/velro?sslmode=sometimes",
                "invalid PostgreSQL URL",
            ),
        ];
        for (raw, expected) in cases {
            let error = DatabaseUrl::parse(raw).expect_err(raw);
            assert!(error.contains(expected), "{raw}: {error}");
        }
    }

    #[test]
    fn debug_hides_postgres_urls() {
        let url = DatabaseUrl::Postgres("postgres://velro:hunter2hunter2@db/velro".into());
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    proptest! {
        #[test]
        fn errors_never_echo_the_password(
            password in "[A-Z0-9]{12,24}",
            port in "[a-z]{1,6}|[0-9]{6,8}",
            scheme in "postgres|postgresql|mysql|redis|http",
            sslmode in "(sometimes|never)?",
        ) {
            let query = if sslmode.is_empty() { String::new() } else { format!("?sslmode={sslmode}") };
            let raw = format!("{scheme}://velro:{password}@db:{port}/velro{query}");
            if let Err(error) = DatabaseUrl::parse(&raw) {
                prop_assert!(!error.contains(&password), "{error}");
            }
            let no_scheme = format!("velro:{password}@db/velro");
            let error = DatabaseUrl::parse(&no_scheme).expect_err("not a database URL");
            prop_assert!(!error.contains(&password), "{error}");
        }
    }
}
