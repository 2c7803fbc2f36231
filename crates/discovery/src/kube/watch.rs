//! One watch of one kind, turned into whole changes of that kind's state.
//!
//! `kube::runtime::watcher` lists, then watches; on a broken watch it resumes from the last
//! resource version, and on 410 Gone (or any restart) it lists again. A list arrives as
//! `Init`, `InitApply`..., `InitDone`: those objects are collected here and handed on as ONE
//! [`Change::Replace`] of the kind's state, so a relist never shows a half-filled kind (no
//! endpoints lost in between) and objects deleted while the watch was down disappear.
//! Conversion happens in this task, before anything is locked.
//!
//! Errors (API server down, a CRD not installed, RBAC) are retried with kube's default
//! backoff (0.8 s doubling to 30 s); the first of a run is logged as a warning, the rest at
//! debug level until the watch works again.

use std::collections::{HashMap, HashSet};
use std::fmt::Debug;

use kube::Api;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::de::DeserializeOwned;
use tokio_stream::StreamExt as _;

use crate::metrics::k8s_events::{self, Event as CountedEvent};

/// A whole change of one kind's state, keyed by `namespace/name` (or `name`).
#[derive(Debug)]
pub enum Change<T> {
    /// The complete state after a (re)list.
    Replace(HashMap<String, T>),
    Upsert(String, T),
    Remove(String),
    /// The kind cannot be listed yet (its CRD is not installed, RBAC, API server down): sent
    /// once, before the first list, so readiness need not wait for it. State is unchanged.
    Unavailable,
}

impl<T> Change<T> {
    /// Whether the watch has settled with this change (a list, or unavailable at start).
    pub fn settles(&self) -> bool {
        matches!(self, Change::Replace(_) | Change::Unavailable)
    }
}

/// `namespace/name`, or `name` for cluster-scoped objects.
pub fn key_of<K: kube::Resource>(obj: &K) -> String {
    let meta = obj.meta();
    let name = meta.name.clone().unwrap_or_default();
    match meta.namespace.as_deref() {
        Some(ns) if !ns.is_empty() => format!("{ns}/{name}"),
        _ => name,
    }
}

/// Watches `api` forever, handing every change to `apply`. `what` names the kind in logs.
pub async fn run<K, T, C, A>(
    api: Api<K>,
    config: watcher::Config,
    what: String,
    convert: C,
    mut apply: A,
) where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    C: Fn(&K) -> Option<T>,
    A: FnMut(Change<T>),
{
    let stream = watcher::watcher(api, config).default_backoff();
    tokio::pin!(stream);
    let mut listing: Option<HashMap<String, T>> = None;
    let mut counted = EventCounter::default();
    let mut failing = false;
    let mut listed = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                if failing {
                    tracing::debug!(kind = %what, error = %e, "watch still failing; retrying");
                } else {
                    tracing::warn!(kind = %what, error = %e, "watch failed; retrying with backoff (logged once until it works)");
                    failing = true;
                    if !listed {
                        apply(Change::Unavailable);
                    }
                }
                continue;
            }
        };
        // `Init` comes before the list is even asked for: only a delivered list or event
        // shows that the watch works.
        if failing && !matches!(event, Event::Init | Event::InitApply(_)) {
            tracing::info!(kind = %what, "watch works again");
            failing = false;
        }
        match event {
            Event::Init => listing = Some(HashMap::new()),
            Event::InitApply(obj) => {
                if let (Some(list), Some(value)) = (listing.as_mut(), convert(&obj)) {
                    list.insert(key_of(&obj), value);
                }
            }
            Event::InitDone => {
                let all = listing.take().unwrap_or_default();
                counted.relisted(&what, all.keys());
                if listed {
                    tracing::info!(kind = %what, objects = all.len(), "relisted after a watch restart; state replaced");
                } else {
                    tracing::debug!(kind = %what, objects = all.len(), "list complete");
                }
                listed = true;
                apply(Change::Replace(all));
            }
            Event::Apply(obj) => {
                counted.applied(&what, key_of(&obj));
                match convert(&obj) {
                    Some(value) => apply(Change::Upsert(key_of(&obj), value)),
                    None => apply(Change::Remove(key_of(&obj))),
                }
            }
            Event::Delete(obj) => {
                counted.deleted(&what, &key_of(&obj));
                apply(Change::Remove(key_of(&obj)))
            }
        }
    }
}

/// Tells adds from updates for istiod's `pilot_k8s_*_events` (a watch's `Apply` is either),
/// by the keys this watch has seen.
#[derive(Default)]
struct EventCounter {
    known: HashSet<String>,
}

impl EventCounter {
    fn applied(&mut self, what: &str, key: String) {
        let event = match self.known.insert(key) {
            true => CountedEvent::Add,
            false => CountedEvent::Update,
        };
        k8s_events::record(what, event, 1);
    }

    fn deleted(&mut self, what: &str, key: &str) {
        if self.known.remove(key) {
            k8s_events::record(what, CountedEvent::Delete, 1);
        }
    }

    /// A (re)list: objects not seen before were added, those missing from it deleted.
    fn relisted<'a>(&mut self, what: &str, keys: impl Iterator<Item = &'a String>) {
        let listed: HashSet<String> = keys.cloned().collect();
        let added = listed.difference(&self.known).count() as u64;
        let deleted = self.known.difference(&listed).count() as u64;
        k8s_events::record(what, CountedEvent::Add, added);
        k8s_events::record(what, CountedEvent::Delete, deleted);
        self.known = listed;
    }
}

impl<T: PartialEq> Change<T> {
    /// Applies this change to a map holding the kind's state; whether the state changed (a
    /// Pod's status update that leaves what lateend keeps of it as it was does not).
    pub fn apply_to(self, map: &mut HashMap<String, T>) -> bool {
        match self {
            Change::Replace(all) => {
                let changed = *map != all;
                *map = all;
                changed
            }
            Change::Upsert(key, value) => {
                if map.get(&key) == Some(&value) {
                    return false;
                }
                map.insert(key, value);
                true
            }
            Change::Remove(key) => map.remove(&key).is_some(),
            Change::Unavailable => false,
        }
    }
}
