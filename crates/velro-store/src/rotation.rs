//! The refresh-token rules both stores apply inside their rotation transaction: what presenting
//! a token means, given what the database holds. Reading and writing the rows is `store`'s.

use time::OffsetDateTime;
use velro_core::domain::SessionRecord;
use velro_core::store::RefreshPolicy;

/// A presented token as found in the database, with its session and user.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PresentedToken {
    pub(crate) expires_at: OffsetDateTime,
    pub(crate) spent_at: Option<OffsetDateTime>,
    /// Spent by the server it was imported from: its successor cannot be derived here.
    pub(crate) spent_elsewhere: bool,
    pub(crate) session_revoked: bool,
    pub(crate) user_disabled: bool,
}

/// What the store must do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Refuse: expired, or its session is revoked or its user disabled.
    Invalid,
    /// Live: spend it (conditionally) and record the successor.
    Rotate,
    /// Spent a moment ago, e.g. by a second browser tab: point at the newest token.
    ReusedWithinGrace,
    /// Spent long ago: treat as stolen and revoke the session.
    ReusedAfterGrace,
}

pub(crate) fn judge(
    token: &PresentedToken,
    policy: &RefreshPolicy,
    now: OffsetDateTime,
) -> Verdict {
    if token.session_revoked || token.user_disabled {
        return Verdict::Invalid;
    }
    match token.spent_at {
        // A spent token is judged by when it was spent, whatever its own expiry.
        // The other server chose the successor at random: answering with a derived one would
        // hand out a token that does not exist, so a replay in the window is refused instead.
        Some(spent_at) if now - spent_at <= policy.reuse_grace && token.spent_elsewhere => {
            Verdict::Invalid
        }
        Some(spent_at) if now - spent_at <= policy.reuse_grace => Verdict::ReusedWithinGrace,
        Some(_) => Verdict::ReusedAfterGrace,
        None if token.expires_at <= now => Verdict::Invalid,
        None => Verdict::Rotate,
    }
}

/// The successor's expiry: a full lifetime from now; the remember-me choice carries over.
pub(crate) fn successor_expiry(
    policy: &RefreshPolicy,
    session: &SessionRecord,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, sqlx::Error> {
    now.checked_add(policy.lifetime_for(session.remember_me))
        .ok_or_else(|| sqlx::Error::Encode("refresh token expiry out of range".into()))
}

/// Generations count rotations from 0, the session's first token.
pub(crate) fn next_generation(generation: u32) -> Result<u32, sqlx::Error> {
    generation
        .checked_add(1)
        .ok_or_else(|| sqlx::Error::Encode("refresh token generation overflow".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    #[test]
    fn verdicts_follow_the_rules() {
        let now = OffsetDateTime::UNIX_EPOCH + Duration::days(20_000);
        let policy = RefreshPolicy {
            lifetime: Duration::days(7),
            remember_me_lifetime: Duration::days(30),
            reuse_grace: Duration::seconds(10),
        };
        let live = PresentedToken {
            expires_at: now + Duration::days(1),
            spent_at: None,
            spent_elsewhere: false,
            session_revoked: false,
            user_disabled: false,
        };
        let ago = |seconds: i64| Some(now - Duration::seconds(seconds));
        let cases = [
            (live, Verdict::Rotate),
            (
                PresentedToken {
                    expires_at: now,
                    ..live
                },
                Verdict::Invalid,
            ),
            (
                PresentedToken {
                    expires_at: now - Duration::seconds(1),
                    ..live
                },
                Verdict::Invalid,
            ),
            (
                PresentedToken {
                    session_revoked: true,
                    ..live
                },
                Verdict::Invalid,
            ),
            (
                PresentedToken {
                    user_disabled: true,
                    ..live
                },
                Verdict::Invalid,
            ),
            (
                PresentedToken {
                    spent_at: ago(0),
                    ..live
                },
                Verdict::ReusedWithinGrace,
            ),
            (
                PresentedToken {
                    spent_at: ago(10),
                    ..live
                },
                Verdict::ReusedWithinGrace,
            ),
            (
                PresentedToken {
                    spent_at: ago(-3),
                    ..live
                },
                Verdict::ReusedWithinGrace,
            ),
            (
                PresentedToken {
                    spent_at: ago(11),
                    ..live
                },
                Verdict::ReusedAfterGrace,
            ),
            (
                PresentedToken {
                    spent_at: ago(5),
                    expires_at: now - Duration::days(1),
                    ..live
                },
                Verdict::ReusedWithinGrace,
            ),
            (
                PresentedToken {
                    spent_at: ago(60),
                    session_revoked: true,
                    ..live
                },
                Verdict::Invalid,
            ),
            (
                PresentedToken {
                    spent_at: ago(5),
                    spent_elsewhere: true,
                    ..live
                },
                Verdict::Invalid,
            ),
            (
                PresentedToken {
                    spent_at: ago(11),
                    spent_elsewhere: true,
                    ..live
                },
                Verdict::ReusedAfterGrace,
            ),
        ];
        for (token, expected) in cases {
            assert_eq!(judge(&token, &policy, now), expected, "{token:?}");
        }
    }
}
