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

mod debug_text;
mod model;
mod sources;
mod tables;

use debug_text::*;
use model::*;
use sources::*;
use tables::*;

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
