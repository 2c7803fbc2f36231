//! The xDS sidecar with real capture: a "pod" namespace with `lateen-proxy capture` rules and
//! the sidecar (UID 1337) configured over ADS with Istio-shaped resources as lateend sends
//! them: virtualOutbound (use_original_dst, passthrough by default) with a `bind_to_port:
//! false` listener per service port, virtualInbound (original_dst listener filter) with a
//! chain per inbound port. The ADS server runs in this test; the pod reaches it through a
//! small relay from 127.0.0.1:15010 in the pod to a Unix socket. Needs root, `ip`, iptables,
//! setpriv, curl and python3; addresses are from 198.18.0.0/15 in namespaces made here.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod xds_support;

use lateen_test_support::netns::{
    self, EXCLUDED_INBOUND_PORTS, End, Lab, SIDECAR_CAPTURE_FLAGS, must, run as sh,
};
use lateen_test_support::wait;
use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{
    BindConfig, HeaderValue, HeaderValueOption, Metadata, SocketAddress, socket_address,
};
use lateen_xds::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use lateen_xds::pb::envoy::extensions::filters::http::router::v3::Router;
use lateen_xds::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, http_connection_manager, http_filter,
};
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::{TcpProxy, tcp_proxy};
use lateen_xds::pb::google::protobuf::{self, ListValue, Struct, Value, value::Kind};
use lateen_xds::{Snapshot, XdsServer};
use std::net::SocketAddr;
use std::time::Duration;
use xds_support::*;

// `xds_support` reaches `support::` through the crate root.
mod support;

const PROXY: &str = env!("CARGO_BIN_EXE_lateen-proxy");
const NODE: &str = "sidecar~198.18.1.1~pod-a-6b7c8d9f5d-xk2p9.default~default.svc.cluster.local";

/// Forwards 127.0.0.1:PORT to a Unix socket (one thread per direction).
const RELAY: &str = r#"
import socket, sys, threading
path, port = sys.argv[1], int(sys.argv[2])
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("127.0.0.1", port))
server.listen(16)
def pipe(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass
while True:
    client, _ = server.accept()
    upstream = socket.socket(socket.AF_UNIX)
    upstream.connect(path)
    threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
    threading.Thread(target=pipe, args=(upstream, client), daemon=True).start()
"#;

/// An app request (UID 1000) from `ns`: the HTTP status.
fn app_get(ns: &str, url: &str) -> String {
    netns::http_status(ns, Some(1000), url)
}

fn wait(what: &str, check: impl FnMut() -> bool, log: impl FnOnce() -> String) {
    wait::until_or(what, Duration::from_secs(20), check, log);
}

fn requests(ns: &str, parts: &[&str]) -> f64 {
    let text = must(
        Some(ns),
        &["curl", "-s", "http://127.0.0.1:15090/stats/prometheus"],
    );
    lateen_test_support::metrics_text::sum(&text, "istio_requests_total", parts)
}

fn typed(name: &str, any: protobuf::Any) -> Filter {
    Filter {
        name: name.into(),
        config_type: Some(filter::ConfigType::TypedConfig(any)),
    }
}

fn tcp_to(cluster: &str) -> Filter {
    typed(
        "envoy.filters.network.tcp_proxy",
        pack(&TcpProxy {
            stat_prefix: cluster.into(),
            cluster_specifier: Some(tcp_proxy::ClusterSpecifier::Cluster(cluster.into())),
            ..Default::default()
        }),
    )
}

fn original_dst_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: cluster::LbPolicy::ClusterProvided as i32,
        ..Default::default()
    }
}

fn istio_service(host: &str) -> Metadata {
    let text = |value: &str| Value {
        kind: Some(Kind::StringValue(value.into())),
    };
    let service = Struct {
        fields: [
            ("host".to_string(), text(host)),
            ("namespace".to_string(), text("default")),
        ]
        .into(),
    };
    let services = Value {
        kind: Some(Kind::ListValue(ListValue {
            values: vec![Value {
                kind: Some(Kind::StructValue(service)),
            }],
        })),
    };
    Metadata {
        filter_metadata: [(
            "istio".to_string(),
            Struct {
                fields: [("services".to_string(), services)].into(),
            },
        )]
        .into(),
        ..Default::default()
    }
}

