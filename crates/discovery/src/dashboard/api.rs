//! The JSON behind the dashboard page: `graph` (workloads, edges with rates), `services`,
//! `service?host=` (subsets, routes, policies, validation messages) and `proxies` (sync
//! status, as `lateen proxy-status` shows it).

use std::collections::BTreeMap;
use std::time::Instant;

use lateen_api::Resource;
use lateen_api::host::{host_is_subset_of, is_wildcard, resolve_short_name};
use serde_json::{Value, json};

use super::traffic::{UNKNOWN, WINDOW};
use crate::proxy::Proxy;
use crate::push::ControlPlane;
use crate::registry::{Service, labels_match};

/// Kinds that select workloads with `spec.selector.matchLabels` and shape what a service's
/// workloads accept: shown as the service's policies.
const POLICY_KINDS: &[&str] = &[
    "PeerAuthentication",
    "AuthorizationPolicy",
    "RequestAuthentication",
    "Telemetry",
];

/// Connected proxies with who they are, one entry per node id.
fn connected(cp: &ControlPlane) -> Vec<(lateen_xds::status::ProxyStatus, Proxy)> {
    let mut rows = cp.xds().map(|x| x.sync_status()).unwrap_or_default();
    rows.sort_by(|a, b| a.proxy.cmp(&b.proxy));
    rows.dedup_by(|a, b| a.proxy == b.proxy);
    rows.into_iter()
        .map(|row| {
            let proxy = Proxy::from_node(&lateen_xds::ProxyNode {
                id: row.proxy.clone(),
                cluster: row.cluster.clone(),
                metadata: row.metadata.clone(),
                user_agent: row.user_agent.clone(),
            });
            (row, proxy)
        })
        .collect()
}

/// Nodes (every connected workload and every end of an edge) and edges.
pub fn graph(cp: &ControlPlane) -> Value {
    let traffic = cp.traffic();
    traffic.viewed(Instant::now());
    let edges = traffic.edges();
    let mut nodes: BTreeMap<String, Value> = BTreeMap::new();
    for (_, proxy) in connected(cp) {
        let id = format!("{}/{}", proxy.namespace, proxy.workload_name);
        let label = |k: &str| proxy.labels.get(k).cloned().unwrap_or_default();
        let node = nodes.entry(id.clone()).or_insert_with(|| {
            json!({"id": id, "kind": "workload", "workload": proxy.workload_name,
                "namespace": proxy.namespace, "app": label("app"), "version": label("version"),
                "proxies": []})
        });
        if let Some(list) = node.get_mut("proxies").and_then(Value::as_array_mut) {
            list.push(Value::String(proxy.pod.clone()));
        }
    }
    for edge in &edges {
        for (id, app, version) in [
            (&edge.key.source, &edge.source_app, &edge.source_version),
            (
                &edge.key.destination,
                &edge.destination_app,
                &edge.destination_version,
            ),
        ] {
            nodes.entry(id.clone()).or_insert_with(|| {
                let (kind, namespace, workload) = match id.split_once('/') {
                    Some((ns, name)) => ("workload", ns, name),
                    None if id == UNKNOWN => ("unknown", "", UNKNOWN),
                    None => ("service", "", id.as_str()),
                };
                json!({"id": id, "kind": kind, "workload": workload, "namespace": namespace,
                    "app": app, "version": version, "proxies": []})
            });
        }
    }
    json!({
        "nodes": nodes.into_values().collect::<Vec<_>>(),
        "edges": edges,
        "window_seconds": WINDOW.as_secs(),
        "scrape_errors": traffic.errors(),
    })
}

/// `proxy-status`: one row per connected proxy.
pub fn proxies(cp: &ControlPlane) -> Value {
    let rows: Vec<Value> = connected(cp)
        .into_iter()
        .map(|(row, proxy)| {
            let version = row
                .metadata
                .get("ISTIO_VERSION")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            json!({"name": proxy.pod, "id": row.proxy, "cluster": row.cluster,
                "workload": format!("{}/{}", proxy.namespace, proxy.workload_name),
                "cds": row.cds, "lds": row.lds, "eds": row.eds, "rds": row.rds,
                "version": version, "user_agent": row.user_agent})
        })
        .collect();
    Value::Array(rows)
}

