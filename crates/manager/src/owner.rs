//! The one thread that owns the manager's state.
//!
//! Handlers never touch [`Core`]: they send it a command and await the
//! answer, or read the [`Snapshot`] published after the last change. The
//! owner runs commands one at a time on a thread of its own (planning and
//! SQLite block; they never hold up the async workers serving everyone
//! else), reads the clock once per command and passes it in, and after each
//! change publishes a new snapshot before answering, so a caller always
//! reads its own write.
//!
//! Two lanes: agents' reports, registrations and the housekeeping tick
//! (short, and what keeps slice states and long-polls current) go first;
//! changes of slices and users (planning, a transaction) after them. So a
//! burst of applies never starves the agents, and an agent's report waits
//! for at most the one command in progress.

use std::sync::Arc;
use std::time::SystemTime;

use tokio::sync::{mpsc, oneshot, watch};

use crate::state::{Core, ManagerError, Snapshot};

/// Which queue a command waits in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Agents' reports and registrations, the housekeeping tick.
    Fast,
    /// Changes of slices and users, dry runs, audit reads.
    Slow,
}

/// Commands queued per lane at most; a caller past that waits to queue.
pub const QUEUE: usize = 1024;

type Finish = Box<dyn FnOnce(Arc<Snapshot>) + Send>;
type Job = Box<dyn FnOnce(&mut Core, SystemTime) -> Finish + Send>;

/// A handle on the owner: send commands, read snapshots. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Manager {
    fast: mpsc::Sender<Job>,
    slow: mpsc::Sender<Job>,
    snapshot: watch::Receiver<Arc<Snapshot>>,
    revision: watch::Receiver<u64>,
}

impl Manager {
    /// Starts the owner thread with `core`. It stops when every handle is gone.
    pub fn spawn(core: Core) -> std::io::Result<Manager> {
        let (fast, fast_rx) = mpsc::channel(QUEUE);
        let (slow, slow_rx) = mpsc::channel(QUEUE);
        let (snap_tx, snapshot) = watch::channel(Arc::new(core.snapshot()));
        let (rev_tx, revision) = watch::channel(core.revision());
        std::thread::Builder::new()
            .name("manager-state".into())
            .spawn(move || run(core, fast_rx, slow_rx, snap_tx, rev_tx))?;
        Ok(Manager { fast, slow, snapshot, revision })
    }

    /// The state as of the last change.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// Wakes at every new snapshot.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshot.clone()
    }

    /// Wakes when the global revision moves (the desired config of some
    /// host changed): what agents' long-polls wait on.
    pub fn revisions(&self) -> watch::Receiver<u64> {
        self.revision.clone()
    }

    /// Runs `f` on the state at the owner's `now`, in `lane`; returns its
    /// result and the snapshot published after it.
    pub async fn call<T: Send + 'static>(
        &self,
        lane: Lane,
        f: impl FnOnce(&mut Core, SystemTime) -> T + Send + 'static,
    ) -> Result<(T, Arc<Snapshot>), ManagerError> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |core, now| {
            let r = f(core, now);
            Box::new(move |snap| {
                let _ = tx.send((r, snap));
            })
        });
        let queue = match lane {
            Lane::Fast => &self.fast,
            Lane::Slow => &self.slow,
        };
        let stopped = || ManagerError::Unavailable("the manager is stopping".into());
        queue.send(job).await.map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }
}

fn run(
    mut core: Core,
    mut fast: mpsc::Receiver<Job>,
    mut slow: mpsc::Receiver<Job>,
    snapshot: watch::Sender<Arc<Snapshot>>,
    revision: watch::Sender<u64>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("the manager's state thread cannot start: {e}");
            return;
        }
    };
    rt.block_on(async move {
        loop {
            let job = tokio::select! {
                biased;
                Some(j) = fast.recv() => j,
                Some(j) = slow.recv() => j,
                else => break,
            };
            let generation = core.generation();
            let finish = job(&mut core, SystemTime::now());
            if core.generation() != generation {
                snapshot.send_replace(Arc::new(core.snapshot()));
                if *revision.borrow() != core.revision() {
                    revision.send_replace(core.revision());
                }
            }
            finish(snapshot.borrow().clone());
        }
    });
    tracing::debug!("the manager's state thread stopped");
}
