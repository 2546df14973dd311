//! The status page's vocabulary: the components a user can tell apart, their states, the
//! per-minute samples instances record, and incidents with their timelines. How the states are
//! judged lives in `service::status`; how they are shown lives in velro-http.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;
use uuid::Uuid;

/// What a user can tell apart when something breaks. Kept in the order the page lists them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// Sign-in and sign-up: the account endpoints of the auth API.
    AuthApi,
    /// Access-token checks (`/me`, sessions) and the published keys.
    TokenChecks,
    Database,
    /// The cache layers (in-process and Redis).
    Cache,
    /// Password-reset mail.
    Email,
}

impl Component {
    pub const ALL: [Self; 5] = [
        Self::AuthApi,
        Self::TokenChecks,
        Self::Database,
        Self::Cache,
        Self::Email,
    ];

    /// The stable machine name, in JSON and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AuthApi => "auth_api",
            Self::TokenChecks => "token_checks",
            Self::Database => "database",
            Self::Cache => "cache",
            Self::Email => "email",
        }
    }

    /// The name a person reads.
    pub fn label(self) -> &'static str {
        match self {
            Self::AuthApi => "Sign-in and sign-up",
            Self::TokenChecks => "Token checks",
            Self::Database => "Database",
            Self::Cache => "Cache (Redis)",
            Self::Email => "Email delivery",
        }
    }
}

impl FromStr for Component {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or("must be one of auth_api, token_checks, database, cache, email")
    }
}

/// A component's state, ordered from best to worst so that `max` is "the worst of".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ComponentState {
    Operational,
    Degraded,
    PartialOutage,
    MajorOutage,
}

impl ComponentState {
    pub const ALL: [Self; 4] = [
        Self::Operational,
        Self::Degraded,
        Self::PartialOutage,
        Self::MajorOutage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operational => "operational",
            Self::Degraded => "degraded",
            Self::PartialOutage => "partial_outage",
            Self::MajorOutage => "major_outage",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Operational => "Operational",
            Self::Degraded => "Degraded performance",
            Self::PartialOutage => "Partial outage",
            Self::MajorOutage => "Major outage",
        }
    }

    /// The stored form: a number, so that the database can keep the worst of two with `>`.
    pub fn severity(self) -> i32 {
        match self {
            Self::Operational => 0,
            Self::Degraded => 1,
            Self::PartialOutage => 2,
            Self::MajorOutage => 3,
        }
    }

    pub fn from_severity(severity: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.severity() == severity)
    }
}

/// One component's state now, with a reason a person can read. The reason never carries
/// internal details (hosts, error text, request ids).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComponentStatus {
    pub component: Component,
    pub state: ComponentState,
    pub reason: String,
}

/// Minutes since the Unix epoch: the unit samples are recorded in.
pub type UnixMinute = i64;

pub const MINUTES_PER_DAY: i64 = 1440;

pub fn unix_minute(at: OffsetDateTime) -> UnixMinute {
    at.unix_timestamp().div_euclid(60)
}

/// A component's state in one minute as one instance saw it. Instances write the same
/// (component, minute) row; the store keeps the worst, so several instances count once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSample {
    pub component: Component,
    pub minute: UnixMinute,
    pub state: ComponentState,
    pub reason: String,
}

/// How many recorded minutes of one UTC day a component spent in one state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateMinutes {
    pub component: Component,
    /// Days since the Unix epoch (UTC).
    pub day: i64,
    pub state: ComponentState,
    pub minutes: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IncidentId(pub Uuid);

impl fmt::Display for IncidentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Where an incident stands, as its updates say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IncidentStatus {
    Investigating,
    Identified,
    Monitoring,
    Resolved,
}

impl IncidentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Investigating => "investigating",
            Self::Identified => "identified",
            Self::Monitoring => "monitoring",
            Self::Resolved => "resolved",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Investigating => "Investigating",
            Self::Identified => "Identified",
            Self::Monitoring => "Monitoring",
            Self::Resolved => "Resolved",
        }
    }
}

impl FromStr for IncidentStatus {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "investigating" => Ok(Self::Investigating),
            "identified" => Ok(Self::Identified),
            "monitoring" => Ok(Self::Monitoring),
            "resolved" => Ok(Self::Resolved),
            _ => Err("must be one of investigating, identified, monitoring, resolved"),
        }
    }
}

/// How much of the service an incident affects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Impact {
    None,
    Minor,
    Major,
    Critical,
}

