//! File access logs on connection managers and TCP proxies: Istio's text and JSON formats
//! are taken into the listener with their CEL filter; an unknown command operator, another
//! logger, a CEL expression lateen-proxy cannot evaluate or another kind of filter is a
//! rejection naming the field.

use lateen_xds::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, ExtensionFilter, NotHealthCheckFilter, access_log,
    access_log_filter, extension_filter,
};
use lateen_xds::pb::envoy::config::core::v3::{
    DataSource, SubstitutionFormatString, data_source, substitution_format_string,
};
use lateen_xds::pb::envoy::config::listener::v3::filter;
use lateen_xds::pb::envoy::extensions::access_loggers::file::v3::{FileAccessLog, file_access_log};
use lateen_xds::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use lateen_xds::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
use lateen_xds::pb::google::protobuf::{Struct, Value, value};
use lateen_xds::prost::{Message, Name};

use super::listener;
use super::tests::{pack, virtual_inbound};

fn file_log(path: &str, format: substitution_format_string::Format) -> AccessLog {
    let file = FileAccessLog {
        path: path.into(),
        access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
            SubstitutionFormatString {
                format: Some(format),
                ..Default::default()
            },
        )),
    };
    AccessLog {
        name: "envoy.access_loggers.file".into(),
        filter: None,
        config_type: Some(access_log::ConfigType::TypedConfig(pack(&file))),
    }
}

fn text(format: &str) -> substitution_format_string::Format {
    substitution_format_string::Format::TextFormatSource(DataSource {
        specifier: Some(data_source::Specifier::InlineString(format.into())),
        ..Default::default()
    })
}

/// `virtualInbound` with `log` on every HTTP connection manager and TCP proxy.
fn with_log(log: AccessLog) -> lateen_xds::pb::envoy::config::listener::v3::Listener {
    let mut l = virtual_inbound();
    for chain in l
        .filter_chains
        .iter_mut()
        .chain(l.default_filter_chain.as_mut())
    {
        for f in &mut chain.filters {
            let Some(filter::ConfigType::TypedConfig(any)) = &mut f.config_type else {
                continue;
            };
            if any.type_url == HttpConnectionManager::type_url() {
                let mut m = HttpConnectionManager::decode(any.value.as_slice()).expect("hcm");
                m.access_log.push(log.clone());
                *any = pack(&m);
            } else if any.type_url == TcpProxy::type_url() {
                let mut p = TcpProxy::decode(any.value.as_slice()).expect("tcp");
                p.access_log.push(log.clone());
                *any = pack(&p);
            }
        }
    }
    l
}

#[test]
fn text_and_json_file_logs_are_taken_into_every_listener() {
    let out = listener::translate(&with_log(file_log(
        "/dev/stdout",
        text("%REQ(:METHOD)% %RESPONSE_CODE%\n"),
    )))
    .expect("accepted");
    // Every listener that carries traffic (a chain's HTTP routes or TCP cluster) logs.
    let serving: Vec<_> = out
        .listeners
        .iter()
        .filter(|l| l.route_config.is_some() || l.tcp_cluster.is_some())
        .collect();
    assert!(!serving.is_empty());
    assert!(
        serving.iter().all(|l| l.access_log.len() == 1),
        "{serving:?}"
    );
    assert_eq!(
        serving[0].access_log[0].text.as_deref(),
        Some("%REQ(:METHOD)% %RESPONSE_CODE%\n")
    );

    let labels = Struct {
        fields: [(
            "code".to_string(),
            Value {
                kind: Some(value::Kind::StringValue("%RESPONSE_CODE%".into())),
            },
        )]
        .into_iter()
        .collect(),
    };
    let out = listener::translate(&with_log(file_log(
        "/tmp/access.json",
        substitution_format_string::Format::JsonFormat(labels),
    )))
    .expect("accepted");
    let logged = out
        .listeners
        .iter()
        .find(|l| !l.access_log.is_empty())
        .expect("a listener with the log");
    let json = logged.access_log[0].json.as_ref().expect("json");
    assert_eq!(json["code"], "%RESPONSE_CODE%");
}

