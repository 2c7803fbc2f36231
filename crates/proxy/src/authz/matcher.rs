//! Envoy's RBAC matchers (`envoy.config.rbac.v3` permissions and principals) as a small
//! tree the proxy evaluates per request or per connection, with Envoy's semantics: a header
//! matcher sees a header's values joined by `,`, `:authority`/`:method`/`:path` are the
//! pseudo-headers, a missing header or metadata value never matches (unless inverted), and
//! on a TCP connection every HTTP matcher is false.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

/// What a matcher may look at.
pub struct Attributes<'a> {
    /// The request head; `None` on a TCP connection.
    pub request: Option<&'a http::request::Parts>,
    /// The connection's peer.
    pub direct_remote: IpAddr,
    /// The original client: the last `x-forwarded-for` address, else the peer.
    pub remote: IpAddr,
    /// Where the connection was going (the listener address, or the original destination).
    pub destination: SocketAddr,
    /// The peer's identity from its certificate (URI SAN), on mutual TLS.
    pub peer_principal: Option<&'a str>,
    pub sni: Option<&'a str>,
    /// The verified JWT payload, in the JWT filter's metadata (`{payload: {...}}`).
    pub jwt_metadata: Option<&'a serde_json::Value>,
}

/// A regular expression matched against the whole value (Envoy's `safe_regex`).
#[derive(Debug, Clone)]
pub struct Pattern(pub Regex);

impl Pattern {
    pub fn new(text: &str) -> Result<Pattern, regex::Error> {
        Regex::new(&format!("^(?:{text})$")).map(Pattern)
    }

