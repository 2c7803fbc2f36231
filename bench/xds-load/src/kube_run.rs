//! The Kubernetes benchmark (issue 12): lateend reading a real API server. Writes the cluster
//! state of [`crate::kube_mesh`] (Services, Pods, EndpointSlices), connects the simulated
//! sidecars, then writes endpoint changes at a fixed rate and measures, for every change, the
//! time from its EndpointSlice write to each proxy receiving (and ACKing) the new endpoint,
//! and lateend's CPU and RSS while it happens.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::Api;
use lateen_xds::ClientMode;
use serde_json::json;
use tokio::sync::{Semaphore, mpsc};

use crate::kube_mesh::{self, MAX_MARKERS};
use crate::procstat::{self, Percentiles, ms};
use crate::run::{LoadArgs, idle_cpu_rate, wait_quiet};
use crate::sim::{self, Event, SimProxy, Watch};
use lateen_xds_load::generate::NAMESPACE;

/// Settings of one Kubernetes run.
#[derive(Clone, Debug, clap::Args)]
pub struct KubeRunArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// Kubeconfig of the API server lateend reads (an identity that may write Services, Pods,
    /// their status and EndpointSlices).
    #[arg(long)]
    pub kubeconfig: PathBuf,
    /// Services (each with one EndpointSlice).
    #[arg(long, default_value_t = 1000)]
    pub services: u32,
    /// Pods, spread round-robin over the services.
    #[arg(long, default_value_t = 5000)]
    pub pods: u32,
    /// Endpoint changes per second.
    #[arg(long, default_value_t = 50)]
    pub rate: u32,
    /// Seconds of changes.
    #[arg(long, default_value_t = 60)]
    pub duration: u64,
    /// Longest wait after the last change for proxies to catch up, in seconds.
    #[arg(long, default_value_t = 10)]
    pub settle_timeout: u64,
}

/// When each change was written and which proxies saw it when.
struct Changes {
    progress: sim::Progress,
    written: Vec<Instant>,
    /// Per change: (proxies that saw it, the latest of their receipts).
    seen: Vec<(usize, Duration)>,
    /// Per change: the earliest receipt (the control plane's own latency, before fan-out).
    first_seen: Vec<Option<Duration>>,
    /// Every (change, proxy) latency.
    latencies: Vec<Duration>,
}

impl Changes {
    fn record(&mut self, event: Event) {
        let Some(Event::Endpoints { markers, at }) = self.progress.record(event) else {
            return;
        };
        for marker in markers {
            let Some(written) = self.written.get(marker as usize) else {
                continue;
            };
            let latency = at.saturating_duration_since(*written);
            self.latencies.push(latency);
            let seen = &mut self.seen[marker as usize];
            seen.0 += 1;
            seen.1 = seen.1.max(latency);
            let first = &mut self.first_seen[marker as usize];
            *first = Some(first.map_or(latency, |f| f.min(latency)));
        }
    }

    fn complete(&self, proxies: usize) -> bool {
        self.seen.iter().all(|(n, _)| *n >= proxies)
    }
}

