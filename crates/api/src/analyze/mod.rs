//! Checks across resources, in the spirit of `istioctl analyze` (validation looks at one
//! resource at a time): the same resource defined twice, route destinations naming a subset no
//! DestinationRule defines, VirtualServices bound to a Gateway that does not exist; and
//! Istio's analyzers that need only the files ([`ca_certificates`], [`gateway_certs`], [`gateways`],
//! [`mesh_hosts`], [`se_protocols`]).
//!
//! All three are errors, as in `istioctl analyze`: Istio reports a missing subset or gateway
//! as IST0101 ReferencedResourceNotFound (Error), worded and located as Istio does (the line of
//! the destination's `host`); see [`crate::diag`].

mod ca_certificates;
mod gateway_certs;
mod gateways;
mod mesh_hosts;
mod se_protocols;

use std::collections::BTreeMap;

use crate::diag::{self, Message, MessageType};
use crate::error::{ConfigError, FieldIssue, FieldPath, PathSegment, Severity};
use crate::host::{host_is_subset_of, resolve_short_name};
use crate::networking::{Destination, DestinationRule, VirtualService};
use crate::parse::Document;
use crate::resource::Resource;
use crate::scope::GatewayRef;

/// Runs the cross-resource checks over every document given (usually all sources of a config
/// directory); `domain_suffix` is the cluster domain (`cluster.local`).
pub fn analyze(documents: &[Document], domain_suffix: &str) -> Vec<ConfigError> {
    analyze_messages(documents, domain_suffix)
        .into_iter()
        .map(|m| m.problem)
        .collect()
}

/// [`analyze`] with istioctl's message type of each finding.
pub fn analyze_messages(documents: &[Document], domain_suffix: &str) -> Vec<Message> {
    let mut out = Vec::new();
    let mut seen: BTreeMap<_, &Document> = BTreeMap::new();
    for doc in documents {
        let key = doc.resource.key();
        if let Some(first) = seen.get(&key) {
            let message = format!(
                "{key} is defined more than once (first in {} document {})",
                first.source_name,
                first.index + 1
            );
            out.push(Message {
                kind: &diag::DUPLICATE_RESOURCE,
                problem: doc.locate(FieldIssue::error(
                    FieldPath::root().field("metadata").field("name"),
                    message,
                )),
            });
        } else {
            seen.insert(key, doc);
        }
    }
    let rules: Vec<(String, &DestinationRule)> = documents
        .iter()
        .filter_map(|d| d.resource.as_destination_rule())
        .map(|o| {
            (
                resolve_short_name(&o.spec.host, o.namespace(), domain_suffix),
                &o.spec,
            )
        })
        .collect();
    let gateways = gateways::gateway_hosts(documents);
    out.extend(mesh_hosts::check(documents, domain_suffix));
    out.extend(gateway_certs::check(documents));
    out.extend(se_protocols::check(documents));
    for doc in documents {
        if let Resource::DestinationRule(dr) = &doc.resource {
            out.extend(ca_certificates::check(
                doc,
                &dr.spec,
                dr.namespace(),
                dr.name(),
            ));
        }
        if let Resource::VirtualService(vs) = &doc.resource {
            let ctx = VsContext {
                namespace: vs.namespace(),
                name: vs.name(),
                domain_suffix,
                rules: &rules,
                gateways: &gateways,
            };
            for (kind, issue) in ctx.check(&vs.spec) {
                out.push(Message {
                    kind,
                    problem: doc.locate(issue),
                });
            }
        }
    }
    out
}

struct VsContext<'a> {
    namespace: &'a str,
    name: &'a str,
    domain_suffix: &'a str,
    rules: &'a [(String, &'a DestinationRule)],
    gateways: &'a BTreeMap<GatewayRef, Vec<String>>,
}

impl VsContext<'_> {
    fn check(&self, vs: &VirtualService) -> Vec<(&'static MessageType, FieldIssue)> {
        let spec = FieldPath::root().field("spec");
        let mut issues = Vec::new();
        let mut dest = |path: FieldPath, d: &Destination| {
            // Istio names mirrors apart from routes in its message.
            let what = if path
                .segments()
                .iter()
                .any(|s| matches!(s, PathSegment::Field(f) if f == "mirror" || f == "mirrors"))
            {
                "mirror+subset"
            } else {
                "host+subset"
            };
            if let Some(issue) = self.check_subset(path, d, what) {
                issues.push((&diag::REFERENCED_RESOURCE_NOT_FOUND, issue));
            }
        };
        for (i, http) in vs.http.iter().enumerate() {
            let p = spec.field("http").index(i);
            for (j, r) in http.route.iter().enumerate() {
                if let Some(d) = &r.destination {
                    dest(p.field("route").index(j).field("destination"), d);
                }
            }
            if let Some(m) = &http.mirror {
                dest(p.field("mirror"), m);
            }
            for (j, m) in http.mirrors.iter().enumerate() {
                if let Some(d) = &m.destination {
                    dest(p.field("mirrors").index(j).field("destination"), d);
                }
            }
        }
        for (kind, routes) in [
            ("tcp", vs.tcp.iter().map(|r| &r.route).collect::<Vec<_>>()),
            ("tls", vs.tls.iter().map(|r| &r.route).collect::<Vec<_>>()),
        ] {
            for (i, route) in routes.into_iter().enumerate() {
                for (j, r) in route.iter().enumerate() {
                    if let Some(d) = &r.destination {
                        dest(
                            spec.field(kind)
                                .index(i)
                                .field("route")
                                .index(j)
                                .field("destination"),
                            d,
                        );
                    }
                }
            }
        }
        for (i, g) in vs.gateways.iter().enumerate() {
            let vs_ref = gateways::VirtualServiceRef {
                namespace: self.namespace,
                name: self.name,
                hosts: &vs.hosts,
            };
            let path = spec.field("gateways").index(i);
            issues.extend(gateways::check(&vs_ref, &path, g, self.gateways));
        }
        issues
    }

    /// Istio's wording and place: the `host` line of the destination, `"host+subset"` as
    /// written.
    fn check_subset(&self, path: FieldPath, d: &Destination, what: &str) -> Option<FieldIssue> {
        let subset = d.subset.as_deref()?;
        let fqdn = resolve_short_name(&d.host, self.namespace, self.domain_suffix);
        let defined = self
            .rules
            .iter()
            .filter(|(rule_host, _)| host_is_subset_of(&fqdn, rule_host))
            .any(|(_, dr)| dr.subset(subset).is_some());
        if defined {
            return None;
        }
        let message = format!(
            "Referenced {what} in destinationrule not found: \"{}+{subset}\"",
            d.host
        );
        Some(FieldIssue::error(path.field("host"), message))
    }
}

/// A message about a whole resource, located at its `metadata.name` as Istio's analyzers do;
/// an Error-level type makes it an error, any other a warning.
pub(super) fn at_name(doc: &Document, kind: &'static MessageType, text: String) -> Message {
    let path = FieldPath::root().field("metadata").field("name");
    let issue = if kind.level == diag::Level::Error {
        FieldIssue::error(path, text)
    } else {
        FieldIssue::warning(path, text)
    };
    Message {
        kind,
        problem: doc.locate(issue),
    }
}

/// Errors among `problems` (helper for callers that only gate on errors).
pub fn has_errors(problems: &[ConfigError]) -> bool {
    problems.iter().any(|p| p.severity == Severity::Error)
}
