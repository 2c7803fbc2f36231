//! The rule set: capture settings → iptables rules in Istio's chains, in Istio's order, and
//! their `iptables-restore` text per address family.
//!
//! Order matters inside a chain (first match wins), so rules are kept in the order they are
//! added; the text groups them by table (mangle, nat, raw) and declares our chains first.

use std::fmt::Write as _;

use crate::config::{CaptureConfig, InboundPorts, InterceptionMode, OutboundRanges, OwnerGroups};

/// Chains this crate creates. Clean-up removes exactly these (and jumps into them).
pub const CHAIN_INBOUND: &str = "ISTIO_INBOUND";
pub const CHAIN_REDIRECT: &str = "ISTIO_REDIRECT";
pub const CHAIN_IN_REDIRECT: &str = "ISTIO_IN_REDIRECT";
pub const CHAIN_OUTPUT: &str = "ISTIO_OUTPUT";
pub const CHAIN_OUTPUT_DNS: &str = "ISTIO_OUTPUT_DNS";
pub const CHAIN_DIVERT: &str = "ISTIO_DIVERT";
pub const CHAIN_TPROXY: &str = "ISTIO_TPROXY";
pub const CHAIN_DROP: &str = "ISTIO_DROP";

/// All chains we may create, in any table.
pub const OUR_CHAINS: [&str; 8] = [
    CHAIN_INBOUND,
    CHAIN_REDIRECT,
    CHAIN_IN_REDIRECT,
    CHAIN_OUTPUT,
    CHAIN_OUTPUT_DNS,
    CHAIN_DIVERT,
    CHAIN_TPROXY,
    CHAIN_DROP,
];

const BUILTIN_CHAINS: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// The agent's DNS listener (istio-agent's 15053).
const DNS_PROXY_PORT: u16 = 15053;
/// Source address the proxy binds for inbound passthrough (Istio's 127.0.0.6 / ::6).
const PASSTHROUGH_V4: &str = "127.0.0.6/32";
const PASSTHROUGH_V6: &str = "::6/128";
const LOOPBACK_V6: &str = "::1/128";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    V4,
    V6,
}

impl Family {
    pub fn label(self) -> &'static str {
        match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        }
    }
}

/// Tables in the order their blocks are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    Mangle,
    Nat,
    Raw,
}

impl Table {
    pub const ALL: [Table; 3] = [Table::Mangle, Table::Nat, Table::Raw];

    pub fn name(self) -> &'static str {
        match self {
            Self::Mangle => "mangle",
            Self::Nat => "nat",
            Self::Raw => "raw",
        }
    }
}

/// One rule: `-A chain spec`, or `-I chain position spec`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub table: Table,
    pub chain: &'static str,
    /// `Some(n)`: inserted at position n instead of appended.
    pub position: Option<u32>,
    /// Match and target, as iptables arguments joined by spaces.
    pub spec: String,
    /// `None`: the rule is in both families.
    pub family: Option<Family>,
}

impl Rule {
    /// The line for `iptables-restore`.
    pub fn line(&self) -> String {
        match self.position {
            Some(n) => format!("-I {} {} {}", self.chain, n, self.spec),
            None => format!("-A {} {}", self.chain, self.spec),
        }
    }

    pub fn in_builtin_chain(&self) -> bool {
        BUILTIN_CHAINS.contains(&self.chain)
    }

    fn applies_to(&self, family: Family) -> bool {
        self.family.is_none_or(|f| f == family)
    }
}

/// The complete rule set for one configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleSet {
    rules: Vec<Rule>,
}

impl RuleSet {
    /// Builds the rules istio-iptables would write for these settings.
    pub fn build(cfg: &CaptureConfig) -> Self {
        let mut b = RuleSet::default();
        b.build_all(cfg);
        b
    }

