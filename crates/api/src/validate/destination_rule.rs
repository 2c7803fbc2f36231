//! DestinationRule rules.

use std::collections::BTreeSet;

use super::{
    Issues, check_duration, check_export_to, check_labels, check_port_number, check_selector,
};
use crate::error::FieldPath;
use crate::host;
use crate::networking::{
    ClientTlsMode, ClientTlsSettings, ConnectionPoolSettings, DestinationRule,
    LoadBalancerSettings, LocalityLbSetting, OutlierDetection, TrafficPolicy,
};

pub(super) fn check(issues: &mut Issues, spec: &FieldPath, dr: &DestinationRule) {
    let host_path = spec.field("host");
    if dr.host.is_empty() {
        issues.error(&host_path, "host is required");
    } else {
        issues.check(&host_path, host::check_wildcard_domain(&dr.host));
    }
    if let Some(tp) = &dr.traffic_policy {
        check_traffic_policy(issues, &spec.field("trafficPolicy"), tp);
    }
    let mut names = BTreeSet::new();
    for (i, subset) in dr.subsets.iter().enumerate() {
        let p = spec.field("subsets").index(i);
        if subset.name.is_empty() {
            issues.error(&p.field("name"), "subset name is required");
        } else if !host::is_dns1123_label(&subset.name) {
            issues.error(
                &p.field("name"),
                format!(
                    "subset name {:?} is invalid: must be a DNS-1123 label",
                    subset.name
                ),
            );
        } else if !names.insert(subset.name.as_str()) {
            issues.error(
                &p.field("name"),
                format!("duplicate subset name {:?}", subset.name),
            );
        }
        // Istio accepts a subset without labels (it then selects every endpoint); that is
        // almost always a mistake, so it is reported, as a warning.
        if subset.labels.is_empty() {
            issues.warn(
                &p.field("labels"),
                "subset has no labels: it selects every endpoint of the host",
            );
        }
        check_labels(issues, &p.field("labels"), &subset.labels);
        if let Some(tp) = &subset.traffic_policy {
            check_traffic_policy(issues, &p.field("trafficPolicy"), tp);
        }
    }
    check_export_to(issues, &spec.field("exportTo"), &dr.export_to);
    if let Some(ws) = &dr.workload_selector {
        check_selector(
            issues,
            &spec.field("workloadSelector").field("labels"),
            Some(&ws.labels),
        );
    }
}

fn check_traffic_policy(issues: &mut Issues, path: &FieldPath, tp: &TrafficPolicy) {
    if tp == &TrafficPolicy::default() {
        issues.error(path, "traffic policy must have at least one field");
        return;
    }
    if let Some(lb) = &tp.load_balancer {
        check_load_balancer(issues, &path.field("loadBalancer"), lb);
    }
    if let Some(cp) = &tp.connection_pool {
        check_connection_pool(issues, &path.field("connectionPool"), cp);
    }
    if let Some(od) = &tp.outlier_detection {
        check_outlier_detection(issues, &path.field("outlierDetection"), od);
    }
    if let Some(tls) = &tp.tls {
        check_client_tls(issues, &path.field("tls"), tls);
    }
    let mut ports = BTreeSet::new();
    for (i, pl) in tp.port_level_settings.iter().enumerate() {
        let p = path.field("portLevelSettings").index(i);
        match pl.port.and_then(|s| s.number) {
            None => issues.error(&p.field("port"), "portLevelSettings must specify port"),
            Some(n) => {
                check_port_number(issues, &p.field("port").field("number"), n);
                if !ports.insert(n) {
                    issues.error(
                        &p.field("port").field("number"),
                        format!("duplicate port {n} in portLevelSettings"),
                    );
                }
            }
        }
        if pl.load_balancer.is_none()
            && pl.connection_pool.is_none()
            && pl.outlier_detection.is_none()
            && pl.tls.is_none()
        {
            issues.error(&p, "port traffic policy must have at least one field");
        }
        if let Some(lb) = &pl.load_balancer {
            check_load_balancer(issues, &p.field("loadBalancer"), lb);
        }
        if let Some(cp) = &pl.connection_pool {
            check_connection_pool(issues, &p.field("connectionPool"), cp);
        }
        if let Some(od) = &pl.outlier_detection {
            check_outlier_detection(issues, &p.field("outlierDetection"), od);
        }
        if let Some(tls) = &pl.tls {
            check_client_tls(issues, &p.field("tls"), tls);
        }
    }
    if let Some(t) = &tp.tunnel {
        let p = path.field("tunnel");
        if let Some(proto) = &t.protocol
            && proto != "CONNECT"
            && proto != "POST"
        {
            issues.error(
                &p.field("protocol"),
                format!("tunnel protocol {proto:?} must be CONNECT or POST"),
            );
        }
        issues.check(
            &p.field("targetHost"),
            host::check_wildcard_domain(&t.target_host).or_else(|e| {
                t.target_host
                    .parse::<std::net::IpAddr>()
                    .map(|_| ())
                    .map_err(|_| e)
            }),
        );
        check_port_number(issues, &p.field("targetPort"), t.target_port);
    }
}

