//! A real upstream server for the tests: HTTP/1.1 and h2c (hyper's auto builder), with
//! endpoints that echo, fail, delay, upgrade to WebSocket, and speak gRPC (tonic).

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, combinators::UnsyncBoxBody};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::net::TcpListener;

type Body = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Clone, PartialEq, prost::Message)]
pub struct EchoMessage {
    #[prost(string, tag = "1")]
    pub text: String,
}

pub struct Upstream {
    pub address: SocketAddr,
    /// Requests this upstream has answered.
    pub hits: Arc<AtomicUsize>,
    /// While set, every request is answered 503 (a sick host for outlier detection).
    pub failing: Arc<AtomicBool>,
    /// `(method, host or :authority, path, body length)` of every request, oldest first.
    pub seen: Arc<Mutex<Vec<Seen>>>,
    /// Connections open now and the most ever open at once.
    pub connections: Arc<ConnectionCount>,
    name: String,
}

/// Connections an upstream holds: open now, the peak, and every one it accepted.
#[derive(Debug, Default)]
pub struct ConnectionCount {
    pub open: AtomicUsize,
    pub peak: AtomicUsize,
    pub total: AtomicUsize,
}

impl ConnectionCount {
    fn opened(&self) {
        self.total.fetch_add(1, Ordering::SeqCst);
        let open = self.open.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(open, Ordering::SeqCst);
    }
}

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub host: String,
    pub path: String,
    pub body_len: usize,
}

