//! An endpoint-only generation must equal a full translation of the same state.

use std::collections::BTreeMap;
use std::sync::Arc;

use lateen_api::networking::Resolution;
use lateen_xds::ProxyNode;
use lateen_xds::types::{ENDPOINT, LISTENER};

use super::*;
use crate::push::ControlPlane;
use crate::registry::{Instance, ServicePort};
use crate::store::Config;
use crate::translate::build_snapshot_for_view;
use crate::{Proxy, Registry};

const MESH: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-1, namespace: default}
spec:
  host: svc-1.default.svc.cluster.local
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: svc-2, namespace: default}
spec:
  host: svc-2.default.svc.cluster.local
  trafficPolicy:
    loadBalancer:
      localityLbSetting:
        distribute: [{from: "r1/z1/*", to: {"r1/z1/*": 80, "r1/z2/*": 20}}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: restricted}
spec:
  egress: [{hosts: ["prod/*"]}]
"#;

/// The address of the proxy that is itself an instance of `svc-0`.
const OWN_ADDRESS: &str = "198.18.0.10";

/// A small deterministic generator (xorshift64), so a failure replays.
struct Random(u64);

impl Random {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

fn instance(address: String, version: &str, zone: &str) -> Instance {
    Instance {
        address,
        ports: BTreeMap::new(),
        labels: [("version".to_string(), version.to_string())].into(),
        weight: 1,
        service_account: "default".into(),
        locality: format!("r1/{zone}"),
        origin: "test".into(),
    }
}

fn service(i: usize) -> Service {
    let namespace = if i % 3 == 2 { "prod" } else { "default" };
    let mut instances: Vec<Instance> = (0..3)
        .map(|k| instance(format!("198.18.{i}.{}", k + 1), "v1", "z1"))
        .collect();
    if i == 0 {
        instances.push(instance(OWN_ADDRESS.into(), "v1", "z1"));
    }
    Service {
        hostname: format!("svc-{i}.{namespace}.svc.cluster.local"),
        namespace: namespace.into(),
        ports: vec![ServicePort {
            name: "http".into(),
            number: 9080,
            protocol: String::new(),
            target_port: Some(8080),
        }],
        // The last one embeds its endpoints in its cluster (an ExternalName Service).
        resolution: if i == 11 {
            Resolution::Dns
        } else {
            Resolution::Static
        },
        addresses: vec![format!("10.96.0.{i}")],
        instances,
        export_to: Vec::new(),
    }
}

fn proxy(ip: &str, namespace: &str, zone: &str) -> Proxy {
    Proxy::from_node(&ProxyNode {
        id: format!("sidecar~{ip}~app-1.{namespace}~{namespace}.svc.cluster.local"),
        cluster: String::new(),
        metadata: serde_json::json!({
            "NAMESPACE": namespace,
            "INTERCEPTION_MODE": "REDIRECT",
            "INSTANCE_IPS": ip,
            "LABELS": {"app": "app", "topology.kubernetes.io/region": "r1", "topology.kubernetes.io/zone": zone},
        }),
        user_agent: String::new(),
    })
}

/// One random endpoint change to `s`: an instance added or removed, or one moved to another
/// subset, zone or workload port.
fn change_endpoints(s: &mut Service, random: &mut Random, round: usize) {
    let pick = random.below(s.instances.len().max(1));
    match random.below(5) {
        0 => s.instances.push(instance(
            format!("198.18.200.{}", round % 250 + 1),
            "v2",
            "z2",
        )),
        1 if s.instances.len() > 1 => {
            s.instances.remove(pick);
        }
        2 if !s.instances.is_empty() => {
            s.instances[pick]
                .labels
                .insert("version".into(), "v2".into());
        }
        3 if !s.instances.is_empty() => s.instances[pick].locality = "r1/z2".into(),
        _ if !s.instances.is_empty() => {
            s.instances[pick]
                .ports
                .insert("http".into(), 9000 + round as u32);
        }
        _ => s
            .instances
            .push(instance("198.18.201.1".into(), "v1", "z1")),
    }
}

#[test]
fn endpoint_only_generations_equal_full_translations() {
    let loaded = lateen_api::load(MESH, "mesh.yaml").unwrap_or_else(|e| panic!("{e}"));
    let config = Config {
        resources: loaded.resources().cloned().collect(),
        ..Config::default()
    };
    let (cp, _rx) = ControlPlane::new(config, std::time::Duration::from_secs(10));
    let mut services: Vec<Service> = (0..12).map(service).collect();
    cp.set_cluster_services(services.clone());
    let proxies = [
        proxy("10.1.0.1", "default", "z1"),
        proxy("10.1.0.2", "prod", "z2"),
        proxy(OWN_ADDRESS, "default", "z1"),
        proxy("10.1.0.4", "restricted", "z1"),
    ];
    let mut random = Random(0x5eed_1234_abcd_0001);
    let mut short_paths = 0;
    let mut previous = cp.generation();
    for round in 0..120 {
        // Mostly endpoint changes of one to three services; now and then a new service.
        if round % 40 == 39 {
            services.push(service(services.len()));
        } else if round % 10 == 5 {
            // The proxy that is an instance of svc-0 serves on another port now: its inbound
            // side changes, so its view cannot take the short path.
            for own in services[0]
                .instances
                .iter_mut()
                .filter(|i| i.address == OWN_ADDRESS)
            {
                own.ports.insert("http".into(), 7000 + round as u32);
            }
        } else {
            for _ in 0..=random.below(3) {
                let index = random.below(services.len());
                change_endpoints(&mut services[index], &mut random, round);
            }
        }
        cp.set_cluster_services(services.clone());
        let generation = cp.generation();
        let shared: Vec<Arc<Service>> = services.iter().cloned().map(Arc::new).collect();
        assert_eq!(
            *generation.registry,
            Registry::build_with(&generation.config, &[], &shared),
            "round {round}: registry"
        );
        for (p, proxy) in proxies.iter().enumerate() {
            let view = generation.view_of(proxy);
            let snapshot = generation.snapshot(view.clone());
            let full = build_snapshot_for_view(&generation.config, &generation.registry, &view);
            assert!(*snapshot == full, "round {round}, proxy {p}: differs");
            let before = previous.snapshot(previous.view_of(proxy));
            if generation.endpoint_only().is_some()
                && let Some(changes) = &generation.endpoint_changes
                && previous.view_of(proxy) == view
                && applies(changes, &view)
            {
                short_paths += 1;
                assert!(
                    Arc::ptr_eq(
                        snapshot.of_type(LISTENER).unwrap_or_else(|| panic!("LDS")),
                        before.of_type(LISTENER).unwrap_or_else(|| panic!("LDS"))
                    ),
                    "round {round}, proxy {p}: listeners shared, not translated again"
                );
            }
            // Every view has endpoints to compare.
            assert!(snapshot.resources(ENDPOINT).count() > 0);
        }
        previous = generation;
    }
    assert!(
        short_paths > 200,
        "{short_paths} snapshots took the short path"
    );
}

#[test]
fn cluster_services_keep_their_arcs_unless_changed() {
    let old: Vec<Arc<Service>> = (0..3).map(|i| Arc::new(service(i))).collect();
    let mut new: Vec<Service> = (0..3).map(service).collect();
    let arcs = |v: &[Service]| v.iter().cloned().map(Arc::new).collect::<Vec<_>>();
    let (same, change) = share_unchanged_services(&old, arcs(&new));
    assert_eq!(change, ClusterServicesChange::None);
    assert!(same.iter().zip(&old).all(|(a, b)| Arc::ptr_eq(a, b)));

    new[1].instances.pop();
    let (next, change) = share_unchanged_services(&old, arcs(&new));
    assert_eq!(
        change,
        ClusterServicesChange::InPlace([new[1].hostname.clone()].into())
    );
    assert!(Arc::ptr_eq(&next[0], &old[0]) && !Arc::ptr_eq(&next[1], &old[1]));

    new.push(service(3));
    assert_eq!(
        share_unchanged_services(&old, arcs(&new)).1,
        ClusterServicesChange::AddedOrRemoved
    );
}
