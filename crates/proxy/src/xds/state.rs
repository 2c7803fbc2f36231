//! The accepted xDS resources, already translated, and their assembly into one
//! [`ProxyConfig`]. A response is applied to a copy ([`XdsState::with_response`]); the copy
//! replaces the accepted state only once the assembled configuration compiled and was
//! applied, so a rejected response leaves everything as it was.

use lateen_xds::AdsResponse;
use lateen_xds::pb::envoy::config::cluster::v3::Cluster;
use lateen_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use lateen_xds::pb::envoy::config::listener::v3::Listener;
use lateen_xds::pb::envoy::config::route::v3::RouteConfiguration;
use lateen_xds::pb::google::protobuf::Any;
use lateen_xds::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE, short_name};
use std::collections::{BTreeMap, BTreeSet};

use super::translate::{
    self, cluster::TranslatedCluster, listener::TranslatedListener, route::TranslatedRoutes, unpack,
};
use crate::config::model::{self, ProxyConfig, XdsInfo};

#[derive(Debug, Clone, PartialEq)]
struct Entry<T> {
    version: String,
    value: T,
}

type Resources<T> = BTreeMap<String, Entry<T>>;

/// Accepted resources of every type.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct XdsState {
    clusters: Resources<TranslatedCluster>,
    endpoints: Resources<Vec<model::Endpoint>>,
    listeners: Resources<TranslatedListener>,
    routes: Resources<TranslatedRoutes>,
    type_versions: BTreeMap<String, String>,
}

/// An assembled configuration and what it still waits for.
pub struct Assembled {
    pub config: ProxyConfig,
    /// EDS and RDS names referenced but not received yet (filled in empty).
    pub warming: Vec<String>,
}

impl XdsState {
    /// This state with `response` applied, or the NACK detail.
    pub fn with_response(&self, response: &AdsResponse) -> Result<XdsState, String> {
        let mut next = self.clone();
        let type_url = response.type_url().to_string();
        match response {
            AdsResponse::Sotw(sotw) => {
                let mut items = Vec::new();
                for any in &sotw.resources {
                    items.push((None, any, sotw.version_info.clone()));
                }
                // CDS and LDS responses carry the whole set; EDS and RDS only what changed
                // among the subscribed names.
                let replace_all = type_url == CLUSTER || type_url == LISTENER;
                next.apply(&type_url, items, &[], replace_all)?;
                next.type_versions
                    .insert(short_name(&type_url).to_string(), sotw.version_info.clone());
            }
            AdsResponse::Delta(delta) => {
                let mut items = Vec::new();
                for resource in &delta.resources {
                    let Some(any) = &resource.resource else {
                        return Err(format!(
                            "{}: resource {:?} has no body",
                            short_name(&type_url),
                            resource.name
                        ));
                    };
                    items.push((Some(resource.name.as_str()), any, resource.version.clone()));
                }
                next.apply(&type_url, items, &delta.removed_resources, false)?;
                if !delta.system_version_info.is_empty() {
                    next.type_versions.insert(
                        short_name(&type_url).to_string(),
                        delta.system_version_info.clone(),
                    );
                }
            }
        }
        Ok(next)
    }

    fn apply(
        &mut self,
        type_url: &str,
        items: Vec<(Option<&str>, &Any, String)>,
        removed: &[String],
        replace_all: bool,
    ) -> Result<(), String> {
        match type_url {
            CLUSTER => update(&mut self.clusters, items, removed, replace_all, |any| {
                let source: Cluster = unpack(any)?;
                Ok((
                    source.name.clone(),
                    translate::cluster::translate(&source).map_err(|e| e.to_string())?,
                ))
            }),
            ENDPOINT => update(&mut self.endpoints, items, removed, replace_all, |any| {
                let source: ClusterLoadAssignment = unpack(any)?;
                Ok((
                    source.cluster_name.clone(),
                    translate::endpoint::translate(&source).map_err(|e| e.to_string())?,
                ))
            }),
            LISTENER => update(&mut self.listeners, items, removed, replace_all, |any| {
                let source: Listener = unpack(any)?;
                Ok((
                    source.name.clone(),
                    translate::listener::translate(&source).map_err(|e| e.to_string())?,
                ))
            }),
            ROUTE => update(&mut self.routes, items, removed, replace_all, |any| {
                let source: RouteConfiguration = unpack(any)?;
                Ok((
                    source.name.clone(),
                    translate::route::translate(&source).map_err(|e| e.to_string())?,
                ))
            }),
            other => Err(format!(
                "resource type {other} is not supported by lateen-proxy"
            )),
        }
    }

