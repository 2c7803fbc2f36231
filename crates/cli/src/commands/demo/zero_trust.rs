//! `--scenario zero-trust`: what the mesh CA and mTLS give the demo, step by step (loopback
//! mode, also under `--mode auto`: the host plays a client outside the mesh, and a sidecar's
//! outbound listener plays its workload calling another service).
//!
//! 1. Auto mTLS: productpage's calls cross mTLS; details' sidecar metrics show
//!    `connection_security_policy="mutual_tls"` with both SPIFFE principals. PERMISSIVE (the
//!    default) still answers a plaintext call from outside the mesh.
//! 2. `peer-authentication.yaml`: namespace `default` STRICT, productpage PERMISSIVE (it is
//!    the entry point, as an ingress gateway would be): a plaintext call to details from
//!    outside the mesh is refused, the page (productpage → details and reviews over mTLS)
//!    still works.
//! 3. `authorization-policy-ratings.yaml`: ratings ALLOWs only `bookinfo-reviews`: a call
//!    from productpage's sidecar gets 403 `RBAC: access denied`, one from reviews-v2's passes.
//!
//! The two files are removed at the end, so the next run starts from the default mesh.

use std::path::Path;
use std::time::Duration;

use super::http;
use super::identity::spiffe_id;
use super::mesh::{SERVICE_PORT, WORKLOADS, Workload};
use super::mode::{Mode, ModeArg};

const PEER_AUTHENTICATION: &str = "peer-authentication.yaml";
const AUTHORIZATION_POLICY: &str = "authorization-policy-ratings.yaml";
/// Requests sent through productpage in step 1.
const REQUESTS: u32 = 20;
/// lateend polls the folder (every 100 ms) and debounces pushes; time for a change to land.
const SETTLE: Duration = Duration::from_millis(2500);

/// The mode a run with this scenario uses: loopback for `--mode auto`, an error (before
/// anything starts) for `--mode netns`.
pub fn mode_for(zero_trust: bool, arg: ModeArg) -> anyhow::Result<ModeArg> {
    match (zero_trust, arg) {
        (false, arg) => Ok(arg),
        (true, ModeArg::Netns) => anyhow::bail!(
            "--scenario zero-trust calls the sidecars' outbound listeners from the host, which only the loopback mode exposes: run it with --mode loopback"
        ),
        (true, ModeArg::Auto | ModeArg::Loopback) => Ok(ModeArg::Loopback),
    }
}

pub async fn run(config_dir: &Path, mode: Mode) -> anyhow::Result<()> {
    anyhow::ensure!(
        mode == Mode::Loopback,
        "--scenario zero-trust needs --mode loopback"
    );
    let outcome = steps(config_dir).await;
    for file in [PEER_AUTHENTICATION, AUTHORIZATION_POLICY] {
        let _ = std::fs::remove_file(config_dir.join(file));
    }
    println!(
        "  (removed {PEER_AUTHENTICATION} and {AUTHORIZATION_POLICY}: the mesh is back to PERMISSIVE with no policy)"
    );
    outcome
}

fn workload(service: &str, version: &str) -> &'static Workload {
    WORKLOADS
        .iter()
        .find(|w| w.service == service && w.version == version)
        .unwrap_or(&WORKLOADS[0])
}

