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
                format!("duplicate subset names: {}", subset.name),
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
    // A rule that selects workloads only makes sense in its own namespace.
    if dr.workload_selector.is_some() && dr.export_to.iter().any(|e| e != ".") {
        issues.error(
            &spec.field("exportTo"),
            "destination rule with workload selector cannot have exportTo beyond current namespace",
        );
    }
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
    if tp.tunnel.is_some() && tp.proxy_protocol.is_some() {
        issues.error(path, "tunnel and proxyProtocol must not be set together");
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
            None => issues.error(&p.field("port"), "portTrafficPolicy must have valid port"),
            Some(n) => {
                check_port_number(issues, &p.field("port").field("number"), n);
                // Istio accepts repeats; only the first entry for a port is used.
                if !ports.insert(n) {
                    issues.warn(
                        &p.field("port").field("number"),
                        format!("port {n} already has settings earlier in portLevelSettings; these are ignored"),
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
                "tunnel protocol must be \"CONNECT\" or \"POST\"",
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
        let keys = [
            ch.http_header_name.is_some(),
            ch.http_cookie.is_some(),
            ch.use_source_ip.is_some(),
            ch.http_query_parameter_name.is_some(),
        ]
        .iter()
        .filter(|k| **k)
        .count();
        match keys {
            // Protobuf's oneof lets Istio accept this; nothing is hashed, so say so.
            0 => issues.warn(&p, "no hash key (httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName) is set"),
            1 => {}
            _ => issues.error(
                &p,
                "only one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName may be set",
            ),
        }
        if let Some(cookie) = &ch.http_cookie {
            if cookie.name.is_empty() {
                issues.error(
                    &p.field("httpCookie").field("name"),
                    "name required for HttpCookie",
                );
            }
            // A zero TTL is meaningful (session cookie), so only non-zero TTLs are checked.
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
        if ch.ring_hash.is_some() && ch.maglev.is_some() {
            issues.error(&p, "only one of ringHash or maglev may be set");
        }
        if ch.minimum_ring_size.is_some() {
            issues.warn(
                &p.field("minimumRingSize"),
                "consistent hash minimumRingSize is deprecated, use ringHash.minimumRingSize instead",
            );
            if ch.ring_hash.is_some() || ch.maglev.is_some() {
                issues.error(
                    &p,
                    "only one of MinimumRingSize or Maglev/Ringhash can be specified",
                );
            }
        }
        if let Some(maglev) = &ch.maglev {
            let tp = p.field("maglev").field("tableSize");
            match maglev.table_size {
                None | Some(0) => issues.error(&tp, "tableSize must be set for maglev"),
                Some(size) if size >= 5_000_011 => {
                    issues.error(&tp, "tableSize must be less than 5000011 for maglev")
                }
                Some(size) if !is_prime(size) => {
                    issues.error(&tp, "tableSize must be a prime number for maglev")
                }
                Some(_) => {}
            }
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
    if lb.warmup_duration_secs.is_some() {
        issues.not_acted_on(&path.field("warmupDurationSecs"));
    }
    if let Some(w) = &lb.warmup {
        check_warmup(issues, &path.field("warmup"), w);
    }
}

/// Istio's bounds: a duration is required, `minimumPercent` in 0..=100, `aggression` >= 0.
fn check_warmup(issues: &mut Issues, path: &FieldPath, w: &crate::networking::Warmup) {
    match w.duration {
        None => issues.error(&path.field("duration"), "warmup duration is required"),
        Some(_) => check_duration(issues, &path.field("duration"), w.duration),
    }
    if let Some(p) = w.minimum_percent
        && !(0.0..=100.0).contains(&p)
    {
        issues.error(
            &path.field("minimumPercent"),
            format!("minimumPercent {p} must be between 0 and 100"),
        );
    }
    if let Some(a) = w.aggression
        && !(a >= 0.0 && a.is_finite())
    {
        issues.error(
            &path.field("aggression"),
            format!("aggression {a} must be greater than or equal to 0"),
        );
    }
    issues.not_acted_on(path);
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
        for (loc, w) in &d.to {
            if !(1..=100).contains(w) {
                issues.error(
                    &p.field("to").field(loc),
                    "locality weight must be in range [1, 100]",
                );
            }
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
        non_negative(
            issues,
            &p.field("maxConnections"),
            tcp.max_connections,
            "max connections",
        );
        check_duration(issues, &p.field("connectTimeout"), tcp.connect_timeout);
        check_duration(
            issues,
            &p.field("maxConnectionDuration"),
            tcp.max_connection_duration,
        );
        // 0s disables the TCP idle timeout.
        if tcp.idle_timeout.is_some_and(|t| !t.is_zero()) {
            check_duration(issues, &p.field("idleTimeout"), tcp.idle_timeout);
        }
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
        for (field, value, what) in [
            (
                "http1MaxPendingRequests",
                http.http1_max_pending_requests,
                "http1 max pending requests",
            ),
            (
                "http2MaxRequests",
                http.http2_max_requests,
                "http2 max requests",
            ),
            (
                "maxRequestsPerConnection",
                http.max_requests_per_connection,
                "max requests per connection",
            ),
            ("maxRetries", http.max_retries, "max retries"),
            (
                "maxConcurrentStreams",
                http.max_concurrent_streams,
                "max concurrent streams",
            ),
        ] {
            non_negative(issues, &p.field(field), value, what);
        }
        check_duration(issues, &p.field("idleTimeout"), http.idle_timeout);
        if let Some(ka) = &http.http2_keep_alive {
            let kp = p.field("http2KeepAlive");
            check_duration(issues, &kp.field("interval"), ka.interval);
            check_duration(issues, &kp.field("timeout"), ka.timeout);
            issues.not_acted_on(&kp);
        }
        if http.h2_upgrade_policy == Some(crate::networking::H2UpgradePolicy::Upgrade)
            && http.use_client_protocol == Some(true)
        {
            issues.error(
                &p,
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
    }
}

fn non_negative(issues: &mut Issues, path: &FieldPath, value: Option<i32>, what: &str) {
    if value.is_some_and(|v| v < 0) {
        issues.error(path, format!("{what} must be non-negative"));
    }
}

fn check_outlier_detection(issues: &mut Issues, path: &FieldPath, od: &OutlierDetection) {
    if od.consecutive_errors.is_some_and(|n| n != 0) {
        issues.warn(
            &path.field("consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
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
        if let Some(v) = value.filter(|v| !(0..=100).contains(v)) {
            issues.error(
                &path.field(field),
                format!("percentage {v} is not in range 0..100"),
            );
        }
    }
    if od.consecutive_local_origin_failures.is_some_and(|n| n > 0)
        && od.split_external_local_origin_errors != Some(true)
    {
        issues.error(
            &path.field("consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
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
                        "client certificates, CA certificates and credentialName are ignored with mode {}",
                        super::wire_name(&tls.mode())
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
    // Istio: skipping verification contradicts naming what to verify against.
    if tls.insecure_skip_verify == Some(true) {
        let sans = !tls.subject_alt_names.is_empty();
        match tls.mode() {
            ClientTlsMode::Simple
                if tls.ca_certificates.is_some() || tls.credential_name.is_some() || sans =>
            {
                issues.error(
                    &path.field("insecureSkipVerify"),
                    "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true",
                );
            }
            ClientTlsMode::Mutual if tls.ca_certificates.is_some() || sans => {
                issues.error(
                    &path.field("insecureSkipVerify"),
                    "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true",
                );
            }
            _ => {}
        }
    }
}
