//! How a test decides where the API server's calls to `NAME.NAMESPACE.svc` land.
//!
//! kube-apiserver calls a webhook (or conversion webhook) configured with a `service:` reference
//! by looking the Service up and dialling its ClusterIP (`ResolveCluster` in k8s.io/apiserver
//! `pkg/util/proxy`), with TLS server name `NAME.NAMESPACE.svc`. There is no kube-proxy here and
//! the service range must never see traffic, so a hosts file could not help. But the webhook
//! client's transport honours `HTTPS_PROXY`, and through a proxy it sends
//! `CONNECT NAME.NAMESPACE.svc:PORT` *before* any resolution: the API server runs with
//! `HTTPS_PROXY` pointing here, and this proxy maps the name (set by `set_host`) to a loopback
//! address. `url:` webhooks to such names go the same way; loopback targets bypass the proxy
//! (`NO_PROXY`). An unknown name gets `502`, so the API server reports the webhook unreachable
//! exactly as it would for a Service without endpoints.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Where a name goes: the same port on another address, or an explicit address.
#[derive(Clone, Copy, Debug)]
enum Target {
    Host(IpAddr),
    Addr(SocketAddr),
}

type Routes = Arc<Mutex<HashMap<String, Target>>>;

/// The CONNECT proxy serving one cluster's API server; stops on drop.
pub(crate) struct HostProxy {
    port: u16,
    routes: Routes,
    stop: Arc<AtomicBool>,
}

impl HostProxy {
    /// Listens on 127.0.0.1:`port`, logging every CONNECT to `log`.
    pub(crate) fn start(port: u16, log: &Path) -> io::Result<HostProxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))?;
        listener.set_nonblocking(true)?;
        let routes: Routes = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s, log) = (routes.clone(), stop.clone(), log.to_path_buf());
        std::thread::Builder::new()
            .name("kube-test-host-proxy".into())
            .spawn(move || accept_loop(listener, r, s, log))?;
        Ok(HostProxy { port, routes, stop })
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// `name` (e.g. `lateend.istio-system.svc`) now means `ip`, on whatever port was asked.
    pub(crate) fn set_host(&self, name: &str, ip: IpAddr) {
        self.insert(name.to_ascii_lowercase(), Target::Host(ip));
    }

    /// `name:port` now means `to` (as a Service's port maps to its targetPort).
    pub(crate) fn set_host_port(&self, name: &str, port: u16, to: SocketAddr) {
        self.insert(
            format!("{}:{port}", name.to_ascii_lowercase()),
            Target::Addr(to),
        );
    }

    fn insert(&self, key: String, target: Target) {
        self.routes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(key, target);
    }
}

