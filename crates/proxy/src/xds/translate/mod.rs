//! Envoy v3 resources → the proxy's configuration model ([`crate::config::model`]). Each
//! translator handles a subset of the resource; whatever else is set is rejected with the
//! resource name, the field path and the reason ([`Rejection`]), which becomes the NACK's
//! `error_detail`. Nothing is silently dropped (see [`fields`]).

mod access_log;
#[cfg(test)]
mod access_log_tests;
pub mod authz;
pub mod cluster;
pub mod endpoint;
pub mod fields;
pub(crate) mod inbound_chains;
#[cfg(test)]
mod inbound_tls_tests;
pub mod listener;
#[cfg(test)]
mod locality_tests;
pub mod policy;
#[cfg(test)]
mod policy_tests;
pub mod remote_jwks;
pub mod route;
mod stats;
#[cfg(test)]
mod stats_tests;
#[cfg(test)]
pub(crate) mod tests;
pub mod tls;
mod tls_files;
#[cfg(test)]
mod tls_tests;
pub mod tracing;

use lateen_xds::pb::envoy::config::core::v3::{
    Address, HeaderValueOption, SocketAddress, address, socket_address,
};
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use lateen_xds::pb::google::protobuf::{Any, Duration as PbDuration};
use lateen_xds::prost::{Message, Name};
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use crate::config::model;

/// Why one resource was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {name:?}: {field}: {reason}")]
pub struct Rejection {
    /// `Listener`, `RouteConfiguration`, `Cluster` or `ClusterLoadAssignment`.
    pub kind: &'static str,
    pub name: String,
    /// Path of the offending field inside the resource, Envoy's field names.
    pub field: String,
    pub reason: String,
}

/// Collects problems for one resource, prefixing field paths.
pub(crate) struct Check {
    kind: &'static str,
    name: String,
}

impl Check {
    pub fn new(kind: &'static str, name: &str) -> Check {
        Check {
            kind,
            name: name.to_string(),
        }
    }

