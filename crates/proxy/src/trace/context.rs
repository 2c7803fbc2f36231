//! Trace context headers: W3C Trace Context (`traceparent`, `tracestate` passed on as it came)
//! and Zipkin's B3 (multi-header `x-b3-*` and single-header `b3`). A proxy continues the
//! context it was given (same trace, its own span the parent of the next hop) and keeps the
//! sampling decision made upstream.

use http::header::{HeaderMap, HeaderName, HeaderValue};

pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub static TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
pub static B3: HeaderName = HeaderName::from_static("b3");
pub static B3_TRACE_ID: HeaderName = HeaderName::from_static("x-b3-traceid");
pub static B3_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-spanid");
pub static B3_PARENT_SPAN_ID: HeaderName = HeaderName::from_static("x-b3-parentspanid");
pub static B3_SAMPLED: HeaderName = HeaderName::from_static("x-b3-sampled");
pub static B3_FLAGS: HeaderName = HeaderName::from_static("x-b3-flags");

/// Which B3 form a request carried, so the proxy answers in the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum B3Form {
    None,
    Multi,
    Single,
}

/// A trace id and a span id.
pub type SpanContext = ([u8; 16], [u8; 8]);

/// What the incoming headers say about the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Incoming {
    /// Trace id and the caller's span id, when a valid context came in.
    pub parent: Option<SpanContext>,
    /// The caller's sampling decision, if it made one.
    pub sampled: Option<bool>,
    pub b3: B3Form,
    /// The B3 trace id was 64 bits (16 hex digits): written back the same way.
    pub b3_short_trace_id: bool,
}

/// Reads the trace context: `traceparent` first (what the OpenTelemetry tracer reads), then
/// B3. Invalid headers are ignored, as if absent: the request starts a new trace.
pub fn extract(headers: &HeaderMap) -> Incoming {
    let mut incoming = Incoming {
        parent: None,
        sampled: None,
        b3: B3Form::None,
        b3_short_trace_id: false,
    };
    let b3_single = headers.get(&B3).and_then(|value| value.to_str().ok());
    let b3_multi = headers.get(&B3_TRACE_ID).is_some() || headers.get(&B3_SAMPLED).is_some();
    if let Some(value) = b3_single {
        incoming.b3 = B3Form::Single;
        if let Some((parent, sampled, short)) = parse_b3_single(value) {
            incoming.parent = parent;
            incoming.sampled = sampled;
            incoming.b3_short_trace_id = short;
        }
    } else if b3_multi {
        incoming.b3 = B3Form::Multi;
        let text = |name: &HeaderName| headers.get(name).and_then(|value| value.to_str().ok());
        if let (Some(trace), Some(span)) = (text(&B3_TRACE_ID), text(&B3_SPAN_ID))
            && let (Some(trace_id), Some(span_id)) = (b3_trace_id(trace), hex_id::<8>(span))
        {
            incoming.parent = Some((trace_id, span_id));
            incoming.b3_short_trace_id = trace.len() == 16;
        }
        incoming.sampled = match (text(&B3_FLAGS), text(&B3_SAMPLED)) {
            (Some("1"), _) => Some(true),
            (_, Some(sampled)) => b3_sampled(sampled),
            _ => None,
        };
    }
    if let Some((trace_id, span_id, sampled)) = headers
        .get(&TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .and_then(parse_traceparent)
    {
        incoming.parent = Some((trace_id, span_id));
        incoming.sampled = Some(sampled);
    }
    incoming
}

/// `VERSION-TRACEID-SPANID-FLAGS`; version `ff` and all-zero ids are invalid; versions after
/// `00` may append fields, which are ignored.
pub fn parse_traceparent(value: &str) -> Option<([u8; 16], [u8; 8], bool)> {
    let value = value.trim();
    let mut parts = value.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let span = parts.next()?;
    let flags = parts.next()?;
    if version.len() != 2 || version.eq_ignore_ascii_case("ff") || u8_hex(version).is_none() {
        return None;
    }
    if version == "00" && (parts.next().is_some() || value.len() != 55) {
        return None;
    }
    if flags.len() != 2 {
        return None;
    }
    let trace_id = hex_id::<16>(trace)?;
    let span_id = hex_id::<8>(span)?;
    let flags = u8_hex(flags)?;
    Some((trace_id, span_id, flags & 1 == 1))
}

/// `b3: TRACEID-SPANID[-SAMPLED[-PARENTSPANID]]`, or only the decision (`0`, `1`, `d`).
/// Returns the context, the decision and whether the trace id was 64 bits.
fn parse_b3_single(value: &str) -> Option<(Option<SpanContext>, Option<bool>, bool)> {
    let mut parts = value.trim().split('-');
    let first = parts.next()?;
    let Some(span) = parts.next() else {
        return Some((None, b3_sampled(first), false));
    };
    let trace_id = b3_trace_id(first)?;
    let span_id = hex_id::<8>(span)?;
    let sampled = parts.next().and_then(b3_sampled);
    Some((Some((trace_id, span_id)), sampled, first.len() == 16))
}

fn b3_sampled(value: &str) -> Option<bool> {
    match value {
        "1" | "d" | "true" => Some(true),
        "0" | "false" => Some(false),
        _ => None,
    }
}

/// A 64-bit B3 trace id is the low half of a 128-bit one.
fn b3_trace_id(text: &str) -> Option<[u8; 16]> {
    match text.len() {
        32 => hex_id::<16>(text),
        16 => {
            let low = hex_id::<8>(text)?;
            let mut id = [0u8; 16];
            id[8..].copy_from_slice(&low);
            Some(id)
        }
        _ => None,
    }
}

/// Exactly `2 * N` hex digits, not all zero.
fn hex_id<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    let mut id = [0u8; N];
    for (n, byte) in id.iter_mut().enumerate() {
        *byte = u8_hex(text.get(2 * n..2 * n + 2)?)?;
    }
    (id != [0u8; N]).then_some(id)
}

