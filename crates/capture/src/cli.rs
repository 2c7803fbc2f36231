//! Command-line flags with istio-iptables' names and meanings, and the two entry points the
//! `lateen-proxy capture` / `lateen-proxy capture-cleanup` subcommands call.

use std::ffi::OsString;

use clap::{Args, Parser};

use crate::apply;
use crate::config::{self, CaptureConfig, Cidr, InterceptionMode, OwnerGroups};
use crate::error::CaptureError;
use crate::rules::{Family, RuleSet};
use crate::runner::CommandRunner;

/// Where DNS servers come from when DNS capture is on and none are given.
const RESOLV_CONF: &str = "/etc/resolv.conf";

/// The flags the injected init container passes (Istio's istio-init defaults).
#[rustfmt::skip]
pub const SIDECAR_DEFAULT_FLAGS: [&str; 16] = [
    "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
    "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020",
];

/// Flags of `lateen-proxy capture` (istio-iptables' flags; the injected init container runs
/// `-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020`).
#[derive(Debug, Clone, Args)]
pub struct CaptureArgs {
    /// Port the outbound traffic is redirected to (the proxy's outbound listener).
    #[arg(
        short = 'p',
        long = "envoy-port",
        visible_alias = "proxy-port",
        env = "ENVOY_PORT",
        default_value_t = 15001
    )]
    pub proxy_port: u16,

    /// Port the inbound traffic is redirected to.
    #[arg(
        short = 'z',
        long,
        env = "INBOUND_CAPTURE_PORT",
        default_value_t = 15006
    )]
    pub inbound_capture_port: u16,

    /// Inbound tunnel (HBONE) port, never captured.
    #[arg(
        short = 'e',
        long,
        env = "INBOUND_TUNNEL_PORT",
        default_value_t = 15008
    )]
    pub inbound_tunnel_port: u16,

    /// Comma-separated UIDs whose traffic is not redirected (the proxy's user).
    #[arg(short = 'u', long, default_value = "1337")]
    pub proxy_uid: String,

    /// Comma-separated GIDs whose traffic is not redirected (default: same as --proxy-uid).
    #[arg(short = 'g', long)]
    pub proxy_gid: Option<String>,

    /// Inbound interception mode: REDIRECT or TPROXY.
    #[arg(
        short = 'm',
        long,
        env = "INBOUND_INTERCEPTION_MODE",
        default_value = "REDIRECT"
    )]
    pub istio_inbound_interception_mode: String,

    /// Packet mark used in TPROXY mode.
    #[arg(short = 't', long, default_value_t = 1337)]
    pub istio_inbound_tproxy_mark: u32,

    /// Route table used in TPROXY mode.
    #[arg(short = 'r', long, default_value_t = 133)]
    pub istio_inbound_tproxy_route_table: u32,

    /// Inbound ports to capture: comma-separated, "*" for all, empty for none.
    #[arg(short = 'b', long, default_value = "")]
    pub istio_inbound_ports: String,

    /// Inbound ports never captured (only with --istio-inbound-ports '*').
    #[arg(short = 'd', long, default_value = "")]
    pub istio_local_exclude_ports: String,

    /// Interfaces whose traffic is never captured.
    #[arg(short = 'c', long, default_value = "")]
    pub istio_exclude_interfaces: String,

    /// Outbound destination CIDRs to capture: comma-separated, "*" for all, empty for none.
    #[arg(short = 'i', long, default_value = "")]
    pub istio_service_cidr: String,

    /// Outbound destination CIDRs never captured.
    #[arg(short = 'x', long, default_value = "")]
    pub istio_service_exclude_cidr: String,

    /// Outbound ports always captured.
    #[arg(
        short = 'q',
        long,
        visible_alias = "outbound-ports",
        default_value = ""
    )]
    pub istio_outbound_ports: String,

    /// Outbound ports never captured.
    #[arg(short = 'o', long, default_value = "")]
    pub istio_local_outbound_ports_exclude: String,

    /// Virtual interfaces (VMs) whose inbound traffic is treated as outbound.
    #[arg(short = 'k', long, default_value = "")]
    pub kube_virt_interfaces: String,

    /// Print the rules and change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Capture DNS (port 53) to the agent's DNS proxy on 15053.
    #[arg(long, env = "ISTIO_META_DNS_CAPTURE")]
    pub redirect_dns: bool,

    /// With --redirect-dns: capture DNS to every server, not only the configured ones.
    #[arg(long)]
    pub capture_all_dns: bool,

    /// With --redirect-dns: DNS servers to capture (default: the nameservers in /etc/resolv.conf).
    #[arg(long)]
    pub dns_servers: Option<String>,

    /// Drop packets conntrack considers INVALID instead of resetting the connection.
    #[arg(long, env = "INVALID_DROP")]
    pub drop_invalid: bool,

    /// Also write IPv6 rules (ip6tables). Without it, IPv6 rules are still written when the
    /// first global address of this network namespace is IPv6 (an IPv6 pod), as Istio does.
    #[arg(long, env = "ISTIO_AGENT_DUAL_STACK", visible_alias = "enable-ipv6")]
    pub dual_stack: bool,

    /// Groups whose outbound traffic is captured: "*" or comma-separated names/GIDs.
    #[arg(long, env = "ISTIO_OUTBOUND_OWNER_GROUPS", default_value = "*")]
    pub outbound_owner_groups: String,

    /// Groups whose outbound traffic is not captured (only with --outbound-owner-groups '*').
    #[arg(long, env = "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE", default_value = "")]
    pub outbound_owner_groups_exclude: String,

    /// Loopback range of the app's own loopback traffic.
    #[arg(
        long,
        env = "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR",
        default_value = "127.0.0.1/32"
    )]
    pub outbound_ipv4_loopback_cidr: String,
}

