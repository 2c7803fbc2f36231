//! lateend reading a real Kubernetes API server (etcd + kube-apiserver + kube-controller-manager
//! from `lateen_test_support::kube::TestCluster`), run as a process with `--kubeconfig`, with a
//! real Envoy and a real lateen-proxy connected to it over ADS:
//!
//! - Services, EndpointSlices and Pods written through the API reach both proxies as clusters
//!   and endpoints, and leave them when deleted, each within a second (the time is printed);
//!   a Pod turning unready leaves through kube-controller-manager's own EndpointSlice update;
//! - Istio's CRDs installed after lateend started (a missing CRD is retried, not fatal), a
//!   DestinationRule subset selects Pods by label;
//! - the API server restarted (every watch cut) and then etcd compacted under it (every resumed
//!   watch gets 410 Gone and relists): changes made meanwhile arrive, nothing is lost or
//!   duplicated;
//! - in a pod (its ServiceAccount token mounted, `KUBERNETES_SERVICE_*` set) lateend needs no
//!   flag at all: no folder, no kubeconfig.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::kube_source::{install_crds, kubectl_ok, lateend};
use common::lateend::{Lateend, start_lateend_with};
use common::{envoy_or_skip, get};
use dataplane::{DataPlane, Running};
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use lateen_test_support::kube::{TestCluster, kubelet};
use serde_json::json;

const NS: &str = "default";
const CLUSTER: &str = "outbound|9080||reviews.default.svc.cluster.local";
const SUBSET_V1: &str = "outbound|9080|v1|reviews.default.svc.cluster.local";
/// How fast a change must reach the proxies.
const PROPAGATION: Duration = Duration::from_secs(1);
/// The same through kube-controller-manager's EndpointSlice controller (its own sync adds).
const KCM_PROPAGATION: Duration = Duration::from_secs(3);

/// The endpoints (`ip:port`) a proxy has for `cluster`, or `None` when it has no such cluster.
async fn endpoints(running: &Running, cluster: &str) -> Option<Vec<String>> {
    match running.plane {
        DataPlane::Envoy => {
            let admin = running.process.admin_port().await?;
            let (_, body) = get(admin, "x", "/clusters", &[]).await?;
            let prefix = format!("{cluster}::");
            let mut found = false;
            let mut out = Vec::new();
            for line in body.lines().filter_map(|l| l.strip_prefix(&prefix)) {
                found = true;
                // `IP:PORT::cx_active::0`; the cluster's own lines are `observability_name::...`.
                if let Some((addr, "health_flags")) = line
                    .split_once("::")
                    .map(|(a, rest)| (a, rest.split("::").next().unwrap_or_default()))
                {
                    out.push(addr.to_string());
                }
            }
            found.then(|| {
                out.sort();
                out
            })
        }
        DataPlane::LateenProxy => {
            let admin = running.admin?;
            let (_, body) = get(admin, "x", "/config_dump", &[]).await?;
            let dump: serde_json::Value = serde_json::from_str(&body).ok()?;
            let clusters = dump["config"]["clusters"].as_array()?;
            let c = clusters.iter().find(|c| c["name"] == cluster)?;
            let mut out: Vec<String> = c["endpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["address"].as_str().map(String::from))
                .collect();
            out.sort();
            Some(out)
        }
    }
}

/// Waits (bounded by `limit`) until every proxy's view of `cluster` is `want` (None: absent);
/// returns the time it took, or panics naming the proxy and what it has.
async fn converge(
    proxies: &[&Running],
    cluster: &str,
    want: Option<Vec<String>>,
    limit: Duration,
) -> Duration {
    let started = Instant::now();
    for proxy in proxies {
        loop {
            let have = endpoints(proxy, cluster).await;
            if have == want {
                break;
            }
            if started.elapsed() > limit {
                panic!(
                    "{} has {have:?} for {cluster} after {:?}, want {want:?}\n{}",
                    proxy.plane.name(),
                    started.elapsed(),
                    proxy.process.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    started.elapsed()
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([198, 18, 77, n])
}

/// The endpoints `ip(n):9080` of `hosts`, sorted as [`endpoints`] returns them.
fn at(hosts: &[u8]) -> Option<Vec<String>> {
    let mut out: Vec<String> = hosts.iter().map(|n| format!("{}:9080", ip(*n))).collect();
    out.sort();
    Some(out)
}

async fn create_service(client: &kube::Client) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "reviews", "namespace": NS},
        "spec": {"ports": [{"name": "http", "port": 9080, "targetPort": 9080}]}
    }))
    .expect("service");
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &svc)
        .await
        .expect("create service");
}

