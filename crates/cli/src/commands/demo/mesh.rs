//! The demo mesh's layout: Bookinfo-shaped workloads and where each one lives in either mode.
//! Loopback: the workload is 127.0.10.N (sidecar inbound, admin, metrics), its app's calls
//! go to the sidecar's outbound listener on 127.0.20.N, the app itself on 127.0.0.1:19080+N.
//! Network namespaces: the workload is the pod `lateen-demo-NAME` with address
//! 198.18.10.(10+N) on a bridge the host reaches through 198.18.10.1, the app on 9080
//! behind the capture rules, and each service has a VIP in 198.19.10.0/24. Every address is
//! in 198.18.0.0/15 (benchmarking space), so nothing leaves the machine.

use super::mode::Mode;

/// One workload: an app process and its sidecar.
pub struct Workload {
    pub service: &'static str,
    pub version: &'static str,
    /// Index into the addresses (127.0.10.N, 127.0.20.N, 198.18.10.(10+N)).
    pub index: u8,
    /// Services this workload's app calls for every request (path on the service).
    pub calls: &'static [(&'static str, &'static str)],
}

pub const SERVICE_PORT: u16 = 9080;

pub const WORKLOADS: &[Workload] = &[
    Workload {
        service: "productpage",
        version: "v1",
        index: 1,
        calls: &[("details", "/details"), ("reviews", "/reviews")],
    },
    Workload {
        service: "details",
        version: "v1",
        index: 2,
        calls: &[],
    },
    Workload {
        service: "reviews",
        version: "v1",
        index: 3,
        calls: &[],
    },
    Workload {
        service: "reviews",
        version: "v2",
        index: 4,
        calls: &[("ratings", "/ratings")],
    },
    Workload {
        service: "reviews",
        version: "v3",
        index: 5,
        calls: &[("ratings", "/ratings")],
    },
    Workload {
        service: "ratings",
        version: "v1",
        index: 6,
        calls: &[],
    },
];

/// The services and, in the namespace mode, their ServiceEntry addresses (VIPs): the app
/// resolves a service name to its VIP and the capture rules hand the call to the sidecar.
pub const SERVICES: &[(&str, &str)] = &[
    ("productpage", "198.19.10.1"),
    ("details", "198.19.10.2"),
    ("reviews", "198.19.10.3"),
    ("ratings", "198.19.10.4"),
];

/// The VIP range, routed to each pod's interface so a call's SYN reaches the capture rules.
pub const VIP_RANGE: &str = "198.19.10.0/24";

/// The host's end of the demo network: lateend's xDS listens here in the namespace mode.
pub const HOST_ADDRESS: &str = "198.18.10.1";
pub const POD_PREFIX_LEN: u8 = 24;

/// Where the sidecars reach lateend's ADS server.
pub fn xds_address(mode: Mode) -> String {
    match mode {
        Mode::Loopback => "127.0.0.1:15010".to_string(),
        Mode::Netns => format!("{HOST_ADDRESS}:15010"),
    }
}

impl Workload {
    pub fn name(&self) -> String {
        format!("{}-{}", self.service, self.version)
    }

    /// The workload's address as the host reaches it: its sidecar's inbound listener,
    /// admin, health and metrics.
    pub fn address(&self, mode: Mode) -> String {
        match mode {
            Mode::Loopback => format!("127.0.10.{}", self.index),
            Mode::Netns => format!("198.18.10.{}", 10 + self.index),
        }
    }

    /// Loopback mode: where the sidecar's outbound listener takes the app's calls.
    pub fn egress_address(&self) -> String {
        format!("127.0.20.{}", self.index)
    }

    /// Where the app itself listens: loopback mode's Sidecar `defaultEndpoint`; in a pod the
    /// service port, which the capture rules put behind the sidecar.
    pub fn app_port(&self, mode: Mode) -> u16 {
        match mode {
            Mode::Loopback => 19080 + self.index as u16,
            Mode::Netns => SERVICE_PORT,
        }
    }

    /// The workload's network namespace (the demo owns every name with this prefix).
    pub fn namespace(&self) -> String {
        format!("{}{}", super::netns::PREFIX, self.name())
    }

    pub fn host(service: &str) -> String {
        format!("{service}.default.svc.cluster.local")
    }
}
