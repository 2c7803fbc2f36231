//! HCM `tracing` as istiod builds it (`pilot/pkg/networking/core/tracing.go`): the provider
//! named by Telemetry `tracing[].providers` (namespace-level Telemetry over mesh-level, the
//! root namespace's), else MeshConfig `defaultProviders.tracing`, must be an `opentelemetry`
//! extension provider whose `service`/`port` is a known service; its spans go to
//! `outbound|PORT||HOST` over `envoy.tracers.opentelemetry` with `envoy_grpc`, the span
//! service name is the proxy's `app.namespace`, sampling is `randomSamplingPercentage`, else
//! `defaultConfig.tracing.sampling`, else istiod's 1 %, and the custom tags are Istio's
//! (`istio.canonical_service`, `istio.canonical_revision`, `istio.mesh_id`,
//! `istio.namespace`, `istio.cluster_id`) plus Telemetry's `customTags`, sorted by name.
//! `disableSpanReporting` turns tracing off for the side it matches.
//! Not done: workload-level Telemetry (selectors, targetRefs), OTLP over HTTP, samplers,
//! the authorization dry-run tags.

use std::collections::BTreeMap;

use lateen_api::Object;
use lateen_api::mesh_providers::{OpenTelemetryProvider, TypedProvider};
use lateen_api::telemetry::{CustomTag, Telemetry};
use lateen_xds::pb::envoy::config::core::v3::{GrpcService, grpc_service};
use lateen_xds::pb::envoy::config::trace::v3::{OpenTelemetryConfig, tracing as trace};
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use lateen_xds::pb::envoy::r#type::tracing::v3::{CustomTag as EnvoyTag, custom_tag};
use lateen_xds::pb::envoy::r#type::v3::Percent;

use super::{Context, names};
use crate::store::Config;

/// istiod's `PILOT_TRACE_SAMPLING` default.
const DEFAULT_SAMPLING: f64 = 1.0;
const OPENTELEMETRY_TRACER: &str = "envoy.tracers.opentelemetry";

/// Label keys tracing reads from a proxy (its span service name and Istio's tags); added to
/// the translation view only when some tracing is configured.
pub const LABEL_KEYS: [&str; 3] = [
    "service.istio.io/canonical-name",
    "service.istio.io/canonical-revision",
    "app",
];

/// What the tracing rules that apply to one side of a proxy add up to.
#[derive(Debug, Default, PartialEq)]
struct Spec {
    providers: Option<Vec<String>>,
    sampling: Option<f64>,
    custom_tags: BTreeMap<String, CustomTag>,
    disabled: bool,
}

/// True when any tracing is configured (a Telemetry with `tracing`, or a default provider).
pub fn configured(config: &Config) -> bool {
    config
        .mesh
        .default_providers
        .as_ref()
        .is_some_and(|providers| !providers.tracing.is_empty())
        || telemetries(config).any(|telemetry| !telemetry.spec.tracing.is_empty())
}

fn telemetries(config: &Config) -> impl Iterator<Item = &Object<Telemetry>> {
    config.resources.iter().filter_map(|r| r.as_telemetry())
}

/// Mesh-level (root namespace) then namespace-level Telemetry without a selector; a later
/// level's fields override an earlier one's.
fn spec(ctx: &Context<'_>, outbound: bool) -> Spec {
    let root = ctx.config.root_namespace();
    let namespace = ctx.proxy.namespace.as_str();
    let unselected = |telemetry: &&Object<Telemetry>| {
        telemetry.spec.selector.is_none()
            && telemetry.spec.target_ref.is_none()
            && telemetry.spec.target_refs.is_empty()
    };
    let mut levels: Vec<&Object<Telemetry>> = telemetries(ctx.config)
        .filter(unselected)
        .filter(|telemetry| telemetry.namespace() == root)
        .take(1)
        .collect();
    if namespace != root {
        levels.extend(
            telemetries(ctx.config)
                .filter(unselected)
                .filter(|telemetry| telemetry.namespace() == namespace)
                .take(1),
        );
    }
    let mut spec = Spec::default();
    for telemetry in levels {
        for rule in telemetry
            .spec
            .tracing
            .iter()
            .filter(|rule| rule.mode().applies_to(outbound))
        {
            if !rule.providers.is_empty() {
                spec.providers = Some(rule.providers.iter().map(|p| p.name.clone()).collect());
            }
            if let Some(sampling) = rule.random_sampling_percentage {
                spec.sampling = Some(sampling);
            }
            if let Some(disabled) = rule.disable_span_reporting {
                spec.disabled = disabled;
            }
            spec.custom_tags.extend(rule.custom_tags.clone());
        }
    }
    spec
}

