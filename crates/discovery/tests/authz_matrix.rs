//! Issue 13's authorization table: AuthorizationPolicy and RequestAuthentication cases, each
//! one request (or TCP connection) with an expected verdict, run against both data planes —
//! real Envoy 1.40 and `lateen-proxy sidecar` — configured by one `lateend` over ADS. Each
//! data plane is the sidecar of its own server workload with inbound HTTP and TCP listeners
//! on its own loopback address ([`authz_config`]); the client sends straight to them from
//! chosen loopback source addresses. A case passes on a data plane when the verdict (HTTP
//! status, or whether the TCP connection was served) is the expected one; the table is
//! printed and the test fails unless every case passes on both. The last phase replaces all
//! policies with an allow-nothing policy (a live edit) and checks that HTTP and TCP are
//! refused. Three cases use keys both data planes fetch from a `jwksUri` (lateend sends
//! Envoy's `remote_jwks` through the key server's cluster): fetched keys verify, a key not in
//! the set and a JWKS that is not JSON give 401; the key set is fetched once per proxy and
//! kept. Connections here are plaintext, so principal and namespace rules never match
//! (as in Envoy); `authz_mtls_matrix.rs` runs them over mutual TLS with mesh identities.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

#[path = "common/authz_config.rs"]
mod authz_config;
mod common;
#[path = "common/dataplane.rs"]
mod dataplane;
#[path = "common/matrix.rs"]
mod matrix;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use authz_config::Ports;
use common::backend::Backend;
use common::client::{Request, fetch_method};
use common::lateend::start_lateend;
use common::{envoy_or_skip, free_port, wait_until, write_config};
use dataplane::DataPlane;
use lateen_test_support::jwt::TestIssuer;
use lateen_test_support::static_http::StaticServer;
use matrix::{Outcome, Table};

const ISSUER: &str = "https://issuer.test";
/// Issuers whose keys the proxies fetch from a `jwksUri`: a good key set, and one that is
/// not JSON.
const REMOTE_ISSUER: &str = "https://remote.test";
const BROKEN_ISSUER: &str = "https://broken.test";

/// What a case expects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Verdict {
    Status(u16),
    /// The TCP connection was closed without an answer.
    Closed,
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    host: &'static str,
    /// Last octet of the client's 127.0.0.X source address.
    source: u8,
    headers: Vec<(&'static str, String)>,
    tcp: bool,
    expect: Verdict,
}

fn http(name: &'static str, path: &str, expect: u16) -> Case {
    Case {
        name,
        method: "GET",
        path: path.to_string(),
        host: "server.default.svc.cluster.local",
        source: 1,
        headers: Vec::new(),
        tcp: false,
        expect: Verdict::Status(expect),
    }
}

impl Case {
    fn method(mut self, m: &'static str) -> Case {
        self.method = m;
        self
    }
    fn host(mut self, h: &'static str) -> Case {
        self.host = h;
        self
    }
    fn from(mut self, octet: u8) -> Case {
        self.source = octet;
        self
    }
    fn header(mut self, k: &'static str, v: &str) -> Case {
        self.headers.push((k, v.to_string()));
        self
    }
    fn bearer(self, token: &str) -> Case {
        self.header("authorization", &format!("Bearer {token}"))
    }
    fn tcp(mut self, expect: Verdict) -> Case {
        self.tcp = true;
        self.expect = expect;
        self
    }
}

/// The tokens the cases use.
struct Tokens {
    alice: String,
    bob: String,
    carol_banned: String,
    expired: String,
    other_key: String,
    other_issuer: String,
    /// Verified by the keys fetched from the `jwksUri`.
    remote: String,
    /// Claims the remote issuer, signed by a key not in its fetched set.
    remote_other_key: String,
    /// The issuer whose `jwksUri` answers with something that is not JSON.
    broken: String,
}

