//! Outbound mutual TLS: the transport socket of an outbound cluster, as istiod sets it.
//!
//! - DestinationRule `trafficPolicy.tls` (top level, then its port level, then the subset's,
//!   then the subset's port level; the most specific wins): `ISTIO_MUTUAL` → Istio's
//!   UpstreamTlsContext (SNI `outbound_.PORT_.SUBSET_.HOST`, the SPIFFE ids of the service's
//!   accounts as SANs, SDS `default`/`ROOTCA`, TLS 1.2–1.3); `DISABLE` → plaintext.
//! - No `tls` and MeshConfig `enableAutoMtls` (default true): `transport_socket_matches`,
//!   TLS to endpoints whose metadata says `tlsMode: istio` (a sidecar is there), plaintext to
//!   the others.
//! - SIMPLE/MUTUAL: origination with files ([`super::tls_origination`]), for every proxy.
//!
//! Only proxies that hold a certificate ([`crate::proxy::Proxy::mtls`]) get the rest; each
//! EDS endpoint carries its `tlsMode` whatever the client ([`endpoint_metadata`]).

use std::collections::BTreeMap;

use lateen_api::Object;
use lateen_api::networking::{ClientTlsMode, ClientTlsSettings, DestinationRule};
use lateen_xds::pb::envoy::config::cluster::v3::{Cluster, cluster};
use lateen_xds::pb::envoy::config::core::v3::{Metadata, TransportSocket, transport_socket};
use lateen_xds::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    SubjectAltNameMatcher, TlsParameters, UpstreamTlsContext, subject_alt_name_matcher,
    tls_parameters,
};
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};
use lateen_xds::pb::google::protobuf::{Struct, Value, value};

use super::Context;
use super::mtls_inbound::{TLS_TRANSPORT_SOCKET, istio_common_context};
use super::names;
use crate::registry::Service;

/// Istio's pod label and endpoint metadata key saying a sidecar terminates mTLS there.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
const TLS_MODE_KEY: &str = "tlsMode";
const TLS_MODE_ISTIO: &str = "istio";
/// ALPN of Istio's in-mesh clusters.
const ALPN_IN_MESH: [&str; 2] = ["istio-peer-exchange", "istio"];

/// The DestinationRule `tls` that applies to `subset` on `port`.
fn client_tls<'a>(
    dr: Option<&'a Object<DestinationRule>>,
    subset: &str,
    port: u32,
) -> Option<&'a ClientTlsSettings> {
    let mut tls = None;
    for policy in super::policy_layers(dr?, subset) {
        tls = policy.tls.as_ref().or(tls);
        tls = policy
            .port_settings(port)
            .and_then(|p| p.tls.as_ref())
            .or(tls);
    }
    tls
}

/// Sets the transport socket(s) of outbound cluster `c` of `service` on `port`/`subset`.
pub fn apply(
    ctx: &Context<'_>,
    c: &mut Cluster,
    service: &Service,
    port: u32,
    subset: &str,
    dr: Option<&Object<DestinationRule>>,
) {
    let settings = client_tls(dr, subset, port);
    // Origination with files needs no workload certificate.
    if let Some(origination) =
        settings.filter(|t| matches!(t.mode(), ClientTlsMode::Simple | ClientTlsMode::Mutual))
    {
        c.transport_socket = super::tls_origination::socket(origination, &c.name);
        return;
    }
    if !ctx.proxy.mtls {
        return;
    }
    let tls = || tls_socket(ctx, service, port, subset);
    match settings.map(ClientTlsSettings::mode) {
        Some(ClientTlsMode::IstioMutual) => c.transport_socket = Some(tls()),
        Some(_) => {}
        None if ctx.config.mesh.enable_auto_mtls() => {
            c.transport_socket_matches = vec![
                cluster::TransportSocketMatch {
                    name: "tlsMode-istio".to_string(),
                    r#match: Some(string_struct(TLS_MODE_KEY, TLS_MODE_ISTIO)),
                    transport_socket: Some(tls()),
                },
                cluster::TransportSocketMatch {
                    name: "tlsMode-disabled".to_string(),
                    r#match: Some(Struct::default()),
                    transport_socket: Some(TransportSocket {
                        name: "envoy.transport_sockets.raw_buffer".to_string(),
                        config_type: Some(transport_socket::ConfigType::TypedConfig(names::pack(
                            &RawBuffer {},
                        ))),
                    }),
                },
            ];
        }
        None => {}
    }
}

/// Istio's ISTIO_MUTUAL UpstreamTlsContext for the service.
fn tls_socket(ctx: &Context<'_>, service: &Service, port: u32, subset: &str) -> TransportSocket {
    let trust_domain = ctx.config.mesh.trust_domain();
    let mut accounts: Vec<String> = service
        .instances
        .iter()
        .filter(|i| !i.service_account.is_empty())
        .map(|i| spiffe(trust_domain, &service.namespace, &i.service_account))
        .collect();
    accounts.sort();
    accounts.dedup();
    let sans: Vec<SubjectAltNameMatcher> = accounts
        .into_iter()
        .map(|id| SubjectAltNameMatcher {
            san_type: subject_alt_name_matcher::SanType::Uri as i32,
            matcher: Some(StringMatcher {
                match_pattern: Some(string_matcher::MatchPattern::Exact(id)),
                ignore_case: false,
            }),
            oid: String::new(),
        })
        .collect();
    let mut common = istio_common_context(&sans, &ALPN_IN_MESH);
    common.tls_params = Some(TlsParameters {
        tls_minimum_protocol_version: tls_parameters::TlsProtocol::TlSv12 as i32,
        tls_maximum_protocol_version: tls_parameters::TlsProtocol::TlSv13 as i32,
        ..Default::default()
    });
    let context = UpstreamTlsContext {
        sni: sni(port, subset, &service.hostname),
        common_tls_context: Some(common),
        ..Default::default()
    };
    TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(names::pack(
            &context,
        ))),
    }
}

/// Istio's SNI of an in-mesh cluster: `outbound_.PORT_.SUBSET_.HOST`.
pub fn sni(port: u32, subset: &str, host: &str) -> String {
    format!("outbound_.{port}_.{subset}_.{host}")
}

/// An account's SPIFFE id; a WorkloadEntry may already give one in full.
fn spiffe(trust_domain: &str, namespace: &str, account: &str) -> String {
    if account.starts_with("spiffe://") {
        account.to_string()
    } else {
        format!("spiffe://{trust_domain}/ns/{namespace}/sa/{account}")
    }
}

fn string_struct(key: &str, text: &str) -> Struct {
    Struct {
        fields: [(
            key.to_string(),
            Value {
                kind: Some(value::Kind::StringValue(text.to_string())),
            },
        )]
        .into(),
    }
}

/// An EDS endpoint's metadata: `envoy.transport_socket_match: {tlsMode: istio}` when its
/// workload has a sidecar (Istio's `security.istio.io/tlsMode: istio` label).
pub fn endpoint_metadata(labels: &BTreeMap<String, String>) -> Option<Metadata> {
    (labels.get(TLS_MODE_LABEL).map(String::as_str) == Some(TLS_MODE_ISTIO)).then(|| Metadata {
        filter_metadata: [(
            TRANSPORT_SOCKET_MATCH.to_string(),
            string_struct(TLS_MODE_KEY, TLS_MODE_ISTIO),
        )]
        .into(),
        ..Default::default()
    })
}
