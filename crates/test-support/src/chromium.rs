//! Headless Chromium (Debian's `chromium`) for tests of web pages: the DOM after the page's
//! scripts ran (`--dump-dom`) and a screenshot. Each run has its own profile folder and is
//! bounded in time; `--virtual-time-budget` lets the page's timers and fetches run for that
//! long (virtual time waits for pending network requests) before the DOM is taken.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest a Chromium run may take beyond its virtual time budget.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Names Debian and others give the browser.
const NAMES: &[&str] = &["chromium", "chromium-browser", "google-chrome"];

/// Chromium on PATH.
pub fn find_chromium() -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .flat_map(|dir| NAMES.iter().map(move |name| dir.join(name)))
        .find(|p| p.is_file())
}

/// [`find_chromium`], or `None` to skip `test` with a notice; under CI (`LATEEN_REQUIRE_TOOLS`)
/// a missing browser fails the test instead.
pub fn chromium_or_skip(test: &str) -> Option<Chromium> {
    let found = find_chromium();
    if found.is_none() {
        if crate::tools_required() {
            panic!("chromium not found on PATH (scripts/install-test-deps.sh installs it)");
        }
        eprintln!("NOTICE: chromium not found; skipping {test}");
    }
    found.map(|binary| Chromium { binary })
}

/// A headless Chromium binary.
pub struct Chromium {
    binary: PathBuf,
}

impl Chromium {
    /// The page at `url` as HTML, after its scripts ran for `budget` of virtual time.
    pub fn dump_dom(&self, url: &str, budget: Duration) -> Result<String, String> {
        let out = self.run(&["--dump-dom".to_string()], url, budget)?;
        Ok(out)
    }

    /// A PNG of the page at `url` (`width` x `height`) after `budget` of virtual time.
    pub fn screenshot(
        &self,
        url: &str,
        path: &Path,
        (width, height): (u32, u32),
        budget: Duration,
    ) -> Result<(), String> {
        self.run(
            &[
                format!("--screenshot={}", path.display()),
                format!("--window-size={width},{height}"),
                "--hide-scrollbars".to_string(),
            ],
            url,
            budget,
        )?;
        match std::fs::metadata(path) {
            Ok(m) if m.len() > 0 => Ok(()),
            _ => Err(format!(
                "chromium wrote no screenshot at {}",
                path.display()
            )),
        }
    }

    /// Runs the browser on `url` with `extra` flags; its stdout. Output goes to files (no pipe
    /// to fill up), and the process is killed when it overruns.
    fn run(&self, extra: &[String], url: &str, budget: Duration) -> Result<String, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let stdout_path = dir.path().join("stdout");
        let stderr_path = dir.path().join("stderr");
        let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
        let mut child = Command::new(&self.binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-extensions",
                "--disable-sync",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.path().join("profile").display()
            ))
            .arg(format!("--virtual-time-budget={}", budget.as_millis()))
            .args(extra)
            .arg(url)
            .stdin(Stdio::null())
            .stdout(file(&stdout_path)?)
            .stderr(file(&stderr_path)?)
            .spawn()
            .map_err(|e| format!("starting {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + budget + RUN_TIMEOUT;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!("chromium on {url} did not finish in time"));
                }
                Err(e) => return Err(format!("waiting for chromium: {e}")),
            }
        };
        let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
        if !status.success() {
            let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
            return Err(format!("chromium on {url} exited with {status}: {stderr}"));
        }
        Ok(stdout)
    }
}

/// The attributes of every element of `dom` (as `--dump-dom` serializes it: double-quoted
/// attribute values with `&quot;`, `&amp;`, `&lt;`, `&gt;`) whose `class` list has `class`.
pub fn elements_with_class(dom: &str, class: &str) -> Vec<BTreeMap<String, String>> {
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        if !rest.starts_with(|c: char| c.is_ascii_alphabetic()) {
            continue;
        }
        let Some(end) = rest.find('>') else { break };
        let attributes = attributes(&rest[..end]);
        if attributes
            .get("class")
            .is_some_and(|c| c.split_whitespace().any(|c| c == class))
        {
            found.push(attributes);
        }
        rest = &rest[end..];
    }
    found
}

/// `name="value"` pairs of a start tag's text (after the tag name).
fn attributes(tag: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = tag.trim_start_matches(|c: char| !c.is_whitespace());
    while let Some(eq) = rest.find("=\"") {
        let name = rest[..eq].trim().to_string();
        let after = &rest[eq + 2..];
        let Some(close) = after.find('"') else { break };
        let value = after[..close]
            .replace("&quot;", "\"")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        out.insert(name, value);
        rest = &after[close + 1..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_elements_by_class() {
        let dom = r#"<svg><g class="edge mtls" data-source="a/b" data-rps="2.5"><path d="M 1 2"></path></g><g class="edges" data-x="&quot;q&amp;"></g></svg>"#;
        let edges = elements_with_class(dom, "edge");
        assert_eq!(edges.len(), 1);
        assert_eq!(edges[0]["data-source"], "a/b");
        assert_eq!(edges[0]["data-rps"], "2.5");
        assert_eq!(elements_with_class(dom, "edges")[0]["data-x"], "\"q&");
    }
}
