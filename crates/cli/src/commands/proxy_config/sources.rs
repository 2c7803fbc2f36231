//! Where the resources come from: lateend's `/debug/config_dump`, or a proxy's own admin
//! `/config_dump` (Envoy's proto JSON, or lateen-proxy's compiled model in Envoy's shapes).

#[allow(unused_imports)]
use super::*;

pub(super) type Resources = BTreeMap<&'static str, Vec<Resource>>;

/// lateend's dump: `{"resources": {"CDS": [{name, version, config: "<Debug text>"}]}}`.
pub(super) fn lateend_resources(dump: &Value) -> Resources {
    SECTIONS
        .iter()
        .map(|(ty, _)| {
            let items = dump
                .pointer(&format!("/resources/{ty}"))
                .and_then(Value::as_array)
                .map(|items| items.iter().map(Resource::from_dump).collect())
                .unwrap_or_default();
            (*ty, items)
        })
        .collect()
}

/// An admin `/config_dump`: Envoy's (`configs`, one per `*ConfigDump` type) or lateen-proxy's
/// (`config`, its own compiled model, turned into the Envoy JSON shapes the tables read).
pub(super) fn admin_resources(dump: &Value) -> anyhow::Result<Resources> {
    if let Some(configs) = dump.get("configs").and_then(Value::as_array) {
        return Ok(envoy_resources(configs));
    }
    if let Some(config) = dump.get("config").filter(|c| c.get("clusters").is_some()) {
        return Ok(lateen_proxy_resources(config));
    }
    anyhow::bail!(
        "neither Envoy's nor lateen-proxy's config dump (no `configs` or `config.clusters`)"
    )
}

/// The sections of an admin dump that `chosen` asks for: Envoy's `configs` of those types,
/// lateen-proxy's `clusters` (which hold the endpoints), `listeners`, `route_configs`.
pub(super) fn admin_json(dump: &Value, chosen: &dyn Fn(Section) -> bool) -> Value {
    if let Some(configs) = dump.get("configs").and_then(Value::as_array) {
        let kept: Vec<Value> = configs
            .iter()
            .filter(|c| {
                let ty = c.get("@type").and_then(Value::as_str).unwrap_or("");
                [
                    ("ClustersConfigDump", Section::Cluster),
                    ("ListenersConfigDump", Section::Listener),
                    ("RoutesConfigDump", Section::Route),
                    ("EndpointsConfigDump", Section::Endpoint),
                ]
                .iter()
                .any(|(name, section)| ty.rsplit('.').next() == Some(*name) && chosen(*section))
            })
            .cloned()
            .collect();
        return json!({"configs": kept});
    }
    let mut kept = Map::new();
    for (key, section) in [
        ("clusters", Section::Cluster),
        ("clusters", Section::Endpoint),
        ("listeners", Section::Listener),
        ("route_configs", Section::Route),
    ] {
        if let Some(v) = dump
            .pointer(&format!("/config/{key}"))
            .filter(|_| chosen(section))
        {
            kept.insert(key.to_string(), v.clone());
        }
    }
    Value::Object(kept)
}

/// Envoy's dump sections: where each kind of resource sits, static and dynamic.
pub(super) fn envoy_resources(configs: &[Value]) -> Resources {
    let places: [(&str, &str, &[&[&str]]); 4] = [
        (
            "ClustersConfigDump",
            "CDS",
            &[
                &["static_clusters", "cluster"],
                &["dynamic_active_clusters", "cluster"],
            ],
        ),
        (
            "ListenersConfigDump",
            "LDS",
            &[
                &["static_listeners", "listener"],
                &["dynamic_listeners", "active_state", "listener"],
            ],
        ),
        (
            "RoutesConfigDump",
            "RDS",
            &[
                &["static_route_configs", "route_config"],
                &["dynamic_route_configs", "route_config"],
            ],
        ),
        (
            "EndpointsConfigDump",
            "EDS",
            &[
                &["static_endpoint_configs", "endpoint_config"],
                &["dynamic_endpoint_configs", "endpoint_config"],
            ],
        ),
    ];
    let mut out = Resources::new();
    for section in configs {
        let ty = section.get("@type").and_then(Value::as_str).unwrap_or("");
        for (suffix, short, paths) in places {
            // Exact message name: ScopedRoutesConfigDump also ends in RoutesConfigDump.
            if ty.rsplit('.').next() != Some(suffix) {
                continue;
            }
            let items = out.entry(short).or_default();
            for path in paths {
                for entry in section
                    .get(path[0])
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    // A listener still warming or rejected has no active_state: skipped.
                    let Some(config) = at(entry, &path[1..]) else {
                        continue;
                    };
                    let name = str_at(config, &["name"]);
                    let name = if name.is_empty() {
                        str_at(config, &["cluster_name"])
                    } else {
                        name
                    };
                    let version = str_at(entry, &["version_info"]);
                    items.push(Resource {
                        name: name.to_string(),
                        version: version.to_string(),
                        config: config.clone(),
                    });
                }
            }
        }
    }
    out
}