/// Flags of `lateen-proxy capture-cleanup`: the same settings as `capture` (like
/// istio-clean-iptables), so rules that depend on them (interface exclusions, TPROXY routes)
/// are found; chains and jumps into them are removed whatever the settings.
#[derive(Debug, Clone, Args)]
pub struct CleanupArgs {
    #[command(flatten)]
    pub settings: CaptureArgs,
}

/// The capture flags as a command of their own.
#[derive(Parser)]
#[command(name = "capture", args_override_self = true)]
struct StandaloneCapture {
    #[command(flatten)]
    args: CaptureArgs,
}

/// Parses capture flags alone (`argv[0]` is the program name). A repeated flag overrides the
/// earlier one, as with istio-iptables.
pub fn parse_flags<I, T>(argv: I) -> Result<CaptureArgs, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    StandaloneCapture::try_parse_from(argv).map(|cli| cli.args)
}

impl CaptureArgs {
    /// Checks every flag and builds the typed settings; errors name the flag.
    pub fn to_config(&self) -> Result<CaptureConfig, CaptureError> {
        let proxy_uids = config::parse_ids("--proxy-uid", &self.proxy_uid)?;
        let proxy_gids = match &self.proxy_gid {
            Some(gids) => config::parse_ids("--proxy-gid", gids)?,
            None => proxy_uids.clone(),
        };
        let ranges_exclude = self.istio_service_exclude_cidr.trim();
        if ranges_exclude == "*" {
            return Err(CaptureError::invalid(
                "--istio-service-exclude-cidr",
                ranges_exclude,
                "\"*\" is not allowed",
            ));
        }
        let mut cfg = CaptureConfig {
            proxy_port: self.proxy_port,
            inbound_capture_port: self.inbound_capture_port,
            inbound_tunnel_port: self.inbound_tunnel_port,
            proxy_uids,
            proxy_gids,
            mode: InterceptionMode::parse(
                "--istio-inbound-interception-mode",
                &self.istio_inbound_interception_mode,
            )?,
            tproxy_mark: self.istio_inbound_tproxy_mark,
            tproxy_route_table: self.istio_inbound_tproxy_route_table,
            inbound_ports: config::parse_inbound_ports(
                "--istio-inbound-ports",
                &self.istio_inbound_ports,
            )?,
            inbound_ports_exclude: config::parse_ports(
                "--istio-local-exclude-ports",
                &self.istio_local_exclude_ports,
            )?,
            outbound_ports_include: config::parse_ports(
                "--istio-outbound-ports",
                &self.istio_outbound_ports,
            )?,
            outbound_ports_exclude: config::parse_ports(
                "--istio-local-outbound-ports-exclude",
                &self.istio_local_outbound_ports_exclude,
            )?,
            outbound_ranges_include: config::parse_ranges(
                "--istio-service-cidr",
                &self.istio_service_cidr,
            )?,
            outbound_ranges_exclude: config::parse_cidrs(
                "--istio-service-exclude-cidr",
                ranges_exclude,
            )?,
            exclude_interfaces: config::parse_interfaces(
                "--istio-exclude-interfaces",
                &self.istio_exclude_interfaces,
            )?,
            kube_virt_interfaces: config::parse_interfaces(
                "--kube-virt-interfaces",
                &self.kube_virt_interfaces,
            )?,
            owner_groups: OwnerGroups::parse(
                &self.outbound_owner_groups,
                &self.outbound_owner_groups_exclude,
            ),
            host_ipv4_loopback_cidr: Cidr::parse(
                "--outbound-ipv4-loopback-cidr",
                &self.outbound_ipv4_loopback_cidr,
            )?,
            redirect_dns: self.redirect_dns,
            capture_all_dns: self.capture_all_dns,
            dns_servers_v4: Vec::new(),
            dns_servers_v6: Vec::new(),
            drop_invalid: self.drop_invalid,
            enable_ipv6: self.dual_stack,
        };
        if cfg.host_ipv4_loopback_cidr.is_v6() {
            return Err(CaptureError::invalid(
                "--outbound-ipv4-loopback-cidr",
                &self.outbound_ipv4_loopback_cidr,
                "must be an IPv4 range",
            ));
        }
        if cfg.redirect_dns && !cfg.capture_all_dns {
            let (v4, v6) = match &self.dns_servers {
                Some(list) => config::split_dns_servers("--dns-servers", config::split_list(list))?,
                None => resolv_conf_servers()?,
            };
            cfg.dns_servers_v4 = v4;
            cfg.dns_servers_v6 = v6;
        }
        Ok(cfg)
    }
}

