//! Cheap reads of encoded resources. A sidecar's outbound route configuration holds one
//! virtual host per service (1000 here) and every simulated proxy receives it on every push;
//! decoding all of it in each of 1000 clients would make this tool, not the control plane,
//! the bottleneck. So the wire format is walked field by field and only the one virtual host
//! the benchmark watches is decoded.

use lateen_xds::pb::envoy::config::route::v3::{VirtualHost, route, route_action};
use lateen_xds::prost::Message;
use lateen_xds::prost::encoding::{DecodeContext, WireType, decode_key, decode_varint, skip_field};

/// RouteConfiguration.virtual_hosts.
const VIRTUAL_HOSTS: u32 = 2;
/// `name` of RouteConfiguration and VirtualHost, `cluster_name` of ClusterLoadAssignment.
const NAME: u32 = 1;

/// Top-level length-delimited fields of a message: (field number, bytes).
fn length_delimited(mut buf: &[u8]) -> impl Iterator<Item = (u32, &[u8])> {
    std::iter::from_fn(move || {
        while !buf.is_empty() {
            let (tag, wire_type) = decode_key(&mut buf).ok()?;
            if wire_type == WireType::LengthDelimited {
                let len = usize::try_from(decode_varint(&mut buf).ok()?).ok()?;
                if len > buf.len() {
                    return None;
                }
                let (field, rest) = buf.split_at(len);
                buf = rest;
                return Some((tag, field));
            }
            skip_field(wire_type, tag, &mut buf, DecodeContext::default()).ok()?;
        }
        None
    })
}

/// The first string field `number` of an encoded message.
pub fn string_field(message: &[u8], number: u32) -> Option<&str> {
    length_delimited(message)
        .find(|(tag, _)| *tag == number)
        .and_then(|(_, bytes)| std::str::from_utf8(bytes).ok())
}

/// In an encoded RouteConfiguration: the weight of the first weighted cluster whose name
/// contains `cluster_part`, on the first weighted route of virtual host `vhost`.
pub fn subset_weight(route_config: &[u8], vhost: &str, cluster_part: &str) -> Option<u32> {
    let (_, bytes) = length_delimited(route_config)
        .find(|(tag, bytes)| *tag == VIRTUAL_HOSTS && string_field(bytes, NAME) == Some(vhost))?;
    let vhost = VirtualHost::decode(bytes).ok()?;
    vhost.routes.iter().find_map(|r| match &r.action {
        Some(route::Action::Route(action)) => match &action.cluster_specifier {
            Some(route_action::ClusterSpecifier::WeightedClusters(w)) => w
                .clusters
                .iter()
                .find(|c| c.name.contains(cluster_part))
                .and_then(|c| c.weight.as_ref())
                .map(|w| w.value),
            _ => None,
        },
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lateen_xds::pb::envoy::config::route::v3::{
        Route, RouteAction, RouteConfiguration, WeightedCluster, weighted_cluster,
    };
    use lateen_xds::pb::google::protobuf::UInt32Value;

    fn weighted(v1: u32) -> Route {
        let cluster = |name: &str, weight: u32| weighted_cluster::ClusterWeight {
            name: name.into(),
            weight: Some(UInt32Value { value: weight }),
            ..Default::default()
        };
        Route {
            action: Some(route::Action::Route(RouteAction {
                cluster_specifier: Some(route_action::ClusterSpecifier::WeightedClusters(
                    WeightedCluster {
                        clusters: vec![
                            cluster("outbound|9080|v1|a", v1),
                            cluster("outbound|9080|v2|a", 100 - v1),
                        ],
                        ..Default::default()
                    },
                )),
                ..Default::default()
            })),
            ..Default::default()
        }
    }

    #[test]
    fn finds_the_watched_virtual_host_only() {
        let config = RouteConfiguration {
            name: "9080".into(),
            virtual_hosts: vec![
                VirtualHost {
                    name: "b:9080".into(),
                    routes: vec![weighted(10)],
                    ..Default::default()
                },
                VirtualHost {
                    name: "a:9080".into(),
                    routes: vec![weighted(63)],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
        .encode_to_vec();
        assert_eq!(string_field(&config, NAME), Some("9080"));
        assert_eq!(subset_weight(&config, "a:9080", "|v1|"), Some(63));
        assert_eq!(subset_weight(&config, "b:9080", "|v2|"), Some(90));
        assert_eq!(subset_weight(&config, "c:9080", "|v1|"), None);
        assert_eq!(
            subset_weight(&config[..config.len() - 3], "a:9080", "|v1|"),
            None
        );
    }
}
