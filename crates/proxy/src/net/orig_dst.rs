//! The original destination of a connection redirected by iptables (`SO_ORIGINAL_DST` /
//! `IP6T_SO_ORIGINAL_DST`), behind a trait so in-process tests can supply their own.

use std::io;
use std::net::SocketAddr;
use tokio::net::TcpStream;

pub trait OriginalDst: Send + Sync + 'static {
    fn original_dst(&self, stream: &TcpStream) -> io::Result<SocketAddr>;
}

/// Reads the address the kernel's NAT table recorded before the REDIRECT.
pub struct SoOriginalDst;

impl OriginalDst for SoOriginalDst {
    fn original_dst(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        let socket = socket2::SockRef::from(stream);
        let address = match stream.local_addr()? {
            SocketAddr::V4(_) => socket.original_dst_v4()?,
            SocketAddr::V6(_) => socket.original_dst_v6()?,
        };
        address.as_socket().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "original destination is not an IP address",
            )
        })
    }
}

/// For tests and for listeners without capture: the connection's own local address.
pub struct LocalAddrAsOriginal;

impl OriginalDst for LocalAddrAsOriginal {
    fn original_dst(&self, stream: &TcpStream) -> io::Result<SocketAddr> {
        stream.local_addr()
    }
}
