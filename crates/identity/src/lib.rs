//! Workload identity for the mesh: SPIFFE identities
//! (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`) and the workload
//! certificate a proxy holds (chain, private key, trusted roots), shared by lateend's mesh CA
//! and by lateen-proxy's mutual TLS and CA client.
//!
//! Owns: identity parsing and formatting, the certificate bundle type and the watch channel
//! through which a proxy's certificate reaches its TLS code, reading Istio's file-mounted
//! certificates (`cert-chain.pem`, `key.pem`, `root-cert.pem`); keys and CSRs
//! ([`CertificateRequest`]) and the mesh CA that signs them ([`MeshCa`], its key material in
//! Istio's `cacerts` names: [`CaFiles`]).
//! Must not touch: sockets, TLS sessions, xDS, Kubernetes. A private key is never logged: the
//! types here print without it.
#![forbid(unsafe_code)]

mod ca;
mod ca_files;
mod certificate;
mod csr;
mod pem_out;
mod spiffe;

pub use ca::{
    CaError, CsrRefusal, DEFAULT_WORKLOAD_CERT_TTL, MAX_CSR_BYTES, MAX_WORKLOAD_CERT_TTL, MeshCa,
    SELF_SIGNED_ROOT_TTL, SigningPolicy,
};
pub use ca_files::{CaFiles, CaFilesError};
pub use csr::{CertificateRequest, CsrError};

pub use certificate::{
    CertificateError, CertificateWatch, FILE_MOUNTED_CERT_CHAIN, FILE_MOUNTED_KEY,
    FILE_MOUNTED_ROOT_CERT, WorkloadCertificate, identity_of,
};
pub use spiffe::{DEFAULT_TRUST_DOMAIN, Identity, IdentityError};
