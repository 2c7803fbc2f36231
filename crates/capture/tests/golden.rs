//! Istio's capture goldens: for every case in CASES.md, the same settings give the same rules,
//! line for line. A golden file is the command log of Istio's dry run: the state reads
//! (`iptables-save`, `ip6tables-save`), the IPv4 restore input, the IPv6 one when IPv6 is on,
//! and the final state reads.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;

use lateen_capture::config::{
    Cidr, InboundPorts, InterceptionMode, OutboundRanges, OwnerGroups, parse_ranges,
};
use lateen_capture::{CaptureConfig, Family, RuleSet};

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/istio/tools/istio-iptables/pkg/capture/testdata")
}

fn ranges(text: &str) -> OutboundRanges {
    parse_ranges("test", text).expect("test ranges parse")
}

fn cidrs(text: &str) -> Vec<Cidr> {
    match ranges(text) {
        OutboundRanges::Only(list) => list,
        _ => Vec::new(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// The settings of one golden, from CASES.md (base configuration plus the listed overrides).
fn case(name: &str) -> CaptureConfig {
    let mut c = CaptureConfig::default();
    let ipv6_base = |c: &mut CaptureConfig| {
        c.inbound_ports = InboundPorts::Only(vec![4000, 5000]);
        c.kube_virt_interfaces = strings(&["eth0", "eth1"]);
        c.outbound_ranges_exclude = cidrs("2001:db8::/32");
        c.outbound_ranges_include = ranges("2001:db8::/32");
        c.enable_ipv6 = true;
    };
    match name {
        "empty" => {}
        "ipv6-empty-inbound-ports" => c.enable_ipv6 = true,
        "ip-range" => {
            c.outbound_ranges_exclude = cidrs("1.1.0.0/16");
            c.outbound_ranges_include = ranges("9.9.0.0/16");
            c.redirect_dns = true;
            c.dns_servers_v4 = strings(&["127.0.0.53"]);
            c.proxy_gids = vec![1, 2];
            c.proxy_uids = vec![3, 4];
        }
        "tproxy" => {
            c.mode = InterceptionMode::Tproxy;
            c.inbound_ports = InboundPorts::All;
            c.outbound_ranges_exclude = cidrs("1.1.0.0/16");
            c.outbound_ranges_include = ranges("9.9.0.0/16");
            c.redirect_dns = true;
            c.dns_servers_v4 = strings(&["127.0.0.53"]);
            c.exclude_interfaces = strings(&["not-istio-nic"]);
            c.enable_ipv6 = true;
        }
        "ipv6-inbound-ports" => {
            c.inbound_ports = InboundPorts::Only(vec![4000, 5000]);
            c.enable_ipv6 = true;
        }
        "ipv6-virt-interfaces" => {
            c.inbound_ports = InboundPorts::Only(vec![4000, 5000]);
            c.kube_virt_interfaces = strings(&["eth0", "eth1"]);
            c.enable_ipv6 = true;
        }
        "ipv6-ipnets" => {
            ipv6_base(&mut c);
            c.inbound_ports_exclude = vec![6000, 7000];
        }
        "ipv6-uid-gid" => {
            ipv6_base(&mut c);
            c.inbound_ports_exclude = vec![6000, 7000];
            c.proxy_gids = vec![1, 2];
            c.proxy_uids = vec![3, 4];
        }
        "ipv6-outbound-ports" => {
            c.outbound_ports_include = vec![32000, 31000];
            c.enable_ipv6 = true;
        }
        "kube-virt-interfaces" => {
            c.kube_virt_interfaces = strings(&["eth1", "eth2"]);
            c.outbound_ranges_include = OutboundRanges::All;
        }
        "ipnets" => c.outbound_ranges_include = ranges("10.0.0.0/8"),
        "ipnets-with-kube-virt-interfaces" => {
            c.kube_virt_interfaces = strings(&["eth1", "eth2"]);
            c.outbound_ranges_include = ranges("10.0.0.0/8");
        }
        "inbound-ports-include" => c.inbound_ports = InboundPorts::Only(vec![32000, 31000]),
        "inbound-ports-wildcard" => c.inbound_ports = InboundPorts::All,
        "inbound-ports-tproxy" => {
            c.inbound_ports = InboundPorts::Only(vec![32000, 31000]);
            c.mode = InterceptionMode::Tproxy;
        }
        "inbound-ports-wildcard-tproxy" => {
            c.inbound_ports = InboundPorts::All;
            c.mode = InterceptionMode::Tproxy;
        }
        "dns-uid-gid" => {
            c.redirect_dns = true;
            c.dns_servers_v4 = strings(&["127.0.0.53"]);
            c.dns_servers_v6 = strings(&["::127.0.0.53"]);
            c.proxy_gids = vec![1, 2];
            c.proxy_uids = vec![3, 4];
            c.enable_ipv6 = true;
        }
        "ipv6-dns-uid-gid" => {
            c.enable_ipv6 = true;
            c.redirect_dns = true;
            c.proxy_gids = vec![1, 2];
            c.proxy_uids = vec![3, 4];
        }
        "outbound-owner-groups" => c.owner_groups = OwnerGroups::parse("java,202", ""),
        "outbound-owner-groups-exclude" => c.owner_groups = OwnerGroups::parse("*", "888,ftp"),
        "ipv6-dns-outbound-owner-groups" => {
            c.enable_ipv6 = true;
            c.redirect_dns = true;
            c.owner_groups = OwnerGroups::parse("java,202", "");
        }
        "ipv6-dns-outbound-owner-groups-exclude" => {
            c.enable_ipv6 = true;
            c.redirect_dns = true;
            c.owner_groups = OwnerGroups::parse("*", "888,ftp");
        }
        "outbound-ports-include" => c.outbound_ports_include = vec![32000, 31000],
        "loopback-outbound-iprange" => {
            c.outbound_ranges_include = ranges("127.1.2.3/32");
            c.redirect_dns = true;
            c.dns_servers_v4 = strings(&["127.0.0.53"]);
            c.proxy_gids = vec![1, 2];
            c.proxy_uids = vec![3, 4];
        }
        "basic-exclude-nic" => c.exclude_interfaces = strings(&["not-istio-nic"]),
        "drop-invalid" => c.drop_invalid = true,
        "host-ipv4-loopback-cidr" => {
            c.host_ipv4_loopback_cidr = Cidr::parse("test", "127.0.0.1/8").expect("cidr parses")
        }
        other => {
            panic!("golden {other} is not described in this test; add its settings from CASES.md")
        }
    }
    c
}

/// Our rules in the golden's command-log shape.
fn render(cfg: &CaptureConfig) -> String {
    let rules = RuleSet::build(cfg);
    let mut out = String::from("iptables-save\nip6tables-save\n");
    out.push_str(&rules.restore_text(Family::V4));
    if cfg.enable_ipv6 {
        out.push_str(&rules.restore_text(Family::V6));
    }
    out.push_str("iptables-save\n");
    if cfg.enable_ipv6 {
        out.push_str("ip6tables-save\n");
    }
    out
}

#[test]
fn every_golden_case_matches() {
    let dir = golden_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| {
            entry
                .file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".golden"))
                .map(str::to_owned)
        })
        .collect();
    names.sort();
    assert_eq!(names.len(), 27, "CASES.md lists 27 goldens");
    let mut failures = Vec::new();
    for name in &names {
        let path = dir.join(format!("{name}.golden"));
        let expected = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let actual = render(&case(name));
        if actual.trim_end() != expected.trim_end() {
            failures.push(format!(
                "=== {name}\n--- expected\n{expected}\n--- actual\n{actual}"
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} goldens differ:\n{}",
        failures.len(),
        names.len(),
        failures.join("\n")
    );
}

#[test]
fn sidecar_default_matches_cases_md() {
    // The rules CASES.md derives for the injected init container's flags.
    let c = CaptureConfig {
        inbound_ports: InboundPorts::All,
        inbound_ports_exclude: vec![15090, 15021, 15020],
        outbound_ranges_include: OutboundRanges::All,
        ..CaptureConfig::default()
    };
    let cases =
        std::fs::read_to_string(golden_dir().join("../CASES.md")).expect("CASES.md readable");
    let block = cases
        .split("```")
        .nth(1)
        .expect("CASES.md has the sidecar default block")
        .trim_start_matches('\n');
    assert_eq!(RuleSet::build(&c).restore_text(Family::V4), block);
}
