//! One simulated sidecar: a real ADS client ([`lateen_xds::AdsClient`], its own gRPC channel)
//! that behaves like Envoy on the wire: wildcard CDS and LDS, then EDS for the EDS clusters
//! it received and RDS for the route names its listeners reference, ACKing every response.
//! It keeps only names, not resources, and reports to the coordinator when it is synced and
//! whenever the marker route's v1 weight changes (with the instant it received it; the ACK is
//! sent right after the handler returns).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::Node;
use lateen_xds::pb::envoy::config::listener::v3::Listener;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager,
};
use lateen_xds::pb::google::protobuf::{Any, Struct, Value, value};
use lateen_xds::prost::{Message, Name};
use lateen_xds::{AdsClient, AdsClientConfig, AdsResponse, ClientMode};
use tokio::sync::mpsc;

use crate::route_scan;
use lateen_xds_load::generate::{NAMESPACE, PORT, host};

pub const CLUSTER: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
pub const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
pub const ENDPOINT: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
pub const ROUTE: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

/// What a simulated proxy tells the coordinator.
#[derive(Debug)]
pub enum Event {
    /// Every subscribed type received (and ACKed), EDS/RDS for every name asked.
    Synced { proxy: usize },
    /// The marker route now has this v1 weight, received at `at`.
    Marker {
        proxy: usize,
        weight: u32,
        at: Instant,
    },
    /// The proxy rejected a response (a bug in lateend or in this tool).
    Nack { proxy: usize, detail: String },
    /// Endpoint markers (the Kubernetes benchmark's changes) a proxy had not seen before,
    /// received at `at`.
    Endpoints { markers: Vec<u32>, at: Instant },
}

/// Which proxies are synced and what they rejected: the part of [`Event`]s every
/// measurement keeps.
#[derive(Debug)]
pub struct Progress {
    synced: Vec<bool>,
    pub synced_count: usize,
    pub nacks: usize,
    pub first_nack: Option<String>,
}

impl Progress {
    pub fn new(proxies: usize) -> Self {
        Self {
            synced: vec![false; proxies],
            synced_count: 0,
            nacks: 0,
            first_nack: None,
        }
    }

    /// Counts `Synced` and `Nack`; hands every other event back.
    pub fn record(&mut self, event: Event) -> Option<Event> {
        match event {
            Event::Synced { proxy } => {
                if let Some(s) = self.synced.get_mut(proxy)
                    && !*s
                {
                    *s = true;
                    self.synced_count += 1;
                }
                None
            }
            Event::Nack { proxy, detail } => {
                self.nacks += 1;
                self.first_nack
                    .get_or_insert_with(|| format!("proxy {proxy}: {detail}"));
                None
            }
            other => Some(other),
        }
    }
}

/// What a simulated proxy watches for.
#[derive(Clone, Copy, Debug)]
pub struct Watch {
    /// Synced only once the marker route (svc-0's VirtualService) arrived; report its weight.
    pub route_marker: bool,
    /// Report endpoint marker addresses (see `kube_mesh`) in EDS responses.
    pub endpoint_markers: bool,
    /// Synced only once this many EDS clusters arrived (0: any number).
    pub min_eds_clusters: usize,
}

