//! Envoy bootstrap YAML for tests, built in one place: the node istio-agent would describe,
//! an admin port, ADS to a control plane on loopback (gRPC or delta, plaintext or TLS as
//! istio-agent dials 15012), and static clusters and listeners a test adds.
//!
//! ```
//! use lateen_test_support::envoy_bootstrap::Bootstrap;
//! let yaml = Bootstrap::new("sidecar~127.0.0.1~a-1.default~default.svc.cluster.local")
//!     .cluster("a.default")
//!     .metadata("{NAMESPACE: default, LABELS: {app: a}}")
//!     .ads(15010)
//!     .to_yaml();
//! assert!(yaml.contains("cluster_name: xds-grpc"));
//! ```

use std::fmt::Write;
use std::path::{Path, PathBuf};

/// The name of the static cluster that reaches the control plane (istio-agent's).
pub const XDS_CLUSTER: &str = "xds-grpc";

/// ADS to a control plane (on 127.0.0.1 unless [`Bootstrap::ads_host`] says otherwise).
#[derive(Debug, Clone)]
struct Ads {
    host: String,
    port: u16,
    /// `GRPC` (state of the world) or `DELTA_GRPC`.
    api_type: &'static str,
    /// TLS to the control plane: the CA file to trust and the SAN (and SNI) to expect.
    tls: Option<(PathBuf, String)>,
}

/// An Envoy bootstrap under construction; [`Bootstrap::to_yaml`] renders it.
#[derive(Debug, Clone)]
pub struct Bootstrap {
    node_id: String,
    cluster: String,
    metadata: Option<String>,
    admin_port: Option<u16>,
    ads: Option<Ads>,
    clusters: Vec<String>,
    listeners: Vec<String>,
}

impl Bootstrap {
    /// A bootstrap for the node `node_id` (e.g. `sidecar~IP~POD.NS~NS.svc.cluster.local`),
    /// with nothing else yet: no admin, no ADS.
    pub fn new(node_id: &str) -> Bootstrap {
        Bootstrap {
            node_id: node_id.to_string(),
            cluster: String::new(),
            metadata: None,
            admin_port: None,
            ads: None,
            clusters: Vec::new(),
            listeners: Vec::new(),
        }
    }

    /// The node's `cluster` (istio-agent: `APP.NAMESPACE`).
    pub fn cluster(mut self, cluster: &str) -> Bootstrap {
        self.cluster = cluster.to_string();
        self
    }

    /// The node's metadata: a YAML mapping, in flow style (`{NAMESPACE: default}`) or as
    /// block lines already indented by four spaces.
    pub fn metadata(mut self, yaml: &str) -> Bootstrap {
        self.metadata = Some(yaml.to_string());
        self
    }

    /// Admin on 127.0.0.1:`port` (0: Envoy picks; read it with `--admin-address-path`).
    pub fn admin(mut self, port: u16) -> Bootstrap {
        self.admin_port = Some(port);
        self
    }

    /// State-of-the-world ADS (CDS and LDS through it) to 127.0.0.1:`port`, plaintext.
    pub fn ads(mut self, port: u16) -> Bootstrap {
        self.ads = Some(Ads {
            host: "127.0.0.1".to_string(),
            port,
            api_type: "GRPC",
            tls: None,
        });
        self
    }

    /// [`Bootstrap::ads`] with delta xDS.
    pub fn delta_ads(self, port: u16) -> Bootstrap {
        self.ads_api(port, "DELTA_GRPC")
    }

    /// [`Bootstrap::ads`] with `api_type` as Envoy spells it (`GRPC`, `DELTA_GRPC`).
    pub fn ads_api(mut self, port: u16, api_type: &'static str) -> Bootstrap {
        self = self.ads(port);
        if let Some(ads) = &mut self.ads {
            ads.api_type = api_type;
        }
        self
    }

