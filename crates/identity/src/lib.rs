//! Workload identity for the mesh: SPIFFE identities
//! (`spiffe://<trust domain>/ns/<namespace>/sa/<service account>`) and the workload
//! certificate a proxy holds (chain, private key, trusted roots), shared by lateend's mesh CA
//! and by lateen-proxy's mutual TLS and CA client.
//!
//! Owns: identity parsing and formatting, the certificate bundle type and the watch channel
//! through which a proxy's certificate reaches its TLS code, reading Istio's file-mounted
//! certificates (`cert-chain.pem`, `key.pem`, `root-cert.pem`).
//! Must not touch: sockets, TLS sessions, xDS, Kubernetes. A private key is never logged: the
//! types here print without it.
#![forbid(unsafe_code)]

mod certificate;
mod spiffe;

pub use certificate::{
    CertificateError, CertificateWatch, FILE_MOUNTED_CERT_CHAIN, FILE_MOUNTED_KEY,
    FILE_MOUNTED_ROOT_CERT, WorkloadCertificate, identity_of,
};
pub use spiffe::{DEFAULT_TRUST_DOMAIN, Identity, IdentityError};
