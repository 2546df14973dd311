//! Why an admin command failed, and the exit code each reason gives: the one table that scripts
//! rely on (the README lists it too).

use std::fmt;

/// Every message is one line and never holds the service key.
#[derive(Debug)]
pub enum Failure {
    /// The instance answered, and refused or found nothing (exit 1).
    Refused(String),
    /// The instance refused the body's fields (a 422, exit 1): the summary, then one
    /// `field: message` line per field, so that each mistake is read on its own.
    Invalid {
        summary: String,
        fields: Vec<String>,
    },
    /// Something on this side went wrong: the arguments, the key's source, the runtime (exit 2).
    Local(String),
    /// No answer: nothing listening, a name that does not resolve, a time-out (exit 3).
    Unreachable(String),
    /// The service key was refused (exit 4).
    Auth(String),
}

impl Failure {
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Refused(_) | Self::Invalid { .. } => 1,
            Self::Local(_) => 2,
            Self::Unreachable(_) => 3,
            Self::Auth(_) => 4,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A detail from the instance could hold a line break; the contract is one line per
        // message (and per field).
        let line = |text: &str| text.replace(['\n', '\r'], " ");
        match self {
            Self::Refused(message)
            | Self::Local(message)
            | Self::Unreachable(message)
            | Self::Auth(message) => f.write_str(&line(message)),
            Self::Invalid { summary, fields } => {
                f.write_str(&line(summary))?;
                for field in fields {
                    write!(f, "\n  {}", line(field))?;
                }
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Failure;

    #[test]
    fn a_refused_body_reads_as_one_line_per_field_with_no_line_break_inside_one() {
        let failure = Failure::Invalid {
            summary: "422 validation_failed: the body\nis invalid".into(),
            fields: vec![
                "status: must be one of a, b".into(),
                "impact: bad\r\nvalue".into(),
            ],
        };
        assert_eq!(
            failure.to_string(),
            "422 validation_failed: the body is invalid\n  status: must be one of a, b\n  impact: bad  value"
        );
        assert_eq!(failure.exit_code(), 1);
    }
}
