//! When to push: the debouncer folds a burst of triggers into one push computation.
//!
//! It waits for a quiet period (`--debounce-after`, 100 ms, istiod's `PILOT_DEBOUNCE_AFTER`)
//! but never longer than `--debounce-max` (1 s) after the first trigger; when only the
//! registry changed (endpoints), never longer than [`DebounceSettings::max_registry`]. The
//! window counts from when each trigger was *sent*, as istiod's debounce does, not from when
//! the debouncer got to it: triggers sent while a push computation runs have waited already,
//! and a long push must not add a whole window on top.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::ControlPlane;

/// Why a push was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    Config,
    Registry,
}

/// A trigger and when it was sent.
#[derive(Clone, Copy, Debug)]
pub struct Triggered {
    trigger: Trigger,
    at: Instant,
}

impl Triggered {
    pub(super) fn now(trigger: Trigger) -> Self {
        Self {
            trigger,
            at: Instant::now(),
        }
    }
}

/// Debounce timings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DebounceSettings {
    /// Quiet period after the last trigger.
    pub after: Duration,
    /// Longest wait after the first trigger.
    pub max: Duration,
    /// Longest wait after the first trigger when only the registry changed (endpoints
    /// coming and going): Kubernetes clusters change endpoints all the time, and with a quiet
    /// period that never comes an endpoint would wait the whole `max`.
    pub max_registry: Duration,
}

impl Default for DebounceSettings {
    fn default() -> Self {
        Self {
            after: Duration::from_millis(100),
            max: Duration::from_secs(1),
            max_registry: Duration::from_millis(250),
        }
    }
}

/// Debounces triggers and pushes; returns when every sender is gone.
pub async fn run_debouncer(
    cp: Arc<ControlPlane>,
    mut rx: mpsc::UnboundedReceiver<Triggered>,
    settings: DebounceSettings,
) {
    while let Some(trigger) = rx.recv().await {
        let first = trigger.at;
        let mut last = trigger.at;
        let mut config_changed = trigger.trigger == Trigger::Config;
        let mut open = true;
        while open {
            let max = if config_changed {
                settings.max
            } else {
                settings.max_registry.min(settings.max)
            };
            let deadline = (last + settings.after).min(first + max);
            tokio::select! {
                // Triggers already queued first: they may close the window, not extend it
                // past `max`.
                biased;
                t = rx.recv() => match t {
                    Some(t) => {
                        last = last.max(t.at);
                        config_changed |= t.trigger == Trigger::Config;
                    }
                    None => open = false,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        // Translation is CPU work: keep it off the threads that serve the xDS streams.
        let pushing = cp.clone();
        if let Err(e) = tokio::task::spawn_blocking(move || pushing.push_all()).await {
            tracing::error!(error = %e, "push computation failed");
        }
        if !open {
            return;
        }
    }
}
