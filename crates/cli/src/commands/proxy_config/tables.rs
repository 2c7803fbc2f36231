//! istioctl's short tables: clusters, listeners, routes, endpoints.

#[allow(unused_imports)]
use super::*;

/// `outbound|9080|v1|reviews.default.svc.cluster.local` → SERVICE FQDN, PORT, SUBSET,
/// DIRECTION, TYPE, DESTINATION RULE; other names (BlackHoleCluster, ...) as istioctl shows them.
pub(super) fn cluster_table(items: &[Resource], config: Option<&IstioConfig>) -> Vec<Vec<String>> {
    let mut table = vec![row(&[
        "SERVICE FQDN",
        "PORT",
        "SUBSET",
        "DIRECTION",
        "TYPE",
        "DESTINATION RULE",
    ])];
    for r in items {
        let kind = first_at(
            &r.config,
            &[
                &["cluster_discovery_type", "Type"],
                &["type"],
                &["cluster_type", "name"],
            ],
        )
        .and_then(Value::as_str);
        let kind = match kind {
            Some("Eds") => "EDS",
            Some("Static") => "STATIC",
            Some("StrictDns") => "STRICT_DNS",
            Some("LogicalDns") => "LOGICAL_DNS",
            Some("OriginalDst") => "ORIGINAL_DST",
            Some(other) => other,
            None => "-",
        };
        let parts: Vec<&str> = r.name.split('|').collect();
        match parts.as_slice() {
            [direction, port, subset, fqdn] => {
                let (fqdn_cell, rule) = if fqdn.is_empty() {
                    ("", "-".to_string())
                } else {
                    (*fqdn, config.map_or("-".to_string(), |c| c.rule_for(fqdn)))
                };
                let subset = if subset.is_empty() { "-" } else { subset };
                table.push(row(&[fqdn_cell, port, subset, direction, kind, &rule]));
            }
            _ => table.push(row(&[&r.name, "-", "-", "-", kind, "-"])),
        }
    }
    table
}

/// ADDRESS, PORT, MATCH, DESTINATION per filter chain. DESTINATION comes from the network
/// filter: `Route: NAME` (HTTP connection manager with RDS) or `Cluster: NAME` (TCP proxy).
pub(super) fn listener_table(items: &[Resource]) -> Vec<Vec<String>> {
    let mut table = vec![row(&["ADDRESS", "PORT", "MATCH", "DESTINATION"])];
    for r in items {
        let (address, port) = socket_of(r.config.get("address"));
        let chains = r
            .config
            .get("filter_chains")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if chains.is_empty() {
            table.push(vec![
                address.clone(),
                port.clone(),
                "ALL".to_string(),
                "-".to_string(),
            ]);
        }
        for chain in &chains {
            let filters = chain
                .get("filters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let destination: Vec<String> = filters.iter().map(filter_destination).collect();
            table.push(vec![
                address.clone(),
                port.clone(),
                chain_match(chain.get("filter_chain_match")),
                if destination.is_empty() {
                    "-".to_string()
                } else {
                    destination.join("; ")
                },
            ]);
        }
    }
    table
}

/// istioctl's MATCH summary of a filter chain match: ALL, or its parts.
pub(super) fn chain_match(m: Option<&Value>) -> String {
    let Some(m) = m.filter(|m| m.is_object()) else {
        return "ALL".to_string();
    };
    let mut parts = Vec::new();
    if let Some(port) = uint(m.get("destination_port")) {
        parts.push(format!("Port: {port}"));
    }
    let ranges: Vec<String> = m
        .get("prefix_ranges")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| {
            format!(
                "{}/{}",
                str_at(r, &["address_prefix"]),
                uint(r.get("prefix_len")).map_or("32".to_string(), |n| n.to_string())
            )
        })
        .collect();
    if !ranges.is_empty() {
        parts.push(format!("Addr: {}", ranges.join(",")));
    }
    for (key, label) in [
        ("transport_protocol", "Trans"),
        ("server_names", "SNI"),
        ("application_protocols", "App"),
    ] {
        match m.get(key) {
            Some(Value::String(s)) if !s.is_empty() => parts.push(format!("{label}: {s}")),
            Some(Value::Array(list)) if !list.is_empty() => {
                let names: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
                parts.push(format!("{label}: {}", names.join(",")));
            }
            _ => {}
        }
    }
    if parts.is_empty() {
        "ALL".to_string()
    } else {
        parts.join("; ")
    }
}

/// Where a network filter sends traffic, from its typed_config: proto JSON in an admin dump,
/// encoded bytes in lateend's.
pub(super) fn filter_destination(filter: &Value) -> String {
    let name = str_at(filter, &["name"]);
    if let Some(config) = filter.get("typed_config") {
        if let Some(route) = at(config, &["rds", "route_config_name"]).and_then(Value::as_str) {
            return format!("Route: {route}");
        }
        if config.get("route_config").is_some() {
            return "Inline Route".to_string();
        }
        if let Some(cluster) = config.get("cluster").and_then(Value::as_str) {
            return format!("Cluster: {cluster}");
        }
        if config.get("weighted_clusters").is_some() {
            return "Weighted clusters".to_string();
        }
        return name.to_string();
    }
    let bytes: Vec<u8> = at(filter, &["config_type", "TypedConfig", "value"])
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_u64)
                .filter_map(|b| u8::try_from(b).ok())
                .collect()
        })
        .unwrap_or_default();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    if name.ends_with("http_connection_manager") {
        // HttpConnectionManager: rds = 3 { route_config_name = 2 }, route_config = 4 (inline).
        if let Some(route) = proto_field(&bytes, 3).and_then(|rds| proto_field(rds, 2)) {
            return format!("Route: {}", text(route));
        }
        if proto_field(&bytes, 4).is_some() {
            return "Inline Route".to_string();
        }
        return "HTTP".to_string();
    }
    if name.ends_with("tcp_proxy") {
        // TcpProxy: cluster = 2, weighted_clusters = 10.
        if let Some(cluster) = proto_field(&bytes, 2) {
            return format!("Cluster: {}", text(cluster));
        }
        if proto_field(&bytes, 10).is_some() {
            return "Weighted clusters".to_string();
        }
    }
    name.to_string()
}

