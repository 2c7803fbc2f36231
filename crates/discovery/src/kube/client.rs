//! How lateend reaches the API server: in-cluster (the pod's service-account token and
//! `KUBERNETES_SERVICE_HOST`) by default when it runs in a pod, or `--kubeconfig FILE` /
//! `--context NAME` outside one.

use std::path::{Path, PathBuf};

/// Where the kubelet mounts a pod's service-account token (and `ca.crt`, `namespace`).
pub const SERVICE_ACCOUNT_TOKEN: &str = "/var/run/secrets/kubernetes.io/serviceaccount/token";

/// The cluster options of `lateend` (flattened into its arguments).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct KubeArgs {
    /// Read Services, EndpointSlices, Pods, Nodes, Namespaces, the `istio` and
    /// `istio-sidecar-injector` ConfigMaps and Istio's custom resources from the cluster this
    /// kubeconfig names. Without it, lateend uses the in-cluster configuration when it runs in
    /// a pod (KUBERNETES_SERVICE_HOST and the service-account token), and no cluster otherwise.
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,

    /// Kubeconfig context to use (default: its current-context). Alone, it reads the
    /// kubeconfig named by KUBECONFIG or ~/.kube/config.
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,

    /// Never read a cluster, even in a pod (the folder is then the only source).
    #[arg(long, conflicts_with_all = ["kubeconfig", "context"])]
    pub no_cluster: bool,
}

impl KubeArgs {
    /// Whether these options (and the environment) ask for a cluster source.
    pub fn wanted(&self) -> bool {
        if self.no_cluster {
            return false;
        }
        self.kubeconfig.is_some() || self.context.is_some() || in_pod()
    }
}

/// Whether this process runs in a Kubernetes pod with its service-account token mounted.
pub fn in_pod() -> bool {
    std::env::var_os("KUBERNETES_SERVICE_HOST").is_some_and(|h| !h.is_empty())
        && Path::new(SERVICE_ACCOUNT_TOKEN).is_file()
}

/// Why no client could be made (the cause is the error's `source()`, which `anyhow`'s `{:#}`
/// prints).
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("kubeconfig {}", path.display())]
    Kubeconfig {
        path: PathBuf,
        source: kube::config::KubeconfigError,
    },
    #[error("kubeconfig (KUBECONFIG or ~/.kube/config): {0}")]
    DefaultKubeconfig(kube::config::KubeconfigError),
    #[error("in-cluster configuration (KUBERNETES_SERVICE_HOST, {SERVICE_ACCOUNT_TOKEN}): {0}")]
    InCluster(kube::config::InClusterError),
    #[error("Kubernetes client")]
    Client(#[from] kube::Error),
}

/// A client for the cluster `opts` name: `--kubeconfig` (with `--context`), else `--context`
/// in the default kubeconfig, else the in-cluster configuration.
pub async fn client(opts: &KubeArgs) -> Result<kube::Client, KubeError> {
    let options = kube::config::KubeConfigOptions {
        context: opts.context.clone(),
        ..Default::default()
    };
    let config = if let Some(path) = &opts.kubeconfig {
        let file =
            kube::config::Kubeconfig::read_from(path).map_err(|source| KubeError::Kubeconfig {
                path: path.clone(),
                source,
            })?;
        kube::Config::from_custom_kubeconfig(file, &options)
            .await
            .map_err(|source| KubeError::Kubeconfig {
                path: path.clone(),
                source,
            })?
    } else if opts.context.is_some() {
        kube::Config::from_kubeconfig(&options)
            .await
            .map_err(KubeError::DefaultKubeconfig)?
    } else {
        kube::Config::incluster().map_err(KubeError::InCluster)?
    };
    Ok(kube::Client::try_from(config)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_kubeconfig_names_the_file() {
        let opts = KubeArgs {
            kubeconfig: Some(PathBuf::from("/nonexistent/lateen-kubeconfig")),
            ..KubeArgs::default()
        };
        let err = client(&opts).await.err().map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with("kubeconfig /nonexistent/lateen-kubeconfig")),
            "{err:?}"
        );
        assert!(opts.wanted());
    }
}
