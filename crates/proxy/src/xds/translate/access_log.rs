//! `access_log` of HTTP connection managers and TCP proxies: Envoy's file access log
//! (`envoy.access_loggers.file`) with a text or JSON `log_format`, translated into the
//! listener's [`model::AccessLog`]s. The format is parsed here so that an unknown command
//! operator is a NACK naming it; loggers lateen-proxy lacks, and filters it cannot evaluate
//! (CEL), are NACKs too rather than silently logging something else.

use std::collections::BTreeMap;

use lateen_xds::pb::envoy::config::accesslog::v3::{AccessLog, access_log};
use lateen_xds::pb::envoy::config::core::v3::{data_source, substitution_format_string};
use lateen_xds::pb::envoy::extensions::access_loggers::file::v3::{FileAccessLog, file_access_log};
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
    if log.filter.is_some() {
        return Err(check.reject(
            format!("{path}.filter"),
            "access-log filters (CEL) are not supported by lateen-proxy",
        ));
    }
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
