//! MeshConfig rules.

use std::collections::BTreeSet;

use super::destination_rule::check_locality;
use super::{Issues, check_duration, check_export_to, check_port_number};
use crate::error::{FieldIssue, FieldPath};
use crate::host;
use crate::mesh::{EXTENSION_PROVIDER_KINDS, MeshConfig, ProxyConfig};

/// Provider names usable in `defaultProviders` without being declared in `extensionProviders`
/// (Istio ships them in its default mesh config).
const BUILTIN_PROVIDERS: &[&str] = &["prometheus", "stackdriver", "envoy"];

/// Validates a MeshConfig; paths start at the top of the mesh document.
pub fn validate_mesh_config(mesh: &MeshConfig) -> Vec<FieldIssue> {
    let mut issues = Issues::default();
    let root = FieldPath::root();
    let i = &mut issues;
    check_duration(i, &root.field("connectTimeout"), mesh.connect_timeout);
    if mesh
        .protocol_detection_timeout
        .is_some_and(|d| !d.is_zero())
    {
        check_duration(
            i,
            &root.field("protocolDetectionTimeout"),
            mesh.protocol_detection_timeout,
        );
    }
    check_duration(i, &root.field("dnsRefreshRate"), mesh.dns_refresh_rate);
    if mesh.dns_refresh_rate.is_some_and(|d| d.subsec_nanos() != 0) {
        i.error(
            &root.field("dnsRefreshRate"),
            "DNS refresh rate only supports durations to seconds precision",
        );
    }
    for (field, port) in [
        ("proxyListenPort", mesh.proxy_listen_port),
        ("proxyInboundListenPort", mesh.proxy_inbound_listen_port),
        ("proxyHttpPort", mesh.proxy_http_port),
    ] {
        if let Some(p) = port.filter(|p| *p != 0) {
            check_port_number(i, &root.field(field), u32::try_from(p).unwrap_or(0));
        }
    }
    if let Some(td) = &mesh.trust_domain
        && !is_trust_domain(td)
    {
        i.error(
            &root.field("trustDomain"),
            format!("invalid trust domain {td:?}"),
        );
    }
    for (n, alias) in mesh.trust_domain_aliases.iter().enumerate() {
        if !is_trust_domain(alias) {
            i.error(
                &root.field("trustDomainAliases").index(n),
                format!("invalid trust domain alias {alias:?}"),
            );
        }
    }
    if let Some(ns) = &mesh.root_namespace
        && !host::is_dns1123_label(ns)
    {
        i.error(
            &root.field("rootNamespace"),
            format!("invalid namespace {ns:?}"),
        );
    }
    check_export_to(
        i,
        &root.field("defaultServiceExportTo"),
        &mesh.default_service_export_to,
    );
    check_export_to(
        i,
        &root.field("defaultVirtualServiceExportTo"),
        &mesh.default_virtual_service_export_to,
    );
    check_export_to(
        i,
        &root.field("defaultDestinationRuleExportTo"),
        &mesh.default_destination_rule_export_to,
    );
    if let Some(l) = &mesh.locality_lb_setting {
        check_locality(i, &root.field("localityLbSetting"), l);
    }
    if let Some(r) = &mesh.default_http_retry_policy
        && r.attempts < 0
    {
        i.error(
            &root.field("defaultHttpRetryPolicy").field("attempts"),
            "attempts cannot be negative",
        );
    }
    if let Some(pc) = &mesh.default_config {
        check_proxy_config(i, &root.field("defaultConfig"), pc);
    }
    let mut names = BTreeSet::new();
    for (n, provider) in mesh.extension_providers.iter().enumerate() {
        let p = root.field("extensionProviders").index(n);
        if provider.name.is_empty() {
            i.error(&p.field("name"), "extension provider name is required");
        } else if !names.insert(provider.name.as_str()) {
            i.error(
                &p.field("name"),
                format!("duplicate extension provider name {:?}", provider.name),
            );
        }
        for kind in provider.provider.keys() {
            if !EXTENSION_PROVIDER_KINDS.contains(&kind.as_str()) {
                i.error(
                    &p.field(kind),
                    format!(
                        "unknown extension provider kind {kind:?} (expected one of {})",
                        EXTENSION_PROVIDER_KINDS.join(", ")
                    ),
                );
            }
        }
        match provider.provider.len() {
            0 => i.error(&p, "extension provider must set one provider kind"),
            1 => {
                if let Err(reason) = provider.typed() {
                    i.error(&p, reason);
                }
            }
            _ => i.error(&p, "extension provider must set only one provider kind"),
        }
        if let Some((kind, body)) = provider.kind()
            && (body.get("service").is_some() || body.get("port").is_some())
        {
            let service = body.get("service").and_then(|s| s.as_str()).unwrap_or("");
            if service.is_empty() {
                i.error(&p.field(kind).field("service"), "service is required");
            } else {
                // `[<namespace>/]<hostname>`
                let hostname = service.split_once('/').map_or(service, |(_, h)| h);
                if let Err(reason) = host::check_fqdn(hostname) {
                    i.error(
                        &p.field(kind).field("service"),
                        format!("invalid service {service:?}: {reason}"),
                    );
                }
            }
            match body.get("port").and_then(|v| v.as_u64()) {
                Some(port) => check_port_number(
                    i,
                    &p.field(kind).field("port"),
                    u32::try_from(port).unwrap_or(0),
                ),
                None => i.error(&p.field(kind).field("port"), "port is required"),
            }
        }
    }
    if let Some(dp) = &mesh.default_providers {
        let p = root.field("defaultProviders");
        for (field, list) in [
            ("tracing", &dp.tracing),
            ("metrics", &dp.metrics),
            ("accessLogging", &dp.access_logging),
        ] {
            for (n, name) in list.iter().enumerate() {
                // Istio accepts this (the provider may be added later); nothing is sent meanwhile.
                if !names.contains(name.as_str()) && !BUILTIN_PROVIDERS.contains(&name.as_str()) {
                    i.warn(
                        &p.field(field).index(n),
                        format!("default provider {name:?} is not defined in extensionProviders"),
                    );
                }
            }
        }
    }
    issues.0
}

