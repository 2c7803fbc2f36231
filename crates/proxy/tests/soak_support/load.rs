//! The soak test's traffic, sent to the client sidecar's egress listeners: HTTP/1.1 on
//! kept-alive connections, h2c with two requests in flight, gRPC bidirectional streams that
//! each outlive a config change, and TCP echo exchanges. Every operation is bounded by
//! [`OP_TIMEOUT`] and counted once, as passed or failed, in a [`Tally`].

use super::mesh::{CLIENT, GRPC_PORT, HOST, HTTP_PORT, TCP_PORT};
use crate::support::upstream::EchoMessage;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

/// The longest any one request, message or exchange may take.
const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between one worker's operations: about 45 a second per worker.
const PACE: Duration = Duration::from_millis(20);
/// Messages per gRPC stream: at [`PACE`], a stream lives about 5 s, across a config change.
const STREAM_MESSAGES: usize = 250;
/// Exchanges per TCP connection.
const TCP_EXCHANGES: usize = 20;

#[derive(Clone, Copy, Debug)]
pub enum Protocol {
    Http1,
    H2c,
    Grpc,
    Tcp,
}

const PROTOCOLS: [Protocol; 4] = [
    Protocol::Http1,
    Protocol::H2c,
    Protocol::Grpc,
    Protocol::Tcp,
];

/// Passed and failed operations per protocol, and the first failures' reasons.
#[derive(Default)]
pub struct Tally {
    passed: [AtomicU64; 4],
    failed: [AtomicU64; 4],
    reasons: Mutex<Vec<String>>,
    /// The newest `x-soak-generation` an HTTP response carried: the config changes arrive.
    generation: AtomicU64,
}

impl Tally {
    fn pass(&self, protocol: Protocol) {
        self.passed[protocol as usize].fetch_add(1, Ordering::Relaxed);
    }

    fn fail(&self, protocol: Protocol, reason: String) {
        self.failed[protocol as usize].fetch_add(1, Ordering::Relaxed);
        let mut reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        if reasons.len() < 20 {
            reasons.push(format!("{protocol:?}: {reason}"));
        }
    }

    fn record(&self, protocol: Protocol, result: Result<(), String>) {
        match result {
            Ok(()) => self.pass(protocol),
            Err(err) => self.fail(protocol, err),
        }
    }

    /// The newest configuration generation seen in a response.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.failed.iter().map(|f| f.load(Ordering::Relaxed)).sum()
    }

    /// Whether every protocol passed at least `minimum` operations.
    pub fn all_above(&self, minimum: u64) -> bool {
        self.passed
            .iter()
            .all(|p| p.load(Ordering::Relaxed) >= minimum)
    }

    /// One line per protocol and the first failures.
    pub fn report(&self) -> String {
        let mut text = String::new();
        for protocol in PROTOCOLS {
            text.push_str(&format!(
                "{protocol:?} {} passed {} failed; ",
                self.passed[protocol as usize].load(Ordering::Relaxed),
                self.failed[protocol as usize].load(Ordering::Relaxed)
            ));
        }
        let reasons = self.reasons.lock().unwrap_or_else(|e| e.into_inner());
        if !reasons.is_empty() {
            text.push_str(&format!("first failures: {reasons:?}"));
        }
        text
    }
}

fn egress(port: u16) -> SocketAddr {
    format!("{CLIENT}:{port}").parse().expect("egress address")
}

async fn bounded<T, F>(what: &str, future: F) -> Result<T, String>
where
    F: std::future::Future<Output = Result<T, String>>,
{
    tokio::time::timeout(OP_TIMEOUT, future)
        .await
        .map_err(|_| format!("{what}: no answer in {OP_TIMEOUT:?}"))?
}

/// A TCP echo server in this process (the server sidecar's TCP backend).
pub async fn tcp_echo() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind echo");
    let address = listener.local_addr().expect("echo address");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut reader, mut writer) = stream.split();
                let _ = tokio::io::copy(&mut reader, &mut writer).await;
            });
        }
    });
    address
}

fn get_request(version: hyper::Version) -> http::Request<Empty<Bytes>> {
    let mut builder = http::Request::get(format!("http://{HOST}:{HTTP_PORT}/soak"));
    if version == hyper::Version::HTTP_11 {
        builder = builder.header(http::header::HOST, format!("{HOST}:{HTTP_PORT}"));
    }
    builder
        .version(version)
        .body(Empty::new())
        .expect("request")
}

