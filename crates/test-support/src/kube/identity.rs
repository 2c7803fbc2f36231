//! Acting as a workload's identity: ServiceAccount tokens from the TokenRequest API, a
//! kubeconfig for such a token (to run a binary with exactly the RBAC a manifest grants), and
//! the in-cluster view a pod has (`/var/run/secrets/kubernetes.io/serviceaccount` and
//! `KUBERNETES_SERVICE_HOST/PORT`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::{TestCluster, pki};

/// Where a pod finds its ServiceAccount token, CA and namespace (fixed in client libraries,
/// kube-rs included).
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

impl TestCluster {
    /// A token for ServiceAccount `namespace/name` with `audiences` (none: the API server's
    /// own), valid for an hour, from the TokenRequest API.
    pub fn service_account_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
    ) -> anyhow::Result<String> {
        self.create_token(namespace, name, audiences, None)
    }

    /// The token the kubelet projects into Pod `namespace/pod` running as ServiceAccount
    /// `service_account`: bound to the Pod (its claims name the pod; deleting the pod revokes
    /// it), with `audiences`, valid for an hour.
    pub fn pod_token(
        &self,
        namespace: &str,
        service_account: &str,
        pod: &str,
        audiences: &[&str],
    ) -> anyhow::Result<String> {
        self.create_token(namespace, service_account, audiences, Some(pod))
    }

    fn create_token(
        &self,
        namespace: &str,
        name: &str,
        audiences: &[&str],
        pod: Option<&str>,
    ) -> anyhow::Result<String> {
        let mut flags: Vec<String> = audiences
            .iter()
            .map(|a| format!("--audience={a}"))
            .collect();
        if let Some(pod) = pod {
            flags.push("--bound-object-kind=Pod".into());
            flags.push(format!("--bound-object-name={pod}"));
        }
        let mut args = vec!["create", "token", name, "-n", namespace, "--duration=1h"];
        args.extend(flags.iter().map(String::as_str));
        let token = self
            .kubectl_ok(&args, None)
            .with_context(|| format!("a token for ServiceAccount {namespace}/{name}"))?;
        Ok(token.trim().to_string())
    }

    /// A kubeconfig (a new file in the cluster's dir) that authenticates with `token`.
    pub fn kubeconfig_for_token(&self, token: &str) -> anyhow::Result<PathBuf> {
        let path = self.unique_path("token.kubeconfig");
        std::fs::write(
            &path,
            pki::kubeconfig_text(&self.server_url(), &self.pki.ca_cert, "token-user", token),
        )
        .with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }

    /// A new folder holding `token`, `ca.crt` and `namespace` as a pod of `namespace` sees
    /// [`SERVICE_ACCOUNT_DIR`].
    pub fn in_cluster_files(&self, namespace: &str, token: &str) -> anyhow::Result<PathBuf> {
        let dir = self.unique_path("serviceaccount");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (file, text) in [
            ("token", token),
            ("ca.crt", self.ca_pem()),
            ("namespace", namespace),
        ] {
            std::fs::write(dir.join(file), text)
                .with_context(|| format!("writing {}/{file}", dir.display()))?;
        }
        Ok(dir)
    }

    /// `KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT` (and `_HTTPS`) pointing at this API
    /// server, as the kubelet sets them in every container.
    pub fn kubernetes_service_env(&self) -> Vec<(String, String)> {
        let port = self.api_port().to_string();
        vec![
            ("KUBERNETES_SERVICE_HOST".into(), "127.0.0.1".into()),
            ("KUBERNETES_SERVICE_PORT".into(), port.clone()),
            ("KUBERNETES_SERVICE_PORT_HTTPS".into(), port),
        ]
    }

    /// `program` as a pod of `namespace` running as the owner of `token` would run: in its own
    /// mount namespace where [`SERVICE_ACCOUNT_DIR`] holds [`in_cluster_files`]
    /// (Self::in_cluster_files), with [`kubernetes_service_env`](Self::kubernetes_service_env).
    /// Needs root (`unshare --mount`); the mount point `/run/secrets/kubernetes.io/
    /// serviceaccount` is created empty on the host if missing, and nothing is mounted there
    /// outside the new namespace. Add arguments with `.arg()`, then spawn.
    pub fn in_cluster_command(
        &self,
        program: &Path,
        namespace: &str,
        token: &str,
    ) -> anyhow::Result<Command> {
        let files = self.in_cluster_files(namespace, token)?;
        // /var/run is /run on every current distribution; make the mount point in /run.
        let mount_point = Path::new("/var/run").join("secrets/kubernetes.io/serviceaccount");
        std::fs::create_dir_all(&mount_point)
            .with_context(|| format!("creating the mount point {}", mount_point.display()))?;
        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(r#"mount --bind "$0" "$1" && shift && exec "$@""#)
            .arg(&files)
            .arg(SERVICE_ACCOUNT_DIR)
            .arg(program)
            .envs(self.kubernetes_service_env());
        Ok(command)
    }
}
