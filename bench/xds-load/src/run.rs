//! The measurement: connect the simulated proxies, wait until all are synced, then change the
//! marker VirtualService a few times and time, for every proxy, the change's file write to
//! the proxy receiving (and ACKing) the new route. Around it, lateend's RSS and CPU time.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use lateen_xds::ClientMode;
use serde_json::json;
use tokio::sync::mpsc;

use crate::procstat::{self, Percentiles, ProcessSample, ms};
use crate::sim::{self, Event, SimProxy};
use lateen_xds_load::generate::{self, BASE_WEIGHT};

/// Settings every measurement shares: where lateend is, the proxies and the waits.
#[derive(Clone, Debug, clap::Args)]
pub struct LoadArgs {
    /// lateend's plaintext xDS address.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds: String,
    /// PID of lateend, for RSS and CPU time from /proc.
    #[arg(long)]
    pub lateend_pid: u32,
    /// Simulated proxies.
    #[arg(long, default_value_t = 1000)]
    pub proxies: usize,
    /// ADS variant the proxies speak: `sotw` (Envoy's default) or `delta`.
    #[arg(long, default_value = "sotw", value_parser = parse_mode)]
    pub mode: ClientMode,
    /// Pause between starting two proxies, in milliseconds.
    #[arg(long, default_value_t = 2)]
    pub connect_interval_ms: u64,
    /// Longest wait for all proxies to be synced, in seconds.
    #[arg(long, default_value_t = 150)]
    pub sync_timeout: u64,
    /// Longest wait for lateend to go quiet (finish pushing) before a reading, in seconds.
    #[arg(long, default_value_t = 60)]
    pub quiet_timeout: u64,
    /// `getconf CLK_TCK` (units of utime/stime in /proc/PID/stat).
    #[arg(long, default_value_t = 100)]
    pub clock_ticks: u64,
}

impl LoadArgs {
    /// lateend's RSS and CPU time now, logged as `what`.
    pub fn probe(&self, what: &str) -> anyhow::Result<ProcessSample> {
        let s = procstat::sample(self.lateend_pid, self.clock_ticks)?;
        eprintln!(
            "[xds-load] {what}: lateend RSS {} KiB, CPU {:.2} s",
            s.rss_kib,
            s.cpu.as_secs_f64()
        );
        Ok(s)
    }
}

/// Settings of one run.
#[derive(Clone, Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub load: LoadArgs,
    /// lateend's --config-dir (holding what `generate` wrote); the marker file is rewritten.
    #[arg(long)]
    pub config_dir: PathBuf,
    /// Distinct workloads the proxies belong to (labels `app: bench-client-W`), proxy `i` to
    /// workload `i % workloads`: replicas of one Deployment share their configuration,
    /// different Deployments each need their own translation.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub workloads: u32,
    /// Config changes to time.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Longest wait for all proxies to receive one change, in seconds.
    #[arg(long, default_value_t = 30)]
    pub round_timeout: u64,
}

pub(crate) fn parse_mode(s: &str) -> Result<ClientMode, String> {
    match s {
        "sotw" => Ok(ClientMode::Sotw),
        "delta" => Ok(ClientMode::Delta),
        other => Err(format!("--mode must be sotw or delta, not {other:?}")),
    }
}

/// The folder benchmark times the marker route.
const WATCH: sim::Watch = sim::Watch {
    route_marker: true,
    endpoint_markers: false,
    min_eds_clusters: 0,
};

/// Collects what the proxies report.
struct Tracker {
    events: mpsc::UnboundedReceiver<Event>,
    progress: sim::Progress,
    /// Latest marker weight per proxy and when it arrived.
    marker: Vec<Option<(u32, Instant)>>,
}

impl Tracker {
    fn new(proxies: usize, events: mpsc::UnboundedReceiver<Event>) -> Self {
        Self {
            events,
            progress: sim::Progress::new(proxies),
            marker: vec![None; proxies],
        }
    }

    fn record(&mut self, event: Event) {
        if let Some(Event::Marker { proxy, weight, at }) = self.progress.record(event)
            && let Some(m) = self.marker.get_mut(proxy)
        {
            *m = Some((weight, at));
        }
    }

