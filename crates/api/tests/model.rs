//! Version aliases, a config using most fields, serialization round trip, MeshConfig from
//! Istio's install profiles, and the helpers the control plane uses.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::PathBuf;
use std::time::Duration;

use lateen_api::host::{hosts_match, resolve_short_name};
use lateen_api::networking::{SimpleLb, StringMatchKind};
use lateen_api::{ConfigKey, Kind, Resource, load, load_mesh_config, parse};

fn only_resource(text: &str) -> Resource {
    match load(text, "test.yaml") {
        Ok(loaded) => {
            assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
            assert_eq!(loaded.documents.len(), 1);
            loaded.documents[0].resource.clone()
        }
        Err(e) => panic!("rejected:\n{e}"),
    }
}

const VS_BODY: &str = "kind: VirtualService
metadata: {name: reviews, namespace: prod}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
";

#[test]
fn networking_versions_are_aliases() {
    let specs: Vec<_> = ["v1", "v1beta1", "v1alpha3"]
        .iter()
        .map(|v| {
            let r = only_resource(&format!("apiVersion: networking.istio.io/{v}\n{VS_BODY}"));
            assert_eq!(r.api_version(), format!("networking.istio.io/{v}"));
            r.spec_json()
        })
        .collect();
    assert_eq!(specs[0], specs[1]);
    assert_eq!(specs[0], specs[2]);
    let parsed = parse(
        &format!("apiVersion: security.istio.io/v1alpha3\n{VS_BODY}"),
        "x.yaml",
    );
    assert!(parsed.has_errors());
}

#[test]
fn security_versions_are_aliases() {
    for v in ["v1", "v1beta1"] {
        let r = only_resource(&format!(
            "apiVersion: security.istio.io/{v}\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec: {{mtls: {{mode: STRICT}}}}\n"
        ));
        let pa = r.as_peer_authentication().expect("PeerAuthentication");
        assert_eq!(
            pa.spec.mtls.as_ref().map(|m| m.mode()),
            Some(lateen_api::security::MtlsMode::Strict)
        );
        assert_eq!(
            r.key(),
            ConfigKey::new(Kind::PeerAuthentication, "istio-system", "default")
        );
    }
    let parsed = parse(
        "apiVersion: security.istio.io/v1alpha3\nkind: PeerAuthentication\nmetadata: {name: x}\nspec: {}\n",
        "x.yaml",
    );
    assert!(parsed.has_errors());
}

const FULL_VS: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews-route
  labels: {app.kubernetes.io/name: reviews}
  annotations: {note: "anything goes here"}
