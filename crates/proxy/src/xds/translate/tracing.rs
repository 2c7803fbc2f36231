//! HCM `tracing` → [`TracingConfig`]: the `envoy.tracers.opentelemetry` provider with an
//! `envoy_grpc` service (what istiod sends for an `opentelemetry` extension provider),
//! `random_sampling` and `custom_tags`. `client_sampling`/`overall_sampling` at 100 %
//! (istiod's values) and `max_path_tag_length` are accepted; other tracers are refused by
//! name so the control plane sees why.

use lateen_xds::pb::envoy::config::core::v3::grpc_service;
use lateen_xds::pb::envoy::config::trace::v3::{OpenTelemetryConfig, tracing::http};
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use lateen_xds::pb::envoy::r#type::tracing::v3::custom_tag;
use lateen_xds::prost::Name;

use super::{Check, Rejection, unpack};
use crate::config::tracing::{CustomTag, CustomTagValue, TracingConfig};

const OPENTELEMETRY: &str = "envoy.tracers.opentelemetry";

pub(crate) fn translate(
    source: &Tracing,
    path: &str,
    check: &Check,
) -> Result<TracingConfig, Rejection> {
    check.no_leftover(
        path,
        &Tracing {
            client_sampling: None,
            random_sampling: None,
            overall_sampling: None,
            max_path_tag_length: None,
            custom_tags: Vec::new(),
            provider: None,
            ..source.clone()
        },
    )?;
    for (field, percent) in [
        ("client_sampling", &source.client_sampling),
        ("overall_sampling", &source.overall_sampling),
    ] {
        if let Some(percent) = percent
            && percent.value < 100.0
        {
            return Err(check.reject(
                format!("{path}.{field}"),
                "only 100% is supported by lateen-proxy",
            ));
        }
    }
    let Some(provider) = &source.provider else {
        return Err(check.reject(
            format!("{path}.provider"),
            "missing: lateen-proxy traces only to an OpenTelemetry provider",
        ));
    };
    let Some(http::ConfigType::TypedConfig(any)) = &provider.config_type else {
        return Err(check.reject(format!("{path}.provider.typed_config"), "missing"));
    };
    if any.type_url != OpenTelemetryConfig::type_url() {
        return Err(check.reject(
            format!("{path}.provider"),
            format!(
                "tracer {:?} ({}) is not supported; lateen-proxy exports to {OPENTELEMETRY}",
                provider.name, any.type_url
            ),
        ));
    }
    let p_path = format!("{path}.provider.typed_config");
    let otel: OpenTelemetryConfig =
        unpack(any).map_err(|reason| check.reject(p_path.clone(), reason))?;
    let Some(grpc) = &otel.grpc_service else {
        return Err(check.reject(
            format!("{p_path}.grpc_service"),
            "missing: only OTLP over gRPC is supported",
        ));
    };
    let Some(grpc_service::TargetSpecifier::EnvoyGrpc(envoy_grpc)) = &grpc.target_specifier else {
        return Err(check.reject(
            format!("{p_path}.grpc_service.envoy_grpc"),
            "missing: the receiver must be a cluster (envoy_grpc)",
        ));
    };
    let mut custom_tags = Vec::with_capacity(source.custom_tags.len());
    for (n, tag) in source.custom_tags.iter().enumerate() {
        let default = |value: &str| (!value.is_empty()).then(|| value.to_string());
        let value = match &tag.r#type {
            Some(custom_tag::Type::Literal(literal)) => {
                CustomTagValue::Literal(literal.value.clone())
            }
            Some(custom_tag::Type::Environment(env)) => CustomTagValue::Environment {
                name: env.name.clone(),
                default_value: default(&env.default_value),
            },
            Some(custom_tag::Type::RequestHeader(header)) => CustomTagValue::RequestHeader {
                name: header.name.clone(),
                default_value: default(&header.default_value),
            },
            // Request metadata (istiod's authorization dry-run tags) is never set by
            // lateen-proxy: the tag has its default value, or is left out as Envoy does.
            Some(custom_tag::Type::Metadata(metadata)) => match default(&metadata.default_value) {
                Some(value) => CustomTagValue::Literal(value),
                None => continue,
            },
            _ => {
                return Err(check.reject(
                    format!("{path}.custom_tags[{n}]"),
                    "only literal, environment, request_header and metadata tags are supported",
                ));
            }
        };
        custom_tags.push(CustomTag {
            tag: tag.tag.clone(),
            value,
        });
    }
    Ok(TracingConfig {
        cluster: envoy_grpc.cluster_name.clone(),
        authority: (!envoy_grpc.authority.is_empty()).then(|| envoy_grpc.authority.clone()),
        service_name: (!otel.service_name.is_empty()).then(|| otel.service_name.clone()),
        // Envoy's default when unset is 100 %.
        random_sampling: source
            .random_sampling
            .as_ref()
            .map_or(100.0, |percent| percent.value),
        custom_tags,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xds::translate::tests::pack;
    use lateen_xds::pb::envoy::config::core::v3::GrpcService;
    use lateen_xds::pb::envoy::config::trace::v3::{ZipkinConfig, tracing::Http};
    use lateen_xds::pb::envoy::r#type::tracing::v3::CustomTag as EnvoyTag;
    use lateen_xds::pb::envoy::r#type::v3::Percent;

    /// What lateend (and istiod) send for an `opentelemetry` provider.
    fn istiod_tracing() -> Tracing {
        let otel = OpenTelemetryConfig {
            grpc_service: Some(GrpcService {
                target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                    grpc_service::EnvoyGrpc {
                        cluster_name: "outbound|4317||otel.observability.svc.cluster.local".into(),
                        authority: "otel.observability.svc.cluster.local".into(),
                        ..Default::default()
                    },
                )),
                ..Default::default()
            }),
            service_name: "reviews.default".into(),
            ..Default::default()
        };
        let tag = |tag: &str, r#type| EnvoyTag {
            tag: tag.into(),
            r#type: Some(r#type),
        };
        Tracing {
            client_sampling: Some(Percent { value: 100.0 }),
            overall_sampling: Some(Percent { value: 100.0 }),
            random_sampling: Some(Percent { value: 1.0 }),
            custom_tags: vec![
                tag(
                    "istio.canonical_service",
                    custom_tag::Type::Literal(custom_tag::Literal {
                        value: "reviews".into(),
                    }),
                ),
                tag(
                    "istio.authorization.dry_run.allow_policy.name",
                    custom_tag::Type::Metadata(Default::default()),
                ),
                tag(
                    "user",
                    custom_tag::Type::RequestHeader(custom_tag::Header {
                        name: "x-user".into(),
                        default_value: "anonymous".into(),
                    }),
                ),
            ],
            provider: Some(Http {
                name: OPENTELEMETRY.into(),
                config_type: Some(http::ConfigType::TypedConfig(pack(&otel))),
            }),
            ..Default::default()
        }
    }

    #[test]
    fn istiods_opentelemetry_tracing_is_read() {
        let check = Check::new("Listener", "l");
        let config = translate(&istiod_tracing(), "tracing", &check).expect("accepted");
        assert_eq!(
            config,
            TracingConfig {
                cluster: "outbound|4317||otel.observability.svc.cluster.local".into(),
                authority: Some("otel.observability.svc.cluster.local".into()),
                service_name: Some("reviews.default".into()),
                random_sampling: 1.0,
                custom_tags: vec![
                    CustomTag {
                        tag: "istio.canonical_service".into(),
                        value: CustomTagValue::Literal("reviews".into()),
                    },
                    CustomTag {
                        tag: "user".into(),
                        value: CustomTagValue::RequestHeader {
                            name: "x-user".into(),
                            default_value: Some("anonymous".into()),
                        },
                    },
                ],
            }
        );
    }

    #[test]
    fn other_tracers_are_refused_by_field() {
        let check = Check::new("Listener", "l");
        let mut zipkin = istiod_tracing();
        zipkin.provider = Some(Http {
            name: "envoy.tracers.zipkin".into(),
            config_type: Some(http::ConfigType::TypedConfig(
                pack(&ZipkinConfig::default()),
            )),
        });
        let err = translate(&zipkin, "tracing", &check).expect_err("refused");
        assert_eq!(err.field, "tracing.provider");
        assert!(
            err.reason.contains("envoy.tracers.zipkin"),
            "{}",
            err.reason
        );

        let mut half = istiod_tracing();
        half.overall_sampling = Some(Percent { value: 50.0 });
        let err = translate(&half, "tracing", &check).expect_err("refused");
        assert_eq!(err.field, "tracing.overall_sampling");
    }
}
