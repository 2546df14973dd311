//! The password policy of NIST SP 800-63B as the contract states it: length bounds, the common
//! password list, and not the email. No composition rules unless a deployment sets GoTrue's
//! required character sets; the minimum length is the deployment's too (one policy, both
//! surfaces).

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;

use super::Email;
use crate::Secret;

/// The v1 contract's minimum, the default.
pub const DEFAULT_MIN_CHARS: usize = 8;
/// The lowest minimum a deployment may set: GoTrue's default.
pub const LOWEST_MIN_CHARS: usize = 6;
const MAX_CHARS: usize = 128;
const COMMON_PASSWORDS: &str = include_str!("../../data/common-passwords-10k.txt");

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordViolation {
    TooShort {
        min: usize,
    },
    TooLong,
    TooCommon,
    ContainsEmail,
    /// Lacks a character of one of the required sets (GoTrue's `PASSWORD_REQUIRED_CHARACTERS`);
    /// `sets` lists them all, joined by ", ", as GoTrue's message does.
    MissingCharacters {
        sets: Arc<str>,
    },
}

impl PasswordViolation {
    /// The reason as the contract names it.
    pub fn code(&self) -> &'static str {
        match self {
            Self::TooShort { .. } => "too_short",
            Self::TooLong => "too_long",
            Self::TooCommon => "too_common",
            Self::ContainsEmail => "contains_email",
            Self::MissingCharacters { .. } => "missing_characters",
        }
    }
}

impl fmt::Display for PasswordViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            Self::TooShort { min } => write!(f, "{code}: must be at least {min} characters"),
            Self::TooLong => write!(f, "{code}: must be at most {MAX_CHARS} characters"),
            Self::TooCommon => write!(f, "{code}: is one of the most common passwords"),
            Self::ContainsEmail => {
                write!(f, "{code}: must not be the email address or its local part")
            }
            Self::MissingCharacters { sets } => write!(
                f,
                "{code}: must contain at least one character of each of: {sets}"
            ),
        }
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

    /// A password the service made itself (random, for accounts created without one): the
    /// deployment's composition rules are for people, not for 256 random bits.
    pub(crate) fn generated(secret: Secret<String>) -> Self {
        Self(secret)
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

/// What a deployment chooses: the minimum length and GoTrue's required character sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordRules {
    /// At least [`LOWEST_MIN_CHARS`], at most 128; default [`DEFAULT_MIN_CHARS`].
    pub min_chars: usize,
    /// Each set must contribute at least one character; none by default.
    pub required_characters: Vec<String>,
}

impl Default for PasswordRules {
    fn default() -> Self {
        Self {
            min_chars: DEFAULT_MIN_CHARS,
            required_characters: Vec::new(),
        }
    }
}

impl PasswordRules {
    /// GoTrue's `PASSWORD_REQUIRED_CHARACTERS` format: sets separated by `:`, a `\:` standing
    /// for a colon inside a set, empty sets ignored.
    pub fn parse_required_characters(text: &str) -> Vec<String> {
        let mut sets = Vec::new();
        let mut current = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' if chars.peek() == Some(&':') => {
                    current.push(':');
                    chars.next();
                }
                ':' => sets.push(std::mem::take(&mut current)),
                _ => current.push(c),
            }
        }
        sets.push(current);
        sets.retain(|set| !set.is_empty());
        sets
    }
}

/// Built once at start-up: the common-password set is 10,000 entries.
#[derive(Debug)]
pub struct PasswordPolicy {
    common: HashSet<String>,
    rules: PasswordRules,
    /// The required sets joined for messages, made once.
    sets: Arc<str>,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self::new()
    }
}

impl PasswordPolicy {
    /// The v1 contract's policy.
    pub fn new() -> Self {
        Self::with_rules(PasswordRules::default())
    }

    /// A deployment's policy; the caller has checked `min_chars` (the binary refuses values
    /// outside [`LOWEST_MIN_CHARS`]..=128 at start-up).
    pub fn with_rules(rules: PasswordRules) -> Self {
        let common = COMMON_PASSWORDS
            .lines()
            .map(|line| line.trim().to_lowercase())
            .filter(|line| !line.is_empty())
            .collect();
        let sets = rules.required_characters.join(", ").into();
        Self {
            common,
            rules,
            sets,
        }
    }

    pub fn rules(&self) -> &PasswordRules {
        &self.rules
    }

