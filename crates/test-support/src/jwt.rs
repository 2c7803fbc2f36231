//! A token issuer for RequestAuthentication tests: an ECDSA P-256 key (ES256) with its JWKS,
//! and signed tokens with any claims.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

/// One issuer: `iss`, a key id, the private key and the public JWKS.
pub struct TestIssuer {
    pub issuer: String,
    pub kid: String,
    key: EncodingKey,
    jwks: String,
}

#[derive(Debug, thiserror::Error)]
pub enum IssuerError {
    #[error("key generation: {0}")]
    Key(#[from] rcgen::Error),
    #[error("signing: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl TestIssuer {
    /// A new issuer with a fresh key.
    pub fn new(issuer: &str, kid: &str) -> Result<TestIssuer, IssuerError> {
        let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let raw = pair.public_key_raw();
        // Uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let (x, y) = (b64(&raw[1..33]), b64(&raw[33..65]));
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "kid": kid, "x": x, "y": y
        }]})
        .to_string();
        let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())?;
        Ok(TestIssuer {
            issuer: issuer.to_string(),
            kid: kid.to_string(),
            key,
            jwks,
        })
    }

    /// The JWKS document (JSON text) with the public key.
    pub fn jwks(&self) -> &str {
        &self.jwks
    }

    /// A token with `iss` set to this issuer, `exp` an hour ahead unless `claims` sets it,
    /// and `claims` merged in.
    pub fn token(&self, claims: serde_json::Value) -> Result<String, IssuerError> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut body = serde_json::json!({"iss": self.issuer, "exp": now + 3600, "iat": now});
        if let (Some(into), Some(from)) = (body.as_object_mut(), claims.as_object()) {
            for (k, v) in from {
                into.insert(k.clone(), v.clone());
            }
        }
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, &body, &self.key)?)
    }
}
