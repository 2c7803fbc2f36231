//! Envoy's `envoy.filters.http.jwt_authn` as Istio configures it: a token is looked for in
//! each provider's locations (Envoy's default `Authorization: Bearer` and `access_token`
//! when a provider names none); without a token the request passes when the requirement
//! allows a missing one; a token must verify (RS256/ES256 and the other JWS algorithms of
//! `jsonwebtoken`, against the provider whose issuer it names, audiences, `exp`/`nbf` with
//! Envoy's 60 s skew) or the request gets 401 with Envoy's message. A verified payload goes
//! into the filter's metadata (`payload_in_metadata`), the token is removed from its header
//! unless `forward`, and `forward_payload_header` / `claim_to_headers` are written. Keys
//! are inline (`local_jwks`) or fetched ([`super::remote_jwks`], `remote_jwks`).

use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;

/// A provider's keys: the JWKS text as configured, and the keys read from it.
#[derive(Debug, Clone)]
pub struct Jwks {
    pub text: String,
    keys: Arc<JwkSet>,
}

impl Jwks {
    /// A key set that cannot be read is an empty one (Envoy: every token fails), logged.
    pub fn parse(text: &str) -> Jwks {
        Jwks::parse_strict(text).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "JWKS is not a readable JSON Web Key Set; tokens will fail");
            Jwks {
                text: text.to_string(),
                keys: Arc::new(JwkSet { keys: Vec::new() }),
            }
        })
    }

    /// A JSON Web Key Set, or one JSON Web Key; anything else is an error.
    pub fn parse_strict(text: &str) -> Result<Jwks, serde_json::Error> {
        let keys = match serde_json::from_str::<JwkSet>(text) {
            Ok(set) => set,
            Err(set_error) => match serde_json::from_str::<jsonwebtoken::jwk::Jwk>(text) {
                Ok(one) => JwkSet { keys: vec![one] },
                Err(_) => return Err(set_error),
            },
        };
        Ok(Jwks {
            text: text.to_string(),
            keys: Arc::new(keys),
        })
    }
}

impl Default for Jwks {
    /// No keys: every token fails.
    fn default() -> Jwks {
        Jwks {
            text: String::new(),
            keys: Arc::new(JwkSet { keys: Vec::new() }),
        }
    }
}

impl PartialEq for Jwks {
    fn eq(&self, other: &Jwks) -> bool {
        self.text == other.text
    }
}

impl Serialize for Jwks {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Jwks {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Jwks, D::Error> {
        Ok(Jwks::parse(&String::deserialize(d)?))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenHeader {
    pub name: String,
    #[serde(default)]
    pub value_prefix: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provider {
    pub name: String,
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    #[serde(default)]
    pub forward: bool,
    #[serde(default)]
    pub from_headers: Vec<TokenHeader>,
    #[serde(default)]
    pub from_params: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub forward_payload_header: String,
    #[serde(default)]
    pub payload_in_metadata: String,
    /// `(header, claim)`.
    #[serde(default)]
    pub claim_to_headers: Vec<(String, String)>,
    /// Inline keys (`local_jwks`); unused when `remote` is set.
    #[serde(default)]
    pub jwks: Jwks,
    /// Keys fetched from a URI (`remote_jwks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<super::remote_jwks::RemoteJwks>,
}

impl Provider {
    /// Whether the request carries a token where this provider looks.
    pub fn has_token(&self, request: &http::request::Parts) -> bool {
        find(self, request).is_some()
    }

    /// The keys tokens are checked against: inline, or the fetched ones while cached.
    fn keys(&self) -> Result<Jwks, JwtError> {
        match &self.remote {
            None => Ok(self.jwks.clone()),
            Some(remote) => remote.keys().ok_or(JwtError::JwksFetchFailed),
        }
    }

    /// Where the provider looks for a token: its own locations or Envoy's defaults.
    fn locations(&self) -> (Vec<TokenHeader>, Vec<String>) {
        if self.from_headers.is_empty() && self.from_params.is_empty() {
            (
                vec![TokenHeader {
                    name: "authorization".to_string(),
                    value_prefix: "Bearer ".to_string(),
                }],
                vec!["access_token".to_string()],
            )
        } else {
            (self.from_headers.clone(), self.from_params.clone())
        }
    }
}

/// The filter: every provider is one alternative; `allow_missing` lets a request without a
/// token through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JwtAuthn {
    pub providers: Vec<Provider>,
    #[serde(default)]
    pub allow_missing: bool,
}

/// A token that was found, and where.
struct Found {
    token: String,
    header: Option<String>,
}

fn find(provider: &Provider, request: &http::request::Parts) -> Option<Found> {
    let (headers, params) = provider.locations();
    for h in &headers {
        for value in request.headers.get_all(h.name.as_str()) {
            let Ok(value) = value.to_str() else { continue };
            let token = if h.value_prefix.is_empty() {
                Some(value.trim())
            } else {
                value.strip_prefix(h.value_prefix.as_str()).map(str::trim)
            };
            if let Some(token) = token.filter(|t| !t.is_empty()) {
                return Some(Found {
                    token: token.to_string(),
                    header: Some(h.name.clone()),
                });
            }
        }
    }
    let query = request.uri.query().unwrap_or("");
    for pair in query.split('&') {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if params.iter().any(|p| p == k) && !v.is_empty() {
            return Some(Found {
                token: v.to_string(),
                header: None,
            });
        }
    }
    None
}

/// Envoy's messages for a refused token (the 401 body).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("Jwt is missing")]
    Missing,
    #[error("Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections")]
    BadFormat,
    #[error("Jwt issuer is not configured")]
    UnknownIssuer,
    #[error("Jwt verification fails")]
    Verification,
    #[error("Jwt is expired")]
    Expired,
    #[error("Jwt not yet valid")]
    NotYetValid,
    #[error("Audiences in Jwt are not allowed")]
    Audience,
    #[error("Jwks doesn't have key to match kid or alg from Jwt")]
    NoKey,
    #[error("Jwks remote fetch is failed")]
    JwksFetchFailed,
}

/// What a verified request carries on.
pub struct Verified {
    /// `{payload_in_metadata: payload}` for the RBAC filters.
    pub metadata: serde_json::Value,
}

fn unverified_claims(token: &str) -> Result<serde_json::Value, JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [_, payload, _] = parts.as_slice() else {
        return Err(JwtError::BadFormat);
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| JwtError::BadFormat)?;
    serde_json::from_slice(&bytes).map_err(|_| JwtError::BadFormat)
}

fn verify(provider: &Provider, token: &str) -> Result<serde_json::Value, JwtError> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::BadFormat)?;
    let jwks = provider.keys()?;
    let candidates: Vec<_> = jwks
        .keys
        .keys
        .iter()
        .filter(|k| match (&header.kid, &k.common.key_id) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        })
        .collect();
    if candidates.is_empty() {
        return Err(JwtError::NoKey);
    }
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims = HashSet::new();
    validation.validate_aud = false;
    validation.validate_nbf = true;
    validation.leeway = 60;
    let mut last = JwtError::Verification;
    for key in candidates {
        let Ok(decoding) = DecodingKey::from_jwk(key) else {
            continue;
        };
        match jsonwebtoken::decode::<serde_json::Value>(token, &decoding, &validation) {
            Ok(data) => return Ok(data.claims),
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind;
                last = match e.kind() {
                    ErrorKind::ExpiredSignature => return Err(JwtError::Expired),
                    ErrorKind::ImmatureSignature => return Err(JwtError::NotYetValid),
                    _ => JwtError::Verification,
                };
            }
        }
    }
    Err(last)
}