/// Whether the response is a 200 whose body arrived whole; notes its config generation.
async fn check_response(
    tally: &Tally,
    response: Result<http::Response<hyper::body::Incoming>, hyper::Error>,
) -> Result<(), String> {
    let response = response.map_err(|e| format!("request: {e}"))?;
    let status = response.status();
    let generation = response
        .headers()
        .get("x-soak-generation")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    if let Some(generation) = generation {
        tally.generation.fetch_max(generation, Ordering::Relaxed);
    }
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("body: {e}"))?;
    if status != http::StatusCode::OK {
        let text = String::from_utf8_lossy(&body.to_bytes()).to_string();
        return Err(format!("status {status}: {text}"));
    }
    Ok(())
}

async fn h1_connect() -> Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(egress(HTTP_PORT))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn h2_connect() -> Result<hyper::client::conn::http2::SendRequest<Empty<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(egress(HTTP_PORT))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| format!("h2 handshake: {e}"))?;
    tokio::spawn(connection);
    Ok(sender)
}

/// A new connection, or `None` with the failure counted (after a pause, so that a worker
/// does not spin while the listener is away).
async fn connected<T>(
    tally: &Tally,
    protocol: Protocol,
    connect: impl std::future::Future<Output = Result<T, String>>,
) -> Option<T> {
    match bounded("connect", connect).await {
        Ok(connection) => Some(connection),
        Err(err) => {
            tally.fail(protocol, err);
            tokio::time::sleep(PACE).await;
            None
        }
    }
}

/// HTTP/1.1: 100 requests per kept-alive connection, then a new one.
async fn http1(tally: Arc<Tally>, stop_at: Instant) {
    while Instant::now() < stop_at {
        let Some(mut sender) = connected(&tally, Protocol::Http1, h1_connect()).await else {
            continue;
        };
        for _ in 0..100 {
            if Instant::now() >= stop_at || sender.ready().await.is_err() {
                break;
            }
            let result = bounded("GET", async {
                check_response(
                    &tally,
                    sender
                        .send_request(get_request(hyper::Version::HTTP_11))
                        .await,
                )
                .await
            })
            .await;
            tally.record(Protocol::Http1, result);
            tokio::time::sleep(PACE).await;
        }
    }
}

/// h2c: two requests in flight on one connection, 500 each before a new connection.
async fn h2c(tally: Arc<Tally>, stop_at: Instant) {
    while Instant::now() < stop_at {
        let Some(sender) = connected(&tally, Protocol::H2c, h2_connect()).await else {
            continue;
        };
        let lane = |mut sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>| {
            let tally = tally.clone();
            async move {
                for _ in 0..500 {
                    if Instant::now() >= stop_at {
                        break;
                    }
                    let result = bounded("GET", async {
                        sender.ready().await.map_err(|e| format!("ready: {e}"))?;
                        check_response(
                            &tally,
                            sender
                                .send_request(get_request(hyper::Version::HTTP_2))
                                .await,
                        )
                        .await
                    })
                    .await;
                    tally.record(Protocol::H2c, result);
                    tokio::time::sleep(PACE).await;
                }
            }
        };
        tokio::join!(lane(sender.clone()), lane(sender));
    }
}

async fn grpc_client() -> Result<tonic::client::Grpc<tonic::transport::Channel>, String> {
    let origin: http::Uri = format!("http://{HOST}:{GRPC_PORT}")
        .parse()
        .map_err(|e| format!("origin: {e}"))?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{CLIENT}:{GRPC_PORT}"))
        .map_err(|e| format!("endpoint: {e}"))?
        .origin(origin)
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    Ok(tonic::client::Grpc::new(channel))
}

