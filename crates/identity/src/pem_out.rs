//! A workload certificate written back as PEM, for consumers that take files or inline PEM
//! (Envoy through SDS, Istio's file-mounted `cert-chain.pem`/`key.pem`/`root-cert.pem`).

use base64::Engine;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::certificate::WorkloadCertificate;

/// One PEM block, 64 base64 characters a line.
fn pem_block(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    let mut rest = body.as_str();
    while !rest.is_empty() {
        let (line, tail) = rest.split_at(rest.len().min(64));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn certs_pem(certs: &[CertificateDer<'_>]) -> String {
    certs
        .iter()
        .map(|c| pem_block("CERTIFICATE", c.as_ref()))
        .collect()
}

impl WorkloadCertificate {
    /// The leaf and intermediates, leaf first.
    pub fn chain_pem(&self) -> String {
        certs_pem(&self.chain)
    }

    /// The roots.
    pub fn roots_pem(&self) -> String {
        certs_pem(&self.roots)
    }

    /// The private key in the PEM label of its encoding. Secret: never log it.
    pub fn key_pem(&self) -> String {
        let label = match &self.key {
            PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
            PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
            _ => "PRIVATE KEY",
        };
        pem_block(label, self.key.secret_der())
    }
}