struct State {
    name: String,
    hits: Arc<AtomicUsize>,
    flaky: AtomicUsize,
    failing: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let address = listener.local_addr().expect("upstream address");
        let hits = Arc::new(AtomicUsize::new(0));
        let failing = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = Arc::new(State {
            name: name.to_string(),
            hits: hits.clone(),
            flaky: AtomicUsize::new(0),
            failing: failing.clone(),
            seen: seen.clone(),
        });
        let connections = Arc::new(ConnectionCount::default());
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = state.clone();
                let counted = counted.clone();
                counted.opened();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = state.clone();
                        async move { Ok::<_, std::convert::Infallible>(route(state, request).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                    counted.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Upstream {
            address,
            hits,
            failing,
            seen,
            connections,
            name: name.to_string(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(
        Full::new(body.into())
            .map_err(|never| match never {})
            .boxed_unsync(),
    );
    *response.status_mut() = status;
    response
}

async fn route(state: Arc<State>, mut request: Request<Incoming>) -> Response<Body> {
    let (name, hits, flaky) = (&state.name, &state.hits, &state.flaky);
    hits.fetch_add(1, Ordering::SeqCst);
    let host = request
        .uri()
        .authority()
        .map(|authority| authority.to_string())
        .or_else(|| {
            request
                .headers()
                .get("host")
                .and_then(|host| host.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let mut seen = Seen {
        method: request.method().to_string(),
        host,
        path: request.uri().path().to_string(),
        body_len: 0,
    };
    if state.failing.load(Ordering::SeqCst) {
        state.seen.lock().expect("seen").push(seen);
        return full(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{name} is failing"),
        );
    }
    if request.method() == http::Method::POST && request.uri().path() == "/sink" {
        let body = request
            .into_body()
            .collect()
            .await
            .map(|body| body.to_bytes())
            .unwrap_or_default();
        seen.body_len = body.len();
        state.seen.lock().expect("seen").push(seen);
        return full(StatusCode::OK, format!("{name} got {}", body.len()));
    }
    state.seen.lock().expect("seen").push(seen);
    let is_grpc = request
        .headers()
        .get("content-type")
        .is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"));
    if is_grpc {
        return grpc(request).await;
    }
    let path = request.uri().path().to_string();
    if path == "/ws" {
        return websocket(&mut request);
    }
    if let Some(code) = path.strip_prefix("/status/") {
        let status = code
            .parse()
            .ok()
            .and_then(|code| StatusCode::from_u16(code).ok())
            .unwrap_or(StatusCode::BAD_REQUEST);
        return full(status, format!("{name} {status}"));
    }
    if let Some(millis) = path.strip_prefix("/delay/") {
        let millis: u64 = millis.parse().unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(millis)).await;
        return full(StatusCode::OK, format!("{name} slept {millis}ms"));
    }
    if let Some(millis) = path.strip_prefix("/stream/") {
        // The head at once, the body after a pause: a response that stays in flight.
        let millis: u64 = millis.parse().unwrap_or(0);
        let text = format!("{name} streamed after {millis}ms");
        let chunk = futures_util::stream::once(async move {
            tokio::time::sleep(Duration::from_millis(millis)).await;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
                Bytes::from(text),
            ))
        });
        return Response::new(http_body_util::StreamBody::new(chunk).boxed_unsync());
    }
    if let Some(spec) = path.strip_prefix("/ticks/") {
        // `/ticks/COUNT/MILLIS`: COUNT small chunks MILLIS apart, for bodies that must not be
        // held back.
        let mut parts = spec.split('/').map(|part| part.parse::<u64>().unwrap_or(0));
        let (count, millis) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        let ticks = futures_util::stream::unfold(0, move |tick| async move {
            if tick >= count {
                return None;
            }
            if tick > 0 {
                tokio::time::sleep(Duration::from_millis(millis)).await;
            }
            let frame = hyper::body::Frame::data(Bytes::from(format!("tick {tick}\n")));
            Some((
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(frame),
                tick + 1,
            ))
        });
        return Response::new(http_body_util::StreamBody::new(ticks).boxed_unsync());
    }
    if let Some(count) = path.strip_prefix("/pattern/") {
        // `/pattern/N`: N bytes of [`pattern_byte`], chunked, in chunks of uneven sizes.
        let total: usize = count.parse().unwrap_or(0);
        let sizes = [1000usize, 7000, 65536, 4096, 300_000, 17];
        let chunks =
            futures_util::stream::unfold((0usize, 0usize), move |(sent, turn)| async move {
                if sent >= total {
                    return None;
                }
                let len = sizes[turn % sizes.len()].min(total - sent);
                let chunk: Vec<u8> = (sent..sent + len).map(pattern_byte).collect();
                let frame = hyper::body::Frame::data(Bytes::from(chunk));
                Some((
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(frame),
                    (sent + len, turn + 1),
                ))
            });
        return Response::new(http_body_util::StreamBody::new(chunks).boxed_unsync());
    }
    if path == "/flaky" {
        // Fails the first request of every two with 503.
        if flaky.fetch_add(1, Ordering::SeqCst) % 2 == 0 {
            return full(StatusCode::SERVICE_UNAVAILABLE, format!("{name} flaked"));
        }
        return full(StatusCode::OK, format!("{name} recovered"));
    }
    if let Some(count) = path.strip_prefix("/bytes/") {
        let count: usize = count.parse().unwrap_or(0);
        return full(StatusCode::OK, vec![b'x'; count]);
    }
    // Echo: what the upstream saw, as JSON.
    let method = request.method().to_string();
    let version = format!("{:?}", request.version());
    let uri = request.uri().to_string();
    let headers = request.headers().clone();
    let (body, trailers) = match request.into_body().collect().await {
        Ok(collected) => {
            let trailers = collected.trailers().map(text_map).unwrap_or_default();
            (collected.to_bytes(), trailers)
        }
        Err(_) => Default::default(),
    };
    let echo = serde_json::json!({
        "upstream": name,
        "method": method,
        "version": version,
        "uri": uri,
        "headers": text_map(&headers),
        "body_len": body.len(),
        "trailers": trailers,
    });
    let mut response = full(StatusCode::OK, echo.to_string());
    response.headers_mut().insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Headers or trailers as a JSON object of their text values.
fn text_map(headers: &http::HeaderMap) -> serde_json::Map<String, serde_json::Value> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.to_string(),
                serde_json::Value::from(value.to_str().unwrap_or("<binary>")),
            )
        })
        .collect()
}

fn websocket(request: &mut Request<Incoming>) -> Response<Body> {
    let Some(key) = request.headers().get("sec-websocket-key").cloned() else {
        return full(StatusCode::BAD_REQUEST, "not a websocket request");
    };
    let upgrade = hyper::upgrade::on(request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() {
                break;
            }
            if socket.send(message).await.is_err() {
                break;
            }
        }
    });
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let mut response = full(StatusCode::SWITCHING_PROTOCOLS, Bytes::new());
    let headers = response.headers_mut();
    headers.insert("connection", http::HeaderValue::from_static("upgrade"));
    headers.insert("upgrade", http::HeaderValue::from_static("websocket"));
    headers.insert(
        "sec-websocket-accept",
        http::HeaderValue::from_str(&accept).expect("accept key"),
    );
    response
}

