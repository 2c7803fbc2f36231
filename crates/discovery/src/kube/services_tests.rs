//! Unit tests of the registry conversion, from k8s-openapi objects as the API server sends
//! them.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use lateen_api::networking::Resolution;
use serde_json::json;

use super::*;
use crate::kube::objects::{NodeInfo, PodInfo, ServiceInfo, SliceInfo};

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
}

fn endpoint(ip: &str, pod: &str, ready: Option<bool>, terminating: bool) -> serde_json::Value {
    let mut conditions = json!({"terminating": terminating});
    if let Some(r) = ready {
        conditions["ready"] = json!(r);
        conditions["serving"] = json!(r);
    }
    json!({"addresses": [ip], "conditions": conditions, "nodeName": "node-a",
           "targetRef": {"kind": "Pod", "name": pod, "namespace": "shop"}})
}

fn objects() -> ClusterObjects {
    let svc: Service = from(json!({
        "metadata": {"name": "reviews", "namespace": "shop",
                     "annotations": {"networking.istio.io/exportTo": "., istio-system"}},
        "spec": {"clusterIP": "10.96.0.20", "clusterIPs": ["10.96.0.20"], "ports": [
            {"name": "http-web", "port": 9080, "targetPort": 8080},
            {"name": "api", "port": 9090, "appProtocol": "grpc", "targetPort": "api"},
        ]}
    }));
    let headless: Service = from(json!({
        "metadata": {"name": "db", "namespace": "shop"},
        "spec": {"clusterIP": "None", "ports": [{"name": "mysql", "port": 3306}]}
    }));
    let external: Service = from(json!({
        "metadata": {"name": "payments", "namespace": "shop", "labels": {"app": "payments"}},
        "spec": {"type": "ExternalName", "externalName": "pay.example.com",
                 "ports": [{"name": "https", "port": 443}]}
    }));
    let hidden: Service = from(json!({
        "metadata": {"name": "secret", "namespace": "other"},
        "spec": {"clusterIP": "10.96.0.30", "ports": [{"name": "http", "port": 80}]}
    }));
    let slice_a: EndpointSlice = from(json!({
        "metadata": {"name": "reviews-a", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "reviews"}},
        "addressType": "IPv4",
        "ports": [{"name": "http-web", "port": 8080}, {"name": "api", "port": 7070}],
        "endpoints": [
            endpoint("10.1.0.1", "reviews-v1", Some(true), false),
            endpoint("10.1.0.2", "reviews-v2", None, false),
            endpoint("10.1.0.3", "reviews-old", Some(false), true),
            endpoint("10.1.0.4", "reviews-starting", Some(false), false),
            endpoint("10.1.0.5", "reviews-unseen", Some(true), false),
        ]
    }));
    // The same endpoint in a second slice (slices being rebalanced) counts once.
    let slice_b: EndpointSlice = from(json!({
        "metadata": {"name": "reviews-b", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "reviews"}},
        "addressType": "IPv4",
        "ports": [{"name": "http-web", "port": 8080}, {"name": "api", "port": 7070}],
        "endpoints": [endpoint("10.1.0.1", "reviews-v1", Some(true), false)]
    }));
    let pod = |name: &str, version: &str, ip: &str, extra: serde_json::Value| -> Pod {
        let mut labels = json!({"app": "reviews", "version": version});
        if let Some(extra) = extra.as_object() {
            for (k, v) in extra {
                labels[k] = v.clone();
            }
        }
        from(json!({
            "metadata": {"name": name, "namespace": "shop", "labels": labels},
            "spec": {"serviceAccountName": "bookinfo-reviews", "nodeName": "node-a",
                     "containers": [{"name": "app"}]},
            "status": {"podIP": ip, "podIPs": [{"ip": ip}]}
        }))
    };
    let node: Node = from(json!({
        "metadata": {"name": "node-a", "labels": {
            "topology.kubernetes.io/region": "eu-west", "topology.kubernetes.io/zone": "eu-west-1a",
            "topology.istio.io/subzone": "rack7"}},
        "status": {"nodeInfo": {"kubeletVersion": "v1.36.2", "architecture": "amd64",
            "bootID": "", "containerRuntimeVersion": "", "kernelVersion": "", "kubeProxyVersion": "",
            "machineID": "", "operatingSystem": "linux", "osImage": "", "systemUUID": ""}}
    }));
    let mut o = ClusterObjects::default();
    for s in [svc, headless, external, hidden] {
        let info = ServiceInfo::from_service(&s);
        o.services
            .insert(format!("{}/{}", info.namespace, info.name), Arc::new(info));
    }
    for (name, s) in [("reviews-a", slice_a), ("reviews-b", slice_b)] {
        let info = SliceInfo::from_slice(&s).unwrap_or_else(|| panic!("slice"));
        o.slices.insert(format!("shop/{name}"), Arc::new(info));
    }
    for (name, version, ip, extra) in [
        ("reviews-v1", "v1", "10.1.0.1", json!({})),
        (
            "reviews-v2",
            "v2",
            "10.1.0.2",
            json!({"istio-locality": "us.us-east1.b"}),
        ),
        ("reviews-old", "v0", "10.1.0.3", json!({})),
        ("reviews-starting", "v3", "10.1.0.4", json!({})),
    ] {
        o.pods.insert(
            format!("shop/{name}"),
            Arc::new(PodInfo::from_pod(&pod(name, version, ip, extra))),
        );
    }
    o.nodes
        .insert("node-a".into(), Arc::new(NodeInfo::from_node(&node)));
    o
}

