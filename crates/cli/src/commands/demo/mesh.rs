//! The demo mesh's layout: Bookinfo-shaped workloads, each with its own loopback address,
//! and the Istio YAML lateend reads for them (ServiceEntries selecting the workloads by
//! label, DestinationRules with subsets, Sidecars giving each proxy explicit listeners, and
//! the reviews VirtualService the user edits).

use std::fmt::Write;

/// One workload: an app process and its sidecar.
pub struct Workload {
    pub service: &'static str,
    pub version: &'static str,
    /// Index into the loopback addresses: the workload is 127.0.10.N, its egress 127.0.20.N.
    pub index: u8,
    /// Services this workload's app calls for every request (path on the service).
    pub calls: &'static [(&'static str, &'static str)],
}

pub const SERVICE_PORT: u16 = 9080;

pub const WORKLOADS: &[Workload] = &[
    Workload { service: "productpage", version: "v1", index: 1, calls: &[("details", "/details"), ("reviews", "/reviews")] },
    Workload { service: "details", version: "v1", index: 2, calls: &[] },
    Workload { service: "reviews", version: "v1", index: 3, calls: &[] },
    Workload { service: "reviews", version: "v2", index: 4, calls: &[("ratings", "/ratings")] },
    Workload { service: "reviews", version: "v3", index: 5, calls: &[("ratings", "/ratings")] },
    Workload { service: "ratings", version: "v1", index: 6, calls: &[] },
];

impl Workload {
    pub fn name(&self) -> String {
        format!("{}-{}", self.service, self.version)
    }

    /// The workload's own address: its sidecar's inbound listener, admin and metrics.
    pub fn address(&self) -> String {
        format!("127.0.10.{}", self.index)
    }

    /// Where the sidecar's outbound listener takes the app's calls.
    pub fn egress_address(&self) -> String {
        format!("127.0.20.{}", self.index)
    }

    /// Where the app itself listens (the Sidecar's `defaultEndpoint`).
    pub fn app_port(&self) -> u16 {
        19080 + self.index as u16
    }

    pub fn host(service: &str) -> String {
        format!("{service}.default.svc.cluster.local")
    }
}

/// `(file name, contents)` of the demo's configuration folder.
pub fn config_files() -> Vec<(&'static str, String)> {
    let mut services = String::from("# The Bookinfo services. Endpoints are the sidecars that register themselves when\n# they connect, selected by their labels (as WorkloadGroup auto-registration does).\n");
    for service in ["productpage", "details", "reviews", "ratings"] {
        let _ = write!(
            services,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {service}\n  namespace: default\nspec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - {{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}\n  workloadSelector:\n    labels: {{ app: {service} }}\n",
            host = Workload::host(service)
        );
    }
    let mut sidecars = String::from("# One Sidecar per workload: without iptables capture (interception NONE) each proxy gets\n# an inbound listener on its own address and an outbound listener for its app's calls.\n");
    for workload in WORKLOADS {
        let _ = write!(
            sidecars,
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  workloadSelector:\n    labels: {{ app: {service}, version: {version} }}\n  ingress:\n  - port: {{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}\n    bind: {address}\n    defaultEndpoint: 127.0.0.1:{app_port}\n  egress:\n  - port: {{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}\n    bind: {egress}\n    hosts: [\"./*\"]\n",
            name = workload.name(),
            service = workload.service,
            version = workload.version,
            address = workload.address(),
            egress = workload.egress_address(),
            app_port = workload.app_port(),
        );
    }
    let mut rules = String::from("# Subsets by version, as in Bookinfo's destination-rule-all.yaml.\n");
    for (service, versions) in [("productpage", &["v1"][..]), ("details", &["v1"]), ("reviews", &["v1", "v2", "v3"]), ("ratings", &["v1"])] {
        let subsets: String = versions.iter().map(|v| format!("  - name: {v}\n    labels: {{ version: {v} }}\n")).collect();
        let _ = write!(
            rules,
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {service}\n  namespace: default\nspec:\n  host: {service}\n  subsets:\n{subsets}"
        );
    }
    vec![
        ("services.yaml", services),
        ("sidecars.yaml", sidecars),
        ("destination-rules.yaml", rules),
        ("virtual-service-reviews.yaml", reviews_virtual_service(&[("v1", 100)])),
    ]
}

/// The reviews VirtualService with the given weights per subset; `end-user: jason` always
/// goes to v2, as in Bookinfo's reviews-test-v2 rule.
pub fn reviews_virtual_service(weights: &[(&str, u32)]) -> String {
    let routes: String = weights
        .iter()
        .filter(|(_, weight)| *weight > 0)
        .map(|(subset, weight)| format!("    - destination: {{ host: reviews, subset: {subset} }}\n      weight: {weight}\n"))
        .collect();
    format!(
        "# Edit the weights to move traffic between versions; lateend applies the change live.\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  hosts: [reviews]\n  http:\n  - match:\n    - headers:\n        end-user: {{ exact: jason }}\n    route:\n    - destination: {{ host: reviews, subset: v2 }}\n  - route:\n{routes}"
    )
}
