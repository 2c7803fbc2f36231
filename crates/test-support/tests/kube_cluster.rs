//! The test cluster is a real one: kube-controller-manager gives namespaces their default
//! ServiceAccount and Deployments their Pods, pods reported running become EndpointSlice
//! endpoints, RBAC is enforced for ServiceAccount tokens, webhooks by `service:` reference are
//! really called where `set_host` says, and the watch disturbances do what they promise.
//!
//! Needs the binaries of `scripts/kube-test-bins.sh` (skips with a NOTICE without them, fails
//! under `LATEEN_REQUIRE_TOOLS`), and root for the webhook test (it binds 127.x.y.z:443).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, ListParams, PostParams, WatchEvent, WatchParams};
use lateen_test_support::kube::{TestCluster, client_for, kubelet};
use lateen_test_support::test_ca::TestCa;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(30);

/// Polls `check` every 100 ms until it returns `Some`, panicking with `what` after [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_new_namespace_gets_its_default_service_account() {
    let Some(cluster) = TestCluster::shared("a_new_namespace_gets_its_default_service_account")
    else {
        return;
    };
    let client = cluster.client().await;
    cluster.create_namespace("t-default-sa", &[]).await.unwrap();
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "t-default-sa");
    eventually("ServiceAccount t-default-sa/default", || async {
        sas.get_opt("default").await.ok().flatten()
    })
    .await;
    // kube-controller-manager's root-ca publisher puts the cluster CA in every namespace.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "t-default-sa");
    let root = eventually("ConfigMap kube-root-ca.crt", || async {
        cms.get_opt("kube-root-ca.crt").await.ok().flatten()
    })
    .await;
    let pem = root
        .data
        .unwrap_or_default()
        .remove("ca.crt")
        .unwrap_or_default();
    assert_eq!(pem.trim(), cluster.ca_pem().trim());
}

#[tokio::test]
async fn a_deployment_gets_a_pod_that_becomes_an_endpoint_once_running() {
    let Some(cluster) = TestCluster::shared("a_deployment_gets_a_pod") else {
        return;
    };
    let client = cluster.client().await;
    let ns = "t-deploy";
    cluster.create_namespace(ns, &[]).await.unwrap();
    let out = cluster.kubectl(
        &["apply", "-n", ns, "-f", "-"],
        Some(
            br#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, version: v1}}
    spec:
      containers:
      - {name: web, image: nginx, ports: [{containerPort: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 80}]
"#,
        ),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pods = kubelet::wait_for_pods(&client, ns, "app=web", 1, WAIT)
        .await
        .unwrap();
    let pod = pods[0].metadata.name.clone().unwrap();

    let zone = [
        ("topology.kubernetes.io/region", "r1"),
        ("topology.kubernetes.io/zone", "z1"),
    ];
    let node_ip: IpAddr = "198.18.200.1".parse().unwrap();
    let node = kubelet::create_node(&client, "t-deploy-node", &zone, node_ip)
        .await
        .unwrap();
    let version = node
        .status
        .and_then(|s| s.node_info)
        .map(|i| i.kubelet_version);
    assert_eq!(version.as_deref(), Some(kubelet::KUBELET_VERSION));

    let pod_ip: IpAddr = "198.18.200.10".parse().unwrap();
    let running = kubelet::set_pod_running(&client, ns, &pod, "t-deploy-node", pod_ip)
        .await
        .unwrap();
    let status = running.status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Running"));
    assert_eq!(status.host_ip.as_deref(), Some("198.18.200.1"));

    // The token a kubelet would project into this pod names it.
    let token = cluster
        .pod_token(ns, "default", &pod, &["istio-ca"])
        .unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["kubernetes.io"]["pod"]["name"],
        pod.as_str(),
        "{claims}"
    );
    assert_eq!(claims["aud"][0], "istio-ca", "{claims}");

    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), ns);
    let ready_in_slice = |want: bool| {
        let slices = slices.clone();
        async move {
            let list = slices
                .list(&ListParams::default().labels("kubernetes.io/service-name=web"))
                .await
                .ok()?;
            let endpoint = list
                .items
                .iter()
                .flat_map(|s| s.endpoints.iter().flatten())
                .find(|e| e.addresses == ["198.18.200.10"])?;
            let ready = endpoint.conditions.as_ref()?.ready?;
            (ready == want && endpoint.node_name.as_deref() == Some("t-deploy-node")).then_some(())
        }
    };
    eventually(
        "a ready endpoint 198.18.200.10 in web's EndpointSlice",
        || ready_in_slice(true),
    )
    .await;
    kubelet::set_pod_ready(&client, ns, &pod, false)
        .await
        .unwrap();
    eventually("the endpoint to turn not ready", || ready_in_slice(false)).await;
}

