//! `lateen proxy-status [PROXY]`: the xDS sync state of every proxy connected to lateend
//! (Istio: `istioctl proxy-status`), read from lateend's debug endpoint `/debug/syncz`.
//!
//! Without PROXY: istioctl's table (NAME, CLUSTER, CDS, LDS, EDS, RDS, ECDS, ISTIOD, VERSION).
//! With PROXY (a node id or `pod.namespace`): per xDS type the version sent, the version
//! acknowledged and the last NACK with its error, which is what one looks at when a proxy is
//! not SYNCED. Also home of the small HTTP client and proxy-name helpers `proxy-config` shares.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};
use serde_json::Value;

/// lateend's debug address when neither `--lateend` nor `LATEEND_DEBUG_ADDRESS` says otherwise
/// (istiod's 15014).
pub const DEFAULT_DEBUG_ADDRESS: &str = "127.0.0.1:15014";

#[derive(clap::Args)]
pub struct Args {
    /// A proxy (node id or `pod.namespace`): print its per-type sync details instead of the table.
    proxy: Option<String>,
    /// lateend's debug address (HOST:PORT).
    #[arg(long, env = "LATEEND_DEBUG_ADDRESS", default_value = DEFAULT_DEBUG_ADDRESS)]
    lateend: String,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    quiet_broken_pipe(print(args))
}

fn print(args: Args) -> anyhow::Result<()> {
    let rows = fetch_syncz(&args.lateend)?;
    let mut out = std::io::stdout().lock();
    match &args.proxy {
        None => write_table(&mut out, &rows, &args.lateend)?,
        Some(name) => {
            let row = find_proxy(&rows, name)?;
            write_details(&mut out, row)?;
        }
    }
    out.flush()?;
    Ok(())
}

/// `lateen ... | head` closes stdout early; like other command line tools, stop quietly
/// instead of reporting the broken pipe as an error.
pub(crate) fn quiet_broken_pipe(result: anyhow::Result<()>) -> anyhow::Result<()> {
    match result {
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// GET `/debug/syncz`: one JSON row per connected ADS stream.
pub(crate) fn fetch_syncz(addr: &str) -> anyhow::Result<Vec<Value>> {
    let body = http_get(addr, "/debug/syncz")?;
    let value: Value = serde_json::from_str(&body)
        .with_context(|| format!("lateend at {addr} sent /debug/syncz that is not JSON"))?;
    match value {
        Value::Array(rows) => Ok(rows),
        _ => bail!("lateend at {addr} sent /debug/syncz that is not a list"),
    }
}

/// A blocking HTTP/1.1 GET of a debug endpoint (lateend's, or a proxy's admin); the body on
/// 200, an error naming the address and the server's answer otherwise. `Connection: close`
/// so the body ends with the connection; HTTP/1.1 because Envoy's admin refuses 1.0 (426),
/// which brings chunked bodies with it.
pub(crate) fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let socket = addr
        .to_socket_addrs()
        .with_context(|| format!("invalid lateend address {addr:?} (want HOST:PORT)"))?
        .next()
        .with_context(|| format!("address {addr:?} resolves to nothing"))?;
    let mut stream =
        TcpStream::connect_timeout(&socket, Duration::from_secs(5)).with_context(|| {
            format!(
                "cannot connect to lateend at {addr} (is it running, with --debug-address {addr}?)"
            )
        })?;
    // A debug dump of a large mesh can take a while to render, but never minutes.
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: application/json\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("cannot send a request to {addr}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .with_context(|| format!("cannot read the answer of {addr}{path}"))?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .with_context(|| format!("{addr}{path}: malformed HTTP answer"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let mut body = raw[split + 4..].to_vec();
    if head.contains("\r\ntransfer-encoding: chunked") {
        body = dechunk(&body).with_context(|| format!("{addr}{path}: malformed chunked body"))?;
    }
    let body = String::from_utf8_lossy(&body);
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("{addr}{path}: malformed HTTP status line"))?;
    if status != 200 {
        bail!("{addr}{path} answered {status}: {}", body.trim());
    }
    Ok(body.into_owned())
}

/// Joins the chunks of a chunked body (extensions and trailers ignored).
fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// `pod.namespace` from Istio's node id `TYPE~IP~POD.NS~NS.svc.cluster.local`; the id itself
/// when it has another shape.
pub(crate) fn short_name(node_id: &str) -> &str {
    let parts: Vec<&str> = node_id.split('~').collect();
    match parts.as_slice() {
        [_, _, name, _] if !name.is_empty() => name,
        _ => node_id,
    }
}

/// The row of a proxy named by node id or by `pod.namespace` (or a bare pod name when only
/// one proxy has it).
pub(crate) fn find_proxy<'a>(rows: &'a [Value], name: &str) -> anyhow::Result<&'a Value> {
    let id = |r: &'a Value| r.get("proxy").and_then(Value::as_str).unwrap_or("");
    if let Some(row) = rows
        .iter()
        .find(|r| id(r) == name || short_name(id(r)) == name)
    {
        return Ok(row);
    }
    let by_pod: Vec<&Value> = rows
        .iter()
        .filter(|r| short_name(id(r)).split('.').next() == Some(name))
        .collect();
    match by_pod.as_slice() {
        [row] => Ok(row),
        [] => {
            let known: Vec<&str> = rows.iter().map(|r| short_name(id(r))).collect();
            bail!(
                "no connected proxy named {name:?} (connected: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )
        }
        _ => bail!("{name:?} names several proxies; give pod.namespace or the node id"),
    }
}

