//! DestinationRules and VirtualServices by the hosts they name, built once per proxy view:
//! translating a thousand services otherwise scans every rule for every service, resolving
//! each rule's short host names again each time.

use std::collections::HashMap;

use lateen_api::Object;
use lateen_api::host::{host_serves, hosts_match, is_wildcard, resolve_short_name};

/// Rules of one kind by resolved host. Each entry keeps the rule's position in the
/// configuration, so "the first in config order" stays the answer.
pub struct HostIndex<'a, T> {
    exact: HashMap<String, Vec<(usize, &'a Object<T>)>>,
    wildcard: Vec<(usize, String, &'a Object<T>)>,
}

impl<'a, T> HostIndex<'a, T> {
    /// Indexes `rules` (with their config positions) under every host `hosts_of` gives,
    /// resolved against the rule's namespace.
    pub fn new(
        rules: impl Iterator<Item = (usize, &'a Object<T>)>,
        hosts_of: impl Fn(&'a Object<T>) -> Vec<&'a str>,
        domain_suffix: &str,
    ) -> Self {
        let mut index = Self {
            exact: HashMap::new(),
            wildcard: Vec::new(),
        };
        for (position, rule) in rules {
            for host in hosts_of(rule) {
                let resolved = resolve_short_name(host, rule.namespace(), domain_suffix);
                if is_wildcard(&resolved) {
                    index.wildcard.push((position, resolved, rule));
                } else {
                    let at = index.exact.entry(resolved).or_default();
                    // A rule naming the same host twice counts once.
                    if at.last().is_none_or(|(p, _)| *p != position) {
                        at.push((position, rule));
                    }
                }
            }
        }
        index
    }

    /// Rules whose host serves `hostname` (contains every name it can stand for), in config
    /// order, each with its resolved host: DestinationRule lookup.
    pub fn serving(&self, hostname: &str) -> Vec<(&str, &'a Object<T>)> {
        let hostname = hostname.to_ascii_lowercase();
        let mut out: Vec<(usize, &str, &'a Object<T>)> = Vec::new();
        if let Some((host, rules)) = self.exact.get_key_value(&hostname) {
            out.extend(rules.iter().map(|(p, r)| (*p, host.as_str(), *r)));
        }
        for (position, host, rule) in &self.wildcard {
            if host_serves(host, &hostname) {
                out.push((*position, host.as_str(), *rule));
            }
        }
        out.sort_by_key(|(p, _, _)| *p);
        out.into_iter().map(|(_, h, r)| (h, r)).collect()
    }

    /// Rules with a host that can name a common host with `hostname`, in config order:
    /// VirtualService lookup.
    pub fn matching(&self, hostname: &str) -> Vec<&'a Object<T>> {
        let hostname = hostname.to_ascii_lowercase();
        let hostname = hostname.as_str();
        let mut out: Vec<(usize, &'a Object<T>)> = Vec::new();
        if is_wildcard(hostname) {
            // A wildcard may cover exact hosts of any name: look at them all.
            for (host, rules) in &self.exact {
                if hosts_match(host, hostname) {
                    out.extend(rules.iter().copied());
                }
            }
        } else if let Some(rules) = self.exact.get(hostname) {
            out.extend(rules.iter().copied());
        }
        for (position, host, rule) in &self.wildcard {
            if hosts_match(host, hostname) {
                out.push((*position, *rule));
            }
        }
        out.sort_by_key(|(p, _)| *p);
        out.dedup_by_key(|(p, _)| *p);
        out.into_iter().map(|(_, r)| r).collect()
    }
}