/// Runs the Kubernetes benchmark and returns its results as JSON.
pub async fn run(args: KubeRunArgs) -> anyhow::Result<serde_json::Value> {
    let changes_total = args.rate as u64 * args.duration;
    if changes_total == 0 || changes_total >= u64::from(MAX_MARKERS) {
        bail!(
            "--rate x --duration must be between 1 and {}",
            MAX_MARKERS - 1
        );
    }
    let pid = args.load.lateend_pid;
    let probe = |what: &str| args.load.probe(what);
    let kubeconfig = kube::config::Kubeconfig::read_from(&args.kubeconfig)
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let client = kube::Client::try_from(config)?;

    let before_populate = probe("before the cluster state is written")?;
    let populate_started = Instant::now();
    kube_mesh::populate(&client, args.services, args.pods).await?;
    let populate_seconds = populate_started.elapsed().as_secs_f64();
    wait_quiet(pid, args.load.clock_ticks, args.load.quiet_timeout).await?;
    let populated = probe("cluster state written")?;

    let (events_tx, mut events) = mpsc::unbounded_channel();
    let mut changes = Changes {
        progress: sim::Progress::new(args.load.proxies),
        written: Vec::with_capacity(changes_total as usize),
        seen: Vec::with_capacity(changes_total as usize),
        first_seen: Vec::with_capacity(changes_total as usize),
        latencies: Vec::new(),
    };
    let watch = Watch {
        route_marker: false,
        endpoint_markers: true,
        min_eds_clusters: args.services as usize,
    };
    let mut proxies: Vec<SimProxy> = Vec::with_capacity(args.load.proxies);
    let sync_started = Instant::now();
    for index in 0..args.load.proxies {
        proxies.push(sim::spawn(
            index,
            1,
            &args.load.xds,
            args.load.mode,
            watch,
            events_tx.clone(),
        ));
        if args.load.connect_interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.load.connect_interval_ms)).await;
        }
    }
    let sync_deadline = sync_started + Duration::from_secs(args.load.sync_timeout);
    while changes.progress.synced_count < args.load.proxies {
        let left = sync_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(event)) => changes.record(event),
            _ => bail!(
                "only {} of {} proxies synced within {} s",
                changes.progress.synced_count,
                args.load.proxies,
                args.load.sync_timeout
            ),
        }
    }
    let sync_seconds = sync_started.elapsed().as_secs_f64();
    eprintln!(
        "[xds-load] {} proxies synced with {} services in {sync_seconds:.1} s",
        args.load.proxies, args.services
    );
    wait_quiet(pid, args.load.clock_ticks, args.load.quiet_timeout).await?;
    let connected = probe("all proxies synced")?;
    let idle_rate = idle_cpu_rate(pid, args.load.clock_ticks).await?;

    // The changes: one every 1/rate s; writes run concurrently so a slow API call does not
    // delay the next change (at most 16 in flight).
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let in_flight = std::sync::Arc::new(Semaphore::new(16));
    let (errors_tx, mut errors) = mpsc::unbounded_channel::<String>();
    // How long each API write took to be answered: the API server's share of the latency.
    let (writes_tx, mut writes) = mpsc::unbounded_channel::<Duration>();
    let mut ticker = tokio::time::interval(Duration::from_secs(1) / args.rate);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let churn_started = Instant::now();
    let before_churn = procstat::sample(pid, args.load.clock_ticks)?;
    let mut peak_rss_kib = before_churn.rss_kib;
    let mut next_sample = churn_started + Duration::from_secs(1);
    while changes.written.len() < changes_total as usize {
        tokio::select! {
            _ = ticker.tick() => {
                let k = changes.written.len() as u32;
                let permit = in_flight.clone().acquire_owned().await?;
                let written = Instant::now();
                changes.written.push(written);
                changes.seen.push((0, Duration::ZERO));
                changes.first_seen.push(None);
                let (api, errors_tx, writes_tx) = (slices.clone(), errors_tx.clone(), writes_tx.clone());
                let (services, pods) = (args.services, args.pods);
                tokio::spawn(async move {
                    match kube_mesh::write_change(&api, k, services, pods).await {
                        Ok(()) => {
                            let _ = writes_tx.send(written.elapsed());
                        }
                        Err(e) => {
                            let _ = errors_tx.send(format!("{e:#}"));
                        }
                    }
                    drop(permit);
                });
            }
            Some(event) = events.recv() => changes.record(event),
        }
        if Instant::now() >= next_sample {
            peak_rss_kib = peak_rss_kib.max(procstat::sample(pid, args.load.clock_ticks)?.rss_kib);
            next_sample += Duration::from_secs(1);
        }
    }
    let churn_seconds = churn_started.elapsed().as_secs_f64();
    let settle_deadline = Instant::now() + Duration::from_secs(args.settle_timeout);
    while !changes.complete(args.load.proxies) {
        let left = settle_deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, events.recv()).await {
            Ok(Some(event)) => changes.record(event),
            _ => break,
        }
    }
    let after_churn = procstat::sample(pid, args.load.clock_ticks)?;
    let churn_cpu = after_churn.cpu.saturating_sub(before_churn.cpu);
    let mut write_errors = Vec::new();
    while let Ok(e) = errors.try_recv() {
        write_errors.push(e);
    }
    let own = procstat::sample(std::process::id(), args.load.clock_ticks)?;
    drop(proxies);

    let per_proxy = Percentiles::of(&mut changes.latencies);
    let mut slowest: Vec<Duration> = changes
        .seen
        .iter()
        .filter(|(n, _)| *n >= args.load.proxies)
        .map(|(_, d)| *d)
        .collect();
    let to_every_proxy = Percentiles::of(&mut slowest);
    let mut first: Vec<Duration> = changes.first_seen.iter().flatten().copied().collect();
    let to_first_proxy = Percentiles::of(&mut first);
    let mut write_times = Vec::new();
    while let Ok(d) = writes.try_recv() {
        write_times.push(d);
    }
    let api_writes = Percentiles::of(&mut write_times);
    let incomplete = changes
        .seen
        .iter()
        .filter(|(n, _)| *n < args.load.proxies)
        .count();
    eprintln!(
        "[xds-load] {} changes in {churn_seconds:.1} s: to every proxy p50 {} ms, p99 {} ms, max {} ms; {incomplete} not seen by every proxy; lateend {:.2} cores",
        changes.written.len(),
        ms(to_every_proxy.p50),
        ms(to_every_proxy.p99),
        ms(to_every_proxy.max),
        churn_cpu.as_secs_f64() / churn_seconds
    );
    Ok(json!({
        "proxies": args.load.proxies,
        "services": args.services,
        "pods": args.pods,
        "mode": match args.load.mode { ClientMode::Sotw => "sotw", ClientMode::Delta => "delta" },
        "populate_seconds": (populate_seconds * 10.0).round() / 10.0,
        "sync_all_seconds": (sync_seconds * 10.0).round() / 10.0,
        "changes": changes.written.len(),
        "change_rate_per_s": args.rate,
        "churn_seconds": (churn_seconds * 10.0).round() / 10.0,
        "latency_to_every_proxy": to_every_proxy.to_json(),
        "latency_per_proxy": per_proxy.to_json(),
        "latency_to_first_proxy": to_first_proxy.to_json(),
        "api_write_round_trip": api_writes.to_json(),
        "changes_not_seen_by_every_proxy": incomplete,
        "write_errors": write_errors.len(),
        "first_write_error": write_errors.first(),
        "nacks": changes.progress.nacks,
        "first_nack": changes.progress.first_nack,
        "lateend_cpu_cores_during_churn": ((churn_cpu.as_secs_f64() / churn_seconds) * 1000.0).round() / 1000.0,
        "lateend_cpu_idle_ms_per_s": ms(idle_rate),
        "rss_kib": {
            "before_populate": before_populate.rss_kib,
            "populated": populated.rss_kib,
            "all_proxies": connected.rss_kib,
            "peak_during_churn": peak_rss_kib,
            "after_churn": after_churn.rss_kib,
            "peak": after_churn.peak_rss_kib,
        },
        "load_tool_rss_kib": own.rss_kib,
    }))
}
