//! A folder of YAML (or JSON) files, each holding any number of Istio resources.
//!
//! Watching is done by polling (default every 100 ms, see [`FolderStore::watch`]): it needs no
//! inotify limits, works on every file system (bind mounts, ConfigMap symlink swaps, NFS) and
//! notices a change within one interval. Each scan looks at every `*.yaml`, `*.yml` and
//! `*.json` file directly in the folder (hidden files and `mesh.yaml` excluded): a file whose
//! size, modification and change times and inode are as last seen is not read again (that
//! keeps a short interval cheap); any other is read and its content compared with what was
//! last seen.
//!
//! A changed file is parsed and validated as a whole with `lateen-api`. If any resource in it
//! fails, the file is rejected: every problem is logged (file, line, resource, field path,
//! reason), the rejection counter goes up, and the last good version of that file's resources
//! stays in force. Other files are not affected. A deleted file withdraws its resources.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use lateen_api::{ConfigKey, MeshConfig, Resource};

use super::Config;

/// Name of the MeshConfig file inside the config folder when `--mesh` is not given.
pub const MESH_FILE_NAME: &str = "mesh.yaml";

/// Errors that stop the store from starting.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("config folder {}", path.display())]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mesh config {}", path.display())]
    MeshRead {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid mesh config:\n{0}")]
    MeshInvalid(lateen_api::ConfigErrors),
}

/// What one scan found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScanOutcome {
    /// The accepted configuration changed.
    pub changed: bool,
    /// Files rejected in this scan.
    pub rejected_files: u64,
}

/// What `stat` says about a file; equal stamps mean an unchanged file.
#[derive(Clone, Debug, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    changed_ns: (i64, i64),
    inode: (u64, u64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            len: m.len(),
            modified: m.modified().ok(),
            changed_ns: (m.ctime(), m.ctime_nsec()),
            inode: (m.dev(), m.ino()),
        })
    }
}

#[derive(Debug)]
struct FileEntry {
    /// `stat` of the content last read.
    stamp: Option<FileStamp>,
    /// Content of the last scan (accepted or not), to detect edits.
    last_seen: String,
    /// Resources of the last accepted version.
    resources: Vec<Resource>,
}

impl FileEntry {
    fn empty() -> FileEntry {
        FileEntry {
            stamp: None,
            last_seen: String::new(),
            resources: Vec::new(),
        }
    }
}

/// A file's text; what is wrong otherwise (unreadable, or not UTF-8 and where).
fn read_text(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    String::from_utf8(bytes).map_err(|e| {
        format!(
            "not UTF-8 text (invalid byte at offset {})",
            e.utf8_error().valid_up_to()
        )
    })
}

/// The folder-backed config store.
#[derive(Debug)]
pub struct FolderStore {
    dir: PathBuf,
    mesh_path: PathBuf,
    mesh_seen: Option<String>,
    /// `stat` of a mesh file that could not be read, so it is reported once per change.
    mesh_unreadable: Option<FileStamp>,
    mesh: MeshConfig,
    files: BTreeMap<PathBuf, FileEntry>,
    rejected_total: u64,
}

impl FolderStore {
    /// Opens the folder and reads it once. A missing folder or an invalid MeshConfig is an
    /// error; invalid resource files are only rejected (logged) like later edits.
    pub fn open(dir: &Path, mesh_file: Option<&Path>) -> Result<Self, StoreError> {
        std::fs::read_dir(dir).map_err(|source| StoreError::Folder {
            path: dir.to_path_buf(),
            source,
        })?;
        let mesh_path = mesh_file.map_or_else(|| dir.join(MESH_FILE_NAME), Path::to_path_buf);
        let mut store = Self {
            dir: dir.to_path_buf(),
            mesh_path,
            mesh_seen: None,
            mesh_unreadable: None,
            mesh: MeshConfig::default(),
            files: BTreeMap::new(),
            rejected_total: 0,
        };
        store.load_mesh(true)?;
        store.scan();
        Ok(store)
    }

    /// Files rejected since start.
    pub fn rejected_total(&self) -> u64 {
        self.rejected_total
    }

    /// The accepted configuration. When two files define the same resource, the file that
    /// sorts first wins (logged at scan time).
    pub fn config(&self) -> Config {
        let mut seen: BTreeMap<ConfigKey, &Path> = BTreeMap::new();
        let mut resources = Vec::new();
        for (path, entry) in &self.files {
            for r in &entry.resources {
                if seen.contains_key(&r.key()) {
                    continue;
                }
                seen.insert(r.key(), path);
                resources.push(r.clone());
            }
        }
        Config {
            mesh: self.mesh.clone(),
            resources,
        }
    }

