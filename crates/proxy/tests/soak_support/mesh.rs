//! The soak mesh as Istio YAML in lateend's watched folder: one service with an HTTP, a gRPC
//! and a TCP port, its server sidecar as the steady endpoint and three direct upstreams that
//! come and go ([`Mesh::churn`]), a VirtualService and DestinationRule rewritten every 5 s
//! ([`Mesh::change`]), and the two Sidecar resources that bind each sidecar's listeners on
//! its own loopback address.

use std::path::PathBuf;

/// The client workload's address: its egress listeners (9080 http, 9090 grpc, 9000 tcp).
pub const CLIENT: &str = "127.0.77.1";
/// The server workload's address: its ingress listeners, on the same ports.
pub const SERVER: &str = "127.0.77.2";
pub const HOST: &str = "soak.default.svc.cluster.local";
pub const HTTP_PORT: u16 = 9080;
pub const GRPC_PORT: u16 = 9090;
pub const TCP_PORT: u16 = 9000;

pub struct Mesh {
    pub dir: PathBuf,
    /// The upstream behind the server sidecar (HTTP/1.1, h2c and gRPC).
    pub primary: u16,
    /// The TCP echo behind the server sidecar, and behind every extra endpoint's TCP port.
    pub echo: u16,
    /// Upstreams reached directly while they are endpoints.
    pub extras: Vec<u16>,
}

impl Mesh {
    /// The server sidecar's injected environment (on top of xds_support's defaults).
    pub fn server_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("POD_NAME", "soak-server-1"),
            ("POD_NAMESPACE", "default"),
            ("INSTANCE_IP", SERVER),
            ("SERVICE_ACCOUNT", "soak"),
            ("ISTIO_METAJSON_LABELS", r#"{"app":"soak","version":"v1"}"#),
            ("LATEEN_LOG", "warn"),
        ]
    }

    /// The client sidecar's injected environment.
    pub fn client_env() -> Vec<(&'static str, &'static str)> {
        vec![
            ("POD_NAME", "soak-client-1"),
            ("POD_NAMESPACE", "default"),
            ("INSTANCE_IP", CLIENT),
            ("SERVICE_ACCOUNT", "soak-client"),
            (
                "ISTIO_METAJSON_LABELS",
                r#"{"app":"soak-client","version":"v1"}"#,
            ),
            ("LATEEN_LOG", "warn"),
        ]
    }

    /// Every file, before lateend starts.
    pub fn write_all(&self) {
        self.write("sidecars.yaml", &self.sidecars());
        self.write("service.yaml", &self.service());
        self.churn(0);
        self.change(0);
    }

    /// Second `second` of the run: one extra endpoint added or removed. Over six seconds the
    /// extras go {0}, {0,1}, {0,1,2}, {1,2}, {2}, {}.
    pub fn churn(&self, second: u64) {
        let present: &[usize] = match second % 6 {
            0 => &[0],
            1 => &[0, 1],
            2 => &[0, 1, 2],
            3 => &[1, 2],
            4 => &[2],
            _ => &[],
        };
        let mut text = String::from("# extra endpoints of the soak service\n");
        for &index in present {
            text.push_str(&format!(
                "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: soak-extra-{index}, namespace: default}}\nspec:\n  address: 127.0.0.1\n  ports: {{http: {port}, grpc: {port}, tcp: {echo}}}\n  labels: {{app: soak, version: v2}}\n",
                port = self.extras[index],
                echo = self.echo,
            ));
        }
        self.write("extras.yaml", &text);
    }

    /// Change number `generation`: a response header and retry count on the routes, the load
    /// balancer and connect timeout on the cluster.
    pub fn change(&self, generation: u64) {
        let attempts = 1 + generation % 3;
        self.write(
            "virtual-service.yaml",
            &format!(
                "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: soak, namespace: default}}\nspec:\n  hosts: [soak]\n  http:\n  - match: [{{port: {GRPC_PORT}}}]\n    route: [{{destination: {{host: soak, port: {{number: {GRPC_PORT}}}}}}}]\n    headers: {{response: {{set: {{x-soak-generation: \"{generation}\"}}}}}}\n  - route: [{{destination: {{host: soak, port: {{number: {HTTP_PORT}}}}}}}]\n    retries: {{attempts: {attempts}, perTryTimeout: 5s}}\n    headers: {{response: {{set: {{x-soak-generation: \"{generation}\"}}}}}}\n  tcp:\n  - match: [{{port: {TCP_PORT}}}]\n    route: [{{destination: {{host: soak, port: {{number: {TCP_PORT}}}}}}}]\n"
            ),
        );
        let balancer = ["ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"][(generation % 3) as usize];
        let connect = 1 + generation % 2;
        self.write(
            "destination-rule.yaml",
            &format!(
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: soak, namespace: default}}\nspec:\n  host: soak\n  trafficPolicy:\n    loadBalancer: {{simple: {balancer}}}\n    connectionPool: {{tcp: {{connectTimeout: {connect}s}}}}\n"
            ),
        );
    }

    fn service(&self) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: soak, namespace: default}}\nspec:\n  hosts: [{HOST}]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports:\n  - {{number: {HTTP_PORT}, name: http, protocol: HTTP}}\n  - {{number: {GRPC_PORT}, name: grpc, protocol: GRPC}}\n  - {{number: {TCP_PORT}, name: tcp, protocol: TCP}}\n  workloadSelector: {{labels: {{app: soak}}}}\n---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: soak-server, namespace: default}}\nspec:\n  address: {SERVER}\n  serviceAccount: soak\n  labels: {{app: soak, version: v1}}\n"
        )
    }

    fn sidecars(&self) -> String {
        let ports = [
            (HTTP_PORT, "HTTP", "http", self.primary),
            (GRPC_PORT, "GRPC", "grpc", self.primary),
            (TCP_PORT, "TCP", "tcp", self.echo),
        ];
        let mut egress = String::new();
        let mut ingress = String::new();
        for (number, protocol, name, backend) in ports {
            egress.push_str(&format!(
                "  - port: {{number: {number}, protocol: {protocol}, name: {name}}}\n    bind: {CLIENT}\n    hosts: [\"./*\"]\n"
            ));
            ingress.push_str(&format!(
                "  - port: {{number: {number}, protocol: {protocol}, name: {name}}}\n    bind: {SERVER}\n    defaultEndpoint: 127.0.0.1:{backend}\n"
            ));
        }
        format!(
            "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: soak-client, namespace: default}}\nspec:\n  workloadSelector: {{labels: {{app: soak-client}}}}\n  egress:\n{egress}---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: soak-server, namespace: default}}\nspec:\n  workloadSelector: {{labels: {{app: soak}}}}\n  ingress:\n{ingress}  egress:\n  - hosts: [\"./*\"]\n"
        )
    }

    fn write(&self, name: &str, text: &str) {
        lateen_test_support::write_config(&self.dir, name, text);
    }
}
