//! DestinationRule `tls` SIMPLE and MUTUAL with files: lateend's cluster carries Envoy's
//! UpstreamTlsContext with file data sources (sni, client certificate and key, trusted CA,
//! exact DNS and URI SAN matchers; no validation for insecureSkipVerify; the system roots
//! without caCertificates), for a sidecar with or without a mesh certificate; and
//! lateen-proxy's xDS translation reads exactly that back into its origination settings.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;

use lateen_proxy::tls::origination::TlsFiles;
use lateen_xds::pb::envoy::config::cluster::v3::Cluster;
use lateen_xds::types;

#[path = "common/snapshot.rs"]
mod snapshot;
use snapshot::{decode, sidecar_snapshot};

const EXTERNAL: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: default}
spec:
  hosts: [api.external.test]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{number: 443, name: https, protocol: TLS}, {number: 8443, name: https-m, protocol: TLS}, {number: 9443, name: https-i, protocol: TLS}]
  endpoints: [{address: 192.0.2.10}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: external, namespace: default}
spec:
  host: api.external.test
  trafficPolicy:
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 443}
      tls: {mode: SIMPLE, caCertificates: /etc/external/ca.pem, sni: api.external.test, subjectAltNames: [api.external.test]}
    - port: {number: 8443}
      tls: {mode: MUTUAL, caCertificates: /etc/external/ca.pem, clientCertificate: /etc/external/cert.pem, privateKey: /etc/external/key.pem}
    - port: {number: 9443}
      tls: {mode: SIMPLE, insecureSkipVerify: true}
"#;

/// The cluster of `port` for a sidecar with (`mtls`) or without a mesh certificate.
fn cluster(port: u16, mtls: bool) -> Cluster {
    let snapshot = sidecar_snapshot(
        EXTERNAL,
        "sidecar~10.0.0.9~client-1.default~default.svc.cluster.local",
        "client",
        mtls,
    );
    decode(
        &snapshot,
        types::CLUSTER,
        &format!("outbound|{port}||api.external.test"),
    )
}

/// What lateen-proxy makes of the cluster's transport socket: (sni, SANs, files).
fn as_lateen_proxy_reads_it(c: &Cluster) -> (Option<String>, Vec<String>, Option<TlsFiles>) {
    let socket = c.transport_socket.as_ref().expect("a transport socket");
    let tls = lateen_proxy::xds::translate::tls::upstream_socket(socket)
        .unwrap_or_else(|e| panic!("lateen-proxy refuses lateend's socket: {e:?}"))
        .expect("TLS");
    (tls.sni, tls.subject_alt_names, tls.files)
}

#[test]
fn simple_mutual_and_insecure_origination_with_files_for_both_data_planes() {
    for mtls in [false, true] {
        let simple = as_lateen_proxy_reads_it(&cluster(443, mtls));
        assert_eq!(
            simple,
            (
                Some("api.external.test".into()),
                vec!["api.external.test".into(), "api.external.test".into()],
                Some(TlsFiles {
                    ca_certificates: Some(PathBuf::from("/etc/external/ca.pem")),
                    ..Default::default()
                })
            ),
            "SIMPLE (DNS and URI matchers for the SAN)"
        );
        let mutual = as_lateen_proxy_reads_it(&cluster(8443, mtls));
        assert_eq!(
            mutual.2,
            Some(TlsFiles {
                ca_certificates: Some(PathBuf::from("/etc/external/ca.pem")),
                client_certificate: Some(PathBuf::from("/etc/external/cert.pem")),
                private_key: Some(PathBuf::from("/etc/external/key.pem")),
                insecure_skip_verify: false,
            }),
            "MUTUAL"
        );
        let insecure = as_lateen_proxy_reads_it(&cluster(9443, mtls));
        assert_eq!(
            insecure,
            (
                None,
                Vec::new(),
                Some(TlsFiles {
                    insecure_skip_verify: true,
                    ..Default::default()
                })
            ),
            "insecureSkipVerify"
        );
    }
}
