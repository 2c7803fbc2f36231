//! Envoy file access logs on sidecar listeners, as istiod writes them: MeshConfig
//! `accessLogFile`/`accessLogEncoding`/`accessLogFormat`, or Telemetry `accessLogging` at mesh
//! (root namespace), namespace and workload level naming `envoyFileAccessLog` providers (or
//! the built-in `envoy`), with `disabled` and the CEL `filter`.
//!
//! Listeners are built first and the access logs added afterwards ([`apply`]): every HTTP
//! connection manager and TCP proxy of a listener gets the logs of its direction (client side
//! on outbound listeners, server side on inbound ones).

use std::collections::BTreeMap;

use lateen_api::mesh::AccessLogEncoding;
use lateen_api::mesh_providers::{
    BUILTIN_ACCESS_LOG_PROVIDER, ENVOY_JSON_LOG_FORMAT, ENVOY_TEXT_LOG_FORMAT,
    FileAccessLogProvider, TypedProvider,
};
use lateen_api::telemetry::{AccessLogFilter, Telemetry};
use lateen_api::{MeshConfig, Object};
use lateen_xds::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter as EnvoyFilter, ExtensionFilter, access_log, access_log_filter,
    extension_filter,
};
use lateen_xds::pb::envoy::config::core::v3::TrafficDirection;
use lateen_xds::pb::envoy::config::core::v3::{
    DataSource, SubstitutionFormatString, data_source, substitution_format_string,
};
use lateen_xds::pb::envoy::config::listener::v3::{Listener, filter};
use lateen_xds::pb::envoy::extensions::access_loggers::file::v3::{FileAccessLog, file_access_log};
use lateen_xds::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use lateen_xds::pb::google::protobuf::{Struct, Value, value};
use lateen_xds::prost::{Message, Name};

use super::Context;
use super::names;
use crate::registry::labels_match;
use crate::store::Config;

/// Envoy's name for the file access logger.
pub const FILE_ACCESS_LOG: &str = "envoy.access_loggers.file";
/// Envoy's name for the CEL access-log filter.
pub const CEL_FILTER: &str = "envoy.access_loggers.extension_filters.cel";
/// Where the built-in provider and a provider without `path` write.
pub const DEV_STDOUT: &str = "/dev/stdout";

/// Adds the access logs that apply to this proxy to every HTTP connection manager and TCP
/// proxy of `listeners`.
pub fn apply(ctx: &Context<'_>, listeners: &mut [Listener]) {
    if ctx.is_router() {
        return;
    }
    let outbound = resolve(ctx.config, ctx, true);
    let inbound = resolve(ctx.config, ctx, false);
    if outbound.is_empty() && inbound.is_empty() {
        return;
    }
    for listener in listeners {
        let logs = if listener.traffic_direction == TrafficDirection::Inbound as i32 {
            &inbound
        } else {
            &outbound
        };
        if logs.is_empty() {
            continue;
        }
        for chain in &mut listener.filter_chains {
            for f in &mut chain.filters {
                add_to_filter(f, logs);
            }
        }
        if let Some(chain) = &mut listener.default_filter_chain {
            for f in &mut chain.filters {
                add_to_filter(f, logs);
            }
        }
    }
}

fn add_to_filter(f: &mut lateen_xds::pb::envoy::config::listener::v3::Filter, logs: &[AccessLog]) {
    let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
        return;
    };
    if any.type_url == HttpConnectionManager::type_url() {
        if let Ok(mut manager) = HttpConnectionManager::decode(any.value.as_slice()) {
            manager.access_log.extend(logs.iter().cloned());
            *any = names::pack(&manager);
        }
    } else if any.type_url == TcpProxy::type_url()
        && let Ok(mut proxy) = TcpProxy::decode(any.value.as_slice())
    {
        proxy.access_log.extend(logs.iter().cloned());
        *any = names::pack(&proxy);
    }
}

/// What Telemetry decided for one side of a proxy.
#[derive(Default)]
struct Decision {
    /// Some Telemetry entry applied (else MeshConfig's `accessLogFile` decides).
    touched: bool,
    providers: Vec<String>,
    disabled: bool,
    filter: Option<AccessLogFilter>,
}

