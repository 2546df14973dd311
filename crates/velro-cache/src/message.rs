//! The invalidation messages instances exchange on `{ns}:invalidate`: `s:<session uuid>:<micros>`
//! or `u:<user uuid>:<micros>`, the publisher's Unix time in microseconds for the lag metric.
//! Encoding and parsing only; applying them is the listener's job.

use time::OffsetDateTime;
use uuid::Uuid;
use velro_core::domain::{SessionId, UserId};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    Session(SessionId),
    User(UserId),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Message {
    pub(crate) target: Target,
    pub(crate) sent_at_micros: i64,
}

impl Message {
    pub(crate) fn encode(&self) -> String {
        let (kind, id) = match self.target {
            Target::Session(id) => ('s', id.0),
            Target::User(id) => ('u', id.0),
        };
        format!("{kind}:{}:{}", id.as_hyphenated(), self.sent_at_micros)
    }

    /// None for anything else; the caller decides how careful to be with it.
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let mut parts = raw.split(':');
        let (kind, id, micros) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() {
            return None;
        }
        let id = Uuid::try_parse(id).ok()?;
        let target = match kind {
            "s" => Target::Session(SessionId(id)),
            "u" => Target::User(UserId(id)),
            _ => return None,
        };
        let sent_at_micros = micros.parse().ok()?;
        Some(Self {
            target,
            sent_at_micros,
        })
    }

    /// Seconds from publication to `now`; never negative (clocks of one machine agree, others
    /// may not).
    pub(crate) fn lag_seconds(&self, now_micros: i64) -> f64 {
        now_micros.saturating_sub(self.sent_at_micros).max(0) as f64 / 1e6
    }
}

pub(crate) fn now_micros() -> i64 {
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000;
    i64::try_from(nanos).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0190f2a4-5b1c-7d3e-8f00-0123456789ab";

    fn id() -> Uuid {
        Uuid::try_parse(ID).expect("valid")
    }

    #[test]
    fn messages_round_trip() {
        for target in [Target::Session(SessionId(id())), Target::User(UserId(id()))] {
            let message = Message {
                target,
                sent_at_micros: 1_700_000_000_123_456,
            };
            assert_eq!(Message::parse(&message.encode()), Some(message));
        }
        let encoded = Message {
            target: Target::Session(SessionId(id())),
            sent_at_micros: 42,
        }
        .encode();
        assert_eq!(encoded, format!("s:{ID}:42"));
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            "",
            "s",
            &format!("s:{ID}"),
            &format!("x:{ID}:1"),
            &format!("S:{ID}:1"),
            &format!("s:{ID}:1:extra"),
            &format!("s:{ID}:soon"),
            "s:not-a-uuid:1",
            &format!("u::{ID}"),
        ] {
            assert_eq!(Message::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn lag_is_never_negative() {
        let message = Message {
            target: Target::User(UserId(id())),
            sent_at_micros: 2_000_000,
        };
        assert!((message.lag_seconds(3_500_000) - 1.5).abs() < 1e-9);
        assert!(message.lag_seconds(1_000_000).abs() < f64::EPSILON);
    }
}
