//! The namespace mode's network, built as a kubelet and CNI would: a bridge in its own
//! namespace (`lateen-demo-hub`, so the host's bridge netfilter and FORWARD policy never see
//! pod-to-pod traffic), a veth from the host (`lateen-demo0`, 198.18.10.1) to the bridge so
//! lateend and the user reach the pods, and per workload a namespace with a veth on the
//! bridge, its pod address, a route for the service VIPs only (no default route: pods reach
//! nothing outside the demo), a hosts file naming the services, and Istio's capture rules
//! applied by `lateen-proxy capture`. No host iptables rule is added. Each thing is recorded
//! (`state.rs`) before it is made.

use anyhow::Context;
use std::path::Path;

use super::mesh::{HOST_ADDRESS, POD_PREFIX_LEN, SERVICES, VIP_RANGE, Workload};
use super::netns;
use super::state::{Item, Record};

pub const HUB: &str = "lateen-demo-hub";
pub const HOST_LINK: &str = "lateen-demo0";
const BRIDGE: &str = "br0";

/// istio-iptables' flags as the injected init container passes them, plus the admin port,
/// so the host reaches each sidecar's admin, health and metrics without capture.
const CAPTURE_FLAGS: &[&str] = &[
    "-p",
    "15001",
    "-z",
    "15006",
    "-u",
    "1337",
    "-g",
    "1337",
    "-m",
    "REDIRECT",
    "-i",
    "*",
    "-b",
    "*",
    "-d",
    "15090,15021,15020,15000",
];

/// Creates the hub namespace with its bridge and the host's link to it.
pub fn create_hub(record: &mut Record) -> anyhow::Result<()> {
    record.add(Item::Netns(HUB.to_string()))?;
    netns::ip(&["netns", "add", HUB])?;
    netns::ip(&["-n", HUB, "link", "add", BRIDGE, "type", "bridge"])?;
    netns::ip(&["-n", HUB, "link", "set", BRIDGE, "up"])?;
    record.add(Item::Link(HOST_LINK.to_string()))?;
    netns::ip(&[
        "link", "add", HOST_LINK, "type", "veth", "peer", "name", "uplink", "netns", HUB,
    ])?;
    netns::ip(&["-n", HUB, "link", "set", "uplink", "master", BRIDGE, "up"])?;
    netns::ip(&[
        "addr",
        "add",
        &format!("{HOST_ADDRESS}/{POD_PREFIX_LEN}"),
        "dev",
        HOST_LINK,
    ])?;
    netns::ip(&["link", "set", HOST_LINK, "up"])
}

/// Creates `workload`'s pod: namespace, veth to the bridge, address, VIP route, hosts file,
/// then the capture rules (with `proxy`, as root, like an init container).
pub fn create_pod(record: &mut Record, workload: &Workload, proxy: &Path) -> anyhow::Result<()> {
    let ns = workload.namespace();
    record.add(Item::Netns(ns.clone()))?;
    netns::ip(&["netns", "add", &ns])?;
    let hub_side = format!("pod{}", workload.index);
    netns::ip(&[
        "link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &hub_side, "netns",
        HUB,
    ])?;
    netns::ip(&["-n", HUB, "link", "set", &hub_side, "master", BRIDGE, "up"])?;
    netns::ip(&["-n", &ns, "link", "set", "lo", "up"])?;
    let address = format!(
        "{}/{POD_PREFIX_LEN}",
        workload.address(super::mode::Mode::Netns)
    );
    netns::ip(&["-n", &ns, "addr", "add", &address, "dev", "eth0"])?;
    netns::ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    // The VIPs must be routable for a call's SYN to reach the OUTPUT chain's capture rules.
    netns::ip(&["-n", &ns, "route", "add", VIP_RANGE, "dev", "eth0"])?;
    write_hosts(&ns)?;
    let proxy = proxy.to_string_lossy();
    let mut capture = vec![proxy.as_ref(), "capture"];
    capture.extend_from_slice(CAPTURE_FLAGS);
    netns::exec(&ns, &capture).with_context(|| format!("applying the capture rules in {ns}"))
}

/// /etc/netns/NS/hosts: the pod's view of /etc/hosts, with every service's names (short,
/// namespaced, full) on its VIP, as cluster DNS would answer.
fn write_hosts(ns: &str) -> anyhow::Result<()> {
    let dir = netns::etc_dir(ns);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut hosts = String::from("127.0.0.1 localhost\n::1 localhost\n");
    for (service, vip) in SERVICES {
        hosts.push_str(&format!(
            "{vip} {service} {service}.default {service}.default.svc {}\n",
            Workload::host(service)
        ));
    }
    let path = dir.join("hosts");
    std::fs::write(&path, hosts).with_context(|| format!("writing {}", path.display()))
}
