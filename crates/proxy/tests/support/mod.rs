//! Test harness: the built `lateen-proxy` binary as a child process with a generated
//! config, real upstream servers, and small client helpers. Everything listens on 127.0.0.1.
#![allow(dead_code)]

pub mod mesh;
pub mod upstream;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lateen_test_support::process::ChildGuard;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub use lateen_test_support::free_port;

pub struct ProxyProcess {
    child: ChildGuard,
    pub admin: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    _dir: tempfile::TempDir,
    pub log: std::path::PathBuf,
}

/// Proxy ports for one test.
pub struct Ports {
    pub admin: u16,
    pub health: u16,
    pub metrics: u16,
}

impl Ports {
    pub fn new() -> Ports {
        Ports {
            admin: free_port(),
            health: free_port(),
            metrics: free_port(),
        }
    }

    /// The `admin:` block of a config for these ports.
    pub fn admin_yaml(&self) -> String {
        format!(
            "admin:\n  address: 127.0.0.1:{}\n  health_address: 127.0.0.1:{}\n  metrics_address: 127.0.0.1:{}\n",
            self.admin, self.health, self.metrics
        )
    }
}

impl ProxyProcess {
    /// Starts the proxy on `config` (which must use `ports`) and waits until it is ready.
    pub async fn start(config: &str, ports: &Ports) -> ProxyProcess {
        Self::start_with_args(config, ports, &[]).await
    }

    /// As [`ProxyProcess::start`], with more command-line arguments (`--cert-dir DIR`).
    pub async fn start_with_args(
        config: &str,
        ports: &Ports,
        args: &[&std::ffi::OsStr],
    ) -> ProxyProcess {
        Self::start_command(
            Command::new(env!("CARGO_BIN_EXE_lateen-proxy")),
            config,
            ports,
            args,
        )
        .await
    }

    /// As [`ProxyProcess::start_with_args`] with the process's open-file limit set to
    /// `limit`; `None` (test skipped) without `prlimit`.
    pub async fn start_with_open_files_limit(
        config: &str,
        ports: &Ports,
        args: &[&std::ffi::OsStr],
        limit: u64,
        test: &str,
    ) -> Option<ProxyProcess> {
        let command = lateen_test_support::with_open_files_limit(
            std::path::Path::new(env!("CARGO_BIN_EXE_lateen-proxy")),
            limit,
            test,
        )?;
        Some(Self::start_command(command, config, ports, args).await)
    }

    async fn start_command(
        mut command: Command,
        config: &str,
        ports: &Ports,
        args: &[&std::ffi::OsStr],
    ) -> ProxyProcess {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("proxy.yaml");
        std::fs::write(&path, config).expect("write config");
        let log = dir.path().join("proxy.log");
        let child = command
            .arg("--config")
            .arg(&path)
            .arg("--concurrency")
            .arg("2")
            .args(args)
            .env("LATEEN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("start lateen-proxy");
        let proxy = ProxyProcess {
            child: ChildGuard::new(child),
            admin: ([127, 0, 0, 1], ports.admin).into(),
            health: ([127, 0, 0, 1], ports.health).into(),
            metrics: ([127, 0, 0, 1], ports.metrics).into(),
            _dir: dir,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok((status, _)) = get(proxy.health, "/healthz/ready").await
                && status == 200
            {
                return proxy;
            }
            assert!(
                Instant::now() < deadline,
                "proxy not ready in 10s; log:\n{}",
                proxy.log_text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn prometheus(&self) -> String {
        get(self.metrics, "/stats/prometheus")
            .await
            .expect("scrape metrics")
            .1
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM (via the `kill` command) and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.child.signal("TERM");
        self.child
            .wait_exit(Duration::from_secs(15))
            .expect("proxy did not exit after SIGTERM")
    }

    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }
}

/// A plain HTTP/1.1 GET on a new connection: status and body text.
pub async fn get(address: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let response = send(
        address,
        http::Request::get(path)
            .header("host", "test")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?,
    )
    .await?;
    Ok((
        response.0.as_u16(),
        String::from_utf8_lossy(&response.2).into_owned(),
    ))
}

/// Sends one HTTP/1.1 request on a new connection.
pub async fn send(
    address: SocketAddr,
    request: http::Request<Full<Bytes>>,
) -> Result<(http::StatusCode, http::HeaderMap, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok((parts.status, parts.headers, body))
}

/// An HTTP/1.1 client connection kept open for several requests.
pub async fn h1_connection(
    address: SocketAddr,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender
}

/// An h2c (prior knowledge) client connection.
pub async fn h2_connection(
    address: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    sender
}

/// A proxy started with [`simple_config`] in front of `upstream`, and its listener's address.
pub async fn proxy_to(upstream: SocketAddr) -> (ProxyProcess, SocketAddr) {
    proxy_with_listener(upstream, "").await
}

/// [`proxy_to`] with `listener_extra` in the listener's YAML (e.g. its `limits`).
pub async fn proxy_with_listener(
    upstream: SocketAddr,
    listener_extra: &str,
) -> (ProxyProcess, SocketAddr) {
    let ports = Ports::new();
    let listen = free_port();
    let config = simple_config(&ports, listen, &[upstream], "", listener_extra);
    let proxy = ProxyProcess::start(&config, &ports).await;
    (proxy, ([127, 0, 0, 1], listen).into())
}

/// Polls `check` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// The value of the first sample line that contains every one of `parts`.
#[allow(unused_imports)] // not every test binary reads metrics
pub use lateen_test_support::metrics_text::first as sample;

/// A config with one HTTP listener routing everything to one cluster of `upstreams`.
pub fn simple_config(
    ports: &Ports,
    listen: u16,
    upstreams: &[SocketAddr],
    route_extra: &str,
    listener_extra: &str,
) -> String {
    let endpoints: String = upstreams
        .iter()
        .map(|address| format!("      - address: {address}\n"))
        .collect();
    format!(
        r#"node:
  workload: client-v1
  namespace: default
  app: client
  version: v1
{admin}drain_timeout: 3s
listeners:
  - name: http
    address: 127.0.0.1:{listen}
    route_config: main
{listener_extra}
route_configs:
  - name: main
    virtual_hosts:
      - name: all
        domains: ["*"]
        routes:
          - match: {{ path: {{ prefix: / }} }}
            route:
              cluster: backend
{route_extra}
clusters:
  - name: backend
    endpoints:
{endpoints}    destination:
      service: backend.default.svc.cluster.local
      workload: backend-v1
      namespace: default
      app: backend
      version: v1
"#,
        admin = ports.admin_yaml()
    )
}

impl ProxyProcess {
    /// True while the process is still running.
    pub fn try_wait_alive(&mut self) -> bool {
        self.try_wait().is_none()
    }
}

/// Writes `bytes` to a new connection to `address` and returns everything that comes back
/// until the peer closes or `quiet` passes with nothing new (bounded to 10 s in all).
pub async fn raw_exchange(address: SocketAddr, bytes: &[u8], quiet: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect");
    stream.write_all(bytes).await.expect("write request");
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match tokio::time::timeout(quiet, stream.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => received.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&received).into_owned()
}
