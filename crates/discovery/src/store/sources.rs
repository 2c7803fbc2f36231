//! The folder and the cluster as one configuration. Resources: the folder's first, then the
//! cluster's; when both define the same kind/namespace/name the folder's wins (it is what the
//! operator handed lateend explicitly). MeshConfig: the cluster's `istio` ConfigMap when it
//! exists, else the folder's mesh.yaml (or the defaults).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use lateen_api::{MeshConfig, Resource};

use super::Config;

#[derive(Debug, Default)]
struct Parts {
    folder: Arc<Config>,
    cluster_mesh: Option<MeshConfig>,
    cluster: Vec<Resource>,
}

/// Both sources' latest configuration; each setter returns the merged result.
#[derive(Debug, Default)]
pub struct ConfigSources {
    parts: Mutex<Parts>,
}

impl ConfigSources {
    /// Sources with the folder's configuration (the default one when there is no folder).
    pub fn new(folder: Config) -> Arc<Self> {
        Arc::new(Self {
            parts: Mutex::new(Parts {
                folder: Arc::new(folder),
                ..Parts::default()
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Parts> {
        // Every write is a whole-field assignment.
        self.parts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new folder configuration; the merged configuration.
    pub fn set_folder(&self, folder: Arc<Config>) -> Arc<Config> {
        let mut parts = self.lock();
        parts.folder = folder;
        Arc::new(merge(&parts))
    }

    /// A new cluster configuration (`mesh` from the `istio` ConfigMap, if any); the merged one.
    pub fn set_cluster(&self, mesh: Option<MeshConfig>, resources: Vec<Resource>) -> Arc<Config> {
        let mut parts = self.lock();
        parts.cluster_mesh = mesh;
        parts.cluster = resources;
        Arc::new(merge(&parts))
    }

    /// The merged configuration as of now.
    pub fn merged(&self) -> Arc<Config> {
        Arc::new(merge(&self.lock()))
    }

    /// The folder's MeshConfig (what applies when the cluster has no `istio` ConfigMap).
    pub fn folder_mesh(&self) -> MeshConfig {
        self.lock().folder.mesh.clone()
    }
}

fn merge(parts: &Parts) -> Config {
    if parts.cluster.is_empty() && parts.cluster_mesh.is_none() {
        return parts.folder.as_ref().clone();
    }
    let folder_keys: BTreeSet<_> = parts.folder.resources.iter().map(Resource::key).collect();
    let mut resources = parts.folder.resources.clone();
    for r in &parts.cluster {
        if folder_keys.contains(&r.key()) {
            tracing::debug!(resource = ?r.key(), "defined in the folder and in the cluster; the folder's wins");
            continue;
        }
        resources.push(r.clone());
    }
    Config {
        mesh: parts
            .cluster_mesh
            .clone()
            .unwrap_or_else(|| parts.folder.mesh.clone()),
        resources,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(yaml: &str) -> Vec<Resource> {
        lateen_api::load(yaml, "t.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .resources()
            .cloned()
            .collect()
    }

    #[test]
    fn folder_wins_on_the_same_key_and_cluster_mesh_wins() {
        let vs = |host: &str| {
            format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r, namespace: default}}\nspec:\n  hosts: [{host}]\n  http: [{{route: [{{destination: {{host: {host}}}}}]}}]\n"
            )
        };
        let sources = ConfigSources::new(Config {
            resources: resources(&vs("folder")),
            ..Config::default()
        });
        let mut cluster = resources(&vs("cluster"));
        cluster.extend(resources(&vs("other").replace("name: r", "name: s")));
        let mesh = lateen_api::parse_mesh_config("rootNamespace: mesh-root\n", "m")
            .unwrap_or_else(|e| panic!("{e}"));
        let merged = sources.set_cluster(Some(mesh), cluster);
        let hosts: Vec<&str> = merged
            .virtual_services()
            .map(|v| v.spec.hosts[0].as_str())
            .collect();
        assert_eq!(hosts, ["folder", "other"]);
        assert_eq!(merged.root_namespace(), "mesh-root");
    }
}