    fn source(&self) -> &str {
        let s = self.0.as_str();
        s.strip_prefix("^(?:")
            .and_then(|s| s.strip_suffix(")$"))
            .unwrap_or(s)
    }
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Serialize for Pattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.source())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Pattern, D::Error> {
        let text = String::deserialize(d)?;
        Pattern::new(&text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StringMatch {
    Exact { value: String, ignore_case: bool },
    Prefix { value: String, ignore_case: bool },
    Suffix { value: String, ignore_case: bool },
    Contains { value: String, ignore_case: bool },
    Regex(Pattern),
}

impl StringMatch {
    pub fn matches(&self, text: &str) -> bool {
        let fold = |s: &str, ic: bool| {
            if ic {
                s.to_ascii_lowercase()
            } else {
                s.to_string()
            }
        };
        match self {
            StringMatch::Exact { value, ignore_case } => {
                fold(text, *ignore_case) == fold(value, *ignore_case)
            }
            StringMatch::Prefix { value, ignore_case } => {
                fold(text, *ignore_case).starts_with(&fold(value, *ignore_case))
            }
            StringMatch::Suffix { value, ignore_case } => {
                fold(text, *ignore_case).ends_with(&fold(value, *ignore_case))
            }
            StringMatch::Contains { value, ignore_case } => {
                fold(text, *ignore_case).contains(&fold(value, *ignore_case))
            }
            StringMatch::Regex(p) => p.0.is_match(text),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderTest {
    Present(bool),
    String(StringMatch),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeaderMatch {
    pub name: String,
    pub test: HeaderTest,
    #[serde(default)]
    pub invert: bool,
}

impl HeaderMatch {
    fn matches(&self, request: Option<&http::request::Parts>) -> bool {
        let Some(request) = request else {
            return false;
        };
        let value = header_value(request, &self.name);
        let hit = match (&self.test, value) {
            (HeaderTest::Present(want), v) => v.is_some() == *want,
            (HeaderTest::String(_), None) => false,
            (HeaderTest::String(m), Some(v)) => m.matches(&v),
        };
        hit != self.invert
    }
}

/// A header as Envoy's matchers see it: pseudo-headers from the request line, several
/// values joined by `,`.
fn header_value(request: &http::request::Parts, name: &str) -> Option<String> {
    match name {
        ":method" => return Some(request.method.as_str().to_string()),
        ":path" => return request.uri.path_and_query().map(|p| p.as_str().to_string()),
        ":authority" => {
            return request
                .uri
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    request
                        .headers
                        .get(http::header::HOST)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                });
        }
        ":scheme" => return Some(request.uri.scheme_str().unwrap_or("http").to_string()),
        _ => {}
    }
    let values: Vec<&str> = request
        .headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    (!values.is_empty()).then(|| values.join(","))
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cidr {
    pub address: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.address, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix_len)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix_len)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], bits: u8) -> bool {
    let bits = usize::from(bits).min(a.len() * 8);
    let (full, rest) = (bits / 8, bits % 8);
    if a[..full] != b[..full] {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    a[full] & mask == b[full] & mask
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueMatch {
    String(StringMatch),
    Present(bool),
    /// A list with one element that matches.
    OneOf(Box<ValueMatch>),
}

impl ValueMatch {
    fn matches(&self, value: Option<&serde_json::Value>) -> bool {
        match (self, value) {
            (ValueMatch::Present(want), v) => v.is_some_and(|v| !v.is_null()) == *want,
            (_, None) => false,
            (ValueMatch::String(m), Some(serde_json::Value::String(s))) => m.matches(s),
            (ValueMatch::String(_), Some(_)) => false,
            (ValueMatch::OneOf(inner), Some(serde_json::Value::Array(items))) => {
                items.iter().any(|i| inner.matches(Some(i)))
            }
            (ValueMatch::OneOf(_), Some(_)) => false,
        }
    }
}

/// Dynamic metadata of the JWT filter, looked up by path.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetadataMatch {
    pub path: Vec<String>,
    pub value: ValueMatch,
    #[serde(default)]
    pub invert: bool,
}

impl MetadataMatch {
    fn matches(&self, metadata: Option<&serde_json::Value>) -> bool {
        let found = metadata.and_then(|m| self.path.iter().try_fold(m, |v, k| v.get(k)));
        self.value.matches(found) != self.invert
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    Any,
    And(Vec<Permission>),
    Or(Vec<Permission>),
    Not(Box<Permission>),
    Header(HeaderMatch),
    /// The path without its query.
    Path(StringMatch),
    DestinationPort(u16),
    DestinationIp(Cidr),
    Sni(StringMatch),
    Metadata(MetadataMatch),
}

impl Permission {
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        match self {
            Permission::Any => true,
            Permission::And(all) => all.iter().all(|p| p.matches(a)),
            Permission::Or(any) => any.iter().any(|p| p.matches(a)),
            Permission::Not(p) => !p.matches(a),
            Permission::Header(h) => h.matches(a.request),
            Permission::Path(m) => a.request.is_some_and(|r| m.matches(r.uri.path())),
            Permission::DestinationPort(p) => a.destination.port() == *p,
            Permission::DestinationIp(c) => c.contains(a.destination.ip()),
            Permission::Sni(m) => a.sni.is_some_and(|s| m.matches(s)),
            Permission::Metadata(m) => m.matches(a.jwt_metadata),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Principal {
    Any,
    And(Vec<Principal>),
    Or(Vec<Principal>),
    Not(Box<Principal>),
    /// A peer with a certificate whose identity matches (any identity when `None`).
    Authenticated(Option<StringMatch>),
    DirectRemoteIp(Cidr),
    RemoteIp(Cidr),
    Header(HeaderMatch),
    Metadata(MetadataMatch),
}

impl Principal {
    pub fn matches(&self, a: &Attributes<'_>) -> bool {
        match self {
            Principal::Any => true,
            Principal::And(all) => all.iter().all(|p| p.matches(a)),
            Principal::Or(any) => any.iter().any(|p| p.matches(a)),
            Principal::Not(p) => !p.matches(a),
            Principal::Authenticated(name) => match (a.peer_principal, name) {
                (None, _) => false,
                (Some(_), None) => true,
                (Some(id), Some(m)) => m.matches(id),
            },
            Principal::DirectRemoteIp(c) => c.contains(a.direct_remote),
            Principal::RemoteIp(c) => c.contains(a.remote),
            Principal::Header(h) => h.matches(a.request),
            Principal::Metadata(m) => m.matches(a.jwt_metadata),
        }
    }
}
