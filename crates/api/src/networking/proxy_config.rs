//! `networking.istio.io/v1beta1` ProxyConfig: per-workload proxy settings. Lateen reads and
//! validates it (so a folder or `analyze` judges it as Istio does) but does not apply it yet;
//! it is therefore not a [`crate::Resource`] and is reported with a warning instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::meta::LabelSelector;

/// Spec of a `ProxyConfig`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfigSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
    /// Worker threads of the proxy; 0 means one per core. Must not be negative.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment_variables: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<ProxyImage>,
}

/// `ProxyConfig.image`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyImage {
    #[serde(default)]
    pub image_type: String,
}
