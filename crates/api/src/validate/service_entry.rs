//! ServiceEntry, WorkloadEntry and WorkloadGroup rules.

use std::collections::BTreeSet;

use super::{
    Issues, check_export_to, check_ip_or_cidr, check_labels, check_port, check_port_number,
    check_selector,
};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{ReadinessProbe, Resolution, ServiceEntry, WorkloadEntry, WorkloadGroup};

const UNIX_PREFIX: &str = "unix://";

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, se: &ServiceEntry) {
    let hosts = spec.field("hosts");
    if se.hosts.is_empty() {
        issues.error(&hosts, "service entry must have at least one host");
    }
    for (i, h) in se.hosts.iter().enumerate() {
        if h == "*" {
            issues.error(&hosts.index(i), "invalid host *");
        } else {
            issues.check(&hosts.index(i), host::check_wildcard_domain(h));
        }
    }
    let resolution = se.resolution();
    let mut has_cidr = false;
    for (i, address) in se.addresses.iter().enumerate() {
        has_cidr |= address.contains('/');
        check_ip_or_cidr(issues, &spec.field("addresses").index(i), address);
    }
    if has_cidr && !matches!(resolution, Resolution::None | Resolution::Static) {
        issues.error(
            &spec.field("addresses"),
            "CIDR addresses are allowed only for NONE/STATIC resolution types",
        );
    }
    let mut names = BTreeSet::new();
    let mut numbers = BTreeSet::new();
    for (i, port) in se.ports.iter().enumerate() {
        let p = spec.field("ports").index(i);
        check_port(issues, &p, port, true);
        if !port.name.is_empty() && !names.insert(port.name.as_str()) {
            issues.error(
                &p.field("name"),
                format!("service entry port name {:?} already defined", port.name),
            );
        }
        if !numbers.insert(port.number) {
            issues.error(
                &p.field("number"),
                format!("service entry port {} already defined", port.number),
            );
        }
    }
    if se.workload_selector.is_some() && !se.endpoints.is_empty() {
        issues.error(
            spec,
            "only one of WorkloadSelector or Endpoints is allowed in Service Entry",
        );
    }
    if let Some(ws) = &se.workload_selector {
        check_selector(
            issues,
            &spec.field("workloadSelector").field("labels"),
            Some(&ws.labels),
        );
    }
    check_resolution(issues, spec, se, resolution);
    for (i, ep) in se.endpoints.iter().enumerate() {
        check_workload_entry(issues, &spec.field("endpoints").index(i), ep, Some(&names));
        let p = spec.field("endpoints").index(i).field("address");
        let is_ip = ep.address.parse::<std::net::IpAddr>().is_ok();
        let is_unix = ep.address.starts_with(UNIX_PREFIX);
        match resolution {
            Resolution::Static if !is_ip && !is_unix && !ep.address.is_empty() => {
                issues.error(
                    &p,
                    format!(
                        "endpoint address {:?} is not a valid IP address",
                        ep.address
                    ),
                );
            }
            Resolution::Dns | Resolution::DnsRoundRobin if is_unix => {
                issues.error(
                    &p,
                    "unix socket endpoints are only allowed with STATIC resolution",
                );
            }
            _ => {}
        }
    }
    check_export_to(issues, &spec.field("exportTo"), &se.export_to);
}

/// Resolution and endpoints must agree (Istio's rules).
fn check_resolution(
    issues: &mut Issues,
    spec: &FieldPath,
    se: &ServiceEntry,
    resolution: Resolution,
) {
    let mode = super::wire_name(&resolution);
    match resolution {
        Resolution::None => {
            if !se.endpoints.is_empty() {
                issues.error(
                    &spec.field("endpoints"),
                    "no endpoints should be provided for resolution type NONE",
                );
            }
            if se.workload_selector.is_some() {
                issues.warn(
                    &spec.field("workloadSelector"),
                    "workloadSelector should not be set when resolution mode is NONE",
                );
            }
        }
        Resolution::Static => {}
        Resolution::DynamicDns => issues.not_acted_on(&spec.field("resolution")),
        Resolution::Dns | Resolution::DnsRoundRobin => {
            if se.endpoints.is_empty() {
                for (i, h) in se.hosts.iter().enumerate() {
                    if host::check_fqdn(h).is_err() {
                        issues.error(
                            &spec.field("hosts").index(i),
                            format!("hosts must be FQDN if no endpoints are provided for resolution mode {mode}"),
                        );
                    }
                }
            }
            if resolution == Resolution::DnsRoundRobin && se.endpoints.len() > 1 {
                issues.error(
                    &spec.field("endpoints"),
                    format!("there must only be 0 or 1 endpoint for resolution mode {mode}"),
                );
            }
            let tcp_port = se
                .ports
                .iter()
                .any(|p| p.protocol.is_empty() || p.protocol.eq_ignore_ascii_case("TCP"));
            if !se.addresses.is_empty() && tcp_port && se.hosts.len() > 1 {
                issues.warn(
                    &spec.field("hosts"),
                    "service entry can not have more than one host specified simultaneously with address and tcp port",
                );
            }
        }
    }
    // Plain TCP cannot tell hosts apart (no Host header, no SNI) unless hosts are ignored.
    if resolution != Resolution::None && se.hosts.len() > 1 {
        let opaque = se.ports.iter().position(|p| {
            let proto = p.protocol.to_ascii_uppercase();
            !matches!(
                proto.as_str(),
                "HTTP" | "HTTP2" | "GRPC" | "GRPC-WEB" | "HTTP_PROXY" | "HTTPS" | "TLS"
            )
        });
        if let Some(i) = opaque {
            issues.error(
                &spec.field("ports").index(i),
                "multiple hosts provided with non-HTTP, non-TLS ports",
            );
        }
    }
}

