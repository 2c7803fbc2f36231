//! The resources one proxy should have: per type URL, a map of resource name to the packed
//! resource and its version. Versions default to a hash of the encoded bytes, so an unchanged
//! resource keeps its version across snapshots (and across control-plane restarts).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

/// One resource as served: the packed message and its version.
#[derive(Clone, Debug, PartialEq)]
pub struct VersionedResource {
    /// The packed resource (its `type_url` is the resource type).
    pub resource: Any,
    /// Per-resource version; changes whenever the resource changes.
    pub version: String,
}

/// Resources of every type for one proxy.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Snapshot {
    types: BTreeMap<String, BTreeMap<String, VersionedResource>>,
}

/// An Envoy resource that knows its own xDS name.
pub trait NamedResource: Message + Name + Sized {
    /// The name Envoy subscribes to (cluster name, listener name, ...).
    fn resource_name(&self) -> &str;
}

impl NamedResource for Cluster {
    fn resource_name(&self) -> &str {
        &self.name
    }
}
impl NamedResource for ClusterLoadAssignment {
    fn resource_name(&self) -> &str {
        &self.cluster_name
    }
}
impl NamedResource for Listener {
    fn resource_name(&self) -> &str {
        &self.name
    }
}
impl NamedResource for RouteConfiguration {
    fn resource_name(&self) -> &str {
        &self.name
    }
}
impl NamedResource for Secret {
    fn resource_name(&self) -> &str {
        &self.name
    }
}

impl Snapshot {
    /// An empty snapshot.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a typed resource under its own name, versioned by content hash.
    pub fn add<M: NamedResource>(&mut self, message: &M) -> &mut Self {
        let any = Any {
            type_url: M::type_url(),
            value: message.encode_to_vec(),
        };
        self.insert(message.resource_name().to_string(), any, None)
    }

    /// Builder form of [`Snapshot::add`].
    pub fn with<M: NamedResource>(mut self, message: &M) -> Self {
        self.add(message);
        self
    }

    /// Adds (or replaces) an already packed resource. The type comes from `resource.type_url`;
    /// without an explicit version the version is a hash of the encoded bytes.
    pub fn insert(&mut self, name: String, resource: Any, version: Option<String>) -> &mut Self {
        let version = version.unwrap_or_else(|| content_version(&resource.value));
        self.types
            .entry(resource.type_url.clone())
            .or_default()
            .insert(name, VersionedResource { resource, version });
        self
    }

    /// Removes one resource; returns whether it existed.
    pub fn remove(&mut self, type_url: &str, name: &str) -> bool {
        self.types
            .get_mut(type_url)
            .is_some_and(|m| m.remove(name).is_some())
    }

    /// Replaces every resource of one type.
    pub fn set_type(&mut self, type_url: &str, resources: BTreeMap<String, VersionedResource>) {
        self.types.insert(type_url.to_string(), resources);
    }

    /// Resources of one type (empty when the type is absent).
    pub fn resources(&self, type_url: &str) -> impl Iterator<Item = (&String, &VersionedResource)> {
        self.types.get(type_url).into_iter().flat_map(|m| m.iter())
    }

    /// One resource by type and name.
    pub fn get(&self, type_url: &str, name: &str) -> Option<&VersionedResource> {
        self.types.get(type_url).and_then(|m| m.get(name))
    }

    /// Type URLs present in this snapshot.
    pub fn type_urls(&self) -> impl Iterator<Item = &String> {
        self.types.keys()
    }
}

/// A snapshot as handed to streams: shared, stamped with the time `set_snapshot` was called
/// (the start of the push-latency measurement).
#[derive(Clone, Debug)]
pub struct StampedSnapshot {
    /// The resources.
    pub snapshot: Arc<Snapshot>,
    /// When the control plane set it.
    pub set_at: Instant,
}

/// Stable content version: FNV-1a 64 over the bytes, hex.
pub fn content_version(bytes: &[u8]) -> String {
    format!("{:016x}", fnv1a(bytes, FNV_OFFSET))
}

/// Version of a set of (name, version) pairs, used as the SotW `version_info` of a type.
pub fn set_version<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    let mut hash = FNV_OFFSET;
    for (name, version) in pairs {
        hash = fnv1a(name.as_bytes(), hash);
        hash = fnv1a(&[0], hash);
        hash = fnv1a(version.as_bytes(), hash);
        hash = fnv1a(&[0], hash);
    }
    format!("{hash:016x}")
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_content_keeps_its_version() {
        let c = Cluster {
            name: "a".into(),
            ..Default::default()
        };
        let s1 = Snapshot::new().with(&c);
        let s2 = Snapshot::new().with(&c);
        assert_eq!(s1, s2);
        let changed = Cluster {
            name: "a".into(),
            alt_stat_name: "x".into(),
            ..Default::default()
        };
        let s3 = Snapshot::new().with(&changed);
        assert_ne!(
            s1.get(crate::types::CLUSTER, "a").map(|r| &r.version),
            s3.get(crate::types::CLUSTER, "a").map(|r| &r.version)
        );
    }
}
