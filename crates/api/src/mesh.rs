//! MeshConfig: the mesh-wide settings file (`mesh` key of the `istio` ConfigMap, or
//! `meshConfig:` of an install). No apiVersion/kind: the document is the config itself.
//!
//! Fields the control plane uses are typed; rarely used nested blocks (config sources, CA,
//! discovery selectors, provider bodies) are kept as raw JSON values, but their top-level names
//! are still checked so a typo is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::networking::{HttpRetry, LocalityLbSetting, OutboundTrafficMode, TcpKeepalive};

/// Mesh-wide configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_listen_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_inbound_listen_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_http_port: Option<i32>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub connect_timeout: Option<Duration>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub protocol_detection_timeout: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_keepalive: Option<TcpKeepalive>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_class: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_service: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_controller_mode: Option<IngressControllerMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_selector: Option<String>,
    #[serde(default)]
    pub enable_tracing: bool,
    /// Access log path (`/dev/stdout`); empty disables the default access log.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_format: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_encoding: Option<AccessLogEncoding>,
    #[serde(default)]
    pub enable_envoy_access_log_service: bool,
    #[serde(default)]
    pub disable_envoy_listener_log: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_config: Option<ProxyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_traffic_policy: Option<MeshOutboundTrafficPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_traffic_policy: Option<InboundTrafficPolicy>,
    #[serde(default)]
    pub config_sources: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_auto_mtls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust_domain: Option<String>,
    #[serde(default)]
    pub trust_domain_aliases: Vec<String>,
    #[serde(default)]
    pub ca_certificates: Vec<Value>,
    #[serde(default)]
    pub default_service_export_to: Vec<String>,
    #[serde(default)]
    pub default_virtual_service_export_to: Vec<String>,
    #[serde(default)]
    pub default_destination_rule_export_to: Vec<String>,
    /// Namespace whose resources apply mesh-wide (default `istio-system`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_namespace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locality_lb_setting: Option<LocalityLbSetting>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_refresh_rate: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2_upgrade_policy: Option<MeshH2UpgradePolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_cluster_stat_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outbound_cluster_stat_name: Option<String>,
    #[serde(default)]
    pub certificates: Vec<Value>,
    #[serde(default)]
    pub service_settings: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_prometheus_merge: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify_certificate_at_client: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<Value>,
    #[serde(default)]
    pub extension_providers: Vec<ExtensionProvider>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_providers: Option<DefaultProviders>,
    #[serde(default)]
    pub discovery_selectors: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_normalization: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_http_retry_policy: Option<HttpRetry>,
    #[serde(default, rename = "meshMTLS", skip_serializing_if = "Option::is_none")]
    pub mesh_mtls: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_defaults: Option<TlsConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compliance_policy: Option<String>,
    #[serde(default)]
    pub service_scope_configs: Vec<Value>,
}

/// Where proxies reach the control plane when `defaultConfig.discoveryAddress` is unset.
pub const DEFAULT_DISCOVERY_ADDRESS: &str = "lateend.istio-system.svc:15012";

/// Istio's default retry conditions for HTTP routes.
pub const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";

/// Istio's default number of HTTP retries.
pub const DEFAULT_RETRY_ATTEMPTS: i32 = 2;

/// Istio's root namespace when `rootNamespace` is unset.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

impl MeshConfig {
    /// `rootNamespace`, or `istio-system`.
    pub fn root_namespace(&self) -> &str {
        self.root_namespace
            .as_deref()
            .unwrap_or(DEFAULT_ROOT_NAMESPACE)
    }

    /// `trustDomain`, or `cluster.local`.
    pub fn trust_domain(&self) -> &str {
        self.trust_domain.as_deref().unwrap_or("cluster.local")
    }

    /// Outbound mode; Istio's default is `ALLOW_ANY`.
    pub fn outbound_traffic_mode(&self) -> OutboundTrafficMode {
        self.outbound_traffic_policy
            .as_ref()
            .and_then(|p| p.mode)
            .unwrap_or(OutboundTrafficMode::AllowAny)
    }

    /// Access log encoding, `TEXT` when unset.
    pub fn access_log_encoding(&self) -> AccessLogEncoding {
        self.access_log_encoding.unwrap_or(AccessLogEncoding::Text)
    }

