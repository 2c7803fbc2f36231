//! Subscriptions shared between streams. A thousand sidecars with the same clusters ask for
//! the same thousand endpoint names; each stream keeping its own set of those strings would
//! cost more than everything else the stream holds. Equal sets are stored once and shared.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

/// The resource names a stream subscribes to for one type.
pub(crate) type Names = Arc<BTreeSet<String>>;

/// Sweep unused sets after this many new ones.
const SWEEP_EVERY: usize = 256;

/// Equal name sets, stored once.
#[derive(Debug, Default)]
pub(crate) struct Subscriptions {
    inner: Mutex<Pool>,
}

#[derive(Debug, Default)]
struct Pool {
    sets: HashSet<Names>,
    added_since_sweep: usize,
}

impl Subscriptions {
    /// The shared copy of `names`.
    pub fn intern(&self, names: BTreeSet<String>) -> Names {
        if names.is_empty() {
            return Names::default();
        }
        // A poisoned lock only means a panic elsewhere; the set itself is always whole.
        let mut pool = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(existing) = pool.sets.get(&names) {
            return existing.clone();
        }
        pool.added_since_sweep += 1;
        if pool.added_since_sweep >= SWEEP_EVERY {
            pool.added_since_sweep = 0;
            pool.sets.retain(|set| Arc::strong_count(set) > 1);
        }
        let shared = Arc::new(names);
        pool.sets.insert(shared.clone());
        shared
    }

    /// Sets currently stored (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().map(|p| p.sets.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn equal_sets_are_shared_and_unused_ones_swept() {
        let pool = Subscriptions::default();
        let a = pool.intern(set(&["x", "y"]));
        let b = pool.intern(set(&["y", "x"]));
        assert!(Arc::ptr_eq(&a, &b));
        assert!(pool.intern(BTreeSet::new()).is_empty());
        for i in 0..SWEEP_EVERY {
            drop(pool.intern(set(&[&format!("n{i}")])));
        }
        assert!(
            pool.len() <= 3,
            "unused sets were swept: {} left",
            pool.len()
        );
        assert!(a.contains("x"));
    }
}