/// The nameservers of /etc/resolv.conf, split by family.
fn resolv_conf_servers() -> Result<(Vec<String>, Vec<String>), CaptureError> {
    let text = std::fs::read_to_string(RESOLV_CONF).map_err(|source| CaptureError::Read {
        path: RESOLV_CONF.to_owned(),
        source,
    })?;
    let servers = text.lines().filter_map(|line| {
        let mut words = line.split_whitespace();
        (words.next() == Some("nameserver"))
            .then(|| words.next())
            .flatten()
    });
    config::split_dns_servers(RESOLV_CONF, servers)
}

/// The settings for this network namespace: the flags, plus IPv6 when the pod is IPv6.
fn host_config(args: &CaptureArgs) -> Result<CaptureConfig, CaptureError> {
    let mut cfg = args.to_config()?;
    if !cfg.enable_ipv6 {
        // Reading addresses changes nothing, so dry runs see the same answer.
        let addresses =
            CommandRunner::direct().run("ip", &["-o", "addr", "show", "scope", "global"], None);
        cfg.enable_ipv6 = addresses.is_ok_and(|text| first_global_is_ipv6(&text));
    }
    Ok(cfg)
}

/// True when the first global address in `ip -o addr` output is IPv6.
fn first_global_is_ipv6(ip_output: &str) -> bool {
    ip_output
        .split_whitespace()
        .find(|word| *word == "inet" || *word == "inet6")
        .is_some_and(|family| family == "inet6")
}

/// The dry-run text: each family's `iptables-restore` input under a comment line.
pub fn dry_run_text(cfg: &CaptureConfig) -> String {
    let rules = RuleSet::build(cfg);
    apply::families(cfg)
        .into_iter()
        .map(|family| {
            let tool = if family == Family::V4 {
                "iptables-restore"
            } else {
                "ip6tables-restore"
            };
            format!(
                "# {} rules ({tool} --noflush input)\n{}",
                family.label(),
                rules.restore_text(family)
            )
        })
        .collect()
}

