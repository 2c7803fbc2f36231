//! The resources one proxy should have: per type URL, a map of resource name to the packed
//! resource and its version. Versions default to a hash of the encoded bytes, so an unchanged
//! resource keeps its version across snapshots (and across control-plane restarts).
//!
//! Everything here is shared, not copied: a type's resources sit behind an `Arc`
//! ([`TypeResources`], copied on write), and each packed resource too. Many proxies with the
//! same configuration, and every stream's record of what it sent, point at the same bytes, so
//! a control plane's memory grows with distinct configurations, not with proxies.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::google::protobuf::Any;
use prost::{Message, Name};

/// One resource as served: the packed message and its version.
#[derive(Clone, Debug)]
pub struct VersionedResource {
    /// The packed resource (its `type_url` is the resource type); shared by every snapshot
    /// and stream that holds it.
    pub resource: Arc<Any>,
    /// Per-resource version; changes whenever the resource changes.
    pub version: String,
}

impl PartialEq for VersionedResource {
    fn eq(&self, other: &Self) -> bool {
        // Shared bytes are equal without reading them.
        self.version == other.version
            && (Arc::ptr_eq(&self.resource, &other.resource) || self.resource == other.resource)
    }
}

/// Resources by name.
pub type ResourceMap = BTreeMap<String, VersionedResource>;

/// The resources of one type, with the version of the whole set (SotW `version_info`)
/// computed once, on first use, however many streams send it.
#[derive(Debug, Default)]
pub struct TypeResources {
    resources: ResourceMap,
    version: OnceLock<String>,
    /// The resources as the `resources` field of a SotW or delta response, encoded once for
    /// every stream that sends this set (only the nonce differs between their responses).
    encoded: [OnceLock<bytes::Bytes>; 2],
    /// The subsets streams subscribe to, by subscription (name sets are shared between
    /// streams, see `server::subscriptions`): a thousand sidecars asking for the same
    /// thousand endpoints get one subset computed once per snapshot, not once each.
    subsets: Mutex<Vec<Subset>>,
}

/// A subscription (a shared name set) and the resources it selects; `None` when it selects
/// every one (the set itself, which must not hold an `Arc` of itself: that would never be
/// freed).
type Subset = (Arc<BTreeSet<String>>, Option<Arc<TypeResources>>);

/// Subsets remembered per set; streams with other subscriptions compute their own.
const SUBSETS_KEPT: usize = 8;

/// The two response encodings of a resource set.
#[derive(Clone, Copy, Debug)]
pub enum Wire {
    /// `DiscoveryResponse.resources`: the `Any`s.
    Sotw = 0,
    /// `DeltaDiscoveryResponse.resources`: `Resource` messages with name and version.
    Delta = 1,
}

impl TypeResources {
    /// A set of resources.
    pub fn new(resources: ResourceMap) -> Self {
        Self {
            resources,
            version: OnceLock::new(),
            encoded: Default::default(),
            subsets: Mutex::default(),
        }
    }

    /// The subset of these resources that subscription `names` selects, made by `subset` the
    /// first time a stream with this (shared) subscription asks, then shared.
    pub(crate) fn subset_for(
        self: &Arc<Self>,
        names: &Arc<BTreeSet<String>>,
        subset: impl FnOnce(&Arc<Self>) -> Arc<Self>,
    ) -> Arc<Self> {
        let mut subsets = self.subsets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, done)) = subsets.iter().find(|(n, _)| Arc::ptr_eq(n, names)) {
            return done.clone().unwrap_or_else(|| self.clone());
        }
        let made = subset(self);
        if subsets.len() < SUBSETS_KEPT {
            let kept = (!Arc::ptr_eq(&made, self)).then(|| made.clone());
            subsets.push((names.clone(), kept));
        }
        made
    }

    /// The resources by name.
    pub fn map(&self) -> &ResourceMap {
        &self.resources
    }

    /// Version of the whole set: a hash of every (name, version) pair.
    pub fn version(&self) -> &str {
        self.version.get_or_init(|| {
            set_version(
                self.resources
                    .iter()
                    .map(|(n, r)| (n.as_str(), r.version.as_str())),
            )
        })
    }

    /// Changes the resources (the set version is recomputed when next asked for).
    pub fn edit(&mut self) -> &mut ResourceMap {
        self.version = OnceLock::new();
        self.encoded = Default::default();
        self.subsets = Mutex::default();
        &mut self.resources
    }

    /// This set's encoding for `wire` (made by `encode` on first use, then shared by every
    /// stream that sends the set).
    pub fn encoded(
        &self,
        wire: Wire,
        encode: impl FnOnce(&ResourceMap) -> bytes::Bytes,
    ) -> bytes::Bytes {
        self.encoded[wire as usize]
            .get_or_init(|| encode(&self.resources))
            .clone()
    }

    pub fn len(&self) -> usize {
        self.resources.len()
    }

    pub fn is_empty(&self) -> bool {
        self.resources.is_empty()
    }
}

