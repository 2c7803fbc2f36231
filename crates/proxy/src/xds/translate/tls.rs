//! Envoy's TLS transport sockets as Istio sends them → lateen-proxy's mesh mTLS.
//!
//! A cluster's `transport_socket` `envoy.transport_sockets.tls` (UpstreamTlsContext) with the
//! SDS secrets `default` (certificate) and `ROOTCA` (roots) is Istio's `ISTIO_MUTUAL`: for
//! lateen-proxy both mean its own certificate watch. The server identities come from
//! `match_typed_subject_alt_names` (URI, exact) or the older `match_subject_alt_names`.
//! `transport_socket_matches` is auto mTLS: the `tlsMode: istio` match's socket applies to
//! endpoints whose metadata `envoy.transport_socket_match` says `tlsMode: istio`, the rest are
//! plaintext. A context with certificates and roots from files and no SDS secret is a
//! DestinationRule SIMPLE/MUTUAL origination ([`super::tls_files`]); other SDS names
//! (`file-cert:...`, credentialName) are NACKed with the field named.

use lateen_xds::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use lateen_xds::pb::envoy::config::core::v3::{TransportSocket, transport_socket};
use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateValidationContext, CommonTlsContext, SdsSecretConfig, UpstreamTlsContext,
    common_tls_context, subject_alt_name_matcher,
};
use lateen_xds::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use lateen_xds::pb::google::protobuf::value::Kind;
use lateen_xds::prost::Name;

use super::{fields::leftover, unpack};
use crate::config::model;

/// Istio's SDS secret of the workload certificate and key.
pub const SDS_DEFAULT: &str = "default";
/// Istio's SDS secret of the trusted roots.
pub const SDS_ROOTCA: &str = "ROOTCA";
/// The endpoint metadata namespace Envoy matches `transport_socket_matches` against.
pub const TRANSPORT_SOCKET_MATCH: &str = "envoy.transport_socket_match";
/// Istio's endpoint label and value for "this endpoint has a sidecar that accepts mTLS".
pub const TLS_MODE: &str = "tlsMode";
use crate::tls::TLS_MODE_ISTIO;

const TLS_SOCKET: &str = "envoy.transport_sockets.tls";
const RAW_BUFFER: &str = "envoy.transport_sockets.raw_buffer";

/// A field path and why it cannot be applied.
pub(super) type Refusal = (String, String);

pub(super) fn refuse(field: impl Into<String>, reason: impl Into<String>) -> Refusal {
    (field.into(), reason.into())
}

/// A cluster's `transport_socket`: `None` for plaintext (`raw_buffer`).
pub fn upstream_socket(socket: &TransportSocket) -> Result<Option<model::UpstreamTls>, Refusal> {
    let typed = socket
        .config_type
        .as_ref()
        .map(|transport_socket::ConfigType::TypedConfig(any)| any);
    let is_tls = socket.name == TLS_SOCKET
        || typed.is_some_and(|any| any.type_url == UpstreamTlsContext::type_url());
    if !is_tls {
        return if socket.name == RAW_BUFFER
            || typed.is_some_and(|any| any.type_url.ends_with(".RawBuffer"))
        {
            Ok(None)
        } else {
            Err(refuse(
                "name",
                format!(
                    "transport socket {:?} is not supported by lateen-proxy",
                    socket.name
                ),
            ))
        };
    }
    let any = typed.ok_or_else(|| refuse("typed_config", "missing"))?;
    let context: UpstreamTlsContext =
        unpack(any).map_err(|reason| refuse("typed_config", reason))?;
    let upstream = if super::tls_files::is_file_form(&context) {
        super::tls_files::upstream_context(&context)
    } else {
        upstream_context(&context)
    };
    upstream
        .map(Some)
        .map_err(|(field, reason)| (super::join("typed_config", &field), reason))
}

fn upstream_context(context: &UpstreamTlsContext) -> Result<model::UpstreamTls, Refusal> {
    let common = common_of(context)?;
    let subject_alt_names = common_context(common)
        .map_err(|(field, reason)| (super::join("common_tls_context", &field), reason))?;
    Ok(model::UpstreamTls {
        sni: (!context.sni.is_empty()).then(|| context.sni.clone()),
        subject_alt_names,
        only_tls_mode_istio: false,
        files: None,
    })
}

/// The context's common part, once nothing but it, the SNI and the handshake tuning
/// (session keys, renegotiation) is set.
pub(super) fn common_of(context: &UpstreamTlsContext) -> Result<&CommonTlsContext, Refusal> {
    let left = leftover(&UpstreamTlsContext {
        common_tls_context: None,
        sni: String::new(),
        max_session_keys: None,
        allow_renegotiation: false,
        ..context.clone()
    });
    if !left.is_empty() {
        return Err(refuse(left.join(", "), "not supported by lateen-proxy"));
    }
    context
        .common_tls_context
        .as_ref()
        .ok_or_else(|| refuse("common_tls_context", "missing"))
}

