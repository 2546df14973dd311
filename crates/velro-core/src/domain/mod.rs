//! Domain types. Each one is parsed once from untrusted input and is valid from then on.

mod confirmation;
mod email;
mod metadata;
mod password;
mod profile;
mod status;
mod user;

pub use confirmation::{MailPurpose, MailState, MailTokenIssued, NewMailToken, RedeemedMailToken};
pub use email::Email;
pub use metadata::{BanDuration, Metadata, MetadataError, MetadataWrite, MAX_METADATA_BYTES};
pub use password::{
    NewPassword, PasswordPolicy, PasswordRules, PasswordViolation, DEFAULT_MIN_CHARS,
    LOWEST_MIN_CHARS,
};
pub use profile::{AvatarUrl, DisplayName};
pub use status::{
    unix_minute, Component, ComponentState, ComponentStatus, Impact, Incident, IncidentId,
    IncidentStatus, IncidentUpdate, NewIncident, NewIncidentUpdate, PublicText, StateMinutes,
    StatusSample, UnixMinute, MINUTES_PER_DAY,
};
pub use user::{
    AccountChange, AdminUserChange, Credentials, NewUser, PasswordHash, ProfileChange, Role,
    SessionId, SessionRecord, User, UserCursor, UserId, UserPage, UserQuery,
};
