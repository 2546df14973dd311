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

    static POLICY: std::sync::LazyLock<PasswordPolicy> =
        std::sync::LazyLock::new(PasswordPolicy::new);

    proptest! {
        #[test]
        fn length_counts_scalar_values_in_any_script(password in "[\\u{3b1}-\\u{3c9}\\u{4e00}-\\u{4e80}\\u{1f600}-\\u{1f64f}]{1,140}") {
            let n = password.chars().count();
            let verdict = POLICY.check(&password).err();
            if n < 8 {
                prop_assert_eq!(verdict, Some(PasswordViolation::TooShort));
            } else if n > 128 {
                prop_assert_eq!(verdict, Some(PasswordViolation::TooLong));
            } else {
                prop_assert_eq!(verdict, None);
            }
        }

        #[test]
        fn the_email_or_its_local_part_in_any_case_is_refused(
            local in "[a-z0-9]{8,20}", domain in "[a-z]{2,10}\\.[a-z]{2,6}", upper in proptest::collection::vec(any::<bool>(), 40)
        ) {
            let email = Email::parse(&format!("{local}@{domain}")).expect("valid");
            for candidate in [email.as_str().to_string(), local.clone()] {
                let recased: String = candidate
                    .chars()
                    .zip(upper.iter().cycle())
                    .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                    .collect();
                prop_assert_eq!(POLICY.check_for(&recased, &email).err(), Some(PasswordViolation::ContainsEmail));
            }
        }

        #[test]
        fn common_passwords_are_refused_in_any_case(index in 0usize..10_000, upper in any::<bool>()) {
            let common: Vec<&str> = COMMON_PASSWORDS.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let password = common[index % common.len()];
            prop_assume!(password.is_ascii());
            let password = if upper { password.to_uppercase() } else { password.to_string() };
            let n = password.chars().count();
            let verdict = POLICY.check(&password).err();
            if (8..=128).contains(&n) {
                prop_assert_eq!(verdict, Some(PasswordViolation::TooCommon));
            } else {
                prop_assert!(verdict.is_some());
            }
        }
    }
}
