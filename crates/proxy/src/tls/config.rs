//! rustls configurations built from the proxy's current workload certificate, rebuilt only
//! when the certificate changes (the watch's value is compared by pointer).

use std::sync::{Arc, Mutex};

use lateen_identity::{CertificateWatch, Identity, WorkloadCertificate};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::ServerName;
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};

use super::verify::SpiffeServerVerifier;

/// Why a TLS connection could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("no workload certificate yet")]
    NoCertificate,
    #[error("workload certificate cannot be used for TLS: {0}")]
    Certificate(String),
    #[error("invalid TLS server name (SNI) {0:?}")]
    ServerName(String),
    #[error("TLS handshake: {0}")]
    Handshake(#[source] std::io::Error),
}

/// The upstream ALPN list, by what the proxy will speak inside the tunnel (Istio's
/// `istio.alpn` filter and `ALPNInMeshWithMxc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamAlpn {
    Http1,
    Http2,
    Tcp,
}

impl UpstreamAlpn {
    fn protocols(self) -> Vec<Vec<u8>> {
        let first = match self {
            UpstreamAlpn::Http1 => super::ALPN_ISTIO_HTTP11,
            UpstreamAlpn::Http2 => super::ALPN_ISTIO_H2,
            UpstreamAlpn::Tcp => super::ALPN_PEER_EXCHANGE,
        };
        vec![first.to_vec(), super::ALPN_ISTIO.to_vec()]
    }

    fn index(self) -> usize {
        self as usize
    }
}

struct ServerConfigs {
    cert: Arc<WorkloadCertificate>,
    /// No ALPN negotiated: the client's offer is only read (TCP and `istio-*` values).
    plain: Arc<ServerConfig>,
    /// `h2`, `http/1.1` negotiated for clients that offer them.
    http: Arc<ServerConfig>,
}

/// The proxy's side of mesh mTLS: its certificate watch and the configurations made from it.
pub struct MeshTls {
    watch: CertificateWatch,
    provider: Arc<CryptoProvider>,
    server: Mutex<Option<ServerConfigs>>,
}

impl MeshTls {
    pub fn new(watch: CertificateWatch) -> MeshTls {
        MeshTls {
            watch,
            provider: super::provider(),
            server: Mutex::new(None),
        }
    }

    /// The certificate new handshakes use.
    pub fn current(&self) -> Result<Arc<WorkloadCertificate>, TlsError> {
        self.watch.borrow().clone().ok_or(TlsError::NoCertificate)
    }

    /// This proxy's SPIFFE identity, once it has a certificate.
    pub fn local_identity(&self) -> Option<Identity> {
        self.watch
            .borrow()
            .as_ref()
            .map(|cert| cert.identity.clone())
    }

    /// The server configuration for a ClientHello; `http_alpn` when it offered `h2` or
    /// `http/1.1`.
    pub fn server_config(&self, http_alpn: bool) -> Result<Arc<ServerConfig>, TlsError> {
        let cert = self.current()?;
        let mut cache = self
            .server
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let fresh = match cache.as_ref() {
            Some(configs) if Arc::ptr_eq(&configs.cert, &cert) => None,
            _ => Some(self.build_server(&cert)?),
        };
        if let Some(configs) = fresh {
            *cache = Some(configs);
        }
        let configs = cache.as_ref().ok_or(TlsError::NoCertificate)?;
        Ok(if http_alpn {
            configs.http.clone()
        } else {
            configs.plain.clone()
        })
    }

