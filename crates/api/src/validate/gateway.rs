//! Gateway rules.

use std::collections::BTreeSet;

use super::{Issues, check_labels, check_port};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{Gateway, ServerTlsMode, ServerTlsSettings};

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, gw: &Gateway) {
    check_labels(issues, &spec.field("selector"), &gw.selector);
    if gw.servers.is_empty() {
        issues.error(
            &spec.field("servers"),
            "gateway must have at least one server",
        );
    }
    let mut port_names = BTreeSet::new();
    for (i, server) in gw.servers.iter().enumerate() {
        let p = spec.field("servers").index(i);
        match &server.port {
            None => issues.error(&p.field("port"), "port is required"),
            Some(port) => {
                check_port(issues, &p.field("port"), port, true);
                if port.target_port.is_some() {
                    issues.warn(
                        &p.field("port").field("targetPort"),
                        "targetPort has no impact on Gateways",
                    );
                }
                if !port.name.is_empty() && !port_names.insert(port.name.as_str()) {
                    issues.error(
                        &p.field("port").field("name"),
                        format!(
                            "port names in servers must be unique: duplicate name {}",
                            port.name
                        ),
                    );
                }
            }
        }
        if server.hosts.is_empty() {
            issues.error(
                &p.field("hosts"),
                "server config must contain at least one host",
            );
        }
        for (j, h) in server.hosts.iter().enumerate() {
            check_server_host(issues, &p.field("hosts").index(j), h);
        }
        let protocol = server
            .port
            .as_ref()
            .map(|p| p.protocol.to_ascii_uppercase())
            .unwrap_or_default();
        let needs_tls = protocol == "HTTPS" || protocol == "TLS";
        match &server.tls {
            None if needs_tls => issues.error(
                &p.field("tls"),
                "server must have TLS settings for HTTPS/TLS protocols",
            ),
            None => {}
            Some(tls) => {
                let plain = protocol == "HTTP" || protocol == "HTTP2" || protocol == "GRPC";
                // On plain-text ports only the HTTPS redirect makes sense.
                if plain
                    && tls
                        != &(ServerTlsSettings {
                            https_redirect: tls.https_redirect,
                            ..Default::default()
                        })
                {
                    issues.error(
                        &p.field("tls"),
                        "server cannot have TLS settings for plain text HTTP ports",
                    );
                } else if needs_tls {
                    check_server_tls(issues, &p.field("tls"), tls);
                }
            }
        }
    }
}

/// `[namespace/]host`: namespace `*`, `.` or a DNS label; host a (wildcard) DNS name.
fn check_server_host(issues: &mut Issues, path: &FieldPath, h: &str) {
    let (ns, name) = match h.split_once('/') {
        Some((ns, name)) => (Some(ns), name),
        None => (None, h),
    };
    if let Some(ns) = ns
        && ns != "*"
        && ns != "."
        && !host::is_dns1123_label(ns)
    {
        issues.error(path, format!("invalid namespace {ns:?} in host {h:?}"));
    }
    issues.check(path, host::check_wildcard_domain(name));
}

/// TLS settings of a server that terminates or passes through TLS.
pub(super) fn check_server_tls(issues: &mut Issues, path: &FieldPath, tls: &ServerTlsSettings) {
    let has_credential = tls.credential_name.is_some() || !tls.credential_names.is_empty();
    let has_files = tls.server_certificate.is_some()
        || tls.private_key.is_some()
        || !tls.tls_certificates.is_empty();
    match tls.mode() {
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual => {
            if has_credential && has_files {
                issues.error(
                    path,
                    "only one of credentialName or serverCertificate/privateKey may be set",
                );
            } else if !has_credential {
                if tls.server_certificate.is_none() && tls.tls_certificates.is_empty() {
                    issues.error(
                        &path.field("serverCertificate"),
                        "TLS requires a server certificate or credentialName",
                    );
                }
                if tls.private_key.is_none() && tls.tls_certificates.is_empty() {
                    issues.error(
                        &path.field("privateKey"),
                        "TLS requires a private key or credentialName",
                    );
                }
                if tls.mode() != ServerTlsMode::Simple && tls.ca_certificates.is_none() {
                    issues.error(
                        &path.field("caCertificates"),
                        "MUTUAL TLS requires caCertificates or credentialName",
                    );
                }
            }
        }
        ServerTlsMode::Passthrough
        | ServerTlsMode::AutoPassthrough
        | ServerTlsMode::IstioMutual => {
            if has_credential || has_files {
                issues.warn(
                    path,
                    format!("certificates are not used with mode {:?}", tls.mode()),
                );
            }
        }
    }
    if let (Some(min), Some(max)) = (tls.min_protocol_version, tls.max_protocol_version)
        && min > max
        && max != crate::networking::TlsProtocol::TlsAuto
    {
        issues.error(
            path,
            "minProtocolVersion must not be greater than maxProtocolVersion",
        );
    }
}
