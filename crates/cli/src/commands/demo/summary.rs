//! What the demo prints once the mesh is up: where productpage is, the control plane, the
//! mesh CA, each workload's addresses, metrics and admin URLs, the config folder and the logs.

use std::path::Path;

use super::mesh::{self, SERVICE_PORT, SERVICES, WORKLOADS};
use super::mode::Mode;

pub fn print(dir: &Path, config_dir: &Path, mode: Mode) {
    let productpage = &WORKLOADS[0];
    match mode {
        Mode::Loopback => println!(
            "\nLateen demo is running (interception NONE: explicit listeners, no iptables).\n"
        ),
        Mode::Netns => println!(
            "\nLateen demo is running in network namespaces with capture (iptables REDIRECT to 15001/15006, sidecars as UID 1337).\n"
        ),
    }
    println!(
        "  productpage     http://{}:{SERVICE_PORT}/productpage",
        productpage.address(mode)
    );
    println!(
        "  control plane   lateend: xDS {}, debug http://127.0.0.1:15014/debug/syncz, metrics http://127.0.0.1:15014/metrics",
        mesh::xds_address(mode)
    );
    println!("  dashboard       http://127.0.0.1:15014/dashboard/ (or: lateen dashboard)");
    println!(
        "  security        auto mTLS: each sidecar's SPIFFE certificate from lateend's CA ({}), one bootstrap token per workload in {}",
        dir.join("ca").display(),
        dir.join("tokens").display()
    );
    match mode {
        Mode::Loopback => {
            println!("  workloads       (app → its sidecar's inbound listener; metrics; admin)");
            for workload in WORKLOADS {
                let address = workload.address(mode);
                println!(
                    "    {:<15} app 127.0.0.1:{}  inbound {address}:{SERVICE_PORT}  metrics http://{address}:15090/stats/prometheus  admin http://{address}:15000/config_dump",
                    workload.name(),
                    workload.app_port(mode),
                );
            }
        }
        Mode::Netns => {
            println!(
                "  workloads       (pod namespace and address, app on :{SERVICE_PORT} behind the capture rules; metrics; admin)"
            );
            for workload in WORKLOADS {
                let address = workload.address(mode);
                println!(
                    "    {:<15} netns {:<28} pod {address}  metrics http://{address}:15090/stats/prometheus  admin http://{address}:15000/config_dump",
                    workload.name(),
                    workload.namespace(),
                );
            }
            let vips: Vec<String> = SERVICES
                .iter()
                .map(|(service, vip)| format!("{service} {vip}"))
                .collect();
            println!(
                "  services        {} (names resolve in the pods through /etc/netns/<pod>/hosts)",
                vips.join(", ")
            );
            println!(
                "  inside a pod    ip netns exec {} curl http://reviews:{SERVICE_PORT}/reviews",
                productpage.namespace()
            );
        }
    }
    println!(
        "  config folder   {} (edit virtual-service-reviews.yaml to move traffic)",
        config_dir.display()
    );
    println!("  logs            {}", dir.join("logs").display());
    println!("\nPress Ctrl-C to stop.");
}