    /// Rules of one family, in order.
    pub fn rules(&self, family: Family) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.applies_to(family))
    }

    /// Tables that have rules in this family, in writing order.
    pub fn tables(&self, family: Family) -> Vec<Table> {
        Table::ALL
            .into_iter()
            .filter(|t| self.rules(family).any(|r| r.table == *t))
            .collect()
    }

    /// Our chains used in one table, in order of first use.
    pub fn chains(&self, family: Family, table: Table) -> Vec<&'static str> {
        let mut chains: Vec<&'static str> = Vec::new();
        for rule in self.rules(family).filter(|r| r.table == table) {
            if !rule.in_builtin_chain() && !chains.contains(&rule.chain) {
                chains.push(rule.chain);
            }
        }
        chains
    }

    /// The `iptables-restore` block of one table (`* nat`, `-N` lines, rules, `COMMIT`).
    pub fn table_text(&self, family: Family, table: Table) -> String {
        let mut out = format!("* {}\n", table.name());
        for chain in self.chains(family, table) {
            let _ = writeln!(out, "-N {chain}");
        }
        for rule in self.rules(family).filter(|r| r.table == table) {
            out.push_str(&rule.line());
            out.push('\n');
        }
        out.push_str("COMMIT\n");
        out
    }

    /// The whole `iptables-restore --noflush` input of one family.
    pub fn restore_text(&self, family: Family) -> String {
        self.tables(family)
            .into_iter()
            .map(|t| self.table_text(family, t))
            .collect()
    }

    fn push(&mut self, table: Table, chain: &'static str, spec: String, family: Option<Family>) {
        self.rules.push(Rule {
            table,
            chain,
            position: None,
            spec,
            family,
        });
    }

    /// Appends a rule to both families.
    fn add(&mut self, table: Table, chain: &'static str, spec: impl Into<String>) {
        self.push(table, chain, spec.into(), None);
    }

    /// Appends a rule whose text differs per family (an address).
    fn add_per_family(&mut self, table: Table, chain: &'static str, v4: String, v6: String) {
        self.push(table, chain, v4, Some(Family::V4));
        self.push(table, chain, v6, Some(Family::V6));
    }

    fn add_for(&mut self, family: Family, table: Table, chain: &'static str, spec: String) {
        self.push(table, chain, spec, Some(family));
    }

    fn insert(
        &mut self,
        family: Option<Family>,
        table: Table,
        chain: &'static str,
        pos: u32,
        spec: String,
    ) {
        self.rules.push(Rule {
            table,
            chain,
            position: Some(pos),
            spec,
            family,
        });
    }

    fn build_all(&mut self, cfg: &CaptureConfig) {
        let loopback_v4 = cfg.host_ipv4_loopback_cidr.to_string();
        let dns = cfg.dns_effective();
        let tproxy = cfg.mode == InterceptionMode::Tproxy;

        self.exclude_interfaces(cfg, tproxy);
        // Traffic arriving from VMs' virtual interfaces is not inbound traffic of this pod.
        for iface in &cfg.kube_virt_interfaces {
            self.insert(
                None,
                Table::Nat,
                "PREROUTING",
                1,
                format!("-i {iface} -j RETURN"),
            );
        }
        if cfg.drop_invalid {
            // Out-of-window packets are dropped instead of being answered with a reset.
            self.add(
                Table::Mangle,
                "PREROUTING",
                format!("-m conntrack --ctstate INVALID -j {CHAIN_DROP}"),
            );
            self.add(Table::Mangle, CHAIN_DROP, "-j DROP");
        }
        // The tunnel port is the proxy's own inbound listener: never redirect it.
        self.add(
            Table::Nat,
            CHAIN_INBOUND,
            format!("-p tcp --dport {} -j RETURN", cfg.inbound_tunnel_port),
        );
        self.add(
            Table::Nat,
            CHAIN_REDIRECT,
            format!("-p tcp -j REDIRECT --to-ports {}", cfg.proxy_port),
        );
        self.add(
            Table::Nat,
            CHAIN_IN_REDIRECT,
            format!("-p tcp -j REDIRECT --to-ports {}", cfg.inbound_capture_port),
        );
        self.inbound(cfg, tproxy, &loopback_v4);
        self.add(Table::Nat, "OUTPUT", format!("-j {CHAIN_OUTPUT}"));
        for port in &cfg.outbound_ports_exclude {
            self.add(
                Table::Nat,
                CHAIN_OUTPUT,
                format!("-p tcp --dport {port} -j RETURN"),
            );
            self.add(
                Table::Nat,
                CHAIN_OUTPUT,
                format!("-p udp --dport {port} -j RETURN"),
            );
        }
        // The proxy's inbound passthrough connects from 127.0.0.6: leave it alone.
        self.add_per_family(
            Table::Nat,
            CHAIN_OUTPUT,
            format!("-o lo -s {PASSTHROUGH_V4} -j RETURN"),
            format!("-o lo -s {PASSTHROUGH_V6} -j RETURN"),
        );
        self.proxy_owner_rules(cfg, dns, &loopback_v4);
        self.owner_groups(&cfg.owner_groups);
        if dns {
            self.dns(cfg);
        }
        // The app's own localhost traffic is never captured.
        self.add_per_family(
            Table::Nat,
            CHAIN_OUTPUT,
            format!("-d {loopback_v4} -j RETURN"),
            format!("-d {LOOPBACK_V6} -j RETURN"),
        );
        for cidr in &cfg.outbound_ranges_exclude {
            let family = if cidr.is_v6() { Family::V6 } else { Family::V4 };
            self.add_for(
                family,
                Table::Nat,
                CHAIN_OUTPUT,
                format!("-d {cidr} -j RETURN"),
            );
        }
        for port in &cfg.outbound_ports_include {
            self.add(
                Table::Nat,
                CHAIN_OUTPUT,
                format!("-p tcp --dport {port} -j {CHAIN_REDIRECT}"),
            );
        }
        for family in [Family::V4, Family::V6] {
            let ranges = cfg.outbound_ranges_include.for_family(family == Family::V6);
            self.outbound_ranges(family, &ranges, &cfg.kube_virt_interfaces);
        }
        if tproxy {
            self.tproxy_marks(cfg, &loopback_v4);
        }
    }

    fn exclude_interfaces(&mut self, cfg: &CaptureConfig, tproxy: bool) {
        let tables: &[Table] = if tproxy {
            &[Table::Nat, Table::Mangle]
        } else {
            &[Table::Nat]
        };
        for table in tables {
            for iface in &cfg.exclude_interfaces {
                self.add(*table, "PREROUTING", format!("-i {iface} -j RETURN"));
                self.add(*table, "OUTPUT", format!("-o {iface} -j RETURN"));
            }
        }
    }

    fn inbound(&mut self, cfg: &CaptureConfig, tproxy: bool, loopback_v4: &str) {
        if cfg.inbound_ports == InboundPorts::None {
            return;
        }
        let table = if tproxy { Table::Mangle } else { Table::Nat };
        if tproxy {
            // Marked packets are routed to loopback (route table), where TPROXY hands them over.
            self.add(
                Table::Mangle,
                CHAIN_DIVERT,
                format!("-j MARK --set-mark {}", cfg.tproxy_mark),
            );
            self.add(Table::Mangle, CHAIN_DIVERT, "-j ACCEPT");
            let tproxy_target = format!(
                "-p tcp -j TPROXY --tproxy-mark {}/0xffffffff --on-port {}",
                cfg.tproxy_mark, cfg.inbound_capture_port
            );
            self.add_per_family(
                Table::Mangle,
                CHAIN_TPROXY,
                format!("! -d {loopback_v4} {tproxy_target}"),
                format!("! -d {LOOPBACK_V6} {tproxy_target}"),
            );
        }
        self.add(table, "PREROUTING", format!("-p tcp -j {CHAIN_INBOUND}"));
        let capture = |port: Option<u16>| -> Vec<String> {
            let dport = port.map(|p| format!(" --dport {p}")).unwrap_or_default();
            if tproxy {
                vec![
                    format!(
                        "-p tcp{dport} -m conntrack --ctstate RELATED,ESTABLISHED -j {CHAIN_DIVERT}"
                    ),
                    format!("-p tcp{dport} -j {CHAIN_TPROXY}"),
                ]
            } else {
                vec![format!("-p tcp{dport} -j {CHAIN_IN_REDIRECT}")]
            }
        };
        match &cfg.inbound_ports {
            InboundPorts::None => {}
            InboundPorts::All => {
                for port in &cfg.inbound_ports_exclude {
                    self.add(
                        table,
                        CHAIN_INBOUND,
                        format!("-p tcp --dport {port} -j RETURN"),
                    );
                }
                for spec in capture(None) {
                    self.add(table, CHAIN_INBOUND, spec);
                }
            }
            InboundPorts::Only(ports) => {
                for port in ports {
                    for spec in capture(Some(*port)) {
                        self.add(table, CHAIN_INBOUND, spec);
                    }
                }
            }
        }
    }

    /// Rules that keep the proxy's own traffic out of the capture (no loops), while still
    /// sending app → own-service-VIP traffic through the inbound listener.
    fn proxy_owner_rules(&mut self, cfg: &CaptureConfig, dns: bool, loopback_v4: &str) {
        let tunnel = cfg.inbound_tunnel_port;
        // With an explicit loopback destination captured, app → app on lo must not be skipped.
        let keep_lo_return = !cfg.outbound_ranges_include.has_loopback();
        for (owner_flag, id) in proxy_owners(cfg) {
            // DNS to a local resolver goes straight to the agent, not through the inbound listener;
            // Istio applies that port-53 exclusion to the UID rules only.
            let ports = if dns && owner_flag == "--uid-owner" {
                format!("-m multiport ! --dports 53,{tunnel}")
            } else {
                format!("! --dport {tunnel}")
            };
            let to_inbound = |lo: &str| {
                format!(
                    "-o lo ! -d {lo} -p tcp {ports} -m owner {owner_flag} {id} -j {CHAIN_IN_REDIRECT}"
                )
            };
            self.add_per_family(
                Table::Nat,
                CHAIN_OUTPUT,
                to_inbound(loopback_v4),
                to_inbound(LOOPBACK_V6),
            );
            if keep_lo_return {
                let dns_port = if dns { "-p tcp ! --dport 53 " } else { "" };
                self.add(
                    Table::Nat,
                    CHAIN_OUTPUT,
                    format!("-o lo {dns_port}-m owner ! {owner_flag} {id} -j RETURN"),
                );
            }
            self.add(
                Table::Nat,
                CHAIN_OUTPUT,
                format!("-m owner {owner_flag} {id} -j RETURN"),
            );
        }
    }

    fn owner_groups(&mut self, groups: &OwnerGroups) {
        match groups {
            OwnerGroups::AllExcept(excluded) => {
                for group in excluded {
                    self.add(
                        Table::Nat,
                        CHAIN_OUTPUT,
                        format!("-m owner --gid-owner {group} -j RETURN"),
                    );
                }
            }
            OwnerGroups::Only(included) if !included.is_empty() => {
                let none_of: Vec<String> = included
                    .iter()
                    .map(|g| format!("-m owner ! --gid-owner {g}"))
                    .collect();
                self.add(
                    Table::Nat,
                    CHAIN_OUTPUT,
                    format!("{} -j RETURN", none_of.join(" ")),
                );
            }
            OwnerGroups::Only(_) => {}
        }
    }

    fn dns(&mut self, cfg: &CaptureConfig) {
        self.add(Table::Raw, "OUTPUT", format!("-j {CHAIN_OUTPUT_DNS}"));
        let all = cfg.capture_all_dns;
        let servers = [
            (Family::V4, &cfg.dns_servers_v4, 32),
            (Family::V6, &cfg.dns_servers_v6, 128),
        ];
        for (family, list, _) in servers {
            if all || !list.is_empty() {
                self.add_for(
                    family,
                    Table::Nat,
                    CHAIN_OUTPUT,
                    format!("-j {CHAIN_OUTPUT_DNS}"),
                );
            }
        }
        for (proto, to_ports) in [("tcp", "--to-ports"), ("udp", "--to-port")] {
            let redirect = format!("-j REDIRECT {to_ports} {DNS_PROXY_PORT}");
            if all {
                self.add(
                    Table::Nat,
                    CHAIN_OUTPUT_DNS,
                    format!("-p {proto} --dport 53 {redirect}"),
                );
                continue;
            }
            for (family, list, bits) in servers {
                for server in list {
                    let spec = format!("-p {proto} --dport 53 -d {server}/{bits} {redirect}");
                    self.add_for(family, Table::Nat, CHAIN_OUTPUT_DNS, spec);
                }
            }
        }
        // Conntrack zones keep proxy ↔ resolver and app ↔ proxy UDP flows apart (zone 1 / 2).
        for (owner_flag, id) in proxy_owners(cfg) {
            self.add(
                Table::Raw,
                CHAIN_OUTPUT_DNS,
                format!("-p udp --dport 53 -m owner {owner_flag} {id} -j CT --zone 1"),
            );
            self.add(
                Table::Raw,
                CHAIN_OUTPUT_DNS,
                format!(
                    "-p udp --sport {DNS_PROXY_PORT} -m owner {owner_flag} {id} -j CT --zone 2"
                ),
            );
        }
        if all {
            self.add(Table::Raw, "PREROUTING", format!("-j {CHAIN_INBOUND}"));
            self.add(
                Table::Raw,
                CHAIN_OUTPUT_DNS,
                "-p udp --dport 53 -j CT --zone 2",
            );
            self.add(
                Table::Raw,
                CHAIN_INBOUND,
                "-p udp --sport 53 -j CT --zone 1",
            );
            return;
        }
        for (family, list, bits) in servers {
            if !list.is_empty() {
                self.add_for(
                    family,
                    Table::Raw,
                    "PREROUTING",
                    format!("-j {CHAIN_INBOUND}"),
                );
            }
            for server in list {
                let to = format!("-p udp --dport 53 -d {server}/{bits} -j CT --zone 2");
                let from = format!("-p udp --sport 53 -s {server}/{bits} -j CT --zone 1");
                self.add_for(family, Table::Raw, CHAIN_OUTPUT_DNS, to);
                self.add_for(family, Table::Raw, CHAIN_INBOUND, from);
            }
        }
    }

    fn outbound_ranges(&mut self, family: Family, ranges: &OutboundRanges, virt: &[String]) {
        match ranges {
            OutboundRanges::None => {}
            OutboundRanges::All => {
                self.add_for(
                    family,
                    Table::Nat,
                    CHAIN_OUTPUT,
                    format!("-j {CHAIN_REDIRECT}"),
                );
                for iface in virt {
                    let spec = format!("-i {iface} -j {CHAIN_REDIRECT}");
                    self.insert(Some(family), Table::Nat, "PREROUTING", 1, spec);
                }
            }
            OutboundRanges::Only(cidrs) => {
                for cidr in cidrs {
                    for iface in virt {
                        let spec = format!("-i {iface} -d {cidr} -j {CHAIN_REDIRECT}");
                        self.insert(Some(family), Table::Nat, "PREROUTING", 1, spec);
                    }
                    self.add_for(
                        family,
                        Table::Nat,
                        CHAIN_OUTPUT,
                        format!("-d {cidr} -j {CHAIN_REDIRECT}"),
                    );
                }
            }
        }
    }

    /// TPROXY bookkeeping: keep the mark on the connection, mark the proxy's own loopback
    /// traffic, and let marked or proxy-originated packets skip `ISTIO_INBOUND`.
    fn tproxy_marks(&mut self, cfg: &CaptureConfig, loopback_v4: &str) {
        let mark = cfg.tproxy_mark;
        let outbound_mark = cfg.outbound_mark();
        self.add(
            Table::Mangle,
            "PREROUTING",
            format!("-p tcp -m mark --mark {mark} -j CONNMARK --save-mark"),
        );
        self.add(
            Table::Mangle,
            "OUTPUT",
            format!("-p tcp -o lo -m mark --mark {mark} -j RETURN"),
        );
        for (owner_flag, id) in proxy_owners(cfg) {
            let spec = |lo: &str| {
                format!(
                    "! -d {lo} -p tcp -o lo -m owner {owner_flag} {id} -j MARK --set-mark {outbound_mark}"
                )
            };
            self.add_per_family(
                Table::Mangle,
                "OUTPUT",
                spec(loopback_v4),
                spec(LOOPBACK_V6),
            );
        }
        self.add(
            Table::Mangle,
            "OUTPUT",
            format!("-p tcp -m connmark --mark {mark} -j CONNMARK --restore-mark"),
        );
        self.insert(
            None,
            Table::Mangle,
            CHAIN_INBOUND,
            1,
            format!("-p tcp -m mark --mark {mark} -j RETURN"),
        );
        self.insert(
            Some(Family::V4),
            Table::Mangle,
            CHAIN_INBOUND,
            2,
            format!("-p tcp -s {PASSTHROUGH_V4} -i lo -j RETURN"),
        );
        self.insert(
            Some(Family::V6),
            Table::Mangle,
            CHAIN_INBOUND,
            2,
            format!("-p tcp -s {PASSTHROUGH_V6} -i lo -j RETURN"),
        );
        self.insert(
            None,
            Table::Mangle,
            CHAIN_INBOUND,
            3,
            format!("-p tcp -i lo -m mark ! --mark {outbound_mark} -j RETURN"),
        );
    }
}

/// The proxy's identities as `iptables -m owner` flags: every UID, then every GID.
fn proxy_owners(cfg: &CaptureConfig) -> impl Iterator<Item = (&'static str, u32)> + '_ {
    let uids = cfg.proxy_uids.iter().map(|id| ("--uid-owner", *id));
    uids.chain(cfg.proxy_gids.iter().map(|id| ("--gid-owner", *id)))
}
