//! State and push planning shared by the SotW and delta streams: what each type is subscribed
//! to, what the proxy has, which response is waiting for an answer, and which types to push
//! now in an order that never leaves the proxy with a dangling reference.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use tokio::sync::mpsc;
use tonic::Status;
use tracing::{debug, warn};

use crate::server::node_limits;
use crate::server::registry::{NackRecord, ProxyNode, StreamMode, now_unix_ms};
use crate::server::requests::Requests;
use crate::server::subscriptions::Names;
use crate::server::{Connection, Shared};
use crate::snapshot::{ResourceMap, Snapshot, TypeResources, VersionedResource};
use crate::types::{
    ENDPOINT, defers_removal, is_wildcard_type, push_rank, short_name, waits_for_earlier_types,
};

/// A response that the proxy has not answered yet.
#[derive(Clone, Debug)]
pub(crate) struct Outstanding {
    pub sent_at: Instant,
    pub version: String,
    /// Snapshot time to measure push latency from, if this is the first push of that snapshot.
    pub latency_from: Option<Instant>,
}

/// How long an unanswered response holds back later types and further pushes of its own type.
/// Envoy answers every response; this only keeps a misbehaving client from freezing a stream.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(15);

/// Per type URL state of one stream.
#[derive(Debug, Default)]
pub(crate) struct TypeState {
    pub wildcard: bool,
    /// Subscribed names (shared with every stream subscribing to the same set).
    pub names: Names,
    /// What the proxy has been sent (delta: also what it told us it has); shared with the
    /// snapshot it came from, so remembering it costs no copy.
    pub sent: Arc<TypeResources>,
    /// At least one response was sent for this type on this stream.
    pub responded: bool,
    pub outstanding: Option<Outstanding>,
    pub last_nonce: String,
    /// Version of the last response the proxy acknowledged.
    pub acked_version: Option<String>,
    /// `set_at` of the snapshot whose push latency was last measured for this type.
    pub measured_snapshot: Option<Instant>,
    /// The last subscribed view and what it was computed from: planning runs on every
    /// request and every snapshot, and most of the time neither input changed.
    view_memo: Option<ViewMemo>,
}

#[derive(Debug)]
struct ViewMemo {
    all: Arc<TypeResources>,
    names: Names,
    wildcard: bool,
    view: Arc<TypeResources>,
}

impl TypeState {
    /// Whether a response of this type is still waiting for its answer.
    pub fn waiting(&self) -> bool {
        self.outstanding
            .as_ref()
            .is_some_and(|o| o.sent_at.elapsed() < ANSWER_TIMEOUT)
    }

    /// Whether a resource name is in this type's subscription.
    pub fn wants(&self, name: &str) -> bool {
        self.wildcard || self.names.contains(name)
    }
}

/// One type to push now: the full view the proxy should have.
#[derive(Debug)]
pub(crate) struct Planned {
    pub type_url: String,
    /// Every subscribed resource of the snapshot (plus clusters kept for make-before-break).
    pub view: Arc<TypeResources>,
    pub version: String,
}

/// The per-stream part both variants share.
pub(crate) struct StreamCore {
    pub shared: Arc<Shared>,
    pub connection_id: u64,
    pub node_id: String,
    pub types: BTreeMap<String, TypeState>,
}

