//! ADS client for the data plane: connects to the control plane (plaintext HTTP/2, or TLS
//! with a bearer token: [`transport`]), subscribes, hands every response to a handler that
//! accepts (ACK) or rejects it (NACK with `error_detail`), reconnects with jittered
//! exponential backoff and resubscribes. Delta is preferred; a server answering
//! `Unimplemented` is spoken to in state-of-the-world instead.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryResponse, DiscoveryResponse};
use envoy_types::pb::google::rpc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::transport::Channel;
use tonic::{Code, Status, Streaming};
use tracing::{info, warn};

use crate::backoff::Backoff;

mod delta;
mod sotw;
pub mod transport;

pub use transport::{ClientCertificate, TlsSettings, TokenFile, Transport, TransportError};

/// gRPC `INVALID_ARGUMENT`, the code Envoy puts in a NACK's `error_detail`.
const NACK_CODE: i32 = 3;

/// Which ADS variant to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientMode {
    /// Delta, falling back to SotW when the server does not implement it.
    Delta,
    /// State of the world only.
    Sotw,
}

/// Client settings.
#[derive(Clone, Debug)]
pub struct AdsClientConfig {
    /// `HOST:PORT` or `http://HOST:PORT` of the control plane.
    pub address: String,
    /// Sent on the first request of every stream.
    pub node: Node,
    /// Preferred variant.
    pub mode: ClientMode,
    /// Type URL -> resource names; an empty set is a wildcard subscription (CDS, LDS).
    pub subscriptions: BTreeMap<String, BTreeSet<String>>,
    /// Reconnect delays.
    pub backoff: Backoff,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Plaintext or TLS.
    pub transport: Transport,
    /// Bearer token sent as `authorization` metadata on every stream.
    pub token: Option<TokenFile>,
    /// Client certificate presented on every TLS connection attempt (ignored in plaintext).
    pub client_certificate: Option<ClientCertificate>,
    /// Largest response accepted; a larger one ends the stream (RESOURCE_EXHAUSTED) and the
    /// client reconnects with backoff, keeping what it applied before.
    pub max_message_bytes: usize,
}

/// The default bound on one ADS response: ztunnel's 200 MiB, far above any mesh's full CDS
/// and small enough that a broken or hostile server cannot make the proxy buffer gigabytes.
pub const MAX_RESPONSE_BYTES: usize = 200 * 1024 * 1024;

impl AdsClientConfig {
    /// Defaults: delta mode, no subscriptions, 100 ms..30 s backoff, 5 s connect timeout,
    /// plaintext, no token, responses up to [`MAX_RESPONSE_BYTES`].
    pub fn new(address: impl Into<String>, node: Node) -> Self {
        Self {
            address: address.into(),
            node,
            mode: ClientMode::Delta,
            subscriptions: BTreeMap::new(),
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
            transport: Transport::Plaintext,
            token: None,
            client_certificate: None,
            max_message_bytes: MAX_RESPONSE_BYTES,
        }
    }

    /// Adds a subscription (no names: wildcard).
    pub fn subscribe(mut self, type_url: &str, names: &[&str]) -> Self {
        self.subscriptions.insert(
            type_url.to_string(),
            names.iter().map(|n| n.to_string()).collect(),
        );
        self
    }
}

/// A response as received, in the variant the stream speaks.
#[derive(Clone, Debug)]
pub enum AdsResponse {
    /// Full state of a type.
    Sotw(DiscoveryResponse),
    /// Changed and removed resources of a type.
    Delta(DeltaDiscoveryResponse),
}

impl AdsResponse {
    /// The resource type.
    pub fn type_url(&self) -> &str {
        match self {
            Self::Sotw(r) => &r.type_url,
            Self::Delta(r) => &r.type_url,
        }
    }
}

/// Receives responses; `Err(detail)` rejects one (the server gets a NACK with the detail and
/// the proxy is expected to keep its previous config of that type).
pub trait AdsHandler: Send + 'static {
    /// Applies or rejects one response.
    fn on_response(&mut self, response: &AdsResponse) -> Result<(), String>;
}

impl<F> AdsHandler for F
where
    F: FnMut(&AdsResponse) -> Result<(), String> + Send + 'static,
{
    fn on_response(&mut self, response: &AdsResponse) -> Result<(), String> {
        self(response)
    }
}

enum Control {
    Subscribe(String, BTreeSet<String>),
}

