//! Counting gRPC messages in a body as it streams by, for Istio's
//! `istio_request_messages_total` / `istio_response_messages_total`: every message is a 5-byte
//! prefix (compressed flag, 4-byte big-endian length) and that many bytes, and messages split
//! across data frames however the peer likes. Only the prefixes are read; message bytes are
//! skipped by length, so the cost is per message, not per byte.

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GrpcFrames {
    /// Bytes of the current message still to skip.
    skip: u64,
    /// The prefix read so far (when `prefix_len > 0` or at a message boundary).
    prefix: [u8; 5],
    prefix_len: usize,
    /// Messages whose prefix has been read.
    pub messages: u64,
}

impl GrpcFrames {
    /// Reads one chunk of the body.
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(data.len());
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == 5 {
                self.messages += 1;
                self.skip = u64::from(u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]));
                self.prefix_len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(len: u32) -> Vec<u8> {
        let mut out = vec![0u8];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    #[test]
    fn counts_messages_however_they_are_split() {
        let mut body = message(3);
        body.extend(message(0));
        body.extend(message(300));
        for chunk in [1usize, 2, 5, 7, 64, 1000] {
            let mut frames = GrpcFrames::default();
            for piece in body.chunks(chunk) {
                frames.feed(piece);
            }
            assert_eq!(frames.messages, 3, "chunks of {chunk}");
        }
    }

    #[test]
    fn a_cut_prefix_is_not_a_message_yet() {
        let mut frames = GrpcFrames::default();
        frames.feed(&[0, 0, 0]);
        assert_eq!(frames.messages, 0);
        frames.feed(&[0, 1, 9]);
        assert_eq!(frames.messages, 1);
    }
}
