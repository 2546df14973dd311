//! Email addresses as the contract defines them: trimmed, lowercased, a dot-atom local part and a
//! DNS domain with at least one dot.

use std::fmt;

/// A normalised email address: the only form in which an address is stored or compared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

const MAX_LEN: usize = 254;
const MAX_LOCAL_LEN: usize = 64;
const MAX_LABEL_LEN: usize = 63;

impl Email {
    /// Trims Unicode white space, lowercases, and checks the shape. The error is a message for
    /// humans, suitable for a field error.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let normalised = raw.trim().to_lowercase();
        if normalised.is_empty() {
            return Err("must not be empty");
        }
        if normalised.chars().count() > MAX_LEN {
            return Err("must be at most 254 characters");
        }
        let Some((local, domain)) = normalised.rsplit_once('@') else {
            return Err("must be an email address like name@example.com");
        };
        if !is_dot_atom(local) || local.len() > MAX_LOCAL_LEN {
            return Err("has an invalid part before the @");
        }
        if !is_dns_domain(domain) {
            return Err("has an invalid domain (a DNS name with at least one dot is required)");
        }
        Ok(Self(normalised))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address, without a copy.
    pub fn into_string(self) -> String {
        self.0
    }

    pub fn local_part(&self) -> &str {
        self.0.split('@').next().unwrap_or_default()
    }

    /// For values read back from the store, which only ever holds parsed addresses.
    pub fn from_trusted(stored: String) -> Self {
        Self(stored)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c)
}

/// RFC 5322 dot-atom: atoms of atext joined by single dots. Quoted local parts are refused.
fn is_dot_atom(local: &str) -> bool {
    !local.is_empty()
        && local
            .split('.')
            .all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// Letters, digits and inner hyphens per label; at least two labels; the last one not numeric,
/// which also keeps IPv4 literals out. ASCII only: internationalised domains arrive as punycode.
fn is_dns_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    let Some(tld) = labels.last() else {
        return false;
    };
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= MAX_LABEL_LEN
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && !tld.chars().all(|c| c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_and_normalises_common_addresses() {
        let cases = [
            ("ada@example.com", "ada@example.com"),
            (
                "  Ada.Lovelace@Example.COM \u{2003}",
                "ada.lovelace@example.com",
            ),
            ("a+tag@sub.example.co.uk", "a+tag@sub.example.co.uk"),
            ("o'brien@example.ie", "o'brien@example.ie"),
            ("x@a-b.io", "x@a-b.io"),
        ];
        for (raw, expected) in cases {
            assert_eq!(
                Email::parse(raw).map(|e| e.0),
                Ok(expected.to_string()),
                "{raw}"
            );
        }
    }

    #[test]
    fn refuses_malformed_addresses() {
        let long_local = format!("{}@example.com", "a".repeat(65));
        let too_long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
        let cases = [
            "",
            "   ",
            "ada",
            "ada@",
            "@example.com",
            "ada@localhost",
            "ada@example",
            ".ada@example.com",
            "ada.@example.com",
            "a..da@example.com",
            "ada@example..com",
            "ada@.example.com",
            "ada@example.com.",
            "ada@[127.0.0.1]",
            "ada@127.0.0.1",
            "\"ada\"@example.com",
            "ada lovelace@example.com",
            "ada@-example.com",
            "ada@example-.com",
            "ada@exa_mple.com",
            "adä@example.com",
            "ada@exämple.com",
            "ada@ex@ample.com",
            "ada\0@example.com",
            long_local.as_str(),
            too_long.as_str(),
        ];
        for raw in cases {
            assert!(Email::parse(raw).is_err(), "{raw:?} should be refused");
        }
    }

    #[test]
    fn local_part_is_before_the_at() {
        let email = Email::parse("ada@example.com").expect("valid");
        assert_eq!(email.local_part(), "ada");
    }

    proptest! {
        #[test]
        fn parsing_is_idempotent(raw in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&raw) {
                prop_assert_eq!(Email::parse(email.as_str()), Ok(email.clone()));
                prop_assert_eq!(email.as_str().to_lowercase(), email.as_str());
                prop_assert!(email.as_str().len() <= MAX_LEN);
            }
        }

        #[test]
        fn case_and_surrounding_space_do_not_matter(
            local in "[a-z0-9]{1,20}", domain in "[a-z]{1,20}\\.[a-z]{2,6}", pad in "[ \\t\\n]{0,3}"
        ) {
            let lower = format!("{local}@{domain}");
            let mixed = format!("{pad}{}{pad}", lower.to_uppercase());
            prop_assert_eq!(Email::parse(&mixed), Email::parse(&lower));
        }
    }

    proptest! {
        #[test]
        fn whatever_is_accepted_is_ascii_with_one_dotted_dns_domain(raw in "\\PC{0,80}") {
            if let Ok(email) = Email::parse(&raw) {
                let (local, domain) = email.as_str().rsplit_once('@').expect("an @");
                prop_assert!(email.as_str().is_ascii());
                prop_assert!(!local.is_empty() && !local.contains('@'));
                prop_assert!(!local.starts_with('.') && !local.ends_with('.') && !local.contains(".."));
                prop_assert!(domain.contains('.') && !domain.contains(".."));
            }
        }

        #[test]
        fn unicode_white_space_around_is_trimmed(
            local in "[a-z0-9]{1,20}", domain in "[a-z]{1,20}\\.[a-z]{2,6}",
            pad in "[ \\t\\n\\u{a0}\\u{2003}\\u{3000}\\u{feff}]{0,3}"
        ) {
            let lower = format!("{local}@{domain}");
            let padded = format!("{pad}{lower}{pad}");
            // U+FEFF is not White_Space, so it must be refused rather than kept.
            if pad.contains('\u{feff}') {
                prop_assert!(Email::parse(&padded).is_err());
            } else {
                prop_assert_eq!(Email::parse(&padded), Email::parse(&lower));
            }
        }

        #[test]
        fn a_lookalike_letter_anywhere_is_refused(
            local in "[a-z]{2,20}", domain in "[a-z]{2,20}\\.[a-z]{2,6}",
            lookalike in "[\\u{430}\\u{435}\\u{43e}\\u{440}\\u{441}\\u{ff41}-\\u{ff5a}\\u{200b}\\u{301}]",
            at in 0usize..40
        ) {
            let mut email: Vec<char> = format!("{local}@{domain}").chars().collect();
            let at = at % (email.len() + 1);
            email.insert(at, lookalike.chars().next().expect("one char"));
            let email: String = email.into_iter().collect();
            prop_assert!(Email::parse(&email).is_err(), "{}", email);
        }
    }
}