impl StreamCore {
    /// Handles the ACK/NACK part of a request. Returns false when the nonce is stale (the
    /// request answers an older response and must be ignored).
    pub fn answer(
        &mut self,
        type_url: &str,
        nonce: &str,
        proxy_version: &str,
        error: Option<(i32, String)>,
    ) -> bool {
        let Some(state) = self.types.get_mut(type_url) else {
            return nonce.is_empty();
        };
        if nonce.is_empty() {
            return true;
        }
        if nonce != state.last_nonce {
            debug!(node = %self.node_id, r#type = short_name(type_url), nonce, "stale nonce ignored");
            return false;
        }
        let Some(out) = state.outstanding.take() else {
            return true;
        };
        let shared = &self.shared;
        match error {
            Some((code, detail)) => {
                shared.metrics.count_nack(type_url);
                warn!(node = %self.node_id, r#type = short_name(type_url), version = %out.version,
                    nonce, error_detail = %detail, "proxy rejected config (NACK)");
                let running = if proxy_version.is_empty() {
                    state.acked_version.clone().unwrap_or_default()
                } else {
                    proxy_version.to_string()
                };
                let nack = NackRecord {
                    version: running,
                    nonce: nonce.to_string(),
                    rejected_version: out.version,
                    error_code: code,
                    error_detail: detail,
                    at_unix_ms: now_unix_ms(),
                };
                shared
                    .registry
                    .with_type(self.connection_id, type_url, |r| {
                        r.awaiting_ack = false;
                        r.last_response_nacked = true;
                        r.last_nack = Some(nack.clone());
                    });
                if let Some(provider) = &shared.provider {
                    provider.on_nack(&self.node_id, type_url, &nack);
                }
            }
            None => {
                shared
                    .metrics
                    .acks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                state.acked_version = Some(out.version.clone());
                if let Some(from) = out.latency_from {
                    shared.metrics.push_latency.observe(from.elapsed());
                }
                shared
                    .registry
                    .with_type(self.connection_id, type_url, |r| {
                        r.awaiting_ack = false;
                        r.last_response_nacked = false;
                        r.acked_version = Some(out.version.clone());
                    });
            }
        }
        true
    }

    /// Decides which types to push now, in push order.
    pub fn plan(&mut self, snapshot: &Snapshot) -> Vec<Planned> {
        let mut order: Vec<String> = self.types.keys().cloned().collect();
        order.sort_by_key(|t| (push_rank(t), t.clone()));

        let mut views: Vec<(String, Arc<TypeResources>, bool)> = Vec::new();
        for type_url in &order {
            let Some(state) = self.types.get_mut(type_url) else {
                continue;
            };
            let view = memoized_view(snapshot.of_type(type_url), state);
            let desired = view.version().to_string();
            self.shared
                .registry
                .with_type(self.connection_id, type_url, |r| {
                    r.desired_version = Some(desired);
                });
            let changed = differs(&view, &state.sent) || (!state.responded && state.wildcard);
            views.push((type_url.clone(), view, changed));
        }

        // Make before break: clusters and endpoints removed from the snapshot stay until
        // listeners and routes are pushed and answered, so nothing points at a missing cluster.
        let endpoint_rank = push_rank(ENDPOINT);
        let later_busy = views.iter().any(|(t, _, changed)| {
            push_rank(t) > endpoint_rank
                && (*changed || self.types.get(t).is_some_and(TypeState::waiting))
        });

        let mut planned = Vec::new();
        let mut earlier_outstanding = false;
        for (type_url, mut view, _) in views {
            let Some(state) = self.types.get(&type_url) else {
                continue;
            };
            if defers_removal(&type_url) && later_busy {
                let kept: Vec<(&String, &VersionedResource)> = state
                    .sent
                    .map()
                    .iter()
                    .filter(|(name, _)| !view.map().contains_key(*name) && state.wants(name))
                    .collect();
                if !kept.is_empty() {
                    // Delta keeps a resource by not removing it; SotW resends its body (a
                    // delta placeholder has none and is never sent).
                    let mut with_kept = view.map().clone();
                    for (name, resource) in kept {
                        with_kept.insert(name.clone(), resource.clone());
                    }
                    view = Arc::new(TypeResources::new(with_kept));
                }
            }
            let changed = differs(&view, &state.sent) || (!state.responded && state.wildcard);
            let held = waits_for_earlier_types(&type_url) && earlier_outstanding;
            if changed && !held && !state.waiting() {
                let version = view.version().to_string();
                planned.push(Planned {
                    type_url: type_url.clone(),
                    view,
                    version,
                });
                earlier_outstanding = true;
            } else if state.waiting() || (changed && held) {
                earlier_outstanding = true;
            }
        }
        planned
    }

    /// Records that a response for `planned` was sent with `nonce`.
    pub fn mark_sent(&mut self, planned: &Planned, nonce: String, snapshot_set_at: Instant) {
        let state = self.types.entry(planned.type_url.clone()).or_default();
        state.sent = planned.view.clone();
        state.responded = true;
        state.last_nonce = nonce.clone();
        let latency_from =
            (state.measured_snapshot != Some(snapshot_set_at)).then_some(snapshot_set_at);
        state.measured_snapshot = Some(snapshot_set_at);
        state.outstanding = Some(Outstanding {
            sent_at: Instant::now(),
            version: planned.version.clone(),
            latency_from,
        });
        self.shared.metrics.count_push(&planned.type_url);
        if latency_from.is_some() {
            self.shared
                .metrics
                .observe_push_time(&planned.type_url, snapshot_set_at.elapsed());
        }
        self.shared
            .registry
            .with_type(self.connection_id, &planned.type_url, |r| {
                r.sent_version = Some(planned.version.clone());
                r.sent_nonce = Some(nonce);
                r.awaiting_ack = true;
                r.pushes += 1;
            });
    }

    /// When the oldest unanswered response stops holding pushes back (to re-plan then).
    pub fn answer_deadline(&self) -> Option<tokio::time::Instant> {
        self.types
            .values()
            .filter(|s| s.waiting())
            .filter_map(|s| s.outstanding.as_ref())
            .map(|o| tokio::time::Instant::from_std(o.sent_at + ANSWER_TIMEOUT))
            .min()
    }

    /// Updates a type's subscription from a request; creates the type state on first use.
    pub fn subscription(&mut self, type_url: &str) -> &mut TypeState {
        self.types.entry(type_url.to_string()).or_default()
    }
}

/// A stand-in for a resource the proxy says it has (delta `initial_resource_versions`): only
/// its name and version matter; it has no body and is never sent.
pub(crate) fn placeholder(version: String) -> VersionedResource {
    VersionedResource {
        resource: Default::default(),
        version,
    }
}

/// [`subscribed_view`], reusing the last result while its inputs are the same objects.
fn memoized_view(
    of_type: Option<&Arc<TypeResources>>,
    state: &mut TypeState,
) -> Arc<TypeResources> {
    let Some(all) = of_type else {
        return Arc::default();
    };
    if let Some(memo) = &state.view_memo
        && Arc::ptr_eq(&memo.all, all)
        && Arc::ptr_eq(&memo.names, &state.names)
        && memo.wildcard == state.wildcard
    {
        return memo.view.clone();
    }
    let view = subscribed_view(all, state);
    state.view_memo = Some(ViewMemo {
        all: all.clone(),
        names: state.names.clone(),
        wildcard: state.wildcard,
        view: view.clone(),
    });
    view
}

/// The resources of one type that a stream subscribes to. The common cases, a wildcard
/// subscription or one naming every resource of the type, share the snapshot's set.
/// Streams with the same (shared) subscription share the subset too.
fn subscribed_view(all: &Arc<TypeResources>, state: &TypeState) -> Arc<TypeResources> {
    if state.wildcard {
        return all.clone();
    }
    all.subset_for(&state.names, |all| {
        if all.map().keys().all(|name| state.names.contains(name)) {
            return all.clone();
        }
        let subscribed: ResourceMap = all
            .map()
            .iter()
            .filter(|(name, _)| state.names.contains(*name))
            .map(|(n, r)| (n.clone(), r.clone()))
            .collect();
        Arc::new(TypeResources::new(subscribed))
    })
}

/// Whether two entries of sorted resource maps are the same resource at the same version. A
/// packed resource is shared under its own name only, so one shared value needs no string
/// compared: on a push most of a thousand resources are shared with the previous snapshot.
pub(crate) fn same_entry(
    (vn, vr): (&String, &VersionedResource),
    (sn, sr): (&String, &VersionedResource),
) -> bool {
    vr.version == sr.version && (Arc::ptr_eq(&vr.resource, &sr.resource) || vn == sn)
}

fn differs(view: &Arc<TypeResources>, sent: &Arc<TypeResources>) -> bool {
    if Arc::ptr_eq(view, sent) {
        return false;
    }
    view.len() != sent.len()
        || view
            .map()
            .iter()
            .zip(sent.map().iter())
            .any(|(v, s)| !same_entry(v, s))
}

/// Whether a type with this subscription is a wildcard subscription (SotW and delta legacy
/// rule: a wildcard type with no names, or an explicit `*`).
pub(crate) fn initial_wildcard(type_url: &str, names: &[String]) -> bool {
    (is_wildcard_type(type_url) && names.is_empty()) || names.iter().any(|n| n == "*")
}

/// What differs between SotW and delta; the loop in [`run`] is shared.
pub(crate) trait Protocol {
    type Request: prost::Message + Default + Send + 'static;
    const MODE: StreamMode;
    fn node(request: &Self::Request) -> Option<&Node>;
    fn on_request(core: &mut StreamCore, request: Self::Request);
    /// Encodes the response for `planned` as one gRPC message, in pieces sent in order
    /// (called before the send is recorded).
    fn respond(core: &StreamCore, planned: &Planned, nonce: &str) -> Vec<Bytes>;
}

/// Where a stream's encoded responses go (or the status that ends it).
pub(crate) type ResponseTx = mpsc::Sender<Result<Bytes, Status>>;

/// One ADS stream: register on the first request, then alternate between handling requests and
/// pushing what the latest snapshot changed, until either side goes away.
pub(crate) async fn run<P: Protocol>(
    shared: Arc<Shared>,
    mut requests: Requests<P::Request>,
    tx: ResponseTx,
    identity: Option<super::peer::VerifiedIdentity>,
) {
    let first = match requests.message().await {
        Ok(Some(first)) => first,
        Ok(None) => return,
        Err(status) => return refuse(&tx, "", status).await,
    };
    let node = match P::node(&first) {
        Some(node) if !node.id.is_empty() => node,
        _ => {
            let status = Status::invalid_argument("the first request must carry node.id");
            return refuse(&tx, "", status).await;
        }
    };
    if let Err(status) = node_limits::check(node) {
        return refuse(&tx, &node.id, status).await;
    }
    let node = ProxyNode::from_proto(node);
    let conn = Connection::open(shared.clone(), node, P::MODE, identity);
    let mut watch = shared.cache.watch(&conn.node.id);
    let mut core = StreamCore {
        shared,
        connection_id: conn.id,
        node_id: conn.node.id.clone(),
        types: BTreeMap::new(),
    };
    P::on_request(&mut core, first);
    loop {
        let current = watch.borrow_and_update().clone();
        if let Some(snapshot) = current {
            for planned in core.plan(&snapshot.snapshot) {
                let nonce = core.shared.next_nonce();
                let pieces = P::respond(&core, &planned, &nonce);
                let size: usize = pieces.iter().map(Bytes::len).sum();
                core.shared
                    .metrics
                    .observe_config_size(&planned.type_url, size as u64);
                core.mark_sent(&planned, nonce, snapshot.set_at);
                for piece in pieces {
                    if tx.send(Ok(piece)).await.is_err() {
                        return;
                    }
                }
            }
        }
        tokio::select! {
            request = requests.message() => match request {
                Ok(Some(request)) => P::on_request(&mut core, request),
                Ok(None) => break,
                Err(status) => {
                    refuse(&tx, &core.node_id, status).await;
                    break;
                }
            },
            changed = watch.changed() => if changed.is_err() { break },
            () = sleep_until_some(core.answer_deadline()) => {
                warn!(node = %core.node_id, "proxy did not answer a response in time; pushing on");
            }
        }
    }
    drop(conn);
}

/// Ends a stream on a request that cannot be served: the proxy gets `status` in the trailers
/// and, when the fault is in what it sent (not a connection that went away), one log line.
async fn refuse(tx: &ResponseTx, node_id: &str, status: Status) {
    use tonic::Code;
    let node = node_limits::for_log(node_id);
    match status.code() {
        Code::InvalidArgument | Code::ResourceExhausted | Code::Unimplemented => {
            warn!(%node, code = ?status.code(), "ADS request refused, stream ended: {}", status.message());
        }
        _ => debug!(%node, %status, "stream ended"),
    }
    let _ = tx.send(Err(status)).await;
}

async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
