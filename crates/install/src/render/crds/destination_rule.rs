//! networking.istio.io/DestinationRule: traffic policies (load balancing, connection pools,
//! outlier detection, client TLS) for a host, its subsets and its ports.

use serde_json::Value;

use super::common::match_labels_selector;
use super::schema::{
    SchemaExt, any_duration, boolean, double, duration, enumeration, int32, integer, list, map,
    nullable_boolean, object, string, string_map, strings, uint32, uint64,
};
use super::traffic::{connection_pool, port_selector};

fn failover() -> Value {
    list(object(&[("from", string()), ("to", string())]))
}

fn consistent_hash() -> Value {
    let attribute = object(&[("name", string()), ("value", string())]).required(&["name"]);
    let cookie = object(&[
        ("attributes", list(attribute)),
        ("name", string()),
        ("path", string()),
        ("ttl", any_duration()),
    ])
    .required(&["name"]);
    object(&[
        ("httpCookie", cookie),
        ("httpHeaderName", string()),
        ("httpQueryParameterName", string()),
        ("maglev", object(&[("tableSize", uint64())])),
        ("minimumRingSize", uint64()),
        ("ringHash", object(&[("minimumRingSize", uint64())])),
        ("useSourceIp", boolean()),
    ])
    .one_of_each(&[
        &[
            "httpHeaderName",
            "httpCookie",
            "useSourceIp",
            "httpQueryParameterName",
        ],
        &["ringHash", "maglev"],
    ])
}

fn load_balancer() -> Value {
    let backend_utilization = object(&[
        ("errorUtilizationPenaltyPercent", uint32()),
        ("metricNamesForComputingUtilization", strings()),
        ("weightExpirationPeriod", any_duration()),
        ("weightStabilizationPeriod", any_duration()),
        ("weightUpdatePeriod", any_duration()),
    ]);
    let locality = object(&[
        (
            "distribute",
            list(object(&[("from", string()), ("to", map(uint32()))])),
        ),
        ("enabled", nullable_boolean()),
        ("failover", failover()),
        ("failoverPriority", strings()),
    ]);
    let warmup = object(&[
        ("aggression", double().minimum(0).nullable()),
        ("duration", duration()),
        (
            "minimumPercent",
            double().minimum(0).maximum(100).nullable(),
        ),
    ])
    .required(&["duration"]);
    let zone_aware = object(&[
        ("enabled", nullable_boolean()),
        ("failover", failover()),
        ("failoverPriority", strings()),
        ("minClusterSize", uint32().minimum(1).nullable()),
    ]);
    object(&[
        ("backendUtilization", backend_utilization),
        ("consistentHash", consistent_hash()),
        ("localityLbSetting", locality),
        (
            "simple",
            enumeration(&[
                "UNSPECIFIED",
                "LEAST_CONN",
                "RANDOM",
                "PASSTHROUGH",
                "ROUND_ROBIN",
                "LEAST_REQUEST",
            ]),
        ),
        ("warmup", warmup),
        ("warmupDurationSecs", duration()),
        ("zoneAwareLbSetting", zone_aware),
    ])
    .one_of(&["simple", "consistentHash", "backendUtilization"])
}

fn outlier_detection() -> Value {
    object(&[
        ("baseEjectionTime", duration()),
        ("consecutive5xxErrors", uint32().nullable()),
        ("consecutiveErrors", int32()),
        ("consecutiveGatewayErrors", uint32().nullable()),
        ("consecutiveLocalOriginFailures", uint32().nullable()),
        ("interval", duration()),
        ("maxEjectionPercent", int32()),
        ("minHealthPercent", int32()),
        (
            "outlierDetectionHttpErrorCodes",
            list(integer().minimum(100).maximum(599)),
        ),
        ("splitExternalLocalOriginErrors", boolean()),
    ])
}

fn client_tls() -> Value {
    object(&[
        ("caCertificates", string()),
        ("caCrl", string()),
        ("clientCertificate", string()),
        ("credentialName", string()),
        ("insecureSkipVerify", nullable_boolean()),
        (
            "mode",
            enumeration(&["DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL"]),
        ),
        ("privateKey", string()),
        ("sni", string()),
        ("subjectAltNames", strings()),
    ])
}

fn traffic_policy() -> Value {
    let port_settings = object(&[
        ("connectionPool", connection_pool()),
        ("loadBalancer", load_balancer()),
        ("outlierDetection", outlier_detection()),
        ("port", port_selector()),
        ("tls", client_tls()),
    ]);
    let retry_budget = object(&[
        ("budgetInterval", any_duration()),
        ("minRetryConcurrency", uint32()),
        ("percent", double().minimum(0).maximum(100).nullable()),
    ]);
    let tunnel = object(&[
        ("protocol", string()),
        ("targetHost", string()),
        ("targetPort", uint32()),
    ])
    .required(&["targetHost", "targetPort"]);
    object(&[
        ("connectionPool", connection_pool()),
        ("loadBalancer", load_balancer()),
        ("outlierDetection", outlier_detection()),
        ("portLevelSettings", list(port_settings).max_items(4096)),
        (
            "proxyProtocol",
            object(&[("version", enumeration(&["V1", "V2"]))]),
        ),
        ("retryBudget", retry_budget),
        ("tls", client_tls()),
        ("tunnel", tunnel),
    ])
}

/// `networking.istio.io/DestinationRule`.
pub fn destination_rule_spec() -> Value {
    let subset = object(&[
        ("labels", string_map()),
        ("name", string()),
        ("trafficPolicy", traffic_policy()),
    ])
    .required(&["name"]);
    object(&[
        ("exportTo", strings()),
        ("host", string()),
        ("subsets", list(subset)),
        ("trafficPolicy", traffic_policy()),
        ("workloadSelector", match_labels_selector()),
    ])
    .required(&["host"])
}