/// Every service with its ports and endpoint count.
pub fn services(cp: &ControlPlane) -> Value {
    let registry = cp.registry();
    let rows: Vec<Value> = registry
        .services
        .iter()
        .map(|s| {
            json!({"host": s.hostname, "namespace": s.namespace, "ports": ports(s),
                "endpoints": s.instances.len()})
        })
        .collect();
    Value::Array(rows)
}

fn ports(service: &Service) -> Value {
    service
        .ports
        .iter()
        .map(|p| json!({"name": p.name, "number": p.number, "protocol": p.protocol}))
        .collect()
}

/// Whether a host written in a resource of `namespace` names `service`.
fn names_service(host: &str, namespace: &str, suffix: &str, service: &Service) -> bool {
    let resolved = resolve_short_name(host, namespace, suffix);
    resolved == service.hostname
        || (is_wildcard(&resolved) && host_is_subset_of(&service.hostname, &resolved))
}

/// One service's details; `None` when no service has that host.
pub fn service(cp: &ControlPlane, host: &str) -> Option<Value> {
    let registry = cp.registry();
    let service = registry.service(host)?;
    let config = cp.config();
    let suffix = config.domain_suffix().to_string();
    let root = config.mesh.root_namespace().to_string();
    let mut related: Vec<&Resource> = Vec::new();

    let mut subsets = Vec::new();
    let mut rules = Vec::new();
    for resource in &config.resources {
        let Some(rule) = resource.as_destination_rule() else {
            continue;
        };
        if !names_service(&rule.spec.host, resource.namespace(), &suffix, service) {
            continue;
        }
        related.push(resource);
        rules.push(summary(resource));
        for subset in &rule.spec.subsets {
            let endpoints = service
                .instances
                .iter()
                .filter(|i| labels_match(&subset.labels, &i.labels))
                .count();
            subsets.push(json!({"name": subset.name, "labels": subset.labels,
                "rule": format!("{}/{}", resource.namespace(), resource.name()),
                "endpoints": endpoints}));
        }
    }
    let mut routes = Vec::new();
    for resource in &config.resources {
        let Some(vs) = resource.as_virtual_service() else {
            continue;
        };
        if vs
            .spec
            .hosts
            .iter()
            .any(|h| names_service(h, resource.namespace(), &suffix, service))
        {
            related.push(resource);
            routes.push(summary(resource));
        }
    }
    let mut policies = Vec::new();
    for resource in &config.resources {
        let kind = resource.kind().to_string();
        if !POLICY_KINDS.contains(&kind.as_str())
            || (resource.namespace() != service.namespace && resource.namespace() != root)
        {
            continue;
        }
        let spec = resource.spec_json();
        let selector: BTreeMap<String, String> = spec
            .pointer("/selector/matchLabels")
            .and_then(|m| serde_json::from_value(m.clone()).ok())
            .unwrap_or_default();
        if selector.is_empty()
            || service
                .instances
                .iter()
                .any(|i| labels_match(&selector, &i.labels))
        {
            related.push(resource);
            policies.push(summary(resource));
        }
    }
    let endpoints: Vec<Value> = service
        .instances
        .iter()
        .map(|i| json!({"address": i.address, "labels": i.labels, "origin": i.origin}))
        .collect();
    Some(json!({
        "host": service.hostname,
        "namespace": service.namespace,
        "ports": ports(service),
        "endpoints": endpoints,
        "subsets": subsets,
        "destination_rules": rules,
        "routes": routes,
        "policies": policies,
        "messages": super::messages::for_resources(&config, &related),
    }))
}

fn summary(resource: &Resource) -> Value {
    json!({"kind": resource.kind().to_string(), "namespace": resource.namespace(),
        "name": resource.name(), "spec": resource.spec_json()})
}