/// A Pod `name` labelled `app` and `version`, running on node-a at `ip` (as a kubelet would report it). The
/// namespace's `default` ServiceAccount comes from kube-controller-manager: retried until then.
async fn create_pod(client: &kube::Client, name: &str, app: &str, version: &str, pod_ip: IpAddr) {
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {"app": app, "version": version}},
        "spec": {"serviceAccountName": "default", "containers": [{"name": "app", "image": "lateen/sample-app"}]}
    }))
    .expect("pod");
    let pods = Api::<Pod>::namespaced(client.clone(), NS);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match pods.create(&PostParams::default(), &pod).await {
            Ok(_) => break,
            Err(e) if Instant::now() < deadline => {
                eprintln!("creating pod {name}: {e}; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(e) => panic!("creating pod {name}: {e}"),
        }
    }
    kubelet::set_pod_running(client, NS, name, "node-a", pod_ip)
        .await
        .expect("pod running");
}

/// The EndpointSlice of `reviews` (written by the test, as a selector-less Service's slices
/// are): every `(pod, ip)` ready on port 9080.
fn slice(name: &str, pods: &[(&str, IpAddr)]) -> EndpointSlice {
    let endpoints: Vec<serde_json::Value> = pods
        .iter()
        .map(|(pod, ip)| {
            json!({"addresses": [ip.to_string()], "conditions": {"ready": true},
                   "nodeName": "node-a", "targetRef": {"kind": "Pod", "name": pod, "namespace": NS}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": NS, "labels": {
            "kubernetes.io/service-name": "reviews",
            "endpointslice.kubernetes.io/managed-by": "lateen-test"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 9080, "protocol": "TCP"}],
        "endpoints": endpoints
    }))
    .expect("slice")
}

async fn put_slice(client: &kube::Client, slice: &EndpointSlice) {
    let name = slice.metadata.name.clone().unwrap_or_default();
    Api::<EndpointSlice>::namespaced(client.clone(), NS)
        .patch(
            &name,
            &PatchParams::apply("lateen-test").force(),
            &Patch::Apply(slice),
        )
        .await
        .expect("apply slice");
}

