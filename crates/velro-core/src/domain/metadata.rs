//! Supabase's per-user JSON objects (`user_metadata`, `app_metadata`), and GoTrue's
//! `ban_duration`. A [`Metadata`] is always a JSON object within [`MAX_METADATA_BYTES`].

use std::fmt;

use serde_json::{Map, Value};
use time::Duration;

/// The largest `user_metadata` or `app_metadata`, as compact JSON. Both travel in every Supabase
/// access token (base64url, a third larger): at 4 KiB each a token stays well inside the 16 KiB
/// request-head limit that it must pass in `Authorization`.
pub const MAX_METADATA_BYTES: usize = 4096;

/// A JSON object of free keys, as stored per user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Metadata(Map<String, Value>);

/// Why a value cannot be metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("must be a JSON object")]
    NotAnObject,
    #[error("is larger than 4096 bytes as JSON")]
    TooLarge,
}

impl Metadata {
    /// An object from a request, within the size bound.
    pub fn parse(value: Value) -> Result<Self, MetadataError> {
        let Value::Object(map) = value else {
            return Err(MetadataError::NotAnObject);
        };
        Self::bounded(map)
    }

    fn bounded(map: Map<String, Value>) -> Result<Self, MetadataError> {
        let metadata = Self(map);
        if metadata.to_stored().len() > MAX_METADATA_BYTES {
            return Err(MetadataError::TooLarge);
        }
        Ok(metadata)
    }

    /// As stored by this service or carried over by an import. Text that is not a JSON object
    /// (an import's NULL or garbage) reads as none; stored values are not bounded again.
    pub fn from_stored(text: &str) -> Option<Self> {
        match serde_json::from_str(text) {
            Ok(Value::Object(map)) => Some(Self(map)),
            _ => None,
        }
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.0).unwrap_or_else(|_| "{}".to_owned())
    }

    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }

    pub fn into_map(self) -> Map<String, Value> {
        self.0
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        self.0.insert(key.into(), value);
    }

    pub fn remove(&mut self, key: &str) -> Option<Value> {
        self.0.remove(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// GoTrue's update of a metadata object: each top-level key of `updates` replaces the
    /// stored one, and a `null` deletes it; nested objects are replaced whole. The result is
    /// bounded again.
    pub fn merged(stored: Option<&Self>, updates: &Self) -> Result<Self, MetadataError> {
        let mut map = stored.map(|m| m.0.clone()).unwrap_or_default();
        for (key, value) in &updates.0 {
            if value.is_null() {
                map.remove(key);
            } else {
                map.insert(key.clone(), value.clone());
            }
        }
        Self::bounded(map)
    }
}

/// How an account change writes one metadata object. The store applies it to the value it holds
/// under the user's row lock, so concurrent merges of one user all land.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataWrite {
    /// The whole new object.
    Replace(Metadata),
    /// GoTrue's `UpdateUserMetaData` / `UpdateAppMetaData`: the keys of `set` replace the stored
    /// ones (nested objects whole), the keys in `unset` go. An account that has no object yet
    /// starts from `absent` (GoTrue starts from the updates alone; Velro's accounts made through
    /// the v1 API show their identity data until their first write, and keep it then).
    Merge {
        set: Metadata,
        unset: Vec<String>,
        absent: Metadata,
    },
}

impl MetadataWrite {
    /// A merge of request `updates`, where a `null` removes its key.
    pub fn merge(updates: Metadata, absent: Metadata) -> Self {
        let mut set = Metadata::default();
        let mut unset = Vec::new();
        for (key, value) in updates.0 {
            if value.is_null() {
                unset.push(key);
            } else {
                set.0.insert(key, value);
            }
        }
        Self::Merge { set, unset, absent }
    }

    /// Sets one key as well, whatever the write said of it before.
    pub fn set(&mut self, key: &str, value: Value) {
        match self {
            Self::Replace(whole) => whole.insert(key, value),
            Self::Merge { set, unset, .. } => {
                unset.retain(|unset| unset != key);
                set.insert(key, value);
            }
        }
    }

    /// The object after this write, given the one stored (`None` when the account has none);
    /// bounded again, so a merge that grows past [`MAX_METADATA_BYTES`] is refused.
    pub fn apply(&self, stored: Option<&Metadata>) -> Result<Metadata, MetadataError> {
        match self {
            Self::Replace(whole) => Metadata::bounded(whole.0.clone()),
            Self::Merge { set, unset, absent } => {
                let mut map = stored.unwrap_or(absent).0.clone();
                for key in unset {
                    map.remove(key);
                }
                for (key, value) in &set.0 {
                    map.insert(key.clone(), value.clone());
                }
                Metadata::bounded(map)
            }
        }
    }
}

impl From<Map<String, Value>> for Metadata {
    fn from(map: Map<String, Value>) -> Self {
        Self(map)
    }
}

impl fmt::Display for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_stored())
    }
}

/// GoTrue's `ban_duration`: `"none"` lifts a ban, anything else is a Go duration
/// (`"24h"`, `"1h30m"`, `"90s"`, `"-1h"`); a zero duration lifts it too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanDuration {
    Lift,
    For(Duration),
}

impl BanDuration {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw == "none" {
            return Ok(Self::Lift);
        }
        let duration = parse_go_duration(raw)?;
        Ok(if duration.is_zero() {
            Self::Lift
        } else {
            Self::For(duration)
        })
    }
}

