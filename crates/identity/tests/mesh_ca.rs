//! The mesh CA end to end in process: a workload's key and CSR, signing, what the leaf
//! carries, the chain verifying to the root (self-signed and plugged-in with an
//! intermediate), the CA kept in a folder across a restart, and refused CSRs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::sync::Arc;
use std::time::Duration;

use lateen_identity::{
    CaFiles, CertificateRequest, CsrRefusal, Identity, MAX_CSR_BYTES, MeshCa, SigningPolicy,
    WorkloadCertificate,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};

fn identity(ns: &str, sa: &str) -> Identity {
    Identity::new("cluster.local", ns, sa)
}

/// Whether the bundle's chain verifies against `root_pem` (as a peer's mTLS would).
fn verifies(cert: &WorkloadCertificate, root_pem: &str) -> bool {
    let mut roots = rustls::RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(der.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    verifier
        .verify_client_cert(&cert.chain[0], &cert.chain[1..], UnixTime::now())
        .is_ok()
}

fn issue(ca: &MeshCa, id: &Identity, ttl: Option<Duration>) -> WorkloadCertificate {
    let request = CertificateRequest::generate(id).unwrap();
    let chain = ca
        .sign_csr(
            request.csr_pem.as_bytes(),
            id,
            ttl,
            &SigningPolicy::default(),
        )
        .unwrap()
        .unwrap();
    request.into_certificate(&chain, Vec::new()).unwrap()
}

#[test]
fn self_signed_ca_issues_spiffe_leaves_with_istios_extensions() {
    let ca = MeshCa::self_signed("cluster.local").unwrap();
    let id = identity("default", "bookinfo-productpage");
    let cert = issue(&ca, &id, None);
    assert_eq!(cert.identity, id);
    assert_eq!(cert.chain.len(), 1, "leaf only: the root is the signer");
    assert_eq!(cert.roots.len(), 1);
    let lifetime = cert.lifetime();
    assert_eq!(lifetime, Duration::from_secs(24 * 3600), "default TTL 24h");
    assert!(verifies(&cert, ca.root_cert_pem()));
    assert!(!verifies(
        &cert,
        MeshCa::self_signed("cluster.local")
            .unwrap()
            .root_cert_pem()
    ));

    use x509_parser::prelude::*;
    let (_, leaf) = X509Certificate::from_der(cert.chain[0].as_ref()).unwrap();
    assert!(leaf.subject().iter().next().is_none(), "empty subject");
    let san = leaf.subject_alternative_name().unwrap().unwrap();
    assert!(san.critical);
    assert_eq!(
        san.value.general_names,
        vec![GeneralName::URI(
            "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
        )]
    );
    let ku = leaf.key_usage().unwrap().unwrap().value;
    assert!(ku.digital_signature() && ku.key_encipherment() && !ku.key_cert_sign());
    let eku = leaf.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.server_auth && eku.client_auth);
    let bc = leaf.basic_constraints().unwrap().unwrap();
    assert!(!bc.value.ca && bc.critical);
    assert!(leaf.raw_serial().len() >= 16, "128-bit serial");
    let root_der = CertificateDer::from_pem_slice(ca.root_cert_pem().as_bytes()).unwrap();
    let (_, root) = X509Certificate::from_der(root_der.as_ref()).unwrap();
    assert_eq!(
        root.subject()
            .iter_organization()
            .next()
            .unwrap()
            .as_str()
            .unwrap(),
        "cluster.local"
    );
    // The debug form of what holds a key never shows it.
    let printed = format!("{cert:?} {:?} {:?}", ca, ca.files());
    assert!(!printed.contains("PRIVATE KEY"), "{printed}");
}

#[test]
fn requested_ttl_is_honoured_up_to_the_max() {
    let ca = MeshCa::self_signed("cluster.local").unwrap();
    let id = identity("ns", "sa");
    let cert = issue(&ca, &id, Some(Duration::from_secs(20)));
    assert_eq!(cert.lifetime(), Duration::from_secs(20));
    let request = CertificateRequest::generate(&id).unwrap();
    let policy = SigningPolicy {
        default_ttl: Duration::from_secs(60),
        max_ttl: Duration::from_secs(3600),
    };
    let refusal = ca
        .sign_csr(
            request.csr_pem.as_bytes(),
            &id,
            Some(Duration::from_secs(7200)),
            &policy,
        )
        .unwrap()
        .unwrap_err();
    assert!(matches!(refusal, CsrRefusal::Ttl { .. }), "{refusal}");
}

