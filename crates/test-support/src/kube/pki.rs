//! The files a test cluster's components are started with: a private CA and the API server's
//! serving certificate signed by it (so `ca_pem()` is known before the server starts), the
//! service-account signing key, the static token file holding the admin, and kubeconfigs.

use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

use std::net::IpAddr;

use anyhow::Context;
use rcgen::KeyPair;

use crate::test_ca::TestCa;

/// The names the API server answers to (`kube-apiserver` first, its common name): loopback, and
/// the `kubernetes` Service's names and ClusterIP (the first address of 10.96.0.0/16) that
/// in-cluster clients use.
const SERVING_DNS_NAMES: [&str; 6] = [
    "kube-apiserver",
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
];
const SERVING_IPS: [&str; 3] = ["127.0.0.1", "::1", "10.96.0.1"];

/// Paths of the generated files (all inside the cluster's temp dir).
pub(crate) struct Pki {
    pub(crate) ca_pem: String,
    pub(crate) ca_cert: PathBuf,
    pub(crate) ca_key: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) service_account_key: PathBuf,
    pub(crate) token_file: PathBuf,
    pub(crate) admin_token: String,
}

/// Writes the CA, the serving pair, the service-account key and the token file into `dir`.
pub(crate) fn generate(dir: &Path) -> anyhow::Result<Pki> {
    let ca = TestCa::new("lateen test cluster CA")?;
    let ips = SERVING_IPS
        .iter()
        .map(|ip| ip.parse::<IpAddr>())
        .collect::<Result<Vec<_>, _>>()
        .context("serving IP")?;
    let serving = ca.server_cert(&SERVING_DNS_NAMES, &ips)?;
    let ca_pem = ca.pem().to_string();

    let pki = Pki {
        ca_pem: ca_pem.clone(),
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("service-account.key"),
        token_file: dir.join("tokens.csv"),
        admin_token: random_token(),
    };
    write(&pki.ca_cert, &ca_pem)?;
    write(&pki.ca_key, ca.key_pem())?;
    write(&pki.serving_cert, &serving.cert_pem)?;
    write(&pki.serving_key, &serving.key_pem)?;
    write_service_account_key(&pki.service_account_key)?;
    // token,user,uid,"groups": the admin is in system:masters, which RBAC never restricts.
    write(
        &pki.token_file,
        &format!(
            "{},lateen-test-admin,lateen-test-admin,\"system:masters\"\n",
            pki.admin_token
        ),
    )?;
    Ok(pki)
}

/// One RSA key (openssl) signs and verifies service-account tokens, as on kubeadm clusters.
/// Without openssl, an ECDSA P-256 key (ES256), which the API server accepts just the same.
fn write_service_account_key(path: &Path) -> anyhow::Result<()> {
    let rsa = Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
        ])
        .arg(path)
        .output();
    match rsa {
        Ok(out) if out.status.success() => Ok(()),
        _ => write(path, &KeyPair::generate()?.serialize_pem()),
    }
}

fn write(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// 32 hex digits from the standard library's per-process random keys.
pub(crate) fn random_token() -> String {
    let mut out = String::with_capacity(32);
    for round in 0..2u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(round);
        out.push_str(&format!("{:016x}", h.finish()));
    }
    out
}

/// A kubeconfig for `server` trusting `ca_cert`, authenticating with a bearer `token`.
pub(crate) fn kubeconfig_text(server: &str, ca_cert: &Path, user: &str, token: &str) -> String {
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: lateen-test\n  \
           cluster:\n    \
             server: {server}\n    \
             certificate-authority: {ca}\n\
         users:\n\
         - name: {user}\n  \
           user:\n    \
             token: {token}\n\
         contexts:\n\
         - name: lateen-test\n  \
           context:\n    \
             cluster: lateen-test\n    \
             user: {user}\n    \
             namespace: default\n\
         current-context: lateen-test\n",
        ca = ca_cert.display(),
    )
}
