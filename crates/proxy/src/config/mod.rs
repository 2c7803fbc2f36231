//! Configuration: the model ([`model`]), its YAML bootstrap ([`bootstrap`]), checks and
//! compilation into the immutable [`Snapshot`] the data path reads, and the [`ConfigStore`]
//! that swaps snapshots atomically.

pub mod bootstrap;
pub mod compile;
pub mod duration;
pub mod model;
pub mod policy;
pub mod snapshot;
pub mod tracing;

pub use model::ProxyConfig;
pub use snapshot::Snapshot;

use arc_swap::ArcSwap;
use std::sync::Arc;

/// Holds the live snapshot. Readers take a cheap reference per connection; an update
/// replaces the whole snapshot at once, and connections keep the one they started with.
pub struct ConfigStore {
    current: ArcSwap<Snapshot>,
    version: std::sync::atomic::AtomicU64,
}

impl ConfigStore {
    pub fn new(initial: Snapshot) -> ConfigStore {
        ConfigStore {
            current: ArcSwap::from_pointee(initial),
            version: 1.into(),
        }
    }

    pub fn load(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    pub fn replace(&self, next: Snapshot) {
        self.current.store(Arc::new(next));
        self.version
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn version(&self) -> u64 {
        self.version.load(std::sync::atomic::Ordering::Relaxed)
    }
}
