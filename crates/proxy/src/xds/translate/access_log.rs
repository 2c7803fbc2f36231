//! `access_log` of HTTP connection managers and TCP proxies: Envoy's file access log
//! (`envoy.access_loggers.file`) with a text or JSON `log_format`, translated into the
//! listener's [`model::AccessLog`]s. The format is parsed here so that an unknown command
//! operator is a NACK naming it; loggers lateen-proxy lacks are NACKs too rather than silently
//! logging something else. Of the filters, Envoy's CEL `ExpressionFilter` (what Istio's
//! Telemetry `filter.expression` becomes) is compiled here, so an expression lateen-proxy
//! cannot parse or evaluate is a NACK naming the field; other filter kinds are NACKed.

use std::collections::BTreeMap;

use lateen_xds::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, access_log, access_log_filter, extension_filter,
};
use lateen_xds::pb::envoy::config::core::v3::{data_source, substitution_format_string};
use lateen_xds::pb::envoy::extensions::access_loggers::file::v3::{FileAccessLog, file_access_log};
use lateen_xds::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use lateen_xds::pb::google::protobuf::{Struct, Value, value};
use lateen_xds::prost::Name;

use super::{Check, Rejection, unpack};
use crate::config::model;

/// Envoy's name for the file access logger.
const FILE_ACCESS_LOG: &str = "envoy.access_loggers.file";

pub(super) fn translate(
    logs: &[AccessLog],
    path: &str,
    check: &Check,
) -> Result<Vec<model::AccessLog>, Rejection> {
    logs.iter()
        .enumerate()
        .map(|(i, log)| one(log, &format!("{path}.access_log[{i}]"), check))
        .collect()
}

fn one(log: &AccessLog, path: &str, check: &Check) -> Result<model::AccessLog, Rejection> {
    let filter = match &log.filter {
        None => None,
        Some(f) => Some(cel_expression(f, &format!("{path}.filter"), check)?),
    };
    let Some(access_log::ConfigType::TypedConfig(any)) = &log.config_type else {
        return Err(check.reject(format!("{path}.typed_config"), "missing"));
    };
    if any.type_url != FileAccessLog::type_url() {
        return Err(check.reject(
            format!("{path}.typed_config"),
            format!(
                "access logger {:?} ({}) is not supported; only {FILE_ACCESS_LOG}",
                log.name, any.type_url
            ),
        ));
    }
    let t_path = format!("{path}.typed_config");
    let file: FileAccessLog = unpack(any).map_err(|reason| check.reject(t_path.clone(), reason))?;
    if file.path.is_empty() {
        return Err(check.reject(format!("{t_path}.path"), "must not be empty"));
    }
    let mut out = model::AccessLog {
        path: file.path.clone(),
        text: None,
        json: None,
        filter,
    };
    #[allow(deprecated)]
    match &file.access_log_format {
        None => {}
        Some(file_access_log::AccessLogFormat::Format(text)) => out.text = Some(text.clone()),
        Some(file_access_log::AccessLogFormat::JsonFormat(s))
        | Some(file_access_log::AccessLogFormat::TypedJsonFormat(s)) => {
            out.json = Some(struct_to_map(s));
        }
        Some(file_access_log::AccessLogFormat::LogFormat(format)) => {
            let f_path = format!("{t_path}.log_format");
            if !format.formatters.is_empty() {
                return Err(check.reject(
                    format!("{f_path}.formatters"),
                    "formatter extensions are not supported by lateen-proxy",
                ));
            }
            match &format.format {
                Some(substitution_format_string::Format::TextFormatSource(source)) => {
                    match &source.specifier {
                        Some(data_source::Specifier::InlineString(text)) => {
                            out.text = Some(text.clone());
                        }
                        _ => {
                            return Err(check.reject(
                                format!("{f_path}.text_format_source"),
                                "only inline_string is supported",
                            ));
                        }
                    }
                }
                #[allow(deprecated)]
                Some(substitution_format_string::Format::TextFormat(text)) => {
                    out.text = Some(text.clone());
                }
                Some(substitution_format_string::Format::JsonFormat(s)) => {
                    out.json = Some(struct_to_map(s));
                }
                None => {}
            }
        }
    }
    // Parsed now so that an unknown operator is refused with the configuration, by name.
    if let Err(e) = crate::access_log::format_of(&out) {
        let field = if out.json.is_some() {
            "json_format"
        } else {
            "text_format"
        };
        return Err(check.reject(format!("{t_path}.log_format.{field}"), e.to_string()));
    }
    Ok(out)
}

/// The expression of a CEL `extension_filter`, compiled now so that one lateen-proxy cannot
/// evaluate is refused with the configuration.
fn cel_expression(
    filter: &AccessLogFilter,
    path: &str,
    check: &Check,
) -> Result<String, Rejection> {
    let Some(access_log_filter::FilterSpecifier::ExtensionFilter(extension)) =
        &filter.filter_specifier
    else {
        return Err(check.reject(
            path.to_string(),
            "only the CEL extension_filter (envoy.extensions.access_loggers.filters.cel.v3.ExpressionFilter) is supported by lateen-proxy",
        ));
    };
    let e_path = format!("{path}.extension_filter.typed_config");
    let Some(extension_filter::ConfigType::TypedConfig(any)) = &extension.config_type else {
        return Err(check.reject(e_path, "missing"));
    };
    if any.type_url != ExpressionFilter::type_url() {
        return Err(check.reject(
            e_path,
            format!(
                "access-log filter {:?} ({}) is not supported; only the CEL ExpressionFilter",
                extension.name, any.type_url
            ),
        ));
    }
    let expression: ExpressionFilter =
        unpack(any).map_err(|reason| check.reject(e_path.clone(), reason))?;
    crate::access_log::cel::Program::compile(&expression.expression)
        .map_err(|e| check.reject(format!("{e_path}.expression"), e.to_string()))?;
    Ok(expression.expression)
}

fn struct_to_map(s: &Struct) -> BTreeMap<String, serde_json::Value> {
    s.fields
        .iter()
        .map(|(k, v)| (k.clone(), to_json(v)))
        .collect()
}

fn to_json(v: &Value) -> serde_json::Value {
    match &v.kind {
        None | Some(value::Kind::NullValue(_)) => serde_json::Value::Null,
        Some(value::Kind::BoolValue(b)) => serde_json::Value::Bool(*b),
        Some(value::Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(value::Kind::StringValue(s)) => serde_json::Value::String(s.clone()),
        Some(value::Kind::ListValue(l)) => {
            serde_json::Value::Array(l.values.iter().map(to_json).collect())
        }
        Some(value::Kind::StructValue(s)) => serde_json::Value::Object(
            s.fields
                .iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect(),
        ),
    }
}
