use std::collections::BTreeMap;

use super::*;
use crate::kube::objects::{EndpointInfo, PodInfo, ServiceInfo, SliceInfo};

fn svc(name: &str) -> Arc<ServiceInfo> {
    Arc::new(ServiceInfo {
        namespace: "shop".into(),
        name: name.into(),
        labels: BTreeMap::new(),
        cluster_ips: vec!["10.96.0.1".into()],
        external_name: None,
        ports: Vec::new(),
        export_to: Vec::new(),
    })
}

fn slice(service: &str, pods: &[&str]) -> Arc<SliceInfo> {
    Arc::new(SliceInfo {
        namespace: "shop".into(),
        service: service.into(),
        ports: BTreeMap::new(),
        endpoints: pods
            .iter()
            .enumerate()
            .map(|(i, pod)| EndpointInfo {
                addresses: vec![format!("10.1.{}.{i}", service.len())],
                ready: true,
                pod: Some((*pod).to_string()),
                node: None,
            })
            .collect(),
    })
}

fn pod(version: &str) -> Arc<PodInfo> {
    Arc::new(PodInfo {
        labels: [("version".to_string(), version.to_string())].into(),
        service_account: "shop".into(),
        node: String::new(),
        ips: Vec::new(),
    })
}

fn objects() -> ClusterObjects {
    let mut o = ClusterObjects::default();
    for (name, pods) in [("a", ["a-1", "a-2"]), ("b", ["b-1", "b-2"])] {
        o.services.insert(format!("shop/{name}"), svc(name));
        o.slices
            .insert(format!("shop/{name}-x"), slice(name, &pods));
        for p in pods {
            o.pods.insert(format!("shop/{p}"), pod("v1"));
        }
    }
    o
}

fn everything() -> Dirty {
    let mut d = Dirty::default();
    d.all();
    d
}

fn by_host<'a>(all: &'a [Arc<Service>], host: &str) -> &'a Arc<Service> {
    all.iter()
        .find(|s| s.hostname == host)
        .unwrap_or_else(|| panic!("no {host}"))
}

const A: &str = "a.shop.svc.cluster.local";
const B: &str = "b.shop.svc.cluster.local";

#[test]
fn only_marked_services_are_converted_again() {
    let mut objects = objects();
    let mut cache = ServiceCache::default();
    let (first, converted) = cache.update(&objects, everything(), "cluster.local", &|_| true);
    assert_eq!((first.len(), converted), (2, 2));

    // A slice of `a` changes: only `a` is converted, `b` is handed on as the same value.
    objects
        .slices
        .insert("shop/a-x".into(), slice("a", &["a-1"]));
    let mut dirty = Dirty::default();
    dirty.service("shop", "a");
    let (second, converted) = cache.update(&objects, dirty, "cluster.local", &|_| true);
    assert_eq!(converted, 1);
    assert_eq!(by_host(&second, A).instances.len(), 1);
    assert!(Arc::ptr_eq(by_host(&first, B), by_host(&second, B)));

    // Nothing marked: nothing converted, everything the same.
    let (third, converted) = cache.update(&objects, Dirty::default(), "cluster.local", &|_| true);
    assert_eq!(converted, 0);
    assert!(third.iter().zip(&second).all(|(x, y)| Arc::ptr_eq(x, y)));
}

#[test]
fn a_pod_change_reconverts_the_services_whose_slices_list_it() {
    let mut objects = objects();
    let mut cache = ServiceCache::default();
    let (first, _) = cache.update(&objects, everything(), "cluster.local", &|_| true);
    objects.pods.insert("shop/b-2".into(), pod("v2"));
    let mut dirty = Dirty::default();
    dirty.pod("shop/b-2");
    let (second, converted) = cache.update(&objects, dirty, "cluster.local", &|_| true);
    assert_eq!(converted, 1);
    assert!(Arc::ptr_eq(by_host(&first, A), by_host(&second, A)));
    let versions: Vec<&str> = by_host(&second, B)
        .instances
        .iter()
        .map(|i| i.labels.get("version").map_or("", String::as_str))
        .collect();
    assert_eq!(versions, ["v1", "v2"]);
}

#[test]
fn removed_and_unselected_services_leave() {
    let mut objects = objects();
    let mut cache = ServiceCache::default();
    cache.update(&objects, everything(), "cluster.local", &|_| true);
    objects.services.remove("shop/a");
    let mut dirty = Dirty::default();
    dirty.service_key("shop/a");
    let (left, _) = cache.update(&objects, dirty, "cluster.local", &|_| true);
    assert_eq!(left.len(), 1);
    let (none, _) = cache.update(&objects, everything(), "cluster.local", &|_| false);
    assert!(none.is_empty());
}
