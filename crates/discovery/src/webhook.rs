//! The admission webhooks on `--webhook-address` (15017, like istiod), served by
//! `lateen-inject` over TLS: sidecar injection (`/inject...`) and Istio's configuration
//! validation (`/validate`, [`crate::admission`]). The certificate comes from
//! `--webhook-cert`/`--webhook-key`, or is generated for `lateend.istio-system.svc` (its CA
//! certificate can be written out as PEM with `--webhook-ca-out`; base64 of that file is the
//! webhook configurations' `caBundle`).
//!
//! Injection trusts the API server's selection (the webhook configuration's namespace and
//! object selectors): whatever pod it is called for is injected unless the injector's own
//! checks say no. Native sidecars follow `ENABLE_NATIVE_SIDECARS` and, in `auto`, the
//! cluster's nodes when lateend has a cluster ([`lateen_inject::native`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use lateen_inject::InjectConfig;
use lateen_inject::native::NativeSidecars;
use lateen_inject::webhook::{ConfigValidator, WebhookCert, WebhookState};
use tokio::net::TcpListener;

/// Files the webhook reads.
#[derive(Clone, Debug, Default)]
pub struct WebhookFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca_out: Option<PathBuf>,
    /// Injector template config (Istio's `config` of the `istio-sidecar-injector` ConfigMap).
    pub inject_config: Option<PathBuf>,
    /// Injector values (`values` of the same ConfigMap).
    pub inject_values: Option<PathBuf>,
    /// MeshConfig the injected proxies get.
    pub mesh: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("reading {}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    Inject(#[from] lateen_inject::InjectError),
    #[error("webhook certificate: {0}")]
    Cert(String),
    #[error("--webhook-cert and --webhook-key go together")]
    HalfCert,
}

fn read(path: &Path) -> Result<String, WebhookError> {
    std::fs::read_to_string(path).map_err(|source| WebhookError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// lateend's serving certificate (webhook and xDS over TLS): from `--webhook-cert` and
/// `--webhook-key`, or generated for `lateend.istio-system.svc`; its CA is written to
/// `--webhook-ca-out` when given.
pub fn load_cert(files: &WebhookFiles) -> Result<WebhookCert, WebhookError> {
    let cert = match (&files.cert, &files.key) {
        (Some(c), Some(k)) => WebhookCert::from_pem_files(c, k, None),
        (None, None) => WebhookCert::generate_for_lateend(),
        _ => return Err(WebhookError::HalfCert),
    }
    .map_err(|e| WebhookError::Cert(e.to_string()))?;
    if let Some(out) = &files.ca_out {
        std::fs::write(out, &cert.ca_pem).map_err(|source| WebhookError::Read {
            path: out.clone(),
            source,
        })?;
    }
    Ok(cert)
}

/// TLS settings of `cert` (HTTP/2 and HTTP/1.1 ALPN).
pub fn server_config(cert: &WebhookCert) -> Result<Arc<rustls::ServerConfig>, WebhookError> {
    cert.server_config()
        .map_err(|e| WebhookError::Cert(e.to_string()))
}

/// Loads the injector config and serves the webhooks (injection with `native_sidecars`, and
/// validation) on `listener` in the background.
pub fn start(
    listener: TcpListener,
    cert: &WebhookCert,
    files: &WebhookFiles,
    native_sidecars: NativeSidecars,
) -> Result<Arc<WebhookState>, WebhookError> {
    let mut config = InjectConfig::default();
    if let Some(p) = &files.inject_config {
        config.apply_inject_config_text(&read(p)?, &p.display().to_string())?;
    }
    if let Some(p) = &files.inject_values {
        config.apply_values_text(&read(p)?, &p.display().to_string())?;
    }
    if let Some(p) = &files.mesh {
        config.apply_mesh_config_text(&read(p)?, &p.display().to_string())?;
    }
    let tls = server_config(cert)?;
    let validator: Arc<dyn ConfigValidator> = Arc::new(crate::admission::IstioValidator);
    let state = WebhookState::build(config, native_sidecars, Some(validator));
    let serving = state.clone();
    tokio::spawn(async move {
        if let Err(e) = lateen_inject::webhook::serve(listener, tls, serving).await {
            tracing::error!(error = %e, "injection webhook stopped");
        }
    });
    Ok(state)
}