fn service<'a>(
    all: &'a [Arc<crate::registry::Service>],
    host: &str,
) -> &'a crate::registry::Service {
    all.iter().find(|s| s.hostname == host).unwrap_or_else(|| {
        panic!(
            "no {host} in {:?}",
            all.iter().map(|s| &s.hostname).collect::<Vec<_>>()
        )
    })
}

#[test]
fn cluster_ip_service_as_istiod_builds_it() {
    let all = build_services(&objects(), "cluster.local", &|_| true);
    let reviews = service(&all, "reviews.shop.svc.cluster.local");
    assert_eq!(reviews.addresses, ["10.96.0.20"]);
    assert_eq!(reviews.resolution, Resolution::Static);
    assert_eq!(reviews.export_to, [".", "istio-system"]);
    let ports: Vec<(&str, u32, &str, Option<u32>)> = reviews
        .ports
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.number,
                p.protocol.as_str(),
                p.target_port,
            )
        })
        .collect();
    assert_eq!(
        ports,
        [
            ("http-web", 9080, "HTTP", Some(8080)),
            ("api", 9090, "GRPC", None)
        ]
    );
    // Ready (or unset) endpoints only; the terminating and the not-ready ones are out, and the
    // one whose pod is not known yet waits; the duplicate counts once.
    let addresses: Vec<&str> = reviews
        .instances
        .iter()
        .map(|i| i.address.as_str())
        .collect();
    assert_eq!(addresses, ["10.1.0.1", "10.1.0.2"]);
    let v1 = &reviews.instances[0];
    assert_eq!(v1.labels.get("version").map(String::as_str), Some("v1"));
    assert_eq!(v1.service_account, "bookinfo-reviews");
    assert_eq!(v1.locality, "eu-west/eu-west-1a/rack7");
    assert_eq!(reviews.endpoint_port(v1, &reviews.ports[1]), 7070);
    assert_eq!(reviews.instances[1].locality, "us/us-east1/b");
}

#[test]
fn headless_and_external_name_services() {
    let all = build_services(&objects(), "cluster.local", &|_| true);
    let db = service(&all, "db.shop.svc.cluster.local");
    assert_eq!(db.resolution, Resolution::None);
    assert!(db.addresses.is_empty());
    assert_eq!(db.ports[0].protocol, "MYSQL");
    let pay = service(&all, "payments.shop.svc.cluster.local");
    assert_eq!(pay.resolution, Resolution::Dns);
    assert!(pay.addresses.is_empty());
    assert_eq!(pay.instances.len(), 1);
    assert_eq!(pay.instances[0].address, "pay.example.com");
    assert_eq!(pay.endpoint_port(&pay.instances[0], &pay.ports[0]), 443);
}

#[test]
fn unselected_namespaces_are_not_read() {
    let all = build_services(&objects(), "cluster.local", &|ns| ns == "shop");
    assert!(all.iter().all(|s| s.namespace == "shop"));
    assert_eq!(all.len(), 3);
    let everything = build_services(&objects(), "cluster.local", &|_| true);
    assert_eq!(everything.len(), 4);
}
