//! Who a connected proxy is, read from its xDS node the way Istio's agent fills it in:
//!
//! - node id `TYPE~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`, TYPE `sidecar` or `router`;
//! - metadata `NAMESPACE`, `LABELS` (map), `SERVICE_ACCOUNT`, `INSTANCE_IPS` (comma list),
//!   `INTERCEPTION_MODE` (`REDIRECT`, `TPROXY`, `NONE`), `WORKLOAD_NAME`, `POD_PORTS` (JSON list
//!   of `{name, containerPort, protocol}`, as a string or a list), `AUTO_REGISTER_GROUP`;
//! - Lateen's own `LATEEN_CAPTURE_BIND`: the address the REDIRECT-mode capture listeners
//!   (`virtualOutbound`, `virtualInbound`) bind; default the wildcard of the proxy's IP family
//!   (`0.0.0.0`, or `::` when every `INSTANCE_IPS` entry is IPv6), as Istio does;
//! - Lateen's own `LATEEN_MTLS` (`"true"`): the sidecar holds a workload certificate (Envoy
//!   with `lateen-proxy agent` serving SDS, lateen-proxy with `--cert-dir` or the mesh CA), so
//!   it gets Istio's mTLS listeners and clusters; without it everything stays plaintext, so
//!   meshes without certificates keep working.
//!
//! Missing metadata falls back to what the node id says; nothing here can fail.

use std::collections::BTreeMap;

use lateen_xds::ProxyNode;
use serde_json::Value;

/// The `user_agent_name` lateen-proxy sends in its xDS node.
pub const LATEEN_PROXY_USER_AGENT: &str = "lateen-proxy";

/// Sidecar or gateway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProxyType {
    Sidecar,
    Router,
}

/// How traffic reaches the proxy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InterceptionMode {
    /// iptables REDIRECT to 15001/15006 (Istio's default).
    Redirect,
    /// TPROXY; translated like REDIRECT.
    Tproxy,
    /// No capture: the proxy only has listeners bound on real ports (from the Sidecar resource).
    None,
}

/// A workload port the proxy declared (`POD_PORTS`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeclaredPort {
    pub name: String,
    pub port: u32,
    pub protocol: String,
}

/// A connected proxy's identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    pub id: String,
    pub proxy_type: ProxyType,
    /// First instance IP (metadata `INSTANCE_IPS`, else the node id's IP field).
    pub ip: String,
    pub ips: Vec<String>,
    pub namespace: String,
    /// `POD.NAMESPACE` part of the node id.
    pub pod: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
    pub interception: InterceptionMode,
    pub ports: Vec<DeclaredPort>,
    pub workload_name: String,
    /// `AUTO_REGISTER_GROUP`: the WorkloadGroup (same namespace) whose template completes it.
    pub auto_register_group: Option<String>,
    /// Wildcard address of the proxy's IP family (`0.0.0.0` or `::`).
    pub wildcard: String,
    /// Where the capture listeners bind (`LATEEN_CAPTURE_BIND`, else [`Proxy::wildcard`]).
    pub capture_bind: String,
    /// `LATEEN_MTLS`: the proxy holds a workload certificate and speaks Istio's mTLS.
    pub mtls: bool,
    /// The node's `user_agent_name` is `lateen-proxy`: it reads filters upstream Envoy has
    /// no factory for (Istio's TCP `istio.stats` network filter).
    pub lateen_proxy: bool,
}

