//! Parsing and validation of the pod annotations that tune injection. Every bad value is refused
//! with an error naming the annotation and the value, as Istio's injector does.

use std::str::FromStr;

use serde_json::{Map, Value};

use crate::InjectError;

pub const INJECT: &str = "sidecar.istio.io/inject";
pub const PROXY_CPU: &str = "sidecar.istio.io/proxyCPU";
pub const PROXY_MEMORY: &str = "sidecar.istio.io/proxyMemory";
pub const PROXY_CPU_LIMIT: &str = "sidecar.istio.io/proxyCPULimit";
pub const PROXY_MEMORY_LIMIT: &str = "sidecar.istio.io/proxyMemoryLimit";
pub const PROXY_IMAGE: &str = "sidecar.istio.io/proxyImage";
pub const LOG_LEVEL: &str = "sidecar.istio.io/logLevel";
pub const COMPONENT_LOG_LEVEL: &str = "sidecar.istio.io/componentLogLevel";
pub const INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";
pub const REWRITE_PROBES: &str = "sidecar.istio.io/rewriteAppHTTPProbers";
pub const INCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
pub const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
pub const INCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeOutboundPorts";
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
pub const PROXY_CONFIG: &str = "proxy.istio.io/config";
pub const STATUS_PORT: &str = "status.sidecar.istio.io/port";
pub const READINESS_INITIAL_DELAY: &str = "readiness.status.sidecar.istio.io/initialDelaySeconds";
pub const READINESS_PERIOD: &str = "readiness.status.sidecar.istio.io/periodSeconds";
pub const READINESS_FAILURE_THRESHOLD: &str = "readiness.status.sidecar.istio.io/failureThreshold";
pub const READINESS_APPLICATION_PORTS: &str = "readiness.status.sidecar.istio.io/applicationPorts";
pub const MERGE_METRICS: &str = "prometheus.istio.io/merge-metrics";
pub const REVISION: &str = "istio.io/rev";
pub const NATIVE_SIDECAR: &str = "sidecar.istio.io/nativeSidecar";

/// How the capture redirects traffic to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterceptionMode {
    Redirect,
    Tproxy,
    None,
}

impl InterceptionMode {
    pub fn as_str(self) -> &'static str {
        match self {
            InterceptionMode::Redirect => "REDIRECT",
            InterceptionMode::Tproxy => "TPROXY",
            InterceptionMode::None => "NONE",
        }
    }
}

/// The validated per-pod overrides; `None` means "not annotated".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodOverrides {
    pub proxy_cpu: Option<String>,
    pub proxy_memory: Option<String>,
    pub proxy_cpu_limit: Option<String>,
    pub proxy_memory_limit: Option<String>,
    pub proxy_image: Option<String>,
    pub log_level: Option<String>,
    pub component_log_level: Option<String>,
    pub interception_mode: Option<InterceptionMode>,
    pub rewrite_probes: Option<bool>,
    pub include_outbound_ip_ranges: Option<String>,
    pub exclude_outbound_ip_ranges: Option<String>,
    pub include_inbound_ports: Option<String>,
    pub exclude_inbound_ports: Option<String>,
    pub include_outbound_ports: Option<String>,
    pub exclude_outbound_ports: Option<String>,
    /// `proxy.istio.io/config`, parsed (a ProxyConfig mapping).
    pub proxy_config: Option<Map<String, Value>>,
    pub status_port: Option<u16>,
    pub readiness_initial_delay: Option<u32>,
    pub readiness_period: Option<u32>,
    pub readiness_failure_threshold: Option<u32>,
    pub merge_metrics: Option<bool>,
    pub native_sidecar: Option<bool>,
}

impl PodOverrides {
    /// True when any resource annotation is set: then they replace the values' resources.
    pub fn has_resources(&self) -> bool {
        self.proxy_cpu.is_some()
            || self.proxy_memory.is_some()
            || self.proxy_cpu_limit.is_some()
            || self.proxy_memory_limit.is_some()
    }
}

/// Reads the pod's annotations as strings; `path` is where the annotations map lives, for errors.
pub fn string_map(
    annotations: Option<&Value>,
    path: &str,
) -> Result<Map<String, Value>, InjectError> {
    match annotations {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => {
            for (k, v) in map {
                if !v.is_string() {
                    return Err(InjectError::field(
                        format!("{path}.{k}"),
                        "annotation and label values must be strings",
                    ));
                }
            }
            Ok(map.clone())
        }
        Some(_) => Err(InjectError::field(path, "expected a mapping")),
    }
}

