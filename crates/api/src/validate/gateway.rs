//! Gateway rules, and the server TLS rules Sidecar ingress listeners share.

use std::collections::BTreeSet;

use super::{Issues, check_labels, check_port, check_port_number};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{Gateway, Port, Server, ServerTlsMode, ServerTlsSettings};

const UNIX_PREFIX: &str = "unix://";

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, name: &str, gw: &Gateway) {
    // Gateways are referenced as `namespace/name`, so a dot in the name cannot be expressed.
    if !name.is_empty() && !host::is_dns1123_label(name) {
        issues.error(
            &FieldPath::root().field("metadata").field("name"),
            format!("invalid gateway name: {name:?} (must be a DNS-1123 label, without dots)"),
        );
    }
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
        check_server(issues, &p, server);
        if let Some(port) = &server.port
            && !port_names.insert(port.name.as_str())
        {
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

fn check_server(issues: &mut Issues, p: &FieldPath, server: &Server) {
    if server.hosts.is_empty() {
        issues.error(
            &p.field("hosts"),
            "server config must contain at least one host",
        );
    }
    for (j, h) in server.hosts.iter().enumerate() {
        check_server_host(issues, &p.field("hosts").index(j), h);
    }
    let bind = server.bind.as_deref().unwrap_or("");
    let Some(port) = &server.port else {
        issues.error(&p.field("port"), "port is required");
        return;
    };
    check_server_port(issues, &p.field("port"), port, bind);
    check_bind(issues, &p.field("bind"), bind, port.number);
    let protocol = port.protocol.to_ascii_uppercase();
    let is_tls = protocol == "HTTPS" || protocol == "TLS";
    let is_http = matches!(
        protocol.as_str(),
        "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTP_PROXY"
    );
    match &server.tls {
        None if is_tls => issues.error(
            &p.field("tls"),
            "server must have TLS settings for HTTPS/TLS protocols",
        ),
        None => {}
        Some(tls) => {
            // A plain-text HTTP server may only redirect to HTTPS (Istio's documented
            // `tls: {httpsRedirect: true}`), which needs no certificates.
            let only_redirect = tls
                == &ServerTlsSettings {
                    https_redirect: tls.https_redirect,
                    mode: tls.mode,
                    ..Default::default()
                };
            if is_tls {
                check_server_tls(issues, &p.field("tls"), tls);
            } else if !is_http {
                issues.error(
                    &p.field("tls"),
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            } else if !only_redirect {
                issues.error(
                    &p.field("tls"),
                    "server cannot have TLS settings for plain text HTTP ports",
                );
            }
            if tls.https_redirect && !is_http {
                issues.warn(
                    &p.field("tls").field("httpsRedirect"),
                    "tls.httpsRedirect should only be used with http servers",
                );
            }
        }
    }
}

fn check_server_port(issues: &mut Issues, path: &FieldPath, port: &Port, bind: &str) {
    // Unix-socket servers have no port number; everything else about the port still applies.
    let unix = port.number == 0 && bind.starts_with(UNIX_PREFIX);
    let checked = if unix {
        Port {
            number: 1,
            ..port.clone()
        }
    } else {
        port.clone()
    };
    check_port(issues, path, &checked, false);
    if port.target_port.is_some() {
        issues.error(
            &path.field("targetPort"),
            "targetPort has no impact on Gateways",
        );
    }
    if port.name.is_empty() {
        issues.error(&path.field("name"), "port name must be set");
    }
}

fn check_bind(issues: &mut Issues, path: &FieldPath, bind: &str, port_number: u32) {
    if let Some(socket) = bind.strip_prefix(UNIX_PREFIX) {
        check_unix_path(issues, path, socket);
        if port_number != 0 {
            issues.error(path, "port number must be 0 for unix domain socket");
        }
    } else if !bind.is_empty() && bind.parse::<std::net::IpAddr>().is_err() {
        issues.error(
            path,
            format!("bind {bind:?} must be an IP address or a unix:// socket"),
        );
    }
}

/// An absolute file path (not ending in `/`) or an abstract socket name (`@name`).
pub(super) fn check_unix_path(issues: &mut Issues, path: &FieldPath, socket: &str) {
    if socket.is_empty() {
        issues.error(path, "unix address must not be empty");
    } else if !socket.starts_with('@') && (!socket.starts_with('/') || socket.ends_with('/')) {
        issues.error(path, format!("{socket} is not an absolute path to a file"));
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
    issues.check(path, host::check_listener_host(name));
}

/// TLS settings of a server (Istio's `validateTLSOptions`).
pub(super) fn check_server_tls(issues: &mut Issues, path: &FieldPath, tls: &ServerTlsSettings) {
    let mode = tls.mode();
    if matches!(tls.min_protocol_version, Some(v) if v < crate::networking::TlsProtocol::TlsV1_2 && v != crate::networking::TlsProtocol::TlsAuto)
        && tls.cipher_suites.is_empty()
    {
        issues.warn(
            &path.field("minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.",
        );
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
    if mode == ServerTlsMode::IstioMutual {
        // Istio's own certificates are used: any other source is a mistake.
        for (field, set) in [
            ("serverCertificate", tls.server_certificate.is_some()),
            ("privateKey", tls.private_key.is_some()),
            ("caCertificates", tls.ca_certificates.is_some()),
            ("tlsCertificates", !tls.tls_certificates.is_empty()),
            ("credentialName", tls.credential_name.is_some()),
            ("credentialNames", !tls.credential_names.is_empty()),
        ] {
            if set {
                issues.error(
                    &path.field(field),
                    format!("ISTIO_MUTUAL TLS cannot have associated {field}"),
                );
            }
        }
        return;
    }
    let has_credential = tls.credential_name.is_some() || !tls.credential_names.is_empty();
    if matches!(
        mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    ) && (has_credential
        || tls.server_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some()
        || tls.ca_crl.is_some()
        || !tls.tls_certificates.is_empty())
    {
        issues.warn(
            path,
            format!(
                "{} mode does not use certificates, they will be ignored",
                super::wire_name(&mode)
            ),
        );
    }
    let sources = [
        tls.server_certificate.is_some() && tls.private_key.is_some(),
        tls.credential_name.is_some(),
        !tls.credential_names.is_empty(),
        !tls.tls_certificates.is_empty(),
    ]
    .iter()
    .filter(|s| **s)
    .count();
    if sources > 1 {
        issues.error(
            path,
            "only one of credentialName, credentialNames, serverCertificate/privateKey, tlsCertificates should be specified",
        );
    }
    let terminates = matches!(
        mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminates && !has_credential {
        let prefix = if mode == ServerTlsMode::Simple {
            "SIMPLE TLS"
        } else {
            "MUTUAL TLS"
        };
        if mode != ServerTlsMode::Simple && tls.ca_certificates.is_none() {
            issues.error(
                &path.field("caCertificates"),
                format!("{prefix} requires a client CA bundle"),
            );
        }
        if tls.tls_certificates.len() > 2 {
            issues.warn(
                &path.field("tlsCertificates"),
                format!("{prefix} can support up to 2 server certificates"),
            );
        }
        if tls.tls_certificates.is_empty() {
            if tls.server_certificate.is_none() {
                issues.error(
                    &path.field("serverCertificate"),
                    format!("{prefix} requires a server certificate"),
                );
            }
            if tls.private_key.is_none() {
                issues.error(
                    &path.field("privateKey"),
                    format!("{prefix} requires a private key"),
                );
            }
        }
        for (i, cert) in tls.tls_certificates.iter().enumerate() {
            let cp = path.field("tlsCertificates").index(i);
            if cert.server_certificate.is_none() {
                issues.error(
                    &cp.field("serverCertificate"),
                    format!("{prefix} requires a server certificate"),
                );
            }
            if cert.private_key.is_none() {
                issues.error(
                    &cp.field("privateKey"),
                    format!("{prefix} requires a private key"),
                );
            }
        }
    }
    if tls.ca_crl.is_some() {
        if tls.credential_name.is_some() {
            issues.error(
                &path.field("caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if mode == ServerTlsMode::Simple {
            issues.error(&path.field("caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}

/// Sidecar ingress TLS: the server rules plus what a sidecar cannot do.
pub(super) fn check_sidecar_ingress_tls(
    issues: &mut Issues,
    path: &FieldPath,
    tls: &ServerTlsSettings,
    port: Option<&Port>,
) {
    for (field, set, what) in [
        (
            "subjectAltNames",
            !tls.subject_alt_names.is_empty(),
            "subjectAltNames is not supported in ingress tls",
        ),
        (
            "httpsRedirect",
            tls.https_redirect,
            "httpsRedirect is not supported",
        ),
        (
            "credentialName",
            tls.credential_name.is_some(),
            "credentialName is not currently supported",
        ),
        (
            "credentialNames",
            !tls.credential_names.is_empty(),
            "credentialNames is not currently supported",
        ),
        (
            "tlsCertificates",
            !tls.tls_certificates.is_empty(),
            "tls_certificates is not currently supported",
        ),
    ] {
        if set {
            issues.error(&path.field(field), format!("sidecar: {what}"));
        }
    }
    if matches!(
        tls.mode(),
        ServerTlsMode::IstioMutual | ServerTlsMode::AutoPassthrough
    ) {
        issues.error(
            &path.field("mode"),
            format!(
                "cannot set mode to {} in sidecar ingress tls",
                super::wire_name(&tls.mode())
            ),
        );
    }
    let is_tls = port.is_some_and(|p| {
        p.protocol.eq_ignore_ascii_case("HTTPS") || p.protocol.eq_ignore_ascii_case("TLS")
    });
    if !is_tls {
        issues.error(
            path,
            "server cannot have TLS settings for non HTTPS/TLS ports",
        );
    }
    check_server_tls(issues, path, tls);
}

/// A port number of an address such as `127.0.0.1:8080`.
pub(super) fn check_port_text(issues: &mut Issues, path: &FieldPath, text: &str) {
    match text.parse::<u32>() {
        Ok(n) => check_port_number(issues, path, n),
        Err(_) => issues.error(path, format!("port ({text}) is not a number")),
    }
}
