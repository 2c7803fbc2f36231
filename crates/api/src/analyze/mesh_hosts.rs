//! Istio's `virtualservice.ConflictingMeshGatewayHostsAnalyzer` (IST0109): two VirtualServices
//! bound to the mesh gateway that define the same host for the same namespaces leave the
//! choice between them undefined. Hosts are compared per export scope: a VirtualService
//! exported to all namespaces (`*` or no `exportTo`) conflicts with every other one whose host
//! it matches; one exported to named namespaces only with those exported to the same.

use std::collections::{BTreeMap, BTreeSet};

use crate::diag::{self, Message};
use crate::host::{hosts_match, resolve_short_name};
use crate::parse::Document;
use crate::scope::MESH_GATEWAY;

/// Export scope meaning "every namespace".
pub(super) const ALL_NAMESPACES: &str = "*";

/// The namespaces a resource is visible in, as Istio's analyzers scope it: `*` when exported
/// to all (no `exportTo`, or `*` in it), else the named ones with `.` as the resource's own.
pub(super) fn export_scopes(export_to: &[String], namespace: &str) -> BTreeSet<String> {
    if export_to.is_empty() || export_to.iter().any(|e| e == ALL_NAMESPACES) {
        return BTreeSet::from([ALL_NAMESPACES.to_string()]);
    }
    export_to
        .iter()
        .map(|e| {
            if e == "." {
                namespace.to_string()
            } else {
                e.clone()
            }
        })
        .collect()
}

/// IST0109 for every VirtualService that shares a mesh host with another.
pub(super) fn check(documents: &[Document], domain_suffix: &str) -> Vec<Message> {
    // (scope, host) -> indexes into `documents`
    let mut by_host: BTreeMap<(String, String), Vec<usize>> = BTreeMap::new();
    for (i, doc) in documents.iter().enumerate() {
        let Some(vs) = doc.resource.as_virtual_service() else {
            continue;
        };
        let gateways = &vs.spec.gateways;
        if !(gateways.is_empty() || gateways.iter().any(|g| g == MESH_GATEWAY)) {
            continue;
        }
        let ns = vs.namespace();
        for scope in export_scopes(&vs.spec.export_to, ns) {
            for h in &vs.spec.hosts {
                let fqdn = resolve_short_name(h, ns, domain_suffix);
                by_host.entry((scope.clone(), fqdn)).or_default().push(i);
            }
        }
    }
    let mut reported = BTreeSet::new();
    let mut out = Vec::new();
    for ((scope, fqdn), list) in &by_host {
        let mut list = list.clone();
        if scope != ALL_NAMESPACES {
            for ((other_scope, other_host), others) in &by_host {
                if other_scope == ALL_NAMESPACES && hosts_match(fqdn, other_host) {
                    list.extend(others);
                }
            }
        }
        if list.len() < 2 {
            continue;
        }
        let mut names: Vec<String> = list
            .iter()
            .map(|i| {
                let r = &documents[*i].resource;
                format!("{}/{}", r.namespace(), r.name())
            })
            .collect();
        names.sort();
        let names = names.join(",");
        for i in list {
            if !reported.insert(i) {
                continue;
            }
            let text = format!(
                "The VirtualServices {names} associated with mesh gateway define the same host {scope}/{fqdn} which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."
            );
            let kind = &diag::CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS;
            out.push(super::at_name(&documents[i], kind, text));
        }
    }
    out
}
