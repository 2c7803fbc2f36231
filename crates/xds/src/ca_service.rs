//! Istio's certificate API, `istio.v1.auth.IstioCertificateService/CreateCertificate`
//! (istio/api `security/v1alpha1/ca.proto`), as a gRPC service a control plane serves next to
//! ADS on 15012 and as a client call for agents. The messages are written out here (two
//! small ones); `metadata` (field 4, a `google.protobuf.Struct` Istio uses for
//! impersonation by trusted nodes) is not read.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// The gRPC service name.
pub const SERVICE_NAME: &str = "istio.v1.auth.IstioCertificateService";
const CREATE_PATH: &str = "/istio.v1.auth.IstioCertificateService/CreateCertificate";
/// Largest request decoded; a larger one is RESOURCE_EXHAUSTED before any signer sees it.
const MAX_REQUEST: usize = 1024 * 1024;

/// `IstioCertificateRequest`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateRequest {
    /// PEM-encoded certificate request.
    #[prost(string, tag = "1")]
    pub csr: String,
    /// Requested lifetime in seconds (0: the CA's default).
    #[prost(int64, tag = "3")]
    pub validity_duration: i64,
}

/// `IstioCertificateResponse`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IstioCertificateResponse {
    /// PEM certificates: the leaf, intermediates, and the root last.
    #[prost(string, repeated, tag = "1")]
    pub cert_chain: Vec<String>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What answers `CreateCertificate`: authenticate the caller from the request's metadata
/// (`authorization: Bearer ...`) and sign its CSR, or say why not with a gRPC status.
pub trait CertificateSigner: Send + Sync + 'static {
    fn create_certificate(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> BoxFuture<Result<IstioCertificateResponse, Status>>;
}

/// The tower service to add to a `tonic::transport::Server`.
pub struct CertificateService {
    signer: Arc<dyn CertificateSigner>,
}

impl Clone for CertificateService {
    fn clone(&self) -> Self {
        CertificateService {
            signer: self.signer.clone(),
        }
    }
}

impl CertificateService {
    pub fn new(signer: Arc<dyn CertificateSigner>) -> Self {
        CertificateService { signer }
    }
}

impl NamedService for CertificateService {
    const NAME: &'static str = SERVICE_NAME;
}

struct Unary(Arc<dyn CertificateSigner>);

impl tonic::server::UnaryService<IstioCertificateRequest> for Unary {
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<Result<tonic::Response<IstioCertificateResponse>, Status>>;

    fn call(&mut self, request: tonic::Request<IstioCertificateRequest>) -> Self::Future {
        let signer = self.0.clone();
        Box::pin(async move {
            signer
                .create_certificate(request)
                .await
                .map(tonic::Response::new)
        })
    }
}

impl tower_service::Service<http::Request<Body>> for CertificateService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        if request.uri().path() != CREATE_PATH {
            let status = Status::new(
                Code::Unimplemented,
                format!("no method {}", request.uri().path()),
            );
            return Box::pin(async move { Ok(status.into_http()) });
        }
        let signer = self.signer.clone();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(tonic_prost::ProstCodec::default())
                .apply_max_message_size_config(Some(MAX_REQUEST), None);
            Ok(grpc.unary(Unary(signer), request).await)
        })
    }
}

/// Calls `CreateCertificate` on `channel`, with `authorization` metadata when given.
pub async fn create_certificate(
    channel: Channel,
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
    request: IstioCertificateRequest,
) -> Result<IstioCertificateResponse, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(format!("CA connection: {e}")))?;
    let mut request = tonic::Request::new(request);
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value);
    }
    let path = http::uri::PathAndQuery::from_static(CREATE_PATH);
    grpc.unary(request, path, tonic_prost::ProstCodec::default())
        .await
        .map(tonic::Response::into_inner)
}
