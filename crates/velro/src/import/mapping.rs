//! Where Velro's profile fields come from: a column of the application's own table (Supabase
//! projects keep names, roles and balances in e.g. `public.profiles`, keyed by the user id) or
//! a key of the user's metadata. Parsed from `--profiles-table` and `--map`; identifiers are
//! checked here so that only checked, quoted names ever reach the SQL text.

use std::fmt;

/// A Velro field an operator can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    DisplayName,
    AvatarUrl,
    Role,
    Credits,
}

impl Field {
    const ALL: [Field; 4] = [
        Field::DisplayName,
        Field::AvatarUrl,
        Field::Role,
        Field::Credits,
    ];

    fn parse(name: &str) -> Option<Self> {
        match name {
            "display_name" => Some(Self::DisplayName),
            "avatar_url" => Some(Self::AvatarUrl),
            "role" => Some(Self::Role),
            "credits" | "credits_balance" => Some(Self::Credits),
            _ => None,
        }
    }

    /// The alias the users query gives this field's value.
    pub fn alias(self) -> &'static str {
        match self {
            Self::DisplayName => "profile_display_name",
            Self::AvatarUrl => "profile_avatar_url",
            Self::Role => "profile_role",
            Self::Credits => "profile_credits",
        }
    }

    fn sql_type(self) -> &'static str {
        match self {
            Self::Credits => "bigint",
            _ => "text",
        }
    }
}

/// One field's source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A column of the profiles table.
    Column(Ident),
    /// A top-level key of `raw_user_meta_data`.
    UserMetadata(String),
}

/// A checked SQL identifier: `[A-Za-z_][A-Za-z0-9_]*`, at most 63 bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

impl Ident {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut chars = raw.chars();
        let valid = raw.len() <= 63
            && chars
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if valid {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "`{raw}` is not a plain SQL identifier (letters, digits, underscores)"
            ))
        }
    }
}

impl fmt::Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{}\"", self.0)
    }
}

/// The whole mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProfileMapping {
    /// `schema.table` and its column holding the user id.
    pub table: Option<(Ident, Ident, Ident)>,
    pub fields: Vec<(Field, Source)>,
}

impl Default for ProfileMapping {
    /// Without flags: the display name and avatar Supabase's own sign-up forms put in the
    /// user metadata; role and credits take Velro's defaults.
    fn default() -> Self {
        Self {
            table: None,
            fields: vec![
                (
                    Field::DisplayName,
                    Source::UserMetadata("full_name".to_owned()),
                ),
                (
                    Field::AvatarUrl,
                    Source::UserMetadata("avatar_url".to_owned()),
                ),
            ],
        }
    }
}

impl ProfileMapping {
    /// `table`: `[schema.]table`; `key`: its user-id column; `map`: `field=column` or
    /// `field=user_metadata.key` entries. No table and no entries: the default.
    pub fn parse(table: Option<&str>, key: &str, map: &[String]) -> Result<Self, String> {
        if table.is_none() && map.is_empty() {
            return Ok(Self::default());
        }
        let table = match table {
            None => None,
            Some(raw) => {
                let (schema, name) = raw.split_once('.').unwrap_or(("public", raw));
                Some((
                    Ident::parse(schema)?,
                    Ident::parse(name)?,
                    Ident::parse(key)?,
                ))
            }
        };
        let mut fields: Vec<(Field, Source)> = Vec::new();
        for entry in map {
            let (field, source) = entry
                .split_once('=')
                .ok_or_else(|| format!("--map entry `{entry}` is not field=source"))?;
            let field = Field::parse(field.trim()).ok_or_else(|| {
                format!("--map: unknown field `{field}` (display_name, avatar_url, role, credits)")
            })?;
            if fields.iter().any(|(f, _)| *f == field) {
                return Err(format!("--map names `{}` twice", field.alias()));
            }
            let source = source.trim();
            let source = match source.strip_prefix("user_metadata.") {
                Some(key) if !key.is_empty() => Source::UserMetadata(key.to_owned()),
                Some(_) => return Err("--map: `user_metadata.` needs a key".to_owned()),
                None if table.is_none() => {
                    return Err(format!(
                    "--map {entry}: a column needs --profiles-table (or use user_metadata.<key>)"
                ))
                }
                None => Source::Column(Ident::parse(source)?),
            };
            fields.push((field, source));
        }
        Ok(Self { table, fields })
    }

    /// The select-list items and the join for the users query (`u` is `auth.users`).
    pub fn sql(&self) -> (String, String) {
        let mut select = String::new();
        for field in Field::ALL {
            let expr = match self.fields.iter().find(|(f, _)| *f == field) {
                Some((_, Source::Column(column))) => format!("p.{column}::{}", field.sql_type()),
                Some((_, Source::UserMetadata(key))) => {
                    // A literal, doubled quotes: the key is the operator's text, not an ident.
                    let key = key.replace('\'', "''");
                    match field {
                        Field::Credits => format!(
                            "CASE WHEN jsonb_typeof(u.raw_user_meta_data -> '{key}') = 'number' \
                             THEN (u.raw_user_meta_data ->> '{key}')::numeric::bigint END"
                        ),
                        _ => format!("u.raw_user_meta_data ->> '{key}'"),
                    }
                }
                None => format!("NULL::{}", field.sql_type()),
            };
            select.push_str(&format!(", {expr} AS {}", field.alias()));
        }
        let join = match &self.table {
            Some((schema, table, key)) => {
                format!(" LEFT JOIN {schema}.{table} p ON p.{key} = u.id")
            }
            None => String::new(),
        };
        (select, join)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_parse_into_columns_and_metadata_keys() {
        let map = vec![
            "display_name=full_name".to_owned(),
            "credits=credits".to_owned(),
            "role=user_metadata.role".to_owned(),
        ];
        let mapping = ProfileMapping::parse(Some("public.profiles"), "id", &map).expect("valid");
        let (select, join) = mapping.sql();
        assert!(select.contains(r#"p."full_name"::text AS profile_display_name"#));
        assert!(select.contains(r#"p."credits"::bigint AS profile_credits"#));
        assert!(select.contains("u.raw_user_meta_data ->> 'role' AS profile_role"));
        assert!(select.contains("NULL::text AS profile_avatar_url"));
        assert_eq!(join, r#" LEFT JOIN "public"."profiles" p ON p."id" = u.id"#);
    }

    #[test]
    fn bad_flags_are_refused_with_the_reason() {
        let cases: [(Option<&str>, &str, &[&str]); 6] = [
            (Some("public.profiles; drop"), "id", &[]),
            (Some("profiles"), "id", &["nickname=full_name"]),
            (Some("profiles"), "id", &["display_name"]),
            (None, "id", &["display_name=full_name"]),
            (Some("profiles"), "id", &["role=role", "role=kind"]),
            (Some("profiles"), "id\"", &[]),
        ];
        for (table, key, map) in cases {
            let map: Vec<String> = map.iter().map(|s| (*s).to_owned()).collect();
            assert!(
                ProfileMapping::parse(table, key, &map).is_err(),
                "{table:?} {key} {map:?}"
            );
        }
    }

    #[test]
    fn no_flags_read_the_name_and_avatar_from_user_metadata() {
        let mapping = ProfileMapping::parse(None, "id", &[]).expect("default");
        let (select, join) = mapping.sql();
        assert!(select.contains("u.raw_user_meta_data ->> 'full_name' AS profile_display_name"));
        assert!(join.is_empty());
    }
}
