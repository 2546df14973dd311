//! Response bodies as the contract spells them. Domain types are never serialised directly, so
//! nothing (a password hash, say) can reach a client by accident.

use std::borrow::Cow;

use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use time::format_description::FormatItem;
use time::macros::format_description;
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{Incident, Role, SessionRecord, User};
use velro_core::service::IssuedSession;

mod user_body;

const RFC3339_UTC: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");

/// A JSON answer. Unlike `axum::Json` (a 128-byte buffer and an empty header map), it starts
/// with room for most answers (a user's is about 430 bytes) and for the headers every answer
/// gets (`middleware::Observe`), so that neither grows while the answer is made.
pub(crate) struct Json<T>(pub T);

/// At most 1,000 bytes, so that glibc serves it from its small bins: anything larger (a chunk of
/// 1,024 bytes or more with its header) is a "large" request, and each of those first
/// consolidates every freed small chunk (`malloc_consolidate`), which showed in the profile of
/// `GET /me`. A session's answer (tokens and user) grows it once.
const JSON_BODY_CAPACITY: usize = 1000;
/// Content type, the request id, the five security headers, and a challenge or `Retry-After`.
const JSON_HEADERS_CAPACITY: usize = 9;

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(JSON_BODY_CAPACITY);
        match serde_json::to_writer(&mut body, &self.0) {
            Ok(()) => json_answer(body),
            Err(error) => unwritable(&error),
        }
    }
}

/// A 200 carrying `body`, a JSON document.
fn json_answer(body: Vec<u8>) -> Response {
    let mut headers = HeaderMap::with_capacity(JSON_HEADERS_CAPACITY);
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let mut response = Response::new(Body::from(body));
    *response.headers_mut() = headers;
    response
}

/// Only a type that cannot be JSON fails to be written; the surface's renderer writes the 500.
fn unwritable(error: &serde_json::Error) -> Response {
    tracing::error!(error = %error, "an answer could not be written as JSON");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// RFC 3339 in UTC, whole seconds, as the contract's examples show.
pub(crate) fn rfc3339(t: OffsetDateTime) -> String {
    let mut text = [0; RFC3339_LEN];
    match write_rfc3339(t, &mut text) {
        Some(text) => text.to_string(),
        None => rfc3339_by_time(t),
    }
}

fn rfc3339_by_time(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(RFC3339_UTC)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

const RFC3339_LEN: usize = "2026-01-31T23:59:59Z".len();

/// [`rfc3339`] written by hand into `out` for the years 0 to 9999: every user answer carries
/// two of these, and `time`'s general formatter was a tenth of a cached `GET /me`. `None` for
/// other years, which `time` writes (with a sign or more digits).
fn write_rfc3339(t: OffsetDateTime, out: &mut [u8; RFC3339_LEN]) -> Option<&str> {
    let t = t.to_offset(time::UtcOffset::UTC);
    let (year, month, day) = t.to_calendar_date();
    let year = u16::try_from(year).ok().filter(|year| *year <= 9999)?;
    let (hour, minute, second) = t.to_hms();
    let [century, year] = [year / 100, year % 100].map(|part| part as u8);
    for (at, value) in [
        (0, century),
        (2, year),
        (5, u8::from(month)),
        (8, day),
        (11, hour),
        (14, minute),
        (17, second),
    ] {
        out[at] = b'0' + value / 10;
        out[at + 1] = b'0' + value % 10;
    }
    for (at, separator) in [
        (4, b'-'),
        (7, b'-'),
        (10, b'T'),
        (13, b':'),
        (16, b':'),
        (19, b'Z'),
    ] {
        out[at] = separator;
    }
    std::str::from_utf8(out).ok()
}

/// A moment as [`rfc3339`] writes it, serialised without building a `String`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timestamp(pub OffsetDateTime);

impl Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = [0; RFC3339_LEN];
        match write_rfc3339(self.0, &mut text) {
            Some(text) => serializer.serialize_str(text),
            None => serializer.serialize_str(&rfc3339_by_time(self.0)),
        }
    }
}

/// One of the roles a user can have.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RoleName {
    Viewer,
    Creator,
    Admin,
}

