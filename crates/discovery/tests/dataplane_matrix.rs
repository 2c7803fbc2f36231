//! Issue 4's acceptance matrix: every row is written once and run against each data plane —
//! real Envoy 1.40 with istio-agent's bootstrap and `lateen-proxy sidecar` — both configured
//! by one `lateend` over ADS, both sending to the same upstreams on 127.0.0.1. Each data
//! plane is the sidecar of its own client workload whose Sidecar resource puts its egress
//! listener on its own loopback address. Rows: the control-plane acceptance (weighted split,
//! header match, fault abort, retry, timeout, live VirtualService edit, rejected bad file,
//! no NACK), each load-balancer policy, locality weights, outlier ejection and recovery,
//! circuit breaking and mirroring. The table (row × data plane → pass/fail and the figure
//! measured) is printed; the test fails unless every row passes on both.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;
#[path = "common/matrix.rs"]
mod matrix;
#[path = "common/matrix_balancing.rs"]
mod matrix_balancing;
#[path = "common/matrix_config.rs"]
mod matrix_config;
#[path = "common/matrix_edit.rs"]
mod matrix_edit;
#[path = "common/matrix_resilience.rs"]
mod matrix_resilience;
#[path = "common/matrix_routing.rs"]
mod matrix_routing;

use std::collections::BTreeMap;
use std::future::Future;

use common::backend::Backend;
use common::lateend::start_lateend;
use common::{envoy_or_skip, free_port, wait_until, write_config};
use dataplane::DataPlane;
use matrix::{Mesh, Outcome, Table};
use matrix_config::Workload;

/// Upstreams by name; the pool serves several services (rows tell hosts apart by name).
const BACKENDS: [&str; 12] = [
    "reviews-v1",
    "reviews-v2",
    "reviews-v3",
    "ratings-v1",
    "details-v1",
    "pool-a",
    "pool-b",
    "pool-c",
    "lr-fast",
    "lr-slow",
    "breaker-1",
    "mirror-primary",
];

fn services(b: &BTreeMap<String, Backend>) -> Vec<(&'static str, Vec<Workload<'static>>)> {
    let w = |name: &'static str, version: &'static str, locality: Option<&'static str>| Workload {
        name,
        version,
        port: b[name].port,
        locality,
    };
    let pool = || {
        POOL_NAMES
            .iter()
            .map(|n| w(n, "v1", None))
            .collect::<Vec<_>>()
    };
    vec![
        (
            "reviews",
            vec![
                w("reviews-v1", "v1", None),
                w("reviews-v2", "v2", None),
                w("reviews-v3", "v3", None),
            ],
        ),
        ("ratings", vec![w("ratings-v1", "v1", None)]),
        ("details", vec![w("details-v1", "v1", None)]),
        ("lb-rr", pool()),
        ("lb-random", pool()),
        ("hash-header", pool()),
        ("hash-ip", pool()),
        ("hash-cookie", pool()),
        ("outlier", pool()),
        (
            "lb-lr",
            vec![w("lr-fast", "v1", None), w("lr-slow", "v1", None)],
        ),
        ("breaker", vec![w("breaker-1", "v1", None)]),
        ("mirror", vec![w("mirror-primary", "v1", None)]),
        ("shadow", vec![w("mirror-shadow", "v1", None)]),
        (
            "locality",
            vec![
                w("pool-a", "v1", Some("region-a/zone-a/sub-1")),
                w("pool-b", "v1", Some("region-a/zone-a/sub-2")),
                w("pool-c", "v1", Some("region-b/zone-b/sub-1")),
            ],
        ),
    ]
}

const POOL_NAMES: [&str; 3] = matrix_balancing::POOL;