impl Proxy {
    /// Reads a proxy from the node it sent.
    pub fn from_node(node: &ProxyNode) -> Self {
        let mut parts = node.id.split('~');
        let kind = parts.next().unwrap_or_default();
        let id_ip = parts.next().unwrap_or_default().to_string();
        let pod = parts.next().unwrap_or_default().to_string();
        let domain = parts.next().unwrap_or_default();
        let meta = &node.metadata;
        let text = |key: &str| meta.get(key).and_then(Value::as_str).map(str::to_string);

        let namespace = text("NAMESPACE")
            .or_else(|| pod.split_once('.').map(|(_, ns)| ns.to_string()))
            .or_else(|| domain.split('.').next().map(str::to_string))
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| lateen_api::DEFAULT_NAMESPACE.to_string());
        let mut ips: Vec<String> = text("INSTANCE_IPS")
            .map(|s| {
                s.split(',')
                    .map(|ip| ip.trim().to_string())
                    .filter(|ip| !ip.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        if ips.is_empty() && !id_ip.is_empty() {
            ips.push(id_ip);
        }
        let labels = meta
            .get("LABELS")
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        let interception = match text("INTERCEPTION_MODE").as_deref() {
            Some("NONE") => InterceptionMode::None,
            Some("TPROXY") => InterceptionMode::Tproxy,
            _ => InterceptionMode::Redirect,
        };
        let ipv6_only = !ips.is_empty()
            && ips
                .iter()
                .all(|ip| ip.parse::<std::net::IpAddr>().is_ok_and(|a| a.is_ipv6()));
        let wildcard = if ipv6_only { "::" } else { "0.0.0.0" }.to_string();
        Self {
            capture_bind: text("LATEEN_CAPTURE_BIND")
                .filter(|a| a.parse::<std::net::IpAddr>().is_ok())
                .unwrap_or_else(|| wildcard.clone()),
            wildcard,
            id: node.id.clone(),
            proxy_type: if kind == "router" {
                ProxyType::Router
            } else {
                ProxyType::Sidecar
            },
            ip: ips.first().cloned().unwrap_or_default(),
            ips,
            namespace,
            labels,
            service_account: text("SERVICE_ACCOUNT").unwrap_or_else(|| "default".to_string()),
            interception,
            ports: declared_ports(meta.get("POD_PORTS")),
            workload_name: text("WORKLOAD_NAME")
                .unwrap_or_else(|| pod.split('.').next().unwrap_or_default().to_string()),
            pod,
            auto_register_group: text("AUTO_REGISTER_GROUP").filter(|g| !g.is_empty()),
            mtls: matches!(meta.get("LATEEN_MTLS"), Some(Value::Bool(true)))
                || text("LATEEN_MTLS").is_some_and(|v| v.eq_ignore_ascii_case("true")),
            lateen_proxy: node.user_agent == LATEEN_PROXY_USER_AGENT,
        }
    }
}

/// `POD_PORTS` is a JSON string in Istio (`"[{\"name\":\"http\",\"containerPort\":9080}]"`);
/// a plain list is accepted too. Entries without a valid port are ignored.
fn declared_ports(value: Option<&Value>) -> Vec<DeclaredPort> {
    let parsed;
    let list = match value {
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
            &parsed
        }
        Some(v) => v,
        None => return Vec::new(),
    };
    list.as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let port = p.get("containerPort").and_then(Value::as_u64)?;
            Some(DeclaredPort {
                name: p
                    .get("name")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string(),
                port: u32::try_from(port).ok().filter(|p| *p > 0 && *p < 65536)?,
                protocol: p
                    .get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("TCP")
                    .to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, metadata: Value) -> ProxyNode {
        ProxyNode {
            id: id.to_string(),
            cluster: "c".into(),
            metadata,
            user_agent: "envoy".into(),
        }
    }

    #[test]
    fn reads_istio_node() {
        let n = node(
            "sidecar~10.0.0.5~reviews-v2-abc.bookinfo~bookinfo.svc.cluster.local",
            serde_json::json!({
                "NAMESPACE": "bookinfo",
                "LABELS": {"app": "reviews", "version": "v2"},
                "INTERCEPTION_MODE": "NONE",
                "SERVICE_ACCOUNT": "bookinfo-reviews",
                "POD_PORTS": "[{\"name\":\"http\",\"containerPort\":9080,\"protocol\":\"TCP\"}]"
            }),
        );
        let p = Proxy::from_node(&n);
        assert_eq!(p.proxy_type, ProxyType::Sidecar);
        assert_eq!(p.ip, "10.0.0.5");
        assert_eq!(p.namespace, "bookinfo");
        assert_eq!(p.labels.get("version").map(String::as_str), Some("v2"));
        assert_eq!(p.interception, InterceptionMode::None);
        assert_eq!(p.ports[0].port, 9080);
        assert_eq!(p.workload_name, "reviews-v2-abc");
        assert_eq!(p.capture_bind, "0.0.0.0");
    }

    #[test]
    fn falls_back_on_node_id() {
        let p = Proxy::from_node(&node("router~10.1.1.1~gw.istio-system~x", Value::Null));
        assert_eq!(p.proxy_type, ProxyType::Router);
        assert_eq!(p.namespace, "istio-system");
        assert_eq!(p.interception, InterceptionMode::Redirect);
        assert!(p.ports.is_empty());
    }
}
