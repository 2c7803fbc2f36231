//! `x-envoy-peer-metadata`, which any client can send: base64 of a protobuf Struct decoded
//! into the peer's metric labels.

use http::HeaderValue;
use lateen_proxy::http::peer::decode;

/// Bytes as a header value (refused when not a valid header value, as hyper would).
pub fn peer_metadata(data: &[u8]) {
    if let Ok(value) = HeaderValue::from_bytes(data) {
        let _ = decode(&value);
    }
}
