//! The Istio configuration of the authorization matrix: each data plane is the sidecar of
//! its own server workload with inbound listeners on its own loopback address (an HTTP port
//! and a TCP port, both to one upstream), and one set of namespace-wide policies whose rules
//! are told apart by path (HTTP) or port, so that one request checks one rule.

#![allow(dead_code)] // each test binary uses part of it

use crate::dataplane::DataPlane;

/// Ports of the server's inbound listeners.
pub struct Ports {
    pub http: u16,
    pub tcp: u16,
    /// The upstream both ports forward to.
    pub backend: u16,
}

/// The Sidecar resource giving a data plane its inbound listeners on its own address.
pub fn sidecar_yaml(plane: DataPlane, ports: &Ports) -> String {
    let (app, bind) = (plane.workload(), plane.address());
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {{name: {app}, namespace: default}}
spec:
  workloadSelector: {{labels: {{app: {app}}}}}
  ingress:
  - port: {{number: {http}, protocol: HTTP, name: http}}
    bind: {bind}
    defaultEndpoint: 127.0.0.1:{backend}
  - port: {{number: {tcp}, protocol: TCP, name: tcp}}
    bind: {bind}
    defaultEndpoint: 127.0.0.1:{backend}
  egress:
  - hosts: ["./*"]
"#,
        http = ports.http,
        tcp = ports.tcp,
        backend = ports.backend,
    )
}

/// JWT validation for the namespace: one issuer with an inline JWKS.
pub fn request_authentication(issuer: &str, jwks: &str) -> String {
    format!(
        r#"apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt, namespace: default}}
spec:
  jwtRules:
  - issuer: {issuer}
    jwks: '{jwks}'
    forwardOriginalToken: true
"#
    )
}

/// Keys from a `jwksUri` the proxies fetch: a ServiceEntry for the key server (plain HTTP on
/// 127.0.0.1:`port`) and issuers whose keys are at `/keys` and at `/not-json` (a JWKS that is
/// not JSON).
pub fn remote_jwks(remote_issuer: &str, broken_issuer: &str, port: u16) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {{name: jwks, namespace: default}}
spec:
  hosts: [jwks.default.svc.cluster.local]
  location: MESH_EXTERNAL
  resolution: STATIC
  ports: [{{number: {port}, name: http, protocol: HTTP}}]
  endpoints: [{{address: 127.0.0.1}}]
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {{name: jwt-remote, namespace: default}}
spec:
  jwtRules:
  - issuer: {remote_issuer}
    jwksUri: http://jwks.default.svc.cluster.local:{port}/keys
  - issuer: {broken_issuer}
    jwksUri: http://jwks.default.svc.cluster.local:{port}/not-json
"#
    )
}

/// DENY rules (each scoped to the HTTP port so the TCP chain keeps only what applies to it),
/// an AUDIT and a dry-run DENY policy that must not deny, and the ALLOW rules.
pub fn policies(ports: &Ports) -> String {
    let http = ports.http;
    let tcp = ports.tcp;
    format!(
        r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: deny-rules, namespace: default}}