#[tokio::test]
async fn a_service_account_token_is_forbidden_until_a_role_binding_allows_it() {
    let Some(cluster) = TestCluster::shared("rbac") else {
        return;
    };
    let client = cluster.client().await;
    let ns = "t-rbac";
    cluster.create_namespace(ns, &[]).await.unwrap();
    let sa: ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "reader"}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &sa)
        .await
        .unwrap();
    let token = cluster
        .service_account_token(ns, "reader", &["istio-ca"])
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert!(cluster.service_account_token(ns, "reader", &[]).is_ok());
    let kubeconfig = cluster.kubeconfig_for_token(&token).unwrap();
    // A token for audience istio-ca is not one for the API server.
    let wrong = client_for(&kubeconfig).await.unwrap();
    let err = Api::<Pod>::namespaced(wrong, ns)
        .list(&ListParams::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Unauthorized"), "{err}");

    let token = cluster.service_account_token(ns, "reader", &[]).unwrap();
    let as_reader = client_for(&cluster.kubeconfig_for_token(&token).unwrap())
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(as_reader, ns);
    match pods.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => assert!(status.is_forbidden(), "{status:?}"),
        other => panic!("listing pods with no binding: {other:?}"),
    }
    let binding: RoleBinding = serde_json::from_value(json!({
        "metadata": {"name": "reader-view"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "reader", "namespace": ns}]
    }))
    .unwrap();
    Api::<RoleBinding>::namespaced(client, ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    eventually("the RoleBinding to take effect", || async {
        pods.list(&ListParams::default()).await.ok()
    })
    .await;

    // The same identity as a process in a pod sees it: kubectl with no kubeconfig falls back
    // to the in-cluster files and KUBERNETES_SERVICE_HOST/PORT.
    let in_pod = |args: &[&str]| {
        let mut command = cluster
            .in_cluster_command(&cluster.bin_dir().join("kubectl"), ns, &token)
            .unwrap();
        command
            .env_remove("KUBECONFIG")
            .env("HOME", cluster.dir())
            .args(args);
        command.output().unwrap()
    };
    let own = in_pod(&["get", "pods"]);
    assert!(
        own.status.success(),
        "{}",
        String::from_utf8_lossy(&own.stderr)
    );
    let other = in_pod(&["get", "pods", "-n", "kube-system"]);
    let stderr = String::from_utf8_lossy(&other.stderr);
    assert!(
        stderr.contains("system:serviceaccount:t-rbac:reader") && stderr.contains("forbidden"),
        "{stderr}"
    );
    let files = cluster.in_cluster_files(ns, &token).unwrap();
    assert_eq!(
        std::fs::read_to_string(files.join("namespace")).unwrap(),
        ns
    );
    assert_eq!(std::fs::read_to_string(files.join("token")).unwrap(), token);
    let env = cluster.kubernetes_service_env();
    assert!(env.contains(&(
        "KUBERNETES_SERVICE_PORT".into(),
        cluster.api_port().to_string()
    )));
}

/// A TLS server on `addr` answering every AdmissionReview with a denial; counts the calls.
async fn denying_webhook(addr: SocketAddr, names: Vec<String>) -> (String, Arc<AtomicUsize>) {
    let ca = TestCa::new("webhook test CA").unwrap();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let leaf = ca.server_cert(&names, &[]).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.cert_der.into()],
            rustls_pki_types::PrivateKeyDer::try_from(leaf.key_der).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, calls) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let body = loop {
                    let Ok(n) = tls.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break body.to_string();
                        }
                    }
                };
                calls.fetch_add(1, Ordering::SeqCst);
                let review: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
                let answer = json!({
                    "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                    "response": {
                        "uid": review["request"]["uid"],
                        "allowed": false,
                        "status": {"code": 403, "message": "denied by the lateen test hook"}
                    }
                })
                .to_string();
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (ca.pem().to_string(), calls)
}

