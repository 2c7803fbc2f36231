//! A small mesh as Istio YAML that several tests translate: lateen-discovery's translation
//! tests check what it becomes in detail, and the `xds_resources` fuzz target's seeds are what
//! lateend sends for it. One copy, so a new feature added here reaches both.

/// Services: `reviews` (two endpoints, one with its own port, subsets v1 and v2 and a
/// DestinationRule with every policy, per port and per subset), `ratings`, and the external
/// `httpbin.org` (DNS).
pub const SERVICES: &str = r#"
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints:
  - {address: 10.0.0.1, labels: {app: reviews, version: v1}}
  - {address: 10.0.0.2, labels: {app: reviews, version: v2}, ports: {http: 19080}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ratings, namespace: default}
spec:
  hosts: [ratings.default.svc.cluster.local]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 9080, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.1.1, labels: {app: ratings}}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.org]
  location: MESH_EXTERNAL
  resolution: DNS
  ports: [{number: 80, name: http, protocol: HTTP}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: default}
spec:
  host: reviews
  trafficPolicy:
    loadBalancer: {simple: RANDOM}
    connectionPool:
      tcp: {maxConnections: 10, connectTimeout: 2s}
      http: {http1MaxPendingRequests: 5, http2MaxRequests: 20, maxRetries: 3}
    outlierDetection: {consecutive5xxErrors: 7, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: ROUND_ROBIN}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpCookie: {name: user, ttl: 10s}}}
  - name: v2
    labels: {version: v2}
"#;

/// `reviews`' VirtualService: matches on regex, method, query and absent headers, retries,
/// timeout, mirror, header edits, rewrite, CORS, a redirect, a direct response, faults and a
/// weighted split.
pub const ROUTES: &str = r#"
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: default}
spec:
  hosts: [reviews]
  http:
  - name: regex-and-method
    match:
    - uri: {regex: "/api/v[0-9]+/.*"}
      method: {exact: POST}
      queryParams: {debug: {exact: "1"}, trace: {}}
      withoutHeaders: {x-skip: {prefix: "y"}}
    route: [{destination: {host: reviews, subset: v1}}]
    retries: {attempts: 4, perTryTimeout: 2s, retryOn: "connect-failure,503"}
    timeout: 7s
    mirror: {host: ratings}
    mirrorPercentage: {value: 50}
    headers:
      request: {set: {x-set: a}, add: {x-add: b}, remove: [x-gone]}
    rewrite: {uri: /v1/, authority: reviews.internal}
    corsPolicy:
      allowOrigins: [{exact: "https://example.com"}]
      allowMethods: [GET, POST]
      maxAge: 24h
  - name: moved
    match: [{uri: {exact: /old}}]
    redirect: {uri: /new, authority: example.com, redirectCode: 302}
  - name: teapot
    match: [{uri: {prefix: /tea}, ignoreUriCase: true}]
    directResponse: {status: 418, body: {string: "short and stout"}}
  - name: slow
    match: [{uri: {prefix: /slow}}]
    fault: {delay: {fixedDelay: 3s, percentage: {value: 12.5}}, abort: {grpcStatus: UNAVAILABLE}}
    route: [{destination: {host: reviews, subset: v2}}]
  - name: split
    route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10, headers: {response: {set: {x-canary: "yes"}}}}
"#;
