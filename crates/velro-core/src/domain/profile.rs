//! Profile fields: the display name and the avatar URL.

/// A trimmed name of 1 to 100 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let trimmed = raw.trim();
        if trimmed.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        match trimmed.chars().count() {
            0 => Err("must not be empty"),
            1..=100 => Ok(Self(trimmed.to_string())),
            _ => Err("must be at most 100 characters"),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

/// An absolute `https` URL with a host, at most 2048 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AvatarUrl(String);

impl AvatarUrl {
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        if raw.is_empty() {
            return Err("must not be empty (send null to clear it)");
        }
        if raw.chars().any(char::is_control) {
            return Err("must not contain control characters");
        }
        // The URL parser silently drops surrounding spaces, so without this the string stored
        // would not be the URL that was checked.
        if raw.trim() != raw {
            return Err("must not start or end with white space");
        }
        if raw.chars().count() > 2048 {
            return Err("must be at most 2048 characters");
        }
        let url = url::Url::parse(raw).map_err(|_| "must be an absolute https URL")?;
        if url.scheme() != "https" {
            return Err("must use https");
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host");
        }
        // Stored as sent: the client chose this exact string.
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded() {
        assert_eq!(
            DisplayName::parse("  Ada  ").map(DisplayName::into_inner),
            Ok("Ada".into())
        );
        assert!(DisplayName::parse(" \u{3000} ").is_err());
        assert!(DisplayName::parse(&"é".repeat(100)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(101)).is_err());
        assert!(DisplayName::parse("Ada\0Lovelace").is_err());
    }

    #[test]
    fn avatar_urls_must_be_absolute_https_with_a_host() {
        for ok in [
            "https://cdn.example.com/a.png",
            "https://example.com",
            "https://[::1]/x",
        ] {
            assert!(AvatarUrl::parse(ok).is_ok(), "{ok}");
        }
        let long = format!("https://example.com/{}", "a".repeat(2040));
        for bad in [
            "",
            "http://example.com/a.png",
            "/a.png",
            "example.com/a.png",
            "https://",
            "javascript:alert(1)",
            "https://example.com/\0",
            " https://example.com/a.png",
            "https://example.com/a.png ",
            "https://example.com/a.png\u{2003}",
            "data:image/png;base64,AAAA",
            long.as_str(),
        ] {
            assert!(AvatarUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
