//! ServiceAccounts, ClusterRoles, Roles and their bindings.

use serde_json::{Value, json};

use super::Context;

fn service_account(name: &str, namespace: &str) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": name, "namespace": namespace},
    })
}

fn binding(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    role_kind: &str,
    role: &str,
    account: &str,
    account_namespace: &str,
) -> Value {
    let mut metadata = json!({"name": name});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": account_namespace}],
    })
}

const READ: &[&str] = &["get", "list", "watch"];

/// The mesh's configuration API groups.
const ISTIO_GROUPS: &[&str] = &[
    "config.istio.io",
    "security.istio.io",
    "networking.istio.io",
    "authentication.istio.io",
    "rbac.istio.io",
    "telemetry.istio.io",
    "extensions.istio.io",
];

/// The identity a control plane in another cluster uses to read this one (Istio's reader).
pub(super) fn reader(ctx: &Context) -> Vec<Value> {
    let account = "lateen-reader-service-account";
    let role = format!(
        "lateen-reader-clusterrole{}-{}",
        revision_suffix(ctx),
        ctx.namespace
    );
    let rules = json!([
        {"apiGroups": ISTIO_GROUPS, "resources": ["*"], "verbs": READ},
        {"apiGroups": [""], "resources": ["endpoints", "pods", "services", "nodes", "replicationcontrollers", "namespaces", "secrets"], "verbs": READ},
        {"apiGroups": ["networking.istio.io"], "resources": ["workloadentries"], "verbs": READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
        {"apiGroups": ["apps"], "resources": ["replicasets"], "verbs": READ},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
    ]);
    vec![
        service_account(account, &ctx.namespace),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": role},
            "rules": rules,
        }),
        binding(
            "ClusterRoleBinding",
            &role,
            None,
            "ClusterRole",
            &role,
            account,
            &ctx.namespace,
        ),
    ]
}

fn revision_suffix(ctx: &Context) -> String {
    if ctx.revision.is_empty() {
        String::new()
    } else {
        format!("-{}", ctx.revision)
    }
}

/// lateend's ServiceAccount, its cluster-wide read/write rules and its Role in its own
/// namespace. Compared with istiod's `istiod-clusterrole`/`istiod` Role (Istio's
/// `istio-discovery` chart), every rule here is one of istiod's or narrower:
/// - Istio config status: `update`/`patch` on `*/status` only, where istiod (with
///   `enableAnalysis`) has `update` on `*` (Istio's chart notes the wildcard subresource was
///   not supported when it was written; Kubernetes RBAC matches `*/status` now).
/// - `workloadentries/status`: `get`/`update`/`patch`/`delete` (istiod adds `watch`, `list`,
///   `create`).
/// - `serviceaccounts`: read only (istiod's gateway and waypoint controller roles also write).
/// - Not granted at all (lateend does not do these yet): cluster-wide `secrets` reads
///   (multicluster), Gateway API (`gateway.networking.k8s.io`), MCS service exports/imports,
///   and istiod's gateway/waypoint controller ClusterRoles (Deployments, Services, Pods).
///
/// What lateend uses: reads of namespaces, services, endpointslices, pods, nodes, configmaps
/// and Istio's CRDs; `create`/`update` of `istio-ca-root-cert` ConfigMaps in every namespace;
/// `get`/`create`/`update` of Leases and a dry-run `create` of a Gateway in its namespace;
/// `update` of its webhook configurations; `patch` of Istio resources' status.
pub(super) fn control_plane(ctx: &Context) -> Vec<Value> {
    let account = ctx.control_plane_name();
    let cluster_role = format!("{}-clusterrole-{}", ctx.control_plane_name(), ctx.namespace);
    let role = ctx.control_plane_name();
    let rules = json!([
        // Sidecar injection: the caBundle of lateend's MutatingWebhookConfiguration.
        {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"], "verbs": ["get", "list", "watch", "update", "patch"]},
        // Config validation: caBundle and failurePolicy of its ValidatingWebhookConfiguration.
        {"apiGroups": ["admissionregistration.k8s.io"], "resources": ["validatingwebhookconfigurations"], "verbs": ["get", "list", "watch", "update"]},
        {"apiGroups": ISTIO_GROUPS, "resources": ["*"], "verbs": READ},
        // status.validationMessages on rejected resources.
        {"apiGroups": ISTIO_GROUPS, "resources": ["*/status"], "verbs": ["update", "patch"]},
        {"apiGroups": ["networking.istio.io"], "resources": ["workloadentries"], "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]},
        {"apiGroups": ["networking.istio.io"], "resources": ["workloadentries/status", "serviceentries/status"], "verbs": ["get", "update", "patch", "delete"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": READ},
        // Discovery and routing.
        {"apiGroups": [""], "resources": ["pods", "nodes", "services", "namespaces", "endpoints"], "verbs": READ},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"], "verbs": READ},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"], "verbs": ["*"]},
        // The mesh's ConfigMaps, and istio-ca-root-cert in every selected namespace.
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["create", "get", "list", "watch", "update"]},
        {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]},
        {"apiGroups": ["authorization.k8s.io"], "resources": ["subjectaccessreviews"], "verbs": ["create"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests", "certificatesigningrequests/approval", "certificatesigningrequests/status"], "verbs": ["update", "create", "get", "delete", "watch"]},
        {"apiGroups": ["certificates.k8s.io"], "resources": ["signers"], "resourceNames": ["kubernetes.io/legacy-unknown"], "verbs": ["approve"]},
        {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": READ},
    ]);
    let role_rules = json!([
        // A server-side dry run of an invalid Gateway proves /validate rejects before the
        // validating webhook is switched to failurePolicy Fail (nothing is stored).
        {"apiGroups": ["networking.istio.io"], "resources": ["gateways"], "verbs": ["create"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "get", "watch", "list", "update", "delete"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["delete"]},
        // Leader election: one replica writes what istiod writes.
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update", "patch", "create"]},
    ]);
    vec![
        service_account(&account, &ctx.namespace),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": cluster_role},
            "rules": rules,
        }),
        binding(
            "ClusterRoleBinding",
            &cluster_role,
            None,
            "ClusterRole",
            &cluster_role,
            &account,
            &ctx.namespace,
        ),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role, "namespace": ctx.namespace},
            "rules": role_rules,
        }),
        binding(
            "RoleBinding",
            &role,
            Some(&ctx.namespace),
            "Role",
            &role,
            &account,
            &ctx.namespace,
        ),
    ]
}

/// A gateway's ServiceAccount and the Role that lets it read TLS secrets in its namespace.
pub(super) fn gateway(name: &str, namespace: &str) -> Vec<Value> {
    let account = format!("{name}-service-account");
    let role = format!("{name}-sds");
    vec![
        service_account(&account, namespace),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": role, "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": READ}],
        }),
        binding(
            "RoleBinding",
            &role,
            Some(namespace),
            "Role",
            &role,
            &account,
            namespace,
        ),
    ]
}
