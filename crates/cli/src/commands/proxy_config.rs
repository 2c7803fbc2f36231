//! `lateen proxy-config cluster|listener|route|endpoint|all PROXY`: the xDS resources lateend
//! serves one proxy (Istio: `istioctl proxy-config`), from lateend's
//! `/debug/config_dump?proxyID=ID`, as istioctl's short tables or as JSON (`-o json`).
//!
//! lateend's dump gives each resource's `config` as the Rust `Debug` text of the Envoy proto
//! (not proto JSON), so this module reads that text back into a JSON tree (`parse_debug`);
//! filters' `typed_config` stay encoded protobuf, of which only the few fields the listener
//! table needs are decoded (`proto_field`). DESTINATION RULE and VIRTUAL SERVICE are not in
//! the resources (lateend sets no Istio config metadata), so they are looked up by host in
//! `/debug/configz`.
//!
//! `--admin HOST:PORT` reads a proxy's own `/config_dump` instead (what it accepted rather than
//! what it was sent): Envoy's (`configs`, proto JSON) or lateen-proxy's (its compiled model,
//! turned into Envoy's JSON shapes); the tables read either shape.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::proxy_status::{
    DEFAULT_DEBUG_ADDRESS, fetch_syncz, find_proxy, http_get, quiet_broken_pipe, write_columns,
};

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Section {
    Cluster,
    Listener,
    Route,
    Endpoint,
    All,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    Short,
    Json,
}

#[derive(clap::Args)]
pub struct Args {
    /// What to print.
    #[arg(value_enum)]
    section: Section,
    /// The proxy: its node id, or `pod.namespace` (resolved through /debug/syncz). Not needed
    /// with --admin.
    #[arg(required_unless_present = "admin")]
    proxy: Option<String>,
    /// lateend's debug address (HOST:PORT).
    #[arg(long, env = "LATEEND_DEBUG_ADDRESS", default_value = DEFAULT_DEBUG_ADDRESS)]
    lateend: String,
    /// Read the proxy's own admin `/config_dump` (lateen-proxy or Envoy, HOST:15000) instead
    /// of what lateend serves it: what the proxy accepted, not what it was sent.
    #[arg(long, value_name = "HOST:PORT")]
    admin: Option<String>,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "short")]
    output: Output,
    /// Cluster DNS suffix, to expand the short hosts of DestinationRules and VirtualServices.
    #[arg(long, default_value = "cluster.local")]
    domain: String,
}

/// xDS short names and the section printing them, in istioctl's `all` order.
const SECTIONS: [(&str, Section); 4] = [
    ("CDS", Section::Cluster),
    ("LDS", Section::Listener),
    ("RDS", Section::Route),
    ("EDS", Section::Endpoint),
];

pub fn run(args: Args) -> anyhow::Result<()> {
    quiet_broken_pipe(print(args))
}

