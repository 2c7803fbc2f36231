//! A tiny HTTP/1.1 server on 127.0.0.1 that answers fixed bodies by path (404 otherwise) and
//! counts the requests of each path: a JWKS endpoint (`jwksUri`) or any document a proxy
//! fetches, whose fetches a test wants to count.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The most request-head bytes read before the server answers 400.
const MAX_HEAD: usize = 16 * 1024;

pub struct StaticServer {
    pub port: u16,
    hits: Arc<Mutex<HashMap<String, usize>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for StaticServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl StaticServer {
    /// Serves `routes` (path → body, sent as `application/json`) until dropped.
    pub async fn start(routes: Vec<(String, String)>) -> std::io::Result<StaticServer> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let routes: Arc<HashMap<String, String>> = Arc::new(routes.into_iter().collect());
        let counted = hits.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, routes.clone(), counted.clone()));
            }
        });
        Ok(StaticServer { port, hits, task })
    }

    /// How many requests asked for `path`.
    pub fn hits(&self, path: &str) -> usize {
        let hits = self.hits.lock().unwrap_or_else(|p| p.into_inner());
        hits.get(path).copied().unwrap_or(0)
    }
}

/// Answers the requests of one connection (keep-alive), each within 10 s.
async fn serve(
    mut socket: TcpStream,
    routes: Arc<HashMap<String, String>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
) {
    let mut buffer = Vec::new();
    loop {
        let head_end = loop {
            if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break end + 4;
            }
            if buffer.len() > MAX_HEAD {
                let _ = socket.write_all(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                return;
            }
            let mut chunk = [0u8; 4096];
            let read = tokio::time::timeout(Duration::from_secs(10), socket.read(&mut chunk)).await;
            match read {
                Ok(Ok(n)) if n > 0 => buffer.extend_from_slice(&chunk[..n]),
                _ => return,
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
        buffer.drain(..head_end);
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
        *hits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(path.clone())
            .or_default() += 1;
        let answer = match routes.get(&path) {
            Some(body) => format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            ),
            None => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_string(),
        };
        if socket.write_all(answer.as_bytes()).await.is_err() {
            return;
        }
    }
}
