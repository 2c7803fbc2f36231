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

use std::io::Write;

use anyhow::Context;
use serde_json::{Map, Value, json};

use super::proxy_status::{
    DEFAULT_DEBUG_ADDRESS, fetch_syncz, find_proxy, http_get, write_columns,
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
    /// The proxy: its node id, or `pod.namespace` (resolved through /debug/syncz).
    proxy: String,
    /// lateend's debug address (HOST:PORT).
    #[arg(long, env = "LATEEND_DEBUG_ADDRESS", default_value = DEFAULT_DEBUG_ADDRESS)]
    lateend: String,
    /// Output format.
    #[arg(short = 'o', long, value_enum, default_value = "short")]
    output: Output,
    /// Cluster DNS suffix, to expand the short hosts of DestinationRules and VirtualServices.
    #[arg(long, default_value = "cluster.local")]
    domain: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let node_id = if args.proxy.contains('~') {
        args.proxy.clone()
    } else {
        let rows = fetch_syncz(&args.lateend)?;
        let row = find_proxy(&rows, &args.proxy)?;
        row.get("proxy")
            .and_then(Value::as_str)
            .context("lateend's /debug/syncz row has no proxy id")?
            .to_string()
    };
    let path = format!("/debug/config_dump?proxyID={}", percent_encode(&node_id));
    let body = http_get(&args.lateend, &path)?;
    let dump: Value = serde_json::from_str(&body).with_context(|| {
        format!(
            "lateend at {} sent a config dump that is not JSON",
            args.lateend
        )
    })?;
    let resources = |ty: &str| -> Vec<Resource> {
        dump.pointer(&format!("/resources/{ty}"))
            .and_then(Value::as_array)
            .map(|items| items.iter().map(Resource::from_dump).collect())
            .unwrap_or_default()
    };
    let wanted: &[(&str, Section)] = &[
        ("CDS", Section::Cluster),
        ("LDS", Section::Listener),
        ("RDS", Section::Route),
        ("EDS", Section::Endpoint),
    ];
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        let mut object = Map::new();
        for (ty, section) in wanted {
            if args.section == *section || args.section == Section::All {
                let items: Vec<Value> = resources(ty).into_iter().map(|r| r.to_json()).collect();
                object.insert((*ty).to_string(), Value::Array(items));
            }
        }
        let value = json!({"proxyID": node_id, "resources": object});
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let config = match args.section {
        Section::Cluster | Section::Route | Section::All => {
            Some(IstioConfig::fetch(&args.lateend, &args.domain)?)
        }
        _ => None,
    };
    let mut first = true;
    for (ty, section) in wanted {
        if args.section != *section && args.section != Section::All {
            continue;
        }
        if !first {
            writeln!(out)?;
        }
        first = false;
        let items = resources(ty);
        let table = match section {
            Section::Cluster => cluster_table(&items, config.as_ref()),
            Section::Listener => listener_table(&items),
            Section::Route => route_table(&items, config.as_ref()),
            _ => endpoint_table(&items),
        };
        write_columns(&mut out, &table)?;
    }
    out.flush()?;
    Ok(())
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
        let kind = match at(&r.config, &["cluster_discovery_type", "Type"]).and_then(Value::as_str)
        {
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
        let socket = at(&r.config, &["address", "address", "SocketAddress"]);
        let address = socket.map_or("", |s| str_at(s, &["address"])).to_string();
        let port = socket
            .and_then(|s| at(s, &["port_specifier", "PortValue"]))
            .map_or("-".to_string(), Value::to_string);
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
    if let Some(port) = at(m, &["destination_port", "value"]) {
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
                at(r, &["prefix_len", "value"]).map_or("32".to_string(), Value::to_string)
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

/// Where a network filter sends traffic, from its encoded typed_config.
fn filter_destination(filter: &Value) -> String {
    let name = str_at(filter, &["name"]);
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
                let m = route.get("r#match").or_else(|| route.get("match"));
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
    let Some(spec) = m.and_then(|m| m.get("path_specifier")) else {
        return "-".to_string();
    };
    if let Some(prefix) = spec.get("Prefix").and_then(Value::as_str) {
        return if prefix == "/" {
            "/*".to_string()
        } else {
            format!("{prefix}*")
        };
    }
    if let Some(path) = spec.get("Path").and_then(Value::as_str) {
        return path.to_string();
    }
    if let Some(regex) = at(spec, &["SafeRegex", "regex"]).and_then(Value::as_str) {
        return regex.to_string();
    }
    if let Some(prefix) = spec.get("PathSeparatedPrefix").and_then(Value::as_str) {
        return format!("{prefix}/*");
    }
    "-".to_string()
}

/// ENDPOINT, STATUS, OUTLIER CHECK, CLUSTER. lateend knows the endpoints it assigned, not the
/// proxy's runtime view, so OUTLIER CHECK (a proxy's ejections) is `-`; an endpoint with no
/// health status is HEALTHY, as Envoy treats it.
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
                let socket = at(
                    lb,
                    &[
                        "host_identifier",
                        "Endpoint",
                        "address",
                        "address",
                        "SocketAddress",
                    ],
                );
                let endpoint = match socket {
                    Some(s) => {
                        let port = at(s, &["port_specifier", "PortValue"])
                            .map_or("-".to_string(), Value::to_string);
                        format!("{}:{port}", str_at(s, &["address"]))
                    }
                    None => "-".to_string(),
                };
                let status = match str_at(lb, &["health_status"]) {
                    "" | "Unknown" | "Healthy" => "HEALTHY".to_string(),
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
