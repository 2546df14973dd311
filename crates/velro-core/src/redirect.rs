//! Where a mail link may send a browser: GoTrue's `SITE_URL` and `URI_ALLOW_LIST` rules (a
//! `redirect_to` that is neither on the site nor matched by an allow-list glob falls back to the
//! site URL, so no link of ours is ever an open redirect). Pure logic; no HTTP here.

use url::Url;

/// The characters a single-level wildcard (`*`, `?`) never crosses, as in GoTrue's globs.
const SEPARATORS: [char; 2] = ['.', '/'];

/// Brace alternatives multiply; a list entry that expands beyond this is refused at start-up.
const MAX_ALTERNATIVES: usize = 256;

/// Redirect targets longer than this are refused outright: no real link needs more.
const MAX_REDIRECT_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `*`: any run of characters but separators.
    Star,
    /// `**`: any run of characters at all.
    SuperStar,
    /// `?`: one character that is not a separator.
    Single,
    /// `[a-z]`, `[!abc]`.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// One allow-list pattern, with GoTrue's glob syntax (`*`, `**`, `?`, `[…]`, `[!…]`, `{a,b}`,
/// `\` escapes) and `.` and `/` as separators. It matches the whole text.
#[derive(Debug, Clone)]
pub struct UriGlob {
    alternatives: Vec<Vec<Token>>,
}

/// Why an allow-list entry or the site URL was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RedirectConfigError {
    #[error("the site URL must be an absolute http(s) URL")]
    SiteUrl,
    #[error("allow-list entry {0:?} is not a valid pattern: {1}")]
    Pattern(String, &'static str),
}

impl UriGlob {
    pub fn parse(pattern: &str) -> Result<Self, RedirectConfigError> {
        let refuse = |why| RedirectConfigError::Pattern(pattern.to_string(), why);
        let expanded = expand_braces(pattern).map_err(refuse)?;
        let alternatives = expanded
            .iter()
            .map(|alternative| tokenize(alternative))
            .collect::<Result<_, _>>()
            .map_err(refuse)?;
        Ok(Self { alternatives })
    }

    pub fn matches(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.alternatives
            .iter()
            .any(|tokens| matches_tokens(tokens, &text))
    }
}

/// `{a,b}` alternatives written out: `x{a,b}y` becomes `xay` and `xby` (nested braces too).
fn expand_braces(pattern: &str) -> Result<Vec<String>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut open = None;
    let mut depth = 0usize;
    let mut index = 0;
    while index < chars.len() {
        match chars[index] {
            '\\' => index += 1,
            '{' => {
                if depth == 0 {
                    open = Some(index);
                }
                depth += 1;
            }
            '}' if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    let start = open.unwrap_or(0);
                    let prefix: String = chars[..start].iter().collect();
                    let suffix: String = chars[index + 1..].iter().collect();
                    let inner = &chars[start + 1..index];
                    let mut results = Vec::new();
                    for option in split_top_level(inner) {
                        for tail in expand_braces(&format!("{option}{suffix}"))? {
                            results.push(format!("{prefix}{tail}"));
                            if results.len() > MAX_ALTERNATIVES {
                                return Err("too many {…} alternatives");
                            }
                        }
                    }
                    return Ok(results);
                }
            }
            '}' => return Err("unbalanced }"),
            _ => {}
        }
        index += 1;
    }
    if depth > 0 {
        return Err("unbalanced {");
    }
    Ok(vec![pattern.to_string()])
}

/// The comma-separated options of one brace group, keeping nested groups and escapes whole.
fn split_top_level(inner: &[char]) -> Vec<String> {
    let mut options = vec![String::new()];
    let mut depth = 0usize;
    let mut escaped = false;
    for &c in inner {
        let current = options.last_mut();
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '{' {
            depth += 1;
        } else if c == '}' {
            depth = depth.saturating_sub(1);
        } else if c == ',' && depth == 0 {
            options.push(String::new());
            continue;
        }
        if let Some(current) = current {
            current.push(c);
        }
    }
    options
}

fn tokenize(pattern: &str) -> Result<Vec<Token>, &'static str> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    while index < chars.len() {
        match chars[index] {
            '\\' => {
                let escaped = chars.get(index + 1).ok_or("a trailing \\")?;
                tokens.push(Token::Literal(*escaped));
                index += 1;
            }
            '*' if chars.get(index + 1) == Some(&'*') => {
                tokens.push(Token::SuperStar);
                index += 1;
            }
            '*' => tokens.push(Token::Star),
            '?' => tokens.push(Token::Single),
            '[' => {
                let (token, end) = parse_class(&chars, index)?;
                tokens.push(token);
                index = end;
            }
            other => tokens.push(Token::Literal(other)),
        }
        index += 1;
    }
    Ok(tokens)
}

