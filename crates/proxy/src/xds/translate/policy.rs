//! Envoy's traffic-policy messages → the model's policies: per-route fault injection and
//! CORS (`typed_per_filter_config`), mirrors and hash policies (route action), circuit
//! breakers and outlier detection (cluster). `Err` is `(field path, reason)` relative to
//! the message given.

use lateen_xds::pb::envoy::config::cluster::v3::{
    CircuitBreakers, OutlierDetection, circuit_breakers,
};
use lateen_xds::pb::envoy::config::core::v3::RoutingPriority;
use lateen_xds::pb::envoy::config::route::v3::route_action::{
    HashPolicy, RequestMirrorPolicy, hash_policy,
};
use lateen_xds::pb::envoy::extensions::filters::common::fault::v3::{FaultDelay, fault_delay};
use lateen_xds::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy;
use lateen_xds::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort,
};
use lateen_xds::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent};
use lateen_xds::pb::google::protobuf::Any;
use lateen_xds::prost::Name;

use super::{duration, fields, string_match, unpack};
use crate::config::model;

type Failure = (String, String);

fn leftover<M: std::fmt::Debug + Default + PartialEq>(path: &str, rest: &M) -> Result<(), Failure> {
    let left = fields::leftover(rest);
    if left.is_empty() {
        return Ok(());
    }
    Err((
        left.iter()
            .map(|field| super::join(path, field))
            .collect::<Vec<_>>()
            .join(", "),
        "not supported by lateen-proxy".into(),
    ))
}

/// A `FractionalPercent` as a percentage (0–100).
pub fn percent(fraction: Option<&FractionalPercent>) -> Result<f64, String> {
    let Some(fraction) = fraction else {
        return Ok(100.0);
    };
    let denominator = match fractional_percent::DenominatorType::try_from(fraction.denominator) {
        Ok(fractional_percent::DenominatorType::Hundred) => 100.0,
        Ok(fractional_percent::DenominatorType::TenThousand) => 10_000.0,
        Ok(fractional_percent::DenominatorType::Million) => 1_000_000.0,
        Err(_) => return Err(format!("unknown denominator {}", fraction.denominator)),
    };
    Ok((f64::from(fraction.numerator) / denominator * 100.0).min(100.0))
}

/// The per-route filter configs: fault and CORS, found by their type.
pub fn per_filter(
    configs: &std::collections::HashMap<String, Any>,
    route: &mut model::Route,
) -> Result<(), Failure> {
    for (name, any) in configs {
        let path = format!("typed_per_filter_config[{name:?}]");
        if any.type_url == HttpFault::type_url() {
            let fault: HttpFault = unpack(any).map_err(|reason| (path.clone(), reason))?;
            route.fault = Some(
                fault_of(&fault).map_err(|(field, reason)| (format!("{path}.{field}"), reason))?,
            );
        } else if any.type_url == CorsPolicy::type_url() {
            let cors: CorsPolicy = unpack(any).map_err(|reason| (path.clone(), reason))?;
            route.cors = Some(
                cors_of(&cors).map_err(|(field, reason)| (format!("{path}.{field}"), reason))?,
            );
        } else {
            return Err((
                path,
                format!(
                    "per-route config {} is not supported (only fault and CORS)",
                    any.type_url
                ),
            ));
        }
    }
    Ok(())
}

fn fault_of(fault: &HttpFault) -> Result<model::FaultPolicy, Failure> {
    leftover(
        "",
        &HttpFault {
            delay: None,
            abort: None,
            ..fault.clone()
        },
    )?;
    let delay = match &fault.delay {
        Some(delay) => Some(delay_of(delay)?),
        None => None,
    };
    let abort = match &fault.abort {
        Some(abort) => Some(abort_of(abort)?),
        None => None,
    };
    Ok(model::FaultPolicy { delay, abort })
}

fn delay_of(delay: &FaultDelay) -> Result<model::FaultDelay, Failure> {
    let fixed = match &delay.fault_delay_secifier {
        Some(fault_delay::FaultDelaySecifier::FixedDelay(fixed)) => {
            duration(fixed).map_err(|reason| ("delay.fixed_delay".to_string(), reason))?
        }
        Some(_) => {
            return Err((
                "delay.header_delay".into(),
                "header-controlled delays are not supported".into(),
            ));
        }
        None => return Err(("delay.fixed_delay".into(), "missing".into())),
    };
    let percentage = percent(delay.percentage.as_ref())
        .map_err(|reason| ("delay.percentage".to_string(), reason))?;
    Ok(model::FaultDelay {
        fixed_delay: fixed,
        percentage,
    })
}

