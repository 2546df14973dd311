//! GoTrue's PKCE flow states (RFC 7636) on the Supabase surface: the code challenge a mail
//! flow was started with, and the auth code its link turns into. Parsing and the verifier check
//! live here; storing them is the store's, the flow the Supabase service's.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::UserId;
use crate::store::TokenHash;

/// How long an auth code may be exchanged after the link that issued it was followed: GoTrue's
/// default (and least) `FLOW_STATE_EXPIRY_DURATION`.
pub const FLOW_STATE_LIFETIME: Duration = Duration::seconds(300);

/// RFC 7636's bounds on a challenge (and on a verifier), as GoTrue checks them.
const MIN_CHALLENGE_LEN: usize = 43;
const MAX_CHALLENGE_LEN: usize = 128;

/// How the verifier was turned into the challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMethod {
    /// `BASE64URL(SHA256(verifier))`, unpadded.
    S256,
    /// The verifier itself.
    Plain,
}

impl ChallengeMethod {
    /// The stored (and GoTrue's) name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S256 => "s256",
            Self::Plain => "plain",
        }
    }

    /// Case-insensitive, as GoTrue reads it (auth-js sends `s256`, supabase-py `S256`).
    pub fn parse(raw: &str) -> Option<Self> {
        if raw.eq_ignore_ascii_case("s256") {
            Some(Self::S256)
        } else if raw.eq_ignore_ascii_case("plain") {
            Some(Self::Plain)
        } else {
            None
        }
    }
}

/// Why a `code_challenge` / `code_challenge_method` pair was refused. The messages are GoTrue's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("PKCE flow requires code_challenge_method and code_challenge")]
    Incomplete,
    #[error("code challenge has to be between 43 and 128 characters")]
    Length,
    #[error(
        "code challenge can only contain alphanumeric characters, hyphens, periods, underscores and tildes"
    )]
    Characters,
    #[error("unsupported code_challenge method {0:?}")]
    Method(String),
}

/// A well-formed code challenge with its method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodeChallenge {
    challenge: String,
    method: ChallengeMethod,
}

impl CodeChallenge {
    /// The pair as a request carries it: both absent (or empty) is the implicit flow (`None`);
    /// one without the other is refused, as GoTrue does.
    pub fn parse(
        challenge: Option<&str>,
        method: Option<&str>,
    ) -> Result<Option<Self>, ChallengeError> {
        let challenge = challenge.filter(|c| !c.is_empty());
        let method = method.filter(|m| !m.is_empty());
        let (challenge, method) = match (challenge, method) {
            (None, None) => return Ok(None),
            (Some(challenge), Some(method)) => (challenge, method),
            _ => return Err(ChallengeError::Incomplete),
        };
        if !(MIN_CHALLENGE_LEN..=MAX_CHALLENGE_LEN).contains(&challenge.len()) {
            return Err(ChallengeError::Length);
        }
        let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~');
        if !challenge.bytes().all(allowed) {
            return Err(ChallengeError::Characters);
        }
        let method = ChallengeMethod::parse(method)
            .ok_or_else(|| ChallengeError::Method(method.to_string()))?;
        Ok(Some(Self {
            challenge: challenge.to_string(),
            method,
        }))
    }

    /// A pair read back from the store, already checked when it was stored.
    pub fn from_stored(challenge: String, method: &str) -> Option<Self> {
        Some(Self {
            challenge,
            method: ChallengeMethod::parse(method)?,
        })
    }

    pub fn challenge(&self) -> &str {
        &self.challenge
    }

    pub fn method(&self) -> ChallengeMethod {
        self.method
    }

    /// Whether `verifier` is the one this challenge was made from; constant time in the
    /// compared bytes.
    pub fn is_verified_by(&self, verifier: &str) -> bool {
        let expected = match self.method {
            ChallengeMethod::S256 => URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes())),
            ChallengeMethod::Plain => verifier.to_string(),
        };
        expected.as_bytes().ct_eq(self.challenge.as_bytes()).into()
    }
}

/// What a flow state's link signs in with (GoTrue's `authentication_method`, also the `amr`
/// method of the session the exchange starts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowMethod {
    Signup,
    Invite,
    Recovery,
    MagicLink,
    EmailChange,
}