    /// The control plane's address (after [`Bootstrap::ads`]) when it is not on loopback:
    /// from inside a pod's network namespace, lateend is at the host's address.
    pub fn ads_host(mut self, host: &str) -> Bootstrap {
        if let Some(ads) = &mut self.ads {
            ads.host = host.to_string();
        }
        self
    }

    /// TLS to the control plane (after [`Bootstrap::ads`]), as istio-agent dials 15012:
    /// trusting `ca`, expecting the DNS SAN `san` and sending it as SNI, ALPN h2.
    pub fn ads_tls(mut self, ca: &Path, san: &str) -> Bootstrap {
        if let Some(ads) = &mut self.ads {
            ads.tls = Some((ca.to_path_buf(), san.to_string()));
        }
        self
    }

    /// A static HTTP/2 (gRPC) cluster on the Unix socket `path`, as istio-agent's `sds-grpc`.
    pub fn grpc_pipe_cluster(mut self, name: &str, path: &Path) -> Bootstrap {
        let address = format!("{{pipe: {{path: \"{}\"}}}}", path.display());
        self.clusters.push(cluster_yaml(name, &address, true));
        self
    }

    /// A static plain cluster to 127.0.0.1:`port`.
    pub fn static_cluster(mut self, name: &str, port: u16) -> Bootstrap {
        self.clusters
            .push(cluster_yaml(name, &loopback(port), false));
        self
    }

    /// A static cluster given whole: one item of `static_resources.clusters`, as YAML lines
    /// starting `  - name: ...`, or `  - {JSON}` (Envoy reads JSON as YAML).
    pub fn raw_cluster(mut self, yaml: &str) -> Bootstrap {
        let mut item = yaml.to_string();
        if !item.ends_with('\n') {
            item.push('\n');
        }
        self.clusters.push(item);
        self
    }

    /// A static listener: one item of `static_resources.listeners`, as YAML lines starting
    /// `  - name: ...` (two spaces, dash).
    pub fn listener(mut self, yaml: &str) -> Bootstrap {
        self.listeners.push(yaml.to_string());
        self
    }

    /// The bootstrap as YAML.
    pub fn to_yaml(&self) -> String {
        let mut out = format!("node:\n  id: \"{}\"\n", self.node_id);
        if !self.cluster.is_empty() {
            let _ = writeln!(out, "  cluster: {}", self.cluster);
        }
        match self.metadata.as_deref() {
            Some(flow) if flow.trim_start().starts_with('{') => {
                let _ = writeln!(out, "  metadata: {}", flow.trim());
            }
            Some(block) => {
                let _ = write!(out, "  metadata:\n{}", block);
                if !block.ends_with('\n') {
                    out.push('\n');
                }
            }
            None => {}
        }
        if let Some(port) = self.admin_port {
            let _ = writeln!(out, "admin:\n  address: {}", loopback(port));
        }
        let mut clusters = self.clusters.clone();
        if let Some(ads) = &self.ads {
            let _ = write!(
                out,
                "dynamic_resources:\n  ads_config:\n    api_type: {}\n    transport_api_version: V3\n    set_node_on_first_message_only: true\n    grpc_services:\n    - envoy_grpc: {{cluster_name: {XDS_CLUSTER}}}\n  cds_config: {{ads: {{}}, resource_api_version: V3}}\n  lds_config: {{ads: {{}}, resource_api_version: V3}}\n",
                ads.api_type
            );
            let mut xds = cluster_yaml(XDS_CLUSTER, &socket_address(&ads.host, ads.port), true);
            if let Some((ca, san)) = &ads.tls {
                let _ = write!(
                    xds,
                    "    transport_socket:\n      name: envoy.transport_sockets.tls\n      typed_config:\n        \"@type\": type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext\n        sni: {san}\n        common_tls_context:\n          alpn_protocols: [h2]\n          validation_context:\n            trusted_ca: {{filename: \"{}\"}}\n            match_typed_subject_alt_names:\n            - san_type: DNS\n              matcher: {{exact: {san}}}\n",
                    ca.display()
                );
            }
            clusters.insert(0, xds);
        }
        if !clusters.is_empty() || !self.listeners.is_empty() {
            out.push_str("static_resources:\n");
        }
        if !clusters.is_empty() {
            out.push_str("  clusters:\n");
            clusters.iter().for_each(|c| out.push_str(c));
        }
        if !self.listeners.is_empty() {
            out.push_str("  listeners:\n");
            for listener in &self.listeners {
                out.push_str(listener);
                if !listener.ends_with('\n') {
                    out.push('\n');
                }
            }
        }
        out
    }
}