/// One bidirectional stream of [`STREAM_MESSAGES`] echoes; each echo is one operation.
async fn grpc_stream(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
    tally: &Tally,
    stop_at: Instant,
) -> Result<(), String> {
    let (sender, receiver) = tokio::sync::mpsc::channel::<EchoMessage>(4);
    let codec = tonic_prost::ProstCodec::<EchoMessage, EchoMessage>::default();
    let mut inbound = bounded("stream", async {
        client.ready().await.map_err(|e| format!("ready: {e}"))?;
        client
            .streaming(
                tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(receiver)),
                http::uri::PathAndQuery::from_static("/test.Echo/Bidi"),
                codec,
            )
            .await
            .map(tonic::Response::into_inner)
            .map_err(|e| format!("open stream: {e}"))
    })
    .await?;
    for index in 0..STREAM_MESSAGES {
        if Instant::now() >= stop_at {
            break;
        }
        let text = format!("m{index}");
        bounded("echo", async {
            sender
                .send(EchoMessage { text: text.clone() })
                .await
                .map_err(|_| "stream closed".to_string())?;
            match inbound.message().await {
                Ok(Some(reply)) if reply.text == format!("echo: {text}") => Ok(()),
                Ok(Some(reply)) => Err(format!("echo of {text}: {}", reply.text)),
                Ok(None) => Err("stream ended early".to_string()),
                Err(status) => Err(format!("stream: {status}")),
            }
        })
        .await?;
        tally.pass(Protocol::Grpc);
        tokio::time::sleep(PACE).await;
    }
    drop(sender);
    bounded("end of stream", async {
        match inbound.message().await {
            Ok(None) => Ok(()),
            other => Err(format!("stream end: {other:?}")),
        }
    })
    .await
}

async fn grpc(tally: Arc<Tally>, stop_at: Instant) {
    while Instant::now() < stop_at {
        let Some(mut client) = connected(&tally, Protocol::Grpc, grpc_client()).await else {
            continue;
        };
        for _ in 0..10 {
            if Instant::now() >= stop_at {
                break;
            }
            if let Err(err) = grpc_stream(&mut client, &tally, stop_at).await {
                tally.fail(Protocol::Grpc, err);
            }
        }
    }
}

/// One TCP connection: [`TCP_EXCHANGES`] round trips of 64 bytes, each one operation.
async fn tcp_connection(tally: &Tally, stop_at: Instant) -> Result<(), String> {
    let mut stream = bounded("connect", async {
        tokio::net::TcpStream::connect(egress(TCP_PORT))
            .await
            .map_err(|e| format!("connect: {e}"))
    })
    .await?;
    for index in 0..TCP_EXCHANGES {
        if Instant::now() >= stop_at {
            break;
        }
        let sent = [b'a' + (index % 26) as u8; 64];
        let mut received = [0u8; 64];
        bounded("echo", async {
            stream
                .write_all(&sent)
                .await
                .map_err(|e| format!("write: {e}"))?;
            stream
                .read_exact(&mut received)
                .await
                .map_err(|e| format!("read: {e}"))?;
            Ok(())
        })
        .await?;
        if received != sent {
            return Err("echo differs".to_string());
        }
        tally.pass(Protocol::Tcp);
        tokio::time::sleep(PACE).await;
    }
    stream
        .shutdown()
        .await
        .map_err(|e| format!("shutdown: {e}"))
}

async fn tcp(tally: Arc<Tally>, stop_at: Instant) {
    while Instant::now() < stop_at {
        if let Err(err) = tcp_connection(&tally, stop_at).await {
            tally.fail(Protocol::Tcp, err);
            tokio::time::sleep(PACE).await;
        }
    }
}

/// Two workers per protocol until `stop_at`.
pub fn spawn_all(tally: Arc<Tally>, stop_at: Instant) -> Vec<JoinHandle<()>> {
    let mut workers = Vec::new();
    for _ in 0..2 {
        workers.push(tokio::spawn(http1(tally.clone(), stop_at)));
        workers.push(tokio::spawn(h2c(tally.clone(), stop_at)));
        workers.push(tokio::spawn(grpc(tally.clone(), stop_at)));
        workers.push(tokio::spawn(tcp(tally.clone(), stop_at)));
    }
    workers
}

/// Whether one operation of every protocol succeeds within `within`.
pub async fn wait_serving(within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let probe = Tally::default();
        let soon = Instant::now() + Duration::from_secs(2);
        let http = async {
            let mut sender = h1_connect().await?;
            check_response(
                &probe,
                sender
                    .send_request(get_request(hyper::Version::HTTP_11))
                    .await,
            )
            .await
        };
        let ok = bounded("probe", http).await.is_ok()
            && bounded("probe", async {
                let mut client = grpc_client().await?;
                grpc_stream_once(&mut client).await
            })
            .await
            .is_ok()
            && tcp_connection(&probe, soon).await.is_ok();
        if ok {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    false
}

async fn grpc_stream_once(
    client: &mut tonic::client::Grpc<tonic::transport::Channel>,
) -> Result<(), String> {
    let tally = Tally::default();
    // A stream cut short by its deadline still checks the echo of one message.
    grpc_stream(client, &tally, Instant::now() + PACE).await
}