impl FlowMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signup => "email/signup",
            Self::Invite => "invite",
            Self::Recovery => "recovery",
            Self::MagicLink => "magiclink",
            Self::EmailChange => "email_change",
        }
    }

    pub fn from_stored(stored: &str) -> Option<Self> {
        match stored {
            "email/signup" => Some(Self::Signup),
            "invite" => Some(Self::Invite),
            "recovery" => Some(Self::Recovery),
            "magiclink" => Some(Self::MagicLink),
            "email_change" => Some(Self::EmailChange),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowStateId(pub Uuid);

/// A flow state as a mail flow starts it: no auth code yet.
#[derive(Debug, Clone)]
pub struct NewFlowState {
    pub id: FlowStateId,
    pub user_id: UserId,
    pub method: FlowMethod,
    pub challenge: CodeChallenge,
    pub now: OffsetDateTime,
}

/// A flow state whose auth code was issued, as the exchange reads it.
#[derive(Debug, Clone)]
pub struct FlowState {
    pub id: FlowStateId,
    pub user_id: UserId,
    pub method: FlowMethod,
    pub challenge: CodeChallenge,
    pub created_at: OffsetDateTime,
    pub auth_code_issued_at: OffsetDateTime,
}

impl FlowState {
    /// GoTrue counts a magic link's lifetime from the code's issue and the other methods' from
    /// the flow's start; here every method counts from the code's issue, since the link that
    /// issues it has its own lifetime (see the README).
    pub fn is_expired(&self, now: OffsetDateTime) -> bool {
        now > self.auth_code_issued_at + FLOW_STATE_LIFETIME
    }
}

/// An issued auth code, stored only as its hash.
#[derive(Debug, Clone, Copy)]
pub struct IssuedAuthCode {
    pub user_id: UserId,
    pub method: FlowMethod,
    pub code: TokenHash,
    pub now: OffsetDateTime,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A verifier and its S256 challenge, computed apart (Python's hashlib and base64).
    const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";

    #[test]
    fn s256_accepts_the_verifier_the_challenge_was_made_from_and_refuses_others() {
        let challenge = CodeChallenge::parse(Some(CHALLENGE), Some("S256"))
            .expect("well formed")
            .expect("a PKCE pair");
        assert_eq!(challenge.method(), ChallengeMethod::S256);
        assert!(challenge.is_verified_by(VERIFIER));
        assert!(!challenge.is_verified_by(CHALLENGE));
        assert!(!challenge.is_verified_by(""));
    }

    #[test]
    fn plain_compares_the_verifier_itself() {
        let challenge = CodeChallenge::parse(Some(VERIFIER), Some("plain"))
            .expect("well formed")
            .expect("a PKCE pair");
        assert!(challenge.is_verified_by(VERIFIER));
        assert!(!challenge.is_verified_by(CHALLENGE));
    }

    /// A challenge, its method, and whether it is a PKCE pair or why not.
    type Case<'a> = (
        Option<&'a str>,
        Option<&'a str>,
        Result<bool, ChallengeError>,
    );

    #[test]
    fn pairs_are_parsed_as_gotrue_reads_them() {
        let long = "a".repeat(129);
        let cases: &[Case] = &[
            (None, None, Ok(false)),
            (Some(""), Some(""), Ok(false)),
            (Some(CHALLENGE), None, Err(ChallengeError::Incomplete)),
            (None, Some("s256"), Err(ChallengeError::Incomplete)),
            (Some("short"), Some("s256"), Err(ChallengeError::Length)),
            (Some(&long), Some("s256"), Err(ChallengeError::Length)),
            (
                Some("ngF5GsXcbwljx6u133FFr3Xht9xooA+DuaX/3QwODtc"),
                Some("s256"),
                Err(ChallengeError::Characters),
            ),
            (
                Some(CHALLENGE),
                Some("sha1"),
                Err(ChallengeError::Method("sha1".into())),
            ),
            (Some(CHALLENGE), Some("s256"), Ok(true)),
            (Some(CHALLENGE), Some("PLAIN"), Ok(true)),
        ];
        for (challenge, method, expected) in cases {
            let parsed = CodeChallenge::parse(*challenge, *method).map(|c| c.is_some());
            assert_eq!(&parsed, expected, "{challenge:?} {method:?}");
        }
    }

    #[test]
    fn methods_round_trip_through_their_stored_names() {
        for method in [
            FlowMethod::Signup,
            FlowMethod::Invite,
            FlowMethod::Recovery,
            FlowMethod::MagicLink,
            FlowMethod::EmailChange,
        ] {
            assert_eq!(FlowMethod::from_stored(method.as_str()), Some(method));
        }
        assert_eq!(FlowMethod::from_stored("password"), None);
    }

    #[test]
    fn a_flow_state_expires_five_minutes_after_its_code_was_issued() {
        let issued = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let state = FlowState {
            id: FlowStateId(Uuid::nil()),
            user_id: UserId(Uuid::nil()),
            method: FlowMethod::Recovery,
            challenge: CodeChallenge::parse(Some(CHALLENGE), Some("s256"))
                .expect("well formed")
                .expect("a PKCE pair"),
            created_at: issued - Duration::hours(1),
            auth_code_issued_at: issued,
        };
        assert!(!state.is_expired(issued + FLOW_STATE_LIFETIME));
        assert!(state.is_expired(issued + FLOW_STATE_LIFETIME + Duration::seconds(1)));
    }
}
