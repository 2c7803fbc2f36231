//! What "ready" means for `/ready` (the rendered Deployment's readiness probe on 8080, and the
//! debug port): every condition registered at start has been met — the listeners serve, the
//! first configuration is loaded, and (when lateend reads a cluster) the first sync of each
//! watched kind is done. Conditions are registered before serving starts, so the probe can
//! never see "ready" between two of them.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

/// The set of conditions still pending.
#[derive(Debug, Default)]
pub struct Readiness {
    pending: Mutex<BTreeSet<String>>,
}

/// One pending condition; [`Gate::done`] marks it met. Dropping it without `done` keeps
/// lateend unready, which is what a failed start should look like to a probe.
#[derive(Debug)]
#[must_use = "a gate that is never done keeps lateend unready"]
pub struct Gate {
    readiness: Arc<Readiness>,
    name: String,
}

impl Readiness {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Registers a condition `name` (shown by `/ready` while pending).
    pub fn gate(self: &Arc<Self>, name: impl Into<String>) -> Gate {
        let name = name.into();
        self.lock().insert(name.clone());
        Gate {
            readiness: self.clone(),
            name,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.lock().is_empty()
    }

    /// The conditions not met yet, sorted.
    pub fn pending(&self) -> Vec<String> {
        self.lock().iter().cloned().collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
        // Inserts and removes are whole; a panic elsewhere cannot leave the set half-written.
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Gate {
    pub fn done(self) {
        self.readiness.lock().remove(&self.name);
        tracing::debug!(condition = %self.name, "readiness condition met");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_when_every_gate_is_done() {
        let r = Readiness::new();
        assert!(r.is_ready());
        let listeners = r.gate("listeners");
        let sync = r.gate("kubernetes: first sync");
        assert!(!r.is_ready());
        listeners.done();
        assert_eq!(r.pending(), ["kubernetes: first sync"]);
        sync.done();
        assert!(r.is_ready());
    }
}
