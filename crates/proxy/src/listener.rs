//! From an accepted socket to a protocol handler: capture dispatch by original destination,
//! protocol detection (or the listener's declared protocol), then HTTP or opaque TCP.

use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpStream;

use crate::config::model::{Direction, ListenerProtocol};
use crate::config::snapshot::ClusterRt;
use crate::http::server::{self, ActiveRequests, HttpVersion};
use crate::http::service::ConnContext;
use crate::metrics::ProxyStats;
use crate::net::detect::{Detected, detect};
use crate::net::rewind::Rewind;
use crate::tls::inbound::{Accepted, Terminated};
use crate::worker::WorkerContext;

/// Handles one accepted connection on the listener named `listener_name`; `_slot` counts it
/// against the global downstream cap until it ends.
pub async fn handle_connection(
    stream: TcpStream,
    peer: SocketAddr,
    listener_name: Arc<str>,
    worker: Arc<WorkerContext>,
    _slot: crate::overload::DownstreamSlot,
) {
    let shared = &worker.shared;
    let snapshot = shared.config.load();
    let Some(accepted_on) = snapshot
        .listeners
        .iter()
        .find(|listener| listener.name == listener_name)
        .cloned()
    else {
        return; // The listener was removed while this connection waited in the queue.
    };
    let _ = stream.set_nodelay(true);
    let stats = &shared.metrics.stats;
    ProxyStats::incr(&stats.downstream_cx_total);
    ProxyStats::incr(&stats.downstream_cx_active);
    let _active = ActiveConnection(shared.metrics.clone());

    let (listener, original_dst) = if accepted_on.is_capture {
        let destination = match shared.original_dst.original_dst(&stream) {
            Ok(destination) => destination,
            Err(err) => {
                tracing::debug!(listener = %accepted_on.name, %peer, "no original destination: {err}");
                return;
            }
        };
        // A connection made straight to the capture port would be passed to itself.
        if stream.local_addr().is_ok_and(|local| local == destination)
            || destination.port() == accepted_on.address.port()
        {
            tracing::debug!(listener = %accepted_on.name, %peer, "refusing connection addressed to the capture port itself");
            return;
        }
        match snapshot.listener_for_original_dst(destination, accepted_on.direction) {
            Some(target) => (target.clone(), Some(destination)),
            None => (accepted_on.clone(), Some(destination)),
        }
    } else {
        (accepted_on, None)
    };

    let local = stream.local_addr().ok();
    let accepted = crate::tls::inbound::accept(stream, &listener, &worker.shared).await;
    let mut connection = Connection {
        peer,
        local,
        sni: None,
        listener,
        original_dst,
        snapshot,
    };
    match accepted {
        Some(Accepted::Plain(stream)) => serve(stream, None, None, connection, &worker).await,
        Some(Accepted::Mtls(terminated)) => {
            let Terminated {
                stream,
                protocol_hint,
                peer,
                sni,
                ..
            } = *terminated;
            connection.sni = sni.map(Arc::from);
            serve(stream, protocol_hint, Some(peer), connection, &worker).await
        }
        None => {}
    }
}

/// What is known of a connection once its listener is chosen.
struct Connection {
    peer: SocketAddr,
    /// The address the connection was accepted on.
    local: Option<SocketAddr>,
    /// The server name the client asked for, on mutual TLS.
    sni: Option<Arc<str>>,
    listener: Arc<crate::config::snapshot::ListenerRt>,
    original_dst: Option<SocketAddr>,
    snapshot: Arc<crate::config::Snapshot>,
}

