//! Reading translated resources out of a snapshot, shared by the translation tests, and the
//! snapshot of one sidecar for a YAML configuration.
#![allow(dead_code)] // each test binary uses part of it

use lateen_xds::prost::Message;
use lateen_xds::{Snapshot, types};

/// The resource `name` of `type_url`, decoded; panics naming what the snapshot has instead.
pub fn decode<M: Message + Default>(s: &Snapshot, type_url: &str, name: &str) -> M {
    let r = s.get(type_url, name).unwrap_or_else(|| {
        panic!(
            "no {} {name}; have {:?}",
            types::short_name(type_url),
            names(s, type_url)
        )
    });
    M::decode(r.resource.value.as_slice()).unwrap_or_else(|e| panic!("decode {name}: {e}"))
}

/// The names of the snapshot's resources of `type_url`.
pub fn names(s: &Snapshot, type_url: &str) -> Vec<String> {
    s.resources(type_url).map(|(n, _)| n.clone()).collect()
}

/// What lateend translates for the sidecar `node_id` of `app` in namespace default under
/// `yaml`; `mtls` says it holds a certificate (`LATEEN_MTLS`).
pub fn sidecar_snapshot(yaml: &str, node_id: &str, app: &str, mtls: bool) -> Snapshot {
    sidecar_snapshot_of(yaml, node_id, app, mtls, "envoy")
}

/// [`sidecar_snapshot`] for a node sending `user_agent` (`envoy`, `lateen-proxy`).
pub fn sidecar_snapshot_of(
    yaml: &str,
    node_id: &str,
    app: &str,
    mtls: bool,
    user_agent: &str,
) -> Snapshot {
    use lateen_discovery::{Config, Proxy, Registry};
    let loaded = lateen_api::load(yaml, "test.yaml").unwrap_or_else(|e| panic!("{e}"));
    let config = Config {
        resources: loaded.resources().cloned().collect(),
        ..Config::default()
    };
    let registry = Registry::build(&config, &[]);
    let mut metadata = serde_json::json!({"NAMESPACE": "default", "LABELS": {"app": app}});
    if mtls {
        metadata["LATEEN_MTLS"] = serde_json::json!("true");
    }
    let proxy = Proxy::from_node(&lateen_xds::ProxyNode {
        id: node_id.to_string(),
        cluster: String::new(),
        metadata,
        user_agent: user_agent.to_string(),
    });
    lateen_discovery::translate::build_snapshot(&config, &registry, &proxy)
}
