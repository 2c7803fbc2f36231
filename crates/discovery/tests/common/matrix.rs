//! The matrix's shared state and bookkeeping: the running mesh (lateend, both data planes,
//! the upstreams), ways to send through one data plane, a row's outcome, and the printed
//! table of row × data plane.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use crate::common::backend::Backend;
use crate::common::client::{Reply, Request, fetch};
use crate::common::lateend::Lateend;
use crate::dataplane::{DataPlane, Running};

/// What one row measured on one data plane.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub pass: bool,
    /// The measured figure, as printed in the table.
    pub figure: String,
}

impl Outcome {
    pub fn new(pass: bool, figure: impl Into<String>) -> Outcome {
        Outcome {
            pass,
            figure: figure.into(),
        }
    }
}

pub struct Mesh {
    pub work: PathBuf,
    pub config: PathBuf,
    /// The egress port every service is on.
    pub port: u16,
    pub lateend: Lateend,
    pub planes: Vec<Running>,
    pub backends: BTreeMap<String, Backend>,
}

impl Mesh {
    pub fn plane(&self, plane: DataPlane) -> &Running {
        self.planes
            .iter()
            .find(|r| r.plane == plane)
            .expect("every data plane is started")
    }

    pub fn backend(&self, name: &str) -> &Backend {
        self.backends
            .get(name)
            .unwrap_or_else(|| panic!("no backend {name}"))
    }

    /// One GET through `plane`'s egress listener.
    pub async fn send(
        &self,
        plane: DataPlane,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<Reply> {
        self.send_from(plane, None, host, path, headers).await
    }

    pub async fn send_from(
        &self,
        plane: DataPlane,
        source: Option<IpAddr>,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<Reply> {
        let request = Request {
            target: self.plane(plane).egress,
            source,
            host,
            path,
            headers,
        };
        fetch(&request).await
    }

    /// Sends `n` requests; the count per (status, body), `(0, "connection failed")` for
    /// requests that got no response.
    pub async fn tally(
        &self,
        plane: DataPlane,
        n: usize,
        host: &str,
        path: &str,
        headers: &[(&str, &str)],
    ) -> BTreeMap<(u16, String), usize> {
        let mut counts = BTreeMap::new();
        for _ in 0..n {
            let key = self
                .send(plane, host, path, headers)
                .await
                .map_or((0, "connection failed".to_string()), |r| (r.status, r.body));
            *counts.entry(key).or_insert(0) += 1;
        }
        counts
    }

    /// Logs of lateend and both data planes, for a failure message.
    pub fn diagnostics(&self) -> String {
        let mut out = format!("--- lateend ---\n{}\n", self.lateend.process.log_tail());
        for running in &self.planes {
            out.push_str(&format!(
                "--- {} ---\n{}\n",
                running.plane.name(),
                running.process.log_tail()
            ));
        }
        out
    }
}

/// Percentage of the counted requests that got (`status`, `body`).
pub fn share(counts: &BTreeMap<(u16, String), usize>, status: u16, body: &str) -> f64 {
    let total: usize = counts.values().sum();
    let hit = counts
        .get(&(status, body.to_string()))
        .copied()
        .unwrap_or(0);
    100.0 * hit as f64 / total.max(1) as f64
}

/// Rows in the order they ran, each with an outcome per data plane.
#[derive(Default)]
pub struct Table {
    rows: Vec<(String, BTreeMap<&'static str, Outcome>)>,
}

impl Table {
    pub fn record(&mut self, row: &str, plane: DataPlane, outcome: Outcome) {
        if !self.rows.iter().any(|(name, _)| name == row) {
            self.rows.push((row.to_string(), BTreeMap::new()));
        }
        if let Some((_, cells)) = self.rows.iter_mut().find(|(name, _)| name == row) {
            cells.insert(plane.name(), outcome);
        }
    }

    /// Rows where a data plane failed or the data planes disagree.
    pub fn failures(&self) -> Vec<String> {
        self.rows
            .iter()
            .filter(|(_, cells)| {
                DataPlane::ALL
                    .iter()
                    .any(|p| cells.get(p.name()).is_none_or(|o| !o.pass))
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    pub fn render(&self) -> String {
        let cell = |o: Option<&Outcome>| match o {
            Some(o) => format!("{}: {}", if o.pass { "pass" } else { "FAIL" }, o.figure),
            None => "not run".to_string(),
        };
        let mut lines = vec![
            format!(
                "| row | {} | {} |",
                DataPlane::Envoy.name(),
                DataPlane::LateenProxy.name()
            ),
            "|---|---|---|".to_string(),
        ];
        for (name, cells) in &self.rows {
            lines.push(format!(
                "| {name} | {} | {} |",
                cell(cells.get(DataPlane::Envoy.name())),
                cell(cells.get(DataPlane::LateenProxy.name()))
            ));
        }
        lines.join("\n")
    }
}

impl Table {
    /// Prints the table, then panics naming the failing rows, with `diagnostics`, unless
    /// every row passed on both data planes.
    pub fn print_and_assert_passed(&self, diagnostics: impl FnOnce() -> String) {
        println!("\n{}\n", self.render());
        let failures = self.failures();
        if !failures.is_empty() {
            panic!(
                "rows failing on a data plane: {failures:?}\n{}\n{}",
                self.render(),
                diagnostics()
            );
        }
    }
}