/// Serves a connection (plaintext, or the inside of a terminated mTLS one) by its protocol:
/// the listener's declared one, the ALPN `hint`, or detection of the first bytes.
async fn serve<S>(
    mut stream: S,
    hint: Option<Detected>,
    peer_identity: Option<Arc<lateen_identity::Identity>>,
    connection: Connection,
    worker: &Arc<WorkerContext>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Connection {
        peer,
        local,
        sni,
        listener,
        original_dst,
        snapshot,
    } = connection;
    let shared = &worker.shared;
    let stats = &shared.metrics.stats;
    // A declared protocol skips detection; `auto` and `http` read the first bytes.
    let (protocol, prefix) = match (listener.protocol, hint) {
        (ListenerProtocol::Tcp, _) => (Detected::Tcp, bytes::Bytes::new()),
        (ListenerProtocol::Http1, _) => (Detected::Http1, bytes::Bytes::new()),
        (ListenerProtocol::Http2, _) => (Detected::Http2, bytes::Bytes::new()),
        (ListenerProtocol::Auto | ListenerProtocol::Http, Some(hinted)) => {
            (hinted, bytes::Bytes::new())
        }
        (ListenerProtocol::Auto | ListenerProtocol::Http, None) => {
            match detect(&mut stream, listener.detect_timeout).await {
                Ok((Detected::Closed, _)) | Err(_) => return,
                // An `http` listener never falls back to TCP: hyper answers what is not HTTP.
                Ok((Detected::Tcp, prefix)) if listener.protocol == ListenerProtocol::Http => {
                    (Detected::Http1, prefix)
                }
                Ok((detected, prefix)) => {
                    if detected == Detected::Tcp && prefix.is_empty() {
                        ProxyStats::incr(&stats.protocol_detect_timeout);
                    }
                    (detected, prefix)
                }
            }
        }
    };
    let authz = crate::authz::ConnAuthz {
        destination: original_dst.or(local).unwrap_or(listener.address),
        // The peer's certificate identity (`spiffe://…`) on mutual TLS; none on plaintext,
        // so principal and namespace rules do not match, as in Envoy.
        peer_principal: peer_identity
            .as_ref()
            .map(|identity| Arc::from(identity.to_string())),
        sni,
    };
    let io = Rewind::new(prefix, stream);

    let passthrough = original_dst.map(|destination| {
        Arc::new(ClusterRt::passthrough(
            passthrough_name(listener.direction),
            destination,
            passthrough_source(listener.direction, destination),
            snapshot.local.clone(),
        ))
    });
    match protocol {
        Detected::Http1 | Detected::Http2 => {
            let version = if protocol == Detected::Http2 {
                HttpVersion::Http2
            } else {
                HttpVersion::Http1
            };
            let ctx = Arc::new(ConnContext {
                current: arc_swap::ArcSwap::from_pointee(crate::http::service::Current {
                    snapshot: snapshot.clone(),
                    listener: listener.clone(),
                }),
                config: shared.config.clone(),
                peers: Default::default(),
                peer,
                authz,
                original_dst,
                passthrough,
                pool: worker.pool.clone(),
                metrics: shared.metrics.clone(),
                active: Arc::new(ActiveRequests::new()),
                security: crate::tls::ConnSecurity::new(peer_identity, shared.mesh_tls.as_deref()),
            });
            server::serve(io, version, ctx, shared.drain_watch.clone()).await;
        }
        Detected::Tcp | Detected::Closed => {
            if !listener.tcp_authz.is_empty() && !listener.tcp_authz.allows(peer.ip(), &authz) {
                tracing::debug!(listener = %listener.name, %peer, "RBAC: connection denied; closing");
                return;
            }
            let cluster = listener.tcp_cluster.clone().or(passthrough);
            let security = crate::tls::ConnSecurity::new(peer_identity, shared.mesh_tls.as_deref());
            match cluster {
                Some(cluster) => {
                    let log =
                        crate::access_log::TcpLog::begin(&listener, &cluster, peer, original_dst);
                    let outcome = crate::tcp::proxy(
                        io,
                        &cluster,
                        &snapshot,
                        &listener,
                        &shared.metrics,
                        &worker.pool,
                        &security,
                    )
                    .await;
                    if let Some(log) = log {
                        log.finish(&outcome);
                    }
                }
                None => tracing::debug!(listener = %listener.name, %peer, "no TCP route; closing"),
            }
        }
    }
}

fn passthrough_name(direction: Direction) -> &'static str {
    match direction {
        Direction::Outbound => "PassthroughCluster",
        Direction::Inbound => "InboundPassthroughCluster",
    }
}

/// Inbound passthrough connects from 127.0.0.6 (`::6`), which Istio's capture rules let
/// through, so the proxy's connection to its own pod address is not captured again.
fn passthrough_source(direction: Direction, destination: SocketAddr) -> Option<std::net::IpAddr> {
    match (direction, destination) {
        (Direction::Outbound, _) => None,
        (Direction::Inbound, SocketAddr::V4(_)) => {
            Some(std::net::Ipv4Addr::new(127, 0, 0, 6).into())
        }
        (Direction::Inbound, SocketAddr::V6(_)) => {
            Some(std::net::Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 6).into())
        }
    }
}

fn is_transient_accept_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::Interrupted
    )
}