fn check_load_balancer(issues: &mut Issues, path: &FieldPath, lb: &LoadBalancerSettings) {
    if lb.simple.is_some() && lb.consistent_hash.is_some() {
        issues.error(path, "only one of simple or consistentHash may be set");
    }
    if let Some(ch) = &lb.consistent_hash {
        let p = path.field("consistentHash");
        if ch.hash_key().is_none() {
            issues.error(
                &p,
                "exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set",
            );
        }
        if let Some(cookie) = &ch.http_cookie {
            if cookie.name.is_empty() {
                issues.error(
                    &p.field("httpCookie").field("name"),
                    "cookie name is required",
                );
            }
            if cookie.ttl.is_some_and(|t| !t.is_zero()) {
                check_duration(issues, &p.field("httpCookie").field("ttl"), cookie.ttl);
            }
        }
        if ch.http_header_name.as_deref() == Some("") {
            issues.error(&p.field("httpHeaderName"), "header name cannot be empty");
        }
        if ch.http_query_parameter_name.as_deref() == Some("") {
            issues.error(
                &p.field("httpQueryParameterName"),
                "query parameter name cannot be empty",
            );
        }
        let algorithms = [
            ch.ring_hash.is_some(),
            ch.maglev.is_some(),
            ch.minimum_ring_size.is_some(),
        ]
        .iter()
        .filter(|s| **s)
        .count();
        if algorithms > 1 {
            issues.error(
                &p,
                "only one of ringHash, maglev or minimumRingSize may be set",
            );
        }
        if let Some(size) = ch.maglev.as_ref().and_then(|m| m.table_size)
            && !is_prime(size)
        {
            issues.error(
                &p.field("maglev").field("tableSize"),
                format!("maglev table size {size} must be a prime number"),
            );
        }
    }
    if let Some(l) = &lb.locality_lb_setting {
        check_locality(issues, &path.field("localityLbSetting"), l);
    }
    check_duration(
        issues,
        &path.field("warmupDurationSecs"),
        lb.warmup_duration_secs,
    );
}

