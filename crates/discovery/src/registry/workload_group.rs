//! Istio's auto-registration rule: which connected proxy a WorkloadGroup admits, and the
//! WorkloadEntry istiod would make for it (`pilot/pkg/autoregistration`):
//!
//! - the proxy names a group in its metadata (`AUTO_REGISTER_GROUP`) and has an IP;
//! - a WorkloadGroup of that name exists in the proxy's namespace;
//! - when the TLS port verified the proxy's identity (a mesh certificate or a bearer token),
//!   that identity decides: its namespace must be the one the metadata claims, and when the
//!   group's template names a service account it must be the identity's
//!   (istiod's `ensureProxyCanControlEntry`);
//! - the entry is the group's template with the proxy's IP as address; labels are the
//!   template's, overridden by the group's `metadata.labels`, overridden by the proxy's own;
//!   its service account is the verified identity's, else the template's.
//!
//! A proxy that names no group is simply not registered (a Kubernetes pod is an endpoint
//! through its EndpointSlice); one refused still gets its xDS configuration.

use std::collections::BTreeMap;

use lateen_xds::VerifiedIdentity;

use super::Instance;
use crate::store::Config;

/// What a connected proxy asks to be registered as: its metadata's claims, and the identity
/// its transport verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// Node id of the proxy.
    pub id: String,
    /// First instance IP (empty when the proxy sent none).
    pub address: String,
    /// The namespace its metadata claims (`NAMESPACE`, else the node id's).
    pub namespace: String,
    /// Its metadata's `LABELS`.
    pub labels: BTreeMap<String, String>,
    /// `AUTO_REGISTER_GROUP`.
    pub group: String,
    /// From a verified client certificate or bearer token (TLS port only).
    pub identity: Option<VerifiedIdentity>,
}

/// An auto-registered workload: the WorkloadEntry made from a group's template for one proxy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Node id of the proxy.
    pub id: String,
    pub address: String,
    pub namespace: String,
    /// The admitting WorkloadGroup.
    pub group: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    /// Service port name to workload port (the template's).
    pub ports: BTreeMap<String, u32>,
    pub locality: String,
    pub weight: u32,
}

impl Workload {
    /// Istio's name of the entry: `GROUP-IP` (`:` of IPv6 as `-`).
    pub fn entry_name(&self) -> String {
        format!("{}-{}", self.group, self.address.replace(':', "-"))
    }

    /// The workload as a service instance.
    pub fn instance(&self) -> Instance {
        Instance {
            address: self.address.clone(),
            ports: self.ports.clone(),
            labels: self.labels.clone(),
            weight: self.weight,
            service_account: self.service_account.clone(),
            locality: self.locality.clone(),
            origin: format!(
                "WorkloadEntry {}/{} (auto-registered by proxy {})",
                self.namespace,
                self.entry_name(),
                self.id
            ),
        }
    }
}

/// Why a proxy that names a WorkloadGroup is not registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("it sent no instance IP (metadata INSTANCE_IPS or the node id's IP field)")]
    NoAddress,
    #[error("WorkloadGroup {namespace}/{group} named by its AUTO_REGISTER_GROUP does not exist")]
    GroupNotFound { namespace: String, group: String },
    #[error(
        "its verified identity ({spiffe}) is for namespace {verified}, but its metadata claims namespace {claimed}"
    )]
    NamespaceMismatch {
        spiffe: String,
        verified: String,
        claimed: String,
    },
    #[error(
        "its verified identity ({spiffe}) is for service account {verified}, but WorkloadGroup {namespace}/{group} is for service account {template}"
    )]
    ServiceAccountMismatch {
        spiffe: String,
        verified: String,
        namespace: String,
        group: String,
        template: String,
    },
}