/// A `[…]` class starting at `start`; returns it and the index of its `]`.
fn parse_class(chars: &[char], start: usize) -> Result<(Token, usize), &'static str> {
    let mut index = start + 1;
    let negated = chars.get(index) == Some(&'!');
    if negated {
        index += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *chars.get(index).ok_or("unclosed [")?;
        if c == ']' {
            break;
        }
        let low = if c == '\\' {
            index += 1;
            *chars.get(index).ok_or("unclosed [")?
        } else {
            c
        };
        if chars.get(index + 1) == Some(&'-') && chars.get(index + 2).is_some_and(|c| *c != ']') {
            let high = chars[index + 2];
            if high < low {
                return Err("a reversed range in […]");
            }
            ranges.push((low, high));
            index += 3;
        } else {
            ranges.push((low, low));
            index += 1;
        }
    }
    if ranges.is_empty() {
        return Err("an empty []");
    }
    Ok((Token::Class { negated, ranges }, index))
}

/// Runs the pattern as a set of positions over the text (no backtracking, so a hostile
/// `redirect_to` costs at most text × pattern steps).
fn matches_tokens(tokens: &[Token], text: &[char]) -> bool {
    let mut states = vec![false; tokens.len() + 1];
    states[0] = true;
    close_over_stars(tokens, &mut states);
    for &c in text {
        let mut next = vec![false; tokens.len() + 1];
        for (position, token) in tokens.iter().enumerate() {
            if !states[position] {
                continue;
            }
            match token {
                Token::Literal(expected) if *expected == c => next[position + 1] = true,
                Token::Single if !SEPARATORS.contains(&c) => next[position + 1] = true,
                Token::Class { negated, ranges } => {
                    let inside = ranges.iter().any(|(low, high)| (*low..=*high).contains(&c));
                    if inside != *negated {
                        next[position + 1] = true;
                    }
                }
                Token::Star if !SEPARATORS.contains(&c) => next[position] = true,
                Token::SuperStar => next[position] = true,
                _ => {}
            }
        }
        close_over_stars(tokens, &mut next);
        if !next.iter().any(|live| *live) {
            return false;
        }
        states = next;
    }
    states[tokens.len()]
}

/// A star may match nothing: a live position before one makes the position after it live.
fn close_over_stars(tokens: &[Token], states: &mut [bool]) {
    for (position, token) in tokens.iter().enumerate() {
        if states[position] && matches!(token, Token::Star | Token::SuperStar) {
            states[position + 1] = true;
        }
    }
}

/// The site URL and the allow list: which `redirect_to` values a link may carry.
#[derive(Debug, Clone)]
pub struct RedirectPolicy {
    site_url: String,
    site: Url,
    allow_list: Vec<UriGlob>,
}

fn is_loopback_name(host: &str) -> bool {
    matches!(
        host.to_ascii_lowercase().as_str(),
        "localhost" | "127.0.0.1" | "[::1]" | "::1" | "0.0.0.0" | "[::]" | "::"
    )
}

fn is_regular_hostname(host: &str) -> bool {
    let bytes = host.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'-')
}

impl RedirectPolicy {
    pub fn new(site_url: &str, allow_list: &[String]) -> Result<Self, RedirectConfigError> {
        let site = Url::parse(site_url)
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .ok_or(RedirectConfigError::SiteUrl)?;
        let allow_list = allow_list
            .iter()
            .map(|entry| entry.trim())
            .filter(|entry| !entry.is_empty())
            .map(UriGlob::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self {
            site_url: site_url.to_string(),
            site,
            allow_list,
        })
    }

    /// Where links go when no allowed `redirect_to` is given.
    pub fn site_url(&self) -> &str {
        &self.site_url
    }

    /// The requested target when it is allowed, else the site URL.
    pub fn resolve(&self, requested: Option<&str>) -> String {
        match requested {
            Some(target) if self.is_allowed(target) => target.to_string(),
            _ => self.site_url.clone(),
        }
    }

