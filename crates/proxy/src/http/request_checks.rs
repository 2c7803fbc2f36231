//! What an HTTP/1.x request head must be before it is routed, as Envoy's codec checks it:
//! exactly one valid `Host` on HTTP/1.1 (RFC 9112 §3.2), no userinfo in an absolute-form
//! target (RFC 9110 §4.2.4), `*` only with OPTIONS and authority-form only with CONNECT
//! (RFC 9112 §3.2.3-4) — each else 400 — and no transfer coding but `chunked`, which the
//! proxy could not carry on (501). HTTP/2 requests get the listener's `max_headers` here
//! (hyper's h2 server has no such limit; HTTP/1.1 has it in hyper): 431, as on HTTP/1.1.
//! Failures are the client's: flag `DPE`.

use http::header::{self, HeaderMap};
use http::{Method, StatusCode, Version};

use crate::config::model::HttpLimits;

/// Why a request head is refused: the status to answer and what to say.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: StatusCode,
    pub detail: &'static str,
}

fn bad(detail: &'static str) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        detail,
    }
}

/// Checks a request head under `limits`; HTTP/2's framing is checked by the h2 codec.
pub fn check(head: &http::request::Parts, limits: &HttpLimits) -> Result<(), Refusal> {
    if head.version == Version::HTTP_2 && head.headers.len() > limits.max_headers {
        return Err(Refusal {
            status: StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            detail: "too many headers",
        });
    }
    if head.version != Version::HTTP_11 && head.version != Version::HTTP_10 {
        return Ok(());
    }
    let uri = &head.uri;
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        return Err(bad("userinfo in the request target"));
    }
    let is_asterisk = uri.path() == "*" && uri.authority().is_none();
    if is_asterisk && head.method != Method::OPTIONS {
        return Err(bad("asterisk-form target is for OPTIONS only"));
    }
    let is_authority_form = uri.scheme().is_none() && uri.authority().is_some();
    if is_authority_form && head.method != Method::CONNECT {
        return Err(bad("authority-form target is for CONNECT only"));
    }
    let mut hosts = head.headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) if head.version == Version::HTTP_11 => return Err(bad("missing Host header")),
        (Some(_), Some(_)) => return Err(bad("more than one Host header")),
        (Some(host), None) if !is_valid_host(host.as_bytes()) => {
            return Err(bad("invalid Host header"));
        }
        _ => {}
    }
    if has_coding_other_than_chunked(&head.headers) {
        return Err(Refusal {
            status: StatusCode::NOT_IMPLEMENTED,
            detail: "unsupported transfer encoding",
        });
    }
    Ok(())
}

/// `uri-host [ ":" port ]`: a reg-name, IPv4 or bracketed IPv6 literal (RFC 3986 §3.2.2).
fn is_valid_host(host: &[u8]) -> bool {
    !host.is_empty()
        && host
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"-._~%!$&'()*+,;=:[]".contains(&b))
}

fn has_coding_other_than_chunked(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|value| value.as_bytes().split(|&b| b == b','))
        .map(|coding| coding.trim_ascii())
        .any(|coding| !coding.is_empty() && !coding.eq_ignore_ascii_case(b"chunked"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(method: &str, target: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut builder = http::Request::builder().method(method).uri(target);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(()).expect("request").into_parts().0
    }

    #[test]
    fn hosts_targets_and_codings() {
        let limits = HttpLimits::default();
        let ok = |h: http::request::Parts| assert_eq!(check(&h, &limits), Ok(()));
        let status = |h: http::request::Parts| check(&h, &limits).map_err(|r| r.status.as_u16());
        ok(head("GET", "/", &[("host", "a.example:80")]));
        ok(head("GET", "/", &[("host", "[::1]:8080")]));
        ok(head("OPTIONS", "*", &[("host", "a")]));
        ok(head("GET", "http://a/x", &[("host", "a")]));
        ok(head(
            "POST",
            "/",
            &[("host", "a"), ("transfer-encoding", "chunked")],
        ));
        assert_eq!(status(head("GET", "/", &[])), Err(400));
        assert_eq!(
            status(head("GET", "/", &[("host", "a"), ("host", "b")])),
            Err(400)
        );
        assert_eq!(status(head("GET", "/", &[("host", "a b/c@d")])), Err(400));
        assert_eq!(
            status(head("GET", "http://user:pw@a/", &[("host", "a")])),
            Err(400)
        );
        assert_eq!(status(head("GET", "*", &[("host", "a")])), Err(400));
        assert_eq!(status(head("GET", "x:80", &[("host", "a")])), Err(400));
        assert_eq!(
            status(head(
                "POST",
                "/",
                &[("host", "a"), ("transfer-encoding", "gzip, chunked")]
            )),
            Err(501)
        );
    }
}
