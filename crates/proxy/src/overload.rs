//! Overload protection, as Envoy's overload manager gives it (issue #16 item 3): one client
//! must not be able to take every file descriptor of the process.
//!
//! - A global cap on downstream connections (`--max-downstream-connections`, else Envoy's
//!   runtime key `overload.global_downstream_max_connections` from the static config's
//!   `runtime:` or Istio's `PROXY_CONFIG` `runtimeValues`): a connection beyond it is accepted
//!   and closed at once, counted as `downstream_global_cx_overflow` (Envoy's stat).
//! - A cap on upstream connections per worker (`--max-upstream-connections-per-worker`,
//!   default a quarter of `RLIMIT_NOFILE` shared among the workers): see
//!   [`crate::upstream::budget`].
//! - Accept back-off when the process is out of descriptors (`EMFILE`/`ENFILE`), in
//!   [`crate::listener::accept_loop`].

use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Envoy's runtime key for the global downstream connection cap (Istio's bootstrap sets it).
pub const GLOBAL_DOWNSTREAM_MAX_CONNECTIONS: &str = "overload.global_downstream_max_connections";

/// Upstream connections per worker when `RLIMIT_NOFILE` cannot be read or is unlimited:
/// Envoy's default `max_connections` circuit breaker.
const DEFAULT_UPSTREAM_PER_WORKER: usize = 1024;
/// Never fewer upstream connections per worker than this, however low the descriptor limit.
const MIN_UPSTREAM_PER_WORKER: usize = 8;

/// The command-line side of overload protection, shared by `run`, `sidecar` and `router`.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct OverloadArgs {
    /// Downstream connections the whole proxy holds at once; more are accepted and closed
    /// (Envoy's `overload.global_downstream_max_connections`, which sets it when this flag
    /// is not given). Default: no limit, as Envoy.
    #[arg(long, value_name = "N")]
    pub max_downstream_connections: Option<usize>,
    /// Upstream connections each worker holds open at once; requests beyond wait for one
    /// (up to the cluster's connect timeout) or get 503 `UO`. Default: a quarter of the
    /// process's open-file limit (RLIMIT_NOFILE) shared among the workers, at most 1024.
    #[arg(long, value_name = "N")]
    pub max_upstream_connections_per_worker: Option<usize>,
}

/// The limits in force, decided once at start-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OverloadLimits {
    pub max_downstream_connections: Option<usize>,
    pub max_upstream_connections_per_worker: usize,
}

impl Default for OverloadLimits {
    fn default() -> Self {
        OverloadLimits {
            max_downstream_connections: None,
            max_upstream_connections_per_worker: DEFAULT_UPSTREAM_PER_WORKER,
        }
    }
}

impl OverloadArgs {
    /// The limits from the flags, falling back to the runtime key in `runtime` and to the
    /// descriptor limit. A runtime value that is not a whole number is ignored with a
    /// warning naming the key.
    pub fn limits(&self, runtime: &BTreeMap<String, Json>, workers: usize) -> OverloadLimits {
        let from_runtime = runtime
            .get(GLOBAL_DOWNSTREAM_MAX_CONNECTIONS)
            .and_then(|value| {
                let parsed = match value {
                    Json::Number(number) => number.as_u64(),
                    Json::String(text) => text.trim().parse().ok(),
                    _ => None,
                };
                if parsed.is_none() {
                    tracing::warn!(
                        "runtime {GLOBAL_DOWNSTREAM_MAX_CONNECTIONS}: {value} is not a whole number; ignored"
                    );
                }
                parsed
            })
            .map(|limit| usize::try_from(limit).unwrap_or(usize::MAX));
        OverloadLimits {
            max_downstream_connections: self.max_downstream_connections.or(from_runtime),
            max_upstream_connections_per_worker: self
                .max_upstream_connections_per_worker
                .unwrap_or_else(|| default_upstream_per_worker(open_files_limit(), workers))
                .max(1),
        }
    }
}

/// A quarter of the descriptor limit for upstream connections, shared among the workers:
/// each proxied request holds a downstream descriptor too, and the rest is for listeners,
/// files and the admin servers.
fn default_upstream_per_worker(open_files: Option<u64>, workers: usize) -> usize {
    let Some(open_files) = open_files else {
        return DEFAULT_UPSTREAM_PER_WORKER;
    };
    let share = open_files / 4 / workers.max(1) as u64;
    usize::try_from(share)
        .unwrap_or(usize::MAX)
        .clamp(MIN_UPSTREAM_PER_WORKER, DEFAULT_UPSTREAM_PER_WORKER)
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (no `unsafe` call);
/// `None` when unlimited or unreadable.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    parse_open_files_limit(&limits)
}