#[derive(Clone)]
struct UnaryEcho;

impl tonic::server::UnaryService<EchoMessage> for UnaryEcho {
    type Response = EchoMessage;
    type Future = std::future::Ready<Result<tonic::Response<EchoMessage>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<EchoMessage>) -> Self::Future {
        let text = request.into_inner().text;
        if text == "fail" {
            return std::future::ready(Err(tonic::Status::permission_denied("asked to fail")));
        }
        std::future::ready(Ok(tonic::Response::new(EchoMessage {
            text: format!("echo: {text}"),
        })))
    }
}

#[derive(Clone)]
struct BidiEcho;

impl tonic::server::StreamingService<EchoMessage> for BidiEcho {
    type Response = EchoMessage;
    type ResponseStream = std::pin::Pin<
        Box<dyn futures_util::Stream<Item = Result<EchoMessage, tonic::Status>> + Send>,
    >;
    type Future = std::future::Ready<Result<tonic::Response<Self::ResponseStream>, tonic::Status>>;

    fn call(&mut self, request: tonic::Request<tonic::Streaming<EchoMessage>>) -> Self::Future {
        let stream = request.into_inner().map(|message| {
            message.map(|message| EchoMessage {
                text: format!("echo: {}", message.text),
            })
        });
        std::future::ready(Ok(tonic::Response::new(Box::pin(stream))))
    }
}

async fn grpc(request: Request<Incoming>) -> Response<Body> {
    let codec = tonic_prost::ProstCodec::<EchoMessage, EchoMessage>::default();
    let mut grpc = tonic::server::Grpc::new(codec);
    let response = match request.uri().path() {
        "/test.Echo/Unary" => grpc.unary(UnaryEcho, request).await,
        "/test.Echo/Bidi" => grpc.streaming(BidiEcho, request).await,
        _ => return full(StatusCode::NOT_FOUND, "no such method"),
    };
    response.map(|body| {
        body.map_err(|err| Box::new(err) as Box<dyn std::error::Error + Send + Sync>)
            .boxed_unsync()
    })
}

/// An upstream that answers every request head it reads with the same raw bytes (e.g. a 101
/// no client asked for), and keeps everything it received, to show what reached it.
pub struct RawUpstream {
    pub address: SocketAddr,
    pub received: Arc<Mutex<Vec<u8>>>,
}

impl RawUpstream {
    pub async fn start(answer: &'static [u8]) -> RawUpstream {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind raw upstream");
        let address = listener.local_addr().expect("raw upstream address");
        let received = Arc::new(Mutex::new(Vec::new()));
        let all = received.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let all = all.clone();
                tokio::spawn(async move {
                    let mut buffer = [0u8; 4096];
                    let mut head = Vec::new();
                    for _ in 0..1000 {
                        let Ok(n) = stream.read(&mut buffer).await else {
                            return;
                        };
                        if n == 0 {
                            return;
                        }
                        all.lock()
                            .expect("received")
                            .extend_from_slice(&buffer[..n]);
                        head.extend_from_slice(&buffer[..n]);
                        while let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                            head.drain(..end + 4);
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        RawUpstream { address, received }
    }

    /// What reached this upstream so far, as text.
    pub fn received_text(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().expect("received")).into_owned()
    }
}

/// The byte at `offset` of a `/pattern/N` body.
pub fn pattern_byte(offset: usize) -> u8 {
    (offset % 251) as u8
}
