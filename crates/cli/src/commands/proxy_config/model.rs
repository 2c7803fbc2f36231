//! One dumped resource read back into JSON, lateend's accepted Istio config by host (for the
//! DESTINATION RULE and VIRTUAL SERVICE columns), and small JSON accessors the tables share.

#[allow(unused_imports)]
use super::*;

/// One resource of the dump, its `config` read back into a tree.
pub(super) struct Resource {
    pub(super) name: String,
    pub(super) version: String,
    pub(super) config: Value,
}

impl Resource {
    pub(super) fn from_dump(item: &Value) -> Self {
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

    pub(super) fn to_json(&self) -> Value {
        json!({"name": self.name, "version": self.version, "config": self.config})
    }
}

/// The DestinationRules and VirtualServices lateend accepted, by resolved host.
pub(super) struct IstioConfig {
    pub(super) rules: Vec<(String, String)>,
    pub(super) services: Vec<(String, String)>,
}

impl IstioConfig {
    pub(super) fn fetch(addr: &str, domain: &str) -> anyhow::Result<Self> {
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
    pub(super) fn rule_for(&self, fqdn: &str) -> String {
        best_match(&self.rules, fqdn)
    }

    pub(super) fn service_for(&self, domain: &str) -> String {
        best_match(&self.services, domain)
    }
}

/// An exact host beats a wildcard; among wildcards the longest suffix wins (Istio's rule).
pub(super) fn best_match(entries: &[(String, String)], host: &str) -> String {
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
pub(super) fn resolve_host(host: &str, namespace: &str, domain: &str) -> String {
    if host.contains('.') || host == "*" {
        host.to_string()
    } else {
        format!("{host}.{namespace}.svc.{domain}")
    }
}

pub(super) fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|s| (*s).to_string()).collect()
}

/// The value at a path of struct fields and one-of variants (`Some` is already gone).
pub(super) fn at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a Value> {
    path.iter().try_fold(v, |v, key| v.get(*key))
}

pub(super) fn str_at<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).and_then(Value::as_str).unwrap_or("")
}

/// The first of several paths that exists: the Debug tree of lateend's dump and Envoy's proto
/// JSON place one-ofs differently (`{"Variant": v}` against an inline field).
pub(super) fn first_at<'a>(v: &'a Value, paths: &[&[&str]]) -> Option<&'a Value> {
    paths.iter().find_map(|p| at(v, p))
}

/// A wrapped integer: a plain number in proto JSON, `{value: n}` in the Debug tree.
pub(super) fn uint(v: Option<&Value>) -> Option<u64> {
    v.and_then(|v| {
        v.as_u64()
            .or_else(|| v.get("value").and_then(Value::as_u64))
    })
}

/// `ADDRESS` and `PORT` of an `Address` message, in either shape.
pub(super) fn socket_of(address: Option<&Value>) -> (String, String) {
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
