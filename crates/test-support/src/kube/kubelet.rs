//! Playing kubelet and scheduler, which a test cluster does not run: register a Node with
//! labels and a kubelet version, bind a Pod to it and report it running and ready with an IP
//! (through the status subresource, as the kubelet does), so that kube-controller-manager's
//! EndpointSlice controller lists it. Plain functions over a `kube::Client`, so the benchmark
//! can use them as well as tests.
//!
//! Pod IPs must not be loopback (the API server rejects such EndpointSlice addresses); use the
//! test range 198.18.0.0/15, which is only ever routed inside network namespaces a test makes.

use std::net::IpAddr;
use std::time::Duration;

use ::kube::Client;
use ::kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

/// The kubelet version Nodes report (the test cluster's own).
pub const KUBELET_VERSION: &str = "v1.36.3";

/// Creates Node `name` with `labels` (e.g. `topology.kubernetes.io/zone`) and reports it Ready
/// with `internal_ip` and [`KUBELET_VERSION`].
pub async fn create_node(
    client: &Client,
    name: &str,
    labels: &[(&str, &str)],
    internal_ip: IpAddr,
) -> Result<Node, ::kube::Error> {
    let nodes: Api<Node> = Api::all(client.clone());
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .chain([("kubernetes.io/hostname".to_string(), Value::from(name))])
        .collect();
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": labels },
    }))
    .map_err(::kube::Error::SerdeError)?;
    nodes.create(&PostParams::default(), &node).await?;
    let status = json!({ "status": {
        "conditions": [{
            "type": "Ready", "status": "True", "reason": "KubeletReady",
            "message": "kubelet is posting ready status (lateen test)"
        }],
        "addresses": [
            { "type": "InternalIP", "address": internal_ip.to_string() },
            { "type": "Hostname", "address": name }
        ],
        "nodeInfo": {
            "kubeletVersion": KUBELET_VERSION, "kubeProxyVersion": "",
            "architecture": std::env::consts::ARCH, "operatingSystem": "linux",
            "osImage": "lateen test node", "kernelVersion": "", "containerRuntimeVersion": "lateen-test://0",
            "machineID": "", "systemUUID": "", "bootID": ""
        }
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
}

/// Binds Pod `namespace/name` to `node` (unless already bound) and reports it Running with
/// `pod_ip`, every container started and ready, init containers completed (native sidecars,
/// `restartPolicy: Always`, running and ready).
pub async fn set_pod_running(
    client: &Client,
    namespace: &str,
    name: &str,
    node: &str,
    pod_ip: IpAddr,
) -> Result<Pod, ::kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pods.get(name).await?;
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_ref())
        .is_none()
    {
        let binding = json!({
            "apiVersion": "v1", "kind": "Binding",
            "metadata": { "name": name, "namespace": namespace },
            "target": { "apiVersion": "v1", "kind": "Node", "name": node }
        });
        let _: Value = pods
            .create_subresource("binding", name, &PostParams::default(), &binding)
            .await?;
    }
    let host_ip = node_internal_ip(client, node).await;
    let spec = serde_json::to_value(&pod.spec).map_err(::kube::Error::SerdeError)?;
    let mut status = json!({
        "phase": "Running",
        "podIP": pod_ip.to_string(),
        "podIPs": [{ "ip": pod_ip.to_string() }],
        "conditions": conditions(true),
        "containerStatuses": container_statuses(&spec["containers"], true, false),
        "initContainerStatuses": container_statuses(&spec["initContainers"], true, true),
    });
    if let Some(host_ip) = host_ip {
        status["hostIP"] = json!(host_ip);
        status["hostIPs"] = json!([{ "ip": host_ip }]);
    }
    pods.patch_status(
        name,
        &PatchParams::default(),
        &Patch::Merge(&json!({ "status": status })),
    )
    .await
}

/// Reports a running Pod's readiness (its containers' too), as a failing or recovering
/// readiness probe would.
pub async fn set_pod_ready(
    client: &Client,
    namespace: &str,
    name: &str,
    ready: bool,
) -> Result<Pod, ::kube::Error> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pod = pods.get(name).await?;
    let spec = serde_json::to_value(&pod.spec).map_err(::kube::Error::SerdeError)?;
    let status = json!({ "status": {
        "conditions": conditions(ready),
        "containerStatuses": container_statuses(&spec["containers"], ready, false),
        "initContainerStatuses": container_statuses(&spec["initContainers"], ready, true),
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
}

/// Waits up to `timeout` until `label_selector` in `namespace` matches at least `count` Pods
/// (e.g. those kube-controller-manager creates for a Deployment); returns them.
pub async fn wait_for_pods(
    client: &Client,
    namespace: &str,
    label_selector: &str,
    count: usize,
    timeout: Duration,
) -> Result<Vec<Pod>, String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let last = match pods
            .list(&ListParams::default().labels(label_selector))
            .await
        {
            Ok(list) if list.items.len() >= count => return Ok(list.items),
            Ok(list) => format!("{} of {count} pods", list.items.len()),
            Err(e) => e.to_string(),
        };
        if tokio::time::Instant::now() > deadline {
            return Err(format!(
                "pods {label_selector:?} in {namespace} after {timeout:?}: {last}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn node_internal_ip(client: &Client, node: &str) -> Option<String> {
    let node = Api::<Node>::all(client.clone()).get(node).await.ok()?;
    node.status?
        .addresses?
        .into_iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address)
}

fn conditions(ready: bool) -> Value {
    let ready = if ready { "True" } else { "False" };
    json!([
        { "type": "PodReadyToStartContainers", "status": "True" },
        { "type": "Initialized", "status": "True" },
        { "type": "Ready", "status": ready },
        { "type": "ContainersReady", "status": ready },
        { "type": "PodScheduled", "status": "True" },
    ])
}

/// Statuses for the containers of a pod spec's `containers` or `initContainers` list.
fn container_statuses(containers: &Value, ready: bool, init: bool) -> Value {
    let Some(list) = containers.as_array() else {
        return json!([]);
    };
    let statuses: Vec<Value> = list
        .iter()
        .map(|c| {
            let name = c["name"].as_str().unwrap_or_default();
            let sidecar = c["restartPolicy"].as_str() == Some("Always");
            let (state, is_ready, started) = if init && !sidecar {
                (
                    json!({ "terminated": { "exitCode": 0, "reason": "Completed" } }),
                    false,
                    false,
                )
            } else {
                (json!({ "running": {} }), ready, true)
            };
            json!({
                "name": name,
                "image": c["image"].as_str().unwrap_or_default(),
                "imageID": "",
                "containerID": format!("lateen-test://{name}"),
                "ready": is_ready,
                "started": started,
                "restartCount": 0,
                "state": state,
            })
        })
        .collect();
    Value::Array(statuses)
}
