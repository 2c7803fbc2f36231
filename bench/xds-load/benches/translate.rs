//! In-process benchmark of lateend's translation on the control-plane benchmark's mesh
//! (1000 services, 100 with DestinationRule subsets and a weighted VirtualService): the time
//! to translate one proxy view, and a push's translation work for proxies from W distinct
//! workloads (one view each). `cargo bench -p lateen-xds-load --bench translate`
//! (env SERVICES, ROUTED, WORKLOADS, REPEAT).

use std::time::{Duration, Instant};

use lateen_discovery::translate::{ProxyView, build_snapshot_for_view, selected_label_keys};
use lateen_discovery::{FolderStore, Proxy, Registry};
use lateen_xds::ProxyNode;
use lateen_xds_load::generate;

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn sidecar(index: u32, workload: u32) -> Proxy {
    Proxy::from_node(&ProxyNode {
        id: format!("sidecar~198.19.0.{index}~client-{index}.bench~bench.svc.cluster.local"),
        cluster: String::new(),
        metadata: serde_json::json!({
            "NAMESPACE": generate::NAMESPACE,
            "INTERCEPTION_MODE": "REDIRECT",
            "LABELS": {"app": format!("bench-client-{workload}"), "version": "v1"},
        }),
        user_agent: "bench".into(),
    })
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() -> anyhow::Result<()> {
    let services = env_number("SERVICES", 1000);
    let routed = env_number("ROUTED", 100);
    let workloads = env_number("WORKLOADS", 50);
    let repeat = env_number("REPEAT", 5).max(1);
    let dir = tempfile::tempdir()?;
    generate::write_mesh(dir.path(), services, routed)?;
    let store = FolderStore::open(dir.path(), None)?;
    let config = store.config();
    let started = Instant::now();
    let registry = Registry::build(&config, &[]);
    let registry_time = started.elapsed();

    // Every label counts here, as if some resource selected on `app`: the cost of W
    // distinct configurations.
    let mut label_keys = selected_label_keys(&config);
    label_keys.insert("app".to_string());
    let view = ProxyView::of(&sidecar(1, 0), &registry, &label_keys);
    let mut one: Vec<Duration> = (0..repeat)
        .map(|_| {
            let started = Instant::now();
            let snapshot = build_snapshot_for_view(&config, &registry, &view);
            std::hint::black_box(snapshot);
            started.elapsed()
        })
        .collect();
    one.sort();

    let snapshot = build_snapshot_for_view(&config, &registry, &view);
    let sizes: Vec<String> = snapshot
        .type_urls()
        .map(|t| {
            let (count, bytes) = snapshot
                .resources(t)
                .fold((0, 0), |(n, b), (_, r)| (n + 1, b + r.resource.value.len()));
            format!(
                "{} {count} = {} KiB",
                lateen_xds::types::short_name(t),
                bytes / 1024
            )
        })
        .collect();
    println!("one view's resources: {}", sizes.join(", "));
    if std::env::var_os("DUMP_ROUTE").is_some() {
        use lateen_xds::prost::Message;
        for (name, r) in snapshot.resources(lateen_xds::types::ROUTE) {
            let rc = lateen_xds::pb::envoy::config::route::v3::RouteConfiguration::decode(
                r.resource.value.as_slice(),
            )?;
            println!("route {name}: {:#?}", rc.virtual_hosts.get(1));
        }
    }

    if std::env::var_os("PHASES").is_some() {
        use lateen_discovery::translate::{Context, clusters, endpoints, listeners, routes};
        let t = Instant::now();
        let ctx = Context::new(&config, &registry, &view);
        let t_ctx = t.elapsed();
        let t = Instant::now();
        let built = clusters::build(&ctx);
        let t_cl = t.elapsed();
        let t = Instant::now();
        let eds = endpoints::build(&ctx, &built.eds);
        let t_eds = t.elapsed();
        let t = Instant::now();
        let l = listeners::build(&ctx);
        let t_l = t.elapsed();
        let t = Instant::now();
        let r = routes::build(&ctx, &l.route_names);
        let t_r = t.elapsed();
        let t = Instant::now();
        let mut s = lateen_xds::Snapshot::new();
        for c in &built.clusters {
            s.add(c);
        }
        for c in &eds {
            s.add(c);
        }
        for c in &l.listeners {
            s.add(c);
        }
        for c in &r {
            s.add(c);
        }
        let t_add = t.elapsed();
        println!(
            "phases: ctx {:.1} clusters {:.1} eds {:.1} listeners {:.1} routes {:.1} encode {:.1} ms",
            millis(t_ctx),
            millis(t_cl),
            millis(t_eds),
            millis(t_l),
            millis(t_r),
            millis(t_add)
        );
    }

    let views: Vec<ProxyView> = (0..workloads)
        .map(|w| ProxyView::of(&sidecar(w + 1, w), &registry, &label_keys))
        .collect();
    let started = Instant::now();
    for v in &views {
        std::hint::black_box(build_snapshot_for_view(&config, &registry, v));
    }
    let all = started.elapsed();

    println!(
        "{services} services ({routed} routed): registry {:.1} ms; one view min {:.1} ms, median {:.1} ms (of {repeat}); {workloads} views {:.0} ms ({:.1} ms each)",
        millis(registry_time),
        millis(one[0]),
        millis(one[one.len() / 2]),
        millis(all),
        millis(all) / f64::from(workloads.max(1)),
    );
    Ok(())
}
