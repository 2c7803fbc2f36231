//! Istio's file-mounted workload certificates (`cert-chain.pem`, `key.pem`,
//! `root-cert.pem` in one folder, `/etc/certs` in Istio) as a certificate watch: read at
//! start, read again once a change has settled (the files unchanged for one poll, so a
//! chain is never paired with the previous key while they are being replaced). A bad set is
//! reported and the last good certificate kept.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use lateen_identity::{
    CertificateError, CertificateWatch, FILE_MOUNTED_CERT_CHAIN, FILE_MOUNTED_KEY,
    FILE_MOUNTED_ROOT_CERT, WorkloadCertificate,
};

/// How often the files' modification times are compared.
const POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Reads the certificates in `dir` and keeps the returned watch current until every receiver
/// is dropped. Fails when the first read fails.
pub fn watch_dir(dir: &Path) -> Result<CertificateWatch, CertificateError> {
    let first = WorkloadCertificate::from_dir(dir)?;
    tracing::info!(dir = %dir.display(), identity = %first.identity, "workload certificate loaded");
    let (sender, receiver) = tokio::sync::watch::channel(Some(Arc::new(first)));
    let dir = dir.to_path_buf();
    let mut loaded = stamps(&dir);
    let mut previous = loaded.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = sender.closed() => return,
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
            }
            let now = stamps(&dir);
            let settled = now == previous;
            previous = now.clone();
            if now == loaded || !settled {
                continue;
            }
            loaded = now;
            match WorkloadCertificate::from_dir(&dir) {
                Ok(cert) => {
                    tracing::info!(dir = %dir.display(), identity = %cert.identity, "workload certificate reloaded");
                    sender.send_replace(Some(Arc::new(cert)));
                }
                Err(err) => {
                    tracing::warn!(dir = %dir.display(), "workload certificate not reloaded, keeping the last good one: {err}");
                }
            }
        }
    });
    Ok(receiver)
}

fn stamps(dir: &Path) -> Vec<Option<SystemTime>> {
    [
        FILE_MOUNTED_CERT_CHAIN,
        FILE_MOUNTED_KEY,
        FILE_MOUNTED_ROOT_CERT,
    ]
    .iter()
    .map(|name| {
        let path: PathBuf = dir.join(name);
        std::fs::metadata(path).and_then(|m| m.modified()).ok()
    })
    .collect()
}
