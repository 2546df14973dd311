//! Which address a request came from: the socket's peer, unless that peer is a configured
//! trusted proxy, in which case `Forwarded` (RFC 7239) or else `X-Forwarded-For` is read from the
//! right, skipping trusted hops, and the first untrusted address is the client. Headers from
//! anyone else are ignored: a client cannot choose its own rate-limit key.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Proxies whose forwarding headers are believed (addresses or CIDR ranges).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl fmt::Debug for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(ToString::to_string))
            .finish()
    }
}

impl TrustedProxies {
    /// Each entry an address (`10.0.0.1`, `::1`) or a range (`10.0.0.0/8`).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|entry| {
                let entry = entry.as_ref().trim();
                IpNet::from_str(entry)
                    .or_else(|_| IpAddr::from_str(entry).map(IpNet::from))
                    .map(|net| net.trunc())
                    .map_err(|_| format!("{entry:?} is not an IP address or CIDR range"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether the browser reached us over HTTPS: a trusted proxy in front of us says so with
    /// `X-Forwarded-Proto: https` or `Forwarded: proto=https`. Anyone else's word is ignored.
    pub(crate) fn forwarded_https(&self, parts: &axum::http::request::Parts) -> bool {
        let peer = parts
            .extensions
            .get::<crate::extract::CallerSlot>()
            .and_then(crate::extract::CallerSlot::peer)
            .map(|peer| peer.ip());
        if !peer.is_some_and(|peer| self.trusts(peer)) {
            return false;
        }
        let headers = &parts.headers;
        let proto = headers
            .get("x-forwarded-proto")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(|value| value.trim().eq_ignore_ascii_case("https"));
        let forwarded = headers
            .get("forwarded")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.split(',').next())
            .map(|element| {
                element.split(';').any(|pair| {
                    pair.split_once('=').is_some_and(|(name, value)| {
                        name.trim().eq_ignore_ascii_case("proto")
                            && value.trim().trim_matches('"').eq_ignore_ascii_case("https")
                    })
                })
            });
        forwarded.or(proto).unwrap_or(false)
    }

    /// The client's address: `peer` itself unless it is trusted and forwarded for someone.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops = forwarded_for(headers).or_else(|| x_forwarded_for(headers));
        let Some(hops) = hops else {
            return peer;
        };
        let mut client = peer;
        for hop in hops.into_iter().rev() {
            // An unreadable hop ends the walk: everything left of it is the client's to forge.
            let Some(hop) = hop else {
                break;
            };
            client = canonical(hop);
            if !self.trusts(client) {
                break;
            }
        }
        client
    }
}

/// IPv4-mapped IPv6 addresses (dual-stack sockets) compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

/// Every `X-Forwarded-For` header, joined, left to right; `None` for an entry that is not an
/// address.
fn x_forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let value = value.to_str().ok()?;
        hops.extend(value.split(',').map(|hop| parse_node(hop.trim())));
    }
    (!hops.is_empty()).then_some(hops)
}

/// The `for=` of every element of every `Forwarded` header, left to right.
fn forwarded_for(headers: &HeaderMap) -> Option<Vec<Option<IpAddr>>> {
    let mut hops = Vec::new();
    for value in headers.get_all("forwarded") {
        let value = value.to_str().ok()?;
        for element in value.split(',') {
            let node = element.split(';').find_map(|pair| {
                let (name, value) = pair.split_once('=')?;
                name.trim()
                    .eq_ignore_ascii_case("for")
                    .then(|| value.trim().trim_matches('"'))
            });
            hops.push(node.and_then(parse_node));
        }
    }
    (!hops.is_empty()).then_some(hops)
}

/// `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(node) {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        let (inside, _) = rest.split_once(']')?;
        return Ipv6Addr::from_str(inside).ok().map(IpAddr::V6);
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    Ipv4Addr::from_str(host).ok().map(IpAddr::V4)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    /// A header's name and value.
    type Header = (&'static str, &'static str);

    fn headers(pairs: &[Header]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_static(value));
        }
        map
    }

    fn ip(raw: &str) -> IpAddr {
        raw.parse().expect("valid address")
    }

    #[test]
    fn entries_parse_as_addresses_or_ranges() {
        assert!(TrustedProxies::parse(&["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"]).is_ok());
        for bad in ["10.0.0.0/33", "localhost", "", "10.0.0.1/"] {
            assert!(TrustedProxies::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_client_address_is_found_as_documented() {
        let trusted = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).expect("valid");
        let cases: &[(&str, &[Header], &str)] = &[
            // An untrusted peer's headers are ignored.
            (
                "203.0.113.9",
                &[("x-forwarded-for", "198.51.100.1")],
                "203.0.113.9",
            ),
            // A trusted peer without headers is the client.
            ("10.0.0.2", &[], "10.0.0.2"),
            (
                "10.0.0.2",
                &[("x-forwarded-for", "198.51.100.1")],
                "198.51.100.1",
            ),
            // Trusted hops are skipped from the right; what the client wrote on the left is not believed.
            (
                "10.0.0.2",
                &[("x-forwarded-for", "1.1.1.1, 198.51.100.1, 10.0.0.7")],
                "198.51.100.1",
            ),
            (
                "10.0.0.2",
                &[
                    ("x-forwarded-for", "1.1.1.1"),
                    ("x-forwarded-for", "198.51.100.1"),
                ],
                "198.51.100.1",
            ),
            // Every hop trusted: the leftmost.
            (
                "10.0.0.2",
                &[("x-forwarded-for", "10.1.1.1, 10.0.0.7")],
                "10.1.1.1",
            ),
            // Garbage stops the walk at the last good trusted hop.
            (
                "10.0.0.2",
                &[("x-forwarded-for", "198.51.100.1, nonsense")],
                "10.0.0.2",
            ),
            // Forwarded wins over X-Forwarded-For, with ports, quotes and IPv6.
            (
                "10.0.0.2",
                &[
                    ("forwarded", "for=\"[2001:db8::1]:4711\";proto=https"),
                    ("x-forwarded-for", "1.1.1.1"),
                ],
                "2001:db8::1",
            ),
            (
                "10.0.0.2",
                &[("forwarded", "for=192.0.2.60:80, For=10.0.0.9")],
                "192.0.2.60",
            ),
            (
                "::1",
                &[("x-forwarded-for", "198.51.100.1")],
                "198.51.100.1",
            ),
            (
                "::ffff:10.0.0.2",
                &[("x-forwarded-for", "198.51.100.1")],
                "198.51.100.1",
            ),
            ("::ffff:203.0.113.9", &[], "203.0.113.9"),
        ];
        for (peer, pairs, expected) in cases {
            assert_eq!(
                trusted.client_ip(ip(peer), &headers(pairs)),
                ip(expected),
                "{peer} {pairs:?}"
            );
        }
    }

    #[test]
    fn with_no_trusted_proxies_the_peer_is_always_the_client() {
        let none = TrustedProxies::default();
        let forged = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", "for=1.1.1.1"),
        ]);
        assert_eq!(none.client_ip(ip("127.0.0.1"), &forged), ip("127.0.0.1"));
    }
}