impl Clone for TypeResources {
    fn clone(&self) -> Self {
        Self {
            resources: self.resources.clone(),
            version: self.version.clone(),
            encoded: self.encoded.clone(),
            subsets: Mutex::default(),
        }
    }
}

impl PartialEq for TypeResources {
    fn eq(&self, other: &Self) -> bool {
        self.resources == other.resources
    }
}

/// Resources of every type for one proxy.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    types: BTreeMap<String, Arc<TypeResources>>,
}

impl PartialEq for Snapshot {
    fn eq(&self, other: &Self) -> bool {
        // Shared sets are equal without looking inside.
        self.types.len() == other.types.len()
            && self
                .types
                .iter()
                .zip(other.types.iter())
                .all(|((t1, r1), (t2, r2))| t1 == t2 && (Arc::ptr_eq(r1, r2) || r1 == r2))
    }
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
        self.insert(message.resource_name().to_string(), Arc::new(any), None)
    }

    /// Builder form of [`Snapshot::add`].
    pub fn with<M: NamedResource>(mut self, message: &M) -> Self {
        self.add(message);
        self
    }

    /// Adds (or replaces) an already packed resource. The type comes from `resource.type_url`;
    /// without an explicit version the version is a hash of the encoded bytes.
    pub fn insert(
        &mut self,
        name: String,
        resource: Arc<Any>,
        version: Option<String>,
    ) -> &mut Self {
        let version = version.unwrap_or_else(|| content_version(&resource.value));
        self.insert_versioned(name, VersionedResource { resource, version })
    }

    /// Adds (or replaces) an already versioned resource, sharing its bytes.
    pub fn insert_versioned(&mut self, name: String, resource: VersionedResource) -> &mut Self {
        let of_type = self
            .types
            .entry(resource.resource.type_url.clone())
            .or_default();
        Arc::make_mut(of_type).edit().insert(name, resource);
        self
    }

    /// Removes one resource; returns whether it existed.
    pub fn remove(&mut self, type_url: &str, name: &str) -> bool {
        match self.types.get_mut(type_url) {
            Some(of_type) if of_type.map().contains_key(name) => {
                Arc::make_mut(of_type).edit().remove(name);
                true
            }
            _ => false,
        }
    }

    /// Replaces every resource of one type.
    pub fn set_type(&mut self, type_url: &str, resources: ResourceMap) {
        self.types.insert(
            type_url.to_string(),
            Arc::new(TypeResources::new(resources)),
        );
    }

    /// Resources of one type (empty when the type is absent).
    pub fn resources(&self, type_url: &str) -> impl Iterator<Item = (&String, &VersionedResource)> {
        self.types
            .get(type_url)
            .into_iter()
            .flat_map(|m| m.map().iter())
    }

    /// Every resource of one type, shared (no copy).
    pub fn of_type(&self, type_url: &str) -> Option<&Arc<TypeResources>> {
        self.types.get(type_url)
    }

    /// One resource by type and name.
    pub fn get(&self, type_url: &str, name: &str) -> Option<&VersionedResource> {
        self.types.get(type_url).and_then(|m| m.map().get(name))
    }

    /// Takes `earlier`'s shared copy of every type whose resources did not change, and of
    /// every unchanged resource of the types that did. Comparing the result with `earlier`
    /// (as the cache does for every proxy) then costs a pointer comparison per unchanged
    /// type, and both stay in memory once.
    pub fn share_unchanged(&mut self, earlier: &Snapshot) {
        for (type_url, resources) in &mut self.types {
            let Some(old) = earlier.types.get(type_url) else {
                continue;
            };
            if Arc::ptr_eq(resources, old) {
                continue;
            }
            if **resources == **old {
                *resources = old.clone();
                continue;
            }
            let map = Arc::make_mut(resources).edit();
            for (name, resource) in map.iter_mut() {
                if let Some(previous) = old.map().get(name)
                    && previous.version == resource.version
                    && previous.resource == resource.resource
                {
                    resource.resource = previous.resource.clone();
                }
            }
        }
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
    fn a_subset_that_is_the_whole_set_is_shared_and_freed_with_it() {
        let set = Arc::new(TypeResources::new(ResourceMap::new()));
        let names: Arc<BTreeSet<String>> = Arc::default();
        let first = set.subset_for(&names, |all| all.clone());
        assert!(Arc::ptr_eq(&first, &set));
        let again = set.subset_for(&names, |_| panic!("computed twice"));
        assert!(Arc::ptr_eq(&again, &set));
        let weak = Arc::downgrade(&set);
        drop((set, first, again));
        assert!(weak.upgrade().is_none(), "the set holds itself");
    }

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
