//! Running one container of a stored Pod as a process, the way a kubelet would start it: its
//! arguments and environment ([`container_process`]), and its volume mounts filled as the
//! kubelet fills them — `emptyDir`, `configMap` (read from the API), `downwardAPI`, `projected`
//! (ServiceAccount tokens from the TokenRequest API bound to the pod, with their audience) — then
//! bind-mounted at their `mountPath` in a mount namespace of the process's own. The
//! `kube-api-access-*` volume that admission adds to every pod comes along, so the process has
//! its in-cluster identity as in a pod.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use super::TestCluster;
use super::container::{ContainerProcess, container_process, field_value};

impl TestCluster {
    /// Container `container` of `pod` (as stored, e.g. after injection, bound and running) as a
    /// `Command` running `program` in place of the image's entrypoint: the container's command
    /// after its first word, then its args, `$(VAR)`s expanded; its environment (downward-API
    /// values filled, `KUBERNETES_SERVICE_HOST/PORT` pointing here) on top of the test's own;
    /// and every volume mount of the container filled and bind-mounted at its `mountPath` in a
    /// new mount namespace (root needed; missing mount points are created empty on the host,
    /// nothing is mounted outside that namespace). Returns the command and the resolved
    /// container (to read its environment or arguments). To run it inside a network namespace
    /// as the pod, wrap it: [`prefixed`]`(&command, &["ip", "netns", "exec", "pod-ns"])`.
    pub async fn container_command(
        &self,
        pod: &Pod,
        container: &str,
        program: &Path,
    ) -> anyhow::Result<(Command, ContainerProcess)> {
        let process = container_process(pod, container, &self.kubernetes_service_env())?;
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let root = self.unique_path(&format!("pod-{pod_name}-{container}"));
        let spec = pod.spec.as_ref().context("the pod has no spec")?;
        let mounts = spec
            .containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == container)
            .and_then(|c| c.volume_mounts.clone())
            .unwrap_or_default();
        let mut binds: Vec<(PathBuf, String)> = Vec::new();
        for mount in &mounts {
            let volume = spec
                .volumes
                .iter()
                .flatten()
                .find(|v| v.name == mount.name)
                .with_context(|| format!("volumeMount {} names no volume", mount.name))?;
            let dir = root.join(&volume.name);
            if !dir.exists() {
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                self.fill_volume(pod, volume, &dir)
                    .await
                    .with_context(|| format!("volume {} of pod {pod_name}", volume.name))?;
            }
            let source = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => dir.join(sub),
                None => dir,
            };
            binds.push((source, mount.mount_path.clone()));
        }

        let mut command = Command::new("unshare");
        command
            .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
            .arg(
                r#"while [ "$1" != "--" ]; do mkdir -p "$2" && mount --bind "$1" "$2" || exit 121; shift 2; done; shift; exec "$@""#,
            )
            .arg("sh");
        for (source, target) in &binds {
            command.arg(source).arg(target);
        }
        command.arg("--").arg(program);
        command.args(process.command.iter().skip(1));
        command.args(&process.args);
        command.envs(process.env.iter().map(|(k, v)| (k, v)));
        Ok((command, process))
    }

    /// Writes what the kubelet would put in `volume` into `dir`.
    async fn fill_volume(&self, pod: &Pod, volume: &Volume, dir: &Path) -> anyhow::Result<()> {
        if volume.empty_dir.is_some() {
            return Ok(());
        }
        if let Some(source) = &volume.config_map {
            let items = source.items.as_deref().unwrap_or_default();
            return self
                .write_config_map(pod, &source.name, items, source.optional, dir)
                .await;
        }
        if let Some(source) = &volume.downward_api {
            return write_downward(pod, source.items.as_deref().unwrap_or_default(), dir);
        }
        let Some(projected) = &volume.projected else {
            bail!("only emptyDir, configMap, downwardAPI and projected volumes are supported");
        };
        for source in projected.sources.iter().flatten() {
            if let Some(token) = &source.service_account_token {
                let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                let account = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.as_deref())
                    .unwrap_or("default");
                let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
                let audiences: Vec<&str> = token.audience.iter().map(String::as_str).collect();
                let jwt = self.pod_token(namespace, account, pod_name, &audiences)?;
                write_file(dir, &token.path, &jwt)?;
            } else if let Some(source) = &source.config_map {
                let items = source.items.as_deref().unwrap_or_default();
                self.write_config_map(pod, &source.name, items, source.optional, dir)
                    .await?;
            } else if let Some(source) = &source.downward_api {
                write_downward(pod, source.items.as_deref().unwrap_or_default(), dir)?;
            } else {
                bail!(
                    "only serviceAccountToken, configMap and downwardAPI projections are supported"
                );
            }
        }
        Ok(())
    }

    async fn write_config_map(
        &self,
        pod: &Pod,
        name: &str,
        items: &[KeyToPath],
        optional: Option<bool>,
        dir: &Path,
    ) -> anyhow::Result<()> {
        let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: ::kube::Api<ConfigMap> = ::kube::Api::namespaced(self.client().await, namespace);
        // The kubelet waits for a missing ConfigMap (e.g. kube-root-ca.crt of a brand-new
        // namespace, or istio-ca-root-cert before lateend publishes it); so do we, briefly.
        let mut found = api.get_opt(name).await?;
        for _ in 0..100 {
            if found.is_some() || optional == Some(true) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            found = api.get_opt(name).await?;
        }
        let Some(config_map) = found else {
            if optional == Some(true) {
                return Ok(());
            }
            bail!("ConfigMap {namespace}/{name} does not exist after 10 s");
        };
        let data = config_map.data.unwrap_or_default();
        if items.is_empty() {
            for (key, value) in &data {
                write_file(dir, key, value)?;
            }
            return Ok(());
        }
        for item in items {
            let value = data
                .get(&item.key)
                .with_context(|| format!("ConfigMap {namespace}/{name} has no key {}", item.key))?;
            write_file(dir, &item.path, value)?;
        }
        Ok(())
    }
}

fn write_downward(pod: &Pod, items: &[DownwardAPIVolumeFile], dir: &Path) -> anyhow::Result<()> {
    for item in items {
        let Some(field) = &item.field_ref else {
            bail!("downwardAPI item {}: only fieldRef is supported", item.path);
        };
        write_file(dir, &item.path, &field_value(pod, &field.field_path)?)?;
    }
    Ok(())
}

/// Writes `dir/relative`, refusing paths that leave `dir` (as the API server does).
fn write_file(dir: &Path, relative: &str, text: &str) -> anyhow::Result<()> {
    if relative.split('/').any(|part| part == "..") || relative.starts_with('/') {
        bail!("volume file path {relative:?} leaves its volume");
    }
    let path = dir.join(relative);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// `prefix` (e.g. `ip netns exec NAME`) followed by `command`'s program and arguments, with its
/// environment.
pub fn prefixed(command: &Command, prefix: &[&str]) -> Command {
    let Some((first, rest)) = prefix.split_first() else {
        let mut same = Command::new(command.get_program());
        same.args(command.get_args());
        copy_env(command, &mut same);
        return same;
    };
    let mut wrapped = Command::new(first);
    wrapped
        .args(rest)
        .arg(command.get_program())
        .args(command.get_args());
    copy_env(command, &mut wrapped);
    wrapped
}

fn copy_env(from: &Command, to: &mut Command) {
    for (key, value) in from.get_envs() {
        match value {
            Some(v) => to.env(key, v),
            None => to.env_remove(key),
        };
    }
}