/// Node id and metadata of simulated proxy `index`: a REDIRECT-mode sidecar in `bench` with its
/// own IP in 198.19.0.0/16, a replica of workload `index % workloads`.
pub fn node(index: usize, workloads: u32) -> Node {
    let ip = format!("198.19.{}.{}", (index + 1) / 256, (index + 1) % 256);
    let pod = format!("bench-client-{index}");
    let workload = format!("bench-client-{}", index % workloads.max(1) as usize);
    let labels = Struct {
        fields: [("app", workload.as_str()), ("version", "v1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), text(v)))
            .collect(),
    };
    let fields: BTreeMap<&str, Value> = [
        ("NAMESPACE", text(NAMESPACE)),
        ("INTERCEPTION_MODE", text("REDIRECT")),
        ("INSTANCE_IPS", text(&ip)),
        ("WORKLOAD_NAME", text(&workload)),
        ("SERVICE_ACCOUNT", text("bench-client")),
        (
            "POD_PORTS",
            text(r#"[{"name":"http","containerPort":8080,"protocol":"TCP"}]"#),
        ),
        (
            "LABELS",
            Value {
                kind: Some(value::Kind::StructValue(labels)),
            },
        ),
    ]
    .into_iter()
    .collect();
    Node {
        id: format!("sidecar~{ip}~{pod}.{NAMESPACE}~{NAMESPACE}.svc.cluster.local"),
        cluster: format!("bench-client.{NAMESPACE}"),
        metadata: Some(Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }),
        user_agent_name: "lateen-xds-load".into(),
        ..Default::default()
    }
}

fn text(s: &str) -> Value {
    Value {
        kind: Some(value::Kind::StringValue(s.to_string())),
    }
}

/// A running simulated proxy; dropping it disconnects it.
pub struct SimProxy {
    forwarder: tokio::task::JoinHandle<()>,
}

impl Drop for SimProxy {
    fn drop(&mut self) {
        // The forwarder owns the client: aborting it drops the client, which ends the stream.
        self.forwarder.abort();
    }
}

/// Starts simulated proxy `index`.
pub fn spawn(
    index: usize,
    workloads: u32,
    address: &str,
    mode: ClientMode,
    watch: Watch,
    events: mpsc::UnboundedSender<Event>,
) -> SimProxy {
    let mut config = AdsClientConfig::new(address, node(index, workloads))
        .subscribe(CLUSTER, &[])
        .subscribe(LISTENER, &[]);
    config.mode = mode;
    config.connect_timeout = std::time::Duration::from_secs(10);
    let (subscribe_tx, mut subscribe_rx) = mpsc::unbounded_channel();
    let mut state = ProxyState::new(index, watch, events, subscribe_tx);
    let client = AdsClient::spawn(config, move |response: &AdsResponse| {
        state.on_response(response)
    });
    // The handler cannot reach its own client handle: it asks for (re)subscriptions through a
    // channel that this task, the client's owner, forwards.
    let forwarder = tokio::spawn(async move {
        while let Some((type_url, names)) = subscribe_rx.recv().await {
            client.subscribe(type_url, names);
        }
    });
    SimProxy { forwarder }
}

/// Names and progress of one proxy.
struct ProxyState {
    index: usize,
    watch: Watch,
    /// Endpoint markers already reported.
    seen_markers: std::collections::HashSet<u32>,
    events: mpsc::UnboundedSender<Event>,
    subscribe: mpsc::UnboundedSender<(&'static str, BTreeSet<String>)>,
    /// Cluster name -> EDS service name, for EDS clusters (delta needs the map for removals).
    eds_clusters: BTreeMap<String, String>,
    /// Listener name -> route names it references.
    listener_routes: BTreeMap<String, BTreeSet<String>>,
    eds_wanted: BTreeSet<String>,
    rds_wanted: BTreeSet<String>,
    eds_have: BTreeSet<String>,
    rds_have: BTreeSet<String>,
    got_cds: bool,
    got_lds: bool,
    synced: bool,
    marker_vhost: String,
    marker_weight: Option<u32>,
}

impl ProxyState {
    fn new(
        index: usize,
        watch: Watch,
        events: mpsc::UnboundedSender<Event>,
        subscribe: mpsc::UnboundedSender<(&'static str, BTreeSet<String>)>,
    ) -> Self {
        Self {
            index,
            watch,
            seen_markers: std::collections::HashSet::new(),
            events,
            subscribe,
            eds_clusters: BTreeMap::new(),
            listener_routes: BTreeMap::new(),
            eds_wanted: BTreeSet::new(),
            rds_wanted: BTreeSet::new(),
            eds_have: BTreeSet::new(),
            rds_have: BTreeSet::new(),
            got_cds: false,
            got_lds: false,
            synced: false,
            marker_vhost: format!("{}:{PORT}", host(0)),
            marker_weight: None,
        }
    }

    fn on_response(&mut self, response: &AdsResponse) -> Result<(), String> {
        let received = Instant::now();
        let result = self.apply(response, received);
        if let Err(detail) = &result {
            let _ = self.events.send(Event::Nack {
                proxy: self.index,
                detail: detail.clone(),
            });
        }
        if !self.synced && self.is_synced() {
            self.synced = true;
            let _ = self.events.send(Event::Synced { proxy: self.index });
        }
        result
    }

    fn is_synced(&self) -> bool {
        self.got_cds
            && self.got_lds
            && self.eds_wanted.is_subset(&self.eds_have)
            && self.rds_wanted.is_subset(&self.rds_have)
            && (!self.watch.route_marker || self.marker_weight.is_some())
            && self.eds_have.len() >= self.watch.min_eds_clusters
    }

    fn apply(&mut self, response: &AdsResponse, received: Instant) -> Result<(), String> {
        let (full_state, resources, removed) = contents(response);
        match response.type_url() {
            CLUSTER => {
                self.got_cds = true;
                if full_state {
                    self.eds_clusters.clear();
                }
                for name in removed {
                    self.eds_clusters.remove(name);
                }
                for any in resources {
                    let c = Cluster::decode(any.value.as_slice())
                        .map_err(|e| format!("Cluster: {e}"))?;
                    let eds = matches!(
                        c.cluster_discovery_type,
                        Some(cluster::ClusterDiscoveryType::Type(t)) if t == cluster::DiscoveryType::Eds as i32
                    );
                    if eds {
                        let service = c
                            .eds_cluster_config
                            .as_ref()
                            .map(|e| e.service_name.clone())
                            .filter(|s| !s.is_empty())
                            .unwrap_or_else(|| c.name.clone());
                        self.eds_clusters.insert(c.name, service);
                    } else {
                        self.eds_clusters.remove(&c.name);
                    }
                }
                let wanted: BTreeSet<String> = self.eds_clusters.values().cloned().collect();
                if wanted != self.eds_wanted {
                    self.eds_wanted = wanted.clone();
                    let _ = self.subscribe.send((ENDPOINT, wanted));
                }
            }
            LISTENER => {
                self.got_lds = true;
                if full_state {
                    self.listener_routes.clear();
                }
                for name in removed {
                    self.listener_routes.remove(name);
                }
                for any in resources {
                    let l = Listener::decode(any.value.as_slice())
                        .map_err(|e| format!("Listener: {e}"))?;
                    let routes = route_names(&l)?;
                    self.listener_routes.insert(l.name, routes);
                }
                let wanted: BTreeSet<String> =
                    self.listener_routes.values().flatten().cloned().collect();
                if wanted != self.rds_wanted {
                    self.rds_wanted = wanted.clone();
                    let _ = self.subscribe.send((ROUTE, wanted));
                }
            }
            ENDPOINT => {
                if full_state {
                    self.eds_have.clear();
                }
                let mut new_markers = Vec::new();
                for any in resources {
                    self.eds_have.insert(
                        route_scan::string_field(&any.value, 1)
                            .ok_or("ClusterLoadAssignment without cluster_name")?
                            .to_string(),
                    );
                    if self.watch.endpoint_markers {
                        for marker in crate::kube_mesh::markers_in(&any.value) {
                            if self.seen_markers.insert(marker) {
                                new_markers.push(marker);
                            }
                        }
                    }
                }
                if !new_markers.is_empty() {
                    let _ = self.events.send(Event::Endpoints {
                        markers: new_markers,
                        at: received,
                    });
                }
            }
            ROUTE => {
                if full_state {
                    self.rds_have.clear();
                }
                for any in resources {
                    let name = route_scan::string_field(&any.value, 1)
                        .ok_or("RouteConfiguration without name")?;
                    self.rds_have.insert(name.to_string());
                    if let Some(weight) =
                        route_scan::subset_weight(&any.value, &self.marker_vhost, "|v1|")
                        && self.marker_weight != Some(weight)
                    {
                        self.marker_weight = Some(weight);
                        let _ = self.events.send(Event::Marker {
                            proxy: self.index,
                            weight,
                            at: received,
                        });
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// (whether the response is the type's full state, its resources, names removed). A SotW
/// response is the full state of clusters and listeners only: endpoint (and route) responses
/// may carry just what changed among the subscribed names, as lateend's and istiod's do.
fn contents(response: &AdsResponse) -> (bool, Vec<&Any>, Vec<&String>) {
    match response {
        AdsResponse::Sotw(r) => (
            r.type_url == CLUSTER || r.type_url == LISTENER,
            r.resources.iter().collect(),
            Vec::new(),
        ),
        AdsResponse::Delta(r) => (
            false,
            r.resources
                .iter()
                .filter_map(|r| r.resource.as_ref())
                .collect(),
            r.removed_resources.iter().collect(),
        ),
    }
}

/// Route names a listener's HTTP connection managers load over RDS.
fn route_names(listener: &Listener) -> Result<BTreeSet<String>, String> {
    let mut names = BTreeSet::new();
    let filters = listener
        .filter_chains
        .iter()
        .chain(listener.default_filter_chain.iter())
        .flat_map(|chain| chain.filters.iter());
    for filter in filters {
        let Some(lateen_xds::pb::envoy::config::listener::v3::filter::ConfigType::TypedConfig(any)) =
            &filter.config_type
        else {
            continue;
        };
        if any.type_url != HttpConnectionManager::type_url() {
            continue;
        }
        let hcm = HttpConnectionManager::decode(any.value.as_slice())
            .map_err(|e| format!("listener {} HttpConnectionManager: {e}", listener.name))?;
        if let Some(http_connection_manager::RouteSpecifier::Rds(rds)) = hcm.route_specifier {
            names.insert(rds.route_config_name);
        }
    }
    Ok(names)
}
