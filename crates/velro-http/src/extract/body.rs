//! JSON bodies: size, media type and syntax first, then field by field into domain types, with
//! one error entry per bad or missing field.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde_json::{Map, Value};
use velro_core::FieldError;

use crate::{ApiError, AppState};

/// Why a body could not be read whole.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyError {
    /// Longer than `max_body_bytes`.
    TooLarge,
    /// The client broke off or sent a malformed chunk.
    Unreadable,
}

/// The whole body, refused past `max_body_bytes`. Every handler reads its body through here
/// ([`ValidJson`], [`BoundedBytes`], /auth/v1's JSON): a declared length over the bound was
/// refused with the headers (`security::within_bounds`), and this bounds one that declares none
/// (chunked) while it is read. It stands in for axum's `DefaultBodyLimit`, a layer that puts the
/// bound into every request's extensions, token checks included, which read no body.
pub(crate) async fn read_body(request: Request, state: &AppState) -> Result<Bytes, BodyError> {
    let limited = Limited::new(request.into_body(), state.settings.max_body_bytes);
    match limited.collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<LengthLimitError>() => Err(BodyError::TooLarge),
        Err(_) => Err(BodyError::Unreadable),
    }
}

/// A body taken as it is, bounded by [`read_body`] (the console's forms).
pub(crate) struct BoundedBytes(pub Bytes);

impl FromRequest<AppState> for BoundedBytes {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        match read_body(request, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(BodyError::TooLarge) => Err(ApiError::PayloadTooLarge),
            Err(BodyError::Unreadable) => Err(ApiError::field("body", "could not be read")),
        }
    }
}

/// A request type that can be read from a JSON object's fields.
pub(crate) trait FromFields: Sized {
    /// Reads and parses every field, reporting problems into `fields`. Returns `None` only when
    /// at least one problem was reported.
    fn from_fields(fields: &mut Fields, state: &AppState) -> Option<Self>;
}

/// A JSON body that has been parsed into `T`'s domain types.
pub(crate) struct ValidJson<T>(pub T);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

impl<T: FromFields> FromRequest<AppState> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        // No Content-Type at all is read as JSON, per the contract.
        if let Some(content_type) = request.headers().get(header::CONTENT_TYPE) {
            let content_type = content_type
                .to_str()
                .map_err(|_| ApiError::UnsupportedMediaType)?;
            if !is_json(content_type) {
                return Err(ApiError::UnsupportedMediaType);
            }
        }
        let BoundedBytes(bytes) = BoundedBytes::from_request(request, state).await?;
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|error| ApiError::field("body", format!("is not valid JSON ({error})")))?;
        let Value::Object(map) = value else {
            return Err(ApiError::field("body", "must be a JSON object"));
        };
        let mut fields = Fields {
            map,
            errors: Vec::new(),
        };
        match T::from_fields(&mut fields, state) {
            Some(parsed) if fields.errors.is_empty() => Ok(Self(parsed)),
            _ if fields.errors.is_empty() => Err(ApiError::field("body", "is invalid")),
            _ => Err(ApiError::validation(fields.errors)),
        }
    }
}

/// A JSON object being read field by field. Unknown fields are ignored.
pub(crate) struct Fields {
    map: Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Fields {
    #[cfg(test)]
    pub(crate) fn from_value(value: Value) -> Self {
        let map = match value {
            Value::Object(map) => map,
            _ => Map::new(),
        };
        Self {
            map,
            errors: Vec::new(),
        }
    }

    #[cfg(test)]
    pub(crate) fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    pub(crate) fn report(&mut self, field: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, message));
    }

    /// Runs a parser on a value that was read, reporting its error under `field`.
    pub(crate) fn parse<T, E: ToString>(
        &mut self,
        field: &str,
        value: Option<String>,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Option<T> {
        match parse(&value?) {
            Ok(parsed) => Some(parsed),
            Err(error) => {
                self.report(field, error.to_string());
                None
            }
        }
    }

    /// A required string; `null` counts as missing.
    pub(crate) fn string(&mut self, field: &str) -> Option<String> {
        match self.map.remove(field) {
            None | Some(Value::Null) => {
                self.report(field, "is required");
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.report(field, "must be a string");
                None
            }
        }
    }

    /// An optional string: absent and `null` are both `None`. Wrong types are reported.
    pub(crate) fn optional_string(&mut self, field: &str) -> Option<String> {
        self.nullable_string(field).flatten()
    }

    /// Absent: `None`; `null`: `Some(None)`; a string: `Some(Some(_))`. For fields that `null`
    /// clears. A wrong type is reported and reads as absent.
    pub(crate) fn nullable_string(&mut self, field: &str) -> Option<Option<String>> {
        match self.map.remove(field) {
            None => None,
            Some(Value::Null) => Some(None),
            Some(Value::String(s)) => Some(Some(s)),
            Some(_) => {
                self.report(field, "must be a string or null");
                None
            }
        }
    }

    pub(crate) fn optional_bool(&mut self, field: &str) -> Option<bool> {
        match self.map.remove(field) {
            None => None,
            Some(Value::Bool(b)) => Some(b),
            Some(_) => {
                self.report(field, "must be true or false");
                None
            }
        }
    }

    /// An optional array of strings: absent and `null` are both `None`.
    pub(crate) fn optional_strings(&mut self, field: &str) -> Option<Vec<String>> {
        match self.map.remove(field) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if items.iter().all(Value::is_string) => Some(
                items
                    .into_iter()
                    .filter_map(|item| match item {
                        Value::String(s) => Some(s),
                        _ => None,
                    })
                    .collect(),
            ),
            Some(_) => {
                self.report(field, "must be an array of strings");
                None
            }
        }
    }

    pub(crate) fn optional_i64(&mut self, field: &str) -> Option<i64> {
        match self.map.remove(field) {
            None => None,
            Some(Value::Number(n)) if n.as_i64().is_some() => n.as_i64(),
            Some(_) => {
                self.report(field, "must be an integer");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_media_types_are_recognised() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "json",
            "application/jsonx",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn fields_report_missing_and_wrongly_typed_values() {
        let mut fields = Fields::from_value(json!({"a": 1, "b": null, "c": "x", "d": "y"}));
        assert_eq!(fields.string("a"), None);
        assert_eq!(fields.string("b"), None);
        assert_eq!(fields.string("missing"), None);
        assert_eq!(fields.string("c").as_deref(), Some("x"));
        assert_eq!(fields.nullable_string("d"), Some(Some("y".into())));
        let reported: Vec<_> = fields.errors().iter().map(|e| e.field.as_str()).collect();
        assert_eq!(reported, ["a", "b", "missing"]);
    }
}