    /// Reads MeshConfig if its file changed. At start an invalid file is fatal; later it is
    /// rejected and the previous MeshConfig stays.
    fn load_mesh(&mut self, at_start: bool) -> Result<bool, StoreError> {
        let text = match std::fs::read_to_string(&self.mesh_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) if at_start => {
                return Err(StoreError::MeshRead {
                    path: self.mesh_path.clone(),
                    source,
                });
            }
            Err(e) => {
                // Once per change of the file, not on every scan.
                let stamp = FileStamp::of(&self.mesh_path);
                if stamp.is_none() || stamp != self.mesh_unreadable {
                    tracing::warn!(file = %self.mesh_path.display(), error = %e, "cannot read mesh config; keeping the current one");
                }
                self.mesh_unreadable = stamp;
                return Ok(false);
            }
        };
        if self.mesh_seen.as_deref() == Some(text.as_str()) {
            return Ok(false);
        }
        let source_name = self.mesh_path.display().to_string();
        self.mesh_seen = Some(text.clone());
        match lateen_api::load_mesh_config(&text, &source_name) {
            Ok((mesh, warnings)) => {
                for w in warnings {
                    tracing::warn!("{w}");
                }
                let changed = mesh != self.mesh;
                self.mesh = mesh;
                Ok(changed)
            }
            Err(errors) if at_start => Err(StoreError::MeshInvalid(errors)),
            Err(errors) => {
                self.rejected_total += 1;
                for e in &errors.errors {
                    tracing::error!(file = %source_name, "config rejected, previous mesh config stays: {e}");
                }
                Ok(false)
            }
        }
    }

    /// Re-reads the folder; see the module docs for what happens to each file.
    pub fn scan(&mut self) -> ScanOutcome {
        let mut outcome = ScanOutcome::default();
        match self.load_mesh(false) {
            Ok(changed) => outcome.changed |= changed,
            Err(e) => tracing::error!("{e}"),
        }
        let present = match self.list_files() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot list config folder; keeping current config");
                return outcome;
            }
        };
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !present.contains(p))
            .cloned()
            .collect();
        for path in gone {
            tracing::info!(file = %path.display(), "config file removed");
            if self
                .files
                .remove(&path)
                .is_some_and(|e| !e.resources.is_empty())
            {
                outcome.changed = true;
            }
        }
        for path in present {
            // Taken before reading: a write racing the read shows up as a new stamp next time.
            let stamp = FileStamp::of(&path);
            if stamp.is_some() && self.files.get(&path).is_some_and(|e| e.stamp == stamp) {
                continue;
            }
            let text = match read_text(&path) {
                Ok(t) => t,
                Err(reason) => {
                    // Logged once per change of the file: its stamp is kept, so the next
                    // scans pass over it until it is written again.
                    let entry = self
                        .files
                        .entry(path.clone())
                        .or_insert_with(FileEntry::empty);
                    entry.stamp = stamp;
                    entry.last_seen.clear();
                    tracing::error!(file = %path.display(), "config rejected: cannot read the file: {reason}; keeping its last good version ({} resources)", entry.resources.len());
                    self.rejected_total += 1;
                    outcome.rejected_files += 1;
                    continue;
                }
            };
            if let Some(entry) = self.files.get_mut(&path)
                && entry.last_seen == text
            {
                entry.stamp = stamp;
                continue;
            }
            let (changed, rejected) = self.apply_file(&path, text, stamp);
            outcome.changed |= changed;
            if rejected {
                outcome.rejected_files += 1;
            }
        }
        outcome
    }

    /// Parses and validates one file; returns (accepted config changed, file rejected).
    fn apply_file(&mut self, path: &Path, text: String, stamp: Option<FileStamp>) -> (bool, bool) {
        let source_name = path.display().to_string();
        let result = lateen_api::load(&text, &source_name)
            .and_then(|loaded| super::telemetry_check::against_mesh(loaded, &self.mesh));
        let entry = self
            .files
            .entry(path.to_path_buf())
            .or_insert_with(FileEntry::empty);
        entry.stamp = stamp;
        entry.last_seen = text;
        match result {
            Ok(loaded) => {
                for w in &loaded.warnings {
                    tracing::warn!("{w}");
                }
                let resources: Vec<Resource> = loaded.resources().cloned().collect();
                tracing::info!(file = %source_name, resources = resources.len(), "config file accepted");
                let changed = resources != entry.resources;
                entry.resources = resources;
                (changed, false)
            }
            Err(errors) => {
                self.rejected_total += 1;
                let kept = entry.resources.len();
                for e in errors.errors.iter() {
                    let resource = e
                        .resource
                        .as_ref()
                        .map(ToString::to_string)
                        .unwrap_or_default();
                    if e.severity == lateen_api::Severity::Warning {
                        tracing::warn!("{e}");
                        continue;
                    }
                    tracing::error!(
                        file = %e.source_name,
                        line = e.line.unwrap_or(0),
                        resource = %resource,
                        field = %e.path,
                        reason = %e.message,
                        "config rejected: {e}; keeping the last good version of this file ({kept} resources)"
                    );
                }
                (false, true)
            }
        }
    }

    fn list_files(&self) -> std::io::Result<Vec<PathBuf>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let path = entry?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let wanted = [".yaml", ".yml", ".json"]
                .iter()
                .any(|ext| name.ends_with(ext));
            // MeshConfig is never a resource file, whether it is DIR/mesh.yaml or --mesh.
            let is_mesh = name == MESH_FILE_NAME || path == self.mesh_path;
            if !wanted || name.starts_with('.') || is_mesh || !path.is_file() {
                continue;
            }
            out.push(path);
        }
        out.sort();
        Ok(out)
    }

    /// Polls the folder every `interval` forever, calling `on_change` with the new config after
    /// each scan that changed it and `on_reject` with the number of files rejected.
    pub async fn watch(
        self,
        interval: Duration,
        on_change: impl Fn(Arc<Config>) + Send + 'static,
        on_reject: impl Fn(u64) + Send + 'static,
    ) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut store = self;
        loop {
            ticker.tick().await;
            // File reads and validation block: run them beside the async workers.
            let scanned = tokio::task::spawn_blocking(move || {
                let outcome = store.scan();
                let config = outcome.changed.then(|| Arc::new(store.config()));
                (store, outcome, config)
            })
            .await;
            let (back, outcome, config) = match scanned {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(error = %e, "config scan failed; watching stops");
                    return;
                }
            };
            store = back;
            if outcome.rejected_files > 0 {
                on_reject(outcome.rejected_files);
            }
            if let Some(config) = config {
                on_change(config);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    const BAD: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r, namespace: default}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: -5\n";

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lateend-store-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap_or_default();
        dir
    }

    #[test]
    fn a_file_that_is_not_utf8_is_rejected_once_per_change() {
        let dir = temp_dir("utf8");
        let file = dir.join("vs.yaml");
        std::fs::write(&file, GOOD).unwrap_or_default();
        let mut store = FolderStore::open(&dir, None)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.config().resources.len(), 1);
        std::fs::write(&file, b"kind: \xff\xfe\n").unwrap_or_default();
        assert_eq!(store.scan().rejected_files, 1, "reported when it changes");
        for _ in 0..5 {
            assert_eq!(store.scan().rejected_files, 0, "not again until it changes");
        }
        assert_eq!(store.config().resources.len(), 1, "last good version kept");
        std::fs::write(&file, b"kind: \xff\xfe\xfd\n").unwrap_or_default();
        assert_eq!(store.scan().rejected_files, 1, "a new change is reported");
        std::fs::write(&file, GOOD).unwrap_or_default();
        let fixed = store.scan();
        assert_eq!(fixed.rejected_files, 0);
        assert_eq!(store.config().resources.len(), 1);
        assert_eq!(read_text(&file).map(|_| ()), Ok(()));
        std::fs::write(&file, b"ab\xff").unwrap_or_default();
        assert_eq!(
            read_text(&file),
            Err("not UTF-8 text (invalid byte at offset 2)".to_string())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn rejected_file_keeps_last_good_version() {
        let dir = temp_dir("keep");
        std::fs::write(dir.join("vs.yaml"), GOOD).unwrap_or_default();
        std::fs::write(dir.join("other.yaml"), GOOD.replace("name: r", "name: s"))
            .unwrap_or_default();
        let mut store = FolderStore::open(&dir, None)
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(store.config().resources.len(), 2);
        std::fs::write(dir.join("vs.yaml"), BAD).unwrap_or_default();
        let outcome = store.scan();
        assert_eq!(
            outcome,
            ScanOutcome {
                changed: false,
                rejected_files: 1
            }
        );
        assert_eq!(store.config().resources.len(), 2);
        assert_eq!(store.rejected_total(), 1);
        // Unchanged bad content is not re-reported.
        assert_eq!(store.scan().rejected_files, 0);
        std::fs::remove_file(dir.join("vs.yaml")).unwrap_or_default();
        assert!(store.scan().changed);
        assert_eq!(store.config().resources.len(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn invalid_mesh_is_fatal_at_start() {
        let dir = temp_dir("mesh");
        std::fs::write(dir.join("mesh.yaml"), "noSuchField: 1\n").unwrap_or_default();
        assert!(matches!(
            FolderStore::open(&dir, None),
            Err(StoreError::MeshInvalid(_))
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
