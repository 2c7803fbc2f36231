//! Off the request path: lines go into a bounded queue that one thread per file drains into
//! the file. When the file is slower than traffic the queue fills and further lines are
//! dropped and counted, so a slow disk never stalls a request and never grows memory.

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// Lines a file's queue holds before new lines are dropped.
pub const QUEUE_LINES: usize = 16 * 1024;

/// Lines written together when the queue has several waiting.
const BATCH_LINES: usize = 256;

/// One file's queue and counters. Shared by every listener and snapshot that logs to the
/// path, so a configuration change neither reopens the file nor loses queued lines.
#[derive(Debug)]
pub struct Writer {
    path: PathBuf,
    queue: SyncSender<String>,
    dropped: AtomicU64,
    written: Arc<AtomicU64>,
}

impl Writer {
    /// Queues `line`; drops it (and counts it) when the queue is full.
    pub fn push(&self, line: String) {
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                if self
                    .dropped
                    .fetch_add(1, Ordering::Relaxed)
                    .is_multiple_of(10_000)
                {
                    tracing::warn!(path = %self.path.display(), "access log is behind; dropping lines");
                }
            }
        }
    }

    /// Lines dropped because the file was slower than traffic.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Lines written to the file so far.
    pub fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
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
    let (queue, lines) = sync_channel(QUEUE_LINES);
    let written = Arc::new(AtomicU64::new(0));
    let writer = Arc::new(Writer {
        path: path.clone(),
        queue,
        dropped: AtomicU64::new(0),
        written: written.clone(),
    });
    let thread_path = path.clone();
    let spawned = std::thread::Builder::new()
        .name("access-log".to_string())
        .spawn(move || drain(thread_path, lines, written));
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

/// The writer thread: ends when every [`Writer`] handle is gone and the queue is empty.
fn drain(path: PathBuf, lines: Receiver<String>, written: Arc<AtomicU64>) {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path);
    let mut file = match file {
        Ok(f) => std::io::BufWriter::with_capacity(64 * 1024, f),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot open access log; its lines are discarded");
            for _ in lines {}
            return;
        }
    };
    while let Ok(first) = lines.recv() {
        let mut count = 1u64;
        let mut ok = file.write_all(first.as_bytes()).is_ok();
        // Whatever else is already waiting goes out in the same write.
        while let Ok(line) = lines.try_recv() {
            ok &= file.write_all(line.as_bytes()).is_ok();
            count += 1;
            if count as usize >= BATCH_LINES {
                break;
            }
        }
        ok &= file.flush().is_ok();
        if !ok {
            tracing::warn!(path = %path.display(), "writing the access log failed");
        }
        written.fetch_add(count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A FIFO nobody reads stands for a file that never accepts a byte: opening it blocks the
    /// writer thread, so the queue fills. Pushing never blocks; the overflow is counted.
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
        let extra = 5_000;
        let started = Instant::now();
        for i in 0..QUEUE_LINES + extra {
            writer.push(format!("line {i}\n"));
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
        while writer.written() < QUEUE_LINES as u64 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(writer.written(), QUEUE_LINES as u64);
        drop(writer);
        let read = reader.join().unwrap_or(0);
        assert!(read > 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