fn tokens(issuer: &TestIssuer, remote: &TestIssuer) -> Tokens {
    let sign = |claims| issuer.token(claims).expect("sign a token");
    let stranger = TestIssuer::new(ISSUER, "k1").expect("second key");
    let elsewhere = TestIssuer::new("https://elsewhere.test", "k1").expect("other issuer");
    Tokens {
        alice: sign(serde_json::json!({"sub": "alice", "groups": ["admins", "dev"]})),
        bob: sign(serde_json::json!({"sub": "bob", "groups": ["users"]})),
        carol_banned: sign(serde_json::json!({"sub": "carol", "groups": ["banned"]})),
        expired: sign(serde_json::json!({"sub": "alice", "exp": 1_000_000_000u64})),
        other_key: stranger
            .token(serde_json::json!({"sub": "alice"}))
            .expect("sign with another key"),
        other_issuer: elsewhere
            .token(serde_json::json!({"sub": "alice"}))
            .expect("sign for another issuer"),
        remote: remote
            .token(serde_json::json!({"sub": "rita"}))
            .expect("sign for the remote issuer"),
        remote_other_key: TestIssuer::new(REMOTE_ISSUER, "kr")
            .and_then(|i| i.token(serde_json::json!({"sub": "rita"})))
            .expect("sign with a key the JWKS lacks"),
        broken: TestIssuer::new(BROKEN_ISSUER, "k1")
            .and_then(|i| i.token(serde_json::json!({"sub": "bo"})))
            .expect("sign for the broken issuer"),
    }
}

fn cases(t: &Tokens) -> Vec<Case> {
    use Verdict::Closed;
    vec![
        http("open path allowed", "/open/x", 200),
        http("query string is not part of the path", "/open/x?a=b", 200),
        http("no ALLOW rule matches → denied", "/nowhere", 403),
        http("DENY path prefix /deny/*", "/deny/x", 403),
        http("DENY path suffix */secret", "/open/secret", 403),
        http("exact path /exact", "/exact", 200),
        http("exact path does not match longer", "/exact/more", 403),
        http("DENY method DELETE", "/open/x", 403).method("DELETE"),
        http("DENY header x-block: yes", "/open/x", 403).header("x-block", "yes"),
        http("header x-block: no passes", "/open/x", 200).header("x-block", "no"),
        http("DENY ipBlocks 127.0.0.66", "/open/x", 403).from(66),
        http("DENY remoteIpBlocks via XFF", "/open/x", 403)
            .header("x-forwarded-for", "203.0.113.5"),
        http("remoteIpBlocks via XFF allowed", "/xff/a", 200)
            .header("x-forwarded-for", "198.51.100.7"),
        http("remoteIpBlocks without XFF denied", "/xff/a", 403),
        http("remoteIpBlocks: last XFF entry counts", "/xff/a", 403)
            .header("x-forwarded-for", "198.51.100.7, 10.1.2.3"),
        http("methods GET allowed", "/methods/a", 200),
        http("methods POST denied", "/methods/a", 403).method("POST"),
        http("hosts exact", "/hosts/a", 200).host("good.example.com"),
        http("hosts ignore case", "/hosts/a", 200).host("GOOD.Example.COM"),
        http("hosts wildcard suffix", "/hosts/a", 200).host("api.wild.example"),
        http("hosts other denied", "/hosts/a", 403).host("bad.example.com"),
        http("ports the HTTP port", "/ports/a", 200),
        http("notPorts the HTTP port denied", "/notports/a", 403),
        http("ipBlocks 127.0.0.8/29 from .9", "/ip/a", 200).from(9),
        http("ipBlocks 127.0.0.8/29 from .1 denied", "/ip/a", 403),
        http("notIpBlocks from .1", "/notip/a", 200),
        http("notIpBlocks from .9 denied", "/notip/a", 403).from(9),
        http(
            "principals need mTLS (plaintext denied)",
            "/principal/a",
            403,
        ),
        http("notPrincipals on plaintext allowed", "/notprincipal/a", 200),
        http("namespaces need mTLS (plaintext denied)", "/ns/a", 403),
        http(
            "when source.namespace on plaintext denied",
            "/when-ns/a",
            403,
        ),
        http("when header values exact", "/when-header/a", 200).header("x-team", "blue"),
        http("when header values prefix", "/when-header/a", 200).header("x-team", "green-2"),
        http("when header one of a list", "/when-header/a", 200).header("x-team", "red,blue"),
        http("when header other value denied", "/when-header/a", 403).header("x-team", "red"),
        http("when source.ip from .9", "/when-ip/a", 200).from(9),
        http("when source.ip from .1 denied", "/when-ip/a", 403),
        http("when notValues prod denied", "/when-notvalues/a", 403).header("x-env", "prod"),
        http("when notValues dev allowed", "/when-notvalues/a", 200).header("x-env", "dev"),
        http(
            "when notValues header absent allowed",
            "/when-notvalues/a",
            200,
        ),
        http("when destination.port", "/when-port/a", 200),
        http("notPaths other path allowed", "/notpath/a", 200),
        http("notPaths hidden denied", "/notpath/hidden", 403),
        http("notMethods GET allowed", "/notmethod/a", 200),
        http("notMethods POST denied", "/notmethod/a", 403).method("POST"),
        http("AUDIT never denies", "/audit/a", 200),
        http("dry-run DENY never denies", "/dryrun/a", 200),
        http("JWT missing is allowed", "/open/x", 200),
        http("JWT valid token on open path", "/open/x", 200).bearer(&t.alice),
        http("JWT signed by another key → 401", "/open/x", 401).bearer(&t.other_key),
        http("JWT expired → 401", "/open/x", 401).bearer(&t.expired),
        http("JWT malformed → 401", "/open/x", 401).bearer("not-a-jwt"),
        http("JWT of an unknown issuer → 401", "/open/x", 401).bearer(&t.other_issuer),
        http("requestPrincipals alice", "/jwt/alice/a", 200).bearer(&t.alice),
        http("requestPrincipals bob denied", "/jwt/alice/a", 403).bearer(&t.bob),
        http(
            "requestPrincipals from access_token param",
            &format!("/jwt/alice/a?access_token={}", t.alice),
            200,
        ),
        http(
            "requestPrincipals * without token denied",
            "/jwt/any/a",
            403,
        ),
        http("requestPrincipals * with token", "/jwt/any/a", 200).bearer(&t.bob),
        http("notRequestPrincipals bob denied", "/jwt/notbob/a", 403).bearer(&t.bob),
        http("notRequestPrincipals alice allowed", "/jwt/notbob/a", 200).bearer(&t.alice),
        http("claims groups contains admins", "/claims/a", 200).bearer(&t.alice),
        http("claims groups without admins denied", "/claims/a", 403).bearer(&t.bob),
        http("claims sub prefix b*", "/claims-sub/a", 200).bearer(&t.bob),
        http("DENY claim groups banned", "/open/x", 403).bearer(&t.carol_banned),
        http("jwksUri: fetched keys verify", "/jwt/any/a", 200).bearer(&t.remote),
        http("jwksUri: a key not in the set → 401", "/open/x", 401).bearer(&t.remote_other_key),
        http("jwksUri: JWKS not JSON → 401", "/open/x", 401).bearer(&t.broken),
        http("TCP allowed from 127.0.0.17", "/tcp", 0)
            .from(17)
            .tcp(Verdict::Status(200)),
        http("TCP no ALLOW match → closed", "/tcp", 0).tcp(Closed),
        http("TCP DENY ipBlocks → closed", "/tcp", 0)
            .from(66)
            .tcp(Closed),
    ]
}

