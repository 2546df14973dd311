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
        written_authority(raw)?;
        if url.host_str().is_none_or(str::is_empty) {
            return Err("must have a host (https://host/…)");
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

/// The `host[:port]` the text itself names as `scheme://host…`. The WHATWG parser, like
/// browsers, repairs `https:///host/x`, `https:host/x` and `https:\\\\host/x` into a URL with a
/// host, but the string is stored as sent, and another reader (a mail client, an older library)
/// may find a different host in it, or none. Only the form every parser reads alike passes.
fn written_authority(raw: &str) -> Result<&str, &'static str> {
    let no_host = "must have a host (https://host/…)";
    let (_, rest) = raw.split_once(':').ok_or(no_host)?;
    let rest = rest.strip_prefix("//").ok_or(no_host)?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // A back slash is a path separator to some readers and part of the user name to others.
    if authority.is_empty() || authority.contains('\\') {
        return Err(no_host);
    }
    Ok(authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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
            "HTTPS://CDN.example.com:8443/a.png?size=64#top",
            "https://cdn.example.com/users/a@b/a.png",
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
            // The parser repairs these into a URL with a host; the text as stored has none.
            "https:///avatars/a.png",
            "https:////cdn.example.com/a.png",
            "https:/cdn.example.com/a.png",
            "https:cdn.example.com/a.png",
            "https:\\\\cdn.example.com\\a.png",
            "https://\\cdn.example.com/a.png",
            "https:/\\cdn.example.com/a.png",
            "https://cdn.example.com\\@evil.example/a.png",
            "https://?x=1",
            "https://#x",
            long.as_str(),
        ] {
            assert!(AvatarUrl::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        /// Whatever is accepted names its host in the text, as the URL parser reads it.
        #[test]
        fn accepted_avatar_urls_name_the_host_the_parser_reads(raw in "[hH][tT][tT][pP][sS]:[/\\\\]{0,4}[a-z.@:\\\\/?#-]{0,24}") {
            if let Ok(avatar) = AvatarUrl::parse(&raw) {
                let text = avatar.into_inner();
                let parsed = url::Url::parse(&text).expect("accepted URLs parse");
                let host = parsed.host_str().expect("accepted URLs have a host");
                let written = written_authority(&text).expect("accepted URLs name their host");
                let written_host = written.rsplit('@').next().unwrap_or_default().to_lowercase();
                prop_assert!(
                    written_host.starts_with(host),
                    "{text:?}: the parser read {host:?} into {written:?}"
                );
            }
        }
    }
}