    /// `connectTimeout`, or Istio's default of 10s.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout.unwrap_or(Duration::from_secs(10))
    }

    /// `dnsRefreshRate`, or Istio's default of 60s.
    pub fn dns_refresh_rate(&self) -> Duration {
        self.dns_refresh_rate.unwrap_or(Duration::from_secs(60))
    }

    /// `enableAutoMtls`, default true.
    pub fn enable_auto_mtls(&self) -> bool {
        self.enable_auto_mtls.unwrap_or(true)
    }

    /// `enablePrometheusMerge`, default true.
    pub fn enable_prometheus_merge(&self) -> bool {
        self.enable_prometheus_merge.unwrap_or(true)
    }

    /// The xDS address proxies use: `defaultConfig.discoveryAddress`, or
    /// [`DEFAULT_DISCOVERY_ADDRESS`].
    pub fn discovery_address(&self) -> &str {
        self.default_config
            .as_ref()
            .and_then(|c| c.discovery_address.as_deref())
            .unwrap_or(DEFAULT_DISCOVERY_ADDRESS)
    }

    /// The retry policy of routes without `retries`: `defaultHttpRetryPolicy` with Istio's
    /// defaults filled in (2 attempts on [`DEFAULT_RETRY_ON`]).
    pub fn default_http_retry(&self) -> HttpRetry {
        let mut retry = self.default_http_retry_policy.clone().unwrap_or(HttpRetry {
            attempts: DEFAULT_RETRY_ATTEMPTS,
            ..HttpRetry::default()
        });
        if retry.retry_on.is_none() {
            retry.retry_on = Some(DEFAULT_RETRY_ON.to_string());
        }
        retry
    }

    /// The extension provider with this name.
    pub fn extension_provider(&self, name: &str) -> Option<&ExtensionProvider> {
        self.extension_providers.iter().find(|p| p.name == name)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum IngressControllerMode {
    Unspecified,
    Off,
    Default,
    Strict,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AccessLogEncoding {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MeshH2UpgradePolicy {
    DoNotUpgrade,
    Upgrade,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeshOutboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<OutboundTrafficMode>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InboundTrafficPolicy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<InboundTrafficMode>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InboundTrafficMode {
    Passthrough,
    Localhost,
}

/// Default providers by name (must name entries of `extensionProviders`, or a built-in).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DefaultProviders {
    #[serde(default)]
    pub tracing: Vec<String>,
    #[serde(default)]
    pub metrics: Vec<String>,
    #[serde(default)]
    pub access_logging: Vec<String>,
}

/// TLS settings for mesh traffic (`meshMTLS`) or other TLS (`tlsDefaults`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TlsConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_protocol_version: Option<MeshTlsProtocol>,
    #[serde(default)]
    pub ecdh_curves: Vec<String>,
    #[serde(default)]
    pub cipher_suites: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MeshTlsProtocol {
    #[serde(rename = "TLS_AUTO")]
    TlsAuto,
    #[serde(rename = "TLSV1_2")]
    TlsV1_2,
    #[serde(rename = "TLSV1_3")]
    TlsV1_3,
}

/// Provider kinds Istio defines for `extensionProviders[]` (exactly one per entry).
pub const EXTENSION_PROVIDER_KINDS: &[&str] = &[
    "envoyExtAuthzHttp",
    "envoyExtAuthzGrpc",
    "zipkin",
    "lightstep",
    "datadog",
    "stackdriver",
    "opencensus",
    "skywalking",
    "opentelemetry",
    "prometheus",
    "envoyFileAccessLog",
    "envoyHttpAls",
    "envoyTcpAls",
    "envoyOtelAls",
    "sds",
];

/// A named extension provider (tracing, access log, ext_authz, metrics...).
/// The provider body is kept as JSON under its kind; see [`ExtensionProvider::kind`].
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExtensionProvider {
    #[serde(default)]
    pub name: String,
    /// Exactly one entry when valid: provider kind (`opentelemetry`, `envoyFileAccessLog`...)
    /// to its settings.
    #[serde(flatten)]
    pub provider: BTreeMap<String, Value>,
}

impl ExtensionProvider {
    /// The provider kind and its settings, when exactly one is set.
    pub fn kind(&self) -> Option<(&str, &Value)> {
        let mut entries = self.provider.iter();
        match (entries.next(), entries.next()) {
            (Some((k, v)), None) => Some((k.as_str(), v)),
            _ => None,
        }
    }

    /// `service` and `port` of providers that talk to a service (most of them).
    pub fn service_and_port(&self) -> Option<(&str, u32)> {
        let (_, body) = self.kind()?;
        let service = body.get("service")?.as_str()?;
        let port = u32::try_from(body.get("port")?.as_u64()?).ok()?;
        Some((service, port))
    }
}

/// Proxy settings (`defaultConfig`, or the `proxy.istio.io/config` annotation).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProxyConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_cluster: Option<String>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub drain_duration: Option<Duration>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub parent_shutdown_duration: Option<Duration>,
    /// `host:port` of the xDS server (Istio's default `istiod.istio-system.svc:15012`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discovery_address: Option<String>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub discovery_refresh_delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zipkin_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statsd_udp_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_metrics_service_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_admin_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub availability_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control_plane_auth_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_config_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat_name_length: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_bootstrap_template_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interception_mode: Option<InterceptionMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sds: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_access_log_service: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envoy_metrics_service: Option<Value>,
    /// Extra environment for the proxy; `ISTIO_META_*` entries go into node metadata.
    #[serde(default)]
    pub proxy_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub runtime_values: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_port: Option<i32>,
    #[serde(default)]
    pub extra_stat_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_topology: Option<Value>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub termination_drain_duration: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mesh_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness_probe: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_stats_matcher: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_application_until_proxy_starts: Option<bool>,
    #[serde(default)]
    pub ca_certificates_pem: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_provider: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_headers: Option<Value>,
    #[serde(
        default,
        with = "crate::duration::opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub file_flush_interval: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_flush_min_size_kb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing_service_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats_compression: Option<Value>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum InterceptionMode {
    Redirect,
    Tproxy,
    None,
}
