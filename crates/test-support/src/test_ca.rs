//! A private CA for tests that serve TLS to a real client: the test cluster's API server
//! certificate, or a webhook server that the API server must trust (its PEM is the webhook
//! configuration's `caBundle`), and mesh workload certificates with SPIFFE identities as
//! Istio's CA issues them.

use std::net::IpAddr;
use std::path::Path;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

/// A self-signed CA (ECDSA P-256) that issues server certificates.
pub struct TestCa {
    pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A server certificate and its key, PEM.
pub struct ServerCert {
    pub cert_pem: String,
    pub key_pem: String,
    /// The key as PKCS#8 DER (what `rustls_pki_types::PrivateKeyDer::try_from` takes).
    pub key_der: Vec<u8>,
    /// The certificate as DER.
    pub cert_der: Vec<u8>,
}

/// A mesh workload certificate: leaf (URI SAN `spiffe://...`, client and server auth), key
/// and the CA's root, PEM.
pub struct WorkloadCert {
    pub cert_pem: String,
    pub key_pem: String,
    pub root_pem: String,
}

impl WorkloadCert {
    /// Writes Istio's file-mounted names into `dir`: `cert-chain.pem`, `key.pem`,
    /// `root-cert.pem` (what `lateen-proxy --cert-dir` reads).
    pub fn write_istio_dir(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("cert-chain.pem"), &self.cert_pem)?;
        std::fs::write(dir.join("key.pem"), &self.key_pem)?;
        std::fs::write(dir.join("root-cert.pem"), &self.root_pem)
    }
}

/// How long a workload certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validity {
    /// From 1975 to 4096 (rcgen's default).
    Current,
    /// Expired at the end of 2021.
    Expired,
}

impl TestCa {
    /// A fresh CA named `common_name`.
    pub fn new(common_name: &str) -> Result<TestCa, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let pem = params.self_signed(&key)?.pem();
        let key_pem = key.serialize_pem();
        Ok(TestCa {
            pem,
            key_pem,
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The CA's private key, PEM (kube-controller-manager signs CSRs with it).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A workload certificate for `spiffe_id` (`spiffe://cluster.local/ns/NS/sa/SA`).
    pub fn workload_cert(
        &self,
        spiffe_id: &str,
        validity: Validity,
    ) -> Result<WorkloadCert, rcgen::Error> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params
            .subject_alt_names
            .push(SanType::URI(spiffe_id.try_into()?));
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        if validity == Validity::Expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 12, 31);
        }
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(WorkloadCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            root_pem: self.pem.clone(),
        })
    }

    /// A server certificate for `dns_names` and `ips`, its common name the first DNS name.
    pub fn server_cert(
        &self,
        dns_names: &[&str],
        ips: &[IpAddr],
    ) -> Result<ServerCert, rcgen::Error> {
        let mut params =
            CertificateParams::new(dns_names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params
            .subject_alt_names
            .extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        if let Some(first) = dns_names.first() {
            params.distinguished_name.push(DnType::CommonName, *first);
        }
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(ServerCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            key_der: key.serialize_der(),
            cert_der: cert.der().to_vec(),
        })
    }
}