    /// Forgets endpoints and route tables no cluster or listener names any more (they are
    /// unsubscribed, and a SotW server does not say they are gone).
    pub fn forget_unwanted(&mut self) {
        let (eds, rds) = self.wanted();
        self.endpoints.retain(|name, _| eds.contains(name));
        self.routes.retain(|name, _| rds.contains(name));
    }

    /// EDS names the clusters want, RDS names the listeners want.
    pub fn wanted(&self) -> (BTreeSet<String>, BTreeSet<String>) {
        let eds = self
            .clusters
            .values()
            .filter_map(|entry| entry.value.eds_name.clone())
            .collect();
        let rds = self
            .listeners
            .values()
            .flat_map(|entry| entry.value.rds.iter().cloned())
            .collect();
        (eds, rds)
    }

    /// The whole configuration: `base` (node, admin, drain) plus every resource. Missing
    /// EDS/RDS resources are filled in empty and listed in `warming`; clusters that routes
    /// or TCP proxies name but CDS does not have become empty clusters (503, as in Envoy).
    pub fn assemble(&self, base: &ProxyConfig, control_plane: &str) -> Assembled {
        let mut config = ProxyConfig {
            listeners: Vec::new(),
            route_configs: Vec::new(),
            clusters: Vec::new(),
            xds: None,
            ..base.clone()
        };
        let mut warming = Vec::new();
        let mut passthrough = BTreeSet::new();
        for (name, entry) in &self.clusters {
            let mut cluster = entry.value.cluster.clone();
            if entry.value.original_dst {
                passthrough.insert(name.clone());
            }
            if let Some(eds_name) = &entry.value.eds_name {
                match self.endpoints.get(eds_name) {
                    Some(endpoints) => cluster.endpoints = endpoints.value.clone(),
                    None => warming.push(format!("EDS {eds_name}")),
                }
            }
            config.clusters.push(cluster);
        }
        let mut referenced = BTreeSet::new();
        for entry in self.listeners.values() {
            for listener in &entry.value.listeners {
                let mut listener = listener.clone();
                // A TCP proxy to an ORIGINAL_DST cluster is our passthrough.
                if listener
                    .tcp_cluster
                    .as_ref()
                    .is_some_and(|name| passthrough.contains(name))
                {
                    listener.tcp_cluster = None;
                }
                referenced.extend(listener.tcp_cluster.clone());
                config.listeners.push(listener);
            }
            config
                .route_configs
                .extend(entry.value.inline_routes.iter().cloned());
            referenced.extend(
                entry
                    .value
                    .clusters
                    .iter()
                    .filter(|name| !passthrough.contains(*name))
                    .cloned(),
            );
            for rds in &entry.value.rds {
                if !self.routes.contains_key(rds)
                    && !config.route_configs.iter().any(|table| &table.name == rds)
                {
                    warming.push(format!("RDS {rds}"));
                    config.route_configs.push(model::RouteConfig {
                        name: rds.clone(),
                        virtual_hosts: Vec::new(),
                    });
                }
            }
        }
        for entry in self.routes.values() {
            config.route_configs.push(entry.value.config.clone());
            referenced.extend(entry.value.clusters.iter().cloned());
        }
        for name in referenced {
            if !self.clusters.contains_key(&name) {
                config.clusters.push(translate::cluster::empty(&name));
            }
        }
        warming.sort();
        warming.dedup();
        config.xds = Some(XdsInfo {
            control_plane: control_plane.to_string(),
            type_versions: self.type_versions.clone(),
            resources: [
                ("CDS", versions(&self.clusters)),
                ("EDS", versions(&self.endpoints)),
                ("LDS", versions(&self.listeners)),
                ("RDS", versions(&self.routes)),
            ]
            .into_iter()
            .map(|(kind, versions)| (kind.to_string(), versions))
            .collect(),
            warming: warming.clone(),
        });
        Assembled { config, warming }
    }
}