/// The Telemetry resources that apply to a proxy, mesh level first: the root namespace's
/// without selector, the proxy namespace's without selector, then the first of its namespace
/// whose selector matches the proxy's labels.
pub fn applicable<'a>(
    config: &'a Config,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> Vec<&'a Object<Telemetry>> {
    let root = config.mesh.root_namespace();
    let all: Vec<&Object<Telemetry>> = config
        .resources
        .iter()
        .filter_map(lateen_api::Resource::as_telemetry)
        .collect();
    let unselected = |ns: &str| {
        all.iter()
            .copied()
            .filter(|t| {
                t.namespace() == ns
                    && t.spec.selector.is_none()
                    && t.spec.target_refs.is_empty()
                    && t.spec.target_ref.is_none()
            })
            .min_by_key(|t| t.name().to_string())
    };
    let mut out = Vec::new();
    out.extend(unselected(root));
    if namespace != root {
        out.extend(unselected(namespace));
    }
    out.extend(
        all.iter()
            .copied()
            .filter(|t| t.namespace() == namespace)
            .filter(|t| {
                t.spec.selector.as_ref().is_some_and(|s| {
                    !s.match_labels.is_empty() && labels_match(&s.match_labels, labels)
                })
            })
            .min_by_key(|t| t.name().to_string()),
    );
    out
}

/// The label keys Telemetry selectors read (they split proxy views).
pub fn selector_label_keys(config: &Config) -> impl Iterator<Item = String> + '_ {
    config
        .resources
        .iter()
        .filter_map(lateen_api::Resource::as_telemetry)
        .filter_map(|t| t.spec.selector.as_ref())
        .flat_map(|s| s.match_labels.keys().cloned())
}

fn resolve(config: &Config, ctx: &Context<'_>, outbound: bool) -> Vec<AccessLog> {
    let mesh = &config.mesh;
    let mut decision = Decision::default();
    for telemetry in applicable(config, &ctx.proxy.namespace, &ctx.proxy.labels) {
        for entry in &telemetry.spec.access_logging {
            if !entry.mode().applies_to(outbound) {
                continue;
            }
            decision.touched = true;
            if !entry.providers.is_empty() {
                decision.providers = entry.providers.iter().map(|p| p.name.clone()).collect();
            }
            if let Some(disabled) = entry.disabled {
                decision.disabled = disabled;
            }
            if entry.filter.is_some() {
                decision.filter = entry.filter.clone();
            }
        }
    }
    let default_providers = mesh
        .default_providers
        .as_ref()
        .map(|d| d.access_logging.clone())
        .unwrap_or_default();
    if !decision.touched && default_providers.is_empty() {
        return match mesh.access_log_file.as_deref() {
            Some(path) if !path.is_empty() => vec![mesh_file_log(path, mesh)],
            _ => Vec::new(),
        };
    }
    if decision.disabled {
        return Vec::new();
    }
    let mut providers = decision.providers;
    if providers.is_empty() {
        providers = default_providers;
    }
    if providers.is_empty() {
        // A Telemetry that only turns logging on uses MeshConfig's file, as Istio's built-in.
        providers.push(BUILTIN_ACCESS_LOG_PROVIDER.to_string());
    }
    let filter = decision.filter.as_ref().map(cel_filter);
    providers
        .iter()
        .filter_map(|name| provider_log(mesh, name))
        .map(|mut log| {
            log.filter = filter.clone();
            log
        })
        .collect()
}

/// The log of one named provider; unknown providers and other kinds give none (the folder
/// source refuses a Telemetry naming an unknown provider, see
/// `lateen_api::validate::telemetry_provider_issues`).
fn provider_log(mesh: &MeshConfig, name: &str) -> Option<AccessLog> {
    match mesh.extension_provider(name).map(|p| p.typed()) {
        Some(Ok(TypedProvider::EnvoyFileAccessLog(file))) => {
            if name == BUILTIN_ACCESS_LOG_PROVIDER && file.log_format.is_none() {
                Some(mesh_file_log(path_or_stdout(&file.path), mesh))
            } else {
                Some(provider_file_log(&file))
            }
        }
        Some(_) => None,
        None if name == BUILTIN_ACCESS_LOG_PROVIDER => Some(mesh_file_log(
            mesh.access_log_file
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or(DEV_STDOUT),
            mesh,
        )),
        None => None,
    }
}

