//! VirtualService rules: hosts, gateways, destinations and weights, TCP and TLS routes.
//! HTTP rules are in `http_route`.

use std::collections::BTreeMap;

use super::http_route::{check_headers, check_http_route};
use super::{Issues, check_export_to, check_ip_or_cidr, check_labels, check_port_number};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{
    Destination, HttpRouteDestination, RouteDestination, TcpRoute, TlsRoute, VirtualService,
};
use crate::scope::MESH_GATEWAY;

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, vs: &VirtualService) {
    // Istio: bound to the mesh when there are no gateways or `mesh` is one of them.
    let bound_to_mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == MESH_GATEWAY);
    let delegate = vs.hosts.is_empty();
    if delegate {
        // A host-less VirtualService is a delegate: plain HTTP rules only.
        for (field, set, what) in [
            ("gateways", !vs.gateways.is_empty(), "gateways"),
            ("tls", !vs.tls.is_empty(), "tls route"),
            ("tcp", !vs.tcp.is_empty(), "tcp route"),
        ] {
            if set {
                issues.error(
                    &spec.field(field),
                    format!(
                        "delegate virtual service (one without hosts) must have no {what} specified"
                    ),
                );
            }
        }
    }
    check_hosts(issues, spec, vs, bound_to_mesh);
    check_gateway_names(issues, &spec.field("gateways"), &vs.gateways);
    check_export_to(issues, &spec.field("exportTo"), &vs.export_to);
    if vs.http.is_empty() && vs.tcp.is_empty() && vs.tls.is_empty() {
        issues.error(spec, "http, tcp or tls must be provided in virtual service");
    }
    for (i, route) in vs.http.iter().enumerate() {
        let path = spec.field("http").index(i);
        check_http_route(issues, &path, route, delegate);
        if !vs.gateways.is_empty() && !bound_to_mesh {
            continue;
        }
        // JWT claim routing needs the gateway's JWT filter: sidecars cannot do it.
        for (j, m) in route.matches.iter().enumerate() {
            for (field, headers) in [
                ("headers", &m.headers),
                ("withoutHeaders", &m.without_headers),
            ] {
                for name in headers
                    .keys()
                    .filter(|n| n.starts_with("@request.auth.claims"))
                {
                    issues.error(
                        &path.field("match").index(j).field(field).field(name),
                        "JWT claim based routing is only supported for gateways",
                    );
                }
            }
        }
    }
    super::unreachable::check_http_rules(issues, &spec.field("http"), &vs.http);
    super::unreachable::check_tcp_rules(issues, &spec.field("tcp"), &vs.tcp);
    super::unreachable::check_tls_rules(issues, &spec.field("tls"), &vs.tls);
    for (i, route) in vs.tcp.iter().enumerate() {
        check_tcp_route(issues, &spec.field("tcp").index(i), route);
    }
    for (i, route) in vs.tls.iter().enumerate() {
        check_tls_route(issues, &spec.field("tls").index(i), route, vs);
    }
}

fn check_hosts(issues: &mut Issues, spec: &FieldPath, vs: &VirtualService, bound_to_mesh: bool) {
    let path = spec.field("hosts");
    let mut all_valid = true;
    for (i, h) in vs.hosts.iter().enumerate() {
        let p = path.index(i);
        if h.parse::<std::net::IpAddr>().is_ok() {
            continue;
        }
        if let Err(reason) = host::check_wildcard_domain(h) {
            issues.error(&p, reason);
            all_valid = false;
        } else if h == "*" && bound_to_mesh {
            issues.error(
                &p,
                "wildcard host * is not allowed for virtual services bound to the mesh gateway",
            );
            all_valid = false;
        }
    }
    // Duplicates include wildcard overlaps: `*.foo.com` and `a.foo.com`.
    if all_valid {
        for (i, a) in vs.hosts.iter().enumerate() {
            for (j, b) in vs.hosts.iter().enumerate().skip(i + 1) {
                if host::hosts_match(a, b) {
                    issues.error(
                        &path.index(j),
                        format!("duplicate hosts in virtual service: {a} & {b}"),
                    );
                }
            }
        }
    }
}

/// `[namespace/]name`, the reserved `mesh`, or a legacy `name.namespace...` FQDN.
pub(super) fn check_gateway_names(issues: &mut Issues, path: &FieldPath, names: &[String]) {
    for (i, name) in names.iter().enumerate() {
        let p = path.index(i);
        if name == MESH_GATEWAY {
            continue;
        }
        match name.split_once('/') {
            Some((ns, gw)) => {
                if !host::is_dns1123_label(ns) {
                    issues.error(
                        &p,
                        format!("invalid namespace {ns:?} in gateway name {name:?}"),
                    );
                }
                if !host::is_dns1123_label(gw) {
                    issues.error(&p, format!("invalid gateway name {gw:?} in {name:?}"));
                }
            }
            None if host::is_dns1123_subdomain(name) => {
                if name.contains('.') {
                    issues.warn(
                        &p,
                        format!("legacy gateway name format {name:?}; prefer <namespace>/<name>"),
                    );
                }
            }
            None => issues.error(&p, format!("invalid gateway name {name:?}")),
        }
    }
}