fn u8_hex(text: &str) -> Option<u8> {
    if text.len() != 2 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        let _ = write!(out, "{byte:02x}");
    }
    out
}

/// Writes this proxy's span as the parent of the next hop: `traceparent` always (as Envoy's
/// OpenTelemetry tracer does, sampled or not), and B3 in the form the request came with.
/// `tracestate` is passed on unchanged.
pub fn inject(
    headers: &mut HeaderMap,
    incoming: &Incoming,
    trace_id: &[u8; 16],
    span_id: &[u8; 8],
    sampled: bool,
) {
    let trace = hex(trace_id);
    let span = hex(span_id);
    let flag = if sampled { "1" } else { "0" };
    let traceparent = format!("00-{trace}-{span}-0{flag}");
    if let Ok(value) = HeaderValue::from_str(&traceparent) {
        headers.insert(TRACEPARENT.clone(), value);
    }
    let b3_trace = if incoming.b3_short_trace_id {
        &trace[16..]
    } else {
        &trace[..]
    };
    let parent = incoming.parent.map(|(_, parent)| hex(&parent));
    match incoming.b3 {
        B3Form::None => {}
        B3Form::Multi => {
            let mut set = |name: &HeaderName, value: &str| {
                if let Ok(value) = HeaderValue::from_str(value) {
                    headers.insert(name.clone(), value);
                }
            };
            set(&B3_TRACE_ID, b3_trace);
            set(&B3_SPAN_ID, &span);
            set(&B3_SAMPLED, flag);
            match &parent {
                Some(parent) => set(&B3_PARENT_SPAN_ID, parent),
                None => {
                    headers.remove(&B3_PARENT_SPAN_ID);
                }
            }
        }
        B3Form::Single => {
            let mut value = format!("{b3_trace}-{span}-{flag}");
            if let Some(parent) = &parent {
                value.push('-');
                value.push_str(parent);
            }
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(B3.clone(), value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SPAN: &str = "00f067aa0ba902b7";

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn traceparent_is_read_with_its_sampled_flag() {
        let incoming = extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-01"),
        )]));
        let (trace, span) = incoming.parent.unwrap();
        assert_eq!(hex(&trace), TRACE);
        assert_eq!(hex(&span), SPAN);
        assert_eq!(incoming.sampled, Some(true));
        let unsampled = extract(&headers(&[(
            "traceparent",
            &format!("00-{TRACE}-{SPAN}-00"),
        )]));
        assert_eq!(unsampled.sampled, Some(false));
    }

    #[test]
    fn invalid_traceparents_are_ignored() {
        for bad in [
            format!("ff-{TRACE}-{SPAN}-01"),
            format!("00-{}-{SPAN}-01", "0".repeat(32)),
            format!("00-{TRACE}-{}-01", "0".repeat(16)),
            format!("00-{TRACE}-{SPAN}-01-extra"),
            format!("00-{TRACE}-{SPAN}"),
            format!("00-{TRACE}x-{SPAN}-01"),
            "garbage".to_string(),
        ] {
            let incoming = extract(&headers(&[("traceparent", &bad)]));
            assert_eq!(incoming.parent, None, "{bad}");
            assert_eq!(incoming.sampled, None, "{bad}");
        }
        // A later version may carry more fields.
        let future = extract(&headers(&[(
            "traceparent",
            &format!("01-{TRACE}-{SPAN}-01-xyz"),
        )]));
        assert!(future.parent.is_some());
    }

    #[test]
    fn b3_multi_and_single_are_read() {
        let multi = extract(&headers(&[
            ("x-b3-traceid", TRACE),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
        ]));
        assert_eq!(multi.b3, B3Form::Multi);
        assert_eq!(hex(&multi.parent.unwrap().0), TRACE);
        assert_eq!(multi.sampled, Some(true));
        let single = extract(&headers(&[("b3", &format!("a3ce929d0e0e4736-{SPAN}-0"))]));
        assert_eq!(single.b3, B3Form::Single);
        assert!(single.b3_short_trace_id);
        assert_eq!(
            hex(&single.parent.unwrap().0),
            "0000000000000000a3ce929d0e0e4736"
        );
        assert_eq!(single.sampled, Some(false));
        let deny = extract(&headers(&[("b3", "0")]));
        assert_eq!((deny.parent, deny.sampled), (None, Some(false)));
    }

    #[test]
    fn the_proxy_span_becomes_the_next_hops_parent_in_each_form() {
        let mut map = headers(&[
            ("x-b3-traceid", "a3ce929d0e0e4736"),
            ("x-b3-spanid", SPAN),
            ("x-b3-sampled", "1"),
            ("tracestate", "vendor=x"),
        ]);
        let incoming = extract(&map);
        let trace = incoming.parent.unwrap().0;
        let mine = [1, 2, 3, 4, 5, 6, 7, 8];
        inject(&mut map, &incoming, &trace, &mine, true);
        assert_eq!(
            map["traceparent"],
            "00-0000000000000000a3ce929d0e0e4736-0102030405060708-01"
        );
        assert_eq!(map["x-b3-traceid"], "a3ce929d0e0e4736");
        assert_eq!(map["x-b3-spanid"], "0102030405060708");
        assert_eq!(map["x-b3-parentspanid"], SPAN);
        assert_eq!(map["tracestate"], "vendor=x");

        let mut map = headers(&[("b3", &format!("{TRACE}-{SPAN}-1"))]);
        let incoming = extract(&map);
        inject(
            &mut map,
            &incoming,
            &incoming.parent.unwrap().0,
            &mine,
            true,
        );
        assert_eq!(
            map["b3"],
            format!("{TRACE}-0102030405060708-1-{SPAN}").as_str()
        );
    }
}
