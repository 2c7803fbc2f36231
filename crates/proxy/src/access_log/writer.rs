//! Off the request path: a request appends its line to the file's pending buffer (a short
//! lock, a copy, no system call, no thread wake-up) and one thread per file writes the buffer
//! out when it holds [`FLUSH_BYTES`] or [`FLUSH_INTERVAL`] after its first line, as Envoy's
//! file sink does (64 KiB buffer, timed flush). Waking the writer for every line cost more
//! than the request itself (a futex wake and a context switch per request on a one-core
//! proxy). When the file is slower than traffic the buffer reaches [`MAX_PENDING_BYTES`] and
//! further lines are dropped and counted, so a slow disk never stalls a request and never
//! grows memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Bytes a file's pending buffer holds before new lines are dropped (about 16k lines of
/// Istio's default format).
pub const MAX_PENDING_BYTES: usize = 4 * 1024 * 1024;

/// The writer writes once this much is pending.
pub const FLUSH_BYTES: usize = 64 * 1024;

/// ... or this long after the first line of a batch, whichever comes first.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// What requests have appended and the writer thread has not taken yet.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: u64,
    /// Every [`Writer`] handle is gone: write what is left and end.
    closed: bool,
}

/// State shared by a file's [`Writer`] handle and its thread.
#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Signalled when a batch starts, when it reaches [`FLUSH_BYTES`] and on close.
    wake: Condvar,
    dropped: AtomicU64,
    written: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// One file's buffer and counters. Shared by every listener and snapshot that logs to the
/// path, so a configuration change neither reopens the file nor loses pending lines.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    shared: Arc<Shared>,
}

impl Writer {
    /// Appends `line`; drops it (and counts it) when the buffer is full.
    pub fn push(&self, line: &str) {
        let mut pending = self.shared.lock();
        let before = pending.bytes.len();
        if before + line.len() > MAX_PENDING_BYTES {
            drop(pending);
            if self
                .shared
                .dropped
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(10_000)
            {
                tracing::warn!(path = %self.path.display(), "access log is behind; dropping lines");
            }
            return;
        }
        pending.bytes.extend_from_slice(line.as_bytes());
        pending.lines += 1;
        let after = pending.bytes.len();
        drop(pending);
        // Only two moments need the writer: a batch starts (it then sleeps until the batch is
        // due) and a batch is full.
        if before == 0 || (before < FLUSH_BYTES && after >= FLUSH_BYTES) {
            self.shared.wake.notify_one();
        }
    }

    /// Lines dropped because the file was slower than traffic.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Lines written to the file so far.
    pub fn written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

impl Drop for Writer {
    /// The thread writes what is pending and ends.
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

fn registry() -> &'static Mutex<HashMap<PathBuf, Weak<Writer>>> {
    static WRITERS: OnceLock<Mutex<HashMap<PathBuf, Weak<Writer>>>> = OnceLock::new();
    WRITERS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The writer of `path`, started on first use. The file is opened by the writer thread (a
/// file that cannot be opened is reported there and its lines are discarded).
pub fn writer_for(path: &str) -> Arc<Writer> {
    let path = PathBuf::from(path);
    let mut writers = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(existing) = writers.get(&path).and_then(Weak::upgrade) {
        return existing;
    }
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending::default()),
        wake: Condvar::new(),
        dropped: AtomicU64::new(0),
        written: AtomicU64::new(0),
    });
    let writer = Arc::new(Writer {
        path: path.clone(),
        shared: shared.clone(),
    });
    let thread_path = path.clone();
    let spawned = std::thread::Builder::new()
        .name("access-log".to_string())
        .spawn(move || drain(thread_path, shared));
    if let Err(e) = spawned {
        tracing::error!(path = %path.display(), error = %e, "cannot start the access-log writer");
    }
    writers.retain(|_, w| w.strong_count() > 0);
    writers.insert(path, Arc::downgrade(&writer));
    writer
}

