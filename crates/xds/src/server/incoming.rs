//! Connections of the plaintext ADS port (issue #16 item 7): anyone can open one, so a
//! connection that sends nothing within [`FIRST_BYTES_TIMEOUT`] is closed instead of being held
//! for minutes. A proxy sends the HTTP/2 preface at once; keepalive pings
//! ([`super::ConnectionOptions`]) look after connections once they speak.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// How long a new connection may stay silent.
pub const FIRST_BYTES_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of descriptors), so the loop never spins.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The connections of `listener` that have sent their first bytes, for tonic's
/// `serve_with_incoming`; accepting stops when the server drops the stream.
pub fn speaking(listener: TcpListener) -> ReceiverStream<std::io::Result<TcpStream>> {
    let (tx, rx) = mpsc::channel(64);
    tokio::spawn(async move {
        let mut failing = false;
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let (stream, peer) = match accepted {
                Ok(accepted) => {
                    failing = false;
                    accepted
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "xDS accept failed; backing off");
                    }
                    failing = true;
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                match tokio::time::timeout(FIRST_BYTES_TIMEOUT, stream.peek(&mut first)).await {
                    Ok(Ok(n)) if n > 0 => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tracing::debug!(%peer, "xDS connection silent for {FIRST_BYTES_TIMEOUT:?}; closed");
                    }
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