spec:
  hosts: [reviews.prod.svc.cluster.local, "*.example.com"]
  gateways: [istio-system/public, mesh]
  exportTo: ["."]
  http:
  - name: v2-canary
    match:
    - name: by-user
      uri: {regex: "^/api/v[0-9]+/.*"}
      scheme: {exact: https}
      method: {exact: GET}
      authority: {prefix: reviews}
      headers:
        end-user: {exact: jason}
        x-present: {}
      queryParams:
        debug: {exact: "1"}
      withoutHeaders:
        x-skip: {prefix: "y"}
      port: 9080
      sourceLabels: {app: productpage}
      gateways: [mesh]
      ignoreUriCase: true
    route:
    - destination: {host: reviews.prod.svc.cluster.local, subset: v2, port: {number: 9080}}
      weight: 75
      headers:
        request:
          set: {x-canary: "true"}
          add: {x-trace: "1"}
          remove: [x-internal]
        response:
          remove: [server]
    - destination: {host: reviews.prod.svc.cluster.local, subset: v1}
      weight: 25
    rewrite: {uri: /v2/, authority: reviews.internal}
    timeout: 1.5s
    retries:
      attempts: 3
      perTryTimeout: 500ms
      retryOn: gateway-error,connect-failure,refused-stream,503
      retryRemoteLocalities: true
    fault:
      delay: {fixedDelay: 100ms, percentage: {value: 0.5}}
      abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1}}
    mirror: {host: reviews-shadow}
    mirrorPercentage: {value: 12.5}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}, {regex: "https://.*\\.example\\.com"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      exposeHeaders: [x-reply]
      maxAge: 24h
      allowCredentials: true
    headers:
      response:
        set: {x-route: v2-canary}
  - match:
    - uri: {prefix: /old}
    redirect: {uri: /new, authority: reviews.example.com, redirectCode: 308}
  - match:
    - uri: {exact: /teapot}
    directResponse: {status: 418, body: {string: "I'm a teapot"}}
  - route:
    - destination: {host: reviews.prod.svc.cluster.local, subset: v1}
  tcp:
  - match:
    - port: 3306
      destinationSubnets: [10.0.0.0/8]
    route:
    - destination: {host: mysql, port: {number: 3306}}
  tls:
  - match:
    - sniHosts: [login.example.com]
      port: 443
    route:
    - destination: {host: login.prod.svc.cluster.local}
"#;

#[test]
fn a_config_using_most_fields_is_valid_and_round_trips() {
    let r = only_resource(FULL_VS);
    let vs = r.as_virtual_service().expect("VirtualService");
    assert_eq!(r.namespace(), "default");
    let http = &vs.spec.http[0];
    assert_eq!(http.timeout, Some(Duration::from_millis(1500)));
    let retries = http.retries.as_ref().expect("retries");
    assert_eq!(retries.per_try_timeout, Some(Duration::from_millis(500)));
    assert_eq!(
        retries.retry_on_conditions(),
        ["gateway-error", "connect-failure", "refused-stream", "503"]
    );
    let m = &http.matches[0];
    assert!(matches!(
        m.uri.as_ref().and_then(|u| u.kind()),
        Some(StringMatchKind::Regex(_))
    ));
    assert_eq!(
        m.headers["x-present"].kind(),
        Some(StringMatchKind::Present)
    );
    assert_eq!(
        http.cors_policy.as_ref().and_then(|c| c.max_age),
        Some(Duration::from_secs(86_400))
    );
    assert_eq!(
        vs.spec.http[1]
            .redirect
            .as_ref()
            .and_then(|r| r.redirect_code),
        Some(308)
    );

    let weights: Vec<u32> = http
        .weighted_destinations()
        .iter()
        .map(|(_, w)| *w)
        .collect();
    assert_eq!(weights, [75, 25]);
    let single = vs.spec.http[3].weighted_destinations();
    assert_eq!(single.len(), 1);
    assert_eq!(single[0].1, 100);

    // Serialize back to Istio JSON and read it again: same resource.
    let json = r.to_json();
    assert_eq!(json["kind"], "VirtualService");
    assert_eq!(json["spec"]["http"][0]["timeout"], "1.500s");
    let again = only_resource(&json.to_string());
    assert_eq!(again, r);
}

#[test]
fn destination_rule_with_consistent_hash_and_pools() {
    let r = only_resource(
        r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  exportTo: ["*"]
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, path: /, ttl: 0s}
        maglev: {tableSize: 65537}
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: us-west}]
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms, tcpKeepalive: {time: 7200s, interval: 75s}}
      http: {http2MaxRequests: 1000, maxRequestsPerConnection: 10, h2UpgradePolicy: UPGRADE}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5m, baseEjectionTime: 15m}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: LEAST_REQUEST}
"#,
    );
    let dr = r.as_destination_rule().expect("DestinationRule");
    let tp = dr.spec.traffic_policy.as_ref().expect("policy");
    let ch = tp
        .load_balancer
        .as_ref()
        .and_then(|l| l.consistent_hash.as_ref())
        .expect("hash");
    assert!(
        matches!(ch.hash_key(), Some(lateen_api::networking::HashKey::Cookie(c)) if c.name == "user")
    );
    let od = tp.outlier_detection.as_ref().expect("outlier");
    assert_eq!(od.consecutive_5xx_errors, Some(7));
    assert_eq!(od.interval, Some(Duration::from_secs(300)));
    let v1 = dr.spec.subset("v1").expect("v1");
    assert_eq!(
        v1.traffic_policy
            .as_ref()
            .and_then(|t| t.load_balancer.as_ref())
            .and_then(|l| l.simple),
        Some(SimpleLb::LeastRequest)
    );
}