/// What lateend sends a REDIRECT-mode sidecar calling `peer:8080` with an app on 9080.
fn resources() -> Snapshot {
    let peer = "outbound|8080||peer.default.svc.cluster.local";
    let mut peer_cluster = eds_cluster(peer);
    peer_cluster.metadata = Some(istio_service("peer.default.svc.cluster.local"));
    let inbound = Cluster {
        name: "inbound|9080||".into(),
        load_assignment: Some(endpoints(
            "inbound|9080||",
            &["127.0.0.1:9080".parse().expect("literal")],
        )),
        upstream_bind_config: Some(BindConfig {
            source_address: Some(SocketAddress {
                address: "127.0.0.6".into(),
                port_specifier: Some(socket_address::PortSpecifier::PortValue(0)),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let any: SocketAddr = "0.0.0.0:15001".parse().expect("literal");
    let virtual_outbound = Listener {
        name: "virtualOutbound".into(),
        address: Some(socket(any)),
        use_original_dst: Some(protobuf::BoolValue { value: true }),
        traffic_direction: 2,
        default_filter_chain: Some(FilterChain {
            name: "PassthroughFilterChain".into(),
            filters: vec![tcp_to("PassthroughCluster")],
            ..Default::default()
        }),
        ..Default::default()
    };
    let mut outbound_8080 = http_listener(
        "0.0.0.0_8080",
        "0.0.0.0:8080".parse().expect("literal"),
        "8080",
    );
    outbound_8080.bind_to_port = Some(protobuf::BoolValue { value: false });
    outbound_8080.traffic_direction = 2;
    let mut inline = route_to("inbound|9080||", "inbound|9080||");
    inline.response_headers_to_add = vec![HeaderValueOption {
        header: Some(HeaderValue {
            key: "x-lateen-chain".into(),
            value: "inbound-9080".into(),
            ..Default::default()
        }),
        append_action: 2,
        ..Default::default()
    }];
    let inbound_manager = HttpConnectionManager {
        stat_prefix: "inbound_0.0.0.0_9080".into(),
        route_specifier: Some(http_connection_manager::RouteSpecifier::RouteConfig(inline)),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".into(),
            config_type: Some(http_filter::ConfigType::TypedConfig(pack(
                &Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    let virtual_inbound = Listener {
        name: "virtualInbound".into(),
        address: Some(socket("0.0.0.0:15006".parse().expect("literal"))),
        traffic_direction: 1,
        listener_filters: vec![ListenerFilter {
            name: "envoy.filters.listener.original_dst".into(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(pack(
                &OriginalDst {},
            ))),
            ..Default::default()
        }],
        filter_chains: vec![FilterChain {
            name: "inbound|9080||".into(),
            filter_chain_match: Some(FilterChainMatch {
                destination_port: Some(protobuf::UInt32Value { value: 9080 }),
                ..Default::default()
            }),
            filters: vec![typed(
                "envoy.filters.network.http_connection_manager",
                pack(&inbound_manager),
            )],
            ..Default::default()
        }],
        default_filter_chain: Some(FilterChain {
            name: "InboundPassthroughFilterChain".into(),
            filters: vec![tcp_to("InboundPassthroughCluster")],
            ..Default::default()
        }),
        ..Default::default()
    };
    Snapshot::new()
        .with(&peer_cluster)
        .with(&endpoints(
            peer,
            &["198.18.1.2:8080".parse().expect("literal")],
        ))
        .with(&inbound)
        .with(&original_dst_cluster("PassthroughCluster"))
        .with(&original_dst_cluster("InboundPassthroughCluster"))
        .with(&virtual_outbound)
        .with(&outbound_8080)
        .with(&virtual_inbound)
        .with(&route_to("8080", peer))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captured_traffic_follows_xds_listeners() {
    let tools = ["ip", "iptables-restore", "setpriv", "curl", "python3"];
    if !netns::can_run(
        "captured_traffic_follows_xds_listeners",
        netns::missing(&tools),
    ) {
        return;
    }
    let mut lab = Lab::new("xcap");
    let socket_path = lab.dir().join("xds.sock");
    let server = XdsServer::default();
    server.set_snapshot(NODE, resources());
    let unix = tokio::net::UnixListener::bind(&socket_path).expect("bind unix socket");
    let incoming = futures_util::stream::unfold(unix, |listener| async move {
        Some((listener.accept().await.map(|(stream, _)| stream), listener))
    });
    let service = server.service();
    tokio::spawn(async move {
        lateen_xds::tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(incoming)
            .await
    });

    let (pod, peer) = (lab.namespace("pod"), lab.namespace("peer"));
    lab.veth(
        End {
            netns: &pod,
            addresses: &["198.18.1.1/24"],
        },
        End {
            netns: &peer,
            addresses: &["198.18.1.2/24"],
        },
    );
    lab.spawn(
        &peer,
        "peer",
        &[
            "python3",
            "-m",
            "http.server",
            "8080",
            "--bind",
            "198.18.1.2",
        ],
        &[],
    );
    lab.spawn(
        &pod,
        "app",
        &["python3", "-m", "http.server", "9080", "--bind", "0.0.0.0"],
        &[],
    );
    lab.spawn(
        &pod,
        "relay",
        &[
            "python3",
            "-c",
            RELAY,
            socket_path.to_str().unwrap_or_default(),
            "15010",
        ],
        &[],
    );
    let mut capture = vec![PROXY, "capture"];
    capture.extend(SIDECAR_CAPTURE_FLAGS);
    capture.extend(["-d", EXCLUDED_INBOUND_PORTS]);
    must(Some(&pod), &capture);

    lab.spawn_as_proxy(
        &pod,
        "proxy",
        &[
            "env",
            "POD_NAME=pod-a-6b7c8d9f5d-xk2p9",
            "POD_NAMESPACE=default",
            "INSTANCE_IP=198.18.1.1",
            "SERVICE_ACCOUNT=pod-a",
            r#"ISTIO_METAJSON_LABELS={"app":"pod-a","version":"v1"}"#,
            PROXY,
            "sidecar",
            "--discovery-address",
            "127.0.0.1:15010",
            "--concurrency",
            "1",
            "--labels-file",
            "/nonexistent",
        ],
        &[],
    );
    let log = || lab.log("proxy");
    wait(
        "sidecar ready",
        || {
            sh(
                Some(&pod),
                &["curl", "-s", "http://127.0.0.1:15021/healthz/ready"],
            )
            .1
            .starts_with("LIVE")
        },
        log,
    );
    wait(
        "peer server",
        || {
            sh(
                Some(&peer),
                &[
                    "curl",
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    "http://198.18.1.2:8080/",
                ],
            )
            .1 == "200"
        },
        log,
    );

    // Outbound: captured on 15001, handed to the bind_to_port=false 8080 listener, routed
    // by RDS to the EDS cluster whose Istio metadata names the service.
    assert_eq!(
        app_get(&pod, "http://198.18.1.2:8080/"),
        "200",
        "log:\n{}",
        log()
    );
    let outbound = [
        "reporter=\"source\"",
        "source_workload=\"pod-a\"",
        "destination_service=\"peer.default.svc.cluster.local\"",
        "response_code=\"200\"",
    ];
    assert_eq!(
        requests(&pod, &outbound),
        1.0,
        "the outbound request went through the 8080 route; log:\n{}",
        log()
    );

    // Inbound: captured on 15006, served by virtualInbound's chain for port 9080, sent to
    // the app from 127.0.0.6 (upstream_bind_config), which the capture rules let through.
    assert_eq!(
        app_get(&peer, "http://198.18.1.1:9080/"),
        "200",
        "log:\n{}",
        log()
    );
    let inbound = [
        "reporter=\"destination\"",
        "destination_workload=\"pod-a\"",
        "response_code=\"200\"",
    ];
    assert_eq!(
        requests(&pod, &inbound),
        1.0,
        "the inbound request went through the proxy; log:\n{}",
        log()
    );
    let headers = sh(
        Some(&peer),
        &[
            "curl",
            "-s",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "http://198.18.1.1:9080/",
        ],
    )
    .1;
    assert!(
        headers.contains("x-lateen-chain: inbound-9080"),
        "served by virtualInbound's 9080 chain, not passthrough: {headers}"
    );
    let app_log = lab.log("app");
    assert!(
        app_log.contains("127.0.0.6"),
        "the app saw the inbound cluster's source address: {app_log}"
    );
}