spec:
  action: DENY
  rules:
  - to: [{{operation: {{paths: ["/deny/*"], ports: ["{http}"]}}}}]
  - to: [{{operation: {{paths: ["*/secret"], ports: ["{http}"]}}}}]
  - to: [{{operation: {{methods: ["DELETE"], ports: ["{http}"]}}}}]
  - to: [{{operation: {{ports: ["{http}"]}}}}]
    when: [{{key: "request.headers[x-block]", values: ["yes"]}}]
  - from: [{{source: {{remoteIpBlocks: ["203.0.113.0/24"]}}}}]
    to: [{{operation: {{ports: ["{http}"]}}}}]
  - to: [{{operation: {{ports: ["{http}"]}}}}]
    when: [{{key: "request.auth.claims[groups]", values: ["banned"]}}]
  - from: [{{source: {{ipBlocks: ["127.0.0.66"]}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: audit-rules, namespace: default}}
spec:
  action: AUDIT
  rules:
  - to: [{{operation: {{paths: ["/audit/*"]}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata:
  name: dry-run-deny
  namespace: default
  annotations: {{istio.io/dry-run: "true"}}
spec:
  action: DENY
  rules:
  - to: [{{operation: {{paths: ["/dryrun/*"]}}}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: allow-rules, namespace: default}}
spec:
  action: ALLOW
  rules:
  - to: [{{operation: {{paths: ["/open/*", "/deny/*", "*/secret", "/exact", "/audit/*", "/dryrun/*"]}}}}]
  - to: [{{operation: {{methods: ["GET", "HEAD"], paths: ["/methods/*"]}}}}]
  - to: [{{operation: {{hosts: ["good.example.com", "*.wild.example"], paths: ["/hosts/*"]}}}}]
  - to: [{{operation: {{paths: ["/ports/*"], ports: ["{http}"]}}}}]
  - to: [{{operation: {{paths: ["/notports/*"], notPorts: ["{http}"]}}}}]
  - from: [{{source: {{ipBlocks: ["127.0.0.8/29"]}}}}]
    to: [{{operation: {{paths: ["/ip/*"]}}}}]
  - from: [{{source: {{notIpBlocks: ["127.0.0.8/29"]}}}}]
    to: [{{operation: {{paths: ["/notip/*"]}}}}]
  - from: [{{source: {{remoteIpBlocks: ["198.51.100.0/24"]}}}}]
    to: [{{operation: {{paths: ["/xff/*"]}}}}]
  - from: [{{source: {{principals: ["cluster.local/ns/default/sa/client"]}}}}]
    to: [{{operation: {{paths: ["/principal/*"]}}}}]
  - from: [{{source: {{notPrincipals: ["cluster.local/ns/other/sa/x"]}}}}]
    to: [{{operation: {{paths: ["/notprincipal/*"]}}}}]
  - from: [{{source: {{namespaces: ["default"]}}}}]
    to: [{{operation: {{paths: ["/ns/*"]}}}}]
  - from: [{{source: {{requestPrincipals: ["https://issuer.test/alice"]}}}}]
    to: [{{operation: {{paths: ["/jwt/alice/*"]}}}}]
  - from: [{{source: {{requestPrincipals: ["*"]}}}}]
    to: [{{operation: {{paths: ["/jwt/any/*"]}}}}]
  - from: [{{source: {{notRequestPrincipals: ["https://issuer.test/bob"]}}}}]
    to: [{{operation: {{paths: ["/jwt/notbob/*"]}}}}]
  - to: [{{operation: {{paths: ["/claims/*"]}}}}]
    when: [{{key: "request.auth.claims[groups]", values: ["admins"]}}]
  - to: [{{operation: {{paths: ["/claims-sub/*"]}}}}]
    when: [{{key: "request.auth.claims[sub]", values: ["b*"]}}]
  - to: [{{operation: {{paths: ["/when-header/*"]}}}}]
    when: [{{key: "request.headers[x-team]", values: ["blue", "green*"]}}]
  - to: [{{operation: {{paths: ["/when-ip/*"]}}}}]
    when: [{{key: source.ip, values: ["127.0.0.9"]}}]
  - to: [{{operation: {{paths: ["/when-notvalues/*"]}}}}]
    when: [{{key: "request.headers[x-env]", notValues: ["prod"]}}]
  - to: [{{operation: {{paths: ["/when-port/*"]}}}}]
    when: [{{key: destination.port, values: ["{http}"]}}]
  - to: [{{operation: {{paths: ["/when-ns/*"]}}}}]
    when: [{{key: source.namespace, values: ["default"]}}]
  - to: [{{operation: {{paths: ["/notpath/*"], notPaths: ["/notpath/hidden"]}}}}]
  - to: [{{operation: {{paths: ["/notmethod/*"], notMethods: ["POST"]}}}}]
  - from: [{{source: {{ipBlocks: ["127.0.0.16/29"]}}}}]
    to: [{{operation: {{ports: ["{tcp}"]}}}}]
"#
    )
}

/// The only policy of the last phase: an ALLOW policy without rules allows nothing.
pub const ALLOW_NOTHING: &str = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: allow-nothing, namespace: default}
spec: {}
"#;
