//! A real Prometheus (Debian's `prometheus`, installed by `scripts/install-test-deps.sh`)
//! for tests that check what Istio's dashboards would show: started on a loopback port with a
//! scrape configuration of static targets, asked through its HTTP API, stopped on drop.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::process::ChildGuard;
use std::time::Duration;

use anyhow::Context as _;

use crate::probe;

/// `prometheus` on PATH, or `None` to skip `test` with a notice; under CI
/// (`LATEEN_REQUIRE_TOOLS` set and non-empty) a missing Prometheus fails the test instead.
pub fn prometheus_or_skip(test: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("prometheus"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        if crate::tools_required() {
            panic!("prometheus not found on PATH (scripts/install-test-deps.sh installs it)");
        }
        eprintln!("NOTICE: prometheus not found; skipping {test}");
    }
    found
}

/// One scrape job: its name, the metrics path and its targets (`host:port`).
#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub path: String,
    pub targets: Vec<String>,
}

/// One sample of an instant query's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A running Prometheus scraping every second.
pub struct Prometheus {
    child: ChildGuard,
    pub address: SocketAddr,
    dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `binary` scraping `jobs` every second and waits until it is ready.
    pub fn start(binary: &std::path::Path, jobs: &[Job]) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir().context("temp dir for prometheus")?;
        let mut config = String::from(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
        );
        for job in jobs {
            let targets: Vec<String> = job.targets.iter().map(|t| format!("'{t}'")).collect();
            config.push_str(&format!(
                "- job_name: '{}'\n  metrics_path: '{}'\n  static_configs:\n  - targets: [{}]\n",
                job.name,
                job.path,
                targets.join(", ")
            ));
        }
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config).context("writing prometheus.yml")?;
        let address: SocketAddr = format!("127.0.0.1:{}", crate::free_port())
            .parse()
            .context("prometheus address")?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let mut prometheus = Prometheus {
            child: ChildGuard::new(child),
            address,
            dir,
        };
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if probe::http_status(address, "/-/ready", Duration::from_secs(1)) == Some(200) {
                return Ok(prometheus);
            }
            if let Ok(Some(status)) = prometheus.child.try_wait() {
                anyhow::bail!("prometheus exited ({status}): {}", prometheus.log());
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("prometheus not ready after 30 s: {}", prometheus.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// What Prometheus logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// The result of the instant query `promql` (a vector or a scalar) as samples.
    pub fn query(&self, promql: &str) -> anyhow::Result<Vec<Sample>> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = probe::http_get(self.address, &path, &[], Duration::from_secs(10))
            .context("prometheus did not answer")?;
        let json: serde_json::Value =
            serde_json::from_str(&body).with_context(|| format!("HTTP {status}: {body}"))?;
        anyhow::ensure!(json["status"] == "success", "query {promql} failed: {body}");
        let data = &json["data"];
        let value_of = |pair: &serde_json::Value| -> f64 {
            pair.get(1)
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        };
        match data["resultType"].as_str() {
            Some("scalar") => Ok(vec![Sample {
                labels: BTreeMap::new(),
                value: value_of(&data["result"]),
            }]),
            _ => Ok(data["result"]
                .as_array()
                .map(|rows| {
                    rows.iter()
                        .map(|row| Sample {
                            labels: row["metric"]
                                .as_object()
                                .map(|m| {
                                    m.iter()
                                        .map(|(k, v)| {
                                            (k.clone(), v.as_str().unwrap_or_default().to_string())
                                        })
                                        .collect()
                                })
                                .unwrap_or_default(),
                            value: value_of(&row["value"]),
                        })
                        .collect()
                })
                .unwrap_or_default()),
        }
    }

    /// How many scrape targets are up, and the `lastError` of those that are not.
    pub fn targets(&self) -> anyhow::Result<(usize, Vec<String>)> {
        let (_, body) = probe::http_get(
            self.address,
            "/api/v1/targets?state=active",
            &[],
            Duration::from_secs(10),
        )
        .context("prometheus did not answer")?;
        let json: serde_json::Value = serde_json::from_str(&body)?;
        let mut up = 0;
        let mut errors = Vec::new();
        for target in json["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
        {
            if target["health"] == "up" {
                up += 1;
            } else {
                errors.push(format!(
                    "{}: {} {}",
                    target["scrapeUrl"], target["health"], target["lastError"]
                ));
            }
        }
        Ok((up, errors))
    }
}

/// A query string value: every byte but the unreserved ones percent-encoded.
fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_promql() {
        assert_eq!(
            super::percent_encode("sum(rate(x{a=~\"b|c\"}[1m]))"),
            "sum%28rate%28x%7Ba%3D~%22b%7Cc%22%7D%5B1m%5D%29%29"
        );
    }
}
