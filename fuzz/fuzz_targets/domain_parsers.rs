//! The domain parsers, fed arbitrary strings: none panics, and what each accepts is in its
//! normal form. Email parsing is idempotent (a parsed address re-parses to itself, also upper-
//! cased and padded); the password policy's verdict follows the character count; display names
//! and avatar URLs re-parse to themselves; admin cursors round-trip; roles parse exactly.
//! If the input holds a newline, the part before it is also an email and the rest a password
//! checked against it.

#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use velro_core::domain::{
    AvatarUrl, DisplayName, Email, PasswordPolicy, PasswordViolation, Role, UserCursor,
};
use velro_core::tokens::SigningAlgorithm;

static POLICY: LazyLock<PasswordPolicy> = LazyLock::new(PasswordPolicy::new);

fn check_email(raw: &str) -> Option<Email> {
    let email = Email::parse(raw).ok()?;
    let normal = email.as_str();
    assert_eq!(Email::parse(normal).as_ref(), Ok(&email), "not idempotent");
    let shouted = format!(" \t{}\n", normal.to_uppercase());
    assert_eq!(
        Email::parse(&shouted).as_ref(),
        Ok(&email),
        "case or padding matter"
    );
    assert!(normal.is_ascii() && normal.len() <= 254, "{normal:?}");
    assert_eq!(normal.to_ascii_lowercase(), normal, "not lowercased");
    let (local, domain) = normal.rsplit_once('@').expect("an @");
    assert!(!local.is_empty() && local.len() <= 64, "{normal:?}");
    assert_eq!(email.local_part(), local, "local_part disagrees");
    assert!(domain.contains('.') && !domain.contains(".."), "{normal:?}");
    // An address is never a policy-conforming password for itself.
    assert!(POLICY.check_for(normal, &email).is_err(), "{normal:?}");
    Some(email)
}

fn check_password(password: &str, email: Option<&Email>) {
    let chars = password.chars().count();
    let verdict = match email {
        Some(email) => POLICY.check_for(password, email),
        None => POLICY.check(password),
    };
    match verdict {
        Ok(accepted) => {
            assert!((8..=128).contains(&chars), "accepted {chars} characters");
            assert_eq!(accepted.expose(), password, "the password was altered");
            if let Some(email) = email {
                let lowered = password.to_lowercase();
                assert!(lowered != email.as_str() && lowered != email.local_part());
            }
        }
        Err(PasswordViolation::TooShort { min }) => assert!(min == 8 && chars < 8),
        Err(PasswordViolation::TooLong) => assert!(chars > 128),
        Err(PasswordViolation::TooCommon | PasswordViolation::ContainsEmail) => {
            assert!((8..=128).contains(&chars));
        }
        Err(PasswordViolation::MissingCharacters { .. }) => {
            panic!("the default policy requires no characters")
        }
    }
}

fn check_profile(raw: &str) {
    if let Ok(name) = DisplayName::parse(raw) {
        let name = name.into_inner();
        let chars = name.chars().count();
        assert!((1..=100).contains(&chars), "{chars} characters");
        assert_eq!(name.trim(), name, "not trimmed");
        assert!(!name.chars().any(char::is_control), "a control character");
        let again = DisplayName::parse(&name).map(DisplayName::into_inner);
        assert_eq!(again.as_deref(), Ok(name.as_str()), "not idempotent");
    }
    if let Ok(url) = AvatarUrl::parse(raw) {
        let url = url.into_inner();
        assert_eq!(url, raw, "avatar URLs are stored as sent");
        assert!(url.chars().count() <= 2048 && !url.chars().any(char::is_control));
        // What is stored is what was checked: the URL parser drops surrounding spaces.
        assert_eq!(url.trim(), url, "surrounding white space");
        assert!(
            url.get(..6)
                .is_some_and(|s| s.eq_ignore_ascii_case("https:")),
            "{url:?}"
        );
    }
}

fn check_cursor(raw: &str) {
    if let Some(cursor) = UserCursor::decode(raw) {
        assert_eq!(
            UserCursor::decode(&cursor.encode()),
            Some(cursor),
            "{raw:?}"
        );
    }
}

fn check_names(raw: &str) {
    if let Ok(role) = raw.parse::<Role>() {
        assert_eq!(role.as_str(), raw);
    }
    if let Some(algorithm) = SigningAlgorithm::parse(raw) {
        assert_eq!(SigningAlgorithm::parse(algorithm.as_str()), Some(algorithm));
    }
}

fuzz_target!(|data: &[u8]| {
    let raw = String::from_utf8_lossy(data);
    let raw = raw.as_ref();
    check_email(raw);
    check_password(raw, None);
    check_profile(raw);
    check_cursor(raw);
    check_names(raw);
    if let Some((email, password)) = raw.split_once('\n') {
        let email = check_email(email);
        check_password(password, email.as_ref());
    }
});
