//! The filter chains Istio gives one inbound port (or the catch-all): chains told apart by
//! `transport_protocol` (`tls` with Istio's DownstreamTlsContext, `raw_buffer`) and
//! `application_protocols` (ALPN, for HTTP or TCP) become one lateen-proxy listener: its
//! PeerAuthentication mode from which transports have chains (TLS and plaintext: PERMISSIVE,
//! TLS only: STRICT, plaintext only: DISABLE), its HTTP settings from the HTTP chains and its
//! TCP cluster from the TCP chains (lateen-proxy then detects which one a connection speaks).
//! Chains of one kind must agree; a TLS chain without a transport socket (an app's own TLS
//! passed through) has no equivalent and is left out.

use lateen_xds::pb::envoy::config::listener::v3::FilterChain;

use super::listener::TranslatedListener;
use super::{Check, Rejection};
use crate::config::model;

/// Envoy's `transport_protocol` of a TLS connection (set by the TLS inspector).
const TRANSPORT_TLS: &str = "tls";
const TRANSPORT_RAW: &str = "raw_buffer";

/// Applies one chain (network filters only) to a listener.
pub(crate) type ApplyChain<'a> = dyn Fn(
        &mut model::Listener,
        &FilterChain,
        &str,
        &Check,
        &mut TranslatedListener,
    ) -> Result<(), Rejection>
    + 'a;

/// What the chains of one port became, before they are merged.
struct Applied {
    listener: model::Listener,
    out: TranslatedListener,
    path: String,
}

/// Merges `chains` into `listener`, adding what they refer to into `out`.
pub(crate) fn merge(
    listener: &mut model::Listener,
    chains: &[(String, &FilterChain)],
    check: &Check,
    out: &mut TranslatedListener,
    apply: &ApplyChain<'_>,
) -> Result<(), Rejection> {
    let (mut tls, mut plain) = (false, false);
    let (mut http, mut tcp): (Option<Applied>, Option<Applied>) = (None, None);
    for (path, chain) in chains {
        let transport = chain
            .filter_chain_match
            .as_ref()
            .map(|m| m.transport_protocol.as_str())
            .unwrap_or_default();
        let is_tls = match (transport, &chain.transport_socket) {
            (TRANSPORT_TLS, None) => continue,
            (TRANSPORT_TLS | "", Some(socket)) => {
                super::tls::downstream_socket(socket).map_err(|(field, reason)| {
                    check.reject(format!("{path}.transport_socket.{field}"), reason)
                })?;
                true
            }
            (TRANSPORT_RAW | "", None) => false,
            (TRANSPORT_RAW, Some(_)) => {
                return Err(check.reject(
                    format!("{path}.transport_socket"),
                    "a raw_buffer chain cannot have a TLS transport socket",
                ));
            }
            (other, _) => {
                return Err(check.reject(
                    format!("{path}.filter_chain_match.transport_protocol"),
                    format!("{other:?} is not supported (tls or raw_buffer)"),
                ));
            }
        };
        tls |= is_tls;
        plain |= !is_tls;
        let network_only = FilterChain {
            transport_socket: None,
            ..(*chain).clone()
        };
        let mut applied = Applied {
            listener: listener.clone(),
            out: TranslatedListener::default(),
            path: path.clone(),
        };
        apply(
            &mut applied.listener,
            &network_only,
            path,
            check,
            &mut applied.out,
        )?;
        let slot = if applied.listener.tcp_cluster.is_some() {
            &mut tcp
        } else {
            &mut http
        };
        match slot {
            None => *slot = Some(applied),
            Some(first) if first.listener == applied.listener && same_routes(first, &applied) => {}
            Some(first) => {
                return Err(check.reject(
                    path.clone(),
                    format!(
                        "differs from {} for the same port; lateen-proxy needs the chains of one kind (HTTP or TCP) to agree",
                        first.path
                    ),
                ));
            }
        }
    }
    let mode = match (tls, plain) {
        (true, true) => model::MtlsMode::Permissive,
        (true, false) => model::MtlsMode::Strict,
        _ => model::MtlsMode::Disable,
    };
    match (http, tcp) {
        (Some(http), tcp) => {
            *listener = http.listener;
            take(out, http.out);
            if let Some(tcp) = tcp {
                // Both kinds: detection decides per connection.
                listener.tcp_cluster = tcp.listener.tcp_cluster;
                listener.protocol = model::ListenerProtocol::Auto;
                take(out, tcp.out);
            }
        }
        (None, Some(tcp)) => {
            *listener = tcp.listener;
            take(out, tcp.out);
        }
        (None, None) => {
            return Err(check.reject(
                chains
                    .first()
                    .map(|(path, _)| path.clone())
                    .unwrap_or_default(),
                "no chain lateen-proxy can apply (TLS passthrough only)",
            ));
        }
    }
    listener.mtls = mode;
    Ok(())
}

fn same_routes(first: &Applied, next: &Applied) -> bool {
    first.out.inline_routes == next.out.inline_routes && first.out.rds == next.out.rds
}

fn take(out: &mut TranslatedListener, from: TranslatedListener) {
    out.inline_routes.extend(from.inline_routes);
    out.rds.extend(from.rds);
    out.clusters.extend(from.clusters);
}