fn audience_ok(provider: &Provider, claims: &serde_json::Value) -> bool {
    if provider.audiences.is_empty() {
        return true;
    }
    let have: Vec<&str> = match claims.get("aud") {
        Some(serde_json::Value::String(s)) => vec![s.as_str()],
        Some(serde_json::Value::Array(items)) => items.iter().filter_map(|v| v.as_str()).collect(),
        _ => Vec::new(),
    };
    have.iter()
        .any(|a| provider.audiences.iter().any(|w| w == a))
}

impl JwtAuthn {
    /// Checks the request; on success its headers are rewritten as configured.
    pub fn check(&self, request: &mut http::request::Parts) -> Result<Option<Verified>, JwtError> {
        let found: Vec<(&Provider, Found)> = self
            .providers
            .iter()
            .filter_map(|p| find(p, request).map(|f| (p, f)))
            .collect();
        if found.is_empty() {
            return if self.allow_missing {
                Ok(None)
            } else {
                Err(JwtError::Missing)
            };
        }
        let mut error = JwtError::UnknownIssuer;
        for (provider, found) in &found {
            let claims = match unverified_claims(&found.token) {
                Ok(c) => c,
                Err(e) => {
                    error = e;
                    continue;
                }
            };
            if claims.get("iss").and_then(|v| v.as_str()) != Some(provider.issuer.as_str())
                && !provider.issuer.is_empty()
            {
                continue;
            }
            let claims = match verify(provider, &found.token) {
                Ok(c) => c,
                Err(e) => {
                    error = e;
                    continue;
                }
            };
            if !audience_ok(provider, &claims) {
                error = JwtError::Audience;
                continue;
            }
            self.rewrite(provider, found, &claims, request);
            let mut metadata = serde_json::Map::new();
            metadata.insert(provider.payload_in_metadata.clone(), claims);
            return Ok(Some(Verified {
                metadata: serde_json::Value::Object(metadata),
            }));
        }
        Err(error)
    }

    fn rewrite(
        &self,
        provider: &Provider,
        found: &Found,
        claims: &serde_json::Value,
        request: &mut http::request::Parts,
    ) {
        if !provider.forward
            && let Some(name) = &found.header
        {
            request.headers.remove(name.as_str());
        }
        if !provider.forward_payload_header.is_empty()
            && let Some(payload) = found.token.split('.').nth(1)
            && let (Ok(name), Ok(value)) = (
                HeaderName::try_from(provider.forward_payload_header.as_str()),
                HeaderValue::from_str(payload),
            )
        {
            request.headers.insert(name, value);
        }
        for (header, claim) in &provider.claim_to_headers {
            let text = match claims.get(claim) {
                Some(serde_json::Value::String(s)) => s.clone(),
                Some(v @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
                    v.to_string()
                }
                _ => continue,
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(header.as_str()),
                HeaderValue::from_str(&text),
            ) {
                request.headers.insert(name, value);
            }
        }
    }
}