fn versions<T>(resources: &Resources<T>) -> BTreeMap<String, String> {
    resources
        .iter()
        .map(|(name, entry)| (name.clone(), entry.version.clone()))
        .collect()
}

/// Translates `items` into `resources`. A delta resource's name must match the name inside
/// it; any failure rejects the whole response.
fn update<T>(
    resources: &mut Resources<T>,
    items: Vec<(Option<&str>, &Any, String)>,
    removed: &[String],
    replace_all: bool,
    translate: impl Fn(&Any) -> Result<(String, T), String>,
) -> Result<(), String> {
    let mut fresh = BTreeMap::new();
    for (declared, any, version) in items {
        let (name, value) = translate(any)?;
        if let Some(declared) = declared
            && declared != name
        {
            return Err(format!(
                "resource {declared:?} carries a resource named {name:?}"
            ));
        }
        if fresh
            .insert(name.clone(), Entry { version, value })
            .is_some()
        {
            return Err(format!("resource {name:?} appears twice in one response"));
        }
    }
    if replace_all {
        resources.clear();
    }
    for name in removed {
        resources.remove(name);
    }
    resources.extend(fresh);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::translate::tests::{assignment, pack, virtual_inbound};
    use lateen_xds::pb::envoy::config::cluster::v3::cluster;
    use lateen_xds::pb::envoy::config::core::v3::{
        AggregatedConfigSource, ConfigSource, config_source,
    };
    use lateen_xds::pb::envoy::service::discovery::v3::{
        DeltaDiscoveryResponse, DiscoveryResponse, Resource,
    };

    fn eds(name: &str) -> Cluster {
        Cluster {
            name: name.into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::Eds as i32,
            )),
            eds_cluster_config: Some(cluster::EdsClusterConfig {
                eds_config: Some(ConfigSource {
                    config_source_specifier: Some(config_source::ConfigSourceSpecifier::Ads(
                        AggregatedConfigSource {},
                    )),
                    ..Default::default()
                }),
                service_name: String::new(),
            }),
            ..Default::default()
        }
    }

    fn delta<M: lateen_xds::prost::Message + lateen_xds::prost::Name>(
        items: &[(&str, &M)],
        removed: &[&str],
    ) -> AdsResponse {
        AdsResponse::Delta(DeltaDiscoveryResponse {
            type_url: M::type_url(),
            resources: items
                .iter()
                .map(|(name, message)| Resource {
                    name: name.to_string(),
                    version: format!("v-{name}"),
                    resource: Some(pack(*message)),
                    ..Default::default()
                })
                .collect(),
            removed_resources: removed.iter().map(|name| name.to_string()).collect(),
            ..Default::default()
        })
    }

    #[test]
    fn clusters_warm_until_their_endpoints_arrive() {
        let state = XdsState::default()
            .with_response(&delta(&[("c1", &eds("c1"))], &[]))
            .expect("CDS accepted");
        assert_eq!(
            state.wanted().0.into_iter().collect::<Vec<_>>(),
            vec!["c1".to_string()]
        );
        let assembled = state.assemble(&ProxyConfig::default(), "cp");
        assert_eq!(assembled.warming, vec!["EDS c1".to_string()]);
        let state = state
            .with_response(&delta(
                &[("c1", &assignment("c1", &[("10.0.0.1", 80, 0, 1)]))],
                &[],
            ))
            .expect("EDS accepted");
        let assembled = state.assemble(&ProxyConfig::default(), "cp");
        assert!(assembled.warming.is_empty());
        assert_eq!(assembled.config.clusters[0].endpoints.len(), 1);
        let xds = assembled.config.xds.expect("xds info");
        assert_eq!(xds.resources["EDS"]["c1"], "v-c1");

        let mut state = state
            .with_response(&delta::<Cluster>(&[], &["c1"]))
            .expect("removal accepted");
        assert!(
            state
                .assemble(&ProxyConfig::default(), "cp")
                .config
                .clusters
                .is_empty()
        );
        state.forget_unwanted();
        assert!(
            state
                .assemble(&ProxyConfig::default(), "cp")
                .config
                .xds
                .expect("xds info")
                .resources["EDS"]
                .is_empty()
        );
    }

    #[test]
    fn passthrough_and_missing_clusters() {
        let passthrough = Cluster {
            name: "InboundPassthroughCluster".into(),
            cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
                cluster::DiscoveryType::OriginalDst as i32,
            )),
            lb_policy: cluster::LbPolicy::ClusterProvided as i32,
            ..Default::default()
        };
        let sotw = AdsResponse::Sotw(DiscoveryResponse {
            type_url: CLUSTER.to_string(),
            version_info: "1".into(),
            resources: vec![pack(&passthrough)],
            ..Default::default()
        });
        let state = XdsState::default()
            .with_response(&sotw)
            .expect("CDS accepted");
        let state = state
            .with_response(&delta(&[("virtualInbound", &virtual_inbound())], &[]))
            .expect("LDS accepted");
        let config = state.assemble(&ProxyConfig::default(), "cp").config;
        // The TCP default chain to an ORIGINAL_DST cluster passes through.
        assert_eq!(config.listeners[0].tcp_cluster, None);
        // The inline route's cluster is not in CDS: an empty one stands in (503, as Envoy).
        assert!(
            config
                .clusters
                .iter()
                .any(|c| c.name == "inbound|9080||" && c.endpoints.is_empty())
        );
        assert_eq!(config.xds.expect("xds info").type_versions["CDS"], "1");
        crate::config::compile::compile(state.assemble(&ProxyConfig::default(), "cp").config)
            .expect("compiles");

        let wrong_name = delta(&[("other", &virtual_inbound())], &[]);
        let err = state.with_response(&wrong_name).expect_err("name mismatch");
        assert!(err.contains("\"other\""), "{err}");
    }

    #[test]
    fn a_sotw_endpoint_response_updates_only_the_clusters_it_carries() {
        let sotw = |type_url: &str, version: &str, resources| {
            AdsResponse::Sotw(DiscoveryResponse {
                type_url: type_url.to_string(),
                version_info: version.into(),
                resources,
                ..Default::default()
            })
        };
        let eds_response = |version, clusters: &[(&str, &str)]| {
            let resources = clusters
                .iter()
                .map(|(name, ip)| pack(&assignment(name, &[(ip, 80, 0, 1)])))
                .collect();
            sotw(ENDPOINT, version, resources)
        };
        let state = XdsState::default()
            .with_response(&sotw(CLUSTER, "1", vec![pack(&eds("a")), pack(&eds("b"))]))
            .and_then(|s| {
                s.with_response(&eds_response("1", &[("a", "10.0.0.1"), ("b", "10.0.0.2")]))
            })
            .and_then(|s| s.with_response(&eds_response("2", &[("b", "10.0.0.3")])))
            .expect("accepted");
        // lateend (as istiod) sends only the changed assignments: `a` keeps its endpoints.
        let config = state.assemble(&ProxyConfig::default(), "cp").config;
        let endpoints_of = |name: &str| {
            config
                .clusters
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.endpoints.len())
        };
        assert_eq!((endpoints_of("a"), endpoints_of("b")), (Some(1), Some(1)));
        let xds = config.xds.expect("xds info");
        assert_eq!(xds.type_versions["EDS"], "2");
        assert_eq!(xds.resources["EDS"]["a"], "1");
    }
}
