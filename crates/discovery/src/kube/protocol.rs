//! A Service port's protocol as istiod reads it: `appProtocol` when set (with Kubernetes'
//! own `kubernetes.io/h2c`, `kubernetes.io/ws`, `kubernetes.io/wss`), else the port name's
//! prefix before the first `-` (`http-web` → HTTP; `grpc-web...` as a whole), case-insensitive;
//! UDP whatever the name. What Istio does not recognise is left for the sidecar to sniff,
//! except on ports that must never wait for sniffing (SMTP, DNS, MySQL, MongoDB): TCP.

/// Ports whose unnamed traffic is plain TCP (server-speaks-first protocols).
const WELL_KNOWN_TCP_PORTS: [i32; 4] = [25, 53, 3306, 27017];

/// Istio's protocol names, upper-case as the registry stores them.
fn parse(name: &str) -> Option<&'static str> {
    Some(match name.to_ascii_lowercase().as_str() {
        "tcp" => "TCP",
        "udp" => "UDP",
        "grpc" => "GRPC",
        "grpc-web" => "GRPC-WEB",
        "http" => "HTTP",
        "http_proxy" => "HTTP_PROXY",
        "http2" => "HTTP2",
        "https" => "HTTPS",
        "tls" => "TLS",
        "mongo" => "MONGO",
        "redis" => "REDIS",
        "mysql" => "MYSQL",
        "hbone" => "HBONE",
        _ => return None,
    })
}

/// The registry protocol of a Service port. Empty means "not declared" (the translator then
/// reads the name as the folder source's ServiceEntries do, with the same answer);
/// `UNSUPPORTED` means an `appProtocol` Istio does not know (sniffed, name ignored).
pub fn port_protocol(
    port: i32,
    name: &str,
    transport: Option<&str>,
    app_protocol: Option<&str>,
) -> String {
    if transport.is_some_and(|t| t.eq_ignore_ascii_case("UDP")) {
        return "UDP".to_string();
    }
    let declared = match app_protocol {
        Some("kubernetes.io/h2c") => return "HTTP2".to_string(),
        Some("kubernetes.io/ws") => return "HTTP".to_string(),
        Some("kubernetes.io/wss") => return "HTTPS".to_string(),
        Some(app) => app,
        None => name,
    };
    let found = if declared
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("grpc-web"))
    {
        Some("GRPC-WEB")
    } else {
        parse(declared.split('-').next().unwrap_or_default())
    };
    match found {
        Some(p) => p.to_string(),
        None if WELL_KNOWN_TCP_PORTS.contains(&port) => "TCP".to_string(),
        None if app_protocol.is_some() => "UNSUPPORTED".to_string(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::port_protocol;

    /// Port, name, transport protocol, appProtocol, expected.
    type Case = (
        i32,
        &'static str,
        Option<&'static str>,
        Option<&'static str>,
        &'static str,
    );

    #[test]
    fn istio_rules() {
        let cases: [Case; 13] = [
            (80, "http", None, None, "HTTP"),
            (80, "http-web", None, None, "HTTP"),
            (80, "HTTP2-x", None, None, "HTTP2"),
            (80, "grpc-web-ui", None, None, "GRPC-WEB"),
            (80, "grpc-api", None, None, "GRPC"),
            (80, "web", None, None, ""),
            (3306, "db", None, None, "TCP"),
            (80, "http", Some("UDP"), None, "UDP"),
            (80, "web", None, Some("kubernetes.io/h2c"), "HTTP2"),
            (80, "web", None, Some("kubernetes.io/ws"), "HTTP"),
            (80, "http", None, Some("tcp"), "TCP"),
            (80, "http", None, Some("example.com/custom"), "UNSUPPORTED"),
            (6379, "cache", None, Some("redis"), "REDIS"),
        ];
        for (port, name, transport, app, want) in cases {
            assert_eq!(
                port_protocol(port, name, transport, app),
                want,
                "{port} {name} {transport:?} {app:?}"
            );
        }
    }
}