/// Parses and validates every annotation the injector honours.
pub fn parse(annotations: &Map<String, Value>) -> Result<PodOverrides, InjectError> {
    let get = |name: &str| annotations.get(name).and_then(Value::as_str);
    let checked = |name: &str,
                   check: fn(&str) -> Result<(), String>|
     -> Result<Option<String>, InjectError> {
        match get(name) {
            None => Ok(None),
            Some(value) => check(value)
                .map(|()| Some(value.to_string()))
                .map_err(|r| InjectError::annotation(name, value, r)),
        }
    };
    let number = |name: &str| -> Result<Option<u32>, InjectError> {
        get(name)
            .map(|v| {
                v.trim().parse::<u32>().map_err(|_| {
                    InjectError::annotation(name, v, "expected a non-negative integer")
                })
            })
            .transpose()
    };
    let boolean = |name: &str| -> Result<Option<bool>, InjectError> {
        get(name)
            .map(|v| match v {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(InjectError::annotation(
                    name,
                    v,
                    "expected \"true\" or \"false\"",
                )),
            })
            .transpose()
    };

    let mut out = PodOverrides {
        proxy_cpu: checked(PROXY_CPU, check_quantity)?,
        proxy_memory: checked(PROXY_MEMORY, check_quantity)?,
        proxy_cpu_limit: checked(PROXY_CPU_LIMIT, check_quantity)?,
        proxy_memory_limit: checked(PROXY_MEMORY_LIMIT, check_quantity)?,
        proxy_image: checked(PROXY_IMAGE, check_non_empty)?,
        log_level: checked(LOG_LEVEL, check_log_level)?,
        component_log_level: checked(COMPONENT_LOG_LEVEL, check_non_empty)?,
        rewrite_probes: boolean(REWRITE_PROBES)?,
        include_outbound_ip_ranges: checked(INCLUDE_OUTBOUND_IP_RANGES, check_include_cidrs)?,
        exclude_outbound_ip_ranges: checked(EXCLUDE_OUTBOUND_IP_RANGES, check_cidrs)?,
        include_inbound_ports: checked(INCLUDE_INBOUND_PORTS, check_include_ports)?,
        exclude_inbound_ports: checked(EXCLUDE_INBOUND_PORTS, check_ports)?,
        include_outbound_ports: checked(INCLUDE_OUTBOUND_PORTS, check_ports)?,
        exclude_outbound_ports: checked(EXCLUDE_OUTBOUND_PORTS, check_ports)?,
        readiness_initial_delay: number(READINESS_INITIAL_DELAY)?,
        readiness_period: number(READINESS_PERIOD)?,
        readiness_failure_threshold: number(READINESS_FAILURE_THRESHOLD)?,
        merge_metrics: boolean(MERGE_METRICS)?,
        native_sidecar: boolean(NATIVE_SIDECAR)?,
        ..PodOverrides::default()
    };
    checked(READINESS_APPLICATION_PORTS, check_ports)?;
    if let Some(v) = get(INTERCEPTION_MODE) {
        out.interception_mode = Some(match v {
            "REDIRECT" => InterceptionMode::Redirect,
            "TPROXY" => InterceptionMode::Tproxy,
            "NONE" => InterceptionMode::None,
            _ => {
                return Err(InjectError::annotation(
                    INTERCEPTION_MODE,
                    v,
                    "expected one of REDIRECT, TPROXY, NONE",
                ));
            }
        });
    }
    if let Some(v) = get(STATUS_PORT) {
        out.status_port =
            Some(parse_port(v, true).map_err(|r| InjectError::annotation(STATUS_PORT, v, r))?);
    }
    if let Some(v) = get(PROXY_CONFIG) {
        out.proxy_config =
            Some(parse_proxy_config(v).map_err(|r| InjectError::annotation(PROXY_CONFIG, v, r))?);
    }
    Ok(out)
}

fn parse_proxy_config(text: &str) -> Result<Map<String, Value>, String> {
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    let parsed: Value = serde_saphyr::from_str(text).map_err(|e| format!("not YAML: {e}"))?;
    match parsed {
        Value::Object(map) => Ok(map),
        Value::Null => Ok(Map::new()),
        _ => Err("expected a ProxyConfig mapping".into()),
    }
}

