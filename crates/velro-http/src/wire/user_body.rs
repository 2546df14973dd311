//! A user's answer (`GET /me`, `PUT /profile`) written straight into its bytes: every token check
//! writes one, and serde_json escapes each of the nine constant keys as it would any string, a
//! third of the body's cost. The bytes are the ones serde writes for [`UserResponse`] (a property
//! test holds them equal); answers that embed a user (a session, the admin's user) still go
//! through serde.

use axum::response::{IntoResponse, Response};
use uuid::Uuid;

use super::{json_answer, rfc3339_by_time, unwritable, write_rfc3339, RoleName, UserResponse};
use super::{JSON_BODY_CAPACITY, RFC3339_LEN};

impl IntoResponse for UserResponse<'_> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(JSON_BODY_CAPACITY);
        match self.write_json(&mut body) {
            Ok(()) => json_answer(body),
            Err(error) => unwritable(&error),
        }
    }
}

impl UserResponse<'_> {
    /// In the struct's field order, as the derived `Serialize` writes it.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        out.extend_from_slice(br#"{"id":""#);
        out.extend_from_slice(
            self.id
                .hyphenated()
                .encode_lower(&mut Uuid::encode_buffer())
                .as_bytes(),
        );
        out.extend_from_slice(br#"","email":"#);
        string(out, &self.email)?;
        out.extend_from_slice(br#","display_name":"#);
        optional_string(out, self.display_name.as_deref())?;
        out.extend_from_slice(br#","avatar_url":"#);
        optional_string(out, self.avatar_url.as_deref())?;
        out.extend_from_slice(br#","credits_balance":"#);
        out.extend_from_slice(itoa::Buffer::new().format(self.credits_balance).as_bytes());
        out.extend_from_slice(br#","role":""#);
        out.extend_from_slice(role_name(self.role).as_bytes());
        out.extend_from_slice(br#"","email_confirmed":"#);
        out.extend_from_slice(if self.email_confirmed {
            b"true"
        } else {
            b"false"
        });
        out.extend_from_slice(br#","created_at":"#);
        timestamp(out, self.created_at.0);
        out.extend_from_slice(br#","updated_at":"#);
        timestamp(out, self.updated_at.0);
        out.push(b'}');
        Ok(())
    }
}

/// As `#[serde(rename_all = "lowercase")]` names them.
fn role_name(role: RoleName) -> &'static str {
    match role {
        RoleName::Viewer => "viewer",
        RoleName::Creator => "creator",
        RoleName::Admin => "admin",
    }
}

/// Copied as it is unless serde_json would escape a byte of it (a control character, a quote or a
/// backslash), in which case serde_json writes it.
fn string(out: &mut Vec<u8>, value: &str) -> serde_json::Result<()> {
    if value
        .bytes()
        .any(|byte| byte < 0x20 || byte == b'"' || byte == b'\\')
    {
        return serde_json::to_writer(out, value);
    }
    out.push(b'"');
    out.extend_from_slice(value.as_bytes());
    out.push(b'"');
    Ok(())
}

fn optional_string(out: &mut Vec<u8>, value: Option<&str>) -> serde_json::Result<()> {
    match value {
        Some(value) => string(out, value),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// RFC 3339 is digits, dashes, colons and letters: nothing to escape.
fn timestamp(out: &mut Vec<u8>, t: time::OffsetDateTime) {
    let mut text = [0; RFC3339_LEN];
    out.push(b'"');
    match write_rfc3339(t, &mut text) {
        Some(text) => out.extend_from_slice(text.as_bytes()),
        None => out.extend_from_slice(rfc3339_by_time(t).as_bytes()),
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;
    use time::OffsetDateTime;

    use super::*;
    use crate::wire::Timestamp;

    fn role() -> impl Strategy<Value = RoleName> {
        prop_oneof![
            Just(RoleName::Viewer),
            Just(RoleName::Creator),
            Just(RoleName::Admin)
        ]
    }

    /// Any text, with the characters JSON escapes (and some it does not) made common.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z@.]{0,20}",
            "[\\x00-\\x20\"\\\\/\\x7f\u{e9}\u{2028}\u{1f600}a]{0,12}",
            any::<String>(),
        ]
    }

    fn moment() -> impl Strategy<Value = OffsetDateTime> {
        // Years -9999 to 9999: the hand-written form and `time`'s fallback both.
        (-377_705_116_800_i64..253_402_300_800)
            .prop_map(|seconds| OffsetDateTime::from_unix_timestamp(seconds).expect("in range"))
    }

    proptest! {
        #[test]
        fn a_user_is_written_as_serde_writes_it(
            id in any::<u128>(),
            email in text(),
            display_name in proptest::option::of(text()),
            avatar_url in proptest::option::of(text()),
            credits_balance in any::<i64>(),
            role in role(),
            email_confirmed in any::<bool>(),
            created_at in moment(),
            updated_at in moment(),
        ) {
            let user = UserResponse {
                id: Uuid::from_u128(id),
                email: Cow::Owned(email),
                display_name: display_name.map(Cow::Owned),
                avatar_url: avatar_url.map(Cow::Owned),
                credits_balance,
                role,
                email_confirmed,
                created_at: Timestamp(created_at),
                updated_at: Timestamp(updated_at),
            };
            let mut written = Vec::new();
            user.write_json(&mut written).expect("writes");
            let expected = serde_json::to_vec(&user).expect("serialises");
            prop_assert_eq!(
                String::from_utf8(written).expect("utf-8"),
                String::from_utf8(expected).expect("utf-8")
            );
        }
    }
}