async fn run(case: &Case, plane: DataPlane, ports: &Ports) -> Outcome {
    let port = if case.tcp { ports.tcp } else { ports.http };
    let headers: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let request = Request {
        target: SocketAddr::new(IpAddr::V4(plane.address()), port),
        source: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, case.source))),
        host: case.host,
        path: &case.path,
        headers: &headers,
    };
    let got = match fetch_method(&request, case.method).await {
        Some(reply) => Verdict::Status(reply.status),
        None => Verdict::Closed,
    };
    let figure = match got {
        Verdict::Status(s) => s.to_string(),
        Verdict::Closed => "closed".to_string(),
    };
    Outcome::new(got == case.expect, figure)
}

struct Servers {
    work: std::path::PathBuf,
    config: std::path::PathBuf,
    lateend: common::lateend::Lateend,
    planes: Vec<dataplane::Running>,
    ports: Ports,
    _backend: Backend,
    /// The `jwksUri` server.
    jwks: StaticServer,
}

impl Servers {
    fn diagnostics(&self) -> String {
        let mut out = format!("--- lateend ---\n{}\n", self.lateend.process.log_tail());
        for p in &self.planes {
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                p.plane.name(),
                p.process.log_tail()
            ));
        }
        out
    }

    /// Waits until every data plane gives `case`'s verdict.
    async fn wait_for(&self, what: &str, case: &Case) {
        for plane in DataPlane::ALL {
            let ready =
                wait_until(what, || async { run(case, plane, &self.ports).await.pass }).await;
            if let Err(e) = ready {
                let last = run(case, plane, &self.ports).await.figure;
                let envoy_listeners = match self.planes[0].process.admin_port().await {
                    Some(admin) => {
                        common::get(admin, "x", "/config_dump?resource=dynamic_listeners", &[])
                            .await
                            .map(|(_, body)| body)
                            .unwrap_or_default()
                    }
                    None => String::new(),
                };
                panic!(
                    "{}: {e} (last verdict {last})\n{}\n--- Envoy listeners ---\n{envoy_listeners}",
                    plane.name(),
                    self.diagnostics()
                );
            }
        }
    }
}

