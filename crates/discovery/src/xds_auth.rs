//! Who an ADS stream on the TLS port (15012) is, as istiod authenticates an xDS client there:
//! a client certificate that chains to the mesh root and names a SPIFFE identity
//! ([`crate::xds_peer`], checked in the handshake), else the stream's bearer token (the
//! projected `istio-token`, audience `istio-ca`) checked by the same [`Authenticator`] as
//! the certificate API: a TokenReview, or one of lateend's bootstrap tokens. The first of
//! the two that proves an identity decides (istiod tries its client-certificate
//! authenticator before its JWT one), and that identity is what auto-registration compares
//! the node's claimed namespace and service account with.
//!
//! A token that fails verification refuses the stream with UNAUTHENTICATED and one log
//! line (UNAVAILABLE when it cannot be checked in time); a certificate that fails fails the
//! handshake. A stream with neither is served as
//! before, its metadata taken as claimed (see docs/auto-registration.md).

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use lateen_xds::tonic::Status;
use lateen_xds::tonic::body::Body;
use lateen_xds::tonic::codegen::Service;
use lateen_xds::tonic::server::NamedService;
use lateen_xds::{AdsService, AuthenticatedPeer, VerifiedIdentity};

use crate::mesh_ca::auth::{Authenticator, bearer_token};

/// How long a token check (a TokenReview round trip) may take before the stream is answered
/// UNAVAILABLE (the proxy retries), so an API server that hangs holds no stream for long.
const AUTHENTICATE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// [`AdsService`] behind the TLS port's authentication: a tower service for
/// `tonic::transport::Server::add_service`.
#[derive(Clone)]
pub struct AuthenticatedAds {
    inner: AdsService,
    auth: Arc<Authenticator>,
}

impl AuthenticatedAds {
    pub fn new(inner: AdsService, auth: Arc<Authenticator>) -> Self {
        Self { inner, auth }
    }
}

impl NamedService for AuthenticatedAds {
    const NAME: &'static str = <AdsService as NamedService>::NAME;
}

type Answer = Result<http::Response<Body>, Infallible>;

impl Service<http::Request<Body>> for AuthenticatedAds {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let mut inner = self.inner.clone();
        let certified = request
            .extensions()
            .get::<AuthenticatedPeer>()
            .is_some_and(|peer| peer.identity.is_some());
        let token = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(bearer_token)
            .map(str::to_string);
        let token = match token {
            Some(token) if !certified => token,
            // A verified certificate decides; no credential at all is served as claimed.
            _ => return Box::pin(inner.call(request)),
        };
        let auth = self.auth.clone();
        Box::pin(async move {
            let verdict = tokio::time::timeout(AUTHENTICATE_TIMEOUT, auth.authenticate(&token));
            match verdict.await {
                Err(_) => {
                    tracing::warn!(
                        "ADS stream refused: its token could not be checked in {AUTHENTICATE_TIMEOUT:?}"
                    );
                    Ok(Status::unavailable("authenticating the caller timed out").into_http())
                }
                Ok(Ok(identity)) => {
                    tracing::debug!(%identity, "ADS stream authenticated by its token");
                    request.extensions_mut().insert(AuthenticatedPeer {
                        identity: Some(VerifiedIdentity {
                            spiffe: identity.to_string(),
                            namespace: identity.namespace,
                            service_account: identity.service_account,
                        }),
                    });
                    inner.call(request).await
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "ADS stream refused: its token does not authenticate it");
                    Ok(Status::unauthenticated(format!("authenticate caller: {e}")).into_http())
                }
            }
        })
    }
}
