//! Decoding the requests of one ADS stream from the HTTP/2 body: gRPC length-prefixed
//! messages, uncompressed. A request's bytes are kept only until it is decoded; a buffer grown
//! for a large one (a SotW request naming a thousand clusters) is dropped, not kept for the
//! life of the stream.

use std::marker::PhantomData;

use bytes::{Buf, BytesMut};
use http_body_util::BodyExt;
use prost::Message;
use tonic::Status;
use tonic::body::Body;

/// gRPC message prefix: compressed flag and big-endian length.
const PREFIX: usize = 5;
/// A buffer larger than this is released once empty.
const KEEP_CAPACITY: usize = 8 * 1024;

/// The request messages of one stream.
pub(crate) struct Requests<M> {
    body: Body,
    pending: BytesMut,
    ended: bool,
    max_message: usize,
    _message: PhantomData<fn() -> M>,
}

impl<M: Message + Default> Requests<M> {
    pub fn new(body: Body, max_message: usize) -> Self {
        Self {
            body,
            pending: BytesMut::new(),
            ended: false,
            max_message,
            _message: PhantomData,
        }
    }

    /// The next request; `None` when the proxy closed its side cleanly.
    pub async fn message(&mut self) -> Result<Option<M>, Status> {
        loop {
            if let Some(message) = self.take()? {
                return Ok(Some(message));
            }
            if self.ended {
                return if self.pending.is_empty() {
                    Ok(None)
                } else {
                    Err(Status::invalid_argument(
                        "request stream ended inside a message",
                    ))
                };
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    // Trailers from a client carry nothing ADS uses.
                    if let Ok(data) = frame.into_data() {
                        self.pending.extend_from_slice(&data);
                    }
                }
                Some(Err(status)) => return Err(status),
                None => self.ended = true,
            }
        }
    }

    /// Decodes one whole message from the front of the buffer, if there is one.
    fn take(&mut self) -> Result<Option<M>, Status> {
        if self.pending.len() < PREFIX {
            return Ok(None);
        }
        if self.pending[0] != 0 {
            return Err(Status::unimplemented(
                "compressed ADS requests are not supported",
            ));
        }
        let len = u32::from_be_bytes([
            self.pending[1],
            self.pending[2],
            self.pending[3],
            self.pending[4],
        ]) as usize;
        if len > self.max_message {
            return Err(Status::resource_exhausted(format!(
                "request of {len} bytes is over the limit of {}",
                self.max_message
            )));
        }
        if self.pending.len() < PREFIX + len {
            self.pending.reserve(PREFIX + len - self.pending.len());
            return Ok(None);
        }
        let message = M::decode(&self.pending[PREFIX..PREFIX + len])
            .map_err(|e| Status::invalid_argument(format!("cannot decode the request: {e}")))?;
        self.pending.advance(PREFIX + len);
        if self.pending.capacity() > KEEP_CAPACITY && self.pending.len() <= KEEP_CAPACITY / 2 {
            // Move what follows (usually nothing) out of the large buffer and let it go.
            self.pending = BytesMut::from(&self.pending[..]);
        }
        Ok(Some(message))
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
    use http_body_util::StreamBody;

    use super::*;

    fn framed(message: &DiscoveryRequest) -> Vec<u8> {
        let body = message.encode_to_vec();
        let mut out = vec![0];
        out.extend_from_slice(&(body.len() as u32).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    fn body_of(chunks: Vec<Vec<u8>>) -> Body {
        let frames = chunks.into_iter().map(|c| {
            Ok::<_, std::convert::Infallible>(http_body::Frame::data(bytes::Bytes::from(c)))
        });
        Body::new(StreamBody::new(futures_util::stream::iter(frames)))
    }

    #[tokio::test]
    async fn messages_split_across_frames_and_packed_together_decode() {
        let big = DiscoveryRequest {
            resource_names: (0..2000)
                .map(|i| format!("outbound|9080||svc-{i}"))
                .collect(),
            ..Default::default()
        };
        let small = DiscoveryRequest {
            type_url: "t".into(),
            ..Default::default()
        };
        let mut bytes = framed(&big);
        bytes.extend(framed(&small));
        bytes.extend(framed(&small));
        // Awkward frame boundaries: inside the prefix, inside a message, across messages.
        let chunks = vec![
            bytes[..3].to_vec(),
            bytes[3..20_000].to_vec(),
            bytes[20_000..].to_vec(),
        ];
        let mut requests = Requests::<DiscoveryRequest>::new(body_of(chunks), 1 << 20);
        assert_eq!(requests.message().await.ok().flatten(), Some(big));
        assert!(
            requests.pending.capacity() < 20_000,
            "the big request's buffer went"
        );
        assert_eq!(requests.message().await.ok().flatten(), Some(small.clone()));
        assert_eq!(requests.message().await.ok().flatten(), Some(small));
        assert_eq!(requests.message().await.ok().flatten(), None);
    }

    #[tokio::test]
    async fn oversized_compressed_and_truncated_requests_are_errors() {
        let mut over = Requests::<DiscoveryRequest>::new(body_of(vec![vec![0, 0, 1, 0, 0]]), 1024);
        assert_eq!(
            over.message().await.err().map(|s| s.code()),
            Some(tonic::Code::ResourceExhausted)
        );
        let mut gz = Requests::<DiscoveryRequest>::new(body_of(vec![vec![1, 0, 0, 0, 0]]), 1024);
        assert_eq!(
            gz.message().await.err().map(|s| s.code()),
            Some(tonic::Code::Unimplemented)
        );
        let mut cut =
            Requests::<DiscoveryRequest>::new(body_of(vec![vec![0, 0, 0, 0, 9, 1]]), 1024);
        assert_eq!(
            cut.message().await.err().map(|s| s.code()),
            Some(tonic::Code::InvalidArgument)
        );
    }
}
