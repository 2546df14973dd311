//! Rows to domain values, for both dialects. The columns that are stored differently (times,
//! the refresh generation) are read as [`StoredTime`] and [`StoredGeneration`], whose sqlx
//! encoding each dialect module supplies; everything else decodes the same in both.
//! Decoding failures are `sqlx::Error::Decode`.

use sqlx::error::BoxDynError;
use sqlx::FromRow;
use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{
    CodeChallenge, Component, ComponentState, Credentials, Email, FlowMethod, FlowState,
    FlowStateId, Incident, IncidentId, IncidentStatus, IncidentUpdate, MailState, Metadata,
    PasswordHash, PublicText, Role, SessionId, SessionRecord, StateMinutes, StatusSample, User,
    UserId,
};

use crate::error::corrupt;
use crate::rotation::PresentedToken;

/// A time as the dialect stores it: unix microseconds in SQLite, timestamptz in PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredTime(pub(crate) OffsetDateTime);

/// A refresh-token generation as the dialect stores it: INTEGER (i64) in SQLite, integer (i32)
/// in PostgreSQL.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredGeneration(pub(crate) u32);

impl StoredGeneration {
    /// From the dialect's integer column; a negative or too large value is corrupt.
    pub(crate) fn from_stored<T>(stored: T) -> Result<Self, BoxDynError>
    where
        T: TryInto<u32> + Copy + std::fmt::Display,
    {
        stored
            .try_into()
            .map(Self)
            .map_err(|_| format!("refresh token generation {stored}").into())
    }

    /// Into the dialect's integer column.
    pub(crate) fn to_stored<T: TryFrom<u32>>(self) -> Result<T, BoxDynError> {
        T::try_from(self.0).map_err(|_| format!("refresh token generation {}", self.0).into())
    }
}

/// The columns of `user_columns!`.
#[derive(FromRow)]
pub(crate) struct UserRow {
    user_id: Uuid,
    email: String,
    display_name: Option<String>,
    avatar_url: Option<String>,
    credits_balance: i64,
    role: String,
    email_confirmed: bool,
    disabled: bool,
    created_at: StoredTime,
    updated_at: StoredTime,
    user_metadata: Option<String>,
    app_metadata: Option<String>,
    banned_until: Option<StoredTime>,
    deleted_at: Option<StoredTime>,
}

impl UserRow {
    pub(crate) fn into_user(self) -> Result<User, sqlx::Error> {
        let role = self
            .role
            .parse::<Role>()
            .map_err(|_| corrupt(format!("unknown role {:?}", self.role)))?;
        Ok(User {
            id: UserId(self.user_id),
            email: Email::from_trusted(self.email),
            display_name: self.display_name,
            avatar_url: self.avatar_url,
            credits_balance: self.credits_balance,
            role,
            email_confirmed: self.email_confirmed,
            disabled: self.disabled,
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
            user_metadata: self
                .user_metadata
                .as_deref()
                .and_then(Metadata::from_stored),
            app_metadata: self.app_metadata.as_deref().and_then(Metadata::from_stored),
            banned_until: self.banned_until.map(|t| t.0),
            deleted_at: self.deleted_at.map(|t| t.0),
        })
    }
}

/// The user columns and `password_hash`.
#[derive(FromRow)]
pub(crate) struct CredentialsRow {
    #[sqlx(flatten)]
    user: UserRow,
    password_hash: String,
}

impl CredentialsRow {
    pub(crate) fn into_credentials(self) -> Result<Credentials, sqlx::Error> {
        Ok(Credentials {
            user: self.user.into_user()?,
            password_hash: PasswordHash::new(self.password_hash),
        })
    }
}

/// The columns of `session_columns_s!`.
#[derive(FromRow)]
pub(crate) struct SessionRow {
    session_id: Uuid,
    #[sqlx(rename = "session_user_id")]
    user_id: Uuid,
    #[sqlx(rename = "session_created_at")]
    created_at: StoredTime,
    last_refreshed_at: Option<StoredTime>,
    #[sqlx(rename = "session_expires_at")]
    expires_at: StoredTime,
    remember_me: bool,
    user_agent: Option<String>,
    ip: Option<String>,
}

impl From<SessionRow> for SessionRecord {
    fn from(row: SessionRow) -> Self {
        Self {
            id: SessionId(row.session_id),
            user_id: UserId(row.user_id),
            created_at: row.created_at.0,
            last_refreshed_at: row.last_refreshed_at.map(|t| t.0),
            expires_at: row.expires_at.0,
            remember_me: row.remember_me,
            user_agent: row.user_agent,
            ip: row.ip,
        }
    }
}

