//! How the ADS client reaches the control plane: plaintext HTTP/2, or TLS (rustls, ring)
//! verifying the server against a root certificate file and a server name, as Istio's agent
//! connects to istiod on 15012. Optionally a bearer token file, read again for every stream,
//! is sent as `authorization: Bearer <token>` (a kubelet rewrites the projected token in
//! place when it rotates it, so each reconnect carries the current one).
//!
//! Over TLS the client may also present a client certificate ([`ClientCertificate`]: the
//! workload certificate the proxy holds at that moment, as pilot-agent presents a provisioned
//! certificate), asked for again on every connection attempt so a reconnect carries the
//! current one; the token is sent as well.
//!
//! Files are read on every connection attempt, not once: a root certificate or token that is
//! missing now may appear later (a ConfigMap published after the pod started), and a failed
//! read is an error naming the file that the client retries with backoff.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint, Uri};

/// The transport to the control plane.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    /// HTTP/2 without TLS (lateend's 15010, istiod's plaintext port).
    #[default]
    Plaintext,
    /// HTTP/2 over TLS, the server verified against `root_cert` for `server_name`.
    Tls(TlsSettings),
}

/// Server-authenticated TLS settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// PEM file of the certificates trusted as roots (Istio: the `istio-ca-root-cert`
    /// ConfigMap mounted at `/var/run/secrets/istio/root-cert.pem`).
    pub root_cert: PathBuf,
    /// Name the server's certificate must carry (the discovery address host, or `ISTIOD_SAN`).
    pub server_name: String,
}

/// A certificate chain (leaf first) and its key.
pub type CertifiedKey = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Where the client certificate of a TLS connection attempt comes from: asked on every
/// attempt, `None` while the proxy holds none (the connection is then made without one).
#[derive(Clone)]
pub struct ClientCertificate(Arc<dyn Fn() -> Option<CertifiedKey> + Send + Sync>);

impl ClientCertificate {
    pub fn new(current: impl Fn() -> Option<CertifiedKey> + Send + Sync + 'static) -> Self {
        Self(Arc::new(current))
    }

    fn current(&self) -> Option<CertifiedKey> {
        (self.0)()
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCertificate")
    }
}

/// A bearer token read from a file for every stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFile {
    /// The file (Istio: `/var/run/secrets/tokens/istio-token`, a projected service-account
    /// token with audience `istio-ca`).
    pub path: PathBuf,
    /// A missing or empty file fails the connection attempt (retried with backoff) instead of
    /// connecting without a token.
    pub required: bool,
}

/// Why a connection attempt failed, naming the file or address involved.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("bad control plane address {address:?}: {reason}")]
    Address { address: String, reason: String },
    #[error("root certificate for xDS {}: {reason}", path.display())]
    RootCert { path: PathBuf, reason: String },
    #[error("server name {name:?} for xDS TLS is not a valid DNS name or IP address")]
    ServerName { name: String },
    #[error("token for xDS {}: {reason}", path.display())]
    Token { path: PathBuf, reason: String },
    #[error("connect {address}: {reason}")]
    Connect { address: String, reason: String },
}

/// HTTP/2 flow-control window of the ADS connection and stream.
const XDS_WINDOW: u32 = 16 * 1024 * 1024;

/// What a connection attempt needs before dialing: for TLS, the connector with the roots
/// read now and the server name.
pub(crate) struct Dialer {
    tls: Option<(TlsConnector, ServerName<'static>)>,
}

impl Dialer {
    /// Reads the root certificate (TLS) and takes the current client certificate, if any;
    /// fails naming the file.
    pub(crate) fn prepare(
        transport: &Transport,
        client_certificate: Option<&ClientCertificate>,
    ) -> Result<Dialer, TransportError> {
        let tls = match transport {
            Transport::Plaintext => None,
            Transport::Tls(tls) => {
                let server_name = ServerName::try_from(tls.server_name.clone()).map_err(|_| {
                    TransportError::ServerName {
                        name: tls.server_name.clone(),
                    }
                })?;
                let certified = client_certificate.and_then(ClientCertificate::current);
                Some((tls_connector(tls, certified)?, server_name))
            }
        };
        Ok(Dialer { tls })
    }

