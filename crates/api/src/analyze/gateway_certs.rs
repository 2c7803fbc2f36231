//! Istio's `gateway.CertificateAnalyzer` (IST0138): two Gateways selecting the same workloads
//! that serve the same certificate (same `credentialName`, or same certificate and key files)
//! let an HTTP/2 client reuse a connection for the other Gateway's hosts and get 404s.

use std::collections::BTreeMap;

use crate::diag::{self, Message};
use crate::networking::{Gateway, ServerTlsSettings};
use crate::parse::Document;

/// IST0138, once per pair of servers sharing a certificate, on the Gateway whose selector is
/// contained in the other's (an empty selector is contained in every one), as Istio reports.
pub(super) fn check(documents: &[Document]) -> Vec<Message> {
    let gateways: Vec<(&Document, &Gateway, String)> = documents
        .iter()
        .filter_map(|d| {
            let gw = d.resource.as_gateway()?;
            Some((d, &gw.spec, format!("{}/{}", gw.namespace(), gw.name())))
        })
        .collect();
    let mut out = Vec::new();
    for (doc, current, current_name) in &gateways {
        for (_, other, other_name) in &gateways {
            if current_name == other_name || !selector_subset(&current.selector, &other.selector) {
                continue;
            }
            for a in current.servers.iter().filter_map(|s| s.tls.as_ref()) {
                for b in other.servers.iter().filter_map(|s| s.tls.as_ref()) {
                    if !same_certificate(a, b) {
                        continue;
                    }
                    let text = format!(
                        "Duplicate certificate in multiple gateways [{current_name} {other_name}] may cause 404s if clients re-use HTTP2 connections."
                    );
                    let kind = &diag::GATEWAY_DUPLICATE_CERTIFICATE;
                    out.push(super::at_name(doc, kind, text));
                }
            }
        }
    }
    out
}

/// Every label of `x` is in `y` with the same value.
fn selector_subset(x: &BTreeMap<String, String>, y: &BTreeMap<String, String>) -> bool {
    x.iter().all(|(k, v)| y.get(k) == Some(v))
}

/// A field that is set and not empty.
fn set(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.is_empty())
}

fn same_certificate(a: &ServerTlsSettings, b: &ServerTlsSettings) -> bool {
    match (set(&a.credential_name), set(&b.credential_name)) {
        (Some(x), Some(y)) => x == y,
        (None, None) => {
            let certs = (set(&a.server_certificate), set(&b.server_certificate));
            let keys = (set(&a.private_key), set(&b.private_key));
            matches!((certs, keys), ((Some(c1), Some(c2)), (Some(k1), Some(k2))) if c1 == c2 && k1 == k2)
        }
        _ => false,
    }
}
