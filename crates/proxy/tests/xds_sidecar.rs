//! `lateen-proxy sidecar` against lateen-xds's ADS server run in the test: pushed resources
//! carry traffic, route changes apply live without failed requests, invalid resources are
//! NACKed with a detail while traffic keeps flowing, listeners are bound and unbound live,
//! and the proxy keeps serving while the control plane is away, then reconnects.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;
mod xds_support;

use lateen_xds::pb::envoy::config::route::v3::{RouteAction, route, route_action, route_match};
use lateen_xds::pb::envoy::r#type::matcher::v3::RegexMatcher;
use lateen_xds::{Snapshot, SyncState, XdsServer};
use std::net::SocketAddr;
use std::time::Duration;
use support::upstream::Upstream;
use support::{eventually as until, get};
use xds_support::*;

async fn start_server() -> (XdsServer, SocketAddr) {
    let server = XdsServer::default();
    let address = server
        .spawn(([127, 0, 0, 1], 0).into())
        .await
        .expect("bind xDS server");
    (server, address)
}

fn listen_address() -> SocketAddr {
    ([127, 0, 0, 1], unique_port()).into()
}

/// One listener, one route table, the given clusters with their endpoints.
fn snapshot(
    listener: SocketAddr,
    routes: &lateen_xds::pb::envoy::config::route::v3::RouteConfiguration,
    clusters: &[(&str, SocketAddr)],
) -> Snapshot {
    let mut snapshot = Snapshot::new()
        .with(&http_listener("http", listener, &routes.name))
        .with(routes);
    for (name, address) in clusters {
        snapshot.add(&eds_cluster(name));
        snapshot.add(&endpoints(name, &[*address]));
    }
    snapshot
}

async fn body_of(address: SocketAddr) -> Option<String> {
    match get(address, "/").await {
        Ok((200, body)) => Some(body),
        _ => None,
    }
}

#[tokio::test]
async fn pushed_resources_carry_traffic_and_show_in_config_dump() {
    let (server, xds) = start_server().await;
    let upstream = Upstream::start("alpha").await;
    let listen = listen_address();
    let mut sidecar = SidecarProcess::start(xds);

    // Not ready before the first configuration.
    assert!(
        until(Duration::from_secs(10), || async {
            get(sidecar.health, "/healthz/ready").await.is_ok()
        })
        .await,
        "health port up"
    );
    assert!(!sidecar.is_ready().await, "ready before any configuration");

    server.set_snapshot(
        NODE_ID,
        snapshot(
            listen,
            &route_to("main", "backend"),
            &[("backend", upstream.address)],
        ),
    );
    sidecar.wait_ready().await;
    let body = body_of(listen).await.unwrap_or_else(|| {
        panic!(
            "no answer through the pushed listener; log:\n{}",
            sidecar.log_text()
        )
    });
    assert!(
        body.contains("alpha"),
        "answered by the pushed endpoint: {body}"
    );

    // The node the proxy sent is Envoy's under Istio.
    let status = server.sync_status();
    let row = status
        .iter()
        .find(|row| row.proxy == NODE_ID)
        .expect("the sidecar is connected with the Istio node id");
    assert_eq!(row.cluster, "web.shop");
    assert_eq!(row.metadata["NAMESPACE"], "shop");
    assert_eq!(row.metadata["INTERCEPTION_MODE"], "NONE");
    assert_eq!(row.metadata["LABELS"]["version"], "v2");
    assert_eq!(row.metadata["WORKLOAD_NAME"], "web");
    assert_eq!(row.metadata["CLUSTER_ID"], "test-cluster");
    assert_eq!(row.metadata["SERVICE_ACCOUNT"], "web");
    assert!(
        until(Duration::from_secs(5), || async {
            let row = server
                .sync_status()
                .into_iter()
                .find(|row| row.proxy == NODE_ID);
            row.is_some_and(|row| {
                [row.cds, row.eds, row.lds, row.rds]
                    .iter()
                    .all(|state| *state == SyncState::Synced)
            })
        })
        .await
    );

    let dump = sidecar.config_dump().await;
    let xds_info = &dump["config"]["xds"];
    assert_eq!(xds_info["control_plane"], xds.to_string());
    for (kind, name) in [
        ("CDS", "backend"),
        ("EDS", "backend"),
        ("LDS", "http"),
        ("RDS", "main"),
    ] {
        assert!(
            xds_info["resources"][kind][name]
                .as_str()
                .is_some_and(|version| !version.is_empty()),
            "{kind} {name} version in {xds_info}"
        );
    }
    assert_eq!(
        dump["config"]["listeners"][0]["address"],
        listen.to_string()
    );
    assert_eq!(
        dump["config"]["node"]["principal"],
        "spiffe://cluster.local/ns/shop/sa/web"
    );
}

