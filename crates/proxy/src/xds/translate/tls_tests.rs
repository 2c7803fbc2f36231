//! Translation of Istio's TLS transport sockets: ISTIO_MUTUAL clusters (SDS `default` and
//! `ROOTCA`, SNI, SANs), auto mTLS `transport_socket_matches` with endpoint `tlsMode`, and
//! field-named NACKs for what lateen-proxy cannot do.

use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{Metadata, TransportSocket, transport_socket};
use lateen_xds::pb::envoy::config::endpoint::v3::{ClusterLoadAssignment, LbEndpoint};
use lateen_xds::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, SubjectAltNameMatcher,
    TlsCertificate, UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use lateen_xds::pb::google::protobuf::{Struct, Value, value::Kind};

use super::tests::{assignment, pack};
use super::{cluster as cluster_translate, endpoint};

const SAN: &str = "spiffe://cluster.local/ns/default/sa/reviews";
const SNI: &str = "outbound_.9080_.v1_.reviews.default.svc.cluster.local";

fn sds(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.into(),
        // Istio's `sds-grpc` config source; for lateen-proxy the name is what counts.
        sds_config: None,
    }
}

/// Istio's common TLS context: SDS `default` and `ROOTCA`, the peer's URI SANs, `alpn`.
pub(super) fn istio_common(sans: &[&str], alpn: &[&str]) -> CommonTlsContext {
    let san = |value: &&str| SubjectAltNameMatcher {
        san_type: subject_alt_name_matcher::SanType::Uri as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(value.to_string())),
            ignore_case: false,
        }),
        oid: String::new(),
    };
    CommonTlsContext {
        alpn_protocols: alpn.iter().map(|p| p.to_string()).collect(),
        tls_certificate_sds_secret_configs: vec![sds("default")],
        validation_context_type: Some(
            common_tls_context::ValidationContextType::CombinedValidationContext(
                common_tls_context::CombinedCertificateValidationContext {
                    default_validation_context: Some(CertificateValidationContext {
                        match_typed_subject_alt_names: sans.iter().map(san).collect(),
                        ..Default::default()
                    }),
                    validation_context_sds_secret_config: Some(sds("ROOTCA")),
                    ..Default::default()
                },
            ),
        ),
        ..Default::default()
    }
}

/// An UpstreamTlsContext as istiod sends it for ISTIO_MUTUAL.
fn istio_mutual() -> UpstreamTlsContext {
    UpstreamTlsContext {
        sni: SNI.into(),
        common_tls_context: Some(istio_common(&[SAN], &["istio-peer-exchange", "istio"])),
        ..Default::default()
    }
}

fn tls_socket(context: &UpstreamTlsContext) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack(context))),
    }
}

fn static_cluster(name: &str) -> Cluster {
    Cluster {
        name: name.into(),
        cluster_discovery_type: Some(cluster::ClusterDiscoveryType::Type(
            cluster::DiscoveryType::Static as i32,
        )),
        load_assignment: Some(assignment(name, &[("10.0.0.1", 9080, 0, 1)])),
        ..Default::default()
    }
}

fn string_struct(key: &str, value: &str) -> Struct {
    Struct {
        fields: [(
            key.to_string(),
            Value {
                kind: Some(Kind::StringValue(value.into())),
            },
        )]
        .into(),
    }
}

#[test]
fn istio_mutual_becomes_the_clusters_mesh_tls() {
    let mut source = static_cluster("outbound|9080|v1|reviews.default.svc.cluster.local");
    source.transport_socket = Some(tls_socket(&istio_mutual()));
    let out = cluster_translate::translate(&source).expect("accepted");
    let tls = out.cluster.tls.expect("tls");
    assert_eq!(tls.sni.as_deref(), Some(SNI));
    assert_eq!(tls.subject_alt_names, [SAN]);
    assert!(!tls.only_tls_mode_istio);

    let mut plain = static_cluster("plain");
    plain.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".into(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(pack(
            &RawBuffer::default(),
        ))),
    });
    assert_eq!(
        cluster_translate::translate(&plain)
            .expect("ok")
            .cluster
            .tls,
        None
    );
}

#[test]
fn auto_mtls_matches_go_by_the_endpoints_tls_mode() {
    let mut source = static_cluster("outbound|9080||reviews.default.svc.cluster.local");
    source.transport_socket_matches = vec![
        cluster::TransportSocketMatch {
            name: "tlsMode-istio".into(),
            r#match: Some(string_struct("tlsMode", "istio")),
            transport_socket: Some(tls_socket(&istio_mutual())),
        },
        cluster::TransportSocketMatch {
            name: "tlsMode-disabled".into(),
            r#match: Some(Struct::default()),
            transport_socket: Some(TransportSocket {
                name: "envoy.transport_sockets.raw_buffer".into(),
                config_type: None,
            }),
        },
    ];
    let tls = cluster_translate::translate(&source)
        .expect("accepted")
        .cluster
        .tls
        .expect("tls");
    assert!(tls.only_tls_mode_istio);
    assert_eq!(tls.subject_alt_names, [SAN]);

    // EDS: the endpoint with a sidecar says so in its metadata.
    let mut load: ClusterLoadAssignment =
        assignment("c", &[("10.0.0.1", 9080, 0, 1), ("10.0.0.2", 9080, 0, 1)]);
    let first: &mut LbEndpoint = &mut load.endpoints[0].lb_endpoints[0];
    first.metadata = Some(Metadata {
        filter_metadata: [(
            "envoy.transport_socket_match".to_string(),
            string_struct("tlsMode", "istio"),
        )]
        .into(),
        ..Default::default()
    });
    let endpoints = endpoint::translate(&load).expect("accepted");
    let modes: Vec<Option<&str>> = endpoints.iter().map(|e| e.tls_mode.as_deref()).collect();
    assert_eq!(modes, [Some("istio"), None]);
}

#[test]
fn what_lateen_proxy_cannot_do_is_nacked_by_field() {
    let cases: Vec<(UpstreamTlsContext, &str)> = vec![
        (
            UpstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    tls_certificates: vec![TlsCertificate::default()],
                    ..istio_mutual().common_tls_context.unwrap_or_default()
                }),
                ..istio_mutual()
            },
            "transport_socket.typed_config.common_tls_context.tls_certificates",
        ),
        (
            UpstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    tls_certificate_sds_secret_configs: vec![sds(
                        "file-cert:/etc/certs/a.pem~/etc/certs/k.pem",
                    )],
                    ..istio_mutual().common_tls_context.unwrap_or_default()
                }),
                ..istio_mutual()
            },
            "transport_socket.typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].name",
        ),
        (
            UpstreamTlsContext {
                common_tls_context: Some(CommonTlsContext {
                    validation_context_type: None,
                    ..istio_mutual().common_tls_context.unwrap_or_default()
                }),
                ..istio_mutual()
            },
            "transport_socket.typed_config.common_tls_context.combined_validation_context",
        ),
    ];
    for (context, field) in cases {
        let mut source = static_cluster("c");
        source.transport_socket = Some(tls_socket(&context));
        let err = cluster_translate::translate(&source).expect_err(field);
        assert_eq!(err.field, field, "{err:?}");
    }
    let mut unknown = static_cluster("c");
    unknown.transport_socket = Some(TransportSocket {
        name: "envoy.transport_sockets.alts".into(),
        config_type: None,
    });
    let err = cluster_translate::translate(&unknown).expect_err("alts");
    assert_eq!(err.field, "transport_socket.name");
}
