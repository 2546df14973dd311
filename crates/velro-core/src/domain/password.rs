//! The password policy of NIST SP 800-63B as the contract states it: length bounds, the common
//! password list, and not the email. No composition rules.

use std::collections::HashSet;
use std::fmt;

use super::Email;
use crate::Secret;

const MIN_CHARS: usize = 8;
const MAX_CHARS: usize = 128;
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords-10k.txt");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PasswordViolation {
    TooShort,
    TooLong,
    TooCommon,
    ContainsEmail,
}

impl PasswordViolation {
    /// The reason as the contract names it.
    pub fn code(self) -> &'static str {
        match self {
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::TooCommon => "too_common",
            Self::ContainsEmail => "contains_email",
        }
    }
}

impl fmt::Display for PasswordViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let explanation = match self {
            Self::TooShort => "must be at least 8 characters",
            Self::TooLong => "must be at most 128 characters",
            Self::TooCommon => "is one of the most common passwords",
            Self::ContainsEmail => "must not be the email address or its local part",
        };
        write!(f, "{}: {explanation}", self.code())
    }
}

/// A password that passed the policy (the email part only where the email was known).
#[derive(Debug, Clone)]
pub struct NewPassword(Secret<String>);

impl NewPassword {
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    pub fn into_secret(self) -> Secret<String> {
        self.0
    }

    /// The part of the policy that needs the account's email, for when it is known only later.
    pub fn check_email(&self, email: &Email) -> Result<(), PasswordViolation> {
        let lowered = self.0.expose().to_lowercase();
        if lowered == email.as_str() || lowered == email.local_part() {
            return Err(PasswordViolation::ContainsEmail);
        }
        Ok(())
    }
}

/// Built once at start-up: the common-password set is 10,000 entries.
#[derive(Debug)]
pub struct PasswordPolicy {
    common: HashSet<String>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordPolicy {
    pub fn new() -> Self {
        let common = COMMON_PASSWORDS
            .lines()
            .map(|line| line.trim().to_lowercase())
            .filter(|line| !line.is_empty())
            .collect();
        Self { common }
    }

    /// Checks the parts that need only the password itself.
    pub fn check(&self, password: &str) -> Result<NewPassword, PasswordViolation> {
        // Unicode scalar values, not bytes, per the contract.
        let chars = password.chars().count();
        if chars < MIN_CHARS {
            return Err(PasswordViolation::TooShort);
        }
        if chars > MAX_CHARS {
            return Err(PasswordViolation::TooLong);
        }
        if self.common.contains(&password.to_lowercase()) {
            return Err(PasswordViolation::TooCommon);
        }
        Ok(NewPassword(Secret::new(password.to_string())))
    }

    /// The whole policy, for when the account's email is known.
    pub fn check_for(
        &self,
        password: &str,
        email: &Email,
    ) -> Result<NewPassword, PasswordViolation> {
        let checked = self.check(password)?;
        checked.check_email(email)?;
        Ok(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn email() -> Email {
        Email::parse("ada.lovelace@example.com").expect("valid")
    }

    #[test]
    fn reasons_follow_the_contract() {
        let policy = PasswordPolicy::new();
        let cases: [(&str, Result<(), PasswordViolation>); 10] = [
            ("short", Err(PasswordViolation::TooShort)),
            ("ééééééé", Err(PasswordViolation::TooShort)),
            ("éééééééé", Ok(())),
            ("password", Err(PasswordViolation::TooCommon)),
            ("PassWord", Err(PasswordViolation::TooCommon)),
            ("12345678", Err(PasswordViolation::TooCommon)),
            (
                "ada.lovelace@example.com",
                Err(PasswordViolation::ContainsEmail),
            ),
            ("ADA.LOVELACE", Err(PasswordViolation::ContainsEmail)),
            ("correct horse battery staple", Ok(())),
            ("ada.lovelace is my name", Ok(())),
        ];
        for (password, expected) in cases {
            let verdict = policy.check_for(password, &email()).map(|_| ());
            assert_eq!(verdict, expected, "{password}");
        }
    }

    #[test]
    fn length_counts_characters_not_bytes() {
        let policy = PasswordPolicy::new();
        assert!(policy.check(&"é".repeat(128)).is_ok());
        assert_eq!(
            policy.check(&"é".repeat(129)).err(),
            Some(PasswordViolation::TooLong)
        );
        assert_eq!(
            policy.check(&"x".repeat(129)).err(),
            Some(PasswordViolation::TooLong)
        );
    }

    #[test]
    fn the_whole_list_is_loaded() {
        assert!(PasswordPolicy::new().common.len() > 9_000);
    }

    #[test]
    fn messages_name_the_reason() {
        assert!(PasswordViolation::TooCommon
            .to_string()
            .starts_with("too_common"));
    }

    proptest! {
        #[test]
        fn verdict_depends_only_on_length_for_random_strings(password in "[a-zA-Z0-9]{0,140}") {
            // Random mixed strings are practically never on the list.
            let verdict = PasswordPolicy::new().check(&password).err();
            let n = password.chars().count();
            if n < 8 {
                prop_assert_eq!(verdict, Some(PasswordViolation::TooShort));
            } else if n > 128 {
                prop_assert_eq!(verdict, Some(PasswordViolation::TooLong));
            }
        }
    }
}