    /// Checks the parts that need only the password itself; the first violation, in the
    /// order of [`Self::violations`].
    pub fn check(&self, password: &str) -> Result<NewPassword, PasswordViolation> {
        match self.violations(password).into_iter().next() {
            Some(violation) => Err(violation),
            None => Ok(NewPassword(Secret::new(password.to_string()))),
        }
    }

    /// Every rule `password` breaks (of those that need only the password), in a fixed order:
    /// length, required characters, common passwords. GoTrue lists all its reasons at once.
    pub fn violations(&self, password: &str) -> Vec<PasswordViolation> {
        let mut found = Vec::new();
        // Unicode scalar values, not bytes, per the contract.
        let chars = password.chars().count();
        if chars < self.rules.min_chars {
            found.push(PasswordViolation::TooShort {
                min: self.rules.min_chars,
            });
        }
        if chars > MAX_CHARS {
            found.push(PasswordViolation::TooLong);
        }
        let lacks_a_set = self
            .rules
            .required_characters
            .iter()
            .any(|set| !password.chars().any(|c| set.contains(c)));
        if lacks_a_set {
            found.push(PasswordViolation::MissingCharacters {
                sets: self.sets.clone(),
            });
        }
        if self.common.contains(&password.to_lowercase()) {
            found.push(PasswordViolation::TooCommon);
        }
        found
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
            ("short", Err(PasswordViolation::TooShort { min: 8 })),
            ("ééééééé", Err(PasswordViolation::TooShort { min: 8 })),
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
    fn violations_lists_every_broken_rule_and_check_reports_the_first() {
        let policy = PasswordPolicy::with_rules(PasswordRules {
            min_chars: 10,
            required_characters: vec!["0123456789".into(), "!?".into()],
        });
        let sets: Arc<str> = "0123456789, !?".into();
        assert_eq!(
            policy.violations("password"),
            [
                PasswordViolation::TooShort { min: 10 },
                PasswordViolation::MissingCharacters { sets: sets.clone() },
                PasswordViolation::TooCommon,
            ]
        );
        assert_eq!(
            policy.check("password").err(),
            Some(PasswordViolation::TooShort { min: 10 })
        );
        assert_eq!(
            policy.violations("long enough but plain"),
            [PasswordViolation::MissingCharacters { sets }]
        );
        assert!(policy.violations("long enough 4 sure!").is_empty());
    }

    #[test]
    fn a_deployment_sets_the_minimum_and_gotrue_character_sets() {
        let sets = PasswordRules::parse_required_characters(
            "abcdefghijklmnopqrstuvwxyz:ABCDEFGHIJKLMNOPQRSTUVWXYZ:0123456789",
        );
        assert_eq!(sets.len(), 3);
        let policy = PasswordPolicy::with_rules(PasswordRules {
            min_chars: 6,
            required_characters: sets,
        });
        assert_eq!(
            policy.check("aB3").err(),
            Some(PasswordViolation::TooShort { min: 6 })
        );
        assert!(policy.check("aB3xyz").is_ok());
        let missing = policy.check("abcdef1").expect_err("no upper case");
        assert_eq!(missing.code(), "missing_characters");
        assert_eq!(
            missing.to_string(),
            "missing_characters: must contain at least one character of each of: \
             abcdefghijklmnopqrstuvwxyz, ABCDEFGHIJKLMNOPQRSTUVWXYZ, 0123456789"
        );
        // Six characters pass with GoTrue's minimum; the v1 default refuses them.
        let gotrue = PasswordPolicy::with_rules(PasswordRules {
            min_chars: 6,
            required_characters: Vec::new(),
        });
        assert!(gotrue.check("zq8!kw").is_ok());
        assert_eq!(
            PasswordPolicy::new().check("zq8!kw").err(),
            Some(PasswordViolation::TooShort { min: 8 })
        );
    }

    #[test]
    fn required_character_sets_parse_as_gotrue_reads_them() {
        let parse = PasswordRules::parse_required_characters;
        assert_eq!(parse(""), Vec::<String>::new());
        assert_eq!(parse("abc"), ["abc"]);
        assert_eq!(parse("abc::123:"), ["abc", "123"]);
        assert_eq!(parse("ab\\:c:12"), ["ab:c", "12"]);
        assert_eq!(parse("!@#\\:"), ["!@#:"]);
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
                prop_assert_eq!(verdict, Some(PasswordViolation::TooShort { min: 8 }));
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
                prop_assert_eq!(verdict, Some(PasswordViolation::TooShort { min: 8 }));
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