/// The first pause after an accept error (out of descriptors, EMFILE/ENFILE, or any other
/// lasting one); it doubles up to [`MAX_ACCEPT_BACKOFF`] while accepts keep failing.
const FIRST_ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_millis(10);
const MAX_ACCEPT_BACKOFF: std::time::Duration = std::time::Duration::from_secs(1);

/// Accept failures in a row: logged once when a burst starts and once when it ends, never
/// per failure, and paced by a growing pause instead of a busy loop.
#[derive(Default)]
struct AcceptBackoff {
    failures: u64,
    pause: std::time::Duration,
}

impl AcceptBackoff {
    fn failed(&mut self, listener: &str, err: &std::io::Error) -> std::time::Duration {
        if self.failures == 0 {
            tracing::warn!(
                listener,
                "accept failed: {err}; backing off (logged once until accepting works again)"
            );
            self.pause = FIRST_ACCEPT_BACKOFF;
        } else {
            self.pause = (self.pause * 2).min(MAX_ACCEPT_BACKOFF);
        }
        self.failures += 1;
        self.pause
    }

    fn succeeded(&mut self, listener: &str) {
        if self.failures > 0 {
            tracing::info!(
                listener,
                failures = self.failures,
                "accepting again after failed accepts"
            );
            self.failures = 0;
        }
    }
}

/// Accepts connections until draining starts. Errors never end the loop: a transient one
/// is skipped, and running out of file descriptors backs off (see [`AcceptBackoff`]). A
/// connection beyond the global downstream cap is closed at once and counted.
pub async fn accept_loop(
    listener: tokio::net::TcpListener,
    listener_name: Arc<str>,
    worker: Arc<WorkerContext>,
) {
    let mut drain = worker.shared.drain_watch.clone();
    let mut backoff = AcceptBackoff::default();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff.succeeded(&listener_name);
                    let Some(slot) = worker.shared.downstream.admit() else {
                        ProxyStats::incr(&worker.shared.metrics.stats.downstream_global_cx_overflow);
                        tracing::debug!(listener = %listener_name, %peer, "global downstream connection limit reached; closing");
                        continue;
                    };
                    tokio::spawn(handle_connection(stream, peer, listener_name.clone(), worker.clone(), slot));
                }
                Err(err) if is_transient_accept_error(&err) => continue,
                Err(err) => {
                    let pause = backoff.failed(&listener_name, &err);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = drain.signaled() => return,
                    }
                }
            },
            _ = drain.signaled() => return,
        }
    }
}

struct ActiveConnection(Arc<crate::metrics::Metrics>);

impl Drop for ActiveConnection {
    fn drop(&mut self) {
        ProxyStats::decr(&self.0.stats.downstream_cx_active);
    }
}

#[cfg(test)]
mod tests {
    use super::{AcceptBackoff, FIRST_ACCEPT_BACKOFF, MAX_ACCEPT_BACKOFF};
    use std::time::Duration;

    fn emfile() -> std::io::Error {
        std::io::Error::from_raw_os_error(24) // EMFILE
    }

    #[test]
    fn accept_failures_pause_longer_each_time_up_to_the_cap_and_reset_on_success() {
        let mut backoff = AcceptBackoff::default();
        let pauses: Vec<Duration> = (0..10).map(|_| backoff.failed("l", &emfile())).collect();
        let millis: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(
            millis,
            [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000],
            "doubling from {FIRST_ACCEPT_BACKOFF:?} up to {MAX_ACCEPT_BACKOFF:?}"
        );
        assert_eq!(backoff.failures, 10);
        // Ten failures in a row cost at most about four seconds of pauses, and no more than
        // one accept attempt a second once the pause reaches its cap: never a busy loop.
        assert!(pauses.iter().all(|pause| *pause >= FIRST_ACCEPT_BACKOFF));
        backoff.succeeded("l");
        assert_eq!(backoff.failures, 0);
        assert_eq!(backoff.failed("l", &emfile()), FIRST_ACCEPT_BACKOFF);
    }

    #[test]
    fn only_lasting_accept_errors_back_off() {
        for kind in [
            std::io::ErrorKind::ConnectionAborted,
            std::io::ErrorKind::ConnectionReset,
            std::io::ErrorKind::Interrupted,
        ] {
            assert!(super::is_transient_accept_error(&kind.into()), "{kind:?}");
        }
        assert!(!super::is_transient_accept_error(&emfile()));
        // ENFILE: the whole system is out of descriptors.
        assert!(!super::is_transient_accept_error(
            &std::io::Error::from_raw_os_error(23)
        ));
    }
}
