//! The mesh-wide settings lateend reads from ConfigMaps in its own namespace (`POD_NAMESPACE`,
//! else `istio-system`): MeshConfig from `istio` (key `mesh`), the injector's template and
//! values from `istio-sidecar-injector` (keys `config`, `values`); and MeshConfig
//! `discoverySelectors`, which decide the namespaces lateend reads at all.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use lateen_api::MeshConfig;
use lateen_inject::InjectConfig;

/// The MeshConfig ConfigMap and its key.
pub const MESH_CONFIGMAP: &str = "istio";
pub const MESH_KEY: &str = "mesh";
/// The injector ConfigMap and its keys.
pub const INJECTOR_CONFIGMAP: &str = "istio-sidecar-injector";
pub const INJECTOR_CONFIG_KEY: &str = "config";
pub const INJECTOR_VALUES_KEY: &str = "values";

/// The namespace lateend runs in and reads its ConfigMaps from.
pub fn system_namespace() -> String {
    std::env::var("POD_NAMESPACE")
        .ok()
        .filter(|ns| !ns.is_empty())
        .unwrap_or_else(|| "istio-system".to_string())
}

/// The `mesh` key of the `istio` ConfigMap, parsed and validated as the folder's mesh.yaml.
pub fn parse_mesh(namespace: &str, text: &str) -> Result<MeshConfig, lateen_api::ConfigErrors> {
    let source = format!("ConfigMap {namespace}/{MESH_CONFIGMAP} key {MESH_KEY}");
    let (mesh, warnings) = lateen_api::load_mesh_config(text, &source)?;
    for w in warnings {
        tracing::warn!("{w}");
    }
    Ok(mesh)
}

/// Texts that make up the injector's configuration; `None` where the cluster has nothing
/// (the file given on the command line, if any, is used instead).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InjectorTexts {
    pub config: Option<String>,
    pub values: Option<String>,
    pub mesh: Option<String>,
}

/// One input of the injector: the cluster's text, its ConfigMap key and name, the file given
/// instead, and how it applies.
type Part<'a> = (
    &'a Option<String>,
    &'a str,
    &'a str,
    &'a Option<std::path::PathBuf>,
    fn(&mut InjectConfig, &str, &str) -> Result<(), lateen_inject::InjectError>,
);

/// Builds the injector configuration from `texts`, falling back to `files` for the parts the
/// cluster does not provide.
pub fn inject_config(
    namespace: &str,
    texts: &InjectorTexts,
    files: &crate::webhook::WebhookFiles,
) -> Result<InjectConfig, String> {
    let mut config = InjectConfig::default();
    let cm = |key: &str, name: &str| format!("ConfigMap {namespace}/{name} key {key}");
    let file_text =
        |path: &Option<std::path::PathBuf>| -> Result<Option<(String, String)>, String> {
            match path {
                Some(p) => std::fs::read_to_string(p)
                    .map(|t| Some((t, p.display().to_string())))
                    .map_err(|e| format!("reading {}: {e}", p.display())),
                None => Ok(None),
            }
        };
    let pick =
        |cluster: &Option<String>, key: &str, name: &str, file: &Option<std::path::PathBuf>| {
            match cluster {
                Some(t) => Ok(Some((t.clone(), cm(key, name)))),
                None => file_text(file),
            }
        };
    let parts: [Part<'_>; 3] = [
        (
            &texts.config,
            INJECTOR_CONFIG_KEY,
            INJECTOR_CONFIGMAP,
            &files.inject_config,
            InjectConfig::apply_inject_config_text,
        ),
        (
            &texts.values,
            INJECTOR_VALUES_KEY,
            INJECTOR_CONFIGMAP,
            &files.inject_values,
            InjectConfig::apply_values_text,
        ),
        (
            &texts.mesh,
            MESH_KEY,
            MESH_CONFIGMAP,
            &files.mesh,
            InjectConfig::apply_mesh_config_text,
        ),
    ];
    for (cluster, key, name, file, apply) in parts {
        if let Some((text, source)) = pick(cluster, key, name, file)? {
            apply(&mut config, &text, &source).map_err(|e| e.to_string())?;
        }
    }
    Ok(config)
}

