//! The agent's one registry of threads, keyed by what each serves. Only the
//! control thread starts and stops them, so it always knows what runs:
//! applying a config starts what is missing, stops what is no longer wanted,
//! and leaves everything else alone.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use netslice_model::SliceName;

/// What a thread serves.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum ThreadKey {
    /// The receiver of carrier socket `k` (shared by every slice).
    Carrier(usize),
    /// The packet-socket receiver of a physical interface.
    Ether(String),
    /// The AF_XDP receiver of a physical interface.
    Xsk(String),
    /// The timer of throttled ports and delay lines.
    Timer,
    /// The STAMP sessions of measurement jobs.
    Probes,
    /// Shared sliver-port poller `k`.
    Poller(usize),
    /// The sliver-port poller of a slice with dedicated CPUs.
    SlicePoller(SliceName),
    /// Shared worker `k` of the set started `generation`-th (a set being
    /// replaced keeps running beside its successor until no plane names it).
    Worker(u64, usize),
    /// Worker `k` of a slice with dedicated CPUs, of set `generation`.
    SliceWorker(SliceName, u64, usize),
    /// A dedicated slice's own receiver on carrier `k`.
    SliceRx(SliceName, usize),
}

impl fmt::Display for ThreadKey {
    /// The thread's name (what `top -H` shows; at most 15 bytes are kept).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ThreadKey::Carrier(k) => write!(f, "rx-ip{k}"),
            ThreadKey::Ether(i) => write!(f, "rx-{i}"),
            ThreadKey::Xsk(i) => write!(f, "xsk-{i}"),
            ThreadKey::Timer => write!(f, "egress-timer"),
            ThreadKey::Probes => write!(f, "stamp-probes"),
            ThreadKey::Poller(k) => write!(f, "ports-{k}"),
            ThreadKey::SlicePoller(s) => write!(f, "ports-{s}"),
            ThreadKey::Worker(_, k) => write!(f, "worker-{k}"),
            ThreadKey::SliceWorker(s, _, k) => write!(f, "w-{s}-{k}"),
            ThreadKey::SliceRx(s, k) => write!(f, "rx-{s}-ip{k}"),
        }
    }
}

#[derive(Debug)]
struct Running {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<()>,
}

/// Every thread the agent runs.
#[derive(Debug, Default)]
pub(crate) struct Threads {
    running: BTreeMap<ThreadKey, Running>,
    started: u64,
}

impl Threads {
    /// Starts a thread for `key` (running `f` with its stop flag) unless one
    /// runs already.
    pub(crate) fn ensure(
        &mut self,
        key: ThreadKey,
        f: impl FnOnce(Arc<AtomicBool>) + Send + 'static,
    ) -> std::io::Result<()> {
        if self.running.contains_key(&key) {
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let st = stop.clone();
        let handle = std::thread::Builder::new().name(key.to_string()).spawn(move || f(st))?;
        self.started += 1;
        self.running.insert(key, Running { stop, handle });
        Ok(())
    }

    /// Tells the thread of `key` to stop, without waiting.
    pub(crate) fn signal(&self, key: &ThreadKey) {
        if let Some(r) = self.running.get(key) {
            r.stop.store(true, Ordering::Relaxed);
        }
    }

    /// Stops the thread of `key` and waits for it.
    pub(crate) fn stop(&mut self, key: &ThreadKey) {
        if let Some(r) = self.running.remove(key) {
            r.stop.store(true, Ordering::Relaxed);
            let _ = r.handle.join();
        }
    }

    /// Stops every thread whose key `gone` selects.
    pub(crate) fn stop_where(&mut self, gone: impl Fn(&ThreadKey) -> bool) {
        let keys: Vec<ThreadKey> = self.running.keys().filter(|k| gone(k)).cloned().collect();
        for k in &keys {
            self.signal(k);
        }
        for k in &keys {
            self.stop(k);
        }
    }

    /// The keys of the threads running.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &ThreadKey> {
        self.running.keys()
    }

    /// Threads started since the agent began (a no-op apply leaves it as it is).
    pub(crate) fn started(&self) -> u64 {
        self.started
    }
}