    fn build_server(&self, cert: &Arc<WorkloadCertificate>) -> Result<ServerConfigs, TlsError> {
        let roots = root_store(cert)?;
        let verifier = WebPkiClientVerifier::builder_with_provider(roots, self.provider.clone())
            .build()
            .map_err(|err| TlsError::Certificate(err.to_string()))?;
        let mut plain = ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(super::PROTOCOL_VERSIONS)
            .map_err(|err| TlsError::Certificate(err.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(cert.chain.clone(), cert.key.clone_key())
            .map_err(|err| TlsError::Certificate(err.to_string()))?;
        plain.ignore_client_order = false;
        let mut http = plain.clone();
        http.alpn_protocols = vec![super::ALPN_H2.to_vec(), super::ALPN_HTTP11.to_vec()];
        Ok(ServerConfigs {
            cert: cert.clone(),
            plain: Arc::new(plain),
            http: Arc::new(http),
        })
    }

    /// The client configuration for a connection of `upstream` speaking `alpn` inside.
    pub fn client_config(
        &self,
        upstream: &UpstreamTlsRt,
        alpn: UpstreamAlpn,
    ) -> Result<Arc<ClientConfig>, TlsError> {
        let cert = self.current()?;
        let mut cache = upstream
            .cache
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !cache
            .as_ref()
            .is_some_and(|cached| Arc::ptr_eq(&cached.cert, &cert))
        {
            *cache = Some(ClientConfigs {
                cert: cert.clone(),
                by_alpn: Default::default(),
            });
        }
        let cached = cache.as_mut().ok_or(TlsError::NoCertificate)?;
        if let Some(config) = &cached.by_alpn[alpn.index()] {
            return Ok(config.clone());
        }
        let verifier = SpiffeServerVerifier::new(
            root_store(&cert)?,
            upstream.subject_alt_names.clone(),
            self.provider.clone(),
        );
        let mut config = ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(super::PROTOCOL_VERSIONS)
            .map_err(|err| TlsError::Certificate(err.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_auth_cert(cert.chain.clone(), cert.key.clone_key())
            .map_err(|err| TlsError::Certificate(err.to_string()))?;
        config.alpn_protocols = alpn.protocols();
        config.enable_sni = upstream.sni.is_some();
        let config = Arc::new(config);
        cached.by_alpn[alpn.index()] = Some(config.clone());
        Ok(config)
    }
}

fn root_store(cert: &WorkloadCertificate) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for root in &cert.roots {
        roots
            .add(root.clone())
            .map_err(|err| TlsError::Certificate(format!("root certificate: {err}")))?;
    }
    Ok(Arc::new(roots))
}

struct ClientConfigs {
    cert: Arc<WorkloadCertificate>,
    by_alpn: [Option<Arc<ClientConfig>>; 3],
}

/// A cluster's upstream mTLS (Istio's `ISTIO_MUTUAL`): the SNI to send and the identities the
/// server may have. Equal (and hashed) by those, so a recompiled cluster with the same
/// settings keeps its pooled connections.
pub struct UpstreamTlsRt {
    pub sni: Option<String>,
    pub subject_alt_names: Vec<String>,
    pub(crate) server_name: ServerName<'static>,
    cache: Mutex<Option<ClientConfigs>>,
    /// DestinationRule SIMPLE/MUTUAL: TLS with credentials from files instead of the mesh
    /// certificate.
    pub origination: Option<Arc<super::origination::Origination>>,
}

/// The name rustls is given when no SNI is sent (it is then neither sent nor checked).
const NO_SNI_NAME: &str = "lateen.invalid";

impl UpstreamTlsRt {
    pub fn new(sni: Option<String>, subject_alt_names: Vec<String>) -> Result<Self, TlsError> {
        let name = sni.clone().unwrap_or_else(|| NO_SNI_NAME.to_string());
        let server_name =
            ServerName::try_from(name.clone()).map_err(|_| TlsError::ServerName(name))?;
        Ok(UpstreamTlsRt {
            sni,
            subject_alt_names,
            server_name,
            cache: Mutex::new(None),
            origination: None,
        })
    }

    /// The same settings, originating TLS with `origination`'s files.
    pub fn with_origination(mut self, origination: super::origination::Origination) -> Self {
        self.origination = Some(Arc::new(origination));
        self
    }

    fn files(&self) -> Option<&super::origination::TlsFiles> {
        self.origination.as_ref().map(|o| &o.files)
    }
}

impl PartialEq for UpstreamTlsRt {
    fn eq(&self, other: &Self) -> bool {
        self.sni == other.sni
            && self.subject_alt_names == other.subject_alt_names
            && self.files() == other.files()
    }
}

impl Eq for UpstreamTlsRt {}

impl std::hash::Hash for UpstreamTlsRt {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.sni.hash(state);
        self.subject_alt_names.hash(state);
        self.files().hash(state);
    }
}

impl std::fmt::Debug for UpstreamTlsRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTlsRt")
            .field("sni", &self.sni)
            .field("subject_alt_names", &self.subject_alt_names)
            .field("origination", &self.files())
            .finish_non_exhaustive()
    }
}