    /// Processes events until `done` holds or the deadline passes; returns whether it held.
    async fn until(&mut self, deadline: Instant, done: impl Fn(&Self) -> bool) -> bool {
        loop {
            while let Ok(event) = self.events.try_recv() {
                self.record(event);
            }
            if done(self) {
                return true;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            match tokio::time::timeout(left, self.events.recv()).await {
                Ok(Some(event)) => self.record(event),
                Ok(None) | Err(_) => return done(self),
            }
        }
    }

    fn with_weight(&self, weight: u32) -> usize {
        self.marker
            .iter()
            .filter(|m| m.is_some_and(|(w, _)| w == weight))
            .count()
    }
}

/// One timed change.
struct Round {
    latencies: Vec<Duration>,
    missing: usize,
    cpu: Duration,
}

/// Runs the benchmark and returns its results as JSON.
pub async fn run(args: RunArgs) -> anyhow::Result<serde_json::Value> {
    let pid = args.load.lateend_pid;
    let probe = |what: &str| args.load.probe(what);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let mut tracker = Tracker::new(args.load.proxies, events_rx);
    let mut proxies: Vec<SimProxy> = Vec::with_capacity(args.load.proxies);
    let sync_deadline = Instant::now() + Duration::from_secs(args.load.sync_timeout);

    let idle = probe("no proxy connected")?;

    // One proxy first: what a single connected proxy costs (its snapshot) is visible apart.
    proxies.push(sim::spawn(
        0,
        args.workloads,
        &args.load.xds,
        args.load.mode,
        WATCH,
        events_tx.clone(),
    ));
    if !tracker
        .until(sync_deadline, |t| t.progress.synced_count == 1)
        .await
    {
        bail!(
            "proxy 0 not synced within {} s (lateend at {} up?)",
            args.load.sync_timeout,
            args.load.xds
        );
    }
    wait_quiet(pid, args.load.clock_ticks, args.load.quiet_timeout).await?;
    let one = probe("1 proxy synced")?;

    let ramp_started = Instant::now();
    for index in 1..args.load.proxies {
        proxies.push(sim::spawn(
            index,
            args.workloads,
            &args.load.xds,
            args.load.mode,
            WATCH,
            events_tx.clone(),
        ));
        if args.load.connect_interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.load.connect_interval_ms)).await;
        }
    }
    let all = args.load.proxies;
    if !tracker
        .until(sync_deadline, |t| t.progress.synced_count == all)
        .await
    {
        bail!(
            "only {} of {all} proxies synced within {} s",
            tracker.progress.synced_count,
            args.load.sync_timeout
        );
    }
    let ramp = ramp_started.elapsed();
    eprintln!(
        "[xds-load] {all} proxies synced {:.1} s after the second one started",
        ramp.as_secs_f64()
    );
    wait_quiet(pid, args.load.clock_ticks, args.load.quiet_timeout).await?;
    let connected = probe(&format!("{all} proxies synced"))?;
    let idle_rate = idle_cpu_rate(pid, args.load.clock_ticks).await?;

    let mut rounds = Vec::new();
    for round in 1..=args.rounds {
        let weight = BASE_WEIGHT + round;
        let before = procstat::sample(pid, args.load.clock_ticks)?;
        let written = Instant::now();
        generate::write_marker(&args.config_dir, weight)?;
        let deadline = written + Duration::from_secs(args.round_timeout);
        tracker
            .until(deadline, |t| t.with_weight(weight) == all)
            .await;
        let latencies: Vec<Duration> = tracker
            .marker
            .iter()
            .filter_map(|m| match m {
                Some((w, at)) if *w == weight => Some(at.saturating_duration_since(written)),
                _ => None,
            })
            .collect();
        let missing = all - latencies.len();
        wait_quiet(pid, args.load.clock_ticks, args.load.quiet_timeout).await?;
        let after = procstat::sample(pid, args.load.clock_ticks)?;
        let busy = after.cpu.saturating_sub(before.cpu);
        let cpu = busy.saturating_sub(idle_rate.mul_f64(written.elapsed().as_secs_f64()));
        let mut sorted = latencies.clone();
        let p = Percentiles::of(&mut sorted);
        eprintln!(
            "[xds-load] change {round}: v1 weight {weight}: {} of {all} proxies; p50 {} ms, p99 {} ms, max {} ms; lateend CPU {} ms",
            p.count,
            ms(p.p50),
            ms(p.p99),
            ms(p.max),
            ms(cpu)
        );
        rounds.push(Round {
            latencies,
            missing,
            cpu,
        });
    }
    let last = probe("after the changes")?;
    let own = procstat::sample(std::process::id(), args.load.clock_ticks)?;
    drop(proxies);

    let mut every: Vec<Duration> = rounds.iter().flat_map(|r| r.latencies.clone()).collect();
    let overall = Percentiles::of(&mut every);
    let missing: usize = rounds.iter().map(|r| r.missing).sum();
    let cpu_total: Duration = rounds.iter().map(|r| r.cpu).sum();
    let changes = rounds.len().max(1) as f64;
    let per_proxy_kib = |from: &ProcessSample, to: &ProcessSample, proxies: usize| {
        (to.rss_kib as f64 - from.rss_kib as f64) / proxies.max(1) as f64
    };
    Ok(json!({
        "proxies": all,
        "mode": match args.load.mode { ClientMode::Sotw => "sotw", ClientMode::Delta => "delta" },
        "rounds": rounds.len(),
        "sync_all_seconds": (ramp.as_secs_f64() * 10.0).round() / 10.0,
        "latency": overall.to_json(),
        "latency_per_round": rounds.iter().map(|r| {
            let mut l = r.latencies.clone();
            Percentiles::of(&mut l).to_json()
        }).collect::<Vec<_>>(),
        "missed_updates": missing,
        "nacks": tracker.progress.nacks,
        "first_nack": tracker.progress.first_nack,
        "rss_kib": {
            "no_proxy": idle.rss_kib,
            "one_proxy": one.rss_kib,
            "all_proxies": connected.rss_kib,
            "after_changes": last.rss_kib,
            "peak": last.peak_rss_kib,
        },
        "rss_kib_per_proxy": (per_proxy_kib(&idle, &connected, all) * 10.0).round() / 10.0,
        "rss_kib_per_proxy_beyond_first": (per_proxy_kib(&one, &connected, all - 1) * 10.0).round() / 10.0,
        "rss_kib_per_proxy_after_changes": (per_proxy_kib(&idle, &last, all) * 10.0).round() / 10.0,
        "cpu_idle_ms_per_s": ms(idle_rate),
        "cpu_ms_per_change": ms(cpu_total.div_f64(changes)),
        "cpu_us_per_proxy_push": (cpu_total.as_secs_f64() * 1e6 / changes / all.max(1) as f64).round(),
        "load_tool_rss_kib": own.rss_kib,
    }))
}