fn path_or_stdout(path: &str) -> &str {
    if path.is_empty() { DEV_STDOUT } else { path }
}

/// istiod's `FileAccessLogFromMeshConfig`.
fn mesh_file_log(path: &str, mesh: &MeshConfig) -> AccessLog {
    let format = match mesh.access_log_encoding() {
        AccessLogEncoding::Text => text_format(mesh.access_log_format.as_deref().unwrap_or("")),
        AccessLogEncoding::Json => {
            let labels = mesh
                .access_log_format
                .as_deref()
                .filter(|f| !f.is_empty())
                .and_then(|f| serde_json::from_str::<BTreeMap<String, serde_json::Value>>(f).ok());
            json_format(labels.as_ref())
        }
    };
    file_log(path, format)
}

/// istiod's `fileAccessLogFromTelemetry`.
fn provider_file_log(file: &FileAccessLogProvider) -> AccessLog {
    let format = match &file.log_format {
        Some(f) if f.labels.is_some() => json_format(f.labels.as_ref()),
        Some(f) => text_format(f.text.as_deref().unwrap_or("")),
        None => text_format(""),
    };
    let mut format = format;
    format.omit_empty_values = file.omit_empty_values;
    file_log(path_or_stdout(&file.path), format)
}

/// Istio's default text format when `text` is empty; a newline added when missing.
fn text_format(text: &str) -> SubstitutionFormatString {
    let text = if text.is_empty() {
        ENVOY_TEXT_LOG_FORMAT.to_string()
    } else if text.ends_with('\n') {
        text.to_string()
    } else {
        format!("{text}\n")
    };
    SubstitutionFormatString {
        format: Some(substitution_format_string::Format::TextFormatSource(
            DataSource {
                specifier: Some(data_source::Specifier::InlineString(text)),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

/// Istio's default JSON labels when `labels` is absent or empty.
fn json_format(labels: Option<&BTreeMap<String, serde_json::Value>>) -> SubstitutionFormatString {
    let fields = match labels {
        Some(l) if !l.is_empty() => l.iter().map(|(k, v)| (k.clone(), json_value(v))).collect(),
        _ => ENVOY_JSON_LOG_FORMAT
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    Value {
                        kind: Some(value::Kind::StringValue(v.to_string())),
                    },
                )
            })
            .collect(),
    };
    SubstitutionFormatString {
        format: Some(substitution_format_string::Format::JsonFormat(Struct {
            fields,
        })),
        ..Default::default()
    }
}

fn json_value(v: &serde_json::Value) -> Value {
    let kind = match v {
        serde_json::Value::Null => value::Kind::NullValue(0),
        serde_json::Value::Bool(b) => value::Kind::BoolValue(*b),
        serde_json::Value::Number(n) => value::Kind::NumberValue(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => value::Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => {
            value::Kind::ListValue(lateen_xds::pb::google::protobuf::ListValue {
                values: items.iter().map(json_value).collect(),
            })
        }
        serde_json::Value::Object(map) => value::Kind::StructValue(Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}

fn file_log(path: &str, format: SubstitutionFormatString) -> AccessLog {
    let file = FileAccessLog {
        path: path.to_string(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(format)),
    };
    AccessLog {
        name: FILE_ACCESS_LOG.to_string(),
        filter: None,
        config_type: Some(access_log::ConfigType::TypedConfig(names::pack(&file))),
    }
}

fn cel_filter(filter: &AccessLogFilter) -> EnvoyFilter {
    let expression = ExpressionFilter {
        expression: filter.expression.clone(),
        ..Default::default()
    };
    EnvoyFilter {
        filter_specifier: Some(access_log_filter::FilterSpecifier::ExtensionFilter(
            ExtensionFilter {
                name: CEL_FILTER.to_string(),
                config_type: Some(extension_filter::ConfigType::TypedConfig(names::pack(
                    &expression,
                ))),
            },
        )),
    }
}
