//! Running one container of a Pod as a process, the way a kubelet would start it: its
//! arguments and environment ([`container_process`]), and its volume mounts filled as the
//! kubelet fills them — `emptyDir`, `configMap`, `downwardAPI`, `projected` (ServiceAccount
//! tokens, ConfigMaps, downward-API files) — then bind-mounted at their `mountPath` in a mount
//! namespace of the process's own. With the test cluster ([`TestCluster::container_command`],
//! for a stored Pod) ConfigMaps are read from the API and tokens come from the TokenRequest API
//! bound to the pod, so the `kube-api-access-*` volume that admission adds comes along too;
//! without one ([`pod_container_command`] with [`VolumeSource::Supplied`], e.g. for a pod that
//! was only injected) the test supplies both.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::{ConfigMap, DownwardAPIVolumeFile, KeyToPath, Pod, Volume};

use super::TestCluster;
use super::container::{ContainerProcess, container_process, field_value};

/// Where the contents of a pod's `configMap` volumes and ServiceAccount tokens come from.
#[derive(Clone, Copy)]
pub enum VolumeSource<'a> {
    /// The test cluster: ConfigMaps from the API (waited for, as a kubelet waits), tokens from
    /// TokenRequest bound to the pod (which must be stored).
    Cluster(&'a TestCluster),
    /// No cluster: ConfigMaps by name (key to text) and the one token every
    /// `serviceAccountToken` projection gets.
    Supplied {
        config_maps: &'a BTreeMap<String, BTreeMap<String, String>>,
        token: &'a str,
    },
}

/// How [`pod_container_command`] runs a container.
pub struct PodRun<'a> {
    /// Where volume contents come from.
    pub volumes: VolumeSource<'a>,
    /// A directory of the test's own for the volumes' files (one subdirectory per volume).
    pub dir: PathBuf,
    /// Environment put before the container's own, as the kubelet puts the service variables.
    pub base_env: Vec<(String, String)>,
    /// More (host file or directory, path in the container) binds, e.g. an `/etc/hosts` naming
    /// a Service as a cluster's DNS would.
    pub extra_binds: Vec<(PathBuf, String)>,
    /// The UID (and GID) the program runs as, as the container's `runAsUser` would set it
    /// (`setpriv`); `None` keeps the test's own.
    pub run_as: Option<u32>,
}

impl TestCluster {
    /// Container `container` of `pod` (as stored, e.g. after injection, bound and running) as a
    /// `Command` running `program` in place of the image's entrypoint, as
    /// [`pod_container_command`] makes it, with `KUBERNETES_SERVICE_HOST/PORT` pointing here and
    /// volumes filled from this cluster. Returns the command and the resolved container (to
    /// read its environment or arguments). To run it inside a network namespace as the pod,
    /// wrap it: [`prefixed`]`(&command, &["ip", "netns", "exec", "pod-ns"])`.
    pub async fn container_command(
        &self,
        pod: &Pod,
        container: &str,
        program: &Path,
    ) -> anyhow::Result<(Command, ContainerProcess)> {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let run = PodRun {
            volumes: VolumeSource::Cluster(self),
            dir: self.unique_path(&format!("pod-{pod_name}-{container}")),
            base_env: self.kubernetes_service_env(),
            extra_binds: Vec::new(),
            run_as: None,
        };
        pod_container_command(pod, container, program, &run).await
    }
}