/// The connection manager's `tracing` for the proxy's outbound (`outbound`) or inbound side.
pub fn hcm_tracing(ctx: &Context<'_>, outbound: bool) -> Option<Tracing> {
    let spec = spec(ctx, outbound);
    if spec.disabled {
        return None;
    }
    let providers = spec.providers.clone().unwrap_or_else(|| {
        ctx.config
            .mesh
            .default_providers
            .as_ref()
            .map(|defaults| defaults.tracing.clone())
            .unwrap_or_default()
    });
    // istiod uses the first provider.
    let name = providers.first()?;
    let provider = match ctx
        .config
        .mesh
        .extension_provider(name)
        .map(|provider| provider.typed())
    {
        Some(Ok(TypedProvider::OpenTelemetry(provider))) if provider.http.is_none() => provider,
        other => {
            ::tracing::debug!(provider = %name, ?other, "tracing provider is not an OTLP/gRPC opentelemetry provider; no tracing");
            return None;
        }
    };
    let (host, cluster) = receiver_cluster(ctx, &provider)?;
    let labels = &ctx.proxy.labels;
    let canonical_service = labels
        .get(LABEL_KEYS[0])
        .or_else(|| labels.get(LABEL_KEYS[2]))
        .cloned();
    let service_name = format!(
        "{}.{}",
        canonical_service.as_deref().unwrap_or("istio-proxy"),
        ctx.proxy.namespace
    );
    let otel = OpenTelemetryConfig {
        grpc_service: Some(GrpcService {
            target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                grpc_service::EnvoyGrpc {
                    cluster_name: cluster,
                    authority: host,
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        service_name,
        ..Default::default()
    };
    let sampling = spec.sampling.unwrap_or_else(|| proxy_config_sampling(ctx));
    let mut tags = istio_tags(ctx, canonical_service.as_deref());
    tags.extend(
        spec.custom_tags
            .iter()
            .filter_map(|(tag, source)| custom_tag(tag, source)),
    );
    tags.sort_by(|a, b| a.tag.cmp(&b.tag));
    Some(Tracing {
        client_sampling: Some(Percent { value: 100.0 }),
        overall_sampling: Some(Percent { value: 100.0 }),
        random_sampling: Some(Percent { value: sampling }),
        custom_tags: tags,
        provider: Some(trace::Http {
            name: OPENTELEMETRY_TRACER.to_string(),
            config_type: Some(trace::http::ConfigType::TypedConfig(names::pack(&otel))),
        }),
        max_path_tag_length: provider.max_tag_length.map(names::uint32),
        ..Default::default()
    })
}

/// The provider's service (`HOST` or `NAMESPACE/HOST`) as a known service's host name and
/// its outbound cluster, as istiod's `LookupCluster`.
fn receiver_cluster(
    ctx: &Context<'_>,
    provider: &OpenTelemetryProvider,
) -> Option<(String, String)> {
    let (namespace, host) = match provider.service.split_once('/') {
        Some((namespace, host)) => (Some(namespace), host),
        None => (None, provider.service.as_str()),
    };
    let service = ctx.registry.services.iter().find(|service| {
        namespace.is_none_or(|namespace| service.namespace == namespace)
            && (service.hostname == host
                || service.hostname == ctx.resolve(host, &service.namespace))
    });
    let Some(service) = service else {
        ::tracing::debug!(service = %provider.service, "tracing provider's service is not in the registry; no tracing");
        return None;
    };
    Some((
        service.hostname.clone(),
        names::outbound_cluster(provider.port, "", &service.hostname),
    ))
}

/// `defaultConfig.tracing.sampling` (over 100 means 1, as istiod reads it), else 1 %.
fn proxy_config_sampling(ctx: &Context<'_>) -> f64 {
    let configured = ctx
        .config
        .mesh
        .default_config
        .as_ref()
        .and_then(|proxy| proxy.tracing.as_ref())
        .and_then(|tracing| tracing.get("sampling"))
        .and_then(serde_json::Value::as_f64)
        .filter(|sampling| *sampling != 0.0);
    match configured {
        Some(sampling) if sampling > 100.0 => 1.0,
        Some(sampling) => sampling,
        None => DEFAULT_SAMPLING,
    }
}

fn literal(tag: &str, value: &str) -> EnvoyTag {
    EnvoyTag {
        tag: tag.to_string(),
        r#type: Some(custom_tag::Type::Literal(custom_tag::Literal {
            value: value.to_string(),
        })),
    }
}

/// istiod's `buildServiceTags`.
fn istio_tags(ctx: &Context<'_>, canonical_service: Option<&str>) -> Vec<EnvoyTag> {
    let revision = ctx
        .proxy
        .labels
        .get(LABEL_KEYS[1])
        .map(String::as_str)
        .unwrap_or("latest");
    let mesh_id = ctx
        .config
        .mesh
        .default_config
        .as_ref()
        .and_then(|proxy| proxy.mesh_id.as_deref())
        .unwrap_or("unknown");
    vec![
        literal("istio.canonical_revision", revision),
        literal(
            "istio.canonical_service",
            canonical_service.unwrap_or("unknown"),
        ),
        literal("istio.mesh_id", mesh_id),
        literal("istio.namespace", &ctx.proxy.namespace),
        literal("istio.cluster_id", "Kubernetes"),
    ]
}

fn custom_tag(tag: &str, source: &CustomTag) -> Option<EnvoyTag> {
    let r#type = if let Some(literal) = &source.literal {
        custom_tag::Type::Literal(custom_tag::Literal {
            value: literal.value.clone(),
        })
    } else if let Some(env) = &source.environment {
        custom_tag::Type::Environment(custom_tag::Environment {
            name: env.name.clone(),
            default_value: env.default_value.clone().unwrap_or_default(),
        })
    } else if let Some(header) = &source.header {
        custom_tag::Type::RequestHeader(custom_tag::Header {
            name: header.name.clone(),
            default_value: header.default_value.clone().unwrap_or_default(),
        })
    } else {
        // `formatter` tags need Envoy's substitution formatter; not sent.
        return None;
    };
    Some(EnvoyTag {
        tag: tag.to_string(),
        r#type: Some(r#type),
    })
}
