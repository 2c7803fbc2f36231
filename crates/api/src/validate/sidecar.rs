//! Sidecar rules.

use std::collections::{BTreeMap, BTreeSet};

use super::gateway::{check_port_text, check_sidecar_ingress_tls, check_unix_path};
use super::virtual_service::check_destination;
use super::{Issues, check_port, check_selector};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{
    CaptureMode, EgressListener, IngressListener, OutboundTrafficMode, OutboundTrafficPolicy, Port,
    Sidecar,
};

const UNIX_PREFIX: &str = "unix://";

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
        return;
    }
    let mut ingress_ports = BTreeSet::new();
    for (i, listener) in sc.ingress.iter().enumerate() {
        check_ingress(
            issues,
            &spec.field("ingress").index(i),
            listener,
            &mut ingress_ports,
        );
    }
    let mut egress_ports = BTreeSet::new();
    let mut sockets = BTreeSet::new();
    let mut catch_all_seen = false;
    for (i, listener) in sc.egress.iter().enumerate() {
        let p = spec.field("egress").index(i);
        match &listener.port {
            Some(port) => {
                check_egress_port(issues, &p, port, listener);
                let bind = listener.bind.clone().unwrap_or_default();
                if port.number == 0 {
                    if !sockets.insert(bind) {
                        issues.error(
                            &p.field("bind"),
                            "sidecar: unix domain socket values for listeners must be unique",
                        );
                    }
                } else if !egress_ports.insert(port.number) {
                    issues.error(
                        &p.field("port").field("number"),
                        "sidecar: ports on IP bound listeners must be unique",
                    );
                }
            }
            None if catch_all_seen => {
                issues.error(
                    &p,
                    "sidecar: egress can have only one listener with empty port",
                );
            }
            None => {
                if i + 1 != sc.egress.len() {
                    issues.error(&p, "sidecar: the egress listener with empty port should be the last listener in the list");
                }
                catch_all_seen = true;
            }
        }
        check_egress_hosts(issues, &p.field("hosts"), &listener.hosts);
    }
    if let Some(otp) = &sc.outbound_traffic_policy {
        check_outbound_policy(issues, &spec.field("outboundTrafficPolicy"), otp);
    }
}

