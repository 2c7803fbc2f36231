//! Typed bodies of the MeshConfig `extensionProviders` kinds that telemetry uses:
//! `envoyFileAccessLog`, `envoyOtelAls`, `opentelemetry` and `prometheus`. Other kinds stay raw
//! JSON in [`ExtensionProvider::provider`].

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::mesh::ExtensionProvider;

/// Istio's built-in access-log provider name: a file provider writing to `/dev/stdout` with
/// MeshConfig's `accessLogEncoding`/`accessLogFormat`.
pub const BUILTIN_ACCESS_LOG_PROVIDER: &str = "envoy";

/// A provider body decoded by its kind.
#[derive(Clone, Debug, PartialEq)]
pub enum TypedProvider {
    EnvoyFileAccessLog(FileAccessLogProvider),
    EnvoyOtelAls(OtelAlsProvider),
    OpenTelemetry(OpenTelemetryProvider),
    Prometheus,
    /// A kind telemetry does not read (tracing back-ends other than OpenTelemetry, ext_authz...).
    Other(String),
}

/// `envoyFileAccessLog`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileAccessLogProvider {
    /// `/dev/stdout` when empty.
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    #[serde(default)]
    pub omit_empty_values: bool,
}

/// `logFormat` of file and OpenTelemetry access logs: a text format or JSON labels.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogFormat {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// JSON key to format string (Istio's `google.protobuf.Struct`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, Value>>,
}

/// `envoyOtelAls`: access logs sent to an OpenTelemetry collector over gRPC.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OtelAlsProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
}

/// `opentelemetry`: traces exported over OTLP (gRPC unless `http` is set).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenTelemetryProvider {
    #[serde(default)]
    pub service: String,
    #[serde(default)]
    pub port: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tag_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grpc: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_detectors: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynatrace_sampler: Option<Value>,
}

impl ExtensionProvider {
    /// The body decoded by its kind; `Err` names the problem (no kind, or a bad field).
    pub fn typed(&self) -> Result<TypedProvider, String> {
        let Some((kind, body)) = self.kind() else {
            return Err("extension provider must set exactly one provider kind".to_string());
        };
        fn decode<T: serde::de::DeserializeOwned>(kind: &str, body: &Value) -> Result<T, String> {
            crate::parse::decode_typed(body).map_err(|(path, reason)| {
                if path.is_root() {
                    format!("{kind}: {reason}")
                } else {
                    format!("{kind}.{path}: {reason}")
                }
            })
        }
        Ok(match kind {
            "envoyFileAccessLog" => TypedProvider::EnvoyFileAccessLog(decode(kind, body)?),
            "envoyOtelAls" => TypedProvider::EnvoyOtelAls(decode(kind, body)?),
            "opentelemetry" => TypedProvider::OpenTelemetry(decode(kind, body)?),
            "prometheus" => TypedProvider::Prometheus,
            other => TypedProvider::Other(other.to_string()),
        })
    }
}