fn is_prime(n: u64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u64;
    while d.saturating_mul(d) <= n {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

pub(super) fn check_locality(issues: &mut Issues, path: &FieldPath, l: &LocalityLbSetting) {
    if !l.distribute.is_empty() && !l.failover.is_empty() {
        issues.error(
            path,
            "can not simultaneously specify 'distribute' and 'failover'",
        );
    }
    for (i, d) in l.distribute.iter().enumerate() {
        let p = path.field("distribute").index(i);
        if d.from.is_empty() {
            issues.error(&p.field("from"), "locality is required");
        }
        let total: u64 = d.to.values().map(|w| u64::from(*w)).sum();
        if total != 100 {
            issues.error(
                &p.field("to"),
                format!("total locality weight {total} != 100"),
            );
        }
    }
    for (i, f) in l.failover.iter().enumerate() {
        let p = path.field("failover").index(i);
        if f.from == f.to {
            issues.error(
                &p,
                "locality lb failover settings must specify different regions",
            );
        }
        if f.from.contains('/') || f.to.contains('/') {
            issues.error(&p, "locality lb failover only specify region");
        }
        if f.to == "*" || f.from == "*" {
            issues.error(
                &p,
                "locality lb failover region should not contain '*' wildcard",
            );
        }
    }
}

fn check_connection_pool(issues: &mut Issues, path: &FieldPath, cp: &ConnectionPoolSettings) {
    if cp.tcp.is_none() && cp.http.is_none() {
        issues.error(path, "connection pool must have at least one field");
    }
    if let Some(tcp) = &cp.tcp {
        let p = path.field("tcp");
        non_negative(issues, &p.field("maxConnections"), tcp.max_connections);
        check_duration(issues, &p.field("connectTimeout"), tcp.connect_timeout);
        check_duration(
            issues,
            &p.field("maxConnectionDuration"),
            tcp.max_connection_duration,
        );
        check_duration(issues, &p.field("idleTimeout"), tcp.idle_timeout);
        if let Some(ka) = &tcp.tcp_keepalive {
            check_duration(issues, &p.field("tcpKeepalive").field("time"), ka.time);
            check_duration(
                issues,
                &p.field("tcpKeepalive").field("interval"),
                ka.interval,
            );
        }
    }
    if let Some(http) = &cp.http {
        let p = path.field("http");
        non_negative(
            issues,
            &p.field("http1MaxPendingRequests"),
            http.http1_max_pending_requests,
        );
        non_negative(
            issues,
            &p.field("http2MaxRequests"),
            http.http2_max_requests,
        );
        non_negative(
            issues,
            &p.field("maxRequestsPerConnection"),
            http.max_requests_per_connection,
        );
        non_negative(issues, &p.field("maxRetries"), http.max_retries);
        non_negative(
            issues,
            &p.field("maxConcurrentStreams"),
            http.max_concurrent_streams,
        );
        check_duration(issues, &p.field("idleTimeout"), http.idle_timeout);
    }
}

fn non_negative(issues: &mut Issues, path: &FieldPath, value: Option<i32>) {
    if let Some(v) = value
        && v < 0
    {
        issues.error(path, format!("{v} must be non-negative"));
    }
}

fn check_outlier_detection(issues: &mut Issues, path: &FieldPath, od: &OutlierDetection) {
    non_negative(
        issues,
        &path.field("consecutiveErrors"),
        od.consecutive_errors,
    );
    check_duration(issues, &path.field("interval"), od.interval);
    check_duration(
        issues,
        &path.field("baseEjectionTime"),
        od.base_ejection_time,
    );
    for (field, value) in [
        ("maxEjectionPercent", od.max_ejection_percent),
        ("minHealthPercent", od.min_health_percent),
    ] {
        if let Some(v) = value
            && !(0..=100).contains(&v)
        {
            issues.error(
                &path.field(field),
                format!("{field} {v} must be in the range 0..100"),
            );
        }
    }
    if od.consecutive_local_origin_failures.is_some()
        && od.split_external_local_origin_errors != Some(true)
    {
        issues.error(
            &path.field("consecutiveLocalOriginFailures"),
            "consecutiveLocalOriginFailures requires splitExternalLocalOriginErrors: true",
        );
    }
}

pub(super) fn check_client_tls(issues: &mut Issues, path: &FieldPath, tls: &ClientTlsSettings) {
    let has_files = tls.client_certificate.is_some()
        || tls.private_key.is_some()
        || tls.ca_certificates.is_some();
    match tls.mode() {
        ClientTlsMode::Disable | ClientTlsMode::IstioMutual => {
            if has_files || tls.credential_name.is_some() {
                issues.warn(
                    path,
                    format!(
                        "client certificates, CA certificates and credentialName are ignored with mode {:?}",
                        tls.mode()
                    ),
                );
            }
        }
        ClientTlsMode::Mutual => {
            if tls.credential_name.is_none() {
                if tls.client_certificate.is_none() {
                    issues.error(
                        &path.field("clientCertificate"),
                        "client certificate required for mutual tls",
                    );
                }
                if tls.private_key.is_none() {
                    issues.error(
                        &path.field("privateKey"),
                        "private key required for mutual tls",
                    );
                }
            }
        }
        ClientTlsMode::Simple => {}
    }
    if tls.credential_name.is_some() && has_files {
        issues.error(
            path,
            "cannot specify both credentialName and certificate files",
        );
    }
}
