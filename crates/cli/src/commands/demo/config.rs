//! The Istio YAML lateend reads for the demo, written to DIR/config: ServiceEntries selecting
//! the workloads by label, one WorkloadGroup per app admitting its sidecars (they name it in
//! `AUTO_REGISTER_GROUP`, so lateend registers them as endpoints, as istiod's
//! auto-registration), DestinationRules with subsets, the reviews VirtualService the user
//! edits, and in loopback mode one Sidecar per workload giving its proxy explicit listeners.
//! With capture (namespace mode) the ServiceEntries carry VIPs and no Sidecar is needed.
//! The user's edits are kept across runs; the files that depend on the mode are rewritten
//! when the mode changes (DIR/config/.mode remembers the last one).

use anyhow::Context;
use std::fmt::Write;
use std::path::Path;

use super::mesh::{SERVICE_PORT, SERVICES, WORKLOADS, Workload};
use super::mode::Mode;

/// Files whose contents depend on the mode (addresses, explicit listeners).
const MODE_FILES: [&str; 2] = ["services.yaml", "sidecars.yaml"];
const MODE_MARKER: &str = ".mode";

/// Writes the configuration folder: missing files, every file with `reset`, and the
/// mode-dependent ones when the mode differs from the previous run's.
pub fn write(config_dir: &Path, reset: bool, mode: Mode) -> anyhow::Result<()> {
    std::fs::create_dir_all(config_dir)
        .with_context(|| format!("creating {}", config_dir.display()))?;
    let marker = config_dir.join(MODE_MARKER);
    // A folder from before the marker existed was written for loopback, the only mode then.
    let previous =
        std::fs::read_to_string(&marker).unwrap_or_else(|_| Mode::Loopback.name().to_string());
    let mode_changed = previous.trim() != mode.name();
    if mode_changed && config_dir.join("services.yaml").exists() && !reset {
        let what = match mode {
            Mode::Netns => {
                "rewriting services.yaml (service VIPs) and removing sidecars.yaml (explicit listeners)"
            }
            Mode::Loopback => "rewriting services.yaml and sidecars.yaml (explicit listeners)",
        };
        println!(
            "the demo runs in {} mode now: {what} in {}",
            mode.name(),
            config_dir.display()
        );
    }
    for (name, text) in files(mode) {
        let path = config_dir.join(name);
        let rewrite = reset || !path.exists() || (mode_changed && MODE_FILES.contains(&name));
        if rewrite {
            std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if mode == Mode::Netns {
        // Sidecars binding loopback addresses would fail inside the pods.
        let sidecars = config_dir.join("sidecars.yaml");
        if sidecars.exists() {
            std::fs::remove_file(&sidecars)
                .with_context(|| format!("removing {}", sidecars.display()))?;
        }
    }
    std::fs::write(&marker, mode.name()).with_context(|| format!("writing {}", marker.display()))
}

/// `(file name, contents)` of the demo's configuration folder in `mode`.
pub fn files(mode: Mode) -> Vec<(&'static str, String)> {
    let mut files = vec![("services.yaml", services(mode))];
    if mode == Mode::Loopback {
        files.push(("sidecars.yaml", sidecars()));
    }
    files.push(("workload-groups.yaml", workload_groups()));
    files.push(("destination-rules.yaml", destination_rules()));
    files.push((
        "virtual-service-reviews.yaml",
        reviews_virtual_service(&[("v1", 100)]),
    ));
    files
}

fn services(mode: Mode) -> String {
    let mut services = String::from(
        "# The Bookinfo services. Endpoints are the sidecars their app's WorkloadGroup admits\n# (workload-groups.yaml), selected by their labels.\n",
    );
    if mode == Mode::Netns {
        services.push_str("# Each service has an address (VIP); the pods resolve its names to it (/etc/netns/<pod>/hosts)\n# and the capture rules hand the app's call to its sidecar.\n");
    }
    for (service, vip) in SERVICES {
        let addresses = match mode {
            Mode::Netns => format!("  addresses: [{vip}]\n"),
            Mode::Loopback => String::new(),
        };
        let _ = write!(
            services,
            "---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: {service}\n  namespace: default\nspec:\n  hosts: [{host}]\n{addresses}  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - {{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}\n  workloadSelector:\n    labels: {{ app: {service} }}\n",
            host = Workload::host(service)
        );
    }
    services
}

/// One WorkloadGroup per app: its sidecars name it (`AUTO_REGISTER_GROUP`) and become
/// endpoints with the app's label and service account; a proxy naming no group, or a group
/// that does not exist, is never an endpoint.
fn workload_groups() -> String {
    let mut groups = String::from(
        "# One WorkloadGroup per app. A sidecar whose metadata names one (AUTO_REGISTER_GROUP)\n# is registered as an endpoint with the group's labels and service account, as istiod's\n# auto-registration does; no other proxy is.\n",
    );
    for (service, _) in SERVICES {
        let _ = write!(
            groups,
            "---\napiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata:\n  name: {service}\n  namespace: default\nspec:\n  metadata:\n    labels: {{ app: {service} }}\n  template:\n    serviceAccount: {account}\n",
            account = super::identity::service_account(service),
        );
    }
    groups
}

fn sidecars() -> String {
    let mut sidecars = String::from(
        "# One Sidecar per workload: without iptables capture (interception NONE) each proxy gets\n# an inbound listener on its own address and an outbound listener for its app's calls.\n",
    );
    for workload in WORKLOADS {
        let _ = write!(
            sidecars,
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: {name}\n  namespace: default\nspec:\n  workloadSelector:\n    labels: {{ app: {service}, version: {version} }}\n  ingress:\n  - port: {{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}\n    bind: {address}\n    defaultEndpoint: 127.0.0.1:{app_port}\n  egress:\n  - port: {{ number: {SERVICE_PORT}, name: http, protocol: HTTP }}\n    bind: {egress}\n    hosts: [\"./*\"]\n",
            name = workload.name(),
            service = workload.service,
            version = workload.version,
            address = workload.address(Mode::Loopback),
            egress = workload.egress_address(),
            app_port = workload.app_port(Mode::Loopback),
        );
    }
    sidecars
}

fn destination_rules() -> String {
    let mut rules =
        String::from("# Subsets by version, as in Bookinfo's destination-rule-all.yaml.\n");
    for (service, versions) in [
        ("productpage", &["v1"][..]),
        ("details", &["v1"]),
        ("reviews", &["v1", "v2", "v3"]),
        ("ratings", &["v1"]),
    ] {
        let subsets: String = versions
            .iter()
            .map(|v| format!("  - name: {v}\n    labels: {{ version: {v} }}\n"))
            .collect();
        let _ = write!(
            rules,
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: {service}\n  namespace: default\nspec:\n  host: {service}\n  subsets:\n{subsets}"
        );
    }
    rules
}

/// The reviews VirtualService with the given weights per subset; `end-user: jason` always
/// goes to v2, as in Bookinfo's reviews-test-v2 rule.
pub fn reviews_virtual_service(weights: &[(&str, u32)]) -> String {
    let routes: String = weights
        .iter()
        .filter(|(_, weight)| *weight > 0)
        .map(|(subset, weight)| {
            format!(
                "    - destination: {{ host: reviews, subset: {subset} }}\n      weight: {weight}\n"
            )
        })
        .collect();
    format!(
        "# Edit the weights to move traffic between versions; lateend applies the change live.\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\n  namespace: default\nspec:\n  hosts: [reviews]\n  http:\n  - match:\n    - headers:\n        end-user: {{ exact: jason }}\n    route:\n    - destination: {{ host: reviews, subset: v2 }}\n  - route:\n{routes}"
    )
}
