//! OpenTelemetry's OTLP trace messages (`opentelemetry/proto/trace/v1`,
//! `collector/trace/v1`, the parts of `common/v1` and `resource/v1` spans use) as prost
//! structs with the proto's field numbers, and a client of `TraceService/Export` over gRPC.
//!
//! Owns: the wire format of exported spans. Must not touch: deciding what to trace (the
//! proxy's job) or batching (the proxy's exporter).
//!
//! Our own messages instead of `opentelemetry-proto`: they are a few dozen lines, and the
//! crate would bring the whole OpenTelemetry SDK's dependency tree into the proxy.
#![forbid(unsafe_code)]

pub mod client;
pub mod trace;

pub use client::{EXPORT_PATH, SERVICE_NAME, export};
pub use trace::*;