#[tokio::test]
async fn set_host_decides_where_the_api_server_calls_a_webhook_service() {
    let Some(cluster) = TestCluster::shared("set_host") else {
        return;
    };
    let client = cluster.client().await;
    let ns = "t-webhook";
    cluster.create_namespace(ns, &[]).await.unwrap();
    // A loopback address of our own on the webhook's real port, 443, as a Service would have.
    let pid = std::process::id();
    let ip = Ipv4Addr::new(127, 100 + (pid % 100) as u8, (pid / 100 % 250) as u8 + 1, 7);
    let (ca_pem, calls) = denying_webhook(
        SocketAddr::new(ip.into(), 443),
        vec![format!("hook.{ns}.svc")],
    )
    .await;
    cluster.set_host(&format!("hook.{ns}.svc"), ip.into());
    let ca_bundle = base64::engine::general_purpose::STANDARD.encode(ca_pem);
    let config = format!(
        r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata: {{name: t-webhook}}
webhooks:
- name: deny.lateen.test
  clientConfig:
    service: {{name: hook, namespace: {ns}, port: 443, path: /validate}}
    caBundle: {ca_bundle}
  rules: [{{operations: [CREATE], apiGroups: [""], apiVersions: [v1], resources: [configmaps]}}]
  namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: {ns}}}}}
  failurePolicy: Fail
  sideEffects: None
  admissionReviewVersions: [v1]
"#
    );
    let out = cluster.kubectl(&["apply", "-f", "-"], Some(config.as_bytes()));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    let mut n = 0;
    let message = eventually("the webhook to deny a ConfigMap", || {
        n += 1;
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": format!("cm-{n}")}})).unwrap();
        let cms = cms.clone();
        async move {
            match cms.create(&PostParams::default(), &cm).await {
                Err(kube::Error::Api(status)) => Some(status.message),
                _ => None,
            }
        }
    })
    .await;
    assert!(
        message.contains("denied by the lateen test hook"),
        "{message}"
    );
    assert!(calls.load(Ordering::SeqCst) >= 1);
    let _ = cluster.kubectl(
        &["delete", "validatingwebhookconfiguration", "t-webhook"],
        None,
    );
}

#[tokio::test]
async fn a_restart_cuts_watches_that_resume_and_expiry_forces_a_relist() {
    // Its own cluster: restarting the shared one would disturb the other tests.
    let Some(cluster) = TestCluster::start_or_skip("watch disturbances") else {
        return;
    };
    // Its own namespace, whose kube-root-ca.crt kube-controller-manager has already written:
    // in `default` that ConfigMap may appear while the watch below is open.
    cluster
        .create_namespace("watched", &[])
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let client = cluster.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "watched");
    let make = |name: &str| -> ConfigMap {
        serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
    };
    let first = cms
        .create(&PostParams::default(), &make("first"))
        .await
        .unwrap();
    let since = first.metadata.resource_version.unwrap();
    let mut watch = cms
        .watch(&WatchParams::default().timeout(60), &since)
        .await
        .unwrap()
        .boxed();
    cms.create(&PostParams::default(), &make("second"))
        .await
        .unwrap();
    let event = tokio::time::timeout(WAIT, watch.next()).await.unwrap();
    assert!(matches!(event, Some(Ok(WatchEvent::Added(_)))), "{event:?}");

    // Down: requests fail (connection refused), and nothing is lost when it is back.
    cluster.stop_apiserver();
    assert!(cms.get("first").await.is_err());
    cluster
        .start_apiserver()
        .unwrap_or_else(|e| panic!("{e:#}"));
    cms.get("second").await.unwrap();

    cluster
        .restart_apiserver()
        .unwrap_or_else(|e| panic!("{e:#}"));
    // The open watch was cut.
    let after = tokio::time::timeout(WAIT, watch.next()).await.unwrap();
    assert!(
        !matches!(after, Some(Ok(WatchEvent::Added(_)))),
        "{after:?}"
    );
    // A watch resumed from before the restart gets what it missed, no 410.
    let client = cluster.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "watched");
    let mut resumed = cms
        .watch(&WatchParams::default().timeout(60), &since)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, resumed.next()).await.unwrap() {
        Some(Ok(WatchEvent::Added(cm))) => {
            assert_eq!(cm.metadata.name.as_deref(), Some("second"))
        }
        other => panic!("resuming after a restart: {other:?}"),
    }

    let compacted = cluster.expire_watches().unwrap_or_else(|e| panic!("{e:#}"));
    assert!(compacted >= since.parse::<i64>().unwrap());
    let client = cluster.client().await;
    let cms: Api<ConfigMap> = Api::namespaced(client, "watched");
    let mut expired = cms
        .watch(&WatchParams::default().timeout(60), &since)
        .await
        .unwrap()
        .boxed();
    match tokio::time::timeout(WAIT, expired.next()).await.unwrap() {
        Some(Ok(WatchEvent::Error(status))) => assert_eq!(status.code, 410, "{status:?}"),
        Some(Err(kube::Error::Api(status))) => assert_eq!(status.code, 410, "{status:?}"),
        other => panic!("resuming after expiry: {other:?}"),
    }
    // A relist still sees everything.
    let names: Vec<String> = cms
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .collect();
    assert!(
        names.contains(&"first".into()) && names.contains(&"second".into()),
        "{names:?}"
    );
}