/// Appends the access-log counters to the admin `/stats` text: lines written (Envoy's
/// `access_log_file.write_completed`) and lines dropped because a file was slower than
/// traffic, summed over the files in use.
pub fn render_stats(out: &mut String) {
    let writers = registry()
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let (mut written, mut dropped) = (0u64, 0u64);
    for writer in writers.values().filter_map(Weak::upgrade) {
        written += writer.written();
        dropped += writer.dropped();
    }
    out.push_str(&format!(
        "access_log_file.write_completed: {written}\nlateen.access_log_file.dropped_lines: {dropped}\n"
    ));
}

/// The next batch: waits for a first line, then until the batch is full, due or the writer
/// closed. `None` once closed with nothing left. The buffer handed out is replaced by `spare`
/// (emptied), so the two buffers alternate and neither is reallocated in steady state.
fn next_batch(shared: &Shared, spare: Vec<u8>) -> Option<(Vec<u8>, u64)> {
    let mut pending = shared.lock();
    while pending.bytes.is_empty() && !pending.closed {
        pending = shared
            .wake
            .wait(pending)
            .unwrap_or_else(|poisoned| poisoned.into_inner());
    }
    let due = Instant::now() + FLUSH_INTERVAL;
    while pending.bytes.len() < FLUSH_BYTES && !pending.closed {
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        pending = shared
            .wake
            .wait_timeout(pending, left)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|poisoned| poisoned.into_inner().0);
    }
    if pending.bytes.is_empty() {
        return None;
    }
    let lines = std::mem::take(&mut pending.lines);
    let bytes = std::mem::replace(&mut pending.bytes, spare);
    Some((bytes, lines))
}

/// The writer thread: ends when every [`Writer`] handle is gone and the buffer is written.
fn drain(path: PathBuf, shared: Arc<Shared>) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    let mut file = match file {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open access log; its lines are discarded");
            None
        }
    };
    let mut spare = Vec::with_capacity(FLUSH_BYTES * 2);
    while let Some((mut batch, lines)) = next_batch(&shared, spare) {
        if let Some(f) = file.as_mut() {
            if f.write_all(&batch).is_err() {
                tracing::warn!(path = %path.display(), "writing the access log failed");
            }
            shared.written.fetch_add(lines, Ordering::Relaxed);
        }
        batch.clear();
        // A burst may have grown the buffer to the drop limit: give that memory back.
        batch.shrink_to(FLUSH_BYTES * 2);
        spare = batch;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A FIFO nobody reads stands for a file that never accepts a byte: opening it blocks the
    /// writer thread, so the buffer fills. Pushing never blocks; the overflow is counted.
    #[test]
    fn a_stuck_file_drops_and_counts_lines_without_blocking() {
        let dir = std::env::temp_dir().join(format!("lateen-al-fifo-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let fifo = dir.join("stuck.log");
        let _ = std::fs::remove_file(&fifo);
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if !made.is_ok_and(|s| s.success()) {
            eprintln!("NOTICE: mkfifo unavailable; skipping");
            return;
        }
        let writer = writer_for(&fifo.display().to_string());
        // Lines of 64 bytes: the buffer takes exactly `fits` of them.
        let line = format!("{:063}\n", 7);
        let fits = MAX_PENDING_BYTES / line.len();
        let extra = 5_000;
        let started = Instant::now();
        for _ in 0..fits + extra {
            writer.push(&line);
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "pushing took {:?}",
            started.elapsed()
        );
        assert_eq!(writer.dropped(), extra as u64);
        assert_eq!(writer.written(), 0);
        let mut stats = String::new();
        render_stats(&mut stats);
        assert!(
            stats.contains("lateen.access_log_file.dropped_lines: "),
            "{stats}"
        );
        // Unblock the writer thread (it opens for writing once a reader appears) and let it
        // drain into the reader, so the thread ends with the test.
        let reader = std::thread::spawn({
            let fifo = fifo.clone();
            move || {
                use std::io::Read;
                let mut all = Vec::new();
                if let Ok(mut f) = std::fs::File::open(&fifo) {
                    let _ = f.read_to_end(&mut all);
                }
                all.len()
            }
        });
        let deadline = Instant::now() + Duration::from_secs(10);
        while writer.written() < fits as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(writer.written(), fits as u64);
        drop(writer);
        let read = reader.join().unwrap_or(0);
        assert!(read > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