    /// GoTrue's rule: the site itself (same scheme and host; same port unless loopback, where
    /// native apps pick ports), else a loopback IP, else a match in the allow list, ignoring
    /// the fragment. Stricter than GoTrue where parsers could disagree with a browser: no
    /// backslashes, whitespace or control characters, and only absolute URLs.
    pub fn is_allowed(&self, target: &str) -> bool {
        if target.is_empty()
            || target.len() > MAX_REDIRECT_LEN
            || target
                .chars()
                .any(|c| c == '\\' || c.is_whitespace() || c.is_control())
        {
            return false;
        }
        let Ok(candidate) = Url::parse(target) else {
            return false;
        };
        let host = candidate.host_str().unwrap_or_default();
        if !candidate.username().is_empty() || candidate.password().is_some() {
            return false;
        }
        if host.eq_ignore_ascii_case(self.site.host_str().unwrap_or_default())
            && candidate.scheme() == self.site.scheme()
            && (candidate.port_or_known_default() == self.site.port_or_known_default()
                || is_loopback_name(host))
        {
            return true;
        }
        let web = matches!(candidate.scheme(), "http" | "https");
        match candidate.host() {
            // Only a dotted address as written: decimal and hex forms hide what they are.
            Some(url::Host::Ipv4(ip)) => {
                return ip.is_loopback() && target.contains(&format!("//{ip}"))
            }
            Some(url::Host::Ipv6(ip)) => return ip.is_loopback(),
            Some(url::Host::Domain(name)) if web && !is_regular_hostname(name) => return false,
            _ => {}
        }
        let without_fragment = target.split('#').next().unwrap_or_default();
        self.allow_list
            .iter()
            .any(|glob| glob.matches(without_fragment))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glob(pattern: &str) -> UriGlob {
        UriGlob::parse(pattern).expect("a valid test pattern")
    }

    #[test]
    fn globs_follow_gotrue_separators_and_syntax() {
        let cases: &[(&str, &str, bool)] = &[
            ("https://*.example.com", "https://app.example.com", true),
            ("https://*.example.com", "https://a.b.example.com", false),
            ("https://**.example.com", "https://a.b.example.com", true),
            ("https://*.example.com", "https://example.com", false),
            (
                "https://app.example.com/*",
                "https://app.example.com/a",
                true,
            ),
            (
                "https://app.example.com/*",
                "https://app.example.com/a/b",
                false,
            ),
            (
                "https://app.example.com/**",
                "https://app.example.com/a/b?c=d",
                true,
            ),
            (
                "https://app.example.com",
                "https://app.example.com.evil.io",
                false,
            ),
            ("https://ap?.example.com", "https://app.example.com", true),
            ("https://ap?.example.com", "https://ap/.example.com", false),
            (
                "https://[a-c]pp.example.com",
                "https://bpp.example.com",
                true,
            ),
            (
                "https://[!a-c]pp.example.com",
                "https://bpp.example.com",
                false,
            ),
            (
                "https://{app,www}.example.com",
                "https://www.example.com",
                true,
            ),
            (
                "https://{app,www}.example.com",
                "https://api.example.com",
                false,
            ),
            (
                "com.example.app://{login,reset}/**",
                "com.example.app://reset/x",
                true,
            ),
            ("https://a.example.com/\\*", "https://a.example.com/*", true),
            (
                "https://a.example.com/\\*",
                "https://a.example.com/x",
                false,
            ),
            ("http://localhost:3000/**", "http://localhost:3000/cb", true),
        ];
        for (pattern, text, expected) in cases {
            assert_eq!(glob(pattern).matches(text), *expected, "{pattern} ~ {text}");
        }
    }

    #[test]
    fn broken_patterns_are_refused_with_their_text() {
        for pattern in [
            "https://{a,b",
            "https://a}",
            "https://[a-",
            "https://x\\",
            "[]",
        ] {
            assert!(
                matches!(UriGlob::parse(pattern), Err(RedirectConfigError::Pattern(p, _)) if p == pattern),
                "{pattern}"
            );
        }
        let many = "{a,b}".repeat(12);
        assert!(UriGlob::parse(&many).is_err());
    }

    fn policy(allow: &[&str]) -> RedirectPolicy {
        let allow: Vec<String> = allow.iter().map(|s| s.to_string()).collect();
        RedirectPolicy::new("https://app.example.com", &allow).expect("a valid test policy")
    }

    #[test]
    fn the_site_itself_is_allowed_and_anything_unlisted_falls_back_to_it() {
        let policy = policy(&["https://*.partner.io/**"]);
        for allowed in [
            "https://app.example.com/welcome",
            "https://APP.example.com:443/x#y",
            "https://docs.partner.io/callback",
            "http://127.0.0.1:5173/cb",
        ] {
            assert!(policy.is_allowed(allowed), "{allowed}");
            assert_eq!(policy.resolve(Some(allowed)), allowed);
        }
        for refused in [
            "https://evil.io/",
            "http://app.example.com/",
            "https://app.example.com:8443/",
            "https://app.example.com.evil.io/",
            "https://evil.io/?https://docs.partner.io/x",
            "https://user@docs.partner.io/x",
            "https://docs.partner.io\\@evil.io/",
            "https://evil.io#https://docs.partner.io/x",
            "//evil.io/",
            "/relative",
            "javascript:alert(1)",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://localhost:9999/cb",
            " https://docs.partner.io/x",
            "",
        ] {
            assert!(!policy.is_allowed(refused), "{refused}");
            assert_eq!(policy.resolve(Some(refused)), "https://app.example.com");
        }
        assert_eq!(policy.resolve(None), "https://app.example.com");
    }

    #[test]
    fn a_loopback_site_accepts_any_port() {
        let policy = RedirectPolicy::new("http://localhost:3000", &[]).expect("a valid site URL");
        assert!(policy.is_allowed("http://localhost:51234/cb"));
        assert!(!policy.is_allowed("https://localhost:3000/cb"));
    }

    #[test]
    fn the_site_url_must_be_an_http_url() {
        for bad in ["", "app.example.com", "ftp://x.io", "mailto:a@b.c"] {
            assert_eq!(
                RedirectPolicy::new(bad, &[]).expect_err("not a site URL"),
                RedirectConfigError::SiteUrl
            );
        }
    }
}