/// MeshConfig `discoverySelectors`: a namespace is read when any selector matches its labels;
/// with no selector every namespace is.
#[derive(Clone, Debug, Default)]
pub struct DiscoverySelectors {
    selectors: Vec<LabelSelector>,
}

impl DiscoverySelectors {
    /// The selectors of `mesh`; one that is not a label selector is logged and skipped.
    pub fn of(mesh: &MeshConfig) -> Self {
        let selectors = mesh
            .discovery_selectors
            .iter()
            .filter_map(|v| match serde_json::from_value::<LabelSelector>(v.clone()) {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(selector = %v, error = %e, "MeshConfig discoverySelectors: not a label selector; ignored");
                    None
                }
            })
            .collect();
        Self { selectors }
    }

    pub fn is_empty(&self) -> bool {
        self.selectors.is_empty()
    }

    /// Whether a namespace with these labels is selected.
    pub fn selects(&self, labels: &BTreeMap<String, String>) -> bool {
        self.selectors.is_empty() || self.selectors.iter().any(|s| selector_matches(s, labels))
    }
}

/// Kubernetes label-selector semantics (`matchLabels` and `matchExpressions`, all must hold;
/// an empty selector matches everything).
pub fn selector_matches(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    let by_label = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expression = selector.match_expressions.iter().flatten().all(|req| {
        let value = labels.get(&req.key);
        let values = req.values.as_deref().unwrap_or_default();
        match req.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_label && by_expression
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_selectors_follow_label_selector_rules() {
        let mesh = parse_mesh(
            "istio-system",
            "discoverySelectors:\n- matchLabels: {team: a}\n- matchExpressions:\n  - {key: env, operator: In, values: [prod, stage]}\n  - {key: legacy, operator: DoesNotExist}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let sel = DiscoverySelectors::of(&mesh);
        let labels = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>()
        };
        assert!(sel.selects(&labels(&[("team", "a")])));
        assert!(sel.selects(&labels(&[("env", "prod")])));
        assert!(!sel.selects(&labels(&[("env", "prod"), ("legacy", "x")])));
        assert!(!sel.selects(&labels(&[("env", "dev")])));
        assert!(!sel.selects(&labels(&[])));
        assert!(DiscoverySelectors::default().selects(&labels(&[])));
    }

    #[test]
    fn injector_takes_the_cluster_texts_and_files_for_the_rest() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let values_file = dir.path().join("values.yaml");
        std::fs::write(
            &values_file,
            "global: {hub: files.example/mesh, tag: \"1.0\"}\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let files = crate::webhook::WebhookFiles {
            inject_values: Some(values_file),
            ..Default::default()
        };
        let from_files = inject_config("istio-system", &InjectorTexts::default(), &files)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_files.values.hub, "files.example/mesh");
        let texts = InjectorTexts {
            config: Some("policy: disabled\n".into()),
            values: Some("global: {hub: cluster.example/mesh, tag: \"2.0\"}\n".into()),
            mesh: None,
        };
        let from_cluster =
            inject_config("istio-system", &texts, &files).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(from_cluster.values.hub, "cluster.example/mesh");
        assert_eq!(from_cluster.values.tag, "2.0");
        assert_eq!(
            from_cluster.policy,
            lateen_inject::config::InjectionPolicy::Disabled
        );
        let broken = InjectorTexts {
            values: Some("global: [\n".into()),
            ..InjectorTexts::default()
        };
        let err = inject_config("istio-system", &broken, &files).err();
        assert!(
            err.as_deref().is_some_and(
                |e| e.contains("ConfigMap istio-system/istio-sidecar-injector key values")
            ),
            "{err:?}"
        );
    }

    #[test]
    fn invalid_mesh_names_the_configmap() {
        let err = parse_mesh("istio-system", "noSuchField: 1\n").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(
            text.starts_with("ConfigMap istio-system/istio key mesh"),
            "{text}"
        );
    }
}
