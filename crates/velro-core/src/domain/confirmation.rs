//! The state of GoTrue's mail flows (confirmation, invite, email change) as the services and
//! stores exchange it. Kept apart from `User`, which every request carries: only the Supabase
//! surface's mail flows and user answers read it.

use time::{Duration, OffsetDateTime};

use super::{Email, UserId};
use crate::store::TokenHash;

/// What a mailed one-time token proves when it is redeemed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailPurpose {
    /// Password reset, `/recover`, magic links: the holder reads the account's mail.
    Recovery,
    /// Sign-up and invite confirmation.
    Confirmation,
    /// The holder reads the pending new address: the change completes (with secure email
    /// change, once the current address has confirmed too).
    EmailChange,
    /// The holder reads the account's current address: one half of a secure email change.
    EmailChangeCurrent,
}

impl MailPurpose {
    /// The stored name (`password_reset_tokens.purpose`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Recovery => "recovery",
            Self::Confirmation => "confirmation",
            Self::EmailChange => "email_change",
            Self::EmailChangeCurrent => "email_change_current",
        }
    }

    pub fn from_stored(stored: &str) -> Option<Self> {
        match stored {
            "recovery" => Some(Self::Recovery),
            "confirmation" => Some(Self::Confirmation),
            "email_change" => Some(Self::EmailChange),
            "email_change_current" => Some(Self::EmailChangeCurrent),
            _ => None,
        }
    }
}

/// GoTrue's per-user mail columns, for the user JSON and the flows' rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MailState {
    pub email_confirmed_at: Option<OffsetDateTime>,
    /// Created unconfirmed through /auth/v1 and not confirmed since: may not sign in there.
    pub awaiting_confirmation: bool,
    pub invited_at: Option<OffsetDateTime>,
    pub confirmation_sent_at: Option<OffsetDateTime>,
    pub new_email: Option<Email>,
    pub email_change_sent_at: Option<OffsetDateTime>,
    /// When the last recovery or magic-link mail (or v1 reset) went out, while its token is
    /// kept (the purge removes old ones).
    pub recovery_sent_at: Option<OffsetDateTime>,
}

/// One mail's two ways in (a link token and a code), both stored hashed, and what the mail is for.
#[derive(Debug, Clone)]
pub struct NewMailToken {
    pub user_id: UserId,
    /// Any purpose; `Recovery` here is the /auth/v1 recovery and magic-link mail (the v1
    /// reset keeps `create_reset_token`).
    pub purpose: MailPurpose,
    pub link: TokenHash,
    pub code: TokenHash,
    /// The address an `EmailChange` moves to.
    pub new_email: Option<Email>,
    pub expires_at: OffsetDateTime,
    /// A mail of the same purpose sent less than this long ago refuses the new one (GoTrue's
    /// `SMTP_MAX_FREQUENCY`); zero for admin links, which send nothing.
    pub min_interval: Duration,
    pub now: OffsetDateTime,
}

/// The outcome of `Store::issue_mail_token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailTokenIssued {
    /// Stored; earlier unredeemed tokens of the same purpose are spent.
    Issued,
    /// The previous mail of this purpose went out less than `min_interval` ago.
    TooSoon { retry_after_secs: u64 },
}

/// A redeemed token: whose, and what it confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedeemedMailToken {
    pub user_id: UserId,
    pub purpose: MailPurpose,
}

/// A mail's link token and code, both hashed.
#[derive(Debug, Clone, Copy)]
pub struct MailTokenPair {
    pub link: TokenHash,
    pub code: TokenHash,
}

/// An email change's tokens: GoTrue's `email_change_token_new` (mailed to the new address) and,
/// for a secure change, `email_change_token_current` (mailed to the current one).
#[derive(Debug, Clone)]
pub struct NewEmailChange {
    pub user_id: UserId,
    pub new_email: Email,
    /// Tokens of purpose `EmailChange`.
    pub new_address: Option<MailTokenPair>,
    /// Tokens of purpose `EmailChangeCurrent`.
    pub current_address: Option<MailTokenPair>,
    /// How many redeemed tokens complete the change: 2 for a secure change, else 1.
    pub confirmations: u8,
    /// A request (`PUT /user`, `/resend`) spends every earlier unredeemed email-change token of
    /// both halves; an admin's link of one half spends only that half's (GoTrue keeps the other
    /// token).
    pub replace_all: bool,
    pub expires_at: OffsetDateTime,
    /// As `NewMailToken::min_interval`, against the last email-change mail.
    pub min_interval: Duration,
    pub now: OffsetDateTime,
}

/// The outcome of `Store::redeem_email_change`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EmailChangeRedeemed {
    /// One half of a secure change confirmed; the other is still awaited.
    AwaitingOther { user_id: UserId },
    /// The user moved to the pending address (confirmed).
    Changed { user_id: UserId },
}