#[test]
fn other_kinds_validate() {
    let text = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: vms, namespace: prod}
spec:
  hosts: [vm.prod.svc.cluster.local]
  addresses: [192.0.2.10]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 8080, name: http, protocol: HTTP, targetPort: 9090}]
  endpoints:
  - {address: 192.0.2.1, ports: {http: 9090}, labels: {app: vm}, network: net1, locality: us-east/a, weight: 2}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: vm-1, namespace: prod}
spec: {address: 192.0.2.1, labels: {app: vm}, serviceAccount: vm-sa}
---
apiVersion: networking.istio.io/v1
kind: WorkloadGroup
metadata: {name: vms, namespace: prod}
spec:
  metadata: {labels: {app: vm}}
  template: {serviceAccount: vm-sa, ports: {http: 9090}}
  probe: {periodSeconds: 5, httpGet: {path: /ready, port: 9090}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: prod}
spec:
  workloadSelector: {labels: {app: ratings}}
  ingress:
  - port: {number: 9080, protocol: HTTP, name: somename}
    defaultEndpoint: 127.0.0.1:8080
  egress:
  - port: {number: 9080, protocol: HTTP, name: egresshttp}
    hosts: [prod-us1/*]
  - hosts: ["istio-system/*", "./*", "~/*"]
  outboundTrafficPolicy: {mode: ALLOW_ANY, egressProxy: {host: egress.istio-system.svc.cluster.local, port: {number: 80}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: httpbin, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  action: ALLOW
  rules:
  - from:
    - source: {principals: ["cluster.local/ns/default/sa/sleep"], notIpBlocks: [10.1.0.0/16]}
    to:
    - operation: {methods: [GET], paths: ["/info*"], ports: ["8000"]}
    when:
    - {key: "request.auth.claims[iss]", values: ["https://accounts.example.com"]}
    - {key: source.ip, notValues: [10.0.0.1]}
---
apiVersion: security.istio.io/v1
kind: RequestAuthentication
metadata: {name: jwt, namespace: foo}
spec:
  selector: {matchLabels: {app: httpbin}}
  jwtRules:
  - issuer: issuer-foo
    jwksUri: https://example.com/.well-known/jwks.json
    fromHeaders: [{name: x-jwt, prefix: "Bearer "}]
    outputClaimToHeaders: [{header: x-sub, claim: sub}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: tls-gw, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["bookinfo/*.example.com"]
    tls: {mode: SIMPLE, credentialName: example-cert, minProtocolVersion: TLSV1_2}
  - port: {number: 80, name: http, protocol: HTTP}
    hosts: ["*"]
    tls: {httpsRedirect: true}
"#;
    let loaded = load(text, "kinds.yaml").unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<Kind> = loaded.resources().map(Resource::kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::ServiceEntry,
            Kind::WorkloadEntry,
            Kind::WorkloadGroup,
            Kind::Sidecar,
            Kind::AuthorizationPolicy,
            Kind::RequestAuthentication,
            Kind::Gateway
        ]
    );
}

#[test]
fn unmodelled_istio_kinds_are_skipped_with_a_warning() {
    let text = "apiVersion: networking.istio.io/v1alpha3\nkind: EnvoyFilter\nmetadata: {name: f}\nspec: {}\n---\napiVersion: extensions.istio.io/v1alpha1\nkind: WasmPlugin\nmetadata: {name: t}\nspec: {}\n";
    let loaded = load(text, "x.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.documents.is_empty());
    assert_eq!(loaded.warnings.len(), 2);
    assert!(
        loaded.warnings[0]
            .to_string()
            .contains("skipped: EnvoyFilter")
    );
}

#[test]
fn empty_documents_are_skipped() {
    let text = format!(
        "---\n# only a comment\n---\n\n---\napiVersion: networking.istio.io/v1\n{VS_BODY}---\n"
    );
    let loaded = load(&text, "x.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(loaded.documents.len(), 1);
    assert_eq!(loaded.documents[0].index, 0);
    assert_eq!(loaded.documents[0].line, Some(6));
    assert!(load("", "empty.yaml").is_ok_and(|l| l.documents.is_empty()));
}

fn helm_profile_mesh_config(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/istio/manifests/helm-profiles")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let values: serde_json::Value =
        serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
    values["meshConfig"].to_string()
}

#[test]
fn mesh_configs_of_istio_profiles_load() {
    for profile in ["demo.yaml", "ambient.yaml", "preview.yaml"] {
        let text = helm_profile_mesh_config(profile);
        let (mesh, warnings) =
            load_mesh_config(&text, profile).unwrap_or_else(|e| panic!("{profile}: {e}"));
        assert!(warnings.is_empty(), "{profile}: {warnings:?}");
        if profile == "demo.yaml" {
            assert_eq!(mesh.access_log_file.as_deref(), Some("/dev/stdout"));
            let otel = mesh.extension_provider("otel").expect("otel provider");
            assert_eq!(otel.kind().map(|k| k.0), Some("envoyOtelAls"));
            assert_eq!(
                otel.service_and_port(),
                Some((
                    "opentelemetry-collector.observability.svc.cluster.local",
                    4317
                ))
            );
        }
        if profile == "preview.yaml" {
            let pc = mesh.default_config.as_ref().expect("defaultConfig");
            assert_eq!(
                pc.proxy_metadata
                    .get("ISTIO_META_DNS_CAPTURE")
                    .map(String::as_str),
                Some("true")
            );
        }
    }
}

#[test]
fn mesh_config_fields_and_defaults() {
    let text = r#"
accessLogFile: /dev/stdout
accessLogEncoding: JSON
enableTracing: true
trustDomain: example.org
rootNamespace: lateen-system
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
defaultConfig:
  discoveryAddress: lateend.lateen-system.svc:15012
  holdApplicationUntilProxyStarts: true
  proxyMetadata: {ISTIO_META_DNS_CAPTURE: "true"}
  drainDuration: 45s
defaultProviders:
  metrics: [prometheus]
  accessLogging: [envoy]
"#;
    let (mesh, _) = load_mesh_config(text, "mesh").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        mesh.access_log_encoding(),
        lateen_api::mesh::AccessLogEncoding::Json
    );
    assert_eq!(mesh.root_namespace(), "lateen-system");
    assert_eq!(
        mesh.outbound_traffic_mode(),
        lateen_api::networking::OutboundTrafficMode::RegistryOnly
    );
    let pc = mesh.default_config.as_ref().expect("defaultConfig");
    assert_eq!(pc.hold_application_until_proxy_starts, Some(true));
    assert_eq!(pc.drain_duration, Some(Duration::from_secs(45)));
    let (defaults, _) = load_mesh_config("", "mesh").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(defaults.root_namespace(), "istio-system");
    assert_eq!(defaults.trust_domain(), "cluster.local");
    assert_eq!(
        defaults.outbound_traffic_mode(),
        lateen_api::networking::OutboundTrafficMode::AllowAny
    );
    assert_eq!(defaults.connect_timeout(), Duration::from_secs(10));
    assert_eq!(
        defaults.discovery_address(),
        "lateend.istio-system.svc:15012"
    );
    let retry = defaults.default_http_retry();
    assert_eq!(retry.attempts, 2);
    assert!(retry.retry_on_conditions().contains(&"connect-failure"));
    assert_eq!(mesh.discovery_address(), "lateend.lateen-system.svc:15012");
}

#[test]
fn short_names_and_wildcards_for_the_control_plane() {
    let r = only_resource(&format!("apiVersion: networking.istio.io/v1\n{VS_BODY}"));
    let fqdn = resolve_short_name(
        &r.as_virtual_service().expect("vs").spec.hosts[0],
        r.namespace(),
        "cluster.local",
    );
    assert_eq!(fqdn, "reviews.prod.svc.cluster.local");
    assert!(hosts_match(&fqdn, "*.prod.svc.cluster.local"));
    assert!(!hosts_match(&fqdn, "*.default.svc.cluster.local"));
}

fn bookinfo_documents(files: &[&str]) -> Vec<lateen_api::Document> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/fixtures/istio/samples/bookinfo/networking");
    files
        .iter()
        .flat_map(|f| {
            let text = std::fs::read_to_string(dir.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            load(&text, f).unwrap_or_else(|e| panic!("{e}")).documents
        })
        .collect()
}

#[test]
fn analyze_finds_cross_resource_problems() {
    let docs = bookinfo_documents(&[
        "destination-rule-all.yaml",
        "virtual-service-all-v1.yaml",
        "bookinfo-gateway.yaml",
    ]);
    let problems = lateen_api::analyze(&docs, "cluster.local");
    assert!(problems.is_empty(), "{problems:?}");

    let mut docs = bookinfo_documents(&[
        "virtual-service-all-v1.yaml",
        "virtual-service-reviews-v3.yaml",
    ]);
    docs.extend(bookinfo_documents(&[
        "destination-rule-reviews.yaml",
        "certmanager-gateway.yaml",
    ]));
    let extra = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: edge}\nspec:\n  hosts: [edge.example.com]\n  gateways: [public]\n  http:\n  - route:\n    - destination: {host: reviews, subset: v9}\n";
    docs.extend(
        load(extra, "edge.yaml")
            .unwrap_or_else(|e| panic!("{e}"))
            .documents,
    );
    let rendered: Vec<String> = lateen_api::analyze(&docs, "cluster.local")
        .iter()
        .map(|p| p.to_string())
        .collect();
    let expect = [
        "virtual-service-reviews-v3.yaml:4: document 1: VirtualService default/reviews: metadata.name: VirtualService default/reviews is defined more than once (first in virtual-service-all-v1.yaml document 2)",
        "document 1: VirtualService default/productpage: spec.http[0].route[0].destination.host: Referenced host+subset in destinationrule not found: \"productpage+v1\"",
        "edge.yaml:9: document 1: VirtualService default/edge: spec.http[0].route[0].destination.host: Referenced host+subset in destinationrule not found: \"reviews+v9\"",
        "edge.yaml:6: document 1: VirtualService default/edge: spec.gateways[0]: Referenced gateway not found: \"public\"",
    ];
    for e in expect {
        assert!(
            rendered.iter().any(|r| r.contains(e)),
            "missing {e:?} in:\n{}",
            rendered.join("\n")
        );
    }
    // Gateway in another namespace, referenced by ns/name, is found.
    let certmanager = bookinfo_documents(&["certmanager-gateway.yaml"]);
    assert!(lateen_api::analyze(&certmanager, "cluster.local").is_empty());
}

#[test]
fn json_input_with_tabs_and_compact_separators() {
    let text = "{\n\t\"apiVersion\":\"networking.istio.io/v1\",\n\t\"kind\":\"DestinationRule\",\n\t\"metadata\":{\"name\":\"reviews\",\"namespace\":\"prod\"},\n\t\"spec\":{\n\t\t\"host\":\"reviews\",\n\t\t\"subsets\":[{\"name\":\"v1\",\"labels\":{\"version\":\"v1\"}}]\n\t}\n}\n";
    let loaded = load(text, "dr.json").unwrap_or_else(|e| panic!("{e}"));
    let dr = loaded.documents[0]
        .resource
        .as_destination_rule()
        .expect("DestinationRule");
    assert_eq!(dr.spec.subsets[0].name, "v1");
    assert_eq!(
        loaded.documents[0].line_of(&lateen_api::FieldPath::parse("spec.subsets[0].name")),
        Some(7)
    );
}

#[test]
fn proxy_config_annotation_parses() {
    let text = "holdApplicationUntilProxyStarts: true\nproxyMetadata:\n  ISTIO_META_DNS_CAPTURE: \"true\"\nterminationDrainDuration: 30s\n";
    let pc = lateen_api::parse_proxy_config(text, "proxy.istio.io/config")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pc.hold_application_until_proxy_starts, Some(true));
    assert_eq!(pc.termination_drain_duration, Some(Duration::from_secs(30)));
    let err =
        lateen_api::parse_proxy_config("holdApplicationUntilProxyStart: true\n", "annotation")
            .expect_err("typo must be refused");
    assert!(
        err.to_string().contains(
            "annotation:1: ProxyConfig proxy: holdApplicationUntilProxyStart: unknown field"
        ),
        "{err}"
    );
}
