//! The mesh CA: signs workload CSRs into leaf certificates carrying only the SPIFFE identity
//! the caller is entitled to, with Istio's extensions (empty subject and a critical URI SAN,
//! `digitalSignature`+`keyEncipherment`, `serverAuth`+`clientAuth`, `CA:FALSE`, authority key
//! id, a random 128-bit serial). Its key material is [`CaFiles`] (Istio's file names): a
//! self-signed root made once ([`MeshCa::self_signed`]) or a plugged-in CA whose signing
//! certificate is an intermediate under another root (Istio's `cacerts`).

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::CertificateSigningRequestDer;
use rustls_pki_types::pem::PemObject;

use crate::ca_files::CaFiles;
use crate::spiffe::Identity;

/// Istio's `DEFAULT_WORKLOAD_CERT_TTL`.
pub const DEFAULT_WORKLOAD_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Istio's `MAX_WORKLOAD_CERT_TTL` (90 days).
pub const MAX_WORKLOAD_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// Istio's `CITADEL_SELF_SIGNED_CA_CERT_TTL` (10 years).
pub const SELF_SIGNED_ROOT_TTL: Duration = Duration::from_secs(3650 * 24 * 3600);
/// A CSR larger than this is refused unread (a P-256 CSR is under 1 KiB; RSA 4096 about 2).
pub const MAX_CSR_BYTES: usize = 64 * 1024;

/// Why the CA cannot be loaded or cannot sign.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("{what}: {reason}")]
    Material { what: String, reason: String },
    #[error("generating the CA: {0}")]
    Generate(rcgen::Error),
    #[error("signing: {0}")]
    Sign(rcgen::Error),
}

/// Why a CSR is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CsrRefusal {
    #[error("CSR of {0} bytes is larger than the {MAX_CSR_BYTES} allowed")]
    TooLarge(usize),
    #[error("CSR is not a PEM CERTIFICATE REQUEST with a valid signature: {0}")]
    Malformed(String),
    #[error("CSR asks for identities {requested:?}, the caller may only have {allowed}")]
    Identity {
        requested: Vec<String>,
        allowed: String,
    },
    #[error("requested TTL {requested:?} is greater than the max allowed TTL {max:?}")]
    Ttl { requested: Duration, max: Duration },
}

/// Settings of the signer.
#[derive(Clone, Debug)]
pub struct SigningPolicy {
    /// When the request asks for none (Istio's `DEFAULT_WORKLOAD_CERT_TTL`).
    pub default_ttl: Duration,
    /// Longest accepted (Istio's `MAX_WORKLOAD_CERT_TTL`).
    pub max_ttl: Duration,
}

impl Default for SigningPolicy {
    fn default() -> Self {
        SigningPolicy {
            default_ttl: DEFAULT_WORKLOAD_CERT_TTL,
            max_ttl: MAX_WORKLOAD_CERT_TTL,
        }
    }
}

/// The loaded CA.
pub struct MeshCa {
    files: CaFiles,
    issuer: Issuer<'static, KeyPair>,
    /// PEM certificates after the leaf in every response: the signing cert, the rest of its
    /// chain, and the root last.
    response_tail: Vec<String>,
}

impl std::fmt::Debug for MeshCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshCa")
            .field("root_cert_pem", &self.files.root_cert_pem)
            .finish_non_exhaustive()
    }
}