/// SPIFFE trust domains: lower-case letters, digits, `.`, `-`, `_`.
fn is_trust_domain(td: &str) -> bool {
    !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
}

/// `host:port` with a non-empty host and a valid port.
fn is_host_port(addr: &str) -> bool {
    addr.rsplit_once(':')
        .filter(|(h, _)| !h.is_empty())
        .and_then(|(_, port)| port.parse::<u32>().ok())
        .is_some_and(|port| (1..=65535).contains(&port))
}

fn check_proxy_config(i: &mut Issues, path: &FieldPath, pc: &ProxyConfig) {
    if let Some(addr) = pc.statsd_udp_address.as_deref().filter(|a| !a.is_empty())
        && !is_host_port(addr)
    {
        i.error(
            &path.field("statsdUdpAddress"),
            format!("statsdUdpAddress {addr:?} must be host:port"),
        );
    }
    if let Some(policy) = &pc.control_plane_auth_policy
        && policy != "NONE"
        && policy != "MUTUAL_TLS"
    {
        i.error(
            &path.field("controlPlaneAuthPolicy"),
            format!("unknown controlPlaneAuthPolicy {policy:?} (expected NONE or MUTUAL_TLS)"),
        );
    }
    if let Some(regexps) = pc
        .proxy_stats_matcher
        .as_ref()
        .and_then(|m| m.get("inclusionRegexps"))
        .and_then(|r| r.as_array())
    {
        let rp = path.field("proxyStatsMatcher").field("inclusionRegexps");
        for (n, re) in regexps.iter().enumerate() {
            match re.as_str() {
                Some(text) => super::check_regex(i, &rp.index(n), text),
                None => i.error(&rp.index(n), "expected a string"),
            }
        }
    }
    if let Some(addr) = &pc.discovery_address
        && !is_host_port(addr)
    {
        i.error(
            &path.field("discoveryAddress"),
            format!("discoveryAddress {addr:?} must be host:port"),
        );
    }
    for (field, port) in [
        ("proxyAdminPort", pc.proxy_admin_port),
        ("statusPort", pc.status_port),
    ] {
        if let Some(p) = port.filter(|p| *p != 0) {
            check_port_number(i, &path.field(field), u32::try_from(p).unwrap_or(0));
        }
    }
    if let Some(c) = pc.concurrency
        && c < 0
    {
        i.error(
            &path.field("concurrency"),
            "concurrency must be non-negative",
        );
    }
    check_duration(i, &path.field("drainDuration"), pc.drain_duration);
    check_duration(
        i,
        &path.field("terminationDrainDuration"),
        pc.termination_drain_duration,
    );
    check_duration(
        i,
        &path.field("parentShutdownDuration"),
        pc.parent_shutdown_duration,
    );
    check_duration(i, &path.field("fileFlushInterval"), pc.file_flush_interval);
    for key in pc.proxy_metadata.keys() {
        if key.is_empty() {
            i.error(
                &path.field("proxyMetadata"),
                "proxyMetadata keys cannot be empty",
            );
        }
    }
}
