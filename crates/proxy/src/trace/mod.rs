//! Distributed tracing as Envoy's sidecar does it with istiod's `envoy.tracers.opentelemetry`
//! configuration: the trace context of a request is read from W3C `traceparent`/`tracestate`
//! or B3 (`x-b3-*`, single `b3`) and continued ([`context`]), sampled as Envoy decides
//! ([`request_id`]), each proxy makes one span per
//! request (`SERVER` on inbound listeners, `CLIENT` on outbound ones, Envoy's tags;
//! [`span`]), and sampled spans go over OTLP/gRPC to the listener's receiver cluster in
//! batches, from a thread of their own through a bounded queue ([`export`]).

pub mod context;
pub mod export;
pub mod request_id;
pub mod span;

pub use span::{ActiveSpan, SpanEnd, start};