pub(super) fn check_destination(issues: &mut Issues, path: &FieldPath, d: &Destination) {
    if d.host.is_empty() {
        issues.error(&path.field("host"), "destination host is required");
    } else if d.host == "*" {
        issues.error(&path.field("host"), "invalid destination host *");
    } else {
        issues.check(&path.field("host"), host::check_wildcard_domain(&d.host));
    }
    if let Some(subset) = &d.subset {
        if subset.is_empty() {
            issues.error(&path.field("subset"), "subset name cannot be empty");
        } else if !host::is_dns1123_label(subset) {
            issues.error(
                &path.field("subset"),
                format!("subset name {subset:?} is invalid: must be a DNS-1123 label"),
            );
        }
    }
    if let Some(port) = &d.port {
        match port.number {
            Some(n) => check_port_number(issues, &path.field("port").field("number"), n),
            None => issues.error(
                &path.field("port").field("number"),
                "port number is required",
            ),
        }
    }
}

/// Istio's weight rule: each weight >= 0; with several destinations the total must not be 0
/// (weights are relative: they need not sum to 100).
fn check_weights(issues: &mut Issues, path: &FieldPath, weights: &[i32]) {
    for (i, w) in weights.iter().enumerate() {
        if *w < 0 {
            issues.error(
                &path.index(i).field("weight"),
                format!("weight {w} must not be negative"),
            );
        }
    }
    let total: i64 = weights.iter().map(|w| i64::from(*w)).sum();
    if weights.len() > 1 && total == 0 {
        issues.error(
            path,
            "total destination weight = 0 (at least one destination needs a positive weight)",
        );
    }
    if total > i64::from(u32::MAX) {
        issues.error(
            path,
            format!("total destination weight {total} is too large"),
        );
    }
}

pub(super) fn check_http_destinations(
    issues: &mut Issues,
    path: &FieldPath,
    routes: &[HttpRouteDestination],
) {
    for (i, r) in routes.iter().enumerate() {
        let p = path.index(i);
        match &r.destination {
            Some(d) => check_destination(issues, &p.field("destination"), d),
            None => issues.error(&p.field("destination"), "destination is required"),
        }
        if let Some(h) = &r.headers {
            check_headers(issues, &p.field("headers"), h);
        }
    }
    let weights: Vec<i32> = routes.iter().map(|r| r.weight).collect();
    check_weights(issues, path, &weights);
}

fn check_l4_destinations(issues: &mut Issues, path: &FieldPath, routes: &[RouteDestination]) {
    for (i, r) in routes.iter().enumerate() {
        let p = path.index(i);
        match &r.destination {
            Some(d) => check_destination(issues, &p.field("destination"), d),
            None => issues.error(&p.field("destination"), "destination is required"),
        }
    }
    let weights: Vec<i32> = routes.iter().map(|r| r.weight).collect();
    check_weights(issues, path, &weights);
}

fn check_tcp_route(issues: &mut Issues, path: &FieldPath, r: &TcpRoute) {
    for (i, m) in r.matches.iter().enumerate() {
        let p = path.field("match").index(i);
        if let Some(subnet) = &m.source_subnet {
            check_ip_or_cidr(issues, &p.field("sourceSubnet"), subnet);
        }
        check_l4_match(
            issues,
            &p,
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
    }
    if r.route.is_empty() {
        issues.error(&path.field("route"), "TCP route is required");
    }
    check_l4_destinations(issues, &path.field("route"), &r.route);
}

fn check_tls_route(issues: &mut Issues, path: &FieldPath, r: &TlsRoute, vs: &VirtualService) {
    if r.matches.is_empty() {
        issues.error(
            &path.field("match"),
            "TLS route must have at least one match condition",
        );
    }
    for (i, m) in r.matches.iter().enumerate() {
        let p = path.field("match").index(i);
        if m.sni_hosts.is_empty() {
            issues.error(
                &p.field("sniHosts"),
                "TLS match must have at least one SNI host",
            );
        }
        for (j, sni) in m.sni_hosts.iter().enumerate() {
            let sp = p.field("sniHosts").index(j);
            if let Err(reason) = host::check_wildcard_domain(sni) {
                issues.error(&sp, reason);
            } else if !vs.hosts.iter().any(|h| host::host_is_subset_of(sni, h)) {
                issues.error(
                    &sp,
                    format!("SNI host {sni:?} is not a compatible subset of any of the virtual service hosts: [{}]", vs.hosts.join(", ")),
                );
            }
        }
        check_l4_match(
            issues,
            &p,
            &m.destination_subnets,
            m.port,
            &m.source_labels,
            &m.gateways,
        );
    }
    if r.route.is_empty() {
        issues.error(&path.field("route"), "TLS route is required");
    }
    check_l4_destinations(issues, &path.field("route"), &r.route);
}

/// The attributes TLS and TCP matches share.
fn check_l4_match(
    issues: &mut Issues,
    path: &FieldPath,
    destination_subnets: &[String],
    port: Option<u32>,
    source_labels: &BTreeMap<String, String>,
    gateways: &[String],
) {
    for (j, subnet) in destination_subnets.iter().enumerate() {
        check_ip_or_cidr(issues, &path.field("destinationSubnets").index(j), subnet);
    }
    if let Some(port) = port {
        check_port_number(issues, &path.field("port"), port);
    }
    check_labels(issues, &path.field("sourceLabels"), source_labels);
    check_gateway_names(issues, &path.field("gateways"), gateways);
}