/// lateen-proxy alone connected to `lateend` (where Envoy is not needed: it shows what lateend
/// sends).
async fn lateen_proxy(lateend: &Lateend, work: &std::path::Path) -> Running {
    let no_envoy = std::path::PathBuf::from("/nonexistent/envoy");
    dataplane::start(DataPlane::LateenProxy, &no_envoy, work, lateend.xds, 9080).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_services_reach_envoy_and_lateen_proxy() {
    let Some(cluster) = TestCluster::start_or_skip("kube_registry") else {
        return;
    };
    let Some(envoy_bin) = envoy_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let client = cluster.client().await;
    kubelet::create_node(
        &client,
        "node-a",
        &[
            ("topology.kubernetes.io/region", "eu-west"),
            ("topology.kubernetes.io/zone", "eu-west-1a"),
        ],
        ip(250),
    )
    .await
    .expect("node");
    // Started before Istio's CRDs exist: those watches must wait, not fail.
    let lateend = lateend(&cluster, work.path()).await;
    let envoy =
        dataplane::start(DataPlane::Envoy, &envoy_bin, work.path(), lateend.xds, 9080).await;
    let lateen = dataplane::start(
        DataPlane::LateenProxy,
        &envoy_bin,
        work.path(),
        lateend.xds,
        9080,
    )
    .await;
    let proxies = [&envoy, &lateen];

    create_pod(&client, "reviews-v1", "reviews", "v1", ip(1)).await;
    create_pod(&client, "reviews-v2", "reviews", "v2", ip(2)).await;
    create_service(&client).await;
    let started = Instant::now();
    put_slice(
        &client,
        &slice("reviews-1", &[("reviews-v1", ip(1)), ("reviews-v2", ip(2))]),
    )
    .await;
    let took = converge(&proxies, CLUSTER, at(&[1, 2]), PROPAGATION).await;
    println!(
        "Service + EndpointSlice → both proxies: {took:?} ({:?} since the first write)",
        started.elapsed()
    );

    // An endpoint leaving its slice leaves both proxies.
    put_slice(&client, &slice("reviews-1", &[("reviews-v1", ip(1))])).await;
    let took = converge(&proxies, CLUSTER, at(&[1]), PROPAGATION).await;
    println!("endpoint removed → both proxies: {took:?}");
    put_slice(
        &client,
        &slice("reviews-1", &[("reviews-v1", ip(1)), ("reviews-v2", ip(2))]),
    )
    .await;
    converge(&proxies, CLUSTER, at(&[1, 2]), PROPAGATION).await;

    // A DestinationRule subset (CRDs installed now) selects pods by label.
    install_crds(&cluster).await;
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews, namespace: default}\nspec:\n  host: reviews\n  subsets:\n  - {name: v1, labels: {version: v1}}\n  - {name: v2, labels: {version: v2}}\n";
    kubectl_ok(&cluster, &["apply", "-f", "-"], Some(dr.as_bytes()));
    // The DestinationRule watch was backing off while its CRD was missing (at most 30 s).
    let took = converge(&proxies, SUBSET_V1, at(&[1]), Duration::from_secs(40)).await;
    println!("DestinationRule subset v1 (after its CRD appeared) → both proxies: {took:?}");
    let log = lateend.process.log();
    let warned = log
        .lines()
        .filter(|l| l.contains("watch failed") && l.contains("kind=DestinationRule"))
        .count();
    assert_eq!(warned, 1, "the missing CRD is logged once:\n{log}");

    // A pod's labels change: the subset follows.
    Api::<Pod>::namespaced(client.clone(), NS)
        .patch(
            "reviews-v2",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"version": "v1"}}})),
        )
        .await
        .expect("relabel");
    let took = converge(&proxies, SUBSET_V1, at(&[1, 2]), PROPAGATION).await;
    println!("pod relabelled → subset v1 on both proxies: {took:?}");

    // A Service with a selector: kube-controller-manager writes its EndpointSlice from the
    // Pods' readiness, and a Pod turning unready leaves through that slice.
    create_pod(&client, "ratings-v1", "ratings", "v1", ip(11)).await;
    let ratings: Service = serde_json::from_value(json!({
        "metadata": {"name": "ratings", "namespace": NS},
        "spec": {"selector": {"app": "ratings"}, "ports": [{"name": "http", "port": 9080}]}
    }))
    .expect("ratings service");
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &ratings)
        .await
        .expect("create ratings");
    let ratings_cluster = "outbound|9080||ratings.default.svc.cluster.local";
    let took = converge(&proxies, ratings_cluster, at(&[11]), KCM_PROPAGATION).await;
    println!("selector Service, slice by kube-controller-manager → both proxies: {took:?}");
    kubelet::set_pod_ready(&client, NS, "ratings-v1", false)
        .await
        .expect("unready");
    let took = converge(&proxies, ratings_cluster, at(&[]), KCM_PROPAGATION).await;
    println!("pod unready (slice by kube-controller-manager) → endpoint gone: {took:?}");

    // MeshConfig discoverySelectors (the `istio` ConfigMap of istio-system): a namespace no
    // selector matches is not read at all; labelling it brings its services back.
    let mesh = "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: istio, namespace: istio-system}\ndata:\n  mesh: |\n    discoverySelectors:\n    - matchLabels: {mesh: enabled}\n";
    kubectl_ok(&cluster, &["apply", "-f", "-"], Some(mesh.as_bytes()));
    let took = converge(&proxies, CLUSTER, None, PROPAGATION).await;
    println!("discoverySelectors leave out namespace default → gone from both proxies: {took:?}");
    kubectl_ok(&cluster, &["label", "namespace", NS, "mesh=enabled"], None);
    let took = converge(&proxies, CLUSTER, at(&[1, 2]), PROPAGATION).await;
    println!("namespace default labelled → back on both proxies: {took:?}");

    // Deleting the Service and its slice removes the cluster.
    Api::<Service>::namespaced(client.clone(), NS)
        .delete("reviews", &DeleteParams::default())
        .await
        .expect("delete service");
    Api::<EndpointSlice>::namespaced(client.clone(), NS)
        .delete("reviews-1", &DeleteParams::default())
        .await
        .expect("delete slice");
    let took = converge(&proxies, CLUSTER, None, PROPAGATION).await;
    println!("Service deleted → gone from both proxies: {took:?}");
    assert!(
        !lateend.process.log().contains("panicked"),
        "{}",
        lateend.process.log_tail()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_cut_and_410_relist_lose_nothing() {
    let Some(cluster) = TestCluster::start_or_skip("kube_registry watch cut") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let client = cluster.client().await;
    kubelet::create_node(&client, "node-a", &[], ip(250))
        .await
        .expect("node");
    let lateend = lateend(&cluster, work.path()).await;
    let proxy = lateen_proxy(&lateend, work.path()).await;
    let proxies = [&proxy];
    for (n, name) in [(1, "r1"), (2, "r2"), (3, "r3"), (4, "r4")] {
        create_pod(&client, name, "reviews", "v1", ip(n)).await;
    }
    create_service(&client).await;
    put_slice(
        &client,
        &slice("reviews-a", &[("r1", ip(1)), ("r2", ip(2))]),
    )
    .await;
    put_slice(&client, &slice("reviews-b", &[("r3", ip(3))])).await;
    converge(&proxies, CLUSTER, at(&[1, 2, 3]), PROPAGATION).await;

    // Watch cut: the API server restarts; a change made as it comes back arrives.
    let cut = Instant::now();
    cluster.restart_apiserver().expect("restart the API server");
    put_slice(
        &client,
        &slice("reviews-b", &[("r3", ip(3)), ("r4", ip(4))]),
    )
    .await;
    let took = converge(
        &proxies,
        CLUSTER,
        at(&[1, 2, 3, 4]),
        Duration::from_secs(40),
    )
    .await;
    println!(
        "after an API server restart ({:?}), a new endpoint reached the proxy in {took:?}",
        cut.elapsed()
    );

    // 410 Gone: etcd compacted and the API server restarted; a slice deleted before lateend's
    // watches come back is only seen through the relist, which replaces the whole kind.
    // Two writes lateend does not watch, so that every watch's resourceVersion is older than
    // the compaction by more than one revision (a watch resuming just below the compacted
    // revision asks etcd for events from that very revision, which it still has).
    for args in [
        &["create", "configmap", "tick", "-n", NS][..],
        &["label", "configmap", "tick", "-n", NS, "tick=2"][..],
    ] {
        kubectl_ok(&cluster, args, None);
    }
    cluster.expire_watches().expect("expire watches");
    Api::<EndpointSlice>::namespaced(client.clone(), NS)
        .delete("reviews-a", &DeleteParams::default())
        .await
        .expect("delete slice a");
    let took = converge(&proxies, CLUSTER, at(&[3, 4]), Duration::from_secs(40)).await;
    println!("after 410 Gone, the deleted slice left the proxy in {took:?}");
    common::wait_until("lateend relisting EndpointSlices", || async {
        let log = lateend.process.log();
        log.lines().any(|l| {
            l.contains("relisted after a watch restart") && l.contains("kind=EndpointSlice")
        })
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", lateend.process.log_tail()));

    // The watch is live again: a change arrives within the usual second, exactly once.
    put_slice(&client, &slice("reviews-a", &[("r1", ip(1))])).await;
    converge(&proxies, CLUSTER, at(&[1, 3, 4]), PROPAGATION).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_pod_lateend_needs_no_source_flag() {
    let Some(cluster) = TestCluster::start_or_skip("kube_registry in-cluster") else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let client = cluster.client().await;
    let setup = "apiVersion: v1\nkind: Namespace\nmetadata: {name: istio-system}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: lateend, namespace: istio-system}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: lateend-test}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects: [{kind: ServiceAccount, name: lateend, namespace: istio-system}]\n";
    kubectl_ok(&cluster, &["apply", "-f", "-"], Some(setup.as_bytes()));
    let token = cluster
        .service_account_token("istio-system", "lateend", &[])
        .expect("token");
    let mut command = cluster
        .in_cluster_command(
            std::path::Path::new(env!("CARGO_BIN_EXE_lateend")),
            "istio-system",
            &token,
        )
        .expect("in-cluster command");
    command.env("POD_NAMESPACE", "istio-system");
    let lateend = start_lateend_with(command, work.path(), &[]).await;
    let proxy = lateen_proxy(&lateend, work.path()).await;
    kubelet::create_node(&client, "node-a", &[], ip(250))
        .await
        .expect("node");
    create_pod(&client, "reviews-v1", "reviews", "v1", ip(1)).await;
    create_service(&client).await;
    put_slice(&client, &slice("reviews-1", &[("reviews-v1", ip(1))])).await;
    let took = converge(&[&proxy], CLUSTER, at(&[1]), PROPAGATION).await;
    println!("in-cluster lateend: Service → lateen-proxy in {took:?}");
    assert!(
        lateend.process.log().contains("cluster source synced"),
        "{}",
        lateend.process.log_tail()
    );
}
