//! The Kubernetes benchmark's cluster state, written through a real API server: namespace
//! `bench`, `services` selector-less Services `svc-N` (port 9080 `http`, target 8080), `pods`
//! Pods spread over them (labels `app: svc-N`, `version: v1`, on node `bench-node`, status
//! Running and Ready with a pod IP in 198.18.0.0/17, as a kubelet would report it), and one
//! EndpointSlice per Service listing its Pods (managed by `lateen-bench`, so no controller of
//! the cluster rewrites them). Addresses are never contacted: they only appear in config.
//!
//! Churn writes "marker" addresses: change `k` replaces the first endpoint of service
//! `k % services` with [`marker_address`]`(k)` (198.18.128.0/17), so a simulated proxy can tell
//! from an EDS response which changes it has seen.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, bail, ensure};
use futures_util::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use lateen_xds_load::generate::NAMESPACE;

/// Name of the node every pod runs on.
const NODE: &str = "bench-node";
/// Requests in flight while populating.
const CONCURRENCY: usize = 32;
/// First marker address: 198.18.128.0 (pods use 198.18.0.0/17).
const MARKER_BASE: u32 = u32::from_be_bytes([198, 18, 128, 0]);
/// Largest number of distinct markers (the /17).
pub const MAX_MARKERS: u32 = 1 << 15;

/// Address of pod `index` (198.18.0.0/17).
fn pod_address(index: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be_bytes([198, 18, 0, 0]) + index)
}

/// Address written by change `k`.
pub fn marker_address(k: u32) -> Ipv4Addr {
    Ipv4Addr::from(MARKER_BASE + (k % MAX_MARKERS))
}

/// The change a marker address stands for, if it is one.
pub fn marker_of(address: &str) -> Option<u32> {
    let ip: Ipv4Addr = address.parse().ok()?;
    let n = u32::from(ip);
    (MARKER_BASE..MARKER_BASE + MAX_MARKERS)
        .contains(&n)
        .then(|| n - MARKER_BASE)
}

/// Marker addresses in an encoded ClusterLoadAssignment. A byte scan, not a decode: every
/// simulated proxy runs this on every EDS response, on one core.
pub fn markers_in(encoded: &[u8]) -> impl Iterator<Item = u32> + '_ {
    memchr::memmem::find_iter(encoded, b"198.18.").filter_map(move |at| {
        let rest = &encoded[at..];
        let len = rest
            .iter()
            .take(15)
            .take_while(|b| b.is_ascii_digit() || **b == b'.')
            .count();
        marker_of(std::str::from_utf8(&rest[..len]).ok()?)
    })
}

/// The pods of service `service` when `pods` are spread round-robin over `services`.
fn pods_of(service: u32, services: u32, pods: u32) -> impl Iterator<Item = u32> {
    (service..pods).step_by(services as usize)
}

fn endpoint(address: Ipv4Addr, pod: u32) -> Value {
    json!({
        "addresses": [address.to_string()],
        "conditions": {"ready": true, "serving": true, "terminating": false},
        "nodeName": NODE,
        "targetRef": {"kind": "Pod", "namespace": NAMESPACE, "name": format!("pod-{pod}")},
    })
}

fn slice_endpoints(service: u32, services: u32, pods: u32, first: Option<Ipv4Addr>) -> Value {
    let list: Vec<Value> = pods_of(service, services, pods)
        .enumerate()
        .map(|(i, pod)| {
            let address = match (i, first) {
                (0, Some(marker)) => marker,
                _ => pod_address(pod),
            };
            endpoint(address, pod)
        })
        .collect();
    Value::Array(list)
}

async fn create<K>(api: &Api<K>, object: Value) -> anyhow::Result<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    let typed: K = serde_json::from_value(object).context("building an object")?;
    match api.create(&PostParams::default(), &typed).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(e)) if e.code == 409 => Ok(()),
        Err(e) => Err(e).context("creating an object"),
    }
}

