//! Host names as Istio reads them: short names resolved against the resource's namespace,
//! wildcard hosts (`*`, `*.example.com`), matching and subset tests, and DNS-name syntax checks.
//!
//! Host names are compared case-insensitively (DNS is); the functions lower-case as needed.

use std::net::IpAddr;

/// The Kubernetes cluster domain suffix used when none is configured.
pub const DEFAULT_DOMAIN_SUFFIX: &str = "cluster.local";

/// Resolves a host as written in a resource of `namespace` to the name the mesh uses:
/// a short name without dots (`reviews`) becomes `reviews.<namespace>.svc.<domain_suffix>`;
/// names with a dot (`reviews.prod`, `www.example.com`), `*` and IP addresses are kept as they
/// are (Istio does not expand partially qualified names either).
pub fn resolve_short_name(host: &str, namespace: &str, domain_suffix: &str) -> String {
    let host = host.to_ascii_lowercase();
    if host.is_empty() || host == "*" || host.contains('.') || host.parse::<IpAddr>().is_ok() {
        return host;
    }
    format!("{host}.{namespace}.svc.{domain_suffix}")
}

/// True when the host starts with a wildcard label (`*` or `*.example.com`).
pub fn is_wildcard(host: &str) -> bool {
    host.starts_with('*')
}

/// Whether two hosts, each possibly a wildcard, can name a common host (Istio's `Matches`):
/// `*.example.com` matches `api.example.com` and `*.api.example.com`; `*` matches everything;
/// two exact names match only when equal. Does not resolve short names: call
/// [`resolve_short_name`] on both first.
pub fn hosts_match(a: &str, b: &str) -> bool {
    let a = a.to_ascii_lowercase();
    let b = b.to_ascii_lowercase();
    match (is_wildcard(&a), is_wildcard(&b)) {
        (true, true) => {
            let (sa, sb) = (&a[1..], &b[1..]);
            if sa.len() < sb.len() {
                sb.ends_with(sa)
            } else {
                sa.ends_with(sb)
            }
        }
        (true, false) => b.ends_with(&a[1..]),
        (false, true) => a.ends_with(&b[1..]),
        (false, false) => a == b,
    }
}

/// Whether every host `host` can name is also named by `pattern` (Istio's `SubsetOf`):
/// `api.example.com` ⊆ `*.example.com` ⊆ `*`, but `*.example.com` ⊄ `api.example.com`.
pub fn host_is_subset_of(host: &str, pattern: &str) -> bool {
    let host = host.to_ascii_lowercase();
    let pattern = pattern.to_ascii_lowercase();
    match (is_wildcard(&host), is_wildcard(&pattern)) {
        (true, true) => host[1..].ends_with(&pattern[1..]),
        (true, false) => false,
        (false, true) => host.ends_with(&pattern[1..]),
        (false, false) => host == pattern,
    }
}

/// Whether a concrete request host (no wildcard) is served by a configured host, which may be a
/// wildcard: `api.example.com` is served by `*.example.com` and by `*`.
pub fn host_serves(configured: &str, request_host: &str) -> bool {
    host_is_subset_of(request_host, configured)
}

/// Is `label` a DNS-1123 label: 1-63 of `[a-z0-9-]`, starting and ending alphanumeric.
pub fn is_dns1123_label(label: &str) -> bool {
    let bytes = label.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// Is `name` a DNS-1123 subdomain (dot-separated labels, at most 253 characters).
pub fn is_dns1123_subdomain(name: &str) -> bool {
    name.len() <= 253 && name.split('.').all(is_dns1123_label)
}

/// Checks a host that may start with a wildcard label (`*`, `*.example.com`, `*-foo.example.com`):
/// at most 255 characters, DNS labels, the wildcard only in the first label. Host labels may be
/// upper case: Istio checks them with `[a-zA-Z0-9]` (its samples use `ISTIOD-HOST.DOMAIN`),
/// unlike Kubernetes object names.
/// A trailing dot (FQDN form) is accepted. Returns the reason when invalid.
pub fn check_wildcard_domain(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("empty domain name not allowed".into());
    }
    if host.len() > 255 {
        return Err(format!("domain name {host:?} too long (max 255)"));
    }
    let trimmed = host.strip_suffix('.').unwrap_or(host);
    let (first, rest) = match trimmed.split_once('.') {
        Some((f, r)) => (f, Some(r)),
        None => (trimmed, None),
    };
    if !is_wildcard_label(first) {
        return Err(format!(
            "domain name {host:?} invalid (label {first:?} invalid)"
        ));
    }
    if let Some(rest) = rest {
        for label in rest.split('.') {
            if !is_host_label(label) {
                return Err(format!(
                    "domain name {host:?} invalid (label {label:?} invalid)"
                ));
            }
        }
    }
    Ok(())
}