#[tokio::test]
async fn a_crd_with_cel_rules_serves_its_kind_and_rejects_what_they_reject() {
    let Some(cluster) = TestCluster::shared("crd") else {
        return;
    };
    cluster
        .apply(
            r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.test.lateen.io}
spec:
  group: test.lateen.io
  names: {kind: Widget, plural: widgets, singular: widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              min: {type: integer}
              max: {type: integer}
            x-kubernetes-validations:
            - rule: self.min <= self.max
              message: min must not exceed max
"#,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    cluster
        .wait_crds_established()
        .unwrap_or_else(|e| panic!("{e:#}"));
    cluster
        .create_namespace("t-crd", &[("purpose", "crd")])
        .await
        .unwrap();
    let widget = |name: &str, min: i32, max: i32| {
        format!(
            "apiVersion: test.lateen.io/v1\nkind: Widget\nmetadata: {{name: {name}, namespace: t-crd}}\n\
             spec: {{min: {min}, max: {max}}}\n"
        )
    };
    cluster
        .apply(&widget("good", 1, 2))
        .unwrap_or_else(|e| panic!("{e:#}"));
    let refused = cluster.apply(&widget("bad", 3, 2)).unwrap_err();
    assert!(
        format!("{refused:#}").contains("min must not exceed max"),
        "{refused:#}"
    );
}

#[tokio::test]
async fn a_pods_container_runs_as_a_process_with_its_environment_and_volumes() {
    let Some(cluster) = TestCluster::shared("container_command") else {
        return;
    };
    let ns = "t-process";
    cluster.create_namespace(ns, &[]).await.unwrap();
    cluster
        .apply(
            r#"
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: t-process}
data: {mode: fast}
---
apiVersion: v1
kind: Pod
metadata: {name: worker, namespace: t-process, labels: {app: worker}}
spec:
  containers:
  - name: main
    image: busybox
    command: [sh, -c]
    args:
    - >-
      cat /var/run/secrets/kubernetes.io/serviceaccount/namespace; echo;
      cat /run/lateen-test/podinfo/labels; echo;
      cat /run/lateen-test/settings/mode; echo;
      wc -c < /var/run/secrets/tokens/istio-token;
      echo "$MY_IP $(NODE) $PREFIXED $EXTRA"
    env:
    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MY_IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
    volumeMounts:
    - {name: podinfo, mountPath: /run/lateen-test/podinfo}
    - {name: settings, mountPath: /run/lateen-test/settings}
    - {name: istio-token, mountPath: /var/run/secrets/tokens}
  volumes:
  - name: podinfo
    downwardAPI: {items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]}
  - name: settings
    configMap: {name: settings}
  - name: istio-token
    projected: {sources: [{serviceAccountToken: {audience: istio-ca, path: istio-token}}]}
"#,
        )
        .unwrap_or_else(|e| panic!("{e:#}"));
    let client = cluster.client().await;
    kubelet::create_node(
        &client,
        "t-process-node",
        &[],
        "198.18.201.1".parse().unwrap(),
    )
    .await
    .unwrap();
    let pod = kubelet::set_pod_running(
        &client,
        ns,
        "worker",
        "t-process-node",
        "198.18.201.5".parse().unwrap(),
    )
    .await
    .unwrap();
    let (command, process) = cluster
        .container_command(&pod, "main", std::path::Path::new("/bin/sh"))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(process.var("MY_IP"), Some("198.18.201.5"));
    // As the pod's own network would be entered: any wrapper goes in front.
    let mut command = lateen_test_support::kube::prefixed(&command, &["env", "PREFIXED=1"]);
    command.env("EXTRA", "kept");
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().map(str::trim).collect();
    assert_eq!(lines[0], ns, "{stdout}");
    assert_eq!(lines[1], "app=\"worker\"", "{stdout}");
    assert_eq!(lines[2], "fast", "{stdout}");
    assert!(lines[3].parse::<usize>().unwrap() > 100, "{stdout}");
    assert_eq!(lines[4], "198.18.201.5 t-process-node 1 kept", "{stdout}");
}