    /// Opens a channel to `address` (`HOST:PORT`, or `http://`/`https://HOST:PORT`; the
    /// scheme here only shapes the URI, the transport decides TLS).
    pub(crate) async fn connect(
        self,
        address: &str,
        connect_timeout: Duration,
    ) -> Result<Channel, TransportError> {
        let authority = strip_scheme(address);
        let endpoint = Endpoint::from_shared(format!("http://{authority}"))
            .map_err(|e| TransportError::Address {
                address: address.to_string(),
                reason: e.to_string(),
            })?
            .connect_timeout(connect_timeout)
            .http2_keep_alive_interval(Duration::from_secs(30))
            // HTTP/2's default 64 KiB window would make a control plane wait for a window
            // update every 64 KiB of a large response (a route table of a thousand services
            // is ~500 KiB). The stream is the connection's only one; Envoy opens its ADS
            // windows far wider still (256 MiB).
            .initial_stream_window_size(XDS_WINDOW)
            .initial_connection_window_size(XDS_WINDOW);
        let connect_error = |e: tonic::transport::Error| TransportError::Connect {
            address: address.to_string(),
            reason: error_chain(&e),
        };
        let Some((connector, server_name)) = self.tls else {
            return endpoint.connect().await.map_err(connect_error);
        };
        let target = authority.to_string();
        let dial = tower::service_fn(move |_: Uri| {
            let connector = connector.clone();
            let server_name = server_name.clone();
            let target = target.clone();
            async move {
                let tcp = TcpStream::connect(&target).await?;
                tcp.set_nodelay(true)?;
                let tls = connector.connect(server_name, tcp).await?;
                Ok::<_, std::io::Error>(TokioIo::new(tls))
            }
        });
        endpoint
            .connect_with_connector(dial)
            .await
            .map_err(connect_error)
    }
}

/// A channel to `address` over `transport` (for other gRPC services of the control plane on
/// the same port, such as Istio's certificate API): the roots are read now.
pub async fn connect(
    transport: &Transport,
    address: &str,
    connect_timeout: Duration,
) -> Result<Channel, TransportError> {
    Dialer::prepare(transport, None)?
        .connect(address, connect_timeout)
        .await
}

fn strip_scheme(address: &str) -> &str {
    address
        .strip_prefix("http://")
        .or_else(|| address.strip_prefix("https://"))
        .unwrap_or(address)
        .trim_end_matches('/')
}

/// A TLS connector trusting the roots in `tls.root_cert`, offering only HTTP/2, presenting
/// `certified` when given.
fn tls_connector(
    tls: &TlsSettings,
    certified: Option<CertifiedKey>,
) -> Result<TlsConnector, TransportError> {
    let root_error = |reason: String| TransportError::RootCert {
        path: tls.root_cert.clone(),
        reason,
    };
    let roots = read_roots(&tls.root_cert).map_err(root_error)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| root_error(e.to_string()))?
        .with_root_certificates(roots);
    let mut config = match certified {
        None => builder.with_no_client_auth(),
        Some((chain, key)) => match builder.clone().with_client_auth_cert(chain, key) {
            Ok(config) => config,
            // The token still authenticates the stream; a key rustls cannot use costs only
            // the certificate.
            Err(e) => {
                tracing::warn!(error = %e, "the workload certificate cannot be presented to the control plane; connecting without it");
                builder.with_no_client_auth()
            }
        },
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// The certificates of a PEM file as a root store; an error names what is wrong with it.
pub fn read_roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("not PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("no CERTIFICATE in the file".into());
    }
    Ok(roots)
}

impl TokenFile {
    /// The `authorization` metadata value, `None` when the token is optional and absent.
    pub fn header(&self) -> Result<Option<MetadataValue<tonic::metadata::Ascii>>, TransportError> {
        let error = |reason: String| TransportError::Token {
            path: self.path.clone(),
            reason,
        };
        let token = match std::fs::read_to_string(&self.path) {
            Ok(text) => text.trim().to_string(),
            Err(e) if !self.required => {
                let path = self.path.display();
                tracing::debug!(%path, error = %e, "no xDS token; connecting without one");
                return Ok(None);
            }
            Err(e) => return Err(error(e.to_string())),
        };
        if token.is_empty() {
            return if self.required {
                Err(error("the file is empty".into()))
            } else {
                Ok(None)
            };
        }
        MetadataValue::try_from(format!("Bearer {token}"))
            .map(Some)
            .map_err(|_| error("the token is not printable ASCII".into()))
    }
}

/// `e` and its sources, `: `-joined (tonic's transport error alone says only "transport
/// error"; the reason, e.g. `invalid peer certificate: UnknownIssuer`, is in its sources).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, contents: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lateen-xds-transport-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path
    }

    #[test]
    fn token_is_read_each_time_and_trimmed() {
        let path = temp_file("token", "abc.def\n");
        let token = TokenFile {
            path: path.clone(),
            required: true,
        };
        let value = token.header().expect("token").expect("present");
        assert_eq!(value.to_str().expect("ascii"), "Bearer abc.def");
        std::fs::write(&path, "rotated").expect("rotate");
        let value = token.header().expect("token").expect("present");
        assert_eq!(value.to_str().expect("ascii"), "Bearer rotated");
    }

    #[test]
    fn missing_token_fails_only_when_required() {
        let path = PathBuf::from("/nonexistent/lateen/istio-token");
        let optional = TokenFile {
            path: path.clone(),
            required: false,
        };
        assert!(optional.header().expect("optional").is_none());
        let required = TokenFile {
            path,
            required: true,
        };
        let error = required.header().expect_err("required").to_string();
        assert!(
            error.starts_with("token for xDS /nonexistent/lateen/istio-token:"),
            "{error}"
        );
    }

    #[test]
    fn roots_must_hold_a_certificate() {
        let error = read_roots(Path::new("/nonexistent/root-cert.pem")).expect_err("missing");
        assert!(error.contains("No such file"), "{error}");
        let empty = temp_file("empty.pem", "not a certificate\n");
        assert_eq!(
            read_roots(&empty).expect_err("empty"),
            "no CERTIFICATE in the file"
        );
    }

    #[test]
    fn scheme_is_only_shape() {
        assert_eq!(
            strip_scheme("https://lateend.istio-system.svc:15012"),
            "lateend.istio-system.svc:15012"
        );
        assert_eq!(strip_scheme("http://127.0.0.1:15010/"), "127.0.0.1:15010");
        assert_eq!(strip_scheme("127.0.0.1:15010"), "127.0.0.1:15010");
    }
}
