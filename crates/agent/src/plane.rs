//! What the forwarding threads read, swapped as one by the control thread:
//! the pipeline's plane (tables, routes by id) and, in the same order as its
//! ids, the devices and programs those ids stand for.

use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};

use netslice_dataplane::Verdict;
use netslice_dataplane::program::{NodeProgram, Outputs};
use netslice_pipeline::{NodeId, Programs};

use crate::egress::PortDriver;

/// A running fast-path node program. Several threads may hand it frames;
/// it runs one at a time.
pub(crate) type Program = Mutex<Box<dyn NodeProgram>>;

/// A frame's buffer and the redirector's verdict on it.
pub(crate) type Item = (Vec<u8>, Verdict);

/// A batch of classified frames for one worker.
#[derive(Debug)]
pub(crate) struct Job {
    /// The plane the verdicts were made with.
    pub(crate) plane: Arc<Plane>,
    /// When they were received (the agent's clock).
    pub(crate) now: u64,
    /// Buffers and verdicts.
    pub(crate) items: Vec<Item>,
}

/// The queues of a set of worker threads (the threads themselves are in the
/// control thread's registry).
#[derive(Debug)]
pub(crate) struct WorkerQueues {
    /// The slice whose CPUs they run on (`None`: the shared workers).
    pub(crate) slice: Option<netslice_model::SliceName>,
    /// One queue per worker.
    pub(crate) queues: Vec<SyncSender<Job>>,
}

impl WorkerQueues {
    /// The worker of a flow: a multiply-shift of the hash onto `0..n`.
    pub(crate) fn pick(&self, flow: u32) -> usize {
        ((u64::from(flow) * self.queues.len() as u64) >> 32) as usize
    }
}

/// Everything the per-frame path reads.
#[derive(Debug, Default)]
pub(crate) struct Plane {
    /// Tables, routes, port kinds, node list, impairments.
    pub(crate) pipe: netslice_pipeline::Plane,
    /// Egress ports by `PortId`.
    pub(crate) ports: Vec<Arc<PortDriver>>,
    /// Node programs by `NodeId`.
    pub(crate) programs: Vec<Arc<Program>>,
    /// Workers that forward each rule's frames, by rule id (`None`: the
    /// receiving thread forwards them itself).
    pub(crate) steer: Vec<Option<Arc<WorkerQueues>>>,
}

impl Programs for Plane {
    fn process(&self, node: NodeId, now: u64, iface: usize, frame: &mut [u8], out: &mut Outputs) {
        if let Some(p) = self.programs.get(node.index()) {
            p.lock().expect("node program lock").process(now, iface, frame, out);
        }
    }
}