/// A session joined with its user.
#[derive(FromRow)]
pub(crate) struct LiveSessionRow {
    #[sqlx(flatten)]
    session: SessionRow,
    #[sqlx(flatten)]
    user: UserRow,
}

impl LiveSessionRow {
    pub(crate) fn into_parts(self) -> Result<(SessionRecord, User), sqlx::Error> {
        Ok((self.session.into(), self.user.into_user()?))
    }
}

/// The row of `FIND_PRESENTED_TOKEN`: the token with its session and user.
#[derive(FromRow)]
pub(crate) struct PresentedRow {
    generation: StoredGeneration,
    token_expires_at: StoredTime,
    spent_at: Option<StoredTime>,
    spent_elsewhere: bool,
    revoked_at: Option<StoredTime>,
    #[sqlx(flatten)]
    live: LiveSessionRow,
}

impl PresentedRow {
    /// The token as the rotation rules see it, its generation, its session and its user.
    pub(crate) fn into_parts(
        self,
    ) -> Result<(PresentedToken, u32, SessionRecord, User), sqlx::Error> {
        let (session, user) = self.live.into_parts()?;
        let token = PresentedToken {
            expires_at: self.token_expires_at.0,
            spent_at: self.spent_at.map(|t| t.0),
            spent_elsewhere: self.spent_elsewhere,
            session_revoked: self.revoked_at.is_some(),
            user_disabled: user.disabled,
        };
        Ok((token, self.generation.0, session, user))
    }
}

/// A row of `STATUS_HISTORY`.
#[derive(FromRow)]
pub(crate) struct StateMinutesRow {
    component: String,
    day: i64,
    state: i32,
    minutes: i64,
}

fn component(name: &str) -> Result<Component, sqlx::Error> {
    name.parse()
        .map_err(|_| corrupt(format!("unknown component {name:?}")))
}

fn state(severity: i32) -> Result<ComponentState, sqlx::Error> {
    ComponentState::from_severity(severity)
        .ok_or_else(|| corrupt(format!("unknown component state {severity}")))
}

impl StateMinutesRow {
    pub(crate) fn into_state_minutes(self) -> Result<StateMinutes, sqlx::Error> {
        Ok(StateMinutes {
            component: component(&self.component)?,
            day: self.day,
            state: state(self.state)?,
            minutes: u32::try_from(self.minutes)
                .map_err(|_| corrupt(format!("minute count {}", self.minutes)))?,
        })
    }
}

/// A row of `LATEST_STATUS`.
#[derive(FromRow)]
pub(crate) struct StatusSampleRow {
    component: String,
    minute: i64,
    state: i32,
    reason: String,
}

impl StatusSampleRow {
    pub(crate) fn into_sample(self) -> Result<StatusSample, sqlx::Error> {
        Ok(StatusSample {
            component: component(&self.component)?,
            minute: self.minute,
            state: state(self.state)?,
            reason: self.reason,
        })
    }
}

/// The columns of `incident_columns!`.
#[derive(FromRow)]
pub(crate) struct IncidentRow {
    incident_id: Uuid,
    title: String,
    status: String,
    impact: String,
    components: String,
    expected_resolution: Option<StoredTime>,
    created_at: StoredTime,
    updated_at: StoredTime,
    resolved_at: Option<StoredTime>,
}

/// How the incident's components are stored: names joined by commas.
pub(crate) fn join_components(components: &[Component]) -> String {
    components
        .iter()
        .map(|c| c.as_str())
        .collect::<Vec<_>>()
        .join(",")
}

impl IncidentRow {
    pub(crate) fn id(&self) -> Uuid {
        self.incident_id
    }

    /// The incident with `updates` (newest first) as its timeline.
    pub(crate) fn into_incident(
        self,
        updates: Vec<IncidentUpdate>,
    ) -> Result<Incident, sqlx::Error> {
        let components = self
            .components
            .split(',')
            .filter(|name| !name.is_empty())
            .map(component)
            .collect::<Result<_, _>>()?;
        Ok(Incident {
            id: IncidentId(self.incident_id),
            title: PublicText::from_trusted(self.title),
            status: incident_status(&self.status)?,
            impact: self
                .impact
                .parse()
                .map_err(|_| corrupt(format!("unknown impact {:?}", self.impact)))?,
            components,
            expected_resolution: self.expected_resolution.map(|t| t.0),
            created_at: self.created_at.0,
            updated_at: self.updated_at.0,
            resolved_at: self.resolved_at.map(|t| t.0),
            updates,
        })
    }
}