/// Checks the host part of a Gateway server host or a Sidecar egress host (Istio's
/// `validateSidecarOrGatewayHostnamePart`): `*` or a dotted name (no short names), a valid
/// (wildcard) domain, and no partial wildcard: `*` alone or as the whole first label (`*.foo`),
/// never `*foo.com` or `foo.*`.
pub fn check_listener_host(name: &str) -> Result<(), String> {
    if name != "*" && !name.contains('.') {
        return Err(format!("short names (non FQDN) are not allowed: {name:?}"));
    }
    check_wildcard_domain(name)?;
    if name.contains('*') && name != "*" && !name.starts_with("*.") {
        return Err(format!("partial wildcard {name:?} not allowed"));
    }
    Ok(())
}

/// Checks a host without wildcards (an FQDN or a short name).
pub fn check_fqdn(host: &str) -> Result<(), String> {
    if host.contains('*') {
        return Err(format!(
            "domain name {host:?} invalid (wildcard not allowed here)"
        ));
    }
    check_wildcard_domain(host)
}

/// `*`, a DNS label, or a DNS label prefixed by `*` or `*-`.
fn is_wildcard_label(label: &str) -> bool {
    if label == "*" {
        return true;
    }
    let rest = label
        .strip_prefix("*-")
        .or_else(|| label.strip_prefix('*'))
        .unwrap_or(label);
    label.len() <= 63 && is_host_label(rest)
}

/// A DNS label as Istio checks host names: 1-63 of `[a-zA-Z0-9-]`, starting and ending
/// alphanumeric.
fn is_host_label(label: &str) -> bool {
    is_dns1123_label(&label.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_against_namespace() {
        assert_eq!(
            resolve_short_name("reviews", "default", DEFAULT_DOMAIN_SUFFIX),
            "reviews.default.svc.cluster.local"
        );
        assert_eq!(
            resolve_short_name("Reviews", "prod", "corp.local"),
            "reviews.prod.svc.corp.local"
        );
        assert_eq!(
            resolve_short_name("reviews.prod", "default", "cluster.local"),
            "reviews.prod"
        );
        assert_eq!(resolve_short_name("*", "default", "cluster.local"), "*");
        assert_eq!(
            resolve_short_name("10.0.0.1", "default", "cluster.local"),
            "10.0.0.1"
        );
        assert_eq!(resolve_short_name("::1", "default", "cluster.local"), "::1");
    }

    #[test]
    fn wildcard_matching() {
        assert!(hosts_match("*.example.com", "api.example.com"));
        assert!(hosts_match("api.example.com", "*.example.com"));
        assert!(hosts_match("*.example.com", "*.api.example.com"));
        assert!(hosts_match("*", "anything.at.all"));
        assert!(hosts_match("*", "*.example.com"));
        assert!(!hosts_match("*.example.com", "example.com"));
        assert!(!hosts_match("a.example.com", "b.example.com"));
        assert!(hosts_match("A.Example.com", "a.example.COM"));
    }

    #[test]
    fn subset_relation() {
        assert!(host_is_subset_of("api.example.com", "*.example.com"));
        assert!(host_is_subset_of("*.api.example.com", "*.example.com"));
        assert!(host_is_subset_of("*.example.com", "*"));
        assert!(!host_is_subset_of("*.example.com", "api.example.com"));
        assert!(!host_is_subset_of("*", "*.example.com"));
        assert!(host_serves("*", "reviews.default.svc.cluster.local"));
        assert!(!host_serves("*.example.com", "example.com"));
    }

    #[test]
    fn domain_syntax() {
        for ok in [
            "reviews",
            "reviews.default.svc.cluster.local",
            "*",
            "*.example.com",
            "*-x.example.com",
            "www.googleapis.com",
            "foo.",
            "ISTIOD-HOST.DOMAIN",
        ] {
            assert!(check_wildcard_domain(ok).is_ok(), "{ok}");
        }
        for bad in ["", "re_views", "foo.*.com", "-a.com", "a..b", "**.a"] {
            assert!(check_wildcard_domain(bad).is_err(), "{bad}");
        }
        assert!(check_fqdn("*.example.com").is_err());
        for ok in ["*", "*.example.com", "example.com", "1.2.3.4"] {
            assert!(check_listener_host(ok).is_ok(), "{ok}");
        }
        for bad in ["*-x.example.com", "*x.example.com", "reviews", "foo.*"] {
            assert!(check_listener_host(bad).is_err(), "{bad}");
        }
        assert!(is_dns1123_label("v2-mysql-vm"));
        assert!(!is_dns1123_label("V1"));
    }
}