/// A WorkloadEntry, standalone (`service_ports` = None) or as a ServiceEntry endpoint (its
/// port names must then be service port names).
pub(super) fn check_workload_entry(
    issues: &mut Issues,
    path: &FieldPath,
    we: &WorkloadEntry,
    service_ports: Option<&BTreeSet<&str>>,
) {
    let address = &we.address;
    if address.is_empty() {
        match &we.network {
            None => issues.error(&path.field("address"), "address is required"),
            Some(network) => issues.warn(
                &path.field("address"),
                format!("address is unset with network {network:?}"),
            ),
        }
    } else if let Some(socket) = address.strip_prefix(UNIX_PREFIX) {
        if !socket.starts_with('/') && !socket.starts_with('@') {
            issues.error(
                &path.field("address"),
                format!("unix endpoint {address:?} must be an absolute path or abstract socket"),
            );
        } else if socket.ends_with('/') {
            issues.error(
                &path.field("address"),
                format!("unix endpoint {address:?} must be a socket, not a directory"),
            );
        }
        if !we.ports.is_empty() {
            issues.error(
                &path.field("ports"),
                format!("unix endpoint {address} must not include ports"),
            );
        }
    } else if address.parse::<std::net::IpAddr>().is_err()
        && let Err(reason) = host::check_fqdn(address)
    {
        issues.error(
            &path.field("address"),
            format!("endpoint address {address:?} is not a valid FQDN or an IP address ({reason})"),
        );
    }
    for (name, port) in &we.ports {
        let p = path.field("ports").field(name);
        if let Some(names) = service_ports
            && !names.contains(name.as_str())
        {
            issues.error(
                &p,
                format!("endpoint port {name:?} is not defined by the service entry"),
            );
        }
        if !host::is_dns1123_label(name) {
            issues.error(&p, format!("invalid port name {name:?}"));
        }
        check_port_number(issues, &p, *port);
    }
    check_labels(issues, &path.field("labels"), &we.labels);
    if let Some(w) = we.weight
        && w == 0
    {
        issues.warn(&path.field("weight"), "weight 0 means the default weight");
    }
    if let Some(sa) = &we.service_account
        && !host::is_dns1123_subdomain(sa)
    {
        issues.error(
            &path.field("serviceAccount"),
            format!("invalid service account name {sa:?}"),
        );
    }
}

pub(super) fn check_workload_group(issues: &mut Issues, spec: &FieldPath, wg: &WorkloadGroup) {
    if wg.template.is_none() {
        issues.error(&spec.field("template"), "template is required");
    }
    if let Some(t) = &wg.template {
        // The template's address is filled in per VM, so only the other fields are checked.
        let p = spec.field("template");
        check_labels(issues, &p.field("labels"), &t.labels);
        for (name, port) in &t.ports {
            check_port_number(issues, &p.field("ports").field(name), *port);
        }
    }
    if let Some(m) = &wg.metadata {
        check_labels(issues, &spec.field("metadata").field("labels"), &m.labels);
    }
    if let Some(probe) = &wg.probe {
        check_probe(issues, &spec.field("probe"), probe);
    }
}

fn check_probe(issues: &mut Issues, path: &FieldPath, probe: &ReadinessProbe) {
    for (field, value) in [
        ("initialDelaySeconds", probe.initial_delay_seconds),
        ("timeoutSeconds", probe.timeout_seconds),
        ("periodSeconds", probe.period_seconds),
        ("successThreshold", probe.success_threshold),
        ("failureThreshold", probe.failure_threshold),
    ] {
        if value < 0 {
            issues.error(&path.field(field), format!("{field} must be non-negative"));
        }
    }
    let methods = [
        probe.http_get.is_some(),
        probe.tcp_socket.is_some(),
        probe.exec.is_some(),
        probe.grpc.is_some(),
    ]
    .iter()
    .filter(|m| **m)
    .count();
    if methods != 1 {
        issues.error(
            path,
            "exactly one of httpGet, tcpSocket, exec or grpc must be set",
        );
    }
    if let Some(h) = &probe.http_get {
        check_port_number(issues, &path.field("httpGet").field("port"), h.port);
        for (i, header) in h.http_headers.iter().enumerate() {
            // Istio's CRD pattern `^[-_A-Za-z0-9]+$`.
            let ok = !header.name.is_empty()
                && header
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
            if !ok {
                issues.error(
                    &path
                        .field("httpGet")
                        .field("httpHeaders")
                        .index(i)
                        .field("name"),
                    format!(
                        "invalid header name {:?}: letters, digits, '-' and '_' only",
                        header.name
                    ),
                );
            }
        }
        if let Some(s) = &h.scheme
            && s != "HTTP"
            && s != "HTTPS"
        {
            issues.error(
                &path.field("httpGet").field("scheme"),
                "httpGet.scheme must be one of \"HTTPS\", \"HTTP\"",
            );
        }
    }
    if let Some(t) = &probe.tcp_socket {
        check_port_number(issues, &path.field("tcpSocket").field("port"), t.port);
    }
    if let Some(e) = &probe.exec
        && e.command.is_empty()
    {
        issues.error(
            &path.field("exec").field("command"),
            "exec.command is required",
        );
    }
    if let Some(g) = &probe.grpc {
        check_port_number(issues, &path.field("grpc").field("port"), g.port);
    }
}
