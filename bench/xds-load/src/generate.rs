//! The benchmark's mesh: a registry of `services` ServiceEntries in namespace `bench`
//! (`svc-N.bench.svc.cluster.local`, port 9080 HTTP, three STATIC endpoints each in
//! 198.18.0.0/15, labelled `version: v1|v2|v1`), a DestinationRule with subsets v1/v2 and a
//! weighted VirtualService for the first `routed` services. The VirtualService of `svc-0` (the
//! marker) lives alone in [`MARKER_FILE`] so a round can rewrite it without touching the rest.
//! The endpoint addresses are never contacted: they only appear in config.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, bail, ensure};

/// Namespace of every generated resource and of the simulated proxies.
pub const NAMESPACE: &str = "bench";
/// Port of every service.
pub const PORT: u32 = 9080;
/// File holding the marker VirtualService (svc-0), rewritten by each round.
pub const MARKER_FILE: &str = "vs-marker.yaml";
/// v1 weight of the marker route before any round; round `r` sets `BASE_WEIGHT + r`.
pub const BASE_WEIGHT: u32 = 60;
/// Endpoints per service.
const ENDPOINTS: u32 = 3;
/// Start of the endpoint range (198.18.0.0/16; the simulated proxies use 198.19.0.0/16).
const ENDPOINT_BASE: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 0);

/// Hostname of service `index`.
pub fn host(index: u32) -> String {
    format!("svc-{index}.{NAMESPACE}.svc.cluster.local")
}

/// Writes the mesh into `dir` (created if missing). Returns the number of files written.
pub fn write_mesh(dir: &Path, services: u32, routed: u32) -> anyhow::Result<usize> {
    ensure!(services >= 1, "--services must be at least 1");
    ensure!(
        routed >= 1 && routed <= services,
        "--routed must be between 1 and --services ({services})"
    );
    // 198.18.0.0/16 has 65 535 usable addresses after .0.0.
    if u64::from(services) * u64::from(ENDPOINTS) >= 65_535 {
        bail!("--services {services} needs more endpoint addresses than 198.18.0.0/16 holds");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let files = [
        ("services.yaml", service_entries(services)),
        ("routing.yaml", routing(routed)),
        (MARKER_FILE, marker_virtual_service(BASE_WEIGHT)),
    ];
    for (name, text) in &files {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    }
    Ok(files.len())
}

fn endpoint_address(service: u32, endpoint: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(ENDPOINT_BASE) + service * ENDPOINTS + endpoint + 1)
}

fn service_entries(services: u32) -> String {
    let mut out = String::new();
    for i in 0..services {
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: svc-{i}\n  namespace: {NAMESPACE}\nspec:\n  hosts: [{host}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - {{number: {PORT}, name: http, protocol: HTTP}}\n  endpoints:\n",
            host = host(i)
        );
        for e in 0..ENDPOINTS {
            let version = if e % 2 == 0 { "v1" } else { "v2" };
            let _ = writeln!(
                out,
                "  - {{address: {}, labels: {{version: {version}}}}}",
                endpoint_address(i, e)
            );
        }
        out.push_str("---\n");
    }
    out
}

fn routing(routed: u32) -> String {
    let mut out = String::new();
    for i in 0..routed {
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: svc-{i}\n  namespace: {NAMESPACE}\nspec:\n  host: {host}\n  trafficPolicy:\n    connectionPool: {{http: {{http1MaxPendingRequests: 1024}}}}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\n",
            host = host(i)
        );
        // svc-0's VirtualService is the marker, in its own file.
        if i > 0 {
            out.push_str(&virtual_service(i, BASE_WEIGHT));
            out.push_str("---\n");
        }
    }
    out
}

fn virtual_service(index: u32, v1_weight: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: svc-{index}\n  namespace: {NAMESPACE}\nspec:\n  hosts: [{host}]\n  http:\n  - timeout: 5s\n    route:\n    - {{destination: {{host: {host}, subset: v1}}, weight: {v1_weight}}}\n    - {{destination: {{host: {host}, subset: v2}}, weight: {v2_weight}}}\n",
        host = host(index),
        v2_weight = 100 - v1_weight
    )
}

/// Adds a VirtualService for the last service (`services` of them) whose first route matches callers
/// labelled `app: bench-client-0` (`sourceLabels`): each workload's proxies then have a
/// configuration of their own. Returns the number of files written.
pub fn write_app_selector(dir: &Path, services: u32) -> anyhow::Result<usize> {
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: by-app\n  namespace: {NAMESPACE}\nspec:\n  hosts: [{host}]\n  http:\n  - match: [{{sourceLabels: {{app: bench-client-0}}}}]\n    timeout: 3s\n    route: [{{destination: {{host: {host}}}}}]\n  - route: [{{destination: {{host: {host}}}}}]\n",
        host = host(services.saturating_sub(1))
    );
    let path = dir.join("vs-by-app.yaml");
    std::fs::write(&path, text).with_context(|| format!("write {}", path.display()))?;
    Ok(1)
}

/// The marker VirtualService (svc-0) with the given v1 weight (v2 gets the rest of 100).
pub fn marker_virtual_service(v1_weight: u32) -> String {
    virtual_service(0, v1_weight)
}

/// Replaces the marker file atomically (write a hidden temporary file, then rename), so the
/// control plane's folder scan never reads half a file.
pub fn write_marker(dir: &Path, v1_weight: u32) -> anyhow::Result<()> {
    let temporary = dir.join(format!(".{MARKER_FILE}.tmp"));
    std::fs::write(&temporary, marker_virtual_service(v1_weight))
        .with_context(|| format!("write {}", temporary.display()))?;
    let path = dir.join(MARKER_FILE);
    std::fs::rename(&temporary, &path).with_context(|| format!("rename to {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_stay_in_the_benchmark_range() {
        assert_eq!(endpoint_address(0, 0), Ipv4Addr::new(198, 18, 0, 1));
        assert_eq!(endpoint_address(999, 2), Ipv4Addr::new(198, 18, 11, 184));
    }

    #[test]
    fn marker_weights_add_up_to_100() {
        let vs = marker_virtual_service(63);
        assert!(vs.contains("subset: v1}, weight: 63"));
        assert!(vs.contains("subset: v2}, weight: 37"));
    }
}
