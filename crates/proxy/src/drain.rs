//! Draining, used the same way by every listener: on SIGTERM (or `/quitquitquit`) listeners
//! stop accepting, every HTTP connection is asked to finish (HTTP/1.1 answers in-flight
//! requests with `Connection: close` and closes idle connections, HTTP/2 sends GOAWAY), and
//! the process exits when the last connection ends or the drain deadline passes.

use tokio::sync::watch;

#[derive(Clone)]
pub struct Drain {
    signal: watch::Sender<bool>,
}

#[derive(Clone)]
pub struct DrainWatch {
    signal: watch::Receiver<bool>,
}

impl Drain {
    pub fn new() -> (Drain, DrainWatch) {
        let (signal, watch) = watch::channel(false);
        (Drain { signal }, DrainWatch { signal: watch })
    }

    /// Starts draining; idempotent.
    pub fn start(&self) {
        self.signal.send_replace(true);
    }

    pub fn is_draining(&self) -> bool {
        *self.signal.borrow()
    }
}

impl DrainWatch {
    /// Resolves once draining has started.
    pub async fn signaled(&mut self) {
        let _ = self.signal.wait_for(|draining| *draining).await;
    }

    pub fn is_draining(&self) -> bool {
        *self.signal.borrow()
    }
}
