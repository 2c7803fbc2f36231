//! The proxy's CA client (pilot-agent's `caclient`): makes its key and CSR in process, asks
//! the control plane's certificate API (`IstioCertificateService/CreateCertificate` on the
//! same 15012 TLS port and with the same token as ADS: [`super::control_plane`]) for its
//! chain, publishes it on a [`CertificateWatch`], and rotates at about half the lifetime
//! (Istio's `SECRET_GRACE_PERIOD_RATIO` 0.5, ± `SECRET_GRACE_PERIOD_RATIO_JITTER` 0.01),
//! retrying with jittered backoff. The key never leaves the process and is never logged (the
//! types print without it); a failed renewal keeps the current certificate in place.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lateen_identity::{
    CertificateRequest, CertificateWatch, DEFAULT_TRUST_DOMAIN, Identity, WorkloadCertificate,
};
use lateen_xds::Backoff;
use lateen_xds::ca_service::{IstioCertificateRequest, create_certificate};
use lateen_xds::client::{TokenFile, Transport};
use rand::Rng;
use tokio::sync::watch;

use super::control_plane::{ControlPlaneError, resolve};

/// Istio's `SECRET_GRACE_PERIOD_RATIO`: renew when this share of the lifetime is left.
pub const GRACE_PERIOD_RATIO: f64 = 0.5;
/// Istio's `SECRET_GRACE_PERIOD_RATIO_JITTER`.
pub const GRACE_PERIOD_JITTER: f64 = 0.01;

/// Where and as whom to ask.
#[derive(Clone, Debug)]
pub struct CaClientConfig {
    /// `HOST:PORT` of the certificate API (Istio: `CA_ADDR`, else the discovery address).
    pub address: String,
    pub transport: Transport,
    pub token: Option<TokenFile>,
    /// The identity to ask for (`spiffe://TRUST_DOMAIN/ns/POD_NAMESPACE/sa/SERVICE_ACCOUNT`).
    pub identity: Identity,
    /// Requested lifetime (Istio's `SECRET_TTL`); `None` leaves it to the CA.
    pub ttl: Option<Duration>,
    pub backoff: Backoff,
    pub connect_timeout: Duration,
}

/// Why one attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum CaClientError {
    #[error(transparent)]
    Transport(#[from] lateen_xds::client::TransportError),
    #[error("CreateCertificate: {0}")]
    Call(String),
    #[error("the CA's answer: {0}")]
    Answer(#[from] lateen_identity::CsrError),
    #[error("the CA issued {got}, not {wanted}")]
    WrongIdentity { got: String, wanted: String },
}

/// Starts the client; the watch holds `None` until the first certificate.
pub fn spawn(config: CaClientConfig) -> (CertificateWatch, tokio::task::JoinHandle<()>) {
    let (tx, rx) = watch::channel(None);
    let task = tokio::spawn(run(config, tx));
    (rx, task)
}

async fn run(mut config: CaClientConfig, tx: watch::Sender<Option<Arc<WorkloadCertificate>>>) {
    loop {
        match fetch(&config).await {
            Ok(cert) => {
                config.backoff.reset();
                let wait = renew_in(&cert, SystemTime::now());
                tracing::info!(identity = %cert.identity, expires_in = ?cert.remaining(SystemTime::now()), renew_in = ?wait, "workload certificate issued");
                if tx.send(Some(Arc::new(cert))).is_err() {
                    return;
                }
                tokio::time::sleep(wait).await;
            }
            Err(e) => {
                let delay = config.backoff.next_delay();
                tracing::warn!(address = %config.address, error = %e, retry_in = ?delay, "workload certificate request failed");
                if tx.is_closed() {
                    return;
                }
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// One key, one CSR, one call.
pub async fn fetch(config: &CaClientConfig) -> Result<WorkloadCertificate, CaClientError> {
    let request = CertificateRequest::generate(&config.identity)?;
    let authorization = match &config.token {
        Some(token) => token.header()?,
        None => None,
    };
    let channel = lateen_xds::client::transport::connect(
        &config.transport,
        &config.address,
        config.connect_timeout,
    )
    .await?;
    let answer = create_certificate(
        channel,
        authorization,
        IstioCertificateRequest {
            csr: request.csr_pem.clone(),
            validity_duration: config
                .ttl
                .map_or(0, |t| i64::try_from(t.as_secs()).unwrap_or(i64::MAX)),
        },
    )
    .await
    .map_err(|s| CaClientError::Call(format!("{:?}: {}", s.code(), s.message())))?;
    let cert = request.into_certificate(&answer.cert_chain, Vec::new())?;
    if cert.identity != config.identity {
        return Err(CaClientError::WrongIdentity {
            got: cert.identity.to_string(),
            wanted: config.identity.to_string(),
        });
    }
    Ok(cert)
}

/// How long until `cert` is renewed: when `GRACE_PERIOD_RATIO` (± jitter) of its lifetime
/// is left.
pub fn renew_in(cert: &WorkloadCertificate, now: SystemTime) -> Duration {
    let jitter = rand::rng().random_range(-GRACE_PERIOD_JITTER..=GRACE_PERIOD_JITTER);
    let grace = cert.lifetime().mul_f64(GRACE_PERIOD_RATIO + jitter);
    cert.remaining(now).saturating_sub(grace)
}

/// The client's configuration as pilot-agent builds it from Istio's injected environment:
/// the CA at `address` (`CA_ADDR`, else the discovery address; `None` leaves it to
/// [`resolve`], i.e. `PROXY_CONFIG`'s discoveryAddress or lateend's Service), reached with the
/// same TLS, root (`XDS_ROOT_CA`, the mounted `istio-ca-root-cert`, ...), server name
/// (`ISTIOD_SAN`) and token (`JWT_PATH`) as the control plane; the identity from
/// `TRUST_DOMAIN`, `POD_NAMESPACE` and `SERVICE_ACCOUNT`; `ttl` from `SECRET_TTL`.
pub fn config_from_env(
    address: Option<&str>,
    env: &BTreeMap<String, String>,
    ttl: Option<Duration>,
) -> Result<CaClientConfig, ControlPlaneError> {
    let get = |name: &str| env.get(name).filter(|v| !v.is_empty()).cloned();
    let control_plane = resolve(address.filter(|a| !a.is_empty()), env, &|path: &Path| {
        path.is_file()
    })?;
    let identity = Identity::new(
        get("TRUST_DOMAIN").unwrap_or_else(|| DEFAULT_TRUST_DOMAIN.to_string()),
        get("POD_NAMESPACE").unwrap_or_else(|| "default".into()),
        get("SERVICE_ACCOUNT").unwrap_or_else(|| "default".into()),
    );
    tracing::info!(ca = %control_plane.address, because = %control_plane.reason, %identity, "certificate authority");
    Ok(CaClientConfig {
        address: control_plane.address,
        transport: control_plane.transport,
        token: control_plane.token,
        identity,
        ttl,
        backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(30)),
        connect_timeout: Duration::from_secs(10),
    })
}

/// The SPIFFE identity pilot-agent asks for, from Istio's injected environment.
pub fn workload_identity(identity: &super::identity::Identity) -> Identity {
    Identity::new(
        identity.trust_domain.clone(),
        identity.namespace.clone(),
        identity.service_account.clone(),
    )
}
