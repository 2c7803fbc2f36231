//! DestinationRule `tls.mode` SIMPLE and MUTUAL: TLS origination to a service (usually
//! outside the mesh) with credentials from files on the proxy's host, as Envoy's
//! UpstreamTlsContext with file data sources: `sni`; MUTUAL's `clientCertificate` and
//! `privateKey` as `tls_certificates[0]`; `caCertificates` as `validation_context.trusted_ca`
//! with `subjectAltNames` as exact DNS and URI SAN matchers; `insecureSkipVerify` as no
//! validation context. Without `caCertificates` (and not skipping verification) the
//! system's roots are used, as istiod does when it verifies at the client
//! (`VERIFY_CERTIFICATE_AT_CLIENT`). `credentialName` (a Kubernetes Secret over SDS) is not
//! translated yet: the cluster stays plaintext and a warning says so.

use lateen_api::networking::{ClientTlsMode, ClientTlsSettings};
use lateen_xds::pb::envoy::config::core::v3::{
    DataSource, TransportSocket, data_source, transport_socket,
};
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SubjectAltNameMatcher, TlsCertificate,
    UpstreamTlsContext, common_tls_context, subject_alt_name_matcher,
};
use lateen_xds::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher};

use super::mtls_inbound::TLS_TRANSPORT_SOCKET;
use super::names;

/// istiod's system root bundle on Debian-based images (`VERIFY_CERTIFICATE_AT_CLIENT`).
pub const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(data_source::Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

fn exact(san_type: subject_alt_name_matcher::SanType, name: &str) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(string_matcher::MatchPattern::Exact(name.to_string())),
            ignore_case: false,
        }),
        oid: String::new(),
    }
}

/// The transport socket of a SIMPLE or MUTUAL `tls` of cluster `cluster`, or `None` (with a
/// warning) when it cannot be built from files.
pub fn socket(tls: &ClientTlsSettings, cluster: &str) -> Option<TransportSocket> {
    if tls
        .credential_name
        .as_deref()
        .is_some_and(|n| !n.is_empty())
    {
        tracing::warn!(%cluster, "DestinationRule tls credentialName is not translated yet; plaintext");
        return None;
    }
    let mut common = CommonTlsContext::default();
    if tls.mode() == ClientTlsMode::Mutual {
        let (Some(chain), Some(key)) = (&tls.client_certificate, &tls.private_key) else {
            tracing::warn!(%cluster, "DestinationRule tls MUTUAL needs clientCertificate and privateKey; plaintext");
            return None;
        };
        common.tls_certificates = vec![TlsCertificate {
            certificate_chain: Some(file(chain)),
            private_key: Some(file(key)),
            ..Default::default()
        }];
    }
    if !tls.insecure_skip_verify.unwrap_or(false) {
        use subject_alt_name_matcher::SanType;
        let sans = tls
            .subject_alt_names
            .iter()
            .flat_map(|name| [exact(SanType::Dns, name), exact(SanType::Uri, name)])
            .collect();
        common.validation_context_type = Some(
            common_tls_context::ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    trusted_ca: Some(file(tls.ca_certificates.as_deref().unwrap_or(SYSTEM_ROOTS))),
                    match_typed_subject_alt_names: sans,
                    ..Default::default()
                },
            ),
        );
    }
    let context = UpstreamTlsContext {
        sni: tls.sni.clone().unwrap_or_default(),
        common_tls_context: Some(common),
        ..Default::default()
    };
    Some(TransportSocket {
        name: TLS_TRANSPORT_SOCKET.to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(names::pack(
            &context,
        ))),
    })
}
