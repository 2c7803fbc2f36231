//! What the benchmark reads about the control-plane process from /proc, plus percentiles.

use std::time::Duration;

use anyhow::{Context, bail};

/// Memory and CPU of one process.
#[derive(Clone, Copy, Debug)]
pub struct ProcessSample {
    /// VmRSS in KiB.
    pub rss_kib: u64,
    /// VmHWM (peak RSS) in KiB.
    pub peak_rss_kib: u64,
    /// utime + stime, including threads that already exited.
    pub cpu: Duration,
}

/// Reads /proc/PID/status and /proc/PID/stat; `clock_ticks` is `getconf CLK_TCK`.
pub fn sample(pid: u32, clock_ticks: u64) -> anyhow::Result<ProcessSample> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status (is lateend still running?)"))?;
    let kib = |key: &str| -> anyhow::Result<u64> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("no {key} in /proc/{pid}/status"))
    };
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at field 3 (state);
    // utime and stime are fields 14 and 15.
    let Some((_, after_comm)) = stat.rsplit_once(')') else {
        bail!("unexpected /proc/{pid}/stat: {stat}");
    };
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .with_context(|| format!("field {} of /proc/{pid}/stat", i + 3))
    };
    let total_ticks = ticks(11)? + ticks(12)?;
    Ok(ProcessSample {
        rss_kib: kib("VmRSS:")?,
        peak_rss_kib: kib("VmHWM:")?,
        cpu: Duration::from_secs_f64(total_ticks as f64 / clock_ticks.max(1) as f64),
    })
}

/// p50, p99 and max of a set of latencies.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    pub count: usize,
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Percentiles {
    /// Nearest-rank percentiles (`values` is sorted in place).
    pub fn of(values: &mut [Duration]) -> Self {
        values.sort_unstable();
        let rank = |p: f64| -> Duration {
            if values.is_empty() {
                return Duration::ZERO;
            }
            let index = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
            values[index]
        };
        Self {
            count: values.len(),
            p50: rank(0.50),
            p99: rank(0.99),
            max: values.last().copied().unwrap_or_default(),
        }
    }

    pub fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "p50_ms": ms(self.p50),
            "p99_ms": ms(self.p99),
            "max_ms": ms(self.max),
        })
    }
}

/// Milliseconds with one decimal.
pub fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let mut v: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let p = Percentiles::of(&mut v);
        assert_eq!(p.p50, Duration::from_millis(50));
        assert_eq!(p.p99, Duration::from_millis(99));
        assert_eq!(p.max, Duration::from_millis(100));
        assert_eq!(Percentiles::of(&mut []).max, Duration::ZERO);
    }

    #[test]
    fn reads_this_process() {
        let s = sample(std::process::id(), 100).unwrap_or_else(|e| panic!("{e:#}"));
        assert!(s.rss_kib > 0 && s.peak_rss_kib >= s.rss_kib);
    }
}