impl Impact {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Minor => "minor",
            Self::Major => "major",
            Self::Critical => "critical",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::None => "No impact",
            Self::Minor => "Minor impact",
            Self::Major => "Major impact",
            Self::Critical => "Critical impact",
        }
    }

    /// What an open incident of this impact says about the service as a whole, as the
    /// well-known status pages read it: minor is degraded performance, major a partial outage,
    /// critical a major outage. The page's headline is never better than an open incident.
    pub fn state(self) -> ComponentState {
        match self {
            Self::None => ComponentState::Operational,
            Self::Minor => ComponentState::Degraded,
            Self::Major => ComponentState::PartialOutage,
            Self::Critical => ComponentState::MajorOutage,
        }
    }
}

impl FromStr for Impact {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "minor" => Ok(Self::Minor),
            "major" => Ok(Self::Major),
            "critical" => Ok(Self::Critical),
            _ => Err("must be one of none, minor, major, critical"),
        }
    }
}

/// Text an operator wrote for the public: trimmed, non-empty, bounded, no control characters
/// other than line breaks in messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicText(String);

impl PublicText {
    pub const TITLE_MAX: usize = 200;
    pub const MESSAGE_MAX: usize = 5000;

    /// `max` counts characters, not bytes; `multiline` allows `\n`.
    pub fn parse(raw: &str, max: usize, multiline: bool) -> Result<Self, String> {
        let text = raw.trim();
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.chars().count() > max {
            return Err(format!("must be at most {max} characters"));
        }
        let allowed = |c: char| !c.is_control() || (multiline && (c == '\n' || c == '\r'));
        if !text.chars().all(allowed) {
            return Err("must not contain control characters".into());
        }
        Ok(Self(text.replace("\r\n", "\n").replace('\r', "\n")))
    }

    /// Text read back from the store, which only ever held parsed text.
    pub fn from_trusted(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An incident as an operator opens it, with its first update.
#[derive(Debug, Clone)]
pub struct NewIncident {
    pub id: IncidentId,
    pub title: PublicText,
    pub impact: Impact,
    pub components: Vec<Component>,
    pub expected_resolution: Option<OffsetDateTime>,
    pub first_update: NewIncidentUpdate,
}

/// One entry of an incident's timeline; it also sets the incident's status.
#[derive(Debug, Clone)]
pub struct NewIncidentUpdate {
    pub id: Uuid,
    pub status: IncidentStatus,
    pub message: PublicText,
    pub now: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentUpdate {
    pub id: Uuid,
    pub status: IncidentStatus,
    pub message: PublicText,
    pub created_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incident {
    pub id: IncidentId,
    pub title: PublicText,
    /// The status of the newest update.
    pub status: IncidentStatus,
    pub impact: Impact,
    pub components: Vec<Component>,
    pub expected_resolution: Option<OffsetDateTime>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    /// When the newest update said `resolved`; `None` while open.
    pub resolved_at: Option<OffsetDateTime>,
    /// Newest first.
    pub updates: Vec<IncidentUpdate>,
}

impl Incident {
    pub fn is_open(&self) -> bool {
        self.status != IncidentStatus::Resolved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_states_order_from_best_to_worst() {
        for component in Component::ALL {
            assert_eq!(component.as_str().parse::<Component>(), Ok(component));
        }
        for state in ComponentState::ALL {
            assert_eq!(ComponentState::from_severity(state.severity()), Some(state));
        }
        assert!(ComponentState::MajorOutage > ComponentState::PartialOutage);
        assert!(ComponentState::Degraded > ComponentState::Operational);
        for status in ["investigating", "identified", "monitoring", "resolved"] {
            assert_eq!(
                status.parse::<IncidentStatus>().map(IncidentStatus::as_str),
                Ok(status)
            );
        }
    }

    #[test]
    fn public_text_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(
            PublicText::parse("  Login slow \n", 10, false).map(|t| t.0),
            Ok("Login slow".into())
        );
        assert!(PublicText::parse("   ", 10, false).is_err());
        assert!(PublicText::parse("éééééééééé", 10, false).is_ok());
        assert!(PublicText::parse("ééééééééééé", 10, false).is_err());
        assert!(PublicText::parse("a\nb", 10, false).is_err());
        assert_eq!(
            PublicText::parse("a\r\nb", 10, true).map(|t| t.0),
            Ok("a\nb".into())
        );
        assert!(PublicText::parse("a\u{7}b", 10, true).is_err());
    }

    #[test]
    fn a_minute_is_counted_from_the_epoch_in_utc() {
        let at = OffsetDateTime::from_unix_timestamp(86_400 + 61).expect("valid");
        assert_eq!(unix_minute(at), MINUTES_PER_DAY + 1);
        let before = OffsetDateTime::from_unix_timestamp(-1).expect("valid");
        assert_eq!(unix_minute(before), -1);
    }
}