impl From<Role> for RoleName {
    fn from(role: Role) -> Self {
        match role {
            Role::Viewer => Self::Viewer,
            Role::Creator => Self::Creator,
            Role::Admin => Self::Admin,
        }
    }
}

/// Borrowed from a user that outlives the answer (`GET /me`'s, the session's shared snapshot),
/// or owning the strings of one that does not.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = User)]
pub(crate) struct UserResponse<'a> {
    id: Uuid,
    #[schema(example = "ada@example.com", value_type = String)]
    email: Cow<'a, str>,
    #[schema(value_type = Option<String>)]
    display_name: Option<Cow<'a, str>>,
    #[schema(value_type = Option<String>)]
    avatar_url: Option<Cow<'a, str>>,
    credits_balance: i64,
    role: RoleName,
    email_confirmed: bool,
    #[schema(value_type = String, format = DateTime)]
    created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    updated_at: Timestamp,
}

impl From<User> for UserResponse<'static> {
    fn from(user: User) -> Self {
        Self {
            id: user.id.0,
            email: Cow::Owned(user.email.into_string()),
            display_name: user.display_name.map(Cow::Owned),
            avatar_url: user.avatar_url.map(Cow::Owned),
            credits_balance: user.credits_balance,
            role: user.role.into(),
            email_confirmed: user.email_confirmed,
            created_at: Timestamp(user.created_at),
            updated_at: Timestamp(user.updated_at),
        }
    }
}

impl<'a> From<&'a User> for UserResponse<'a> {
    fn from(user: &'a User) -> Self {
        Self {
            id: user.id.0,
            email: Cow::Borrowed(user.email.as_str()),
            display_name: user.display_name.as_deref().map(Cow::Borrowed),
            avatar_url: user.avatar_url.as_deref().map(Cow::Borrowed),
            credits_balance: user.credits_balance,
            role: user.role.into(),
            email_confirmed: user.email_confirmed,
            created_at: Timestamp(user.created_at),
            updated_at: Timestamp(user.updated_at),
        }
    }
}

/// A user as the admin API shows it: with `disabled`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = AdminUser)]
pub(crate) struct AdminUserResponse {
    #[serde(flatten)]
    user: UserResponse<'static>,
    disabled: bool,
}

impl From<User> for AdminUserResponse {
    fn from(user: User) -> Self {
        let disabled = user.disabled;
        Self {
            user: user.into(),
            disabled,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = UserList)]
pub(crate) struct UserListResponse {
    pub users: Vec<AdminUserResponse>,
    /// The `after` cursor of the next page, or null on the last one.
    pub next: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Session)]
pub(crate) struct SessionResponse {
    /// A JWT; send it as `Authorization: Bearer <access_token>`.
    access_token: String,
    #[schema(example = "bearer")]
    token_type: &'static str,
    /// The access token's lifetime in seconds.
    expires_in: i64,
    /// The access token's expiry in unix seconds.
    expires_at: i64,
    refresh_token: String,
    user: UserResponse<'static>,
}

