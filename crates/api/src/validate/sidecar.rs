//! Sidecar rules.

use std::collections::BTreeSet;

use super::virtual_service::check_destination;
use super::{Issues, check_port, check_selector};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{OutboundTrafficMode, Sidecar};

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, sc: &Sidecar) {
    if let Some(ws) = &sc.workload_selector {
        check_selector(
            issues,
            &spec.field("workloadSelector").field("labels"),
            Some(&ws.labels),
        );
    }
    if sc.egress.is_empty()
        && sc.ingress.is_empty()
        && sc.outbound_traffic_policy.is_none()
        && sc.inbound_connection_pool.is_none()
    {
        issues.error(spec, "sidecar: empty configuration provided");
    }
    let mut ingress_ports = BTreeSet::new();
    for (i, listener) in sc.ingress.iter().enumerate() {
        let p = spec.field("ingress").index(i);
        match &listener.port {
            None => issues.error(
                &p.field("port"),
                "sidecar: ingress listener must have a port",
            ),
            Some(port) => {
                check_port(issues, &p.field("port"), port, false);
                if !ingress_ports.insert((listener.bind.clone(), port.number)) {
                    issues.error(
                        &p.field("port").field("number"),
                        format!(
                            "sidecar: ports on IP bound listeners must be unique: duplicate {}",
                            port.number
                        ),
                    );
                }
            }
        }
        if let Some(ep) = &listener.default_endpoint {
            check_default_endpoint(issues, &p.field("defaultEndpoint"), ep);
        }
        if let Some(bind) = &listener.bind {
            check_bind(issues, &p.field("bind"), bind);
        }
        if let Some(tls) = &listener.tls {
            super::gateway::check_server_tls(issues, &p.field("tls"), tls);
        }
    }
    let mut egress_ports = BTreeSet::new();
    let mut catch_all_seen = false;
    for (i, listener) in sc.egress.iter().enumerate() {
        let p = spec.field("egress").index(i);
        match &listener.port {
            Some(port) => {
                check_port(issues, &p.field("port"), port, false);
                if !egress_ports.insert((listener.bind.clone(), port.number)) {
                    issues.error(
                        &p.field("port").field("number"),
                        format!(
                            "sidecar: ports on IP bound listeners must be unique: duplicate {}",
                            port.number
                        ),
                    );
                }
            }
            None => {
                if catch_all_seen {
                    issues.error(
                        &p,
                        "sidecar: egress can have only one listener with empty port",
                    );
                } else if i + 1 != sc.egress.len() {
                    issues.error(&p, "sidecar: the egress listener with empty port should be the last listener in the list");
                }
                catch_all_seen = true;
            }
        }
        if let Some(bind) = &listener.bind {
            check_bind(issues, &p.field("bind"), bind);
        }
        if listener.hosts.is_empty() {
            issues.error(
                &p.field("hosts"),
                "sidecar: egress listener must contain at least one host",
            );
        }
        for (j, h) in listener.hosts.iter().enumerate() {
            check_egress_host(issues, &p.field("hosts").index(j), h);
        }
    }
    if let Some(otp) = &sc.outbound_traffic_policy {
        let p = spec.field("outboundTrafficPolicy");
        if let Some(proxy) = &otp.egress_proxy {
            if otp.mode() != OutboundTrafficMode::AllowAny {
                issues.error(&p.field("egressProxy"), "sidecar: egressProxy must be set only with ALLOW_ANY outbound traffic policy mode");
            }
            check_destination(issues, &p.field("egressProxy"), proxy);
            if host::is_wildcard(&proxy.host) {
                issues.error(
                    &p.field("egressProxy").field("host"),
                    "sidecar: egressProxy host cannot be a wildcard",
                );
            }
        }
    }
}

/// `namespace/dnsName`; namespace `*`, `.`, `~` or a name; dnsName `*`, a (wildcard) FQDN.
fn check_egress_host(issues: &mut Issues, path: &FieldPath, h: &str) {
    let Some((ns, name)) = h.split_once('/') else {
        issues.error(
            path,
            format!("sidecar: host {h:?} must be of form namespace/dnsName"),
        );
        return;
    };
    if !matches!(ns, "*" | "." | "~") && !host::is_dns1123_label(ns) {
        issues.error(
            path,
            format!("sidecar: invalid namespace {ns:?} in host {h:?}"),
        );
    }
    issues.check(path, host::check_wildcard_domain(name));
}

fn check_bind(issues: &mut Issues, path: &FieldPath, bind: &str) {
    if bind.starts_with("unix://") {
        return;
    }
    if bind.parse::<std::net::IpAddr>().is_err() {
        issues.error(
            path,
            format!("sidecar: bind {bind:?} must be an IP address or a unix:// socket"),
        );
    }
}

/// Where inbound traffic is forwarded: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`,
/// `[::]:PORT` or `unix://path`.
fn check_default_endpoint(issues: &mut Issues, path: &FieldPath, ep: &str) {
    if ep.starts_with("unix://") {
        return;
    }
    let ok = ep
        .rsplit_once(':')
        .filter(|(h, _)| matches!(*h, "127.0.0.1" | "0.0.0.0" | "[::1]" | "[::]"))
        .and_then(|(_, port)| port.parse::<u32>().ok())
        .is_some_and(|port| (1..=65535).contains(&port));
    if !ok {
        issues.error(
            path,
            format!("sidecar: defaultEndpoint {ep:?} must be of the form 127.0.0.1:<port>, 0.0.0.0:<port>, [::1]:<port>, [::]:<port> or unix://<path>"),
        );
    }
}
