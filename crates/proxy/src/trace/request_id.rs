//! The sampling decision as Envoy's connection manager makes it, so that a trace crossing
//! Envoy sidecars and lateen-proxy sidecars is sampled whole. Envoy keeps its decision in the
//! `x-request-id` UUID (the version nibble, character 14: `9` sampled, `a` forced by the
//! service, `b` forced by the client, anything else not traced), which applications
//! propagate with the trace headers. A request whose id says "not traced" is sampled at
//! `random_sampling` and its id marked `9`; a request that carries a parent context is
//! traced only when both the id and the parent's `sampled` flag say so (Envoy 1.40 with
//! istiod's OpenTelemetry config: a sampled `traceparent` alone does not make it trace, nor
//! does a sampled id under an unsampled `traceparent`).

use http::HeaderMap;
use http::header::{HeaderName, HeaderValue};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The length of a UUID in its text form; other ids carry no decision.
const UUID_LEN: usize = 36;
/// Where Envoy writes the trace reason (the UUID's version nibble).
const REASON_AT: usize = 14;
const SAMPLED: u8 = b'9';
const SERVICE_FORCED: u8 = b'a';
const CLIENT_FORCED: u8 = b'b';

/// Whether the request's `x-request-id` says it is traced.
fn id_says_traced(headers: &HeaderMap) -> bool {
    headers
        .get(&X_REQUEST_ID)
        .map(HeaderValue::as_bytes)
        .filter(|id| id.len() == UUID_LEN)
        .is_some_and(|id| matches!(id[REASON_AT], SAMPLED | SERVICE_FORCED | CLIENT_FORCED))
}

/// Marks a UUID `x-request-id` as sampled (Envoy's `setTraceReason(Sampling)`); other ids
/// are left as they are.
fn mark_sampled(headers: &mut HeaderMap) {
    let Some(mut id) = headers
        .get(&X_REQUEST_ID)
        .map(|value| value.as_bytes().to_vec())
        .filter(|id| id.len() == UUID_LEN)
    else {
        return;
    };
    id[REASON_AT] = SAMPLED;
    if let Ok(value) = HeaderValue::from_bytes(&id) {
        headers.insert(X_REQUEST_ID.clone(), value);
    }
}

/// Decides whether this proxy traces the request: the id's decision, else `sampling` (a
/// fraction, against `draw` in 0..1) recorded in the id; then the parent's flag, if the
/// request has a parent context. Adds an `x-request-id` first when the request has none.
pub fn decide(
    headers: &mut HeaderMap,
    parent_sampled: Option<bool>,
    sampling: f64,
    draw: impl FnOnce() -> f64,
) -> bool {
    crate::http::headers::ensure_request_id(headers);
    let mut traced = id_says_traced(headers);
    if !traced && draw() < sampling {
        traced = true;
        mark_sampled(headers);
    }
    traced && parent_sampled.unwrap_or(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_id(id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(X_REQUEST_ID.clone(), HeaderValue::from_str(id).expect("id"));
        headers
    }

    fn id(headers: &HeaderMap) -> &str {
        headers[&X_REQUEST_ID].to_str().expect("text")
    }

    #[test]
    fn the_id_carries_the_decision_to_the_next_hop() {
        // Not traced yet, chosen by the random draw: marked.
        let mut headers = with_id("0f3c39a2-5b1e-4c7d-8a1b-2c3d4e5f6a7b");
        assert!(decide(&mut headers, None, 0.5, || 0.1));
        assert_eq!(id(&headers), "0f3c39a2-5b1e-9c7d-8a1b-2c3d4e5f6a7b");
        // The next hop follows the mark whatever its own percentage.
        assert!(decide(&mut headers, Some(true), 0.0, || 0.99));
        // Not chosen: left unmarked.
        let mut headers = with_id("0f3c39a2-5b1e-4c7d-8a1b-2c3d4e5f6a7b");
        assert!(!decide(&mut headers, None, 0.5, || 0.6));
        assert_eq!(id(&headers), "0f3c39a2-5b1e-4c7d-8a1b-2c3d4e5f6a7b");
        // Forced by the service or the client.
        for forced in ['a', 'b'] {
            let mut headers = with_id(&format!("0f3c39a2-5b1e-{forced}c7d-8a1b-2c3d4e5f6a7b"));
            assert!(decide(&mut headers, None, 0.0, || 0.99));
        }
    }

    #[test]
    fn a_parent_context_must_agree() {
        let mut headers = with_id("0f3c39a2-5b1e-9c7d-8a1b-2c3d4e5f6a7b");
        assert!(!decide(&mut headers, Some(false), 1.0, || 0.0));
        // A sampled parent alone does not trace a request the id and the draw refuse.
        let mut headers = with_id("0f3c39a2-5b1e-4c7d-8a1b-2c3d4e5f6a7b");
        assert!(!decide(&mut headers, Some(true), 0.0, || 0.0));
    }

    #[test]
    fn a_missing_id_is_added_and_other_ids_are_kept() {
        let mut headers = HeaderMap::new();
        assert!(decide(&mut headers, None, 1.0, || 0.0));
        assert_eq!(id(&headers).as_bytes()[REASON_AT], SAMPLED);
        let mut headers = with_id("my-own-request-id");
        assert!(decide(&mut headers, None, 1.0, || 0.0));
        assert_eq!(id(&headers), "my-own-request-id");
    }
}
