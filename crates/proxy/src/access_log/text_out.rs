//! Appending numbers, addresses and times to a line without `core::fmt`: the access log
//! writes a few dozen of them per request, and `write!` with its padding and trait dispatch
//! was a visible share of the logging cost in `perf`.

use std::net::{IpAddr, SocketAddr};

/// Appends `n` in decimal.
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `n` with at least `width` digits, zero-padded.
pub fn push_padded(out: &mut String, n: u64, width: usize) {
    let mut len = 1;
    let mut rest = n / 10;
    while rest > 0 {
        len += 1;
        rest /= 10;
    }
    for _ in len..width {
        out.push('0');
    }
    push_u64(out, n);
}

/// Appends an address as `Display` writes it (`1.2.3.4:80`, `[::1]:80`).
pub fn push_socket_addr(out: &mut String, addr: SocketAddr) {
    match addr {
        SocketAddr::V4(v4) => {
            push_ip(out, IpAddr::V4(*v4.ip()));
            out.push(':');
            push_u64(out, u64::from(v4.port()));
        }
        SocketAddr::V6(_) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{addr}");
        }
    }
}

/// Appends an IP address as `Display` writes it.
pub fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                push_u64(out, u64::from(octet));
            }
        }
        IpAddr::V6(v6) => {
            use std::fmt::Write as _;
            let _ = write!(out, "{v6}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_addresses_read_as_display_writes_them() {
        for n in [0u64, 7, 10, 99, 200, 65_535, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut out = String::new();
        push_padded(&mut out, 7, 3);
        push_padded(&mut out, 1234, 2);
        assert_eq!(out, "0071234");
        for addr in [
            "127.0.0.1:18080",
            "0.0.0.0:0",
            "255.255.255.255:65535",
            "[::1]:80",
        ] {
            let addr: SocketAddr = addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"));
            let mut out = String::new();
            push_socket_addr(&mut out, addr);
            assert_eq!(out, addr.to_string());
            let mut ip = String::new();
            push_ip(&mut ip, addr.ip());
            assert_eq!(ip, addr.ip().to_string());
        }
    }
}
