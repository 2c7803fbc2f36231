//! Sends finished spans to the OTLP/gRPC receivers off the request path. A request only puts
//! its span into a bounded queue (full: the span is dropped and counted); one thread of its
//! own, started with the first span, takes them out in batches (up to [`BATCH`] spans, or
//! whatever [`FLUSH_INTERVAL`] gathered), groups them by receiver cluster and service name,
//! and calls `TraceService/Export` on an endpoint of that cluster in the live configuration.
//! Counters, shown by `/stats` under Envoy's names: `tracing.opentelemetry.spans_sent`,
//! `tracing.opentelemetry.spans_dropped` (queue full), `tracing.opentelemetry.export_failures`
//! (spans of batches the receiver did not take).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lateen_otlp::{
    ExportTraceServiceRequest, InstrumentationScope, KeyValue, Resource, ResourceSpans, ScopeSpans,
    Span,
};

use crate::config::ConfigStore;
use crate::config::tracing::TracingRt;

/// Spans waiting for export at most; more are dropped.
pub const QUEUE: usize = 8192;
/// Spans per export call at most.
pub const BATCH: usize = 512;
/// How long a span waits for others before its batch is sent.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(500);
/// Deadline of one export call.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

struct Queued {
    cluster: Arc<str>,
    authority: Option<Arc<str>>,
    service_name: Arc<str>,
    span: Span,
}

struct Exporter {
    queue: tokio::sync::mpsc::Sender<Queued>,
}

#[derive(Default)]
pub struct TraceStats {
    pub spans_sent: AtomicU64,
    pub spans_dropped: AtomicU64,
    pub export_failures: AtomicU64,
}

static STATS: TraceStats = TraceStats {
    spans_sent: AtomicU64::new(0),
    spans_dropped: AtomicU64::new(0),
    export_failures: AtomicU64::new(0),
};
static CONFIG: OnceLock<Arc<ConfigStore>> = OnceLock::new();
static EXPORTER: OnceLock<Option<Exporter>> = OnceLock::new();

/// Gives the exporter the live configuration, where it finds receiver clusters' endpoints.
/// Called once when the proxy starts; spans finished before it are dropped.
pub fn install(config: Arc<ConfigStore>) {
    let _ = CONFIG.set(config);
}

pub fn stats() -> &'static TraceStats {
    &STATS
}

/// `/stats` lines.
pub fn render_stats(out: &mut String) {
    use std::fmt::Write;
    for (name, counter) in [
        ("spans_sent", &STATS.spans_sent),
        ("spans_dropped", &STATS.spans_dropped),
        ("export_failures", &STATS.export_failures),
    ] {
        let _ = writeln!(
            out,
            "tracing.opentelemetry.{name}: {}",
            counter.load(Ordering::Relaxed)
        );
    }
}

/// Queues a finished span; never waits.
pub fn submit(tracing: &TracingRt, span: Span) {
    let Some(exporter) = EXPORTER.get_or_init(start_exporter) else {
        STATS.spans_dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    let queued = Queued {
        cluster: tracing.cluster.clone(),
        authority: tracing.authority.clone(),
        service_name: tracing.service_name.clone(),
        span,
    };
    if exporter.queue.try_send(queued).is_err() {
        STATS.spans_dropped.fetch_add(1, Ordering::Relaxed);
    }
}

fn start_exporter() -> Option<Exporter> {
    let config = CONFIG.get()?.clone();
    let (queue, spans) = tokio::sync::mpsc::channel(QUEUE);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| tracing::warn!(%err, "no runtime for the span exporter; spans are dropped"))
        .ok()?;
    std::thread::Builder::new()
        .name("span-export".into())
        .spawn(move || runtime.block_on(run(config, spans)))
        .map_err(|err| tracing::warn!(%err, "no span exporter thread; spans are dropped"))
        .ok()?;
    Some(Exporter { queue })
}

async fn run(config: Arc<ConfigStore>, mut spans: tokio::sync::mpsc::Receiver<Queued>) {
    let mut channels = Channels::default();
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        // Wait for a first span, then gather for one flush interval or a full batch.
        if spans.recv_many(&mut batch, BATCH).await == 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + FLUSH_INTERVAL;
        while batch.len() < BATCH {
            let room = BATCH - batch.len();
            match tokio::time::timeout_at(deadline, spans.recv_many(&mut batch, room)).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        send(&config, &mut channels, std::mem::take(&mut batch)).await;
    }
}

type Destination = (Arc<str>, Option<Arc<str>>, Arc<str>);

async fn send(config: &ConfigStore, channels: &mut Channels, batch: Vec<Queued>) {
    let mut groups: HashMap<Destination, Vec<Span>> = HashMap::new();
    for queued in batch {
        groups
            .entry((queued.cluster, queued.authority, queued.service_name))
            .or_default()
            .push(queued.span);
    }
    let snapshot = config.load();
    for ((cluster, authority, service_name), spans) in groups {
        let count = spans.len() as u64;
        let Some(address) = snapshot
            .clusters
            .get(&*cluster)
            .and_then(|cluster| channels.pick(&cluster.hosts.endpoints))
        else {
            tracing::debug!(%cluster, "trace receiver cluster has no endpoints; spans dropped");
            STATS.export_failures.fetch_add(count, Ordering::Relaxed);
            continue;
        };
        let request = batch_request(&service_name, spans);
        let result = match channels.channel(address, authority.as_deref()) {
            Ok(channel) => {
                tokio::time::timeout(EXPORT_TIMEOUT, lateen_otlp::export(channel, request))
                    .await
                    .map_err(|_| "export timed out".to_string())
                    .and_then(|result| result.map_err(|status| status.to_string()))
            }
            Err(err) => Err(err),
        };
        match result {
            Ok(_) => {
                STATS.spans_sent.fetch_add(count, Ordering::Relaxed);
            }
            Err(err) => {
                tracing::debug!(%cluster, %address, %err, "span export failed");
                channels.forget(address);
                STATS.export_failures.fetch_add(count, Ordering::Relaxed);
            }
        }
    }
}

fn batch_request(service_name: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![KeyValue::string("service.name", service_name)],
                dropped_attributes_count: 0,
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "lateen-proxy".into(),
                    version: env!("CARGO_PKG_VERSION").into(),
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// One gRPC channel per receiver endpoint, endpoints taken in turn.
#[derive(Default)]
struct Channels {
    open: HashMap<SocketAddr, tonic::transport::Channel>,
    next: AtomicUsize,
}

impl Channels {
    fn pick(&self, endpoints: &[SocketAddr]) -> Option<SocketAddr> {
        if endpoints.is_empty() {
            return None;
        }
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        endpoints.get(n % endpoints.len()).copied()
    }

    fn channel(
        &mut self,
        address: SocketAddr,
        authority: Option<&str>,
    ) -> Result<tonic::transport::Channel, String> {
        if let Some(channel) = self.open.get(&address) {
            return Ok(channel.clone());
        }
        let mut endpoint = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|err| err.to_string())?
            .connect_timeout(EXPORT_TIMEOUT);
        if let Some(authority) = authority
            && let Ok(origin) = format!("http://{authority}").parse::<http::Uri>()
        {
            endpoint = endpoint.origin(origin);
        }
        let channel = endpoint.connect_lazy();
        self.open.insert(address, channel.clone());
        Ok(channel)
    }

    fn forget(&mut self, address: SocketAddr) {
        self.open.remove(&address);
    }
}
