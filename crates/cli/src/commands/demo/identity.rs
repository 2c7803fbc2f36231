//! The demo's zero trust: lateend is the mesh CA of this machine (its CA kept in DIR/ca, so a
//! restart keeps the root) and issues each workload a bootstrap token for its own identity
//! (`default/bookinfo-SERVICE`, as Bookinfo's ServiceAccounts), in DIR/tokens. Each sidecar
//! gets Istio's injected CA settings (`CA_ADDR` lateend's 15012, `XDS_ROOT_CA` the mesh root,
//! `ISTIOD_SAN`, `JWT_PATH` its token), so it fetches its SPIFFE certificate, tells lateend it
//! holds one, and the mesh runs with Istio's auto mTLS (PERMISSIVE by default).
//! In the namespace mode the sidecar runs as UID 1337: its token and the root are copied into
//! the 0755 folder that already holds its binary, the token owned by that user (0600).

use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::mesh::{HOST_ADDRESS, SERVICES, Workload};
use super::mode::Mode;

/// The name lateend's serving certificate carries (the sidecars check it, `ISTIOD_SAN`).
pub const LATEEND_SAN: &str = "lateend.istio-system.svc";
/// The UID the namespace mode's sidecars run as (Istio's proxy UID).
const PROXY_UID: u32 = 1337;
/// How long lateend may take to write its root and the tokens.
const LATEEND_WRITES: Duration = Duration::from_secs(20);

/// The workloads' ServiceAccount: Bookinfo's `bookinfo-SERVICE`.
pub fn service_account(service: &str) -> String {
    format!("bookinfo-{service}")
}

/// A workload's SPIFFE identity.
pub fn spiffe_id(service: &str) -> String {
    format!(
        "spiffe://cluster.local/ns/default/sa/{}",
        service_account(service)
    )
}

/// Where the sidecars reach lateend's CA (TLS).
pub fn ca_address(mode: Mode) -> String {
    match mode {
        Mode::Loopback => "127.0.0.1:15012".to_string(),
        Mode::Netns => format!("{HOST_ADDRESS}:15012"),
    }
}

/// The CA's files under the demo's folder `dir`.
pub struct MeshCaFiles {
    ca_dir: PathBuf,
    tokens: PathBuf,
    root: PathBuf,
}

impl MeshCaFiles {
    pub fn new(dir: &Path) -> MeshCaFiles {
        MeshCaFiles {
            ca_dir: dir.join("ca"),
            tokens: dir.join("tokens"),
            root: dir.join("root-cert.pem"),
        }
    }

    /// lateend's arguments: its CA in DIR/ca, one bootstrap token per service account, the
    /// root written out for the sidecars.
    pub fn lateend_args(&self) -> Vec<String> {
        let mut args = vec![
            "--ca-dir".to_string(),
            self.ca_dir.to_string_lossy().into_owned(),
            // Not Istio's ./etc/cacerts under whatever folder the demo was started in.
            "--cacerts-dir".to_string(),
            self.ca_dir
                .join("no-cacerts")
                .to_string_lossy()
                .into_owned(),
            "--bootstrap-token-dir".to_string(),
            self.tokens.to_string_lossy().into_owned(),
            "--webhook-ca-out".to_string(),
            self.root.to_string_lossy().into_owned(),
        ];
        for (service, _) in SERVICES {
            args.push("--bootstrap-identity".to_string());
            args.push(format!("default/{}", service_account(service)));
        }
        args
    }

    fn token(&self, service: &str) -> PathBuf {
        self.tokens
            .join("default")
            .join(service_account(service))
            .join("istio-token")
    }

    /// Waits (bounded) until lateend has written the root and every token, then gives the
    /// sidecars their copies: in place on loopback, in `uid_folder` for UID 1337 otherwise.
    pub async fn credentials(&self, uid_folder: Option<&Path>) -> anyhow::Result<Credentials> {
        let deadline = Instant::now() + LATEEND_WRITES;
        let written = || {
            std::fs::read_to_string(&self.root).is_ok_and(|pem| pem.contains("END CERTIFICATE"))
                && SERVICES.iter().all(|(s, _)| self.token(s).is_file())
        };
        while !written() {
            anyhow::ensure!(
                Instant::now() < deadline,
                "lateend did not write its root ({}) and the workloads' tokens ({}) within {LATEEND_WRITES:?}",
                self.root.display(),
                self.tokens.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let Some(folder) = uid_folder else {
            return Ok(Credentials {
                root: self.root.clone(),
                tokens: self.tokens.clone(),
            });
        };
        let root = folder.join("root-cert.pem");
        std::fs::copy(&self.root, &root)
            .with_context(|| format!("copying the mesh root to {}", root.display()))?;
        let tokens = folder.join("tokens");
        for (service, _) in SERVICES {
            let target = tokens
                .join("default")
                .join(service_account(service))
                .join("istio-token");
            copy_private(&self.token(service), &target, PROXY_UID)?;
        }
        Ok(Credentials { root, tokens })
    }
}

/// Copies `from` to `to` (folders 0755), readable only by `uid`.
fn copy_private(from: &Path, to: &Path, uid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::copy(from, to).with_context(|| format!("copying a token to {}", to.display()))?;
    std::fs::set_permissions(to, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("chmod {}", to.display()))?;
    std::os::unix::fs::chown(to, Some(uid), Some(uid))
        .with_context(|| format!("chown {} to {uid}", to.display()))
}

/// What the sidecars read: the mesh root and their tokens.
pub struct Credentials {
    root: PathBuf,
    tokens: PathBuf,
}

impl Credentials {
    /// Istio's injected CA settings for `workload`'s sidecar.
    pub fn sidecar_env(&self, workload: &Workload, mode: Mode) -> Vec<(&'static str, String)> {
        let token = self
            .tokens
            .join("default")
            .join(service_account(workload.service))
            .join("istio-token");
        vec![
            ("CA_ADDR", ca_address(mode)),
            ("XDS_ROOT_CA", self.root.to_string_lossy().into_owned()),
            ("ISTIOD_SAN", LATEEND_SAN.to_string()),
            ("JWT_PATH", token.to_string_lossy().into_owned()),
        ]
    }
}