fn text<'a>(row: &'a Value, key: &str) -> &'a str {
    row.get(key).and_then(Value::as_str).unwrap_or("-")
}

/// The proxy runs no version of a type it rejected from the start: say so instead of a blank.
fn non_empty(s: &str) -> &str {
    if s.is_empty() { "(none)" } else { s }
}

/// istioctl's columns. CLUSTER is the cluster id (metadata CLUSTER_ID) like istioctl shows,
/// falling back to `node.cluster`; ECDS is never served by lateend, hence NOT SENT.
fn write_table(out: &mut impl Write, rows: &[Value], lateend: &str) -> anyhow::Result<()> {
    let mut table = vec![
        [
            "NAME", "CLUSTER", "CDS", "LDS", "EDS", "RDS", "ECDS", "ISTIOD", "VERSION",
        ]
        .map(String::from)
        .to_vec(),
    ];
    let mut sorted: Vec<&Value> = rows.iter().collect();
    sorted.sort_by_key(|r| short_name(text(r, "proxy")).to_string());
    for row in sorted {
        let meta = row.get("metadata");
        let meta_str = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str);
        let cluster = meta_str("CLUSTER_ID").unwrap_or(text(row, "cluster"));
        let version = meta_str("ISTIO_VERSION")
            .or_else(|| row.get("user_agent").and_then(Value::as_str))
            .filter(|v| !v.is_empty())
            .unwrap_or("-");
        table.push(vec![
            short_name(text(row, "proxy")).to_string(),
            cluster.to_string(),
            text(row, "cds").to_string(),
            text(row, "lds").to_string(),
            text(row, "eds").to_string(),
            text(row, "rds").to_string(),
            "NOT SENT".to_string(),
            lateend.to_string(),
            version.to_string(),
        ]);
    }
    write_columns(out, &table)
}

/// Left-aligned columns separated by three spaces, like istioctl's tabwriter output.
pub(crate) fn write_columns(out: &mut impl Write, rows: &[Vec<String>]) -> anyhow::Result<()> {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Short xDS names of the type URLs lateend reports.
fn type_label(type_url: &str) -> &str {
    match type_url.rsplit('/').next().unwrap_or(type_url) {
        "envoy.config.cluster.v3.Cluster" => "CDS",
        "envoy.config.listener.v3.Listener" => "LDS",
        "envoy.config.endpoint.v3.ClusterLoadAssignment" => "EDS",
        "envoy.config.route.v3.RouteConfiguration" => "RDS",
        "envoy.extensions.transport_sockets.tls.v3.Secret" => "SDS",
        other => other,
    }
}

/// One proxy's per-type state: what istioctl's diff summary answers ("is it running what the
/// control plane wants, and if not, why").
fn write_details(out: &mut impl Write, row: &Value) -> anyhow::Result<()> {
    writeln!(out, "Proxy:     {}", text(row, "proxy"))?;
    writeln!(out, "Cluster:   {}", text(row, "cluster"))?;
    writeln!(
        out,
        "Stream:    {} (id {})",
        text(row, "mode"),
        row.get("connection_id")
            .map_or("-".to_string(), Value::to_string)
    )?;
    let mut table = vec![
        ["TYPE", "STATUS", "SENT", "ACKED", "DESIRED", "PUSHES"]
            .map(String::from)
            .to_vec(),
    ];
    let mut nacks = Vec::new();
    let empty = serde_json::Map::new();
    let types = row
        .get("types")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    for (type_url, t) in types {
        let label = type_label(type_url);
        let status = row
            .get(label.to_lowercase())
            .and_then(Value::as_str)
            .unwrap_or("-");
        let version = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
        table.push(vec![
            label.to_string(),
            status.to_string(),
            version("sent_version"),
            version("acked_version"),
            version("desired_version"),
            t.get("pushes").map_or("-".to_string(), Value::to_string),
        ]);
        if let Some(nack) = t.get("last_nack").filter(|n| !n.is_null()) {
            nacks.push((label.to_string(), nack.clone()));
        }
    }
    writeln!(out)?;
    write_columns(out, &table)?;
    for (label, nack) in nacks {
        let still = if row.get(label.to_lowercase()).and_then(Value::as_str) == Some("NACK") {
            ""
        } else {
            " (since accepted a later version)"
        };
        writeln!(out)?;
        writeln!(out, "Last {label} NACK{still}:")?;
        writeln!(
            out,
            "  rejected version: {}",
            text(&nack, "rejected_version")
        )?;
        writeln!(
            out,
            "  running version:  {}",
            non_empty(text(&nack, "version"))
        )?;
        writeln!(
            out,
            "  error ({}): {}",
            nack.get("error_code")
                .map_or("-".to_string(), Value::to_string),
            text(&nack, "error_detail")
        )?;
    }
    if types.is_empty() {
        writeln!(out, "\nNothing sent to this proxy yet.")?;
    }
    Ok(())
}