async fn start(issuer: &TestIssuer, remote: &TestIssuer) -> Option<Servers> {
    let envoy = envoy_or_skip()?;
    let work = std::env::temp_dir().join(format!("lateen-authz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    let config = work.join("config");
    std::fs::create_dir_all(&config).expect("create the config folder");
    let backend = Backend::start("server").await;
    let ports = Ports {
        http: free_port(),
        tcp: free_port(),
        backend: backend.port,
    };
    for plane in DataPlane::ALL {
        write_config(
            &config,
            &format!("sidecar-{}.yaml", plane.workload()),
            &authz_config::sidecar_yaml(plane, &ports),
        );
    }
    write_config(
        &config,
        "jwt.yaml",
        &authz_config::request_authentication(ISSUER, issuer.jwks()),
    );
    write_config(&config, "policies.yaml", &authz_config::policies(&ports));
    let jwks = StaticServer::start(vec![
        ("/keys".to_string(), remote.jwks().to_string()),
        (
            "/not-json".to_string(),
            "<html>keys moved</html>".to_string(),
        ),
    ])
    .await
    .expect("JWKS server");
    write_config(
        &config,
        "jwt-remote.yaml",
        &authz_config::remote_jwks(REMOTE_ISSUER, BROKEN_ISSUER, jwks.port),
    );
    let lateend = start_lateend(&config, &work, &[]).await;
    let mut planes = Vec::new();
    for plane in DataPlane::ALL {
        planes.push(dataplane::start(plane, &envoy, &work, lateend.xds, ports.http).await);
    }
    let servers = Servers {
        work,
        config,
        lateend,
        planes,
        ports,
        _backend: backend,
        jwks,
    };
    servers
        .wait_for("policies enforced", &http("ready: denied", "/nowhere", 403))
        .await;
    servers
        .wait_for("policies enforced", &http("ready: allowed", "/open/x", 200))
        .await;
    Some(servers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authorization_case_gives_the_same_verdict_on_envoy_and_lateen_proxy() {
    let issuer = TestIssuer::new(ISSUER, "k1").expect("test issuer");
    let remote = TestIssuer::new(REMOTE_ISSUER, "kr").expect("remote issuer");
    let Some(servers) = start(&issuer, &remote).await else {
        return;
    };
    let t = tokens(&issuer, &remote);
    let mut table = Table::default();
    let all = cases(&t);
    assert!(all.len() >= 40, "the table needs at least 40 cases");
    for case in &all {
        for plane in DataPlane::ALL {
            table.record(case.name, plane, run(case, plane, &servers.ports).await);
        }
    }

    // Live edit: only an allow-nothing policy is left.
    std::fs::remove_file(servers.config.join("policies.yaml")).expect("remove the policies");
    write_config(
        &servers.config,
        "allow-nothing.yaml",
        authz_config::ALLOW_NOTHING,
    );
    let nothing = http("allow-nothing denies HTTP", "/open/x", 403);
    servers.wait_for("allow-nothing enforced", &nothing).await;
    let tcp_nothing = http("allow-nothing closes TCP", "/tcp", 0)
        .from(17)
        .tcp(Verdict::Closed);
    for case in [&nothing, &tcp_nothing] {
        for plane in DataPlane::ALL {
            table.record(case.name, plane, run(case, plane, &servers.ports).await);
        }
    }

    println!("\n{}\n", table.render());
    // Each data plane fetched the good key set and kept it: a handful of fetches in all.
    let fetches = servers.jwks.hits("/keys");
    assert!(
        (2..=4).contains(&fetches),
        "{fetches} fetches of the JWKS by two proxies"
    );
    let failures = table.failures();
    if !failures.is_empty() {
        panic!(
            "cases failing on a data plane: {failures:?}\n{}\n{}",
            table.render(),
            servers.diagnostics()
        );
    }
    let _ = std::fs::remove_dir_all(&servers.work);
}