/// The first length-delimited field `number` of an encoded protobuf message; `None` when the
/// bytes end early or hold no such field (malformed input just yields nothing).
pub(super) fn proto_field(mut bytes: &[u8], number: u64) -> Option<&[u8]> {
    pub(super) fn varint(bytes: &mut &[u8]) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = bytes.split_first()?;
            *bytes = rest;
            value |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }
    while !bytes.is_empty() {
        let key = varint(&mut bytes)?;
        let skip = match key & 7 {
            0 => {
                varint(&mut bytes)?;
                0
            }
            1 => 8,
            5 => 4,
            2 => {
                let len = usize::try_from(varint(&mut bytes)?).ok()?;
                let field = bytes.get(..len)?;
                if key >> 3 == number {
                    return Some(field);
                }
                len
            }
            _ => return None,
        };
        bytes = bytes.get(skip..)?;
    }
    None
}

/// NAME, VHOST NAME, DOMAINS, MATCH, VIRTUAL SERVICE: one line per route like istioctl.
pub(super) fn route_table(items: &[Resource], config: Option<&IstioConfig>) -> Vec<Vec<String>> {
    let mut table = vec![row(&[
        "NAME",
        "VHOST NAME",
        "DOMAINS",
        "MATCH",
        "VIRTUAL SERVICE",
    ])];
    for r in items {
        for vhost in r
            .config
            .get("virtual_hosts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let domains: Vec<&str> = vhost
                .get("domains")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            // istioctl shows the first domain; the rest are the same host's short forms.
            let domain = domains.first().copied().unwrap_or("-");
            let shown = if domains.len() > 1 {
                format!("{domain} +{}", domains.len() - 1)
            } else {
                domain.to_string()
            };
            let vs = if domain == "*" {
                "-".to_string()
            } else {
                config.map_or("-".to_string(), |c| c.service_for(domain))
            };
            let routes = vhost
                .get("routes")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let vhost_name = str_at(vhost, &["name"]);
            if routes.is_empty() {
                table.push(vec![
                    r.name.clone(),
                    vhost_name.to_string(),
                    shown.clone(),
                    "-".to_string(),
                    vs.clone(),
                ]);
            }
            for route in &routes {
                let m = route.get("match");
                table.push(vec![
                    r.name.clone(),
                    vhost_name.to_string(),
                    shown.clone(),
                    route_match(m),
                    vs.clone(),
                ]);
            }
        }
    }
    table
}

/// istioctl's MATCH: `/*` for a prefix match of `/`, `/p*` for other prefixes, the exact path,
/// or the regex.
pub(super) fn route_match(m: Option<&Value>) -> String {
    let Some(m) = m else {
        return "-".to_string();
    };
    // The Debug tree keeps the one-of (`path_specifier: {Prefix: ..}`), proto JSON inlines it.
    let spec = m.get("path_specifier").unwrap_or(m);
    let get = |debug: &str, json: &str| {
        spec.get(debug)
            .or_else(|| spec.get(json))
            .and_then(Value::as_str)
    };
    if let Some(prefix) = get("Prefix", "prefix") {
        return if prefix == "/" {
            "/*".to_string()
        } else {
            format!("{prefix}*")
        };
    }
    if let Some(path) = get("Path", "path") {
        return path.to_string();
    }
    if let Some(regex) =
        first_at(spec, &[&["SafeRegex", "regex"], &["safe_regex", "regex"]]).and_then(Value::as_str)
    {
        return regex.to_string();
    }
    if let Some(prefix) = get("PathSeparatedPrefix", "path_separated_prefix") {
        return format!("{prefix}/*");
    }
    "-".to_string()
}

/// ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER. Config dumps hold the endpoints assigned, not the
/// proxy's runtime view (Envoy's `/clusters`), so OUTLIER CHECK (ejections) is `-`; an
/// endpoint with no or unknown health status is HEALTHY, as Envoy treats it.
pub(super) fn endpoint_table(items: &[Resource]) -> Vec<Vec<String>> {
    let mut table = vec![row(&["ENDPOINT", "STATUS", "OUTLIER CHECK", "CLUSTER"])];
    for r in items {
        let cluster = match str_at(&r.config, &["cluster_name"]) {
            "" => r.name.as_str(),
            name => name,
        };
        for locality in r
            .config
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for lb in locality
                .get("lb_endpoints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let address = first_at(
                    lb,
                    &[
                        &["host_identifier", "Endpoint", "address"],
                        &["endpoint", "address"],
                    ],
                );
                let endpoint = match socket_of(address) {
                    (a, p) if a == "-" => p,
                    (a, p) => format!("{a}:{p}"),
                };
                let status = match str_at(lb, &["health_status"]) {
                    "" | "Unknown" | "Healthy" | "UNKNOWN" => "HEALTHY".to_string(),
                    other => other.to_uppercase(),
                };
                table.push(vec![endpoint, status, "-".to_string(), cluster.to_string()]);
            }
        }
    }
    table
}
