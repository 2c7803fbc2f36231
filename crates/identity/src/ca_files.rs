//! The CA's key material under Istio's names, the same in a folder (istiod's mounted
//! `cacerts`, `/etc/cacerts`) and in a Secret (`cacerts`, or `istio-ca-secret` for the
//! self-signed root): `ca-cert.pem` (the signing certificate), `ca-key.pem` (its key),
//! `cert-chain.pem` (the signing certificate's chain up to the root), `root-cert.pem`.

use std::path::{Path, PathBuf};

use base64::Engine;

/// The four PEM texts (`cert_chain_pem` and `root_cert_pem` may be empty for a self-signed
/// root: the signing certificate is then the root).
#[derive(Clone, PartialEq, Eq)]
pub struct CaFiles {
    pub ca_cert_pem: String,
    pub ca_key_pem: String,
    pub cert_chain_pem: String,
    pub root_cert_pem: String,
}

impl std::fmt::Debug for CaFiles {
    // Never prints the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaFiles")
            .field("ca_cert_pem", &self.ca_cert_pem)
            .finish_non_exhaustive()
    }
}

/// Why a CA folder cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[error("{}: {reason}", path.display())]
pub struct CaFilesError {
    pub path: PathBuf,
    pub reason: String,
}

impl CaFiles {
    pub const CA_CERT: &'static str = "ca-cert.pem";
    pub const CA_KEY: &'static str = "ca-key.pem";
    pub const CERT_CHAIN: &'static str = "cert-chain.pem";
    pub const ROOT_CERT: &'static str = "root-cert.pem";

    /// Whether `dir` holds a CA (its `ca-cert.pem` and `ca-key.pem`).
    pub fn present(dir: &Path) -> bool {
        dir.join(Self::CA_CERT).is_file() && dir.join(Self::CA_KEY).is_file()
    }

    /// Reads `dir`; `cert-chain.pem` and `root-cert.pem` may be missing (self-signed).
    pub fn read_dir(dir: &Path) -> Result<CaFiles, CaFilesError> {
        let read = |name: &str, required: bool| {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok(text),
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => {
                    Ok(String::new())
                }
                Err(e) => Err(CaFilesError {
                    path,
                    reason: e.to_string(),
                }),
            }
        };
        Ok(CaFiles {
            ca_cert_pem: read(Self::CA_CERT, true)?,
            ca_key_pem: read(Self::CA_KEY, true)?,
            cert_chain_pem: read(Self::CERT_CHAIN, false)?,
            root_cert_pem: read(Self::ROOT_CERT, false)?,
        })
    }

    /// Writes the four files into `dir` (created if needed); the key readable by its owner
    /// only, and written last so that a folder with a key is complete.
    pub fn write_dir(&self, dir: &Path) -> Result<(), CaFilesError> {
        let error = |path: PathBuf, e: std::io::Error| CaFilesError {
            path,
            reason: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| error(dir.to_path_buf(), e))?;
        for (name, text) in [
            (Self::CA_CERT, &self.ca_cert_pem),
            (Self::CERT_CHAIN, &self.cert_chain_pem),
            (Self::ROOT_CERT, &self.root_cert_pem),
        ] {
            let path = dir.join(name);
            std::fs::write(&path, text).map_err(|e| error(path, e))?;
        }
        let key_path = dir.join(Self::CA_KEY);
        write_private(&key_path, &self.ca_key_pem).map_err(|e| error(key_path, e))
    }

    /// The (name, PEM) pairs, as a Secret's data keys.
    pub fn entries(&self) -> [(&'static str, &str); 4] {
        [
            (Self::CA_CERT, &self.ca_cert_pem),
            (Self::CA_KEY, &self.ca_key_pem),
            (Self::CERT_CHAIN, &self.cert_chain_pem),
            (Self::ROOT_CERT, &self.root_cert_pem),
        ]
    }
}

/// Writes through a temporary file renamed into place, created 0600.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// One certificate as PEM.
pub(crate) fn pem_encode(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}
