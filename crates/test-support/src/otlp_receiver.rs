//! A real OTLP/gRPC trace receiver for tests: a tonic server on 127.0.0.1 answering
//! `opentelemetry.proto.collector.trace.v1.TraceService/Export` and keeping every span it
//! was sent, with the resource attributes of its batch.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// The span kinds the tests check, so a test needs no dependency on lateen-otlp of its own.
pub use lateen_otlp::SpanKind;
use lateen_otlp::{ExportTraceServiceRequest, ExportTraceServiceResponse, KeyValue, Span};

/// The collector's host name in the tests' Istio config.
pub const COLLECTOR_HOST: &str = "otel-collector.observability.svc.cluster.local";

/// Istio config sending spans to `receiver`: the collector's ServiceEntry (in `namespace`,
/// port 4317 `grpc`, the receiver as its endpoint) and a mesh-level Telemetry (root namespace
/// `istio-system`) tracing to the provider `otel` at `sampling` percent, with `custom_tags`
/// (YAML lines under `customTags:`, indented six spaces; empty for none). MeshConfig must
/// declare `otel` as an `opentelemetry` provider for [`COLLECTOR_HOST`] port 4317.
pub fn mesh_tracing_yaml(
    receiver: SocketAddr,
    namespace: &str,
    sampling: f64,
    custom_tags: &str,
) -> String {
    let tags = if custom_tags.is_empty() {
        String::new()
    } else {
        format!("    customTags:\n{custom_tags}")
    };
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: otel-collector, namespace: {namespace}}}
spec:
  hosts: [{COLLECTOR_HOST}]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{{number: 4317, name: grpc, protocol: GRPC}}]
  endpoints: [{{address: {ip}, ports: {{grpc: {port}}}}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {{name: mesh-default, namespace: istio-system}}
spec:
  tracing:
  - providers: [{{name: otel}}]
    randomSamplingPercentage: {sampling}
{tags}"#,
        ip = receiver.ip(),
        port = receiver.port()
    )
}

/// One received span and the resource (process) attributes it came with.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    pub span: Span,
    pub resource: Vec<KeyValue>,
}

impl ReceivedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        lateen_otlp::attribute(&self.span.attributes, key)
    }

    pub fn resource_attribute(&self, key: &str) -> Option<&str> {
        lateen_otlp::attribute(&self.resource, key)
    }

    pub fn trace_id_hex(&self) -> String {
        hex(&self.span.trace_id)
    }

    pub fn span_id_hex(&self) -> String {
        hex(&self.span.span_id)
    }

    pub fn parent_span_id_hex(&self) -> String {
        hex(&self.span.parent_span_id)
    }
}

/// Lower-case hex of bytes (trace and span ids).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The running receiver; stops when dropped.
pub struct OtlpReceiver {
    pub address: SocketAddr,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    requests: Arc<Mutex<usize>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl OtlpReceiver {
    /// Serves on an ephemeral port of 127.0.0.1 in the current tokio runtime.
    pub async fn start() -> anyhow::Result<OtlpReceiver> {
        OtlpReceiver::start_on(([127, 0, 0, 1], 0).into(), true).await
    }

    /// Serves on `address`; with `keep` false it only counts Export calls and keeps no span
    /// (the benchmark's sink, where millions of spans arrive).
    pub async fn start_on(address: SocketAddr, keep: bool) -> anyhow::Result<OtlpReceiver> {
        let listener = tokio::net::TcpListener::bind(address).await?;
        let address = listener.local_addr()?;
        let service = TraceService {
            keep,
            ..TraceService::default()
        };
        let spans = service.spans.clone();
        let requests = service.requests.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        tokio::spawn(async move {
            let served = tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming_shutdown(incoming, async {
                    let _ = stopped.await;
                });
            if let Err(err) = served.await {
                eprintln!("OTLP receiver stopped: {err}");
            }
        });
        Ok(OtlpReceiver {
            address,
            spans,
            requests,
            _stop: stop,
        })
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.spans
            .lock()
            .map(|spans| spans.clone())
            .unwrap_or_default()
    }

    /// How many Export calls arrived.
    pub fn export_calls(&self) -> usize {
        self.requests.lock().map(|count| *count).unwrap_or_default()
    }

    /// Waits until some span arrived and then no new one for `quiet` (longer than the
    /// exporters' flush interval), or until `timeout`; returns every span received.
    pub async fn settled(&self, quiet: Duration, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        let mut spans = self.spans();
        let mut unchanged_since = Instant::now();
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let now = self.spans();
            if now.len() != spans.len() {
                unchanged_since = Instant::now();
            }
            spans = now;
            if !spans.is_empty() && unchanged_since.elapsed() >= quiet {
                break;
            }
        }
        spans
    }

    /// Waits until at least `count` spans arrived or `timeout` passed; returns what arrived.
    pub async fn wait_for_spans(&self, count: usize, timeout: Duration) -> Vec<ReceivedSpan> {
        let deadline = Instant::now() + timeout;
        loop {
            let spans = self.spans();
            if spans.len() >= count || Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[derive(Clone, Default)]
struct TraceService {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    requests: Arc<Mutex<usize>>,
    keep: bool,
}

impl TraceService {
    fn keep(&self, request: ExportTraceServiceRequest) {
        if let Ok(mut count) = self.requests.lock() {
            *count += 1;
        }
        if !self.keep {
            return;
        }
        let Ok(mut spans) = self.spans.lock() else {
            return;
        };
        for resource_spans in request.resource_spans {
            let resource = resource_spans
                .resource
                .map(|resource| resource.attributes)
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push(ReceivedSpan {
                        span,
                        resource: resource.clone(),
                    });
                }
            }
        }
    }
}

impl tonic::server::NamedService for TraceService {
    const NAME: &'static str = lateen_otlp::SERVICE_NAME;
}

type BoxFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl tower_service::Service<http::Request<tonic::body::Body>> for TraceService {
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<tonic::body::Body>) -> Self::Future {
        let service = self.clone();
        Box::pin(async move {
            if request.uri().path() != lateen_otlp::EXPORT_PATH {
                return Ok(
                    tonic::Status::unimplemented(request.uri().path().to_string()).into_http(),
                );
            }
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default());
            Ok(grpc.unary(Export(service), request).await)
        })
    }
}

struct Export(TraceService);

impl tonic::server::UnaryService<ExportTraceServiceRequest> for Export {
    type Response = ExportTraceServiceResponse;
    type Future = BoxFuture<Result<tonic::Response<Self::Response>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<ExportTraceServiceRequest>) -> Self::Future {
        self.0.keep(request.into_inner());
        Box::pin(async { Ok(tonic::Response::new(ExportTraceServiceResponse::default())) })
    }
}
