//! The JWT filter's remote keys (`remote_jwks`, what lateend sends for a `jwksUri`) on the
//! built proxy with real sockets: the keys are fetched through the named cluster on the
//! first request carrying a token, kept for `cache_duration` and fetched again after it; a
//! key set that is not JSON and a key server that never answers (the fetch is bounded by
//! its timeout) are logged with the reason and give Envoy's 401
//! `Jwks remote fetch is failed`, while requests without a token still pass.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Full;
use lateen_test_support::jwt::TestIssuer;
use lateen_test_support::static_http::StaticServer;
use support::upstream::Upstream;
use support::{Ports, ProxyProcess, free_port, send};

/// A proxy whose listener checks tokens of three issuers with remote keys: `remote.test`
/// (`/keys` of the key server, cached 1 s), `broken.test` (`/not-json`) and `silent.test`
/// (a server that never answers; 500 ms timeout).
fn config(ports: &Ports, listen: u16, app: SocketAddr, jwks: u16, silent: SocketAddr) -> String {
    let provider = |name: &str, uri: &str, cluster: &str, cache: &str| {
        format!(
            "          - {{name: {name}, issuer: \"https://{name}.test\", payload_in_metadata: payload, remote: {{uri: \"{uri}\", cluster: {cluster}, timeout: 500ms, cache_duration: {cache}}}}}\n"
        )
    };
    let providers = [
        provider("remote", "http://jwks.test/keys", "jwks", "1s"),
        provider("broken", "http://jwks.test/not-json", "jwks", "60s"),
        provider("silent", "http://silent.test/keys", "silent", "60s"),
    ]
    .concat();
    format!(
        r#"{admin}drain_timeout: 1s
listeners:
  - name: http
    address: 127.0.0.1:{listen}
    route_config: main
    http_authz:
      jwt:
        allow_missing: true
        providers:
{providers}route_configs:
  - name: main
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - {{match: {{path: {{prefix: /}}}}, route: {{cluster: app}}}}
clusters:
  - {{name: app, endpoints: [{{address: "{app}"}}]}}
  - {{name: jwks, endpoints: [{{address: "127.0.0.1:{jwks}"}}]}}
  - {{name: silent, endpoints: [{{address: "{silent}"}}]}}
"#,
        admin = ports.admin_yaml(),
    )
}

/// A TCP server that accepts connections and never answers (held for 30 s at most).
async fn silent_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_secs(30)).await;
                drop(socket);
            });
        }
    });
    address
}

/// GET / with `token` as a bearer token (none when empty): status and body.
async fn get_with(address: SocketAddr, token: &str) -> (u16, String) {
    let mut request = http::Request::get("/").header("host", "app");
    if !token.is_empty() {
        request = request.header("authorization", format!("Bearer {token}"));
    }
    let request = request.body(Full::new(Bytes::new())).expect("request");
    let (status, _, body) = send(address, request).await.expect("an answer");
    (status.as_u16(), String::from_utf8_lossy(&body).into_owned())
}

struct Setup {
    proxy: ProxyProcess,
    listen: SocketAddr,
    jwks: StaticServer,
    remote: TestIssuer,
    _app: Upstream,
}

async fn setup() -> Setup {
    let remote = TestIssuer::new("https://remote.test", "k1").expect("issuer");
    let jwks = StaticServer::start(vec![
        ("/keys".to_string(), remote.jwks().to_string()),
        ("/not-json".to_string(), "<html>moved</html>".to_string()),
    ])
    .await
    .expect("key server");
    let app = Upstream::start("app").await;
    let silent = silent_server().await;
    let ports = Ports::new();
    let listen = free_port();
    let proxy = ProxyProcess::start(
        &config(&ports, listen, app.address, jwks.port, silent),
        &ports,
    )
    .await;
    Setup {
        proxy,
        listen: ([127, 0, 0, 1], listen).into(),
        jwks,
        remote,
        _app: app,
    }
}

#[tokio::test]
async fn fetched_keys_verify_tokens_and_are_cached_then_fetched_again() {
    let s = setup().await;
    assert_eq!(
        s.jwks.hits("/keys"),
        0,
        "nothing is fetched before a token arrives"
    );
    let token = s
        .remote
        .token(serde_json::json!({"sub": "rita"}))
        .expect("token");
    for _ in 0..5 {
        let (status, body) = get_with(s.listen, &token).await;
        assert_eq!(status, 200, "{body}\n{}", s.proxy.log_text());
    }
    assert_eq!(s.jwks.hits("/keys"), 1, "five requests, one fetch");

    let stranger = TestIssuer::new("https://remote.test", "k1").expect("another key");
    let forged = stranger
        .token(serde_json::json!({"sub": "rita"}))
        .expect("token");
    let (status, body) = get_with(s.listen, &forged).await;
    assert_eq!((status, body.as_str()), (401, "Jwt verification fails"));

    // After cache_duration (1 s) the next token fetches the keys again.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (status, _) = get_with(s.listen, &token).await;
    assert_eq!(status, 200);
    assert_eq!(
        s.jwks.hits("/keys"),
        2,
        "fetched again after the cache time"
    );
}

#[tokio::test]
async fn a_jwks_that_is_not_json_or_never_comes_gives_401_and_a_clear_log() {
    let s = setup().await;
    let sign = |issuer: &str| {
        TestIssuer::new(issuer, "k1")
            .and_then(|i| i.token(serde_json::json!({"sub": "x"})))
            .expect("token")
    };

    let (status, body) = get_with(s.listen, &sign("https://broken.test")).await;
    assert_eq!(
        (status, body.as_str()),
        (401, "Jwks remote fetch is failed")
    );
    // The failure is remembered briefly: a second request does not fetch again at once.
    let (status, _) = get_with(s.listen, &sign("https://broken.test")).await;
    assert_eq!(status, 401);
    assert_eq!(s.jwks.hits("/not-json"), 1);

    let started = Instant::now();
    let (status, body) = get_with(s.listen, &sign("https://silent.test")).await;
    let waited = started.elapsed();
    assert_eq!(
        (status, body.as_str()),
        (401, "Jwks remote fetch is failed")
    );
    assert!(
        waited < Duration::from_secs(3),
        "the fetch is bounded by its 500 ms timeout, took {waited:?}"
    );

    let (status, _) = get_with(s.listen, "").await;
    assert_eq!(status, 200, "a request without a token still passes");

    let log = s.proxy.log_text();
    for wanted in [
        "http://jwks.test/not-json",
        "the body is not a JSON Web Key Set",
        "http://silent.test/keys",
        "no answer within 500ms",
    ] {
        assert!(log.contains(wanted), "log lacks {wanted:?}:\n{log}");
    }
}