/// `lateen-proxy capture`: apply the capture rules (or print them with --dry-run).
pub fn run(args: CaptureArgs) -> Result<(), CaptureError> {
    let cfg = host_config(&args)?;
    if args.dry_run {
        print!("{}", dry_run_text(&cfg));
        return Ok(());
    }
    apply::apply(&cfg, &CommandRunner::direct())?;
    println!("capture rules applied ({})", family_labels(&cfg));
    Ok(())
}

fn family_labels(cfg: &CaptureConfig) -> String {
    let labels: Vec<&str> = apply::families(cfg)
        .into_iter()
        .map(Family::label)
        .collect();
    labels.join(" and ")
}

/// `lateen-proxy capture-cleanup`: remove what `capture` added (with --dry-run: say what would
/// be removed and change nothing).
pub fn run_cleanup(args: CleanupArgs) -> Result<(), CaptureError> {
    let cfg = host_config(&args.settings)?;
    if args.settings.dry_run {
        println!(
            "# would remove chains {} (in tables mangle, nat, raw) and every rule jumping to them, \
             and these rules if present:",
            crate::rules::OUR_CHAINS.join(", ")
        );
        let rules = RuleSet::build(&cfg);
        for family in apply::families(&cfg) {
            for rule in rules.rules(family).filter(|r| r.in_builtin_chain()) {
                println!(
                    "{} -t {} -D {} {}",
                    family.label(),
                    rule.table.name(),
                    rule.chain,
                    rule.spec
                );
            }
        }
        return Ok(());
    }
    apply::cleanup(&cfg, &CommandRunner::direct())?;
    println!("capture rules removed ({})", family_labels(&cfg));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(argv: &[&str]) -> CaptureArgs {
        parse_flags(std::iter::once("capture").chain(argv.iter().copied())).unwrap()
    }

    #[test]
    fn sidecar_flags_parse() {
        let args = parse(&SIDECAR_DEFAULT_FLAGS);
        let cfg = args.to_config().unwrap();
        assert_eq!(cfg.proxy_gids, vec![1337]);
        assert_eq!(cfg.inbound_ports_exclude, vec![15090, 15021, 15020]);
        assert_eq!(cfg.outbound_ranges_include, config::OutboundRanges::All);
    }

    #[test]
    fn ipv6_pod_is_recognised() {
        let v6 = "2: eth0    inet6 2001:db8::5/64 scope global \\       valid_lft forever\n";
        let dual = "2: eth0    inet 198.18.0.1/15 scope global eth0\n2: eth0    inet6 2001:db8::5/64 scope global\n";
        assert!(first_global_is_ipv6(v6));
        assert!(!first_global_is_ipv6(dual));
        assert!(!first_global_is_ipv6(""));
    }

    #[test]
    fn repeated_flags_override() {
        let cfg = parse(&["-m", "REDIRECT", "-m", "TPROXY"])
            .to_config()
            .unwrap();
        assert_eq!(cfg.mode, InterceptionMode::Tproxy);
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = parse(&["-b", "80,http"]).to_config().unwrap_err();
        assert!(err.to_string().contains("--istio-inbound-ports"), "{err}");
        let err = parse(&["-m", "BOGUS"]).to_config().unwrap_err();
        assert!(
            err.to_string()
                .contains("--istio-inbound-interception-mode"),
            "{err}"
        );
        let err = parse(&["-x", "*"]).to_config().unwrap_err();
        assert!(
            err.to_string().contains("--istio-service-exclude-cidr"),
            "{err}"
        );
    }

    #[test]
    fn dns_servers_flag_overrides_resolv_conf() {
        let cfg = parse(&[
            "--redirect-dns",
            "--dns-servers",
            "198.18.0.53,2001:db8::53",
        ])
        .to_config()
        .unwrap();
        assert_eq!(cfg.dns_servers_v4, vec!["198.18.0.53"]);
        assert_eq!(cfg.dns_servers_v6, vec!["2001:db8::53"]);
    }
}
