//! Worker threads, as Envoy's `--concurrency`: each runs its own single-threaded tokio
//! runtime with its own upstream connection pools, and accepts from every bound listener.
//! Listener sockets are bound once by the main thread and shared; each worker follows the
//! set of bound listeners through a watch channel, so listeners added or removed by a
//! configuration change start or stop on every worker. Each worker's pool is bounded
//! (`--max-upstream-connections-per-worker`) and swept every few seconds.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;

use crate::config::ConfigStore;
use crate::drain::{Drain, DrainWatch};
use crate::metrics::Metrics;
use crate::net::orig_dst::OriginalDst;
use crate::upstream::Pool;

/// Process-wide state shared by every worker.
pub struct Shared {
    pub config: Arc<ConfigStore>,
    pub metrics: Arc<Metrics>,
    pub drain: Drain,
    pub drain_watch: DrainWatch,
    pub original_dst: Arc<dyn OriginalDst>,
    /// The workload certificate for mesh mTLS, when the proxy has one.
    pub mesh_tls: Option<Arc<crate::tls::MeshTls>>,
    /// The global downstream connection cap (overload protection).
    pub downstream: Arc<crate::overload::DownstreamLimit>,
    /// Upstream connections each worker's pool may hold open.
    pub max_upstream_connections_per_worker: usize,
}

/// What a worker's tasks share: the process state and this worker's pools.
pub struct WorkerContext {
    pub shared: Arc<Shared>,
    pub pool: Arc<Pool>,
}

/// A listening socket bound by the main thread.
#[derive(Clone)]
pub struct BoundListener {
    pub name: Arc<str>,
    /// The address as configured (port 0 asks the OS for one).
    pub configured: SocketAddr,
    /// The address actually bound.
    pub address: SocketAddr,
    pub socket: Arc<std::net::TcpListener>,
}

pub type ListenerSet = Arc<Vec<BoundListener>>;

/// Starts `count` worker threads. They run until draining starts and their accept loops end;
/// in-flight connections then finish on the worker's runtime until the process exits.
pub fn spawn_workers(
    count: usize,
    shared: Arc<Shared>,
    listeners: watch::Receiver<ListenerSet>,
) -> std::io::Result<Vec<std::thread::JoinHandle<()>>> {
    (0..count)
        .map(|index| {
            let shared = shared.clone();
            let listeners = listeners.clone();
            std::thread::Builder::new()
                .name(format!("lateen-worker-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            tracing::error!("worker {index}: cannot start runtime: {err}");
                            return;
                        }
                    };
                    runtime.block_on(run_worker(shared, listeners));
                })
        })
        .collect()
}

async fn run_worker(shared: Arc<Shared>, mut listeners: watch::Receiver<ListenerSet>) {
    let worker = Arc::new(WorkerContext {
        pool: Arc::new(Pool::with_budget(
            shared.metrics.clone(),
            shared.mesh_tls.clone(),
            crate::upstream::budget::ConnBudget::new(shared.max_upstream_connections_per_worker),
        )),
        shared: shared.clone(),
    });
    tokio::spawn(sweep_pool(shared.clone(), worker.pool.clone()));
    let mut running: HashMap<(Arc<str>, SocketAddr), tokio::task::JoinHandle<()>> = HashMap::new();
    let mut drain = shared.drain_watch.clone();
    loop {
        let wanted = listeners.borrow_and_update().clone();
        running.retain(|key, task| {
            let keep = wanted
                .iter()
                .any(|bound| (bound.name.clone(), bound.address) == *key);
            if !keep {
                task.abort();
            }
            keep
        });
        for bound in wanted.iter() {
            let key = (bound.name.clone(), bound.address);
            if running.contains_key(&key) {
                continue;
            }
            let socket = match bound
                .socket
                .try_clone()
                .and_then(tokio::net::TcpListener::from_std)
            {
                Ok(socket) => socket,
                Err(err) => {
                    tracing::error!(listener = %bound.name, "worker cannot use listener socket: {err}");
                    continue;
                }
            };
            let task = tokio::spawn(crate::listener::accept_loop(
                socket,
                bound.name.clone(),
                worker.clone(),
            ));
            running.insert(key, task);
        }
        tokio::select! {
            changed = listeners.changed() => if changed.is_err() { break },
            _ = drain.signaled() => break,
        }
    }
    // Accept loops end on drain by themselves; keep the runtime alive for in-flight work.
    for (_, task) in running {
        let _ = task.await;
    }
    std::future::pending::<()>().await;
}

/// How often a worker's pool closes idle connections and forgets endpoints gone from EDS.
const SWEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Sweeps the worker's pool against the current configuration's endpoints until draining.
async fn sweep_pool(shared: Arc<Shared>, pool: Arc<Pool>) {
    let mut drain = shared.drain_watch.clone();
    let mut tick = tokio::time::interval(SWEEP_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = drain.signaled() => return,
        }
        let snapshot = shared.config.load();
        let live: std::collections::HashSet<SocketAddr> = snapshot
            .clusters
            .values()
            .flat_map(|cluster| cluster.hosts.endpoints.iter().copied())
            .collect();
        pool.sweep(
            crate::upstream::limits::IDLE_TIMEOUT,
            crate::upstream::pool::REMOVED_ENDPOINT_IDLE,
            &live,
        );
    }
}
