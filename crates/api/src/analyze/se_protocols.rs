//! Istio's `serviceentry.ConflictingServiceEntryProtocolAnalyzer` (IST0177): ServiceEntries
//! visible in the same namespaces that give the same host and port different protocols.

use std::collections::{BTreeMap, BTreeSet};

use super::mesh_hosts::{ALL_NAMESPACES, export_scopes};
use crate::diag::{self, Message};
use crate::parse::Document;

/// (scope, host, port) -> (protocol, document index) of each ServiceEntry port.
type Index = BTreeMap<(String, String, u32), Vec<(String, usize)>>;

pub(super) fn check(documents: &[Document]) -> Vec<Message> {
    let mut index: Index = BTreeMap::new();
    for (i, doc) in documents.iter().enumerate() {
        let Some(se) = doc.resource.as_service_entry() else {
            continue;
        };
        for scope in export_scopes(&se.spec.export_to, se.namespace()) {
            for host in &se.spec.hosts {
                for port in &se.spec.ports {
                    let key = (scope.clone(), host.clone(), port.number);
                    let protocol = port.protocol.to_ascii_uppercase();
                    index.entry(key).or_default().push((protocol, i));
                }
            }
        }
    }
    let mut reported = BTreeSet::new();
    let mut out = Vec::new();
    for ((scope, host, port), entries) in &index {
        let mut entries = entries.clone();
        if scope != ALL_NAMESPACES {
            let all = (ALL_NAMESPACES.to_string(), host.clone(), *port);
            entries.extend(index.get(&all).into_iter().flatten().cloned());
        }
        let protocols: BTreeSet<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        if protocols.len() < 2 {
            continue;
        }
        let names: BTreeSet<String> = entries
            .iter()
            .map(|(_, i)| {
                let r = &documents[*i].resource;
                format!("{}/{}", r.namespace(), r.name())
            })
            .collect();
        let names = names.into_iter().collect::<Vec<_>>().join(", ");
        let protocols = protocols.into_iter().collect::<Vec<_>>().join(", ");
        for (_, i) in &entries {
            if !reported.insert(*i) {
                continue;
            }
            let text = format!(
                "Multiple ServiceEntries ({names}) define the same host {host:?} and port {port} with conflicting protocols ({protocols})."
            );
            let kind = &diag::CONFLICTING_SERVICE_ENTRY_PROTOCOL;
            out.push(super::at_name(&documents[*i], kind, text));
        }
    }
    out
}
