//! Typed capture settings (what istio-iptables calls its config) and the parsers that turn
//! Istio's comma-separated flag values into them.

use std::fmt;
use std::net::IpAddr;

use crate::error::CaptureError;

/// How inbound connections reach the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InterceptionMode {
    /// NAT `REDIRECT` to the inbound capture port (the source address becomes the proxy's view).
    #[default]
    Redirect,
    /// `TPROXY` in the mangle table: the original source address is kept.
    Tproxy,
}

impl InterceptionMode {
    /// Parses Istio's `-m` value (`REDIRECT` or `TPROXY`; empty means the default, REDIRECT).
    pub fn parse(field: &str, value: &str) -> Result<Self, CaptureError> {
        match value.trim().to_ascii_uppercase().as_str() {
            "" | "REDIRECT" => Ok(Self::Redirect),
            "TPROXY" => Ok(Self::Tproxy),
            _ => Err(CaptureError::invalid(
                field,
                value,
                "expected REDIRECT or TPROXY",
            )),
        }
    }
}

/// Inbound ports whose traffic is captured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum InboundPorts {
    /// Inbound capture off (Istio's empty list).
    #[default]
    None,
    /// Every port (`*`), minus `inbound_ports_exclude`.
    All,
    /// Only these ports, in the order given.
    Only(Vec<u16>),
}

/// Outbound destination ranges whose traffic is captured.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum OutboundRanges {
    /// Every destination (`*`), minus the excluded ranges.
    All,
    /// No range-based outbound capture (Istio's empty list).
    #[default]
    None,
    /// Only these ranges, in the order given (either family).
    Only(Vec<Cidr>),
}

impl OutboundRanges {
    /// The ranges of one address family; `All` stays `All` for both families.
    pub fn for_family(&self, v6: bool) -> OutboundRanges {
        match self {
            Self::All => Self::All,
            Self::None => Self::None,
            Self::Only(list) => {
                let picked: Vec<Cidr> = list.iter().filter(|c| c.is_v6() == v6).cloned().collect();
                if picked.is_empty() {
                    Self::None
                } else {
                    Self::Only(picked)
                }
            }
        }
    }

    /// True when some listed range starts at a loopback address (then app-to-self traffic on
    /// `lo` must be captured too, as Istio does).
    pub fn has_loopback(&self) -> bool {
        matches!(self, Self::Only(list) if list.iter().any(|c| c.addr.is_loopback()))
    }
}

/// Which groups' outbound traffic is captured (Istio's `ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerGroups {
    /// Every group except these (names or numeric GIDs).
    AllExcept(Vec<String>),
    /// Only these groups.
    Only(Vec<String>),
}

impl Default for OwnerGroups {
    fn default() -> Self {
        Self::AllExcept(Vec::new())
    }
}

impl OwnerGroups {
    /// Builds the filter from the include list (`*` or names) and the exclude list, which only
    /// counts when all groups are included.
    pub fn parse(include: &str, exclude: &str) -> Self {
        let include = include.trim();
        if include.is_empty() || include == "*" {
            Self::AllExcept(split_list(exclude).map(str::to_owned).collect())
        } else {
            Self::Only(split_list(include).map(str::to_owned).collect())
        }
    }
}

