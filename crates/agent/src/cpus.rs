//! Which CPUs each forwarding thread may use: the shared threads stay off the
//! CPUs dedicated to slices, a dedicated slice's threads stay on its own.
//! The control thread publishes the map; every thread re-pins itself when
//! it changed (it checks a generation number once per batch or wake-up).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use netslice_model::SliceName;

/// Which CPUs each kind of forwarding thread may use.
#[derive(Debug, Default)]
pub(crate) struct CpuMap {
    generation: AtomicU64,
    map: ArcSwap<CpuSets>,
}

/// CPUs of the shared threads and of each dedicated slice's threads.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct CpuSets {
    /// Receivers, the timer, shared workers and shared port pollers: every
    /// CPU the agent may use minus the dedicated ones (all of them when
    /// nothing is dedicated or nothing would be left).
    pub(crate) shared: Vec<usize>,
    /// Threads of slices with dedicated CPUs, by slice.
    pub(crate) slices: BTreeMap<SliceName, Vec<usize>>,
}

impl CpuMap {
    /// Publishes a new map (threads pick it up at their next batch).
    pub(crate) fn set(&self, sets: CpuSets) {
        if **self.map.load() != sets {
            self.map.store(Arc::new(sets));
            self.generation.fetch_add(1, Ordering::Release);
        }
    }
}

/// A thread's view of [`CpuMap`]: re-pins the thread when the map changed.
#[derive(Debug)]
pub(crate) struct Pin {
    seen: u64,
    slice: Option<SliceName>,
}

impl Pin {
    /// For a shared thread.
    pub(crate) fn shared() -> Pin {
        Pin { seen: 0, slice: None }
    }

    /// For a thread of a slice with dedicated CPUs.
    pub(crate) fn slice(slice: &SliceName) -> Pin {
        Pin { seen: 0, slice: Some(slice.clone()) }
    }

    /// Re-pins the calling thread if the map changed since the last call.
    pub(crate) fn check(&mut self, map: &CpuMap) {
        let g = map.generation.load(Ordering::Acquire);
        if g == self.seen {
            return;
        }
        self.seen = g;
        let sets = map.map.load();
        let cpus = self.slice.as_ref().and_then(|s| sets.slices.get(s)).unwrap_or(&sets.shared);
        if !cpus.is_empty()
            && let Err(e) = netslice_io::cpu::pin_current_thread(cpus)
        {
            tracing::warn!("cannot re-pin a forwarding thread: {e}");
        }
    }
}
