//! ADS server over real sockets on 127.0.0.1 with a raw tonic client: ordering, ACK, NACK,
//! push-only-on-change, and delta removals / initial versions.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use lateen_xds::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use lateen_xds::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use lateen_xds::pb::google::rpc;
use lateen_xds::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE};
use lateen_xds::{Snapshot, SyncState, XdsServer};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);

async fn start() -> (XdsServer, SocketAddr) {
    let server = XdsServer::default();
    let addr = server
        .spawn("127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("bind 127.0.0.1:0");
    (server, addr)
}

async fn client(addr: SocketAddr) -> AggregatedDiscoveryServiceClient<tonic::transport::Channel> {
    AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

async fn next<T>(rx: &mut Streaming<T>) -> T {
    tokio::time::timeout(WAIT, rx.message())
        .await
        .expect("response within deadline")
        .expect("stream ok")
        .expect("stream open")
}

fn full_snapshot(route_body: Option<&str>) -> Snapshot {
    let route = match route_body {
        Some(body) => direct_response("r1", body),
        None => route_to("r1", "c1"),
    };
    Snapshot::new()
        .with(&eds_cluster("c1"))
        .with(&endpoints("c1", 9))
        .with(&http_listener("l1", "127.0.0.1", 10001, "r1"))
        .with(&route)
}

struct Sotw {
    tx: mpsc::Sender<DiscoveryRequest>,
    rx: Streaming<DiscoveryResponse>,
}

impl Sotw {
    async fn open(addr: SocketAddr) -> Self {
        let (tx, req_rx) = mpsc::channel(16);
        let rx = client(addr)
            .await
            .stream_aggregated_resources(ReceiverStream::new(req_rx))
            .await
            .expect("open stream")
            .into_inner();
        Self { tx, rx }
    }

    async fn send(&self, type_url: &str, names: &[&str], ack_of: Option<&DiscoveryResponse>) {
        let request = DiscoveryRequest {
            node: Some(node("n1")),
            type_url: type_url.to_string(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            version_info: ack_of.map(|r| r.version_info.clone()).unwrap_or_default(),
            response_nonce: ack_of.map(|r| r.nonce.clone()).unwrap_or_default(),
            ..Default::default()
        };
        self.tx.send(request).await.expect("request channel open");
    }

    async fn nack(&self, type_url: &str, names: &[&str], of: &DiscoveryResponse, detail: &str) {
        let request = DiscoveryRequest {
            type_url: type_url.to_string(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: of.nonce.clone(),
            error_detail: Some(rpc::Status {
                code: 3,
                message: detail.to_string(),
                details: vec![],
            }),
            ..Default::default()
        };
        self.tx.send(request).await.expect("request channel open");
    }

    async fn recv(&mut self) -> DiscoveryResponse {
        next(&mut self.rx).await
    }

    async fn quiet(&mut self) -> bool {
        tokio::time::timeout(QUIET, self.rx.message())
            .await
            .is_err()
    }
}

#[tokio::test]
async fn sotw_orders_acks_nacks_and_pushes_only_changes() {
    let (server, addr) = start().await;
    server.set_snapshot("n1", full_snapshot(None));
    let mut s = Sotw::open(addr).await;

    // Envoy asks for clusters and listeners at once; listeners must wait for the clusters.
    s.send(CLUSTER, &[], None).await;
    s.send(LISTENER, &[], None).await;
    let cds = s.recv().await;
    assert_eq!(cds.type_url, CLUSTER);
    assert_eq!(cds.resources.len(), 1);
    assert!(
        s.quiet().await,
        "LDS must not be sent before CDS is answered"
    );

    s.send(ENDPOINT, &["c1"], None).await;
    s.send(CLUSTER, &[], Some(&cds)).await;
    let eds = s.recv().await;
    assert_eq!(eds.type_url, ENDPOINT);
    s.send(ENDPOINT, &["c1"], Some(&eds)).await;
    let lds = s.recv().await;
    assert_eq!(lds.type_url, LISTENER);
    s.send(LISTENER, &[], Some(&lds)).await;
    s.send(ROUTE, &["r1"], None).await;
    let rds = s.recv().await;
    assert_eq!(rds.type_url, ROUTE);
    s.send(ROUTE, &["r1"], Some(&rds)).await;

    let synced = wait_for(WAIT, || {
        let rows = server.sync_status();
        let row = rows.first()?;
        (row.cds == SyncState::Synced
            && row.eds == SyncState::Synced
            && row.lds == SyncState::Synced
            && row.rds == SyncState::Synced)
            .then_some(())
    })
    .await;
    assert!(
        synced.is_some(),
        "all types SYNCED: {:?}",
        server.sync_status()
    );

    // Same content: nothing is pushed.
    server.set_snapshot("n1", full_snapshot(None));
    assert!(s.quiet().await, "no push for an unchanged snapshot");

    // Only the route changes: only RDS is pushed.
    server.set_snapshot("n1", full_snapshot(Some("changed")));
    let rds2 = s.recv().await;
    assert_eq!(rds2.type_url, ROUTE);
    assert_ne!(rds2.version_info, rds.version_info);
    assert!(s.quiet().await, "only the changed type is pushed");

    // The proxy rejects it: recorded with the detail, counted, not acked.
    s.nack(ROUTE, &["r1"], &rds2, "route r1: bad config").await;
    let nacked = wait_for(WAIT, || {
        let rows = server.sync_status();
        let row = rows.first()?;
        (row.rds == SyncState::Nack).then(|| row.types.get(ROUTE).cloned())?
    })
    .await
    .expect("NACK recorded");
    let nack = nacked.last_nack.expect("last_nack set");
    assert_eq!(nack.error_detail, "route r1: bad config");
    assert_eq!(nack.rejected_version, rds2.version_info);
    assert_eq!(
        nacked.acked_version.as_deref(),
        Some(rds.version_info.as_str())
    );
    assert_eq!(server.metrics().nacks_total(), 1);
    assert!(
        server
            .metrics()
            .push_latency
            .count
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 4
    );
    assert!(s.quiet().await, "a NACKed version is not resent");

    drop(s);
    let gone = wait_for(WAIT, || server.sync_status().is_empty().then_some(())).await;
    assert!(gone.is_some(), "disconnect removes the row");
}

/// The cluster names of a SotW EDS response.
fn assignment_names(r: &DiscoveryResponse) -> Vec<String> {
    use lateen_xds::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
    use lateen_xds::prost::Message;
    r.resources
        .iter()
        .map(|any| {
            ClusterLoadAssignment::decode(any.value.as_slice())
                .expect("a ClusterLoadAssignment")
                .cluster_name
        })
        .collect()
}

#[tokio::test]
async fn sotw_endpoint_pushes_carry_only_the_changed_assignments() {
    let (server, addr) = start().await;
    let snapshot = |c2_port: u16| {
        Snapshot::new()
            .with(&eds_cluster("c1"))
            .with(&eds_cluster("c2"))
            .with(&endpoints("c1", 9))
            .with(&endpoints("c2", c2_port))
    };
    server.set_snapshot("n1", snapshot(10));
    let mut s = Sotw::open(addr).await;
    s.send(CLUSTER, &[], None).await;
    let cds = s.recv().await;
    s.send(CLUSTER, &[], Some(&cds)).await;
    let both = ["c1", "c2"];
    s.send(ENDPOINT, &both, None).await;
    let first = s.recv().await;
    assert_eq!(
        assignment_names(&first),
        both,
        "the first response is whole"
    );
    s.send(ENDPOINT, &both, Some(&first)).await;

    // c2's endpoints change: only c2 is sent; c1 stays as the proxy has it.
    server.set_snapshot("n1", snapshot(11));
    let second = s.recv().await;
    assert_eq!(second.type_url, ENDPOINT);
    assert_eq!(assignment_names(&second), ["c2"]);
    assert_ne!(second.version_info, first.version_info);
    assert!(s.quiet().await, "clusters did not change");

    // After a NACK the proxy's state is not what was sent: the next push is whole again.
    s.nack(ENDPOINT, &both, &second, "endpoints rejected").await;
    server.set_snapshot("n1", snapshot(12));
    let third = s.recv().await;
    assert_eq!(assignment_names(&third), both);
    s.send(ENDPOINT, &both, Some(&third)).await;

    // A newly subscribed name gets its assignment, and only it.
    server.set_snapshot(
        "n1",
        snapshot(12)
            .with(&eds_cluster("c3"))
            .with(&endpoints("c3", 13)),
    );
    let cds2 = s.recv().await;
    assert_eq!(cds2.type_url, CLUSTER);
    assert_eq!(cds2.resources.len(), 3, "clusters stay whole");
    s.send(CLUSTER, &[], Some(&cds2)).await;
    s.send(ENDPOINT, &["c1", "c2", "c3"], Some(&third)).await;
    let fourth = s.recv().await;
    assert_eq!(assignment_names(&fourth), ["c3"]);
}

struct Delta {
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    rx: Streaming<DeltaDiscoveryResponse>,
}

impl Delta {
    async fn open(addr: SocketAddr) -> Self {
        let (tx, req_rx) = mpsc::channel(16);
        let rx = client(addr)
            .await
            .delta_aggregated_resources(ReceiverStream::new(req_rx))
            .await
            .expect("open stream")
            .into_inner();
        Self { tx, rx }
    }

    async fn send(&self, request: DeltaDiscoveryRequest) {
        let request = DeltaDiscoveryRequest {
            node: Some(node("n2")),
            ..request
        };
        self.tx.send(request).await.expect("request channel open");
    }

    async fn ack(&self, of: &DeltaDiscoveryResponse) {
        self.send(DeltaDiscoveryRequest {
            type_url: of.type_url.clone(),
            response_nonce: of.nonce.clone(),
            ..Default::default()
        })
        .await;
    }

    async fn recv(&mut self) -> DeltaDiscoveryResponse {
        next(&mut self.rx).await
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<String> {
    r.resources.iter().map(|r| r.name.clone()).collect()
}

#[tokio::test]
async fn delta_sends_changes_removals_and_honours_initial_versions() {
    let (server, addr) = start().await;
    let two = Snapshot::new()
        .with(&eds_cluster("c1"))
        .with(&eds_cluster("c2"))
        .with(&endpoints("c1", 9))
        .with(&endpoints("c2", 10));
    server.set_snapshot("n2", two);
    let mut d = Delta::open(addr).await;
    d.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.to_string(),
        ..Default::default()
    })
    .await;
    let cds = d.recv().await;
    assert_eq!(names(&cds), ["c1", "c2"]);
    d.ack(&cds).await;
    d.send(DeltaDiscoveryRequest {
        type_url: ENDPOINT.to_string(),
        resource_names_subscribe: vec!["c1".into(), "c2".into()],
        ..Default::default()
    })
    .await;
    let eds = d.recv().await;
    assert_eq!(names(&eds), ["c1", "c2"]);
    d.ack(&eds).await;

    // Drop c2: with no listener or route waiting, the cluster and its endpoints go at once,
    // clusters first.
    let one = Snapshot::new()
        .with(&eds_cluster("c1"))
        .with(&endpoints("c1", 9));
    server.set_snapshot("n2", one);
    let cds2 = d.recv().await;
    assert_eq!(cds2.type_url, CLUSTER);
    assert_eq!(cds2.removed_resources, ["c2"]);
    assert!(cds2.resources.is_empty(), "unchanged c1 is not resent");
    let eds2 = d.recv().await;
    assert_eq!(eds2.type_url, ENDPOINT);
    assert_eq!(eds2.removed_resources, ["c2"]);
    assert!(eds2.resources.is_empty());
    d.ack(&cds2).await;
    d.ack(&eds2).await;
    let c1_version = cds.resources[0].version.clone();

    // A reconnecting proxy that already has c1 and a stale cluster gets only the removal.
    let mut d2 = Delta::open(addr).await;
    d2.send(DeltaDiscoveryRequest {
        type_url: CLUSTER.to_string(),
        initial_resource_versions: HashMap::from([
            ("c1".to_string(), c1_version),
            ("old".to_string(), "x".to_string()),
        ]),
        ..Default::default()
    })
    .await;
    let cds3 = d2.recv().await;
    assert!(
        cds3.resources.is_empty(),
        "c1 unchanged: {:?}",
        names(&cds3)
    );
    assert_eq!(cds3.removed_resources, ["old"]);
    assert_eq!(server.sync_status().len(), 2);
}

#[derive(Default)]
struct Provider {
    connected: std::sync::Mutex<Vec<String>>,
    disconnected: std::sync::atomic::AtomicUsize,
}

impl lateen_xds::SnapshotProvider for Provider {
    fn snapshot_for(&self, node: &lateen_xds::ProxyNode) -> Option<std::sync::Arc<Snapshot>> {
        Some(std::sync::Arc::new(
            Snapshot::new().with(&eds_cluster(&format!("for-{}", node.id))),
        ))
    }
    fn on_connect(
        &self,
        node: &lateen_xds::ProxyNode,
        _connection_id: u64,
        _identity: Option<&lateen_xds::VerifiedIdentity>,
    ) {
        if let Ok(mut c) = self.connected.lock() {
            c.push(node.id.clone());
        }
    }
    fn on_disconnect(&self, _node: &lateen_xds::ProxyNode, _connection_id: u64) {
        self.disconnected
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

#[tokio::test]
async fn provider_supplies_first_snapshot_and_hears_connects() {
    use std::sync::atomic::Ordering;
    let provider = std::sync::Arc::new(Provider::default());
    let server = XdsServer::new(Some(provider.clone()));
    let addr = server
        .spawn("127.0.0.1:0".parse().expect("literal address"))
        .await
        .expect("bind");
    let mut s = Sotw::open(addr).await;
    s.send(CLUSTER, &[], None).await;
    let cds = next(&mut s.rx).await;
    assert_eq!(cds.resources.len(), 1);
    s.send(CLUSTER, &[], Some(&cds)).await;
    assert_eq!(
        provider
            .connected
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default(),
        ["n1"]
    );
    assert_eq!(server.metrics().connected_proxies.load(Ordering::SeqCst), 1);
    assert!(
        server.cache().snapshot("n1").is_some(),
        "provider snapshot cached"
    );

    let json = wait_for(WAIT, || {
        let json = serde_json::to_value(server.sync_status()).ok()?;
        (json[0]["cds"] == "SYNCED").then_some(json)
    })
    .await
    .expect("CDS SYNCED in /debug/syncz JSON");
    assert_eq!(json[0]["proxy"], "n1");
    assert_eq!(json[0]["lds"], "NOT SENT");

    drop(s);
    let gone = wait_for(WAIT, || {
        (provider.disconnected.load(Ordering::SeqCst) == 1).then_some(())
    })
    .await;
    assert!(gone.is_some(), "on_disconnect called");
    assert_eq!(server.metrics().connected_proxies.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_stream_without_node_id_is_refused() {
    let (server, addr) = start().await;
    let mut s = Sotw::open(addr).await;
    let request = DiscoveryRequest {
        type_url: CLUSTER.to_string(),
        ..Default::default()
    };
    s.tx.send(request).await.expect("request channel open");
    let refused = tokio::time::timeout(WAIT, s.rx.message())
        .await
        .expect("answer within deadline");
    let status = refused.expect_err("stream refused");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(server.sync_status().is_empty());
}