impl From<IssuedSession> for SessionResponse {
    fn from(issued: IssuedSession) -> Self {
        Self {
            access_token: issued.access_token.expose().clone(),
            token_type: "bearer",
            expires_in: issued.expires_in,
            expires_at: issued.expires_at,
            refresh_token: issued.refresh_token.expose().clone(),
            user: issued.user.into(),
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct SessionInfo {
    id: Uuid,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    last_refreshed_at: Option<String>,
    /// The current refresh token's expiry.
    #[schema(format = DateTime)]
    expires_at: String,
    user_agent: Option<String>,
    ip: Option<String>,
    current: bool,
}

impl SessionInfo {
    pub(crate) fn new(session: SessionRecord, current: bool) -> Self {
        Self {
            id: session.id.0,
            created_at: rfc3339(session.created_at),
            last_refreshed_at: session.last_refreshed_at.map(rfc3339),
            expires_at: rfc3339(session.expires_at),
            user_agent: session.user_agent,
            ip: session.ip,
            current,
        }
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = SessionList)]
pub(crate) struct SessionListResponse {
    pub sessions: Vec<SessionInfo>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Message)]
pub(crate) struct MessageResponse {
    message: &'static str,
}

impl MessageResponse {
    pub(crate) fn new(message: &'static str) -> Self {
        Self { message }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_are_rfc3339_utc_whole_seconds() {
        assert_eq!(
            rfc3339(datetime!(2026-11-28 10:00:00.123456 UTC)),
            "2026-11-28T10:00:00Z"
        );
        assert_eq!(
            rfc3339(datetime!(2026-11-28 12:00:00 +02:00)),
            "2026-11-28T10:00:00Z"
        );
    }

    #[test]
    fn years_the_hand_written_form_cannot_hold_are_written_by_time() {
        let early = datetime!(-0001-12-31 23:59:59 UTC);
        assert_eq!(rfc3339(early), rfc3339_by_time(early));
        assert_eq!(
            serde_json::to_string(&Timestamp(early)).expect("serialises"),
            format!("\"{}\"", rfc3339_by_time(early))
        );
    }

    proptest::proptest! {
        #[test]
        fn the_hand_written_form_matches_time_s(
            seconds in -62_167_219_200_i64..253_402_300_800,
            nanos in 0_u32..1_000_000_000,
            offset_minutes in -1_439_i32..1_440,
        ) {
            let utc = OffsetDateTime::from_unix_timestamp(seconds).expect("in range")
                + time::Duration::nanoseconds(i64::from(nanos));
            let offset = time::UtcOffset::from_whole_seconds(offset_minutes * 60).expect("valid");
            let t = utc.to_offset(offset);
            let expected = rfc3339_by_time(t);
            proptest::prop_assert_eq!(rfc3339(t), expected.clone());
            proptest::prop_assert_eq!(
                serde_json::to_string(&Timestamp(t)).expect("serialises"),
                format!("\"{expected}\"")
            );
        }
    }
}

/// An incident as the admin API and the status page's JSON show it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Incident)]
pub(crate) struct IncidentResponse {
    id: Uuid,
    title: String,
    /// The status of the newest update.
    #[schema(value_type = IncidentStatusName)]
    status: &'static str,
    #[schema(value_type = ImpactName)]
    impact: &'static str,
    #[schema(value_type = Vec<ComponentName>)]
    components: Vec<&'static str>,
    #[schema(format = DateTime)]
    expected_resolution: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    /// Set while the newest update says `resolved`.
    #[schema(format = DateTime)]
    resolved_at: Option<String>,
    /// The timeline, newest first.
    updates: Vec<IncidentUpdateResponse>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = IncidentUpdate)]
pub(crate) struct IncidentUpdateResponse {
    id: Uuid,
    #[schema(value_type = IncidentStatusName)]
    status: &'static str,
    message: String,
    #[schema(format = DateTime)]
    created_at: String,
}

/// Where an incident stands.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = IncidentStatus)]
#[allow(dead_code)] // A schema only: the bodies carry the domain's names.
pub(crate) enum IncidentStatusName {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

/// How much of the service an incident affects.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Impact)]
#[allow(dead_code)] // A schema only.
pub(crate) enum ImpactName {
    None,
    Minor,
    Major,
    Critical,
}

/// A component of the status page.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[schema(as = Component)]
#[allow(dead_code)] // A schema only.
pub(crate) enum ComponentName {
    AuthApi,
    TokenChecks,
    Database,
    Cache,
    Email,
}

impl From<Incident> for IncidentResponse {
    fn from(incident: Incident) -> Self {
        Self {
            id: incident.id.0,
            title: incident.title.as_str().to_string(),
            status: incident.status.as_str(),
            impact: incident.impact.as_str(),
            components: incident.components.iter().map(|c| c.as_str()).collect(),
            expected_resolution: incident.expected_resolution.map(rfc3339),
            created_at: rfc3339(incident.created_at),
            updated_at: rfc3339(incident.updated_at),
            resolved_at: incident.resolved_at.map(rfc3339),
            updates: incident
                .updates
                .into_iter()
                .map(|update| IncidentUpdateResponse {
                    id: update.id,
                    status: update.status.as_str(),
                    message: update.message.as_str().to_string(),
                    created_at: rfc3339(update.created_at),
                })
                .collect(),
        }
    }
}
