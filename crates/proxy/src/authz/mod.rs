//! Request authentication and authorization on inbound listeners: the JWT filter
//! ([`jwt`], Envoy's `jwt_authn`) and RBAC filters ([`rbac`], Envoy's HTTP and network
//! `rbac`) that lateend sends for Istio's RequestAuthentication and AuthorizationPolicy,
//! enforced per request ([`HttpAuthz::check`]: 401 from the JWT filter, 403
//! `RBAC: access denied`) and per connection ([`NetworkAuthz::allows`]: the connection is
//! closed).
//!
//! Who the peer is comes from [`ConnAuthz`], which the listener fills for each connection:
//! `peer_principal` is the identity of the peer's certificate once mutual TLS sets it; on a
//! plaintext connection it is `None` and principal matchers do not match, as in Envoy.

pub mod jwt;
pub mod matcher;
pub mod rbac;
pub mod remote_jwks;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

pub use matcher::Attributes;

/// Envoy's 403 body.
pub const RBAC_DENIED: &str = "RBAC: access denied";

/// What the connection tells authorization.
#[derive(Debug, Clone)]
pub struct ConnAuthz {
    /// Where the connection was going: the original destination, else the local address.
    pub destination: SocketAddr,
    /// The peer's SPIFFE identity (`spiffe://…`), from its certificate on mutual TLS.
    pub peer_principal: Option<Arc<str>>,
    /// The server name the client asked for in TLS.
    pub sni: Option<Arc<str>>,
}

/// The filters of an HTTP connection manager, in order: JWT, then the RBAC filters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpAuthz {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<jwt::JwtAuthn>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rbac: Vec<rbac::Rbac>,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// 401 with the JWT filter's message.
    Unauthenticated(String),
    /// 403 `RBAC: access denied`.
    Denied,
}

impl HttpAuthz {
    pub fn is_empty(&self) -> bool {
        self.jwt.is_none() && self.rbac.is_empty()
    }

    /// Runs the filters on a request (its headers may be rewritten by the JWT filter).
    pub fn check(
        &self,
        request: &mut http::request::Parts,
        direct_remote: IpAddr,
        conn: &ConnAuthz,
    ) -> Result<(), Refusal> {
        let verified = match &self.jwt {
            Some(filter) => filter
                .check(request)
                .map_err(|e| Refusal::Unauthenticated(e.to_string()))?,
            None => None,
        };
        if self.rbac.is_empty() {
            return Ok(());
        }
        let attributes = Attributes {
            request: Some(request),
            direct_remote,
            remote: remote_address(request).unwrap_or(direct_remote),
            destination: conn.destination,
            peer_principal: conn.peer_principal.as_deref(),
            sni: conn.sni.as_deref(),
            jwt_metadata: verified.as_ref().map(|v| &v.metadata),
        };
        if self.rbac.iter().all(|f| f.allows(&attributes)) {
            Ok(())
        } else {
            Err(Refusal::Denied)
        }
    }
}

/// The original client as Envoy sees it without `use_remote_address`: the last address of
/// `x-forwarded-for`.
fn remote_address(request: &http::request::Parts) -> Option<IpAddr> {
    let values: Vec<&str> = request
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let last = values.last()?.rsplit(',').next()?.trim();
    last.parse().ok()
}

/// The RBAC filters of a TCP chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NetworkAuthz {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rbac: Vec<rbac::Rbac>,
}

impl NetworkAuthz {
    pub fn is_empty(&self) -> bool {
        self.rbac.is_empty()
    }

    /// Whether the connection may go on.
    pub fn allows(&self, peer: IpAddr, conn: &ConnAuthz) -> bool {
        let attributes = Attributes {
            request: None,
            direct_remote: peer,
            remote: peer,
            destination: conn.destination,
            peer_principal: conn.peer_principal.as_deref(),
            sni: conn.sni.as_deref(),
            jwt_metadata: None,
        };
        self.rbac.iter().all(|f| f.allows(&attributes))
    }
}