    pub fn reject(&self, field: impl Into<String>, reason: impl Into<String>) -> Rejection {
        Rejection {
            kind: self.kind,
            name: self.name.clone(),
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Rejects when `rest` (a message with the handled fields cleared) still has fields set.
    pub fn no_leftover<M: std::fmt::Debug + Default + PartialEq>(
        &self,
        path: &str,
        rest: &M,
    ) -> Result<(), Rejection> {
        let left = fields::leftover(rest);
        if left.is_empty() {
            return Ok(());
        }
        let named: Vec<String> = left.iter().map(|field| join(path, field)).collect();
        Err(self.reject(named.join(", "), "not supported by lateen-proxy"))
    }
}

/// `a.b` from a prefix and a field (`b` alone when the prefix is empty).
pub(crate) fn join(prefix: &str, field: &str) -> String {
    if prefix.is_empty() {
        field.to_string()
    } else {
        format!("{prefix}.{field}")
    }
}

/// Decodes a packed message, checking its type.
pub(crate) fn unpack<M: Message + Name + Default>(any: &Any) -> Result<M, String> {
    if any.type_url != M::type_url() {
        return Err(format!("expected {}, got {}", M::type_url(), any.type_url));
    }
    M::decode(any.value.as_slice())
        .map_err(|err| format!("cannot decode {}: {err}", M::full_name()))
}

/// A TCP socket address with a numeric IP and port.
pub(crate) fn socket_addr(address: Option<&Address>) -> Result<SocketAddr, String> {
    let Some(Address {
        address: Some(address::Address::SocketAddress(socket)),
    }) = address
    else {
        return Err(
            "must be a socket_address (pipes and internal addresses are not supported)".into(),
        );
    };
    let rest = SocketAddress {
        address: String::new(),
        port_specifier: None,
        protocol: 0,
        ..socket.clone()
    };
    let left = fields::leftover(&rest);
    if !left.is_empty() {
        return Err(format!(
            "socket_address fields {} are not supported",
            left.join(", ")
        ));
    }
    if socket.protocol != 0 {
        return Err("only TCP is supported".into());
    }
    let ip: IpAddr = socket.address.parse().map_err(|_| {
        format!(
            "{:?} is not an IP address (names are not resolved)",
            socket.address
        )
    })?;
    let port = match socket.port_specifier {
        Some(socket_address::PortSpecifier::PortValue(port)) => {
            u16::try_from(port).map_err(|_| format!("port {port} is out of range"))?
        }
        Some(socket_address::PortSpecifier::NamedPort(ref name)) => {
            return Err(format!("named port {name:?} is not supported"));
        }
        None => 0,
    };
    Ok(SocketAddr::new(ip, port))
}

pub(crate) fn duration(value: &PbDuration) -> Result<Duration, String> {
    if value.seconds < 0 || value.nanos < 0 {
        return Err("must not be negative".into());
    }
    Ok(Duration::new(value.seconds as u64, value.nanos as u32))
}

/// Envoy's header additions: `append` (or `append_action`) false replaces, true appends.
#[allow(deprecated)] // `append`: the older form of append_action, still sent
pub(crate) fn header_ops(
    add: &[HeaderValueOption],
    remove: &[String],
    path: &str,
) -> Result<model::HeaderOps, (String, String)> {
    let mut ops = model::HeaderOps {
        set: BTreeMap::new(),
        add: BTreeMap::new(),
        remove: remove.to_vec(),
    };
    for (index, option) in add.iter().enumerate() {
        let field = format!("{path}_to_add[{index}]");
        let Some(header) = &option.header else {
            return Err((field, "needs a header".into()));
        };
        let value = if header.raw_value.is_empty() {
            header.value.clone()
        } else {
            String::from_utf8(header.raw_value.clone()).map_err(|_| {
                (
                    format!("{field}.header.raw_value"),
                    "must be UTF-8".to_string(),
                )
            })?
        };
        if option.keep_empty_value {
            return Err((format!("{field}.keep_empty_value"), "not supported".into()));
        }
        // append_action: 0 APPEND_IF_EXISTS_OR_ADD, 1 ADD_IF_ABSENT, 2 OVERWRITE_IF_EXISTS_OR_ADD.
        let append = match (option.append, option.append_action) {
            (Some(append), _) => append.value,
            (None, 0) => true,
            (None, 2) => false,
            (None, other) => {
                return Err((
                    format!("{field}.append_action"),
                    format!("action {other} is not supported"),
                ));
            }
        };
        let target = if append { &mut ops.add } else { &mut ops.set };
        target.insert(header.key.to_ascii_lowercase(), value);
    }
    Ok(ops)
}

/// A string matcher as our value matcher; suffix and contains become anchored regexes.
pub(crate) fn string_match(matcher: &StringMatcher) -> Result<model::ValueMatch, String> {
    if matcher.ignore_case {
        return Err("ignore_case is not supported".into());
    }
    Ok(match &matcher.match_pattern {
        Some(string_matcher::MatchPattern::Exact(value)) => model::ValueMatch::Exact(value.clone()),
        Some(string_matcher::MatchPattern::Prefix(value)) => {
            model::ValueMatch::Prefix(value.clone())
        }
        Some(string_matcher::MatchPattern::Suffix(value)) => {
            model::ValueMatch::Regex(format!(".*{}", regex::escape(value)))
        }
        Some(string_matcher::MatchPattern::Contains(value)) => {
            model::ValueMatch::Regex(format!(".*{}.*", regex::escape(value)))
        }
        Some(string_matcher::MatchPattern::SafeRegex(regex)) => {
            model::ValueMatch::Regex(checked_regex(&regex.regex)?)
        }
        Some(string_matcher::MatchPattern::Custom(_)) => {
            return Err("custom matchers are not supported".into());
        }
        None => return Err("needs a match pattern".into()),
    })
}

/// Checks a regex here so a bad one is rejected naming its resource and field.
pub(crate) fn checked_regex(pattern: &str) -> Result<String, String> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
        .map(|_| pattern.to_string())
        .map_err(|err| format!("invalid regex {pattern:?}: {err}"))
}