/// Waits (at most `limit_seconds`) until lateend uses under 10% of a core over two half-second windows,
/// so pushes caused by proxies joining or by a change are finished before the next reading.
pub(crate) async fn wait_quiet(
    pid: u32,
    clock_ticks: u64,
    limit_seconds: u64,
) -> anyhow::Result<()> {
    let window = Duration::from_millis(500);
    let deadline = Instant::now() + Duration::from_secs(limit_seconds);
    let mut quiet_windows = 0;
    let mut previous = procstat::sample(pid, clock_ticks)?.cpu;
    while quiet_windows < 2 {
        if Instant::now() > deadline {
            eprintln!("[xds-load] lateend still busy after {limit_seconds} s; reading anyway");
            return Ok(());
        }
        tokio::time::sleep(window).await;
        let now = procstat::sample(pid, clock_ticks)?.cpu;
        quiet_windows = if now.saturating_sub(previous) < window / 10 {
            quiet_windows + 1
        } else {
            0
        };
        previous = now;
    }
    Ok(())
}

/// lateend's CPU time per second while nothing changes (folder polling, keepalives).
pub(crate) async fn idle_cpu_rate(pid: u32, clock_ticks: u64) -> anyhow::Result<Duration> {
    let span = Duration::from_secs(3);
    let before = procstat::sample(pid, clock_ticks)?.cpu;
    tokio::time::sleep(span).await;
    let after = procstat::sample(pid, clock_ticks)
        .context("idle CPU reading")?
        .cpu;
    Ok(after.saturating_sub(before).div_f64(span.as_secs_f64()))
}
