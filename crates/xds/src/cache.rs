//! The snapshot cache the control plane writes and the streams watch. Each node id has its own
//! watch channel, so setting one proxy's snapshot wakes only that proxy's streams, and each
//! stream then sends only the types whose resources actually changed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use tokio::sync::watch;

use crate::snapshot::{Snapshot, StampedSnapshot};

type Slot = watch::Sender<Option<StampedSnapshot>>;

/// Latest snapshot per node id.
#[derive(Debug, Default)]
pub struct SnapshotCache {
    nodes: Mutex<HashMap<String, Slot>>,
}

impl SnapshotCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Slot>> {
        // A panic while holding this lock cannot leave the map half-updated (single inserts).
        self.nodes
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Sets the whole snapshot of one proxy. Connected streams of that proxy push what changed;
    /// an identical snapshot wakes nobody.
    pub fn set_snapshot(&self, node_id: &str, snapshot: Snapshot) {
        self.set_shared(node_id, Arc::new(snapshot));
    }

    /// Like [`SnapshotCache::set_snapshot`] for a snapshot shared by many proxies (no copy).
    pub fn set_shared(&self, node_id: &str, snapshot: Arc<Snapshot>) {
        let mut nodes = self.lock();
        let slot = nodes
            .entry(node_id.to_string())
            .or_insert_with(|| watch::channel(None).0);
        slot.send_if_modified(|current| {
            if current
                .as_ref()
                .is_some_and(|c| Arc::ptr_eq(&c.snapshot, &snapshot) || *c.snapshot == *snapshot)
            {
                return false;
            }
            *current = Some(StampedSnapshot {
                snapshot,
                set_at: Instant::now(),
            });
            true
        });
    }

    /// Changes part of a proxy's snapshot (for example one type) starting from its current one.
    pub fn update(&self, node_id: &str, change: impl FnOnce(&mut Snapshot)) {
        let mut next = self
            .snapshot(node_id)
            .map(|s| (*s).clone())
            .unwrap_or_default();
        change(&mut next);
        self.set_snapshot(node_id, next);
    }

    /// The current snapshot of a proxy, if any.
    pub fn snapshot(&self, node_id: &str) -> Option<Arc<Snapshot>> {
        self.lock()
            .get(node_id)
            .and_then(|slot| slot.borrow().as_ref().map(|s| s.snapshot.clone()))
    }

    /// Forgets a proxy's snapshot (streams still connected keep what they have).
    pub fn clear(&self, node_id: &str) {
        self.lock().remove(node_id);
    }

    /// Node ids that have a snapshot.
    pub fn node_ids(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    pub(crate) fn watch(&self, node_id: &str) -> watch::Receiver<Option<StampedSnapshot>> {
        self.lock()
            .entry(node_id.to_string())
            .or_insert_with(|| watch::channel(None).0)
            .subscribe()
    }
}
