//! The `date` header of responses the proxy serves itself over HTTP/2 (hyper adds it on
//! HTTP/1.1): formatted once a second per thread and shared, so a response costs a reference
//! count, not a format and an allocation.

use http::HeaderValue;
use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

thread_local! {
    /// The second the value was formatted for, and the value.
    static CACHED: RefCell<Option<(u64, HeaderValue)>> = const { RefCell::new(None) };
}

/// Now as an HTTP date (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn now() -> HeaderValue {
    let now = SystemTime::now();
    let second = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    CACHED.with(|cached| {
        let mut cached = cached.borrow_mut();
        match &*cached {
            Some((at, value)) if *at == second => value.clone(),
            _ => {
                let value = HeaderValue::from_str(&httpdate::fmt_http_date(now))
                    .unwrap_or_else(|_| HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"));
                *cached = Some((second, value.clone()));
                value
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn is_an_http_date_that_parses_back() {
        let value = super::now();
        let text = value.to_str().expect("ascii");
        assert!(text.ends_with(" GMT"), "{text}");
        assert!(httpdate::parse_http_date(text).is_ok(), "{text}");
    }
}
