//! Issue 13's mixed-mesh acceptance, configured by lateend: one lateend (folder source, mesh
//! CA with bootstrap tokens), an Envoy sidecar (real Envoy 1.40 whose certificate comes from
//! `lateen-proxy agent` over SDS on its Unix socket) and a `lateen-proxy sidecar`, both with
//! auto mTLS under a STRICT namespace ([`mixed_mesh`] has the layout). The test checks:
//! - Envoy client → lateen-proxy server and lateen-proxy client → Envoy server pass the same
//!   requests;
//! - the destinations report mutual TLS with both principals: lateen-proxy in its Istio
//!   metrics (`connection_security_policy="mutual_tls"`, `source_principal`,
//!   `destination_principal`), Envoy in what it can report without Istio's stats filter,
//!   its access log (`%DOWNSTREAM_PEER_URI_SAN%`, `%DOWNSTREAM_LOCAL_URI_SAN%`, TLS version);
//! - the bytes between the sidecars are TLS (a tap stands at each endpoint address);
//! - STRICT refuses a plaintext client from outside the mesh on both;
//! - both servers refuse a client certificate from another CA and an expired one from
//!   lateend's CA, and both clients refuse a server with the wrong identity (503).
//!
//! The lateen-proxy sidecar runs as injected: ADS and the certificate API on lateend's TLS
//! port (15012's), trusting the mesh root, with its bootstrap token (`JWT_PATH`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
#[path = "common/dataplane.rs"]
mod dataplane;
#[path = "common/mesh_client.rs"]
mod mesh_client;
#[path = "common/mixed_mesh.rs"]
mod mixed_mesh;

use std::sync::Arc;
use std::time::Duration;

use common::backend::Backend;
use common::client::{Request, fetch};
use common::{envoy_or_skip, free_port, wait_until};
use lateen_test_support::metrics_text::sum as total;
use lateen_test_support::relay::{Relay, is_client_hello};
use lateen_test_support::test_ca::{TestCa, Validity};
use mesh_client::MeshClient;
use mixed_mesh::{Workload, at};

const MARKER: &str = "/mixed-mesh-plaintext-marker";
const REQUESTS: usize = 5;