/// Istio's common context: the `default` certificate and `ROOTCA` roots over SDS; returns the
/// SANs the peer must have. ALPN is chosen per connection by the protocol inside (Istio's own
/// values), and TLS parameters are rustls' defaults.
fn common_context(common: &CommonTlsContext) -> Result<Vec<String>, Refusal> {
    let left = leftover(&CommonTlsContext {
        tls_params: None,
        tls_certificate_sds_secret_configs: Vec::new(),
        validation_context_type: None,
        alpn_protocols: Vec::new(),
        ..common.clone()
    });
    if !left.is_empty() {
        return Err(refuse(
            left.join(", "),
            "only Istio's SDS secrets `default` and `ROOTCA` are supported by lateen-proxy",
        ));
    }
    match common.tls_certificate_sds_secret_configs.as_slice() {
        [secret] => sds_secret(secret, SDS_DEFAULT, "tls_certificate_sds_secret_configs[0]")?,
        _ => {
            return Err(refuse(
                "tls_certificate_sds_secret_configs",
                format!("needs exactly one SDS secret, {SDS_DEFAULT:?}"),
            ));
        }
    }
    use common_tls_context::ValidationContextType;
    match &common.validation_context_type {
        Some(ValidationContextType::CombinedValidationContext(combined)) => {
            let left = leftover(&common_tls_context::CombinedCertificateValidationContext {
                default_validation_context: None,
                validation_context_sds_secret_config: None,
                ..combined.clone()
            });
            if !left.is_empty() {
                return Err(refuse(
                    format!("combined_validation_context.{}", left.join(", ")),
                    "not supported by lateen-proxy",
                ));
            }
            let secret = combined
                .validation_context_sds_secret_config
                .as_ref()
                .ok_or_else(|| {
                    refuse(
                        "combined_validation_context.validation_context_sds_secret_config",
                        format!("missing (Istio's {SDS_ROOTCA:?})"),
                    )
                })?;
            sds_secret(
                secret,
                SDS_ROOTCA,
                "combined_validation_context.validation_context_sds_secret_config",
            )?;
            match &combined.default_validation_context {
                Some(validation) => subject_alt_names(validation).map_err(|(field, reason)| {
                    (
                        format!("combined_validation_context.default_validation_context.{field}"),
                        reason,
                    )
                }),
                None => Ok(Vec::new()),
            }
        }
        Some(ValidationContextType::ValidationContextSdsSecretConfig(secret)) => {
            sds_secret(secret, SDS_ROOTCA, "validation_context_sds_secret_config")?;
            Ok(Vec::new())
        }
        Some(_) => Err(refuse(
            "validation_context",
            format!("only the SDS secret {SDS_ROOTCA:?} is supported by lateen-proxy"),
        )),
        None => Err(refuse(
            "combined_validation_context",
            "missing: a mesh peer must be verified",
        )),
    }
}

fn sds_secret(secret: &SdsSecretConfig, wanted: &str, path: &str) -> Result<(), Refusal> {
    if secret.name == wanted {
        Ok(())
    } else {
        Err(refuse(
            format!("{path}.name"),
            format!(
                "SDS secret {:?} is not supported by lateen-proxy (only Istio's {wanted:?}, its own certificate)",
                secret.name
            ),
        ))
    }
}

/// The exact URI SANs a peer may present.
fn subject_alt_names(validation: &CertificateValidationContext) -> Result<Vec<String>, Refusal> {
    sans_of(validation, false)
}

/// The exact SANs a server may present: URI only (mesh identities), or also DNS
/// (`dns_too`, a DestinationRule's `subjectAltNames` for an external service).
pub(super) fn sans_of(
    validation: &CertificateValidationContext,
    dns_too: bool,
) -> Result<Vec<String>, Refusal> {
    #[allow(deprecated)] // match_subject_alt_names: what older control planes send
    let left = leftover(&CertificateValidationContext {
        match_typed_subject_alt_names: Vec::new(),
        match_subject_alt_names: Vec::new(),
        ..validation.clone()
    });
    if !left.is_empty() {
        return Err(refuse(left.join(", "), "not supported by lateen-proxy"));
    }
    let mut names = Vec::new();
    for (index, matcher) in validation.match_typed_subject_alt_names.iter().enumerate() {
        let path = format!("match_typed_subject_alt_names[{index}]");
        let uri = matcher.san_type == subject_alt_name_matcher::SanType::Uri as i32;
        let dns = matcher.san_type == subject_alt_name_matcher::SanType::Dns as i32;
        if !(uri || dns && dns_too) {
            return Err(refuse(
                format!("{path}.san_type"),
                "only URI SANs (SPIFFE identities) are supported",
            ));
        }
        names.push(exact(matcher.matcher.as_ref(), &format!("{path}.matcher"))?);
    }
    #[allow(deprecated)]
    for (index, matcher) in validation.match_subject_alt_names.iter().enumerate() {
        names.push(exact(
            Some(matcher),
            &format!("match_subject_alt_names[{index}]"),
        )?);
    }
    Ok(names)
}

