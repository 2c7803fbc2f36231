//! A TCP relay a test puts between two peers to read what crosses the wire: every byte the
//! client side sends is kept, so a test can assert it was TLS (a ClientHello, no plaintext).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most client bytes kept per relay (the rest is still relayed).
const MAX_KEPT: usize = 1 << 20;

pub struct Relay {
    /// Where clients connect.
    pub address: SocketAddr,
    /// Client-to-server bytes of each connection, in accept order.
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Relay {
    /// Relays connections on a new loopback port to `target`.
    pub async fn start(target: SocketAddr) -> std::io::Result<Relay> {
        Relay::start_on(([127, 0, 0, 1], 0).into(), target).await
    }

    /// Relays connections on `bind` (a loopback address, port 0 for any) to `target`: a tap
    /// standing where a control plane says an endpoint is.
    pub async fn start_on(bind: SocketAddr, target: SocketAddr) -> std::io::Result<Relay> {
        let listener = TcpListener::bind(bind).await?;
        let address = listener.local_addr()?;
        let sent = Arc::new(Mutex::new(Vec::new()));
        let kept = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let index = {
                    let mut all = kept.lock().unwrap_or_else(|p| p.into_inner());
                    all.push(Vec::new());
                    all.len() - 1
                };
                tokio::spawn(relay_one(client, target, kept.clone(), index));
            }
        });
        Ok(Relay {
            address,
            sent,
            task,
        })
    }

    /// What clients sent, per connection.
    pub fn client_bytes(&self) -> Vec<Vec<u8>> {
        self.sent.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay_one(
    client: TcpStream,
    target: SocketAddr,
    kept: Arc<Mutex<Vec<Vec<u8>>>>,
    index: usize,
) {
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            {
                let mut all = kept.lock().unwrap_or_else(|p| p.into_inner());
                let connection = &mut all[index];
                let room = MAX_KEPT.saturating_sub(connection.len()).min(read);
                connection.extend_from_slice(&buffer[..room]);
            }
            if server_write.write_all(&buffer[..read]).await.is_err() {
                break;
            }
        }
        let _ = server_write.shutdown().await;
    };
    let downstream = async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::join!(upstream, downstream);
}

/// True when `bytes` open with a TLS handshake record holding a ClientHello.
pub fn is_client_hello(bytes: &[u8]) -> bool {
    bytes.len() > 5 && bytes[0] == 0x16 && bytes[1] == 0x03 && bytes[5] == 0x01
}