fn check_ingress(
    issues: &mut Issues,
    p: &FieldPath,
    listener: &IngressListener,
    ports: &mut BTreeSet<u32>,
) {
    let Some(port) = &listener.port else {
        issues.error(
            &p.field("port"),
            "sidecar: port is required for ingress listeners",
        );
        return;
    };
    if port.target_port.is_some() {
        issues.error(
            &p.field("port").field("targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    check_port(issues, &p.field("port"), port, false);
    if let Some(bind) = &listener.bind {
        check_ip(issues, &p.field("bind"), bind);
    }
    if !ports.insert(port.number) {
        issues.error(
            &p.field("port").field("number"),
            "sidecar: ports on IP bound listeners must be unique",
        );
    }
    if let Some(ep) = &listener.default_endpoint {
        check_default_endpoint(issues, &p.field("defaultEndpoint"), ep);
    }
    if let Some(tls) = &listener.tls {
        check_sidecar_ingress_tls(issues, &p.field("tls"), tls, Some(port));
    }
}

fn check_egress_port(issues: &mut Issues, p: &FieldPath, port: &Port, listener: &EgressListener) {
    if port.target_port.is_some() {
        issues.error(
            &p.field("port").field("targetPort"),
            "targetPort has no impact on Sidecars",
        );
    }
    let bind = listener.bind.as_deref().unwrap_or("");
    if port.number == 0 {
        // Port 0 means a unix domain socket listener, named by `bind`.
        check_port(
            issues,
            &p.field("port"),
            &Port {
                number: 1,
                ..port.clone()
            },
            false,
        );
        match bind.strip_prefix(UNIX_PREFIX) {
            Some(socket) => check_unix_path(issues, &p.field("bind"), socket),
            None => issues.error(
                &p.field("bind"),
                "sidecar: ports with 0 value must have a unix domain socket bind address",
            ),
        }
        if !matches!(
            listener.capture_mode,
            None | Some(CaptureMode::Default) | Some(CaptureMode::None)
        ) {
            issues.error(
                &p.field("captureMode"),
                "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners",
            );
        }
    } else {
        check_port(issues, &p.field("port"), port, false);
        if !bind.is_empty() {
            check_ip(issues, &p.field("bind"), bind);
        }
    }
}

/// `namespace/dnsName` entries; repeats and `*/*` mixed with others are warned about.
fn check_egress_hosts(issues: &mut Issues, path: &FieldPath, hosts: &[String]) {
    if hosts.is_empty() {
        issues.error(
            path,
            "sidecar: egress listener must contain at least one host",
        );
        return;
    }
    let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (j, h) in hosts.iter().enumerate() {
        let p = path.index(j);
        let Some((ns, name)) = h.split_once('/') else {
            issues.error(
                &p,
                format!("sidecar: host {h:?} must be of form namespace/dnsName"),
            );
            continue;
        };
        if !matches!(ns, "*" | "." | "~") && !host::is_dns1123_label(ns) {
            issues.error(
                &p,
                format!("sidecar: invalid namespace {ns:?} in host {h:?}"),
            );
        }
        issues.check(&p, host::check_listener_host(name));
        let seen = by_namespace.entry(ns).or_default();
        let duplicate = if name == "*" {
            !seen.is_empty()
        } else {
            seen.contains(name) || seen.contains("*")
        };
        if duplicate {
            issues.warn(&p, format!("duplicated egress host: {h}"));
        }
        seen.insert(name);
    }
    if by_namespace.get("*").is_some_and(|s| s.contains("*")) && by_namespace.len() != 1 {
        issues.warn(
            path,
            "`*/*` host select all resources, no other hosts can be added",
        );
    }
}

fn check_outbound_policy(issues: &mut Issues, p: &FieldPath, otp: &OutboundTrafficPolicy) {
    let Some(proxy) = &otp.egress_proxy else {
        return;
    };
    let pp = p.field("egressProxy");
    if otp.mode() != OutboundTrafficMode::AllowAny {
        issues.error(
            &pp,
            "sidecar: egress_proxy must be set only with ALLOW_ANY outbound_traffic_policy mode",
        );
        return;
    }
    issues.check(&pp.field("host"), host::check_fqdn(&proxy.host));
    if proxy.port.is_none() {
        issues.error(
            &pp.field("port"),
            "sidecar: egress_proxy port must be non-nil",
        );
        return;
    }
    check_destination(issues, &pp, proxy);
}

fn check_ip(issues: &mut Issues, path: &FieldPath, bind: &str) {
    if bind.parse::<std::net::IpAddr>().is_err() {
        issues.error(path, format!("{bind:?} is not a valid IP address"));
    }
}

/// Where inbound traffic is forwarded: `127.0.0.1:PORT`, `0.0.0.0:PORT`, `[::1]:PORT`,
/// `[::]:PORT`, `:PORT`, or `unix:///path`.
fn check_default_endpoint(issues: &mut Issues, path: &FieldPath, ep: &str) {
    if let Some(socket) = ep.strip_prefix(UNIX_PREFIX) {
        check_unix_path(issues, path, socket);
        return;
    }
    let Some((host_part, port)) = ep.rsplit_once(':') else {
        issues.error(
            path,
            format!("sidecar: defaultEndpoint {ep:?}: missing port"),
        );
        return;
    };
    if !matches!(host_part, "" | "127.0.0.1" | "0.0.0.0" | "[::1]" | "[::]") {
        issues.error(
            path,
            format!("sidecar: defaultEndpoint {ep:?} must be of form 127.0.0.1:<port>,0.0.0.0:<port>,[::1]:port,[::]:port,unix://filepath or unset"),
        );
    }
    check_port_text(issues, path, port);
}
