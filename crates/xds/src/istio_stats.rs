//! Istio's stats filter configuration (`stats.PluginConfig`, the `istio.stats` HTTP and
//! network filter of Istio's proxy build), which istiod fills from Telemetry `metrics`
//! overrides. Upstream Envoy has no such filter and no generated type for it, so the
//! messages are declared here with the field numbers of Istio's `config.proto`. lateend
//! sends it, lateen-proxy reads it.

use prost::Name;

/// Istio's filter name, for the HTTP filter and the network filter alike.
pub const FILTER_NAME: &str = "istio.stats";

/// Prometheus names (without `istio_`) of Istio's standard metrics, as `MetricConfig.name`
/// spells them.
pub const REQUESTS_TOTAL: &str = "requests_total";
pub const REQUEST_DURATION: &str = "request_duration_milliseconds";
pub const REQUEST_BYTES: &str = "request_bytes";
pub const RESPONSE_BYTES: &str = "response_bytes";
pub const TCP_OPENED: &str = "tcp_connections_opened_total";
pub const TCP_CLOSED: &str = "tcp_connections_closed_total";
pub const TCP_SENT: &str = "tcp_sent_bytes_total";
pub const TCP_RECEIVED: &str = "tcp_received_bytes_total";
pub const REQUEST_MESSAGES: &str = "request_messages_total";
pub const RESPONSE_MESSAGES: &str = "response_messages_total";

/// One override: for the metric `name` (every metric when empty), `dimensions` upserted (label
/// → value expression), `tags_to_remove` removed, or the metric not reported at all (`drop`).
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricConfig {
    #[prost(btree_map = "string, string", tag = "1")]
    pub dimensions: std::collections::BTreeMap<String, String>,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, repeated, tag = "3")]
    pub tags_to_remove: Vec<String>,
    /// Not implemented by Istio either.
    #[prost(string, tag = "4")]
    pub r#match: String,
    #[prost(bool, tag = "5")]
    pub drop: bool,
}

/// A custom metric (`definitions`); lateen-proxy refuses them.
#[derive(Clone, PartialEq, prost::Message)]
pub struct MetricDefinition {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
    #[prost(int32, tag = "3")]
    pub r#type: i32,
}

/// `stats.PluginConfig`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginConfig {
    /// istiod sets it on inbound (and gateway) listeners.
    #[prost(bool, tag = "6")]
    pub disable_host_header_fallback: bool,
    #[prost(message, optional, tag = "7")]
    pub tcp_reporting_duration: Option<crate::pb::google::protobuf::Duration>,
    #[prost(message, repeated, tag = "8")]
    pub metrics: Vec<MetricConfig>,
    #[prost(message, repeated, tag = "9")]
    pub definitions: Vec<MetricDefinition>,
    /// 0 `UNSPECIFIED` (from the listener's direction), 1 `SERVER_GATEWAY`.
    #[prost(int32, tag = "10")]
    pub reporter: i32,
    #[prost(message, optional, tag = "11")]
    pub rescoping_duration: Option<crate::pb::google::protobuf::Duration>,
    #[prost(message, optional, tag = "12")]
    pub scope_grace_period_duration: Option<crate::pb::google::protobuf::Duration>,
}

impl Name for PluginConfig {
    const NAME: &'static str = "PluginConfig";
    const PACKAGE: &'static str = "stats";

    fn type_url() -> String {
        "type.googleapis.com/stats.PluginConfig".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    #[test]
    fn round_trips_with_istios_type_url() {
        let config = PluginConfig {
            disable_host_header_fallback: true,
            metrics: vec![MetricConfig {
                name: REQUESTS_TOTAL.into(),
                tags_to_remove: vec!["request_protocol".into()],
                dimensions: [("user".to_string(), "request.headers['x-user']".to_string())].into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let any = prost::bytes::Bytes::from(config.encode_to_vec());
        assert_eq!(PluginConfig::decode(any).ok(), Some(config));
        assert_eq!(
            PluginConfig::type_url(),
            "type.googleapis.com/stats.PluginConfig"
        );
    }
}