async fn steps(config_dir: &Path) -> anyhow::Result<()> {
    let productpage = workload("productpage", "v1");
    let details = workload("details", "v1");
    let page = format!("{}:{SERVICE_PORT}", productpage.address(Mode::Loopback));
    let details_inbound = format!("{}:{SERVICE_PORT}", details.address(Mode::Loopback));

    println!("\nScenario zero-trust: every sidecar holds a SPIFFE certificate from lateend's CA.");
    println!("1. auto mTLS (PeerAuthentication PERMISSIVE, Istio's default)");
    let mut ok = 0;
    for _ in 0..REQUESTS {
        if matches!(
            get(&page, "/productpage", "productpage").await,
            Some((200, _))
        ) {
            ok += 1;
        }
    }
    println!("  productpage: {ok}/{REQUESTS} pages");
    let metrics = format!("{}:15090", details.address(Mode::Loopback));
    let seen = mutual_tls_requests(&metrics, "productpage", "details").await;
    println!(
        "  details-v1's sidecar: {seen} requests with connection_security_policy=\"mutual_tls\" source_principal=\"{}\" destination_principal=\"{}\"",
        spiffe_id("productpage"),
        spiffe_id("details")
    );
    println!(
        "  plaintext call from outside the mesh to details: {}",
        describe(get(&details_inbound, "/details", "details").await)
    );

    println!("2. PeerAuthentication STRICT for namespace default, PERMISSIVE for productpage");
    std::fs::write(config_dir.join(PEER_AUTHENTICATION), peer_authentication())?;
    tokio::time::sleep(SETTLE).await;
    println!(
        "  plaintext call from outside the mesh to details: {}",
        describe(get(&details_inbound, "/details", "details").await)
    );
    println!(
        "  productpage through the mesh: {}",
        describe(get(&page, "/productpage", "productpage").await)
    );

    println!(
        "3. AuthorizationPolicy: ratings allows only {}",
        spiffe_id("reviews")
    );
    std::fs::write(config_dir.join(AUTHORIZATION_POLICY), ratings_policy())?;
    tokio::time::sleep(SETTLE).await;
    for caller in [productpage, workload("reviews", "v2")] {
        let egress = format!("{}:{SERVICE_PORT}", caller.egress_address());
        println!(
            "  {} → ratings: {}",
            caller.name(),
            describe(get(&egress, "/ratings", "ratings").await)
        );
    }
    Ok(())
}

/// One GET off the runtime's thread; `None` when the connection failed or was closed.
async fn get(address: &str, path: &str, host: &str) -> Option<(u16, String)> {
    let (address, path, host) = (address.to_string(), path.to_string(), host.to_string());
    tokio::task::spawn_blocking(move || http::get(&address, &path, Some(&host)))
        .await
        .ok()?
        .ok()
        .filter(|(status, _)| *status != 0)
}

fn describe(response: Option<(u16, String)>) -> String {
    match response {
        None => "refused (no HTTP answer: the connection was closed)".to_string(),
        Some((status, body)) if status >= 400 => format!("{status} {}", body.trim()),
        Some((status, _)) => status.to_string(),
    }
}

/// The count of requests `destination`'s sidecar (metrics at `metrics`) took from
/// `source` over mTLS, both principals as Istio labels them.
async fn mutual_tls_requests(metrics: &str, source: &str, destination: &str) -> f64 {
    let Some((_, text)) = get(metrics, "/stats/prometheus", "metrics").await else {
        return 0.0;
    };
    let wanted = [
        "reporter=\"destination\"".to_string(),
        "connection_security_policy=\"mutual_tls\"".to_string(),
        format!("source_principal=\"{}\"", spiffe_id(source)),
        format!("destination_principal=\"{}\"", spiffe_id(destination)),
    ];
    text.lines()
        .filter(|line| line.starts_with("istio_requests_total{"))
        .filter(|line| wanted.iter().all(|label| line.contains(label.as_str())))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn peer_authentication() -> String {
    "# Written by --scenario zero-trust: mTLS only in namespace default, except for productpage,\n# the entry point from outside the mesh.\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: default\n  namespace: default\nspec:\n  mtls:\n    mode: STRICT\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata:\n  name: productpage\n  namespace: default\nspec:\n  selector:\n    matchLabels: { app: productpage }\n  mtls:\n    mode: PERMISSIVE\n".to_string()
}

fn ratings_policy() -> String {
    "# Written by --scenario zero-trust: only reviews may call ratings.\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n  name: ratings\n  namespace: default\nspec:\n  selector:\n    matchLabels: { app: ratings }\n  action: ALLOW\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/default/sa/bookinfo-reviews]\n".to_string()
}
