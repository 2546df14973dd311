//! Domain types. Each one is parsed once from untrusted input and is valid from then on.

mod confirmation;
mod email;
mod flow_state;
mod metadata;
mod password;
mod profile;
mod status;
mod user;

pub use confirmation::{
    EmailChangeRedeemed, MailPurpose, MailState, MailTokenIssued, MailTokenPair, NewEmailChange,
    NewMailToken, RedeemedMailToken,
};
pub use email::Email;
pub use flow_state::{
    ChallengeError, ChallengeMethod, CodeChallenge, FlowMethod, FlowState, FlowStateId,
    IssuedAuthCode, NewFlowState, FLOW_STATE_LIFETIME,
};
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