fn parse_open_files_limit(limits: &str) -> Option<u64> {
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// `runtimeValues` of Istio's `PROXY_CONFIG` (JSON or YAML), Envoy's runtime for a sidecar
/// Istio injects; empty when absent or unreadable (the control-plane settings of the same
/// variable are checked, with errors, by `xds::control_plane`).
pub fn proxy_config_runtime(proxy_config: Option<&str>) -> BTreeMap<String, Json> {
    let Some(text) = proxy_config.filter(|text| !text.trim().is_empty()) else {
        return BTreeMap::new();
    };
    match serde_saphyr::from_str::<Json>(text) {
        Ok(Json::Object(mut fields)) => match fields.remove("runtimeValues") {
            Some(Json::Object(values)) => values.into_iter().collect(),
            _ => BTreeMap::new(),
        },
        _ => BTreeMap::new(),
    }
}

/// The process-wide count of downstream connections against the cap.
#[derive(Debug)]
pub struct DownstreamLimit {
    limit: Option<usize>,
    open: AtomicUsize,
}

/// One downstream connection counted against the cap; released when dropped.
pub struct DownstreamSlot(Arc<DownstreamLimit>);

impl DownstreamLimit {
    pub fn new(limit: Option<usize>) -> Arc<DownstreamLimit> {
        Arc::new(DownstreamLimit {
            limit,
            open: AtomicUsize::new(0),
        })
    }

    /// A slot for a connection just accepted, or `None` when the cap is reached.
    pub fn admit(self: &Arc<Self>) -> Option<DownstreamSlot> {
        let Some(limit) = self.limit else {
            self.open.fetch_add(1, Ordering::Relaxed);
            return Some(DownstreamSlot(self.clone()));
        };
        let admitted = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |open| {
                (open < limit).then_some(open + 1)
            })
            .is_ok();
        admitted.then(|| DownstreamSlot(self.clone()))
    }
}

impl Drop for DownstreamSlot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_over_the_runtime_key_and_the_key_takes_numbers_or_strings() {
        let runtime =
            |value: Json| BTreeMap::from([(GLOBAL_DOWNSTREAM_MAX_CONNECTIONS.into(), value)]);
        let none = OverloadArgs::default();
        assert_eq!(
            none.limits(&runtime(Json::from(100)), 1)
                .max_downstream_connections,
            Some(100)
        );
        assert_eq!(
            none.limits(&runtime(Json::from("2147483647")), 1)
                .max_downstream_connections,
            Some(2147483647)
        );
        assert_eq!(
            none.limits(&runtime(Json::from("many")), 1)
                .max_downstream_connections,
            None
        );
        let flag = OverloadArgs {
            max_downstream_connections: Some(7),
            max_upstream_connections_per_worker: Some(3),
        };
        let limits = flag.limits(&runtime(Json::from(100)), 4);
        assert_eq!(limits.max_downstream_connections, Some(7));
        assert_eq!(limits.max_upstream_connections_per_worker, 3);
    }

    #[test]
    fn the_upstream_default_follows_the_descriptor_limit() {
        assert_eq!(default_upstream_per_worker(Some(1024), 2), 128);
        assert_eq!(default_upstream_per_worker(Some(1 << 20), 2), 1024);
        assert_eq!(default_upstream_per_worker(Some(16), 4), 8);
        assert_eq!(default_upstream_per_worker(None, 4), 1024);
        let limits = "Limit                     Soft Limit           Hard Limit           Units     \n\
                      Max open files            1024                 524288               files     \n";
        assert_eq!(parse_open_files_limit(limits), Some(1024));
        assert_eq!(
            parse_open_files_limit("Max open files  unlimited  unlimited  files\n"),
            None
        );
    }

    #[test]
    fn proxy_config_runtime_values_are_read() {
        let runtime = proxy_config_runtime(Some(
            r#"{"discoveryAddress":"x:15012","runtimeValues":{"overload.global_downstream_max_connections":"50"}}"#,
        ));
        assert_eq!(
            runtime.get(GLOBAL_DOWNSTREAM_MAX_CONNECTIONS),
            Some(&Json::from("50"))
        );
        assert!(proxy_config_runtime(Some("not: [json")).is_empty());
        assert!(proxy_config_runtime(None).is_empty());
    }

    #[test]
    fn the_cap_counts_overflow_and_frees_slots() {
        let limit = DownstreamLimit::new(Some(1));
        let first = limit.admit();
        assert!(first.is_some());
        assert!(limit.admit().is_none());
        drop(first);
        assert!(limit.admit().is_some());
    }
}