/// An address with a prefix length, printed exactly as `addr/len` (host bits are kept, as
/// Istio prints `127.0.0.1/8`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix_len: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a host route).
    pub fn parse(field: &str, text: &str) -> Result<Self, CaptureError> {
        let text = text.trim();
        let (addr_text, len_text) = match text.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (text, None),
        };
        let addr: IpAddr = addr_text
            .parse()
            .map_err(|_| CaptureError::invalid(field, text, "not an IP address or CIDR"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix_len = match len_text {
            None => max,
            Some(l) => l
                .parse::<u8>()
                .ok()
                .filter(|n| *n <= max)
                .ok_or_else(|| CaptureError::invalid(field, text, "bad prefix length"))?,
        };
        Ok(Self { addr, prefix_len })
    }

    pub fn is_v6(&self) -> bool {
        self.addr.is_ipv6()
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

/// Everything that decides the rule set. Defaults are Istio's base configuration (the one its
/// golden tests start from): ports 15001/15006/15008, UID and GID 1337, nothing captured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// Outbound listener of the proxy (`ISTIO_REDIRECT` target).
    pub proxy_port: u16,
    /// Inbound listener of the proxy (`ISTIO_IN_REDIRECT` / TPROXY target).
    pub inbound_capture_port: u16,
    /// HBONE tunnel port: never captured inbound.
    pub inbound_tunnel_port: u16,
    /// UIDs whose traffic is the proxy's own (never redirected back to it).
    pub proxy_uids: Vec<u32>,
    /// GIDs whose traffic is the proxy's own.
    pub proxy_gids: Vec<u32>,
    pub mode: InterceptionMode,
    pub tproxy_mark: u32,
    pub tproxy_route_table: u32,
    pub inbound_ports: InboundPorts,
    /// Only used with `InboundPorts::All`.
    pub inbound_ports_exclude: Vec<u16>,
    pub outbound_ports_include: Vec<u16>,
    pub outbound_ports_exclude: Vec<u16>,
    pub outbound_ranges_include: OutboundRanges,
    pub outbound_ranges_exclude: Vec<Cidr>,
    /// Interfaces whose traffic is never captured.
    pub exclude_interfaces: Vec<String>,
    /// Interfaces (VMs) whose inbound traffic is treated as outbound.
    pub kube_virt_interfaces: Vec<String>,
    pub owner_groups: OwnerGroups,
    /// Loopback range used for the app's own loopback traffic (Istio's
    /// `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR`).
    pub host_ipv4_loopback_cidr: Cidr,
    /// Redirect DNS (port 53) to the agent on 15053.
    pub redirect_dns: bool,
    /// Capture DNS to any server, not only to the listed ones.
    pub capture_all_dns: bool,
    /// DNS servers (as written, e.g. from /etc/resolv.conf); checked to be IPv4.
    pub dns_servers_v4: Vec<String>,
    /// DNS servers, checked to be IPv6.
    pub dns_servers_v6: Vec<String>,
    pub drop_invalid: bool,
    /// Also write the IPv6 rule set (ip6tables).
    pub enable_ipv6: bool,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            proxy_port: 15001,
            inbound_capture_port: 15006,
            inbound_tunnel_port: 15008,
            proxy_uids: vec![1337],
            proxy_gids: vec![1337],
            mode: InterceptionMode::Redirect,
            tproxy_mark: 1337,
            tproxy_route_table: 133,
            inbound_ports: InboundPorts::None,
            inbound_ports_exclude: Vec::new(),
            outbound_ports_include: Vec::new(),
            outbound_ports_exclude: Vec::new(),
            outbound_ranges_include: OutboundRanges::None,
            outbound_ranges_exclude: Vec::new(),
            exclude_interfaces: Vec::new(),
            kube_virt_interfaces: Vec::new(),
            owner_groups: OwnerGroups::default(),
            host_ipv4_loopback_cidr: Cidr {
                addr: IpAddr::from([127, 0, 0, 1]),
                prefix_len: 32,
            },
            redirect_dns: false,
            capture_all_dns: false,
            dns_servers_v4: Vec::new(),
            dns_servers_v6: Vec::new(),
            drop_invalid: false,
            enable_ipv6: false,
        }
    }
}

impl CaptureConfig {
    /// DNS capture as it takes effect: asking for it without any server to capture (and without
    /// capture-all) turns it off, as Istio does.
    pub fn dns_effective(&self) -> bool {
        self.redirect_dns
            && (self.capture_all_dns
                || !self.dns_servers_v4.is_empty()
                || !self.dns_servers_v6.is_empty())
    }

    /// The mark the proxy's own loopback packets get in TPROXY mode (one above the TPROXY mark).
    pub fn outbound_mark(&self) -> u64 {
        u64::from(self.tproxy_mark) + 1
    }
}

/// Splits Istio's comma-separated lists, dropping empty items (`"6000,7000,"` is two ports).
pub fn split_list(text: &str) -> impl Iterator<Item = &str> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Parses a comma-separated port list.
pub fn parse_ports(field: &str, text: &str) -> Result<Vec<u16>, CaptureError> {
    split_list(text)
        .map(|p| {
            p.parse::<u16>()
                .ok()
                .filter(|n| *n != 0)
                .ok_or_else(|| CaptureError::invalid(field, p, "not a port number (1-65535)"))
        })
        .collect()
}