fn exact(
    matcher: Option<&lateen_xds::pb::envoy::r#type::matcher::v3::StringMatcher>,
    path: &str,
) -> Result<String, Refusal> {
    match matcher.and_then(|m| m.match_pattern.as_ref()) {
        Some(MatchPattern::Exact(value)) if !matcher.is_some_and(|m| m.ignore_case) => {
            Ok(value.clone())
        }
        _ => Err(refuse(
            path,
            "only exact, case-sensitive SAN matches are supported",
        )),
    }
}

/// Istio's auto mTLS `transport_socket_matches`: one match on `tlsMode: istio` with the TLS
/// socket, and optionally a catch-all with plaintext.
pub fn socket_matches(matches: &[TransportSocketMatch]) -> Result<model::UpstreamTls, Refusal> {
    let mut tls = None;
    for (index, candidate) in matches.iter().enumerate() {
        let path = format!("transport_socket_matches[{index}]");
        let criteria = candidate
            .r#match
            .as_ref()
            .map(|s| s.fields.clone())
            .unwrap_or_default();
        let socket = candidate
            .transport_socket
            .as_ref()
            .ok_or_else(|| refuse(format!("{path}.transport_socket"), "missing"))?;
        let translated = upstream_socket(socket)
            .map_err(|(field, reason)| (format!("{path}.transport_socket.{field}"), reason))?;
        let is_istio = criteria.len() == 1
            && criteria.get(TLS_MODE).is_some_and(|value| {
                matches!(&value.kind, Some(Kind::StringValue(mode)) if mode == TLS_MODE_ISTIO)
            });
        match (criteria.is_empty(), is_istio, translated) {
            (false, true, Some(found)) if tls.is_none() => tls = Some(found),
            (true, _, None) => {}
            _ => {
                return Err(refuse(
                    format!("{path}.match"),
                    "only Istio's auto mTLS (TLS on `tlsMode: istio`, plaintext otherwise) is supported",
                ));
            }
        }
    }
    let mut tls = tls.ok_or_else(|| {
        refuse(
            "transport_socket_matches",
            "no `tlsMode: istio` match with a TLS socket",
        )
    })?;
    tls.only_tls_mode_istio = true;
    Ok(tls)
}

/// An endpoint's `tlsMode` from its metadata `envoy.transport_socket_match`.
pub fn endpoint_tls_mode(
    metadata: Option<&lateen_xds::pb::envoy::config::core::v3::Metadata>,
) -> Option<String> {
    let fields = &metadata?
        .filter_metadata
        .get(TRANSPORT_SOCKET_MATCH)?
        .fields;
    match &fields.get(TLS_MODE)?.kind {
        Some(Kind::StringValue(mode)) => Some(mode.clone()),
        _ => None,
    }
}

/// An inbound chain's `transport_socket`: Istio's DownstreamTlsContext for mesh mTLS (client
/// certificate required, SDS `default` and `ROOTCA`).
pub fn downstream_socket(socket: &TransportSocket) -> Result<(), Refusal> {
    use lateen_xds::pb::envoy::extensions::transport_sockets::tls::v3::DownstreamTlsContext;
    let any = match &socket.config_type {
        Some(transport_socket::ConfigType::TypedConfig(any))
            if socket.name == TLS_SOCKET || any.type_url == DownstreamTlsContext::type_url() =>
        {
            any
        }
        _ => {
            return Err(refuse(
                "name",
                format!(
                    "transport socket {:?} is not supported on a listener by lateen-proxy",
                    socket.name
                ),
            ));
        }
    };
    let context: DownstreamTlsContext =
        unpack(any).map_err(|reason| refuse("typed_config", reason))?;
    let in_context = |field: &str| super::join("typed_config", field);
    if !context
        .require_client_certificate
        .as_ref()
        .is_some_and(|flag| flag.value)
    {
        return Err(refuse(
            in_context("require_client_certificate"),
            "must be true: lateen-proxy terminates only mesh mTLS on listeners",
        ));
    }
    // Session handling and SNI tuning change how a handshake resumes, not who is trusted.
    let left = leftover(&DownstreamTlsContext {
        common_tls_context: None,
        require_client_certificate: None,
        require_sni: None,
        disable_stateful_session_resumption: false,
        session_timeout: None,
        session_ticket_keys_type: None,
        full_scan_certs_on_sni_mismatch: None,
        prefer_client_ciphers: false,
        ..context.clone()
    });
    if !left.is_empty() {
        return Err(refuse(
            in_context(&left.join(", ")),
            "not supported by lateen-proxy",
        ));
    }
    let common = context
        .common_tls_context
        .as_ref()
        .ok_or_else(|| refuse(in_context("common_tls_context"), "missing"))?;
    let sans = common_context(common).map_err(|(field, reason)| {
        (
            in_context(&super::join("common_tls_context", &field)),
            reason,
        )
    })?;
    if !sans.is_empty() {
        return Err(refuse(
            in_context("common_tls_context.combined_validation_context.default_validation_context"),
            "matching client SANs is authorization's job; not supported here by lateen-proxy",
        ));
    }
    Ok(())
}
