//! Who the transport says a proxy is. A TLS listener that verified a client certificate
//! hands the certificate's SPIFFE identity to tonic as the connection's `ConnectInfo`
//! ([`AuthenticatedPeer`]); tonic puts it in every request's extensions, and the ADS stream
//! passes it on to the [`super::SnapshotProvider`] with the node. The plaintext port has none.
//! Parsing certificates is the listener's job (this crate knows no SPIFFE or X.509), and so is
//! checking a bearer token: a service in front of [`super::AdsService`] may replace the
//! request's [`AuthenticatedPeer`] with the identity a token proved (lateend's `xds_auth`).

use serde::Serialize;

/// The identity a verified mesh certificate proves (Istio's `VerifiedIdentity`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifiedIdentity {
    /// The certificate's URI SAN, `spiffe://TD/ns/NS/sa/SA`.
    pub spiffe: String,
    pub namespace: String,
    pub service_account: String,
}

/// What a connection's transport authenticated: a TLS listener's `ConnectInfo`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthenticatedPeer {
    /// `None`: no client certificate (or a transport that does not ask for one).
    pub identity: Option<VerifiedIdentity>,
}

/// The identity carried by a request's extensions, if its connection had one.
pub(crate) fn of_request<B>(request: &http::Request<B>) -> Option<VerifiedIdentity> {
    request
        .extensions()
        .get::<AuthenticatedPeer>()
        .and_then(|peer| peer.identity.clone())
}