/// Handle to a running client; dropping it stops the client.
#[derive(Debug)]
pub struct AdsClient {
    control: mpsc::UnboundedSender<Control>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AdsClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AdsClient {
    /// Starts the client in a background task.
    pub fn spawn(config: AdsClientConfig, handler: impl AdsHandler) -> Self {
        let (control, control_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(config, Box::new(handler), control_rx));
        Self { control, task }
    }

    /// Replaces the names subscribed for a type (no names: wildcard) on the live stream and on
    /// every later reconnect.
    pub fn subscribe(&self, type_url: &str, names: impl IntoIterator<Item = String>) {
        let _ = self.control.send(Control::Subscribe(
            type_url.to_string(),
            names.into_iter().collect(),
        ));
    }
}

/// What survives reconnects.
pub(crate) struct ClientState {
    pub config: AdsClientConfig,
    handler: Box<dyn AdsHandler>,
    control: mpsc::UnboundedReceiver<Control>,
    /// SotW: last accepted `version_info` per type.
    pub versions: HashMap<String, String>,
    /// Delta: accepted resource name -> version per type.
    pub resources: HashMap<String, BTreeMap<String, String>>,
}

/// How a stream ended.
enum Ended {
    /// The server does not implement delta.
    Unimplemented,
    /// Closed or failed after receiving at least one response (reset the backoff).
    AfterData(String),
    /// Failed before any response.
    Failed(String),
    /// The handle was dropped.
    Stopped,
}

async fn run(
    config: AdsClientConfig,
    handler: Box<dyn AdsHandler>,
    control: mpsc::UnboundedReceiver<Control>,
) {
    let mut mode = config.mode;
    let mut backoff = config.backoff.clone();
    let mut state = ClientState {
        config,
        handler,
        control,
        versions: HashMap::new(),
        resources: HashMap::new(),
    };
    loop {
        let ended = match open_channel(&state.config).await {
            Ok((channel, token)) => match mode {
                ClientMode::Delta => {
                    run_stream::<delta::DeltaStream>(&mut state, channel, token).await
                }
                ClientMode::Sotw => {
                    run_stream::<sotw::SotwStream>(&mut state, channel, token).await
                }
            },
            Err(e) => Ended::Failed(e.to_string()),
        };
        match ended {
            Ended::Stopped => return,
            Ended::Unimplemented => {
                info!(address = %state.config.address, "delta ADS not implemented, using SotW");
                mode = ClientMode::Sotw;
                continue;
            }
            Ended::AfterData(reason) => {
                warn!(address = %state.config.address, %reason, "ADS stream ended");
                backoff.reset();
            }
            Ended::Failed(reason) => {
                warn!(address = %state.config.address, %reason, "ADS connection failed");
            }
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// `authorization` metadata of a stream.
type Authorization = Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>;

/// The root certificate and client certificate, then the token (a missing file costs no connection), then the
/// channel.
async fn open_channel(
    config: &AdsClientConfig,
) -> Result<(Channel, Authorization), TransportError> {
    let dialer = transport::Dialer::prepare(&config.transport, config.client_certificate.as_ref())?;
    let token = match &config.token {
        Some(token) => token.header()?,
        None => None,
    };
    let channel = dialer
        .connect(&config.address, config.connect_timeout)
        .await?;
    Ok((channel, token))
}

fn ended_by(status: &Status, got_data: bool) -> Ended {
    if status.code() == Code::Unimplemented && !got_data {
        Ended::Unimplemented
    } else if got_data {
        Ended::AfterData(transport::error_chain(status))
    } else {
        Ended::Failed(transport::error_chain(status))
    }
}

pub(crate) fn nack_status(detail: String) -> Option<rpc::Status> {
    Some(rpc::Status {
        code: NACK_CODE,
        message: detail,
        details: vec![],
    })
}

/// What differs between a SotW and a delta client stream; [`run_stream`] is shared.
pub(crate) trait ClientStream: Default {
    type Request: Send + 'static;
    type Response: Send + 'static;
    /// The first requests of a stream: one per subscribed type, resuming what is known.
    fn initial_requests(&mut self, state: &ClientState) -> Vec<Self::Request>;
    /// Opens the gRPC stream (the request carries the stream's metadata).
    fn open(
        client: AggregatedDiscoveryServiceClient<Channel>,
        requests: tonic::Request<UnboundedReceiverStream<Self::Request>>,
    ) -> impl Future<Output = Result<Streaming<Self::Response>, Status>> + Send;
    /// Wraps a response for the handler.
    fn wrap(response: Self::Response) -> AdsResponse;
    /// The ACK (`verdict` Ok) or NACK for `response`, after recording what was accepted.
    fn answer(
        &mut self,
        state: &mut ClientState,
        response: &AdsResponse,
        verdict: Result<(), String>,
    ) -> Self::Request;
    /// The request for a changed subscription (`old` names before the change).
    fn resubscribe(
        &mut self,
        state: &mut ClientState,
        type_url: &str,
        old: &BTreeSet<String>,
    ) -> Self::Request;
    /// Puts the node on a request (the first one of each stream).
    fn set_node(request: &mut Self::Request, node: Node);
}

async fn run_stream<S: ClientStream>(
    state: &mut ClientState,
    channel: Channel,
    authorization: Authorization,
) -> Ended {
    let mut stream = S::default();
    let (tx, rx) = mpsc::unbounded_channel::<S::Request>();
    let mut node = Some(state.config.node.clone());
    let mut send = |mut request: S::Request| {
        if let Some(node) = node.take() {
            S::set_node(&mut request, node);
        }
        let _ = tx.send(request);
    };
    for request in stream.initial_requests(state) {
        send(request);
    }
    let client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(state.config.max_message_bytes);
    let mut request = tonic::Request::new(UnboundedReceiverStream::new(rx));
    if let Some(value) = authorization {
        request.metadata_mut().insert("authorization", value);
    }
    let mut responses = match S::open(client, request).await {
        Ok(responses) => responses,
        Err(status) => return ended_by(&status, false),
    };
    let mut got_data = false;
    loop {
        tokio::select! {
            message = responses.message() => {
                let response = match message {
                    Ok(Some(r)) => S::wrap(r),
                    Ok(None) => return ended_by(&Status::unavailable("server closed the stream"), got_data),
                    Err(status) => return ended_by(&status, got_data),
                };
                got_data = true;
                let verdict = state.handler.on_response(&response);
                send(stream.answer(state, &response, verdict));
            }
            control = state.control.recv() => match control {
                None => return Ended::Stopped,
                Some(Control::Subscribe(type_url, names)) => {
                    let old = state.config.subscriptions.insert(type_url.clone(), names).unwrap_or_default();
                    send(stream.resubscribe(state, &type_url, &old));
                }
            },
        }
    }
}