impl Drop for HostProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn accept_loop(listener: TcpListener, routes: Routes, stop: Arc<AtomicBool>, log: PathBuf) {
    // Bounded by the cluster's lifetime: the flag is checked every 20 ms.
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((client, _)) => {
                let (routes, log) = (routes.clone(), log.clone());
                let _ = std::thread::Builder::new()
                    .name("kube-test-host-proxy-conn".into())
                    .spawn(move || {
                        let line = match tunnel(client, &routes) {
                            Ok(line) | Err(line) => line,
                        };
                        append(&log, &line);
                    });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

fn append(log: &Path, line: &str) {
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
    {
        let _ = writeln!(f, "{line}");
    }
}

/// Reads `CONNECT host:port`, dials the mapped target and pipes bytes both ways until either
/// side closes. Returns the log line.
fn tunnel(mut client: TcpStream, routes: &Routes) -> Result<String, String> {
    client.set_nonblocking(false).map_err(|e| e.to_string())?;
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client
            .read(&mut buf)
            .map_err(|e| format!("reading CONNECT: {e}"))?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err("client closed or sent an oversized request head".into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head_end = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
    let request = String::from_utf8_lossy(&head[..head_end]).into_owned();
    let early = head[head_end..].to_vec();
    let first = request.lines().next().unwrap_or("");
    let mut words = first.split_whitespace();
    let (Some("CONNECT"), Some(authority)) = (words.next(), words.next()) else {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n");
        return Err(format!("refused non-CONNECT request {first:?}"));
    };
    let authority = authority.to_ascii_lowercase();
    let target = resolve(routes, &authority);
    let Some(target) = target else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
        return Err(format!(
            "CONNECT {authority}: no route (the test did not set_host this name)"
        ));
    };
    let mut upstream =
        TcpStream::connect_timeout(&target, Duration::from_secs(5)).map_err(|e| {
            let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n");
            format!("CONNECT {authority} -> {target}: {e}")
        })?;
    client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .map_err(|e| e.to_string())?;
    upstream.write_all(&early).map_err(|e| e.to_string())?;
    let _ = client.set_read_timeout(None);
    let (mut c2, mut u2) = match (client.try_clone(), upstream.try_clone()) {
        (Ok(c), Ok(u)) => (c, u),
        _ => {
            return Err(format!(
                "CONNECT {authority} -> {target}: cannot clone sockets"
            ));
        }
    };
    let upward = std::thread::spawn(move || {
        let _ = io::copy(&mut c2, &mut u2);
        let _ = u2.shutdown(Shutdown::Write);
    });
    let _ = io::copy(&mut upstream, &mut client);
    let _ = client.shutdown(Shutdown::Write);
    let _ = upward.join();
    Ok(format!("CONNECT {authority} -> {target}: done"))
}

/// `name:port` → an explicit `set_host_port` route, else `set_host`'s address with that port.
fn resolve(routes: &Routes, authority: &str) -> Option<SocketAddr> {
    let routes = routes.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(Target::Addr(a)) = routes.get(authority) {
        return Some(*a);
    }
    let (name, port) = authority.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    match routes.get(name) {
        Some(Target::Host(ip)) => Some(SocketAddr::new(*ip, port)),
        Some(Target::Addr(a)) => Some(*a),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connect(proxy: &HostProxy, authority: &str) -> (TcpStream, String) {
        let mut s = TcpStream::connect((Ipv4Addr::LOCALHOST, proxy.port())).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            s,
            "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && head.len() < 4096 {
            if s.read(&mut byte).unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        (s, String::from_utf8_lossy(&head).into_owned())
    }

    #[test]
    fn a_name_set_by_the_test_is_tunnelled_and_any_other_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let proxy = HostProxy::start(crate::free_port(), &dir.path().join("log")).unwrap();
        let (_, refused) = connect(&proxy, "nobody.default.svc:443");
        assert!(refused.starts_with("HTTP/1.1 502"), "{refused}");

        let echo = TcpListener::bind("127.0.0.1:0").unwrap();
        let echo_port = echo.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut c, _) = echo.accept().unwrap();
            let mut buf = [0u8; 5];
            c.read_exact(&mut buf).unwrap();
            c.write_all(&buf).unwrap();
        });
        proxy.set_host("Hook.Demo.svc", Ipv4Addr::LOCALHOST.into());
        let (mut tunnel, ok) = connect(&proxy, &format!("hook.demo.svc:{echo_port}"));
        assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
        tunnel.write_all(b"hello").unwrap();
        let mut back = [0u8; 5];
        tunnel.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"hello");

        // An explicit port mapping wins over the name's address.
        proxy.set_host_port(
            "hook.demo.svc",
            443,
            SocketAddr::from((Ipv4Addr::LOCALHOST, echo_port)),
        );
        assert_eq!(
            resolve(&proxy.routes, "hook.demo.svc:443"),
            Some(SocketAddr::from((Ipv4Addr::LOCALHOST, echo_port)))
        );
        // The refusal is logged after the answer is sent: poll briefly.
        let mut log = String::new();
        for _ in 0..100 {
            log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
            if log.contains("nobody.default.svc:443: no route") {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(log.contains("nobody.default.svc:443: no route"), "{log}");
    }
}
