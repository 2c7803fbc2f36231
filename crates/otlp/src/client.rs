//! The `TraceService/Export` call over a tonic channel, without generated service code.

use crate::trace::{ExportTraceServiceRequest, ExportTraceServiceResponse};

/// The gRPC service OTLP receivers serve.
pub const SERVICE_NAME: &str = "opentelemetry.proto.collector.trace.v1.TraceService";
/// The method path of `Export`.
pub const EXPORT_PATH: &str = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

/// Sends one batch on `channel` (whose endpoint sets the `:authority`).
pub async fn export(
    channel: tonic::transport::Channel,
    request: ExportTraceServiceRequest,
) -> Result<ExportTraceServiceResponse, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|err| tonic::Status::unavailable(format!("trace receiver not ready: {err}")))?;
    let codec = tonic_prost::ProstCodec::default();
    let path = http::uri::PathAndQuery::from_static(EXPORT_PATH);
    let response = grpc
        .unary(tonic::Request::new(request), path, codec)
        .await?;
    Ok(response.into_inner())
}