impl MeshCa {
    /// A new self-signed root for `trust_domain` (subject O=<trust domain>, as Istio's).
    pub fn self_signed(trust_domain: &str) -> Result<MeshCa, CaError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::OrganizationName, trust_domain);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let now = SystemTime::now();
        params.not_before = (now - Duration::from_secs(60)).into();
        params.not_after = (now + SELF_SIGNED_ROOT_TTL).into();
        params.serial_number = Some(random_serial());
        let key = KeyPair::generate().map_err(CaError::Generate)?;
        let cert = params.self_signed(&key).map_err(CaError::Generate)?;
        let pem = cert.pem();
        MeshCa::from_files(CaFiles {
            ca_cert_pem: pem.clone(),
            ca_key_pem: key.serialize_pem(),
            cert_chain_pem: String::new(),
            root_cert_pem: pem,
        })
    }

    /// The CA of `files`; an error names the file (Istio's name) that is wrong.
    pub fn from_files(files: CaFiles) -> Result<MeshCa, CaError> {
        let material = |what: &str, reason: String| CaError::Material {
            what: what.to_string(),
            reason,
        };
        let key = KeyPair::from_pem(&files.ca_key_pem)
            .map_err(|e| material(CaFiles::CA_KEY, e.to_string()))?;
        let issuer = Issuer::from_ca_cert_pem(&files.ca_cert_pem, key)
            .map_err(|e| material(CaFiles::CA_CERT, e.to_string()))?;
        let root = if files.root_cert_pem.trim().is_empty() {
            files.ca_cert_pem.clone()
        } else {
            files.root_cert_pem.clone()
        };
        let ca_cert = first_cert(&files.ca_cert_pem)
            .ok_or_else(|| material(CaFiles::CA_CERT, "no CERTIFICATE".into()))?;
        let root_certs = pem_certs(&root);
        if root_certs.is_empty() {
            return Err(material(CaFiles::ROOT_CERT, "no CERTIFICATE".into()));
        }
        // Istio's cert-chain.pem is the signing cert followed by its chain up to the root
        // (some setups leave the root out, others put it in; the root goes last once).
        let mut tail = pem_certs(&files.cert_chain_pem);
        if tail.is_empty() {
            tail.push(ca_cert);
        }
        for root in root_certs {
            if !tail.contains(&root) {
                tail.push(root);
            }
        }
        Ok(MeshCa {
            files: CaFiles {
                root_cert_pem: root,
                ..files
            },
            issuer,
            response_tail: tail,
        })
    }

    /// The key material to keep (disk or Secret), root included.
    pub fn files(&self) -> &CaFiles {
        &self.files
    }

    /// The root(s) proxies trust: `istio-ca-root-cert`'s `root-cert.pem`.
    pub fn root_cert_pem(&self) -> &str {
        &self.files.root_cert_pem
    }

    /// Signs `csr_pem` for `caller`: the CSR must ask for exactly that identity (Istio refuses
    /// any other SAN), and the leaf carries only it. Returns the chain as Istio answers it:
    /// leaf, intermediates, root last (one PEM per element).
    pub fn sign_csr(
        &self,
        csr_pem: &[u8],
        caller: &Identity,
        requested_ttl: Option<Duration>,
        policy: &SigningPolicy,
    ) -> Result<Result<Vec<String>, CsrRefusal>, CaError> {
        if csr_pem.len() > MAX_CSR_BYTES {
            return Ok(Err(CsrRefusal::TooLarge(csr_pem.len())));
        }
        let ttl = match requested_ttl {
            None => policy.default_ttl,
            Some(t) if t > policy.max_ttl => {
                return Ok(Err(CsrRefusal::Ttl {
                    requested: t,
                    max: policy.max_ttl,
                }));
            }
            Some(t) => t,
        };
        let der = match CertificateSigningRequestDer::from_pem_slice(csr_pem) {
            Ok(der) => der,
            Err(e) => return Ok(Err(CsrRefusal::Malformed(e.to_string()))),
        };
        let request = match CertificateSigningRequestParams::from_der(&der) {
            Ok(r) => r,
            Err(e) => return Ok(Err(CsrRefusal::Malformed(e.to_string()))),
        };
        let requested: Vec<String> = request
            .params
            .subject_alt_names
            .iter()
            .map(|san| match san {
                SanType::URI(uri) => uri.as_str().to_string(),
                SanType::DnsName(name) => format!("DNS:{}", name.as_str()),
                SanType::IpAddress(ip) => format!("IP:{ip}"),
                SanType::Rfc822Name(mail) => format!("email:{}", mail.as_str()),
                other => format!("{other:?}"),
            })
            .collect();
        let allowed = caller.to_string();
        if requested != [allowed.clone()] {
            return Ok(Err(CsrRefusal::Identity { requested, allowed }));
        }
        let leaf = leaf_params(caller, ttl).map_err(CaError::Sign)?;
        let cert = leaf
            .signed_by(&request.public_key, &self.issuer)
            .map_err(CaError::Sign)?;
        let mut chain = vec![cert.pem()];
        chain.extend(self.response_tail.iter().cloned());
        Ok(Ok(chain))
    }

    /// A server certificate and key (PEM) for lateend's own names, signed by this CA, as
    /// istiod signs its serving certificate with the mesh CA; the chain holds the leaf and
    /// intermediates (not the root).
    pub fn issue_server(&self, dns_names: &[String]) -> Result<(String, String), CaError> {
        let mut params = CertificateParams::new(dns_names.to_vec()).map_err(CaError::Sign)?;
        params.distinguished_name = DistinguishedName::new();
        if let Some(first) = dns_names.first() {
            params
                .distinguished_name
                .push(DnType::CommonName, first.as_str());
        }
        let now = SystemTime::now();
        end_entity(
            &mut params,
            now - Duration::from_secs(60),
            now + Duration::from_secs(365 * 24 * 3600),
        );
        let key = KeyPair::generate().map_err(CaError::Sign)?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(CaError::Sign)?;
        let mut chain = cert.pem();
        let roots = pem_certs(&self.files.root_cert_pem);
        for pem in &self.response_tail {
            if !roots.contains(pem) {
                chain.push_str(pem);
            }
        }
        Ok((chain, key.serialize_pem()))
    }
}

fn leaf_params(identity: &Identity, ttl: Duration) -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::default();
    // Empty subject: rcgen then marks the SAN critical, as RFC 5280 and Istio's leaves.
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(identity.to_string().try_into()?)];
    let now = SystemTime::now();
    end_entity(&mut params, now, now + ttl);
    Ok(params)
}

/// What Istio's leaves share: `CA:FALSE`, `digitalSignature`+`keyEncipherment`,
/// `serverAuth`+`clientAuth`, the authority key id, a random serial, the validity.
fn end_entity(params: &mut CertificateParams, not_before: SystemTime, not_after: SystemTime) {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial());
    params.not_before = not_before.into();
    params.not_after = not_after.into();
}

/// 128 random bits, positive (Istio's serials are 128-bit random).
fn random_serial() -> SerialNumber {
    let mut bytes: [u8; 16] = rand::random();
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    SerialNumber::from_slice(&bytes)
}

/// Each CERTIFICATE block of `pem`, re-encoded alone (one PEM string per certificate).
fn pem_certs(pem: &str) -> Vec<String> {
    rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(Result::ok)
        .map(|der| crate::ca_files::pem_encode(&der))
        .collect()
}

fn first_cert(pem: &str) -> Option<String> {
    pem_certs(pem).into_iter().next()
}
