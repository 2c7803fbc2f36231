//! The Istio configuration of the data-plane matrix: one service per row family, all on the
//! egress port, each backed by WorkloadEntries at the test's upstreams; the DestinationRules
//! carry the policy a row checks (balancer, hashing, outlier detection, pool limits,
//! locality weights) and the VirtualServices the routing rows. `envoy_acceptance.rs` shares
//! the registry and routing resources, so each test uses only part of this file.
#![allow(dead_code)]

use std::fmt::Write as _;

/// One workload of a service: its name, `version` label, upstream port and locality.
pub struct Workload<'a> {
    pub name: &'a str,
    pub version: &'a str,
    pub port: u16,
    pub locality: Option<&'a str>,
}

/// ServiceEntries (selecting workloads by `app`) and their WorkloadEntries, on `port`.
pub fn registry_yaml(port: u16, services: &[(&str, Vec<Workload<'_>>)]) -> String {
    let mut out = String::new();
    for (svc, workloads) in services {
        let _ = write!(
            out,
            "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {svc}, namespace: default}}\nspec:\n  hosts: [{svc}.default.svc.cluster.local]\n  location: MESH_INTERNAL\n  resolution: STATIC\n  ports: [{{number: {port}, name: http, protocol: HTTP}}]\n  workloadSelector: {{labels: {{app: {svc}}}}}\n---\n"
        );
        for w in workloads {
            let locality = w
                .locality
                .map_or(String::new(), |l| format!("  locality: {l}\n"));
            let _ = write!(
                out,
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {svc}-{name}, namespace: default}}\nspec:\n  address: 127.0.0.1\n  labels: {{app: {svc}, version: {version}}}\n  ports: {{http: {wport}}}\n{locality}---\n",
                name = w.name,
                version = w.version,
                wport = w.port,
            );
        }
    }
    out
}

pub const DESTINATION_RULES: &str = r#"
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
  - {name: v3, labels: {version: v3}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: default}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb-rr, namespace: default}
spec:
  host: lb-rr
  # The limits on each upstream connection reach both data planes (the no-NACK row).
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool: {http: {idleTimeout: 60s, maxRequestsPerConnection: 1000}, tcp: {maxConnectionDuration: 1h}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb-lr, namespace: default}
spec:
  host: lb-lr
  trafficPolicy: {loadBalancer: {simple: LEAST_REQUEST}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: lb-random, namespace: default}
spec:
  host: lb-random
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hash-header, namespace: default}
spec:
  host: hash-header
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-user}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hash-ip, namespace: default}
spec:
  host: hash-ip
  trafficPolicy: {loadBalancer: {consistentHash: {useSourceIp: true}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: hash-cookie, namespace: default}
spec:
  host: hash-cookie
  trafficPolicy: {loadBalancer: {consistentHash: {httpCookie: {name: session, ttl: 0s}}}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: outlier, namespace: default}
spec:
  host: outlier
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 3, interval: 1s, baseEjectionTime: 3s, maxEjectionPercent: 50}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: breaker, namespace: default}
spec:
  host: breaker
  trafficPolicy:
    connectionPool: {tcp: {maxConnections: 1}, http: {http1MaxPendingRequests: 1, http2MaxRequests: 1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: locality, namespace: default}
spec:
  host: locality
  trafficPolicy:
    loadBalancer:
      simple: ROUND_ROBIN
      localityLbSetting:
        distribute:
        - from: "*"
          to: {"region-a/zone-a/*": 20, "region-b/zone-b/*": 80}
"#;

pub const REVIEWS_SPLIT: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v3}, weight: 20}
"#;

pub const REVIEWS_ALL_V2: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route: [{destination: {host: reviews, subset: v2}}]
"#;

/// A negative weight: lateend must reject the file and keep the previous version.
pub const REVIEWS_INVALID: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - route:
    - {destination: {host: reviews, subset: v1}, weight: -5}
    - {destination: {host: reviews, subset: v3}, weight: 20}
"#;

/// Retries, fault abort and timeout on ratings and details.
pub const POLICIES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  http:
  - match: [{uri: {prefix: /flaky}}]
    retries: {attempts: 3, retryOn: "5xx"}
    route: [{destination: {host: ratings, subset: v1}}]
  - match: [{uri: {prefix: /noretry}}]
    retries: {attempts: 0}
    route: [{destination: {host: ratings, subset: v1}}]
  - match: [{uri: {prefix: /fault}}]
    fault: {abort: {httpStatus: 418, percentage: {value: 30}}}
    route: [{destination: {host: ratings, subset: v1}}]
  - route: [{destination: {host: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: details, namespace: default}
spec:
  hosts: [details]
  http:
  - match: [{uri: {prefix: /slow}}]
    timeout: 500ms
    route: [{destination: {host: details}}]
  - route: [{destination: {host: details}}]
"#;

pub const MIRROR: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: mirror, namespace: default}
spec:
  hosts: [mirror]
  http:
  - route: [{destination: {host: mirror}}]
    mirror: {host: shadow}
    mirrorPercentage: {value: 100}
"#;