/// Parses the inbound include list: empty, `*`, or ports.
pub fn parse_inbound_ports(field: &str, text: &str) -> Result<InboundPorts, CaptureError> {
    let text = text.trim();
    if text == "*" {
        return Ok(InboundPorts::All);
    }
    let ports = parse_ports(field, text)?;
    Ok(if ports.is_empty() {
        InboundPorts::None
    } else {
        InboundPorts::Only(ports)
    })
}

/// Parses an outbound range list: empty, `*`, or CIDRs of either family.
pub fn parse_ranges(field: &str, text: &str) -> Result<OutboundRanges, CaptureError> {
    let text = text.trim();
    if text == "*" {
        return Ok(OutboundRanges::All);
    }
    let list = parse_cidrs(field, text)?;
    Ok(if list.is_empty() {
        OutboundRanges::None
    } else {
        OutboundRanges::Only(list)
    })
}

/// Parses a CIDR list where `*` is not allowed.
pub fn parse_cidrs(field: &str, text: &str) -> Result<Vec<Cidr>, CaptureError> {
    split_list(text).map(|c| Cidr::parse(field, c)).collect()
}

/// Parses a list of numeric user or group ids.
pub fn parse_ids(field: &str, text: &str) -> Result<Vec<u32>, CaptureError> {
    split_list(text)
        .map(|id| {
            id.parse::<u32>()
                .map_err(|_| CaptureError::invalid(field, id, "not a numeric id"))
        })
        .collect()
}

/// Parses an interface list; names must be usable as an iptables `-i`/`-o` argument.
pub fn parse_interfaces(field: &str, text: &str) -> Result<Vec<String>, CaptureError> {
    split_list(text)
        .map(|name| {
            let ok = name.len() <= 15
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-@+:".contains(c));
            if ok {
                Ok(name.to_owned())
            } else {
                Err(CaptureError::invalid(field, name, "not an interface name"))
            }
        })
        .collect()
}

/// Splits DNS server addresses by family, keeping each as written.
pub fn split_dns_servers<'a>(
    field: &str,
    servers: impl IntoIterator<Item = &'a str>,
) -> Result<(Vec<String>, Vec<String>), CaptureError> {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for server in servers {
        let server = server.trim();
        match server.parse::<IpAddr>() {
            Ok(IpAddr::V4(_)) => v4.push(server.to_owned()),
            Ok(IpAddr::V6(_)) => v6.push(server.to_owned()),
            Err(_) => return Err(CaptureError::invalid(field, server, "not an IP address")),
        }
    }
    Ok((v4, v6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_drop_empty_items_and_keep_order() {
        assert_eq!(parse_ports("p", "6000,7000,").unwrap(), vec![6000, 7000]);
        assert_eq!(parse_inbound_ports("p", "").unwrap(), InboundPorts::None);
        assert_eq!(parse_inbound_ports("p", "*").unwrap(), InboundPorts::All);
        assert!(parse_ports("p", "70000").is_err());
    }

    #[test]
    fn cidrs_print_as_written() {
        let c = Cidr::parse("x", "127.0.0.1/8").unwrap();
        assert_eq!(c.to_string(), "127.0.0.1/8");
        assert_eq!(
            Cidr::parse("x", "2001:db8::/32").unwrap().to_string(),
            "2001:db8::/32"
        );
        assert_eq!(
            Cidr::parse("x", "10.1.2.3").unwrap().to_string(),
            "10.1.2.3/32"
        );
        let err = Cidr::parse("--istio-service-cidr", "10.0.0.0/33").unwrap_err();
        assert!(err.to_string().contains("--istio-service-cidr"));
    }

    #[test]
    fn ranges_split_by_family() {
        let r = parse_ranges("i", "10.0.0.0/8,2001:db8::/32").unwrap();
        assert_eq!(
            r.for_family(false),
            OutboundRanges::Only(vec![Cidr::parse("i", "10.0.0.0/8").unwrap()])
        );
        assert_eq!(
            parse_ranges("i", "10.0.0.0/8").unwrap().for_family(true),
            OutboundRanges::None
        );
        assert!(parse_ranges("i", "127.1.2.3/32").unwrap().has_loopback());
    }
}