/// The WorkloadEntry `config`'s WorkloadGroups make for `candidate`, or why none admits it.
pub fn admit(candidate: &Candidate, config: &Config) -> Result<Workload, Refusal> {
    if candidate.address.is_empty() {
        return Err(Refusal::NoAddress);
    }
    if let Some(identity) = &candidate.identity
        && identity.namespace != candidate.namespace
    {
        return Err(Refusal::NamespaceMismatch {
            spiffe: identity.spiffe.clone(),
            verified: identity.namespace.clone(),
            claimed: candidate.namespace.clone(),
        });
    }
    let group = config
        .workload_groups()
        .find(|wg| wg.name() == candidate.group && wg.namespace() == candidate.namespace)
        .ok_or_else(|| Refusal::GroupNotFound {
            namespace: candidate.namespace.clone(),
            group: candidate.group.clone(),
        })?;
    let template = group.spec.template.clone().unwrap_or_default();
    let template_account = template.service_account.clone().filter(|sa| !sa.is_empty());
    let service_account = match (&candidate.identity, template_account) {
        (Some(identity), Some(template)) if identity.service_account != template => {
            return Err(Refusal::ServiceAccountMismatch {
                spiffe: identity.spiffe.clone(),
                verified: identity.service_account.clone(),
                namespace: candidate.namespace.clone(),
                group: candidate.group.clone(),
                template,
            });
        }
        (Some(identity), _) => identity.service_account.clone(),
        (None, template) => template.unwrap_or_default(),
    };
    let mut labels = template.labels;
    if let Some(meta) = &group.spec.metadata {
        labels.extend(meta.labels.clone());
    }
    labels.extend(candidate.labels.clone());
    Ok(Workload {
        id: candidate.id.clone(),
        address: candidate.address.clone(),
        namespace: candidate.namespace.clone(),
        group: candidate.group.clone(),
        labels,
        service_account,
        ports: template.ports,
        locality: template.locality.unwrap_or_default(),
        weight: template.weight.unwrap_or(1).max(1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &str = "apiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: reviews, namespace: default}\nspec:\n  metadata: {labels: {app: reviews, tier: group}}\n  template: {serviceAccount: reviews-sa, ports: {http: 9080}, labels: {version: v1, tier: template, zone: a}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: ratings, namespace: other}\nspec:\n  template: {labels: {app: ratings}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadGroup\nmetadata: {name: open, namespace: default}\nspec:\n  template: {labels: {app: open}}\n";

    fn config() -> Config {
        let loaded = lateen_api::load(GROUPS, "groups.yaml").unwrap_or_else(|e| panic!("{e}"));
        Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        }
    }

    fn candidate(group: &str) -> Candidate {
        Candidate {
            id: "sidecar~10.0.0.7~vm-1.default~default.svc.cluster.local".into(),
            address: "10.0.0.7".into(),
            namespace: "default".into(),
            labels: [("version".to_string(), "v2".to_string())].into(),
            group: group.into(),
            identity: None,
        }
    }

    fn identity(namespace: &str, service_account: &str) -> Option<VerifiedIdentity> {
        Some(VerifiedIdentity {
            spiffe: format!("spiffe://cluster.local/ns/{namespace}/sa/{service_account}"),
            namespace: namespace.into(),
            service_account: service_account.into(),
        })
    }

    #[test]
    fn an_admitted_proxy_is_the_template_with_its_address_and_labels() {
        let workload = admit(&candidate("reviews"), &config()).unwrap_or_else(|e| panic!("{e}"));
        let label = |k: &str| workload.labels.get(k).map(String::as_str);
        assert_eq!(label("app"), Some("reviews"), "the group's metadata label");
        assert_eq!(
            label("tier"),
            Some("group"),
            "metadata labels win over template"
        );
        assert_eq!(label("zone"), Some("a"), "the template's label");
        assert_eq!(label("version"), Some("v2"), "the proxy's own label wins");
        assert_eq!(workload.address, "10.0.0.7");
        assert_eq!(workload.ports.get("http"), Some(&9080));
        assert_eq!(workload.service_account, "reviews-sa");
        assert_eq!(workload.entry_name(), "reviews-10.0.0.7");
        assert_eq!(workload.instance().labels, workload.labels);
    }

    #[test]
    fn a_missing_group_or_one_of_another_namespace_admits_nobody() {
        let missing = admit(&candidate("nope"), &config());
        assert_eq!(
            missing,
            Err(Refusal::GroupNotFound {
                namespace: "default".into(),
                group: "nope".into()
            })
        );
        // `ratings` exists, but in namespace `other`.
        assert!(matches!(
            admit(&candidate("ratings"), &config()),
            Err(Refusal::GroupNotFound { .. })
        ));
        let mut no_ip = candidate("reviews");
        no_ip.address.clear();
        assert_eq!(admit(&no_ip, &config()), Err(Refusal::NoAddress));
    }

    #[test]
    fn a_verified_identity_must_match_the_namespace_and_the_templates_account() {
        let mut other_namespace = candidate("reviews");
        other_namespace.identity = identity("other", "reviews-sa");
        let refused = admit(&other_namespace, &config());
        assert!(
            matches!(&refused, Err(Refusal::NamespaceMismatch { verified, claimed, .. }) if verified == "other" && claimed == "default"),
            "{refused:?}"
        );
        let mut other_account = candidate("reviews");
        other_account.identity = identity("default", "intruder");
        assert!(matches!(
            admit(&other_account, &config()),
            Err(Refusal::ServiceAccountMismatch { .. })
        ));
        let mut matching = candidate("reviews");
        matching.identity = identity("default", "reviews-sa");
        assert!(admit(&matching, &config()).is_ok());
        // A template without a service account takes the identity's.
        let mut open = candidate("open");
        open.identity = identity("default", "vm-sa");
        let workload = admit(&open, &config()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(workload.service_account, "vm-sa");
    }
}