/// One GET from outside the mesh (no sidecar) to `target` with `host`: the status, if any.
async fn plain_get(target: std::net::SocketAddr, host: &str, path: &str) -> Option<u16> {
    let request = Request {
        target,
        source: None,
        host,
        path,
        headers: &[],
    };
    fetch(&request).await.map(|r| r.status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_and_lateen_proxy_sidecars_speak_mutual_tls_configured_by_lateend() {
    let Some(envoy) = envoy_or_skip() else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let dir = work.path();
    let port = free_port();
    let apps = [
        Backend::start("envoy-app").await,
        Backend::start("lateen-app").await,
    ];
    let peer_log = dir.join("envoy-peers.log");
    let local =
        mixed_mesh::start_lateend(dir, port, [apps[0].port, apps[1].port], &peer_log, &[]).await;

    // Taps at the endpoint addresses, in front of each sidecar's inbound listener.
    let mut taps = Vec::new();
    for w in Workload::ALL {
        let tap = Relay::start_on(at(w.instance_ip(), port), at(w.inbound_ip(), port))
            .await
            .expect("tap");
        taps.push(tap);
    }

    // The Envoy sidecar (the agent serves its certificate over SDS) and the lateen-proxy
    // sidecar as injected: xDS and its certificate from lateend's TLS port.
    let sidecars = mixed_mesh::start_sidecars(&envoy, dir, &local);
    let diagnostics = || sidecars.diagnostics(&local);
    sidecars.wait_synced(&local).await;

    // Each client sidecar reaches the other workload over mTLS, the same requests both ways.
    for client in Workload::ALL {
        let server = client.peer();
        let egress = at(client.outbound_ip(), port);
        wait_until(&format!("{client:?} → {server:?}"), || async {
            plain_get(egress, &server.host(), "/ready").await == Some(200)
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", diagnostics()));
        for _ in 0..REQUESTS {
            let status = plain_get(egress, &server.host(), MARKER).await;
            assert_eq!(
                status,
                Some(200),
                "{client:?} → {server:?}\n{}",
                diagnostics()
            );
        }
    }

    // On the wire between the sidecars: TLS only.
    for (w, tap) in Workload::ALL.into_iter().zip(&taps) {
        let wire = tap.client_bytes();
        assert!(!wire.is_empty(), "nothing reached {w:?}'s tap");
        for connection in &wire {
            assert!(
                is_client_hello(connection),
                "not a TLS ClientHello towards {w:?}: {:?}",
                &connection[..connection.len().min(16)]
            );
            assert!(
                !connection
                    .windows(MARKER.len())
                    .any(|x| x == MARKER.as_bytes()),
                "plaintext request towards {w:?}"
            );
        }
    }

    // lateen-proxy as the destination: Istio's metrics.
    let metrics = common::get(sidecars.lateen_ports[2], "x", "/stats/prometheus", &[])
        .await
        .map(|(_, body)| body)
        .unwrap_or_default();
    let served = total(
        &metrics,
        "istio_requests_total",
        &[
            "reporter=\"destination\"",
            "connection_security_policy=\"mutual_tls\"",
            &format!("source_principal=\"{}\"", Workload::Envoy.spiffe()),
            &format!("destination_principal=\"{}\"", Workload::Lateen.spiffe()),
            "response_code=\"200\"",
        ],
    );
    assert!(served >= (REQUESTS + 1) as f64, "{metrics}");

    // Envoy as the destination: its access log names both identities and TLS.
    let expected = format!(
        "{} {} TLSv1.3 {MARKER}",
        Workload::Lateen.spiffe(),
        Workload::Envoy.spiffe()
    );
    wait_until("Envoy's peer log", || async {
        std::fs::read_to_string(&peer_log)
            .unwrap_or_default()
            .lines()
            .filter(|line| *line == expected)
            .count()
            == REQUESTS
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}: wanted {REQUESTS} × {expected:?}\n{}",
            std::fs::read_to_string(&peer_log).unwrap_or_default()
        )
    });

    // STRICT: a plaintext client from outside the mesh is refused by both.
    for w in Workload::ALL {
        for target in [at(w.instance_ip(), port), at(w.inbound_ip(), port)] {
            let refused = plain_get(target, &w.host(), "/plaintext").await;
            assert_eq!(refused, None, "{w:?} answered plaintext at {target}");
        }
    }

    // Client certificates both servers must refuse: another CA's, and an expired one of
    // lateend's (a 1 s lifetime, then waited out). A good one from lateend passes.
    let other_ca = TestCa::new("another mesh").expect("ca");
    let foreign_dir = dir.join("foreign");
    other_ca
        .workload_cert(&Workload::Lateen.spiffe(), Validity::Current)
        .expect("foreign cert")
        .write_istio_dir(&foreign_dir)
        .expect("write foreign cert");
    let foreign =
        Arc::new(lateen_identity::WorkloadCertificate::from_dir(&foreign_dir).expect("read"));
    let good = lateen_proxy::xds::ca_client::fetch(&local.ca_client("lateen-app", None))
        .await
        .map(Arc::new)
        .expect("a good certificate");
    let short = lateen_proxy::xds::ca_client::fetch(
        &local.ca_client("lateen-app", Some(Duration::from_secs(1))),
    )
    .await
    .map(Arc::new)
    .expect("a 1 s certificate");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for server in Workload::ALL {
        let target = at(server.instance_ip(), port);
        let client = |cert| MeshClient::with(cert, &server.sni(port), &server.spiffe());
        let accepted = client(good.clone()).get(target, "/good").await;
        assert!(
            matches!(&accepted, Ok(r) if r.status == 200),
            "{server:?} refused a good client: {accepted:?}"
        );
        for (what, cert) in [
            ("another CA's", foreign.clone()),
            ("an expired", short.clone()),
        ] {
            let answer = client(cert).get(target, "/refused").await;
            assert!(
                answer.is_err(),
                "{server:?} accepted {what} client certificate: {answer:?}"
            );
        }
    }

    let hits_before: usize = apps.iter().map(Backend::hits).sum();
    // A server with the wrong identity: each client sidecar expects `impostor`, finds the
    // real workload's certificate, and fails the request (503) instead of sending it.
    for client in Workload::ALL {
        let host = format!("impostor-{}.default.svc.cluster.local", client.peer().app());
        let status = plain_get(at(client.outbound_ip(), port), &host, "/impostor").await;
        assert_eq!(
            status,
            Some(503),
            "{client:?} client sent to a wrong identity"
        );
    }
    let hits_after: usize = apps.iter().map(Backend::hits).sum();
    assert_eq!(
        hits_after, hits_before,
        "a request reached an application through a wrong identity"
    );
    drop(sidecars);
}
