//! PeerAuthentication → the mTLS mode of a workload and of each of its ports, with Istio's
//! precedence: a policy selecting the workload (in its namespace) over the namespace's policy
//! without a selector over the mesh-wide one (root namespace, no selector); `UNSET` inherits
//! from the level above; `portLevelMtls` (only on a selecting policy) over the workload's
//! mode, its `UNSET` inheriting the workload's. Among policies of one level the oldest wins,
//! as in Istio (creation time, then name when times are missing or equal). Nothing at all:
//! PERMISSIVE, Istio's default.
//!
//! Not yet wired into the listeners: emitting mTLS chains needs every sidecar to hold a
//! certificate (the mesh CA and SDS agent); `Effective::explicit` tells a mode a policy set
//! from the default.

use std::collections::BTreeMap;

use lateen_api::security::{MtlsMode, PeerAuthentication};
use lateen_api::{Object, Resource};

use crate::registry::labels_match;
use crate::store::Config;

/// What a proxy's inbound listeners do with mTLS (Istio's resolved modes; never UNSET).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Disable,
    Permissive,
    Strict,
}

/// A workload's resolved modes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub workload: Mode,
    /// Ports whose mode differs from or was set apart from the workload's.
    pub ports: BTreeMap<u32, Mode>,
    /// Whether any PeerAuthentication applies (else the modes are Istio's default).
    pub explicit: bool,
}

impl Effective {
    /// The mode of inbound port `port`.
    pub fn port(&self, port: u32) -> Mode {
        self.ports.get(&port).copied().unwrap_or(self.workload)
    }
}

/// The modes for a workload in `namespace` with `labels`.
pub fn effective(config: &Config, namespace: &str, labels: &BTreeMap<String, String>) -> Effective {
    let policies: Vec<&Object<PeerAuthentication>> = config
        .resources
        .iter()
        .filter_map(|resource| match resource {
            Resource::PeerAuthentication(policy) => Some(policy),
            _ => None,
        })
        .collect();
    let root = config.root_namespace();
    let mesh = oldest(
        policies
            .iter()
            .copied()
            .filter(|p| p.namespace() == root && !selects(p)),
    );
    let namespace_wide = oldest(
        policies
            .iter()
            .copied()
            .filter(|p| p.namespace() == namespace && namespace != root && !selects(p)),
    );
    let workload = oldest(policies.iter().copied().filter(|p| {
        p.namespace() == namespace
            && selects(p)
            && p.spec
                .selector
                .as_ref()
                .is_some_and(|s| labels_match(&s.match_labels, labels))
    }));

    let mut mode = Mode::Permissive;
    for policy in [mesh, namespace_wide, workload].into_iter().flatten() {
        mode = apply(mode, policy.spec.mtls.as_ref().map(|m| m.mode()));
    }
    let ports = workload
        .and_then(|policy| policy.spec.port_level_mtls.as_ref())
        .map(|ports| {
            ports
                .iter()
                .map(|(port, mtls)| (*port, apply(mode, Some(mtls.mode()))))
                .collect()
        })
        .unwrap_or_default();
    Effective {
        workload: mode,
        ports,
        explicit: mesh.is_some() || namespace_wide.is_some() || workload.is_some(),
    }
}

/// Whether a policy selects workloads (an empty `matchLabels` selects the namespace).
fn selects(policy: &Object<PeerAuthentication>) -> bool {
    policy
        .spec
        .selector
        .as_ref()
        .is_some_and(|s| !s.match_labels.is_empty())
}

/// The oldest of `candidates`: creation time, then name.
fn oldest<'a>(
    candidates: impl Iterator<Item = &'a Object<PeerAuthentication>>,
) -> Option<&'a Object<PeerAuthentication>> {
    candidates.min_by_key(|policy| {
        (
            policy
                .metadata
                .creation_timestamp
                .as_ref()
                .and_then(|t| t.as_str().map(str::to_string))
                .unwrap_or_default(),
            policy.metadata.name.clone(),
        )
    })
}

/// `set` over `inherited`; `UNSET` (or no `mtls`) keeps what is inherited.
fn apply(inherited: Mode, set: Option<MtlsMode>) -> Mode {
    match set {
        Some(MtlsMode::Disable) => Mode::Disable,
        Some(MtlsMode::Permissive) => Mode::Permissive,
        Some(MtlsMode::Strict) => Mode::Strict,
        Some(MtlsMode::Unset) | None => inherited,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(yaml: &str) -> Config {
        let loaded = lateen_api::load(yaml, "pa.yaml").unwrap_or_else(|e| panic!("{e}"));
        Config {
            resources: loaded.resources().cloned().collect(),
            ..Config::default()
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const POLICIES: &str = r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: istio-system }
spec: { mtls: { mode: STRICT } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: default, namespace: legacy }
spec: { mtls: { mode: PERMISSIVE } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: inherit, namespace: shop }
spec: { mtls: { mode: UNSET } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: db, namespace: legacy }
spec:
  selector: { matchLabels: { app: db } }
  mtls: { mode: UNSET }
  portLevelMtls:
    5432: { mode: DISABLE }
    9090: { mode: STRICT }
    9091: { mode: UNSET }
"#;

    #[test]
    fn istios_precedence_mesh_namespace_workload_port() {
        let config = config(POLICIES);
        // Mesh-wide STRICT; an UNSET namespace policy inherits it.
        let shop = effective(&config, "shop", &labels(&[("app", "web")]));
        assert_eq!((shop.workload, shop.explicit), (Mode::Strict, true));
        // The namespace overrides the mesh.
        let legacy = effective(&config, "legacy", &labels(&[("app", "web")]));
        assert_eq!(legacy.workload, Mode::Permissive);
        // The selecting policy's UNSET inherits the namespace's; its ports override.
        let db = effective(&config, "legacy", &labels(&[("app", "db")]));
        assert_eq!(db.workload, Mode::Permissive);
        assert_eq!(db.port(5432), Mode::Disable);
        assert_eq!(db.port(9090), Mode::Strict);
        assert_eq!(db.port(9091), Mode::Permissive);
        assert_eq!(db.port(8080), Mode::Permissive);
        // A selector in another namespace does not apply.
        let other = effective(&config, "other", &labels(&[("app", "db")]));
        assert_eq!(other.workload, Mode::Strict);
        assert!(other.ports.is_empty());
    }

    #[test]
    fn no_policy_is_istios_default_permissive() {
        let none = effective(&Config::default(), "shop", &labels(&[]));
        assert_eq!((none.workload, none.explicit), (Mode::Permissive, false));
    }

    #[test]
    fn the_oldest_policy_of_a_level_wins() {
        let config = config(
            r#"
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: b-newer, namespace: shop, creationTimestamp: "2026-02-01T00:00:00Z" }
spec: { mtls: { mode: DISABLE } }
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: { name: a-older, namespace: shop, creationTimestamp: "2026-01-01T00:00:00Z" }
spec: { mtls: { mode: STRICT } }
"#,
        );
        assert_eq!(
            effective(&config, "shop", &labels(&[])).workload,
            Mode::Strict
        );
    }
}