fn print(args: Args) -> anyhow::Result<()> {
    let chosen = |section: Section| args.section == section || args.section == Section::All;
    let (source, resources) = match &args.admin {
        Some(admin) => {
            let body = http_get(admin, "/config_dump?include_eds")?;
            let dump: Value = serde_json::from_str(&body).with_context(|| {
                format!("the admin server at {admin} sent a config dump that is not JSON")
            })?;
            if args.output == Output::Json {
                // The proxy's own JSON, only the sections asked for (like istioctl -o json).
                let value = admin_json(&dump, &chosen);
                writeln!(
                    std::io::stdout().lock(),
                    "{}",
                    serde_json::to_string_pretty(&value)?
                )?;
                return Ok(());
            }
            (
                json!({"admin": admin}),
                admin_resources(&dump)
                    .with_context(|| format!("reading the config dump of {admin}"))?,
            )
        }
        None => {
            let name = args
                .proxy
                .as_deref()
                .context("name a proxy, or give --admin")?;
            let node_id = resolve_node_id(&args.lateend, name)?;
            let path = format!("/debug/config_dump?proxyID={}", percent_encode(&node_id));
            let body = http_get(&args.lateend, &path)?;
            let dump: Value = serde_json::from_str(&body).with_context(|| {
                format!(
                    "lateend at {} sent a config dump that is not JSON",
                    args.lateend
                )
            })?;
            (json!({"proxyID": node_id}), lateend_resources(&dump))
        }
    };
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        let mut object = Map::new();
        for (ty, section) in SECTIONS {
            if chosen(section) {
                let items = resources
                    .get(ty)
                    .into_iter()
                    .flatten()
                    .map(Resource::to_json)
                    .collect();
                object.insert(ty.to_string(), Value::Array(items));
            }
        }
        let mut value = source;
        value["resources"] = Value::Object(object);
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let config = if chosen(Section::Cluster) || chosen(Section::Route) {
        match IstioConfig::fetch(&args.lateend, &args.domain) {
            Ok(config) => Some(config),
            // An admin dump is readable without lateend; only two columns need it.
            Err(e) if args.admin.is_some() => {
                eprintln!(
                    "note: DESTINATION RULE and VIRTUAL SERVICE need lateend's /debug/configz: {e:#}"
                );
                None
            }
            Err(e) => return Err(e),
        }
    } else {
        None
    };
    let mut first = true;
    for (ty, section) in SECTIONS {
        if !chosen(section) {
            continue;
        }
        if !first {
            writeln!(out)?;
        }
        first = false;
        let items: &[Resource] = resources.get(ty).map_or(&[], Vec::as_slice);
        let table = match section {
            Section::Cluster => cluster_table(items, config.as_ref()),
            Section::Listener => listener_table(items),
            Section::Route => route_table(items, config.as_ref()),
            _ => endpoint_table(items),
        };
        write_columns(&mut out, &table)?;
    }
    out.flush()?;
    Ok(())
}

/// A node id as given, or the id of the connected proxy named `pod.namespace`.
fn resolve_node_id(lateend: &str, name: &str) -> anyhow::Result<String> {
    if name.contains('~') {
        return Ok(name.to_string());
    }
    let rows = fetch_syncz(lateend)?;
    let row = find_proxy(&rows, name)?;
    Ok(row
        .get("proxy")
        .and_then(Value::as_str)
        .context("lateend's /debug/syncz row has no proxy id")?
        .to_string())
}

type Resources = BTreeMap<&'static str, Vec<Resource>>;