#[test]
fn a_kept_ca_signs_after_a_restart_under_the_same_root() {
    let dir = tempfile::tempdir().unwrap();
    let ca = MeshCa::self_signed("cluster.local").unwrap();
    ca.files().write_dir(dir.path()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("ca-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key is its owner's only");
    assert!(CaFiles::present(dir.path()));
    let again = MeshCa::from_files(CaFiles::read_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(again.root_cert_pem(), ca.root_cert_pem());
    let cert = issue(&again, &identity("a", "b"), None);
    assert!(verifies(&cert, ca.root_cert_pem()));
}

#[test]
fn a_plugged_in_intermediate_signs_and_the_chain_reaches_the_root() {
    // root -> intermediate, as Istio's "plug in CA certificates" task makes them.
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    };
    let mut root_params = CertificateParams::default();
    root_params.distinguished_name = rcgen::DistinguishedName::new();
    root_params
        .distinguished_name
        .push(DnType::CommonName, "Root CA");
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root_key = KeyPair::generate().unwrap();
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let mut mid_params = CertificateParams::default();
    mid_params.distinguished_name = rcgen::DistinguishedName::new();
    mid_params
        .distinguished_name
        .push(DnType::CommonName, "Intermediate CA cluster1");
    mid_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    mid_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    mid_params.use_authority_key_identifier_extension = true;
    let mid_key = KeyPair::generate().unwrap();
    let mid = mid_params.signed_by(&mid_key, &root_issuer).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let files = CaFiles {
        ca_cert_pem: mid.pem(),
        ca_key_pem: mid_key.serialize_pem(),
        cert_chain_pem: format!("{}{}", mid.pem(), root.pem()),
        root_cert_pem: root.pem(),
    };
    files.write_dir(dir.path()).unwrap();
    let ca = MeshCa::from_files(CaFiles::read_dir(dir.path()).unwrap()).unwrap();
    assert_eq!(ca.root_cert_pem(), root.pem());

    let id = identity("istio-system", "istio-ingressgateway-service-account");
    let request = CertificateRequest::generate(&id).unwrap();
    let chain = ca
        .sign_csr(
            request.csr_pem.as_bytes(),
            &id,
            None,
            &SigningPolicy::default(),
        )
        .unwrap()
        .unwrap();
    assert_eq!(chain.len(), 3, "leaf, intermediate, root");
    assert_eq!(chain[1], mid.pem());
    assert_eq!(chain[2], root.pem());
    let cert = request.into_certificate(&chain, Vec::new()).unwrap();
    assert_eq!(cert.chain.len(), 2, "leaf and intermediate are presented");
    assert!(verifies(&cert, &root.pem()));

    // lateend's serving certificate from the same CA: leaf + intermediate.
    let (serving, _key) = ca
        .issue_server(&["lateend.istio-system.svc".into()])
        .unwrap();
    assert_eq!(
        CertificateDer::pem_slice_iter(serving.as_bytes()).count(),
        2
    );
}

#[test]
fn a_ca_folder_with_a_bad_file_is_refused_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca-cert.pem"), "not a certificate").unwrap();
    std::fs::write(dir.path().join("ca-key.pem"), "not a key").unwrap();
    let error = MeshCa::from_files(CaFiles::read_dir(dir.path()).unwrap())
        .unwrap_err()
        .to_string();
    assert!(error.starts_with("ca-key.pem:"), "{error}");
    let missing = CaFiles::read_dir(&dir.path().join("nope"))
        .unwrap_err()
        .to_string();
    assert!(missing.contains("ca-cert.pem"), "{missing}");
}

#[test]
fn garbage_oversized_and_foreign_csrs_are_refused() {
    let ca = MeshCa::self_signed("cluster.local").unwrap();
    let policy = SigningPolicy::default();
    let caller = identity("default", "reviews");
    let sign = |csr: &[u8]| ca.sign_csr(csr, &caller, None, &policy).unwrap();

    assert!(matches!(sign(b"garbage"), Err(CsrRefusal::Malformed(_))));
    let not_a_csr =
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n";
    assert!(matches!(
        sign(not_a_csr.as_bytes()),
        Err(CsrRefusal::Malformed(_))
    ));
    let huge = vec![b'A'; MAX_CSR_BYTES + 1];
    assert_eq!(sign(&huge), Err(CsrRefusal::TooLarge(MAX_CSR_BYTES + 1)));

    let other = identity("default", "ratings");
    let foreign = CertificateRequest::generate(&other).unwrap();
    match sign(foreign.csr_pem.as_bytes()) {
        Err(CsrRefusal::Identity { requested, allowed }) => {
            assert_eq!(requested, vec![other.to_string()]);
            assert_eq!(allowed, caller.to_string());
        }
        other => panic!("{other:?}"),
    }
    // After all that the CA still signs the caller's own.
    let own = CertificateRequest::generate(&caller).unwrap();
    assert!(sign(own.csr_pem.as_bytes()).is_ok());
}