/// Go's `time.ParseDuration`: an optional sign, then one or more decimal numbers (with an
/// optional fraction) each followed by a unit among ns, us, µs, ms, s, m, h; `"0"` alone is zero.
fn parse_go_duration(raw: &str) -> Result<Duration, &'static str> {
    const INVALID: &str = "invalid duration";
    let (negative, mut rest) = match raw.as_bytes().first() {
        Some(b'-') => (true, &raw[1..]),
        Some(b'+') => (false, &raw[1..]),
        _ => (false, raw),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(INVALID);
    }
    let mut nanos: f64 = 0.0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or("missing unit in duration")?;
        let number = &rest[..number_len];
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err(INVALID);
        }
        let value: f64 = number.parse().map_err(|_| INVALID)?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => return Err("missing unit in duration"),
            _ => return Err("unknown unit in duration"),
        };
        rest = &rest[unit_len..];
        nanos += value * scale;
    }
    // Go's limit: about 290 years.
    if nanos > 9.2e18 {
        return Err(INVALID);
    }
    #[allow(clippy::cast_possible_truncation)]
    let duration = Duration::nanoseconds(nanos as i64);
    Ok(if negative { -duration } else { duration })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn meta(value: Value) -> Metadata {
        Metadata::parse(value).expect("an object")
    }

    #[test]
    fn merging_replaces_top_level_keys_and_null_deletes() {
        let stored = meta(json!({"a": 1, "b": {"x": 1}, "c": "keep"}));
        let updates = meta(json!({"a": 2, "b": {"y": 2}, "c": null, "d": [1]}));
        let merged = Metadata::merged(Some(&stored), &updates).expect("small");
        assert_eq!(
            Value::Object(merged.into_map()),
            json!({"a": 2, "b": {"y": 2}, "d": [1]})
        );
        let fresh = Metadata::merged(None, &meta(json!({"a": null, "b": 1}))).expect("small");
        assert_eq!(Value::Object(fresh.into_map()), json!({"b": 1}));
    }

    #[test]
    fn a_merge_write_sets_and_unsets_on_the_stored_object_or_the_absent_one() {
        let write = MetadataWrite::merge(
            meta(json!({"a": 2, "b": {"y": 2}, "c": null, "d": [1]})),
            meta(json!({"sub": "x", "c": 1})),
        );
        let stored = meta(json!({"a": 1, "b": {"x": 1}, "c": "keep", "e": true}));
        assert_eq!(
            Value::Object(write.apply(Some(&stored)).expect("small").into_map()),
            json!({"a": 2, "b": {"y": 2}, "d": [1], "e": true})
        );
        assert_eq!(
            Value::Object(write.apply(None).expect("small").into_map()),
            json!({"sub": "x", "a": 2, "b": {"y": 2}, "d": [1]})
        );
        let mut confirm = MetadataWrite::merge(meta(json!({"v": null})), Metadata::default());
        confirm.set("v", Value::Bool(true));
        assert_eq!(
            Value::Object(confirm.apply(Some(&stored)).expect("small").into_map())["v"],
            json!(true)
        );
        let replace = MetadataWrite::Replace(meta(json!({"only": 1})));
        assert_eq!(replace.apply(Some(&stored)), Ok(meta(json!({"only": 1}))));
        let grows =
            MetadataWrite::merge(meta(json!({"other": "y".repeat(100)})), Metadata::default());
        let full = meta(json!({"k": "x".repeat(MAX_METADATA_BYTES - 20)}));
        assert_eq!(grows.apply(Some(&full)), Err(MetadataError::TooLarge));
    }

    #[test]
    fn only_bounded_objects_are_metadata() {
        assert_eq!(Metadata::parse(json!([1])), Err(MetadataError::NotAnObject));
        assert_eq!(
            Metadata::parse(json!("text")),
            Err(MetadataError::NotAnObject)
        );
        let big = "x".repeat(MAX_METADATA_BYTES);
        assert_eq!(
            Metadata::parse(json!({ "k": big })),
            Err(MetadataError::TooLarge)
        );
        let fits = "x".repeat(MAX_METADATA_BYTES - 8);
        assert!(Metadata::parse(json!({ "k": fits })).is_ok());
        let stored = meta(json!({"k": "x".repeat(MAX_METADATA_BYTES - 20)}));
        let grows = meta(json!({"other": "y".repeat(100)}));
        assert_eq!(
            Metadata::merged(Some(&stored), &grows),
            Err(MetadataError::TooLarge)
        );
    }

    #[test]
    fn stored_text_round_trips_and_garbage_reads_as_none() {
        let value = meta(json!({"plan": "pro", "n": [1, 2]}));
        assert_eq!(Metadata::from_stored(&value.to_stored()), Some(value));
        assert_eq!(Metadata::from_stored("null"), None);
        assert_eq!(Metadata::from_stored("[]"), None);
        assert_eq!(Metadata::from_stored("{"), None);
    }

    #[test]
    fn ban_durations_read_as_go_reads_them() {
        let cases = [
            ("none", BanDuration::Lift),
            ("0", BanDuration::Lift),
            ("0s", BanDuration::Lift),
            ("24h", BanDuration::For(Duration::hours(24))),
            ("1h30m", BanDuration::For(Duration::minutes(90))),
            ("1.5h", BanDuration::For(Duration::minutes(90))),
            ("90s", BanDuration::For(Duration::seconds(90))),
            ("300ms", BanDuration::For(Duration::milliseconds(300))),
            ("-1h", BanDuration::For(Duration::hours(-1))),
            ("876000h", BanDuration::For(Duration::hours(876_000))),
        ];
        for (raw, expected) in cases {
            assert_eq!(BanDuration::parse(raw), Ok(expected), "{raw}");
        }
        for bad in [
            "",
            "24",
            "h",
            "1d",
            "1..5h",
            "abc",
            "-",
            "1h 30m",
            "99999999999h",
        ] {
            assert!(BanDuration::parse(bad).is_err(), "{bad}");
        }
    }
}