/// lateend's dump: `{"resources": {"CDS": [{name, version, config: "<Debug text>"}]}}`.
fn lateend_resources(dump: &Value) -> Resources {
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
fn admin_resources(dump: &Value) -> anyhow::Result<Resources> {
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
fn admin_json(dump: &Value, chosen: &dyn Fn(Section) -> bool) -> Value {
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
fn envoy_resources(configs: &[Value]) -> Resources {
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
fn lateen_proxy_resources(config: &Value) -> Resources {
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
fn socket_json(text: &str) -> Value {
    let (host, port) = text.rsplit_once(':').unwrap_or((text, ""));
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match port.parse::<u64>() {
        Ok(port) => json!({"socket_address": {"address": host, "port_value": port}}),
        Err(_) => json!({"socket_address": {"address": host}}),
    }
}

/// Node ids hold `~`, `.` and sometimes `:` (IPv6); escape everything but unreserved characters.
fn percent_encode(s: &str) -> String {
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

/// One resource of the dump, its `config` read back into a tree.
struct Resource {
    name: String,
    version: String,
    config: Value,
}

impl Resource {
    fn from_dump(item: &Value) -> Self {
        let s = |k: &str| {
            item.get(k)
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string()
        };
        let config = match item.get("config") {
            Some(Value::String(text)) => {
                parse_debug(text).unwrap_or_else(|e| json!({"unparsed": text, "error": e}))
            }
            Some(other) => other.clone(),
            None => Value::Null,
        };
        Self {
            name: s("name"),
            version: s("version"),
            config,
        }
    }

    fn to_json(&self) -> Value {
        json!({"name": self.name, "version": self.version, "config": self.config})
    }
}

/// The DestinationRules and VirtualServices lateend accepted, by resolved host.
struct IstioConfig {
    rules: Vec<(String, String)>,
    services: Vec<(String, String)>,
}

impl IstioConfig {
    fn fetch(addr: &str, domain: &str) -> anyhow::Result<Self> {
        let body = http_get(addr, "/debug/configz")?;
        let value: Value = serde_json::from_str(&body)
            .with_context(|| format!("lateend at {addr} sent /debug/configz that is not JSON"))?;
        let mut config = Self {
            rules: Vec::new(),
            services: Vec::new(),
        };
        for r in value
            .get("resources")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("");
            let (ns, label) = (s("namespace"), format!("{}.{}", s("name"), s("namespace")));
            let spec = r.get("spec");
            match s("kind") {
                "DestinationRule" => {
                    if let Some(host) = spec.and_then(|sp| sp.get("host")).and_then(Value::as_str) {
                        config.rules.push((resolve_host(host, ns, domain), label));
                    }
                }
                "VirtualService" => {
                    let hosts = spec
                        .and_then(|sp| sp.get("hosts"))
                        .and_then(Value::as_array);
                    for host in hosts.into_iter().flatten().filter_map(Value::as_str) {
                        config
                            .services
                            .push((resolve_host(host, ns, domain), label.clone()));
                    }
                }
                _ => {}
            }
        }
        Ok(config)
    }

    /// istioctl prints `name.namespace` of the DestinationRule that applies, `-` without one.
    fn rule_for(&self, fqdn: &str) -> String {
        best_match(&self.rules, fqdn)
    }

    fn service_for(&self, domain: &str) -> String {
        best_match(&self.services, domain)
    }
}

/// An exact host beats a wildcard; among wildcards the longest suffix wins (Istio's rule).
fn best_match(entries: &[(String, String)], host: &str) -> String {
    let host = host.split(':').next().unwrap_or(host);
    if let Some((_, label)) = entries.iter().find(|(h, _)| h == host) {
        return label.clone();
    }
    entries
        .iter()
        .filter(|(h, _)| {
            h.strip_prefix('*')
                .is_some_and(|suffix| host.ends_with(suffix))
        })
        .max_by_key(|(h, _)| h.len())
        .map_or("-".to_string(), |(_, label)| label.clone())
}

/// Istio's short-name rule: a host without a dot is a service of the resource's namespace.
fn resolve_host(host: &str, namespace: &str, domain: &str) -> String {
    if host.contains('.') || host == "*" {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.{domain}")
    }
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_string()).collect()
}

/// The value at a path of struct fields and one-of variants (`Some` is already gone).
fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The first of several paths that exists: the Debug tree of lateend's dump and Envoy's proto
/// JSON place one-ofs differently (`{"Variant": v}` against an inline field).
fn first_at<'a>(v: &'a Value, paths: &[&[&str]]) -> Option<&'a Value> {
    paths.iter().find_map(|p| at(v, p))
}

/// A wrapped integer: a plain number in proto JSON, `{value: n}` in the Debug tree.
fn uint(v: Option<&Value>) -> Option<u64> {
    v.and_then(|v| {
        v.as_u64()
            .or_else(|| v.get("value").and_then(Value::as_u64))
    })
}

/// `ADDRESS` and `PORT` of an `Address` message, in either shape.
fn socket_of(address: Option<&Value>) -> (String, String) {
    let socket =
        address.and_then(|a| first_at(a, &[&["address", "SocketAddress"], &["socket_address"]]));
    let Some(socket) = socket else {
        return ("-".to_string(), "-".to_string());
    };
    let port = uint(first_at(
        socket,
        &[&["port_specifier", "PortValue"], &["port_value"]],
    ))
    .map_or("-".to_string(), |p| p.to_string());
    (str_at(socket, &["address"]).to_string(), port)
}

/// `outbound|9080|v1|reviews.default.svc.cluster.local` → SERVICE FQDN, PORT, SUBSET,
/// DIRECTION, TYPE, DESTINATION RULE; other names (BlackHoleCluster, ...) as istioctl shows them.
fn cluster_table(items: &[Resource], config: Option<&IstioConfig>) -> Vec<Vec<String>> {
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
fn listener_table(items: &[Resource]) -> Vec<Vec<String>> {
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
fn chain_match(m: Option<&Value>) -> String {
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
fn filter_destination(filter: &Value) -> String {
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
fn proto_field(mut bytes: &[u8], number: u64) -> Option<&[u8]> {
    fn varint(bytes: &mut &[u8]) -> Option<u64> {
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
fn route_table(items: &[Resource], config: Option<&IstioConfig>) -> Vec<Vec<String>> {
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
fn route_match(m: Option<&Value>) -> String {
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
fn endpoint_table(items: &[Resource]) -> Vec<Vec<String>> {
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

/// Reads Rust `Debug` output of prost messages back into JSON: `Name { f: v, .. }` → object,
/// `Some(v)` → v, `None` → null, `Variant(v)` → `{"Variant": v}`, `[..]` → array, `{k: v}` →
/// object, plain identifiers (enum values) → strings. Raw field names lose their `r#`.
pub(crate) fn parse_debug(text: &str) -> Result<Value, String> {
    let mut p = DebugParser {
        s: text.as_bytes(),
        i: 0,
    };
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(format!("trailing text at byte {}", p.i));
    }
    Ok(v)
}

struct DebugParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl DebugParser<'_> {
    fn ws(&mut self) {
        while self.s.get(self.i).is_some_and(u8::is_ascii_whitespace) {
            self.i += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.i).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.i += 1;
            Ok(())
        } else {
            Err(format!("expected {:?} at byte {}", c as char, self.i))
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        match self.peek() {
            Some(b'"') => self.string().map(Value::String),
            Some(b'[') => {
                self.i += 1;
                let items = self.list(b']')?;
                Ok(Value::Array(items))
            }
            Some(b'{') => {
                self.i += 1;
                self.fields(true)
            }
            Some(c) if c == b'-' || c.is_ascii_digit() => Ok(self.number()),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.named(),
            Some(c) => Err(format!("unexpected {:?} at byte {}", c as char, self.i)),
            None => Err("unexpected end".to_string()),
        }
    }

    fn ident(&mut self) -> String {
        self.ws();
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_' || *c == b'#')
        {
            self.i += 1;
        }
        let word = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        word.strip_prefix("r#").map_or(word.clone(), str::to_string)
    }

    fn named(&mut self) -> Result<Value, String> {
        let name = self.ident();
        match self.s.get(self.i) {
            Some(b'(') => {
                self.i += 1;
                let mut items = self.list(b')')?;
                let inner = if items.len() == 1 {
                    items.remove(0)
                } else {
                    Value::Array(items)
                };
                Ok(if name == "Some" {
                    inner
                } else {
                    json!({ name: inner })
                })
            }
            _ if self.peek() == Some(b'{') => {
                self.i += 1;
                self.fields(false)
            }
            _ => Ok(match name.as_str() {
                "None" => Value::Null,
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => Value::String(name),
            }),
        }
    }

    fn list(&mut self, close: u8) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.i += 1;
                return Ok(items);
            }
            items.push(self.value()?);
            if self.peek() == Some(b',') {
                self.i += 1;
            }
        }
    }

    /// Struct fields (`name: value`) or, for a map, `key: value` with any key value.
    fn fields(&mut self, map: bool) -> Result<Value, String> {
        let mut object = Map::new();
        loop {
            if self.peek() == Some(b'}') {
                self.i += 1;
                return Ok(Value::Object(object));
            }
            let key = if map {
                match self.value()? {
                    Value::String(s) => s,
                    other => other.to_string(),
                }
            } else {
                self.ident()
            };
            if key.is_empty() {
                return Err(format!("expected a field name at byte {}", self.i));
            }
            self.expect(b':')?;
            let v = self.value()?;
            object.insert(key, v);
            if self.peek() == Some(b',') {
                self.i += 1;
            }
        }
    }

    fn number(&mut self) -> Value {
        let start = self.i;
        while self
            .s
            .get(self.i)
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'+' | b'.' | b'e' | b'E'))
        {
            self.i += 1;
        }
        let text = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if let Ok(n) = text.parse::<i64>() {
            return json!(n);
        }
        if let Ok(n) = text.parse::<u64>() {
            return json!(n);
        }
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::String(text), Value::Number)
    }

    /// A Debug-escaped string: `\"`, `\\`, `\n`, `\r`, `\t`, `\0`, `\'`, `\u{..}`.
    fn string(&mut self) -> Result<String, String> {
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let Some(&c) = self.s.get(self.i) else {
                return Err("unterminated string".to_string());
            };
            self.i += 1;
            match c {
                b'"' => return Ok(String::from_utf8_lossy(&out).into_owned()),
                b'\\' => {
                    let Some(&e) = self.s.get(self.i) else {
                        return Err("unterminated escape".to_string());
                    };
                    self.i += 1;
                    match e {
                        b'n' => out.push(b'\n'),
                        b'r' => out.push(b'\r'),
                        b't' => out.push(b'\t'),
                        b'0' => out.push(0),
                        b'u' => {
                            let close = self.s[self.i..]
                                .iter()
                                .position(|&b| b == b'}')
                                .ok_or("bad \\u escape")?;
                            let hex = String::from_utf8_lossy(&self.s[self.i + 1..self.i + close])
                                .into_owned();
                            self.i += close + 1;
                            let ch = u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .unwrap_or('\u{fffd}');
                            out.extend_from_slice(ch.to_string().as_bytes());
                        }
                        other => out.push(other),
                    }
                }
                other => out.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_prost_debug_text() {
        let v = parse_debug(
            r#"Cluster { name: "outbound|80||a.b", r#type: None, lb: RoundRobin, t: Some(Type(Eds)), m: {"k": [1, 2]}, d: Some(Duration { seconds: 10, nanos: 0 }), s: "q\"\u{e9}", f: -1.5, e: Empty, b: false }"#,
        )
        .expect("parses");
        assert_eq!(v["name"], "outbound|80||a.b");
        assert_eq!(v["type"], Value::Null);
        assert_eq!(v["lb"], "RoundRobin");
        assert_eq!(v["t"]["Type"], "Eds");
        assert_eq!(v["m"]["k"], json!([1, 2]));
        assert_eq!(v["d"]["seconds"], 10);
        assert_eq!(v["s"], "q\"\u{e9}");
        assert_eq!(v["f"], -1.5);
        assert_eq!(v["b"], false);
        assert!(parse_debug("Cluster { name: ").is_err());
    }

    #[test]
    fn decodes_route_name_from_connection_manager() {
        // stat_prefix = "x", rds { config_source {}, route_config_name = "9080" }
        let bytes = [18, 1, b'x', 26, 8, 10, 0, 18, 4, b'9', b'0', b'8', b'0'];
        let rds = proto_field(&bytes, 3).expect("rds");
        assert_eq!(proto_field(rds, 2), Some(&b"9080"[..]));
        assert_eq!(proto_field(&[26, 200], 3), None);
    }

    #[test]
    fn host_matching_prefers_exact_then_longest_wildcard() {
        let entries = vec![
            ("*.example.com".to_string(), "wide.default".to_string()),
            (
                "*.api.example.com".to_string(),
                "narrow.default".to_string(),
            ),
            ("a.api.example.com".to_string(), "exact.default".to_string()),
        ];
        assert_eq!(best_match(&entries, "a.api.example.com"), "exact.default");
        assert_eq!(
            best_match(&entries, "b.api.example.com:80"),
            "narrow.default"
        );
        assert_eq!(best_match(&entries, "other.org"), "-");
        assert_eq!(
            resolve_host("reviews", "default", "cluster.local"),
            "reviews.default.svc.cluster.local"
        );
    }
}
