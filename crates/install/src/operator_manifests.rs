//! What `lateen operator init` installs (and `operator dump` prints): the namespace
//! `lateen-operator`, the IstioOperator CRD, a ServiceAccount with the cluster permissions an
//! install needs, and a Deployment running `lateen operator run`.
//!
//! The image is the CLI's own, `<hub>/lateen-cli:<tag>` (default `docker.io/lateen/lateen-cli`):
//! the operator is the `lateen` binary's reconcile loop, so the image that ships the CLI runs it;
//! the control plane's `lateend` image does not contain the CLI and should not grow installer
//! permissions' worth of code.

use serde_json::{Value, json};

use crate::render::{RenderedObject, crds, restricted_container_security};

/// Namespace the operator runs in.
pub const OPERATOR_NAMESPACE: &str = "lateen-operator";
/// Name of the operator's Deployment, ServiceAccount, ClusterRole and ClusterRoleBinding.
pub const OPERATOR_NAME: &str = "lateen-operator";
/// The component name the operator's objects carry (`operator.istio.io/component`).
pub const OPERATOR_COMPONENT: &str = "Operator";

/// Settings of the operator's install.
#[derive(Debug, Clone)]
pub struct OperatorOptions {
    /// Registry of the image, e.g. `docker.io/lateen`.
    pub hub: String,
    /// Tag of the image.
    pub tag: String,
    /// Namespace whose IstioOperators the operator reconciles; all namespaces when empty.
    pub watched_namespace: String,
}

impl Default for OperatorOptions {
    fn default() -> Self {
        OperatorOptions {
            hub: "docker.io/lateen".into(),
            tag: env!("CARGO_PKG_VERSION").into(),
            watched_namespace: "istio-system".into(),
        }
    }
}

fn labels() -> Value {
    json!({
        "app.kubernetes.io/name": OPERATOR_NAME,
        "app.kubernetes.io/part-of": "lateen",
        "app.kubernetes.io/managed-by": "lateen",
        "operator.istio.io/component": OPERATOR_COMPONENT,
    })
}

/// Every object of the operator's install, in apply order.
pub fn render(options: &OperatorOptions) -> Vec<RenderedObject> {
    let labels = labels();
    let everything = json!(["*"]);
    let rule = |group: &str, resources: &[&str]| json!({"apiGroups": [group], "resources": resources, "verbs": everything});
    let mut args = vec!["operator".to_owned(), "run".to_owned()];
    if !options.watched_namespace.is_empty() {
        args.push("--watched-namespace".into());
        args.push(options.watched_namespace.clone());
    }
    let mut objects = vec![json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": OPERATOR_NAMESPACE,
            // The operator must never get a sidecar: it installs the injector.
            "labels": {"istio-injection": "disabled", "app.kubernetes.io/part-of": "lateen"},
        },
    })];
    if let Some(mut crd) = crds::definition_of("install.istio.io", "IstioOperator") {
        crd["metadata"]["labels"] = labels.clone();
        objects.push(crd);
    }
    objects.extend([
        json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE, "labels": labels},
        }),
        // An install creates CRDs, cluster roles (with rules the operator does not itself hold:
        // hence all verbs, `escalate` and `bind` included), webhooks and workloads.
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": OPERATOR_NAME, "labels": labels},
            "rules": [
                rule("", &["namespaces", "serviceaccounts", "configmaps", "secrets", "services", "endpoints", "pods", "events"]),
                rule("apps", &["deployments", "replicasets"]),
                rule("policy", &["poddisruptionbudgets"]),
                rule("autoscaling", &["horizontalpodautoscalers"]),
                rule("rbac.authorization.k8s.io", &["clusterroles", "clusterrolebindings", "roles", "rolebindings"]),
                rule("apiextensions.k8s.io", &["customresourcedefinitions"]),
                rule("admissionregistration.k8s.io", &["mutatingwebhookconfigurations", "validatingwebhookconfigurations"]),
                rule("install.istio.io", &["istiooperators", "istiooperators/status"]),
            ],
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": OPERATOR_NAME, "labels": labels},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": OPERATOR_NAME},
            "subjects": [{"kind": "ServiceAccount", "name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE}],
        }),
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": OPERATOR_NAME, "namespace": OPERATOR_NAMESPACE, "labels": labels},
            "spec": {
                // One replica: the loop has no leader election, two would fight over status.
                "replicas": 1,
                "strategy": {"type": "Recreate"},
                "selector": {"matchLabels": {"app.kubernetes.io/name": OPERATOR_NAME}},
                "template": {
                    "metadata": {"labels": labels, "annotations": {"sidecar.istio.io/inject": "false"}},
                    "spec": {
                        "serviceAccountName": OPERATOR_NAME,
                        "containers": [{
                            "name": "operator",
                            "image": format!("{}/lateen-cli:{}", options.hub, options.tag),
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["lateen"],
                            "args": args,
                            "env": [{"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}}],
                            "resources": {
                                "requests": {"cpu": "50m", "memory": "128Mi"},
                                "limits": {"cpu": "1", "memory": "512Mi"},
                            },
                            "securityContext": restricted_container_security(),
                        }],
                    },
                },
            },
        }),
    ]);
    objects
        .into_iter()
        .map(|object| RenderedObject {
            component: OPERATOR_COMPONENT,
            object,
        })
        .collect()
}