fn incident_status(name: &str) -> Result<IncidentStatus, sqlx::Error> {
    name.parse()
        .map_err(|_| corrupt(format!("unknown incident status {name:?}")))
}

/// A row of `INCIDENT_UPDATES` / `LIST_INCIDENT_UPDATES`.
#[derive(FromRow)]
pub(crate) struct IncidentUpdateRow {
    update_id: Uuid,
    incident_id: Uuid,
    status: String,
    message: String,
    created_at: StoredTime,
}

impl IncidentUpdateRow {
    pub(crate) fn incident_id(&self) -> Uuid {
        self.incident_id
    }

    pub(crate) fn into_update(self) -> Result<IncidentUpdate, sqlx::Error> {
        Ok(IncidentUpdate {
            id: self.update_id,
            status: incident_status(&self.status)?,
            message: PublicText::from_trusted(self.message),
            created_at: self.created_at.0,
        })
    }
}

/// A console session's columns.
#[derive(FromRow)]
pub(crate) struct ConsoleSessionRow {
    user_id: Option<Uuid>,
    session_id: Option<Uuid>,
    created_at: StoredTime,
}

impl ConsoleSessionRow {
    pub(crate) fn into_record(self) -> velro_core::store::ConsoleSessionRecord {
        velro_core::store::ConsoleSessionRecord {
            user: self
                .user_id
                .zip(self.session_id)
                .map(|(user, session)| (UserId(user), SessionId(session))),
            created_at: self.created_at.0,
        }
    }
}

/// A flag change's columns.
#[derive(FromRow)]
pub(crate) struct FlagChangeRow {
    flag: String,
    old_value: bool,
    new_value: bool,
    actor: String,
    changed_at: StoredTime,
}

impl FlagChangeRow {
    pub(crate) fn into_change(self) -> velro_core::store::FlagChange {
        velro_core::store::FlagChange {
            flag: self.flag,
            old_value: self.old_value,
            new_value: self.new_value,
            actor: self.actor,
            changed_at: self.changed_at.0,
        }
    }
}

/// The columns of `sql::FIND_MAIL_STATE` (the state's are NULL without a state row).
#[derive(FromRow)]
pub(crate) struct MailStateRow {
    email_confirmed_at: Option<StoredTime>,
    awaiting_confirmation: Option<bool>,
    invited_at: Option<StoredTime>,
    confirmation_sent_at: Option<StoredTime>,
    new_email: Option<String>,
    email_change_sent_at: Option<StoredTime>,
    recovery_sent_at: Option<StoredTime>,
}

impl MailStateRow {
    pub(crate) fn into_state(self) -> MailState {
        MailState {
            email_confirmed_at: self.email_confirmed_at.map(|t| t.0),
            awaiting_confirmation: self.awaiting_confirmation.unwrap_or(false),
            invited_at: self.invited_at.map(|t| t.0),
            confirmation_sent_at: self.confirmation_sent_at.map(|t| t.0),
            new_email: self.new_email.map(Email::from_trusted),
            email_change_sent_at: self.email_change_sent_at.map(|t| t.0),
            recovery_sent_at: self.recovery_sent_at.map(|t| t.0),
        }
    }
}

/// The columns of `sql::FIND_FLOW_STATE`.
#[derive(FromRow)]
pub(crate) struct FlowStateRow {
    flow_state_id: Uuid,
    user_id: Uuid,
    authentication_method: String,
    code_challenge: String,
    code_challenge_method: String,
    created_at: StoredTime,
    auth_code_issued_at: Option<StoredTime>,
}

impl FlowStateRow {
    pub(crate) fn into_flow_state(self) -> Result<FlowState, sqlx::Error> {
        let method = FlowMethod::from_stored(&self.authentication_method).ok_or_else(|| {
            corrupt(format!(
                "unknown authentication method {:?}",
                self.authentication_method
            ))
        })?;
        let challenge =
            CodeChallenge::from_stored(self.code_challenge, &self.code_challenge_method)
                .ok_or_else(|| {
                    corrupt(format!(
                        "unknown code challenge method {:?}",
                        self.code_challenge_method
                    ))
                })?;
        // Found by its auth code, so one was issued.
        let issued = self
            .auth_code_issued_at
            .ok_or_else(|| corrupt("a flow state with an auth code but no time of issue"))?;
        Ok(FlowState {
            id: FlowStateId(self.flow_state_id),
            user_id: UserId(self.user_id),
            method,
            challenge,
            created_at: self.created_at.0,
            auth_code_issued_at: issued.0,
        })
    }
}