/// Splits a comma list, ignoring blanks around items (Istio trims them).
fn items(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// `*` (everything), empty, or a list of CIDRs.
pub fn check_include_cidrs(value: &str) -> Result<(), String> {
    if value.trim() == "*" {
        Ok(())
    } else {
        check_cidrs(value)
    }
}

/// A comma list of CIDRs like `10.96.0.0/16,fd00::/8`.
pub fn check_cidrs(value: &str) -> Result<(), String> {
    for item in items(value) {
        ipnet::IpNet::from_str(item)
            .map_err(|_| format!("{item:?} is not a CIDR (like 10.0.0.0/8)"))?;
    }
    Ok(())
}

/// `*` (every port), empty, or a list of ports.
pub fn check_include_ports(value: &str) -> Result<(), String> {
    if value.trim() == "*" {
        Ok(())
    } else {
        check_ports(value)
    }
}

/// A comma list of port numbers 1-65535.
pub fn check_ports(value: &str) -> Result<(), String> {
    for item in items(value) {
        parse_port(item, false)?;
    }
    Ok(())
}

fn parse_port(item: &str, allow_zero: bool) -> Result<u16, String> {
    match item.trim().parse::<u16>() {
        Ok(0) if !allow_zero => Err("port 0 is not valid".into()),
        Ok(p) => Ok(p),
        Err(_) => Err(format!("{item:?} is not a port number (1-65535)")),
    }
}

fn check_non_empty(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(())
    }
}

fn check_log_level(value: &str) -> Result<(), String> {
    const LEVELS: [&str; 8] = [
        "trace", "debug", "info", "warning", "warn", "error", "critical", "off",
    ];
    if LEVELS.contains(&value) {
        Ok(())
    } else {
        Err(format!("expected one of {}", LEVELS.join(", ")))
    }
}

/// A Kubernetes resource quantity: a decimal number with an optional SI/binary suffix or exponent.
pub fn check_quantity(value: &str) -> Result<(), String> {
    const BAD: &str = "not a Kubernetes quantity (like 100m, 0.5, 128Mi, 1G)";
    let s = value.strip_prefix(['+', '-']).unwrap_or(value);
    let digits_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(digits_end);
    let dots = number.matches('.').count();
    if number.is_empty() || number == "." || dots > 1 {
        return Err(BAD.into());
    }
    const SUFFIXES: [&str; 13] = [
        "", "n", "u", "m", "k", "M", "G", "T", "P", "E", "Ki", "Mi", "Gi",
    ];
    const MORE: [&str; 3] = ["Ti", "Pi", "Ei"];
    if SUFFIXES.contains(&suffix) || MORE.contains(&suffix) {
        return Ok(());
    }
    let exponent = suffix
        .strip_prefix(['e', 'E'])
        .map(|e| e.strip_prefix(['+', '-']).unwrap_or(e));
    match exponent {
        Some(e) if !e.is_empty() && e.chars().all(|c| c.is_ascii_digit()) => Ok(()),
        _ => Err(BAD.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in ["100m", "1", "0.5", "128Mi", "1Gi", "2e3", "4000m", "1.5G"] {
            assert!(check_quantity(ok).is_ok(), "{ok}");
        }
        for bad in ["", "abc", "1.2.3", "10x", "m", "1e"] {
            assert!(check_quantity(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists() {
        assert!(check_include_cidrs("*").is_ok());
        assert!(check_cidrs("*").is_err());
        assert!(check_cidrs("10.0.0.0/8, 127.0.0.1/24").is_ok());
        assert!(check_cidrs("bad").is_err());
        assert!(check_include_ports("*").is_ok());
        assert!(check_ports("*").is_err());
        assert!(check_ports("1,2,3").is_ok());
        assert!(check_ports("70000").is_err());
        assert!(check_ports("").is_ok());
    }

    #[test]
    fn error_names_annotation_and_value() {
        let mut a = Map::new();
        a.insert(INCLUDE_INBOUND_PORTS.into(), Value::String("bad".into()));
        let err = parse(&a).unwrap_err().to_string();
        assert!(
            err.contains(INCLUDE_INBOUND_PORTS) && err.contains("\"bad\""),
            "{err}"
        );
    }
}