#[test]
fn unknown_operators_other_loggers_and_filters_are_rejected_by_name() {
    let err = listener::translate(&with_log(file_log(
        "/dev/stdout",
        text("%RESPONSE_CODE% %BOGUS_OPERATOR%\n"),
    )))
    .expect_err("unknown operator");
    assert!(
        err.to_string()
            .contains("unknown command operator %BOGUS_OPERATOR%"),
        "{err}"
    );
    assert!(
        err.field
            .ends_with("access_log[0].typed_config.log_format.text_format"),
        "{}",
        err.field
    );

    let mut grpc = file_log("/dev/stdout", text("%RESPONSE_CODE%"));
    grpc.config_type = Some(access_log::ConfigType::TypedConfig(lateen_xds::pb::google::protobuf::Any {
        type_url: "type.googleapis.com/envoy.extensions.access_loggers.grpc.v3.HttpGrpcAccessLogConfig".into(),
        value: Vec::new(),
    }));
    let err = listener::translate(&with_log(grpc)).expect_err("gRPC logger");
    assert!(err.to_string().contains("is not supported"), "{err}");

    let mut filtered = file_log("/dev/stdout", text("%RESPONSE_CODE%"));
    filtered.filter = Some(AccessLogFilter {
        filter_specifier: Some(access_log_filter::FilterSpecifier::ExtensionFilter(
            ExtensionFilter {
                name: "envoy.access_loggers.extension_filters.cel".into(),
                config_type: None,
            },
        )),
    });
    let err = listener::translate(&with_log(filtered)).expect_err("CEL filter");
    assert!(
        err.field
            .ends_with("access_log[0].filter.extension_filter.typed_config"),
        "{}",
        err.field
    );

    let err = listener::translate(&with_log(cel_log("response.code >= ")))
        .expect_err("unparsable expression");
    assert!(
        err.field
            .ends_with("access_log[0].filter.extension_filter.typed_config.expression"),
        "{}",
        err.field
    );
    assert!(err.to_string().contains("syntax error"), "{err}");
    let err = listener::translate(&with_log(cel_log("request.time > timestamp('2024-01-01')")))
        .expect_err("unsupported attribute");
    assert!(
        err.to_string()
            .contains("attribute request.time is not supported by lateen-proxy"),
        "{err}"
    );

    let mut health = file_log("/dev/stdout", text("%RESPONSE_CODE%"));
    health.filter = Some(AccessLogFilter {
        filter_specifier: Some(access_log_filter::FilterSpecifier::NotHealthCheckFilter(
            NotHealthCheckFilter {},
        )),
    });
    let err = listener::translate(&with_log(health)).expect_err("not_health_check_filter");
    assert!(err.field.ends_with("access_log[0].filter"), "{}", err.field);
    assert!(err.to_string().contains("only the CEL"), "{err}");
}

/// A file log with Envoy's CEL filter, as lateend writes Istio's `filter.expression`.
fn cel_log(expression: &str) -> AccessLog {
    let mut log = file_log("/dev/stdout", text("%RESPONSE_CODE%\n"));
    log.filter = Some(AccessLogFilter {
        filter_specifier: Some(access_log_filter::FilterSpecifier::ExtensionFilter(
            ExtensionFilter {
                name: "envoy.access_loggers.extension_filters.cel".into(),
                config_type: Some(extension_filter::ConfigType::TypedConfig(pack(
                    &ExpressionFilter {
                        expression: expression.into(),
                        ..Default::default()
                    },
                ))),
            },
        )),
    });
    log
}

#[test]
fn a_cel_filter_is_taken_with_its_log() {
    let out = listener::translate(&with_log(cel_log(
        "response.code >= 400 || request.headers['x-log'] == 'yes'",
    )))
    .expect("accepted");
    let logged = out
        .listeners
        .iter()
        .find(|l| !l.access_log.is_empty())
        .expect("a listener with the log");
    assert_eq!(
        logged.access_log[0].filter.as_deref(),
        Some("response.code >= 400 || request.headers['x-log'] == 'yes'")
    );
    let (loggers, problems) = crate::access_log::loggers(&logged.access_log, "l");
    assert!(problems.is_empty(), "{problems:?}");
    // The filter's header is kept with the entry, beside the format's.
    assert!(
        loggers[0].request_headers.iter().any(|h| h == "x-log"),
        "{:?}",
        loggers[0].request_headers
    );
}
