//! Istio's `istio.stats` HTTP filter: read into the listener's overrides when lateen-proxy
//! can apply it, a NACK naming the field when not; `is_optional` accepted on it only.

use lateen_xds::istio_stats::{MetricConfig, MetricDefinition, PluginConfig};
use lateen_xds::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_connection_manager, http_filter,
};

use super::listener;
use super::tests::{catch_all, hcm_filter, pack, router, virtual_inbound};

fn stats_filter(config: &PluginConfig) -> HttpFilter {
    HttpFilter {
        name: "istio.stats".into(),
        config_type: Some(http_filter::ConfigType::TypedConfig(pack(config))),
        is_optional: true,
        ..Default::default()
    }
}

fn with_filters(filters: Vec<HttpFilter>) -> lateen_xds::pb::envoy::config::listener::v3::Listener {
    let mut listener = virtual_inbound();
    listener.filter_chains[0].filters[0] = hcm_filter(
        http_connection_manager::RouteSpecifier::RouteConfig(catch_all("c")),
        filters,
    );
    listener
}

fn user_tag(value: &str) -> PluginConfig {
    PluginConfig {
        metrics: vec![MetricConfig {
            name: "requests_total".into(),
            dimensions: [("user".to_string(), value.to_string())].into(),
            tags_to_remove: vec!["request_protocol".into()],
            ..Default::default()
        }],
        ..Default::default()
    }
}

#[test]
fn an_applicable_config_becomes_the_listeners_overrides() {
    let listener = with_filters(vec![
        stats_filter(&user_tag("request.headers['x-user']")),
        router(),
    ]);
    let translated = listener::translate(&listener).unwrap_or_else(|e| panic!("{e}"));
    let stats = translated
        .listeners
        .iter()
        .find_map(|l| l.stats.as_ref())
        .expect("the chain's listener has overrides");
    assert_eq!(stats.metrics.len(), 1);
    assert_eq!(stats.metrics[0].tags_to_remove, ["request_protocol"]);
}

#[test]
fn what_cannot_be_applied_is_refused_by_field() {
    let field = "filter_chains[0].filters[0].typed_config.http_filters[0]";
    let refused = |config: PluginConfig| {
        let listener = with_filters(vec![stats_filter(&config), router()]);
        let err = listener::translate(&listener).expect_err("refused");
        assert_eq!(err.field, field);
        err.reason
    };
    let reason = refused(user_tag("request.time"));
    assert!(
        reason.starts_with(&format!(
            "{field}.typed_config.metrics[0].dimensions.user: "
        )),
        "{reason}"
    );
    assert!(reason.contains("request.time"), "{reason}");
    let reason = refused(PluginConfig {
        definitions: vec![MetricDefinition {
            name: "custom".into(),
            ..Default::default()
        }],
        ..Default::default()
    });
    assert!(reason.contains("typed_config.definitions"), "{reason}");
    let reason = refused(PluginConfig {
        reporter: 1,
        ..Default::default()
    });
    assert!(reason.contains("typed_config.reporter"), "{reason}");

    // `is_optional` does not make other unknown filters acceptable.
    let optional = HttpFilter {
        name: "example.unknown".into(),
        is_optional: true,
        ..Default::default()
    };
    let err = listener::translate(&with_filters(vec![optional, router()]))
        .expect_err("an unknown optional filter");
    assert!(err.field.starts_with(field), "{err}");
}