async fn start() -> Option<Mesh> {
    let envoy = envoy_or_skip()?;
    let work = std::env::temp_dir().join(format!("lateen-matrix-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("create the config folder");

    let mut backends = BTreeMap::new();
    for name in BACKENDS.iter().chain(&["mirror-shadow"]) {
        backends.insert(name.to_string(), Backend::start(name).await);
    }
    let port = free_port();
    let registry = matrix_config::registry_yaml(port, &services(&backends));
    write_config(&config, "services.yaml", &registry);
    write_config(
        &config,
        "destination-rules.yaml",
        matrix_config::DESTINATION_RULES,
    );
    write_config(&config, "reviews.yaml", matrix_config::REVIEWS_SPLIT);
    write_config(&config, "policies.yaml", matrix_config::POLICIES);
    write_config(&config, "mirror.yaml", matrix_config::MIRROR);
    for plane in DataPlane::ALL {
        write_config(
            &config,
            &format!("sidecar-{}.yaml", plane.workload()),
            &plane.sidecar_yaml(port),
        );
    }
    let lateend = start_lateend(&config, &work, &[]).await;
    let mut planes = Vec::new();
    for plane in DataPlane::ALL {
        planes.push(dataplane::start(plane, &envoy, &work, lateend.xds, port).await);
    }
    let mesh = Mesh {
        work,
        config,
        port,
        lateend,
        planes,
        backends,
    };
    for plane in DataPlane::ALL {
        let ready = wait_until("config on the data plane", || async {
            let v2 = mesh
                .send(plane, "reviews", "/", &[("end-user", "jason")])
                .await;
            let last = mesh.send(plane, "locality", "/", &[]).await;
            v2.is_some_and(|r| r.status == 200 && r.body == "reviews-v2")
                && last.is_some_and(|r| r.status == 200)
        })
        .await;
        if let Err(e) = ready {
            panic!("{}: {e}\n{}", plane.name(), mesh.diagnostics());
        }
    }
    Some(mesh)
}

/// Runs one row on each data plane in turn and records the outcomes.
async fn each<F, Fut>(table: &mut Table, row: &str, run: F)
where
    F: Fn(DataPlane) -> Fut,
    Fut: Future<Output = Outcome>,
{
    for plane in DataPlane::ALL {
        table.record(row, plane, run(plane).await);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_gives_the_same_result_on_envoy_and_lateen_proxy() {
    let Some(mesh) = start().await else {
        return;
    };
    let m = &mesh;
    let mut t = Table::default();
    each(&mut t, "weighted split 80/20", |p| {
        matrix_routing::weighted_split(m, p)
    })
    .await;
    each(&mut t, "header match end-user: jason → v2", |p| {
        matrix_routing::header_match(m, p)
    })
    .await;
    each(&mut t, "fault abort 418 at 30%", |p| {
        matrix_routing::fault_abort(m, p)
    })
    .await;
    each(&mut t, "retry: first 503 → 200", |p| {
        matrix_routing::retry(m, p)
    })
    .await;
    each(&mut t, "timeout 500 ms → 504", |p| {
        matrix_routing::timeout(m, p)
    })
    .await;
    each(&mut t, "ROUND_ROBIN even spread", |p| {
        matrix_balancing::round_robin(m, p)
    })
    .await;
    each(&mut t, "LEAST_REQUEST prefers the idle host", |p| {
        matrix_balancing::least_request(m, p)
    })
    .await;
    each(&mut t, "RANDOM hits every host", |p| {
        matrix_balancing::random(m, p)
    })
    .await;
    each(&mut t, "consistentHash header", |p| {
        matrix_balancing::hash_header(m, p)
    })
    .await;
    each(&mut t, "consistentHash cookie", |p| {
        matrix_balancing::hash_cookie(m, p)
    })
    .await;
    each(&mut t, "consistentHash source IP", |p| {
        matrix_balancing::hash_source_ip(m, p)
    })
    .await;
    each(&mut t, "locality weights 20/80", |p| {
        matrix_balancing::locality_weights(m, p)
    })
    .await;
    each(&mut t, "outlier ejection and recovery", |p| {
        matrix_resilience::outlier(m, p)
    })
    .await;
    each(&mut t, "circuit breaking → 503 UO", |p| {
        matrix_resilience::circuit_breaking(m, p)
    })
    .await;
    each(&mut t, "mirroring", |p| matrix_resilience::mirroring(m, p)).await;
    for (plane, edit, bad) in matrix_edit::live_edit_and_bad_file(m).await {
        t.record("live VirtualService edit", plane, edit);
        t.record("rejected bad file", plane, bad);
    }
    each(&mut t, "no NACK in /debug/syncz", |p| {
        matrix_routing::no_nack(m, p)
    })
    .await;

    t.print_and_assert_passed(|| mesh.diagnostics());
    let _ = std::fs::remove_dir_all(&mesh.work);
}
