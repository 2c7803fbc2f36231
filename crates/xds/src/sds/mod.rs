//! Envoy's Secret Discovery Service (`envoy.service.secret.v3.SecretDiscoveryService`) as
//! pilot-agent serves it to its Envoy on a Unix socket: the secret `default` is the
//! workload's `tls_certificate` (chain and key), `ROOTCA` the `validation_context` with the
//! mesh roots. Each update of the [`SecretsWatch`] is pushed as a new version to every
//! stream that asked for those names; ACKs and NACKs are read and logged, a NACK keeps the
//! stream (Envoy keeps its previous secret, as with any xDS resource).
//!
//! State of the world (`StreamSecrets`, what Envoy uses with `api_type: GRPC`) and the unary
//! `FetchSecrets` are served; delta (`DeltaSecrets`) answers UNIMPLEMENTED.

mod material;
mod stream;
mod unix;

pub use material::{SecretMaterial, SecretsWatch, secret_resources};
pub use unix::{SdsError, serve_unix};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

/// Istio's name of the workload certificate secret (`WorkloadKeyCertResourceName`).
pub const WORKLOAD_SECRET: &str = "default";
/// Istio's name of the root certificate secret (`RootCertReqResourceName`).
pub const ROOT_SECRET: &str = "ROOTCA";
/// The resource type SDS carries.
pub const SECRET_TYPE_URL: &str =
    "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret";
/// Responses waiting per stream while Envoy reads slowly.
const STREAM_BUFFER: usize = 4;

/// The SDS service over the secrets the agent holds.
#[derive(Clone)]
pub struct SdsService {
    secrets: SecretsWatch,
}

impl SdsService {
    pub fn new(secrets: SecretsWatch) -> Self {
        SdsService { secrets }
    }

    /// The tower service to add to a `tonic::transport::Server`.
    pub fn into_server(self) -> SecretDiscoveryServiceServer<SdsService> {
        SecretDiscoveryServiceServer::new(self)
    }
}

#[tonic::async_trait]
impl SecretDiscoveryService for SdsService {
    type DeltaSecretsStream = ReceiverStream<Result<DeltaDiscoveryResponse, Status>>;
    type StreamSecretsStream = ReceiverStream<Result<DiscoveryResponse, Status>>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented(
            "delta SDS is not served; use api_type GRPC (state of the world)",
        ))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(stream::serve(
            request.into_inner(),
            self.secrets.clone(),
            tx,
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let request = request.into_inner();
        stream::check_type(&request.type_url)?;
        let Some(material) = self.secrets.borrow().clone() else {
            return Err(Status::unavailable("no workload certificate yet"));
        };
        let resources = secret_resources(&material, &request.resource_names);
        Ok(Response::new(DiscoveryResponse {
            version_info: material.version.clone(),
            resources,
            type_url: SECRET_TYPE_URL.to_string(),
            nonce: material.version.clone(),
            ..Default::default()
        }))
    }
}
