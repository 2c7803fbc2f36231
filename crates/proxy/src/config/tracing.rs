//! A listener's tracing settings (Envoy's HCM `tracing` with the `envoy.tracers.opentelemetry`
//! provider, as istiod sends it): where spans go, how many requests start a sampled trace,
//! and the custom tags every span gets. Compiled into [`TracingRt`] for the data path.

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Tracing of the HTTP requests of one listener.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TracingConfig {
    /// The cluster of the OTLP/gRPC receiver (Envoy's `grpc_service.envoy_grpc.cluster_name`).
    pub cluster: String,
    /// `:authority` of the export calls (Envoy's `envoy_grpc.authority`, the provider's host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authority: Option<String>,
    /// The spans' `service.name` resource attribute (Envoy's `service_name`; istiod sends the
    /// proxy's service cluster, `app.namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_name: Option<String>,
    /// Percentage of requests whose `x-request-id` carries no sampling decision that are
    /// sampled (Envoy's `random_sampling`; see `trace::request_id`).
    #[serde(default = "hundred")]
    pub random_sampling: f64,
    /// Tags added to every span (Envoy's `custom_tags`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_tags: Vec<CustomTag>,
}

fn hundred() -> f64 {
    100.0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomTag {
    pub tag: String,
    #[serde(flatten)]
    pub value: CustomTagValue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CustomTagValue {
    Literal(String),
    /// An environment variable of the proxy, read when the configuration is compiled.
    Environment {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_value: Option<String>,
    },
    /// A request header.
    RequestHeader {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        default_value: Option<String>,
    },
}

/// Compiled tracing settings of a listener.
#[derive(Debug)]
pub struct TracingRt {
    pub cluster: Arc<str>,
    pub authority: Option<Arc<str>>,
    pub service_name: Arc<str>,
    /// 0.0 to 1.0.
    pub sampling: f64,
    pub tags: Vec<(String, TagRt)>,
}

#[derive(Debug)]
pub enum TagRt {
    Fixed(String),
    Header {
        name: http::HeaderName,
        default_value: Option<String>,
    },
}

impl TracingRt {
    /// Checks and compiles; an error is the field's path under `at` (`listeners[2].tracing`)
    /// and what is wrong with it.
    pub fn compile(config: &TracingConfig, at: &str) -> Result<TracingRt, (String, String)> {
        if config.cluster.is_empty() {
            return Err((
                format!("{at}.cluster"),
                "must name the trace receiver's cluster".into(),
            ));
        }
        if !(0.0..=100.0).contains(&config.random_sampling) {
            return Err((
                format!("{at}.random_sampling"),
                format!(
                    "{} is not a percentage between 0 and 100",
                    config.random_sampling
                ),
            ));
        }
        let mut tags = Vec::with_capacity(config.custom_tags.len());
        for (n, tag) in config.custom_tags.iter().enumerate() {
            let value = match &tag.value {
                CustomTagValue::Literal(value) => TagRt::Fixed(value.clone()),
                CustomTagValue::Environment {
                    name,
                    default_value,
                } => TagRt::Fixed(
                    std::env::var(name)
                        .ok()
                        .or_else(|| default_value.clone())
                        .unwrap_or_default(),
                ),
                CustomTagValue::RequestHeader {
                    name,
                    default_value,
                } => TagRt::Header {
                    name: http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
                        .map_err(|_| {
                            (
                                format!("{at}.custom_tags[{n}].request_header.name"),
                                format!("{name:?} is not a header name"),
                            )
                        })?,
                    default_value: default_value.clone(),
                },
            };
            tags.push((tag.tag.clone(), value));
        }
        Ok(TracingRt {
            cluster: config.cluster.as_str().into(),
            authority: config.authority.as_deref().map(Arc::from),
            service_name: config
                .service_name
                .as_deref()
                .unwrap_or("unknown_service:lateen-proxy")
                .into(),
            sampling: config.random_sampling / 100.0,
            tags,
        })
    }
}
