//! CORS (Envoy's `envoy.filters.http.cors` per-route `CorsPolicy`, Istio's
//! `VirtualService.http[].corsPolicy`): preflights from allowed origins are answered by the
//! proxy; other requests from allowed origins get the CORS response headers.

use http::Method;
use http::header::{self, HeaderName, HeaderValue};

use crate::config::model::{CorsPolicy, ValueMatch};
use crate::config::snapshot::{ValueMatcher, ValueMatcherKind};

pub struct CorsRt {
    origins: Vec<ValueMatcher>,
    allow_methods: Option<HeaderValue>,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    allow_credentials: bool,
    forward_not_matching_preflights: bool,
}

/// What the CORS filter decided for one request.
pub enum CorsVerdict {
    /// Not a CORS request for this policy (no `Origin`, or one not allowed): forward as is.
    Pass,
    /// A preflight: answer 200 with these headers and do not forward.
    Preflight(Vec<(HeaderName, HeaderValue)>),
    /// Forward, and add these headers to the response.
    Respond(Vec<(HeaderName, HeaderValue)>),
}

impl CorsRt {
    /// `regex` compiles an origin pattern (anchored as every matcher is).
    pub fn compile(
        policy: &CorsPolicy,
        regex: impl Fn(&str) -> Result<regex::Regex, String>,
    ) -> Result<CorsRt, (String, String)> {
        let mut origins = Vec::new();
        for (index, origin) in policy.allow_origins.iter().enumerate() {
            let kind = match origin {
                ValueMatch::Exact(value) => ValueMatcherKind::Exact(value.clone()),
                ValueMatch::Prefix(value) => ValueMatcherKind::Prefix(value.clone()),
                ValueMatch::Regex(pattern) => ValueMatcherKind::Regex(
                    regex(pattern).map_err(|err| (format!("allow_origins[{index}].regex"), err))?,
                ),
                ValueMatch::Present(_) => {
                    return Err((
                        format!("allow_origins[{index}]"),
                        "must be exact, prefix or regex".into(),
                    ));
                }
            };
            origins.push(ValueMatcher {
                name: String::new(),
                kind,
                invert: false,
            });
        }
        let list =
            |field: &str, values: &[String]| -> Result<Option<HeaderValue>, (String, String)> {
                if values.is_empty() {
                    return Ok(None);
                }
                HeaderValue::from_str(&values.join(","))
                    .map(Some)
                    .map_err(|_| (field.to_string(), "not a valid header value".to_string()))
            };
        Ok(CorsRt {
            origins,
            allow_methods: list("allow_methods", &policy.allow_methods)?,
            allow_headers: list("allow_headers", &policy.allow_headers)?,
            expose_headers: list("expose_headers", &policy.expose_headers)?,
            max_age: policy.max_age.map(HeaderValue::from),
            allow_credentials: policy.allow_credentials,
            forward_not_matching_preflights: policy.forward_not_matching_preflights,
        })
    }

    pub fn check(&self, method: &Method, headers: &http::HeaderMap) -> CorsVerdict {
        let Some(origin) = headers.get(header::ORIGIN) else {
            return CorsVerdict::Pass;
        };
        let allowed = origin.to_str().is_ok_and(|text| {
            self.origins
                .iter()
                .any(|matcher| matcher.matches(Some(text)))
        });
        let preflight = method == Method::OPTIONS
            && headers.contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
        let mut out = Vec::new();
        if allowed {
            out.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone()));
            if self.allow_credentials {
                out.push((
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                ));
            }
        }
        match (preflight, allowed) {
            (true, true) => {
                for (name, value) in [
                    (header::ACCESS_CONTROL_ALLOW_METHODS, &self.allow_methods),
                    (header::ACCESS_CONTROL_ALLOW_HEADERS, &self.allow_headers),
                    (header::ACCESS_CONTROL_MAX_AGE, &self.max_age),
                ] {
                    if let Some(value) = value {
                        out.push((name, value.clone()));
                    }
                }
                CorsVerdict::Preflight(out)
            }
            (true, false) if !self.forward_not_matching_preflights => CorsVerdict::Preflight(out),
            (false, true) => {
                if let Some(expose) = &self.expose_headers {
                    out.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone()));
                }
                CorsVerdict::Respond(out)
            }
            _ => CorsVerdict::Pass,
        }
    }
}