/// Container `container` of `pod` as a `Command` running `program` in place of the image's
/// entrypoint: the container's command after its first word, then its args, `$(VAR)`s
/// expanded; its environment (`run.base_env`, then the container's with downward-API values
/// filled from the pod's metadata, spec and status) on top of the test's own; every volume
/// mount of the container filled under `run.dir` and bind-mounted at its `mountPath`, and
/// `run.extra_binds` too, in a new mount namespace (root needed; missing mount points are
/// created empty on the host, nothing is mounted outside that namespace).
pub async fn pod_container_command(
    pod: &Pod,
    container: &str,
    program: &Path,
    run: &PodRun<'_>,
) -> anyhow::Result<(Command, ContainerProcess)> {
    let process = container_process(pod, container, &run.base_env)?;
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
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
        let dir = run.dir.join(&volume.name);
        if !dir.exists() {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            fill_volume(run.volumes, pod, volume, &dir)
                .await
                .with_context(|| format!("volume {} of pod {pod_name}", volume.name))?;
        }
        let source = match mount.sub_path.as_deref().filter(|s| !s.is_empty()) {
            Some(sub) => dir.join(sub),
            None => dir,
        };
        binds.push((source, mount.mount_path.clone()));
    }
    binds.extend(run.extra_binds.iter().cloned());

    let mut command = Command::new("unshare");
    command
        .args(["--mount", "--propagation", "private", "--", "sh", "-c"])
        // A directory is bound on a directory, a file on a file (made empty if missing).
        .arg(
            r#"while [ "$1" != "--" ]; do if [ -d "$1" ]; then mkdir -p "$2"; else [ -e "$2" ] || { mkdir -p "$(dirname "$2")" && : > "$2"; }; fi && mount --bind "$1" "$2" || exit 121; shift 2; done; shift; exec "$@""#,
        )
        .arg("sh");
    for (source, target) in &binds {
        command.arg(source).arg(target);
    }
    command.arg("--");
    if let Some(uid) = run.run_as {
        command.args([
            "setpriv".to_string(),
            format!("--reuid={uid}"),
            format!("--regid={uid}"),
            "--clear-groups".to_string(),
        ]);
    }
    command.arg(program);
    command.args(process.command.iter().skip(1));
    command.args(&process.args);
    command.envs(process.env.iter().map(|(k, v)| (k, v)));
    Ok((command, process))
}

/// Writes what the kubelet would put in `volume` into `dir`.
async fn fill_volume(
    from: VolumeSource<'_>,
    pod: &Pod,
    volume: &Volume,
    dir: &Path,
) -> anyhow::Result<()> {
    if volume.empty_dir.is_some() {
        // World-writable, as the kubelet makes an emptyDir, for containers with a runAsUser.
        use std::os::unix::fs::PermissionsExt;
        return std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o777))
            .with_context(|| format!("chmod {}", dir.display()));
    }
    if let Some(source) = &volume.config_map {
        let items = source.items.as_deref().unwrap_or_default();
        return write_config_map(from, pod, &source.name, items, source.optional, dir).await;
    }
    if let Some(source) = &volume.downward_api {
        return write_downward(pod, source.items.as_deref().unwrap_or_default(), dir);
    }
    let Some(projected) = &volume.projected else {
        bail!("only emptyDir, configMap, downwardAPI and projected volumes are supported");
    };
    for source in projected.sources.iter().flatten() {
        if let Some(token) = &source.service_account_token {
            let jwt = match from {
                VolumeSource::Cluster(cluster) => {
                    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
                    let account = pod
                        .spec
                        .as_ref()
                        .and_then(|s| s.service_account_name.as_deref())
                        .unwrap_or("default");
                    let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
                    let audiences: Vec<&str> = token.audience.iter().map(String::as_str).collect();
                    cluster.pod_token(namespace, account, pod_name, &audiences)?
                }
                VolumeSource::Supplied { token, .. } => token.to_string(),
            };
            write_file(dir, &token.path, &jwt)?;
        } else if let Some(source) = &source.config_map {
            let items = source.items.as_deref().unwrap_or_default();
            write_config_map(from, pod, &source.name, items, source.optional, dir).await?;
        } else if let Some(source) = &source.downward_api {
            write_downward(pod, source.items.as_deref().unwrap_or_default(), dir)?;
        } else {
            bail!("only serviceAccountToken, configMap and downwardAPI projections are supported");
        }
    }
    Ok(())
}

async fn write_config_map(
    from: VolumeSource<'_>,
    pod: &Pod,
    name: &str,
    items: &[KeyToPath],
    optional: Option<bool>,
    dir: &Path,
) -> anyhow::Result<()> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let data = match from {
        VolumeSource::Cluster(cluster) => cluster_config_map(cluster, namespace, name, optional)
            .await?
            .unwrap_or_default(),
        VolumeSource::Supplied { config_maps, .. } => match config_maps.get(name) {
            Some(data) => data.clone(),
            None if optional == Some(true) => BTreeMap::new(),
            None => bail!("ConfigMap {namespace}/{name} was not supplied"),
        },
    };
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

/// A ConfigMap's data from the API; `None` for a missing optional one.
async fn cluster_config_map(
    cluster: &TestCluster,
    namespace: &str,
    name: &str,
    optional: Option<bool>,
) -> anyhow::Result<Option<BTreeMap<String, String>>> {
    let api: ::kube::Api<ConfigMap> = ::kube::Api::namespaced(cluster.client().await, namespace);
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
    match found {
        Some(config_map) => Ok(Some(config_map.data.unwrap_or_default())),
        None if optional == Some(true) => Ok(None),
        None => bail!("ConfigMap {namespace}/{name} does not exist after 10 s"),
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
