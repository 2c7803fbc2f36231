//! Istio's `destinationrule.CaCertificateAnalyzer`: a DestinationRule that originates TLS
//! (`SIMPLE` or `MUTUAL`) without `caCertificates` does not verify the server's identity
//! (IST0128 at the rule level, IST0129 per port), unless it takes a `credentialName` and has a
//! `workloadSelector` (Istio's exception).

use crate::diag::{self, Message};
use crate::error::{FieldIssue, FieldPath};
use crate::networking::{ClientTlsMode, ClientTlsSettings, DestinationRule};
use crate::parse::Document;

/// IST0128 and IST0129 for one DestinationRule document.
pub(super) fn check(
    doc: &Document,
    dr: &DestinationRule,
    namespace: &str,
    name: &str,
) -> Vec<Message> {
    let mut out = Vec::new();
    let Some(policy) = &dr.traffic_policy else {
        return out;
    };
    let unverified = |tls: &ClientTlsSettings| {
        matches!(tls.mode(), ClientTlsMode::Simple | ClientTlsMode::Mutual)
            && tls.ca_certificates.as_deref().unwrap_or("").is_empty()
            && !(tls
                .credential_name
                .as_deref()
                .is_some_and(|c| !c.is_empty())
                && dr.workload_selector.is_some())
    };
    let path = FieldPath::root().field("spec").field("trafficPolicy");
    if let Some(tls) = &policy.tls
        && unverified(tls)
    {
        let text = format!(
            "DestinationRule {namespace}/{name} in namespace {namespace} has TLS mode set to {} but no caCertificates are set to validate server identity for host: {}",
            crate::validate::wire_name(&tls.mode()),
            dr.host
        );
        out.push(Message {
            kind: &diag::NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL,
            problem: doc.locate(FieldIssue::warning(path.field("tls"), text)),
        });
    }
    for (i, port) in policy.port_level_settings.iter().enumerate() {
        let Some(tls) = &port.tls else { continue };
        if !unverified(tls) {
            continue;
        }
        // Istio prints the port selector in protobuf text form.
        let selector = port
            .port
            .and_then(|p| p.number)
            .map_or(String::new(), |n| format!("number:{n}"));
        let text = format!(
            "DestinationRule {namespace}/{name} in namespace {namespace} has TLS mode set to {} but no caCertificates are set to validate server identity for host: {} at port {selector}",
            crate::validate::wire_name(&tls.mode()),
            dr.host
        );
        let p = path.field("portLevelSettings").index(i).field("tls");
        out.push(Message {
            kind: &diag::NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL,
            problem: doc.locate(FieldIssue::warning(p, text)),
        });
    }
    out
}