#[tokio::test]
async fn route_change_applies_live_without_failed_requests() {
    let (server, xds) = start_server().await;
    let (alpha, beta) = (
        Upstream::start("alpha").await,
        Upstream::start("beta").await,
    );
    let listen = listen_address();
    let clusters = [("a", alpha.address), ("b", beta.address)];
    server.set_snapshot(NODE_ID, snapshot(listen, &route_to("main", "a"), &clusters));
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;

    let mut failures = Vec::new();
    let mut switched = false;
    let mut after_switch = 0;
    for request in 0..3000 {
        if request == 20 {
            server.set_snapshot(NODE_ID, snapshot(listen, &route_to("main", "b"), &clusters));
        }
        match get(listen, "/").await {
            Ok((200, body)) if body.contains("beta") => {
                switched = true;
                after_switch += 1;
            }
            Ok((200, body)) if body.contains("alpha") => {
                assert!(!switched, "went back to the old route after the switch")
            }
            other => failures.push(format!("{other:?}")),
        }
        if after_switch >= 20 {
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "failed requests during the route change: {failures:?}"
    );
    assert!(
        switched,
        "route change never applied; log:\n{}",
        sidecar.log_text()
    );
}

#[tokio::test]
async fn invalid_resources_are_nacked_with_a_detail_and_traffic_keeps_flowing() {
    let (server, xds) = start_server().await;
    let upstream = Upstream::start("alpha").await;
    let listen = listen_address();
    let good = snapshot(
        listen,
        &route_to("main", "backend"),
        &[("backend", upstream.address)],
    );
    server.set_snapshot(NODE_ID, good.clone());
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;

    // A route whose regex does not compile.
    let bad_route = route_config(
        "main",
        route_match::PathSpecifier::SafeRegex(RegexMatcher {
            regex: "/(unclosed".into(),
            ..Default::default()
        }),
        route::Action::Route(RouteAction {
            cluster_specifier: Some(route_action::ClusterSpecifier::Cluster("backend".into())),
            ..Default::default()
        }),
    );
    server.set_snapshot(NODE_ID, good.clone().with(&bad_route));
    let nack = wait_for_nack(&server, "RDS").await;
    assert!(
        nack.contains("RouteConfiguration \"main\""),
        "names the resource: {nack}"
    );
    assert!(
        nack.contains("virtual_hosts[0].routes[0].match.safe_regex.regex"),
        "names the field: {nack}"
    );
    assert!(nack.contains("invalid regex"), "gives the reason: {nack}");
    for _ in 0..20 {
        assert!(
            body_of(listen)
                .await
                .is_some_and(|body| body.contains("alpha")),
            "traffic stopped after a NACK"
        );
    }

    // A cluster with a field lateen-proxy does not implement is refused, not ignored.
    let mut provided = eds_cluster("backend");
    provided.lb_policy =
        lateen_xds::pb::envoy::config::cluster::v3::cluster::LbPolicy::ClusterProvided as i32;
    server.set_snapshot(NODE_ID, good.clone().with(&provided));
    let nack = wait_for_nack(&server, "CDS").await;
    assert!(
        nack.contains("Cluster \"backend\": lb_policy: CLUSTER_PROVIDED is not supported"),
        "{nack}"
    );
    let mut transparent = http_listener("http", listen, "main");
    transparent.transparent = Some(lateen_xds::pb::google::protobuf::BoolValue { value: true });
    server.set_snapshot(NODE_ID, good.clone().with(&transparent));
    let nack = wait_for_nack(&server, "LDS").await;
    assert!(
        nack.contains("Listener \"http\": transparent: not supported"),
        "{nack}"
    );
    assert!(
        body_of(listen)
            .await
            .is_some_and(|body| body.contains("alpha")),
        "traffic stopped after a NACK"
    );

    // A good push after the NACKs is accepted again.
    server.set_snapshot(NODE_ID, good.with(&direct_response("main", "recovered")));
    assert!(
        until(Duration::from_secs(10), || async {
            body_of(listen)
                .await
                .is_some_and(|body| body == "recovered")
        })
        .await
    );
}

/// Waits until the server records a NACK of `kind` and returns its detail.
async fn wait_for_nack(server: &XdsServer, kind: &str) -> String {
    let type_url = match kind {
        "CDS" => lateen_xds::types::CLUSTER,
        "LDS" => lateen_xds::types::LISTENER,
        _ => lateen_xds::types::ROUTE,
    };
    let mut detail = None;
    until(Duration::from_secs(10), || {
        let found = server
            .sync_status()
            .into_iter()
            .find(|row| row.proxy == NODE_ID)
            .and_then(|row| {
                let record = row.types.get(type_url)?;
                if !record.last_response_nacked {
                    return None;
                }
                record
                    .last_nack
                    .as_ref()
                    .map(|nack| nack.error_detail.clone())
            });
        let done = found.is_some();
        detail = found;
        async move { done }
    })
    .await;
    detail.unwrap_or_else(|| {
        panic!(
            "no {kind} NACK recorded: {:?}",
            server
                .sync_status()
                .first()
                .map(|row| (row.cds, row.lds, row.rds))
        )
    })
}

#[tokio::test]
async fn listeners_are_bound_and_unbound_live() {
    let (server, xds) = start_server().await;
    let upstream = Upstream::start("alpha").await;
    let (first, second) = (listen_address(), listen_address());
    let base = snapshot(
        first,
        &route_to("main", "backend"),
        &[("backend", upstream.address)],
    );
    server.set_snapshot(NODE_ID, base.clone());
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;
    assert!(
        get(second, "/").await.is_err(),
        "second listener bound before it was pushed"
    );

    server.set_snapshot(
        NODE_ID,
        base.clone().with(&http_listener("extra", second, "main")),
    );
    assert!(
        until(Duration::from_secs(10), || async {
            body_of(second)
                .await
                .is_some_and(|body| body.contains("alpha"))
        })
        .await,
        "new listener not bound; log:\n{}",
        sidecar.log_text()
    );
    assert!(body_of(first).await.is_some());

    server.set_snapshot(NODE_ID, base);
    assert!(
        until(Duration::from_secs(10), || async {
            tokio::net::TcpStream::connect(second).await.is_err()
        })
        .await,
        "removed listener still accepts"
    );
    assert!(
        body_of(first)
            .await
            .is_some_and(|body| body.contains("alpha"))
    );
}

#[tokio::test]
async fn keeps_serving_while_the_control_plane_is_away_and_reconnects() {
    let upstream = Upstream::start("alpha").await;
    let listen = listen_address();
    let xds: SocketAddr = ([127, 0, 0, 1], unique_port()).into();

    // The control plane runs on a runtime of its own so that stopping it ends its streams.
    let control_plane = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = XdsServer::default();
    server.set_snapshot(
        NODE_ID,
        snapshot(
            listen,
            &route_to("main", "backend"),
            &[("backend", upstream.address)],
        ),
    );
    let serving = server.clone();
    control_plane.spawn(async move { serving.spawn(xds).await.expect("bind xDS server") });
    let mut sidecar = SidecarProcess::start(xds);
    sidecar.wait_ready().await;
    assert!(
        body_of(listen)
            .await
            .is_some_and(|body| body.contains("alpha"))
    );

    control_plane.shutdown_background();
    for _ in 0..30 {
        assert!(
            body_of(listen)
                .await
                .is_some_and(|body| body.contains("alpha")),
            "stopped serving without the control plane"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        sidecar.is_ready().await,
        "a lost control plane must not make the proxy unready"
    );

    // A new control plane on the same address, with a changed route.
    let control_plane = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let server = XdsServer::default();
    server.set_snapshot(
        NODE_ID,
        snapshot(
            listen,
            &direct_response("main", "from the new control plane"),
            &[("backend", upstream.address)],
        ),
    );
    let serving = server.clone();
    control_plane.spawn(async move {
        for _ in 0..100 {
            if serving.spawn(xds).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("cannot bind the xDS address again");
    });
    assert!(
        until(Duration::from_secs(30), || async {
            body_of(listen)
                .await
                .is_some_and(|body| body == "from the new control plane")
        })
        .await,
        "no configuration from the restarted control plane; log:\n{}",
        sidecar.log_text()
    );
    assert!(server.sync_status().iter().any(|row| row.proxy == NODE_ID));
    control_plane.shutdown_background();
}