/// lateen-proxy's compiled model (`clusters` with their endpoints, `listeners` naming a route
/// config or TCP cluster, `route_configs`) in Envoy's JSON shapes.
pub(super) fn lateen_proxy_resources(config: &Value) -> Resources {
    let list = |key: &str| {
        config
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let resource = |name: &str, config: Value| Resource {
        name: name.to_string(),
        version: String::new(),
        config,
    };
    let mut out = Resources::new();
    for c in list("clusters") {
        let name = str_at(&c, &["name"]);
        let mut cluster = c.clone();
        if c.get("original_dst").and_then(Value::as_bool) == Some(true) {
            cluster["type"] = json!("ORIGINAL_DST");
        }
        out.entry("CDS").or_default().push(resource(name, cluster));
        let endpoints: Vec<Value> = c
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|e| json!({"endpoint": {"address": socket_json(str_at(e, &["address"]))}}))
            .collect();
        if !endpoints.is_empty() {
            let assignment =
                json!({"cluster_name": name, "endpoints": [{"lb_endpoints": endpoints}]});
            out.entry("EDS")
                .or_default()
                .push(resource(name, assignment));
        }
    }
    for l in list("listeners") {
        let typed_config = match (l.get("route_config"), l.get("tcp_cluster")) {
            (Some(route), _) => json!({"rds": {"route_config_name": route}}),
            (None, Some(cluster)) => json!({"cluster": cluster}),
            (None, None) => json!({}),
        };
        let filter = json!({"name": str_at(&l, &["protocol"]), "typed_config": typed_config});
        let listener = json!({
            "name": str_at(&l, &["name"]),
            "address": socket_json(str_at(&l, &["address"])),
            "filter_chains": [{"filters": [filter]}],
        });
        out.entry("LDS")
            .or_default()
            .push(resource(str_at(&l, &["name"]), listener));
    }
    for r in list("route_configs") {
        let mut route_config = r.clone();
        for vhost in route_config
            .get_mut("virtual_hosts")
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            for route in vhost
                .get_mut("routes")
                .and_then(Value::as_array_mut)
                .into_iter()
                .flatten()
            {
                // lateen-proxy: match.path.{prefix|exact|regex}; Envoy: match.{prefix|path|safe_regex}.
                let path = route.pointer("/match/path").cloned().unwrap_or(Value::Null);
                let envoy_match = if let Some(p) = path.get("prefix") {
                    json!({"prefix": p})
                } else if let Some(p) = path.get("exact") {
                    json!({"path": p})
                } else if let Some(p) = path.get("regex") {
                    json!({"safe_regex": {"regex": p}})
                } else {
                    json!({"prefix": "/"})
                };
                route["match"] = envoy_match;
            }
        }
        out.entry("RDS")
            .or_default()
            .push(resource(str_at(&r, &["name"]), route_config));
    }
    out
}

/// `{"socket_address": {address, port_value}}` from `ADDR:PORT` or `[V6]:PORT`.
pub(super) fn socket_json(text: &str) -> Value {
    let (host, port) = text.rsplit_once(':').unwrap_or((text, ""));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match port.parse::<u64>() {
        Ok(port) => json!({"socket_address": {"address": host, "port_value": port}}),
        Err(_) => json!({"socket_address": {"address": host}}),
    }
}

/// Node ids hold `~`, `.` and sometimes `:` (IPv6); escape everything but unreserved characters.
pub(super) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