fn loopback(port: u16) -> String {
    socket_address("127.0.0.1", port)
}

fn socket_address(host: &str, port: u16) -> String {
    format!("{{socket_address: {{address: {host}, port_value: {port}}}}}")
}

/// One item of `static_resources.clusters`: STATIC, one endpoint at `address`, HTTP/2 when
/// `grpc`.
fn cluster_yaml(name: &str, address: &str, grpc: bool) -> String {
    let http2 = if grpc {
        "    typed_extension_protocol_options:\n      envoy.extensions.upstreams.http.v3.HttpProtocolOptions:\n        \"@type\": type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions\n        explicit_http_config: {http2_protocol_options: {}}\n"
    } else {
        ""
    };
    format!(
        "  - name: {name}\n    type: STATIC\n    connect_timeout: 1s\n{http2}    load_assignment:\n      cluster_name: {name}\n      endpoints:\n      - lb_endpoints:\n        - endpoint: {{address: {address}}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> serde_json::Value {
        serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
    }

    #[test]
    fn ads_over_tls_with_block_metadata() {
        let yaml = Bootstrap::new("sidecar~1.2.3.4~a-1.ns~ns.svc.cluster.local")
            .cluster("a.ns")
            .metadata("    NAMESPACE: ns\n    LABELS: {app: a}\n")
            .admin(0)
            .ads(15012)
            .ads_host("198.18.10.1")
            .ads_tls(Path::new("/ca.pem"), "lateend.istio-system.svc")
            .to_yaml();
        let doc = parse(&yaml);
        assert_eq!(doc["node"]["metadata"]["LABELS"]["app"], "a");
        assert_eq!(doc["admin"]["address"]["socket_address"]["port_value"], 0);
        assert_eq!(doc["dynamic_resources"]["ads_config"]["api_type"], "GRPC");
        let xds = &doc["static_resources"]["clusters"][0];
        assert_eq!(xds["name"], XDS_CLUSTER);
        let endpoint = &xds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
        assert_eq!(
            endpoint["address"]["socket_address"]["address"],
            "198.18.10.1"
        );
        assert_eq!(
            xds["transport_socket"]["typed_config"]["sni"],
            "lateend.istio-system.svc"
        );
    }

    #[test]
    fn static_only_with_pipe_cluster_and_listener() {
        let yaml = Bootstrap::new("n")
            .grpc_pipe_cluster("sds-grpc", Path::new("/run/sds.sock"))
            .static_cluster("backend", 8080)
            .raw_cluster(r#"  - {"name": "raw", "type": "STATIC"}"#)
            .listener(
                "  - name: l\n    address: {socket_address: {address: 127.0.0.1, port_value: 1}}\n",
            )
            .to_yaml();
        let doc = parse(&yaml);
        assert!(doc.get("dynamic_resources").is_none());
        let clusters = &doc["static_resources"]["clusters"];
        assert_eq!(
            clusters[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
                ["pipe"]["path"],
            "/run/sds.sock"
        );
        assert_eq!(clusters[1]["name"], "backend");
        assert_eq!(clusters[2]["type"], "STATIC");
        assert_eq!(doc["static_resources"]["listeners"][0]["name"], "l");
    }
}