fn abort_of(abort: &FaultAbort) -> Result<model::FaultAbort, Failure> {
    leftover(
        "abort",
        &FaultAbort {
            percentage: None,
            error_type: None,
            ..abort.clone()
        },
    )?;
    let percentage = percent(abort.percentage.as_ref())
        .map_err(|reason| ("abort.percentage".to_string(), reason))?;
    let (http_status, grpc_status) = match &abort.error_type {
        Some(fault_abort::ErrorType::HttpStatus(code)) => (
            Some(u16::try_from(*code).map_err(|_| {
                (
                    "abort.http_status".to_string(),
                    format!("{code} is not an HTTP status"),
                )
            })?),
            None,
        ),
        Some(fault_abort::ErrorType::GrpcStatus(code)) => (None, Some(*code)),
        Some(_) => {
            return Err((
                "abort.header_abort".into(),
                "header-controlled aborts are not supported".into(),
            ));
        }
        None => return Err(("abort.error_type".into(), "missing".into())),
    };
    Ok(model::FaultAbort {
        http_status,
        grpc_status,
        percentage,
    })
}

fn cors_of(cors: &CorsPolicy) -> Result<model::CorsPolicy, Failure> {
    let rest = CorsPolicy {
        allow_origin_string_match: Vec::new(),
        allow_methods: String::new(),
        allow_headers: String::new(),
        expose_headers: String::new(),
        max_age: String::new(),
        allow_credentials: None,
        forward_not_matching_preflights: None,
        ..cors.clone()
    };
    leftover("", &rest)?;
    let mut allow_origins = Vec::new();
    for (index, matcher) in cors.allow_origin_string_match.iter().enumerate() {
        allow_origins.push(
            string_match(matcher)
                .map_err(|reason| (format!("allow_origin_string_match[{index}]"), reason))?,
        );
    }
    let list = |text: &str| {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let max_age = match cors.max_age.trim() {
        "" => None,
        text => Some(text.parse::<u64>().map_err(|_| {
            (
                "max_age".to_string(),
                format!("{text:?} is not a number of seconds"),
            )
        })?),
    };
    Ok(model::CorsPolicy {
        allow_origins,
        allow_methods: list(&cors.allow_methods),
        allow_headers: list(&cors.allow_headers),
        expose_headers: list(&cors.expose_headers),
        max_age,
        allow_credentials: cors.allow_credentials.is_some_and(|flag| flag.value),
        forward_not_matching_preflights: cors
            .forward_not_matching_preflights
            .is_none_or(|flag| flag.value),
    })
}

pub fn mirror_of(mirror: &RequestMirrorPolicy) -> Result<model::MirrorPolicy, Failure> {
    leftover(
        "",
        &RequestMirrorPolicy {
            cluster: String::new(),
            runtime_fraction: None,
            ..mirror.clone()
        },
    )?;
    if mirror.cluster.is_empty() {
        return Err((
            "cluster".into(),
            "missing (cluster_header is not supported)".into(),
        ));
    }
    let percentage = match &mirror.runtime_fraction {
        Some(fraction) => percent(fraction.default_value.as_ref())
            .map_err(|reason| ("runtime_fraction.default_value".to_string(), reason))?,
        None => 100.0,
    };
    Ok(model::MirrorPolicy {
        cluster: mirror.cluster.clone(),
        percentage,
    })
}

/// Cookie `ttl`, `path` and `attributes` only matter when Envoy generates a missing cookie,
/// which this proxy does not: a request without the cookie goes to a random host.
pub fn hash_of(policy: &HashPolicy) -> Result<model::HashPolicy, Failure> {
    if policy.terminal {
        return Err(("terminal".into(), "not supported by lateen-proxy".into()));
    }
    Ok(match &policy.policy_specifier {
        Some(hash_policy::PolicySpecifier::Header(header)) => {
            leftover(
                "header",
                &hash_policy::Header {
                    header_name: String::new(),
                    ..header.clone()
                },
            )?;
            model::HashPolicy::Header(header.header_name.to_ascii_lowercase())
        }
        Some(hash_policy::PolicySpecifier::Cookie(cookie)) => {
            model::HashPolicy::Cookie(cookie.name.clone())
        }
        Some(hash_policy::PolicySpecifier::ConnectionProperties(properties)) => {
            model::HashPolicy::SourceIp(properties.source_ip)
        }
        Some(hash_policy::PolicySpecifier::QueryParameter(param)) => {
            model::HashPolicy::QueryParameter(param.name.clone())
        }
        Some(_) => {
            return Err((
                "policy_specifier".into(),
                "only header, cookie, connection_properties and query_parameter are supported"
                    .into(),
            ));
        }
        None => return Err(("policy_specifier".into(), "missing".into())),
    })
}

/// The DEFAULT-priority thresholds (HIGH-priority ones apply to no traffic here).
pub fn breakers_of(breakers: &CircuitBreakers) -> Result<Option<model::CircuitBreakers>, Failure> {
    leftover(
        "",
        &CircuitBreakers {
            thresholds: Vec::new(),
            ..breakers.clone()
        },
    )?;
    let mut result = None;
    for (index, thresholds) in breakers.thresholds.iter().enumerate() {
        let path = format!("thresholds[{index}]");
        let rest = circuit_breakers::Thresholds {
            priority: 0,
            max_connections: None,
            max_pending_requests: None,
            max_requests: None,
            max_retries: None,
            track_remaining: false,
            ..*thresholds
        };
        leftover(&path, &rest)?;
        if thresholds.priority != RoutingPriority::Default as i32 {
            continue;
        }
        let defaults = model::CircuitBreakers::default();
        let value = |field: &Option<lateen_xds::pb::google::protobuf::UInt32Value>,
                     default: u32| field.as_ref().map_or(default, |v| v.value);
        result = Some(model::CircuitBreakers {
            max_connections: value(&thresholds.max_connections, defaults.max_connections),
            max_pending_requests: value(
                &thresholds.max_pending_requests,
                defaults.max_pending_requests,
            ),
            max_requests: value(&thresholds.max_requests, defaults.max_requests),
            max_retries: value(&thresholds.max_retries, defaults.max_retries),
        });
    }
    Ok(result)
}

/// Consecutive-failure ejection. Success-rate and failure-percentage ejection are not
/// implemented: they are accepted only when off (enforcing 0, as Istio sends), or unset.
pub fn outlier_of(outlier: &OutlierDetection) -> Result<model::OutlierDetection, Failure> {
    if outlier.split_external_local_origin_errors {
        return Err((
            "split_external_local_origin_errors".into(),
            "not supported by lateen-proxy".into(),
        ));
    }
    let rest = OutlierDetection {
        consecutive_5xx: None,
        enforcing_consecutive_5xx: None,
        consecutive_gateway_failure: None,
        enforcing_consecutive_gateway_failure: None,
        interval: None,
        base_ejection_time: None,
        max_ejection_time: None,
        max_ejection_percent: None,
        enforcing_success_rate: outlier
            .enforcing_success_rate
            .filter(|value| value.value != 0),
        // Only counted separately with split_external_local_origin_errors, which is refused.
        consecutive_local_origin_failure: None,
        enforcing_consecutive_local_origin_failure: None,
        enforcing_local_origin_success_rate: None,
        ..outlier.clone()
    };
    leftover("", &rest)?;
    let defaults = model::OutlierDetection::default();
    let enforcing = |field: &str,
                     value: Option<&lateen_xds::pb::google::protobuf::UInt32Value>,
                     default: u32| match value.map_or(default, |v| v.value) {
        0 => Ok(false),
        100 => Ok(true),
        other => Err((
            field.to_string(),
            format!("{other}: only 0 or 100 is supported"),
        )),
    };
    let five_xx = enforcing(
        "enforcing_consecutive_5xx",
        outlier.enforcing_consecutive_5xx.as_ref(),
        100,
    )?;
    let gateway = enforcing(
        "enforcing_consecutive_gateway_failure",
        outlier.enforcing_consecutive_gateway_failure.as_ref(),
        0,
    )?;
    let time = |field: &str,
                value: Option<&lateen_xds::pb::google::protobuf::Duration>,
                default| match value {
        Some(value) => duration(value).map_err(|reason| (field.to_string(), reason)),
        None => Ok(default),
    };
    Ok(model::OutlierDetection {
        consecutive_5xx: if five_xx {
            outlier.consecutive_5xx.as_ref().map_or(5, |v| v.value)
        } else {
            0
        },
        consecutive_gateway_failure: if gateway {
            outlier
                .consecutive_gateway_failure
                .as_ref()
                .map_or(5, |v| v.value)
        } else {
            0
        },
        interval: time("interval", outlier.interval.as_ref(), defaults.interval)?,
        base_ejection_time: time(
            "base_ejection_time",
            outlier.base_ejection_time.as_ref(),
            defaults.base_ejection_time,
        )?,
        max_ejection_time: time(
            "max_ejection_time",
            outlier.max_ejection_time.as_ref(),
            defaults.max_ejection_time,
        )?,
        max_ejection_percent: outlier
            .max_ejection_percent
            .as_ref()
            .map_or(defaults.max_ejection_percent, |v| v.value.min(100)),
    })
}
