//! `CreateCertificate` as istiod answers it: authenticate the caller from its bearer token,
//! then sign its CSR for exactly the caller's identity (istiod's rule: the CSR's identity
//! must equal the token's `ns/sa`). Codes: no or bad token UNAUTHENTICATED; garbage,
//! oversized or over-long-TTL CSR INVALID_ARGUMENT; another identity's CSR PERMISSION_DENIED
//! (logged with caller and requested identity); the CA failing INTERNAL.

use std::sync::Arc;
use std::time::Duration;

use lateen_identity::{CsrRefusal, MeshCa, SigningPolicy};
use lateen_xds::ca_service::{
    CertificateSigner, IstioCertificateRequest, IstioCertificateResponse,
};
use lateen_xds::tonic::{self, Status};

use super::auth::Authenticator;

/// The mesh CA behind Istio's certificate API.
#[derive(Clone)]
pub struct CaSigner {
    pub ca: Arc<MeshCa>,
    pub auth: Arc<Authenticator>,
    pub policy: SigningPolicy,
}

impl CaSigner {
    async fn create(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> Result<IstioCertificateResponse, Status> {
        let token = bearer(request.metadata()).ok_or_else(|| {
            tracing::info!("certificate request without a bearer token refused");
            Status::unauthenticated(super::auth::AuthError::NoToken.to_string())
        })?;
        let caller = self.auth.authenticate(&token).await.map_err(|e| {
            tracing::info!(error = %e, "certificate request with a bad token refused");
            Status::unauthenticated(format!("authenticate caller: {e}"))
        })?;
        let body = request.into_inner();
        let ttl = match body.validity_duration {
            0 => None,
            s if s < 0 => {
                return Err(Status::invalid_argument(format!(
                    "validity_duration {s} is negative"
                )));
            }
            s => Some(Duration::from_secs(s as u64)),
        };
        match self
            .ca
            .sign_csr(body.csr.as_bytes(), &caller, ttl, &self.policy)
        {
            Ok(Ok(cert_chain)) => {
                tracing::debug!(identity = %caller, ?ttl, "certificate issued");
                Ok(IstioCertificateResponse { cert_chain })
            }
            Ok(Err(CsrRefusal::Identity { requested, allowed })) => {
                tracing::warn!(caller = %caller, requested = ?requested, "certificate for an identity the caller does not own refused");
                Err(Status::permission_denied(
                    CsrRefusal::Identity { requested, allowed }.to_string(),
                ))
            }
            Ok(Err(refusal)) => {
                tracing::info!(caller = %caller, reason = %refusal, "certificate request refused");
                Err(Status::invalid_argument(refusal.to_string()))
            }
            Err(e) => {
                tracing::error!(caller = %caller, error = %e, "the CA failed to sign");
                Err(Status::internal(e.to_string()))
            }
        }
    }
}

impl CertificateSigner for CaSigner {
    fn create_certificate(
        &self,
        request: tonic::Request<IstioCertificateRequest>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<IstioCertificateResponse, Status>> + Send>,
    > {
        let this = self.clone();
        Box::pin(async move { this.create(request).await })
    }
}

/// The token of `authorization: Bearer TOKEN`.
fn bearer(metadata: &tonic::metadata::MetadataMap) -> Option<String> {
    let value = metadata.get("authorization")?.to_str().ok()?;
    super::auth::bearer_token(value).map(str::to_string)
}
