//! A mesh client in the test process: one new mTLS connection made by lateen-proxy's own
//! TLS client (`lateen_proxy::tls`, Istio's SNI and ALPN, the server's SPIFFE identity
//! checked) with a given workload certificate, one HTTP/1.1 request over it, and what the
//! server presented.

#![allow(dead_code)] // each test binary uses part of it

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use lateen_identity::{CertificateWatch, WorkloadCertificate};
use lateen_proxy::tls::{MeshTls, UpstreamAlpn, UpstreamTlsRt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Who the client is and whom it expects.
pub struct MeshClient {
    mesh: MeshTls,
    upstream: UpstreamTlsRt,
}

/// What one request saw.
#[derive(Debug)]
pub struct MeshReply {
    /// The HTTP status (0 when the answer was not HTTP).
    pub status: u16,
    /// The serial of the leaf the server presented.
    pub server_serial: Vec<u8>,
    /// The response body (with any chunked framing left as sent).
    pub body: String,
}

impl MeshClient {
    /// A client reading its certificate from `certificates` (new handshakes use the current
    /// one), sending SNI `sni` and accepting only a server whose SPIFFE id is `server_id`.
    pub fn new(certificates: CertificateWatch, sni: &str, server_id: &str) -> MeshClient {
        let upstream = UpstreamTlsRt::new(Some(sni.to_string()), vec![server_id.to_string()])
            .expect("a valid SNI");
        MeshClient {
            mesh: MeshTls::new(certificates),
            upstream,
        }
    }

    /// A client holding one fixed certificate.
    pub fn with(cert: Arc<WorkloadCertificate>, sni: &str, server_id: &str) -> MeshClient {
        let (sender, watch) = tokio::sync::watch::channel(Some(cert));
        // The value stays readable after the sender is gone.
        drop(sender);
        MeshClient::new(watch, sni, server_id)
    }

    /// `GET path` on a new mTLS connection to `server` (5 s at most): the status and the
    /// server's leaf, or why it failed (handshake, refused certificate, closed connection).
    pub async fn get(&self, server: SocketAddr, path: &str) -> Result<MeshReply, String> {
        use x509_parser::prelude::{FromDer, X509Certificate};
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(server)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let mut tls = lateen_proxy::tls::upstream::connect(
                &self.mesh,
                &self.upstream,
                UpstreamAlpn::Http1,
                tcp,
            )
            .await
            .map_err(|e| e.to_string())?;
            let leaf = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .ok_or("no server certificate")?
                .clone();
            let server_serial = X509Certificate::from_der(leaf.as_ref())
                .map_err(|e| format!("server leaf: {e}"))?
                .1
                .raw_serial()
                .to_vec();
            let request = format!("GET {path} HTTP/1.1\r\nhost: mesh\r\nconnection: close\r\n\r\n");
            tls.write_all(request.as_bytes())
                .await
                .map_err(|e| format!("write: {e}"))?;
            let mut answer = Vec::new();
            tls.read_to_end(&mut answer)
                .await
                .map_err(|e| format!("read: {e}"))?;
            let status = std::str::from_utf8(answer.get(9..12).unwrap_or_default())
                .ok()
                .and_then(|code| code.parse().ok());
            match status {
                Some(status) if answer.starts_with(b"HTTP/1.1 ") => Ok(MeshReply {
                    status,
                    server_serial,
                    body: body_of(&answer),
                }),
                _ => Err(format!(
                    "no HTTP answer: {:?}",
                    String::from_utf8_lossy(&answer[..answer.len().min(80)])
                )),
            }
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| "timed out".to_string())?
    }
}

/// What follows the header block of an HTTP/1.1 answer.
fn body_of(answer: &[u8]) -> String {
    let start = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(answer.len(), |at| at + 4);
    String::from_utf8_lossy(&answer[start..]).into_owned()
}
