//! What a control plane sends lateen-proxy: arbitrary bytes decoded as Envoy v3 resources
//! (Listener, RouteConfiguration, Cluster, ClusterLoadAssignment), applied to the accepted
//! state as a response of that type, assembled and compiled as the xDS agent does; and the
//! same bytes decoded as a whole `DiscoveryResponse`.

use lateen_proxy::config::compile::compile;
use lateen_proxy::config::model::ProxyConfig;
use lateen_proxy::xds::state::XdsState;
use lateen_xds::AdsResponse;
use lateen_xds::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
use lateen_xds::pb::google::protobuf::Any;
use lateen_xds::prost::Message;
use lateen_xds::types::{CLUSTER, ENDPOINT, LISTENER, ROUTE};

const TYPES: [&str; 4] = [LISTENER, ROUTE, CLUSTER, ENDPOINT];

/// First byte: which resource type (of [`TYPES`]) the rest is; the rest: one resource.
pub fn xds_resources(data: &[u8]) {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let type_url = TYPES[usize::from(selector) % TYPES.len()];
    let resource = Any {
        type_url: type_url.to_string(),
        value: body.to_vec(),
    };
    apply(AdsResponse::Sotw(DiscoveryResponse {
        version_info: "1".into(),
        resources: vec![resource],
        type_url: type_url.to_string(),
        nonce: "1".into(),
        ..Default::default()
    }));
    if let Ok(response) = DiscoveryResponse::decode(data) {
        apply(AdsResponse::Sotw(response));
    }
    if let Ok(response) = DeltaDiscoveryResponse::decode(data) {
        apply(AdsResponse::Delta(response));
    }
}

/// One response on an empty state; when accepted, the whole configuration compiled.
fn apply(response: AdsResponse) {
    let Ok(state) = XdsState::default().with_response(&response) else {
        return;
    };
    let assembled = state.assemble(&ProxyConfig::default(), "127.0.0.1:15010");
    let _ = compile(assembled.config);
}