/// Writes the namespace, node, services, pods (with their status) and slices. Idempotent.
pub async fn populate(client: &Client, services: u32, pods: u32) -> anyhow::Result<()> {
    ensure!(services >= 1, "--services must be at least 1");
    ensure!(
        pods >= services && pods < 1 << 15,
        "--pods must be between --services and 32767"
    );
    create(
        &Api::<Namespace>::all(client.clone()),
        json!({"metadata": {"name": NAMESPACE}}),
    )
    .await?;
    create(
        &Api::<Node>::all(client.clone()),
        json!({"metadata": {"name": NODE, "labels": {
            "topology.kubernetes.io/region": "bench", "topology.kubernetes.io/zone": "bench-a"}}}),
    )
    .await?;
    wait_for_default_service_account(client).await?;

    let svc_api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..services)
        .map(|i| {
            let api = svc_api.clone();
            async move {
                create(&api, json!({
                    "metadata": {"name": format!("svc-{i}"), "labels": {"app": format!("svc-{i}")}},
                    "spec": {"ports": [{"name": "http", "port": 9080, "targetPort": 8080, "protocol": "TCP"}]},
                }))
                .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!("[xds-load] {services} services written");

    let pod_api: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..pods)
        .map(|p| {
            let api = pod_api.clone();
            async move { create_running_pod(&api, p, p % services).await }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!("[xds-load] {pods} pods written (Running, Ready)");

    let slice_api: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    stream::iter(0..services)
        .map(|i| {
            let api = slice_api.clone();
            async move {
                create(
                    &api,
                    json!({
                        "metadata": {"name": slice_name(i), "labels": {
                            "kubernetes.io/service-name": format!("svc-{i}"),
                            "endpointslice.kubernetes.io/managed-by": "lateen-bench"}},
                        "addressType": "IPv4",
                        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
                        "endpoints": slice_endpoints(i, services, pods, None),
                    }),
                )
                .await
            }
        })
        .buffer_unordered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    eprintln!("[xds-load] {services} endpoint slices written");
    Ok(())
}

fn slice_name(service: u32) -> String {
    format!("svc-{service}-bench")
}

async fn create_running_pod(api: &Api<Pod>, pod: u32, service: u32) -> anyhow::Result<()> {
    let name = format!("pod-{pod}");
    create(api, json!({
        "metadata": {"name": name, "labels": {"app": format!("svc-{service}"), "version": "v1"}},
        "spec": {"nodeName": NODE, "serviceAccountName": "default",
                 "containers": [{"name": "app", "image": "bench", "ports": [{"name": "http", "containerPort": 8080}]}]},
    }))
    .await?;
    let ip = pod_address(pod).to_string();
    let status = json!({"status": {
        "phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}], "hostIP": "198.19.255.1",
        "conditions": [{"type": "Ready", "status": "True"}, {"type": "ContainersReady", "status": "True"}],
    }});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .with_context(|| format!("setting the status of {name}"))?;
    Ok(())
}

/// A namespace takes Pods only once kube-controller-manager made its `default` ServiceAccount.
async fn wait_for_default_service_account(client: &Client) -> anyhow::Result<()> {
    let api: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    for _ in 0..300 {
        if api.get_opt("default").await?.is_some() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bail!(
        "namespace {NAMESPACE} has no default ServiceAccount after 30 s (is kube-controller-manager running?)"
    )
}

/// Writes change `k`: service `k % services` gets marker `k` as its first endpoint.
pub async fn write_change(
    api: &Api<EndpointSlice>,
    k: u32,
    services: u32,
    pods: u32,
) -> anyhow::Result<()> {
    let service = k % services;
    let patch =
        json!({"endpoints": slice_endpoints(service, services, pods, Some(marker_address(k)))});
    api.patch(
        &slice_name(service),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .with_context(|| format!("writing change {k} to {}", slice_name(service)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_round_trip_and_stay_apart_from_pods() {
        assert_eq!(marker_address(0).to_string(), "198.18.128.0");
        assert_eq!(marker_of(&marker_address(3001).to_string()), Some(3001));
        assert_eq!(marker_of(&pod_address(4999).to_string()), None);
        assert_eq!(marker_of("not an address"), None);
    }

    #[test]
    fn markers_are_found_in_encoded_bytes() {
        let mut bytes = b"\x0a\x05svc-1\x12\x0c198.18.128.9\x18".to_vec();
        bytes.extend_from_slice(b"\x12\x0a198.18.3.4\x12\x0b198.18.200.1");
        assert_eq!(markers_in(&bytes).collect::<Vec<_>>(), [9, 72 * 256 + 1]);
    }

    #[test]
    fn pods_are_spread_over_services() {
        assert_eq!(
            pods_of(3, 1000, 5000).collect::<Vec<_>>(),
            [3, 1003, 2003, 3003, 4003]
        );
        let slice = slice_endpoints(1, 1000, 5000, Some(marker_address(7)));
        assert_eq!(slice[0]["addresses"][0], "198.18.128.7");
        assert_eq!(slice[1]["addresses"][0], pod_address(1001).to_string());
    }
}
