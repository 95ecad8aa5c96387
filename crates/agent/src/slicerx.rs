//! Receive sockets of their own for slices with dedicated CPUs.
//!
//! Dedicated workers alone leave a gap: every slice's frames from the
//! substrate still arrive mixed in the shared receive queues (one raw socket
//! per carrier, one AF_XDP ring per interface) and are read by the shared
//! receivers, so a slice flooding small packets fills the queue that another
//! slice's frames wait in, however idle that slice's own CPU is (the isolation
//! benchmark measured 100-230 ms of queueing with socket I/O).
//!
//! So for each carrier whose link type tells the kernel where its label is
//! ([`LabelField`]; today `gre`: the GRE key), a slice with `qos.cpus` gets a
//! socket of its own that keeps only that slice's labels (a classic BPF
//! filter), read by a receiver pinned to the slice's CPUs; the shared socket
//! drops those labels with the opposite filter, and the XDP programs leave
//! them to the kernel (a BPF map of passed keys) instead of stealing them into
//! the shared AF_XDP rings. The slice's frames then queue only behind its own.
//!
//! Changes are ordered to lose a few frames rather than duplicate them: a
//! label leaves the shared socket before it enters a slice's, and leaves a
//! slice's (which then forwards what it still holds and stops) before the
//! shared socket takes it back.
//!
//! Link types without a [`LabelField`] (`vxlan`, the Ethernet carriers) still
//! reach a dedicated slice's CPUs only after the shared receivers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;

use netslice_dataplane::{LabelField, Registry};
use netslice_io::sock::Socket;
use netslice_io::xdp::PassMap;
use netslice_model::api::NodeConfig;

use crate::forward::{IpCarrier, OwnRx, Shared, ip_rx_on};
use crate::workers::WorkerSet;

/// One slice's receiver on one carrier.
#[derive(Debug)]
pub struct SliceRx {
    set: Arc<WorkerSet>,
    sock: Arc<Socket>,
    keys: BTreeSet<u32>,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    handle: JoinHandle<()>,
}

/// Receivers by (slice, carrier index).
pub type SliceRxs = BTreeMap<(String, usize), SliceRx>;

/// The labels each dedicated slice (a key of `sets` other than "") should
/// receive on a socket of its own, by (slice, index into `carriers`).
pub fn wanted(
    cfg: &NodeConfig,
    registry: &Registry,
    carriers: &[IpCarrier],
    sets: &BTreeMap<String, Arc<WorkerSet>>,
) -> BTreeMap<(String, usize), BTreeSet<u32>> {
    let mut want: BTreeMap<(String, usize), BTreeSet<u32>> = BTreeMap::new();
    for l in cfg.labels.iter().filter(|l| !l.slice.is_empty() && sets.contains_key(&l.slice)) {
        let Some(p) = registry.link_idx(l.link_type.as_str()).and_then(|i| registry.link(i)) else { continue };
        if p.label_field() != Some(LabelField::GreKey) {
            continue;
        }
        let Some(k) = carriers.iter().position(|c| c.carrier == p.carrier()) else { continue };
        want.entry((l.slice.clone(), k)).or_default().insert(l.label);
    }
    want
}

fn keys_of(rxs: &SliceRxs, k: usize) -> Vec<u32> {
    let all: BTreeSet<u32> =
        rxs.iter().filter(|((_, c), _)| *c == k).flat_map(|(_, r)| r.keys.iter().copied()).collect();
    all.into_iter().collect()
}

/// Stops a receiver: its socket stops taking frames, it forwards what the
/// socket still holds, and exits.
fn retire(rx: SliceRx) {
    if let Err(e) = rx.sock.filter_gre_keys(&[], true) {
        tracing::warn!("closing a slice's receive socket: {e}");
    }
    rx.stop.store(true, Ordering::Relaxed);
    let _ = rx.handle.join();
}

/// Makes the running receivers match `want`; returns problems to report.
/// `open` opens a carrier's raw socket in the host's namespace.
pub fn sync(
    shared: &Arc<Shared>,
    rxs: &mut SliceRxs,
    want: &BTreeMap<(String, usize), BTreeSet<u32>>,
    sets: &BTreeMap<String, Arc<WorkerSet>>,
    pass: Option<&PassMap>,
    open: &dyn Fn(u8) -> netslice_io::Result<Socket>,
) -> Vec<String> {
    let mut problems = Vec::new();
    // Carriers whose shared socket's filter may change (before receivers go).
    let carriers: BTreeSet<usize> = want.keys().map(|(_, k)| *k).chain(rxs.keys().map(|(_, k)| *k)).collect();
    // 1. Receivers no longer wanted, or whose slice got a new worker set.
    let stale: Vec<(String, usize)> = rxs
        .iter()
        .filter(|(key, rx)| !want.contains_key(*key) || sets.get(&key.0).is_none_or(|s| !Arc::ptr_eq(s, &rx.set)))
        .map(|(key, _)| key.clone())
        .collect();
    if !stale.is_empty() {
        // Frames the XDP programs pass for them would find no socket.
        let keep: BTreeSet<u32> =
            rxs.iter().filter(|(k, _)| !stale.contains(k)).flat_map(|(_, r)| r.keys.clone()).collect();
        set_pass(pass, &keep, &mut problems);
    }
    for key in &stale {
        if let Some(rx) = rxs.remove(key) {
            retire(rx);
        }
    }
    // 2. The shared sockets drop every label about to be dedicated.
    for &k in &carriers {
        let mut keys: BTreeSet<u32> = keys_of(rxs, k).into_iter().collect();
        keys.extend(want.iter().filter(|((_, c), _)| *c == k).flat_map(|(_, v)| v.iter().copied()));
        let keys: Vec<u32> = keys.into_iter().collect();
        if let Err(e) = shared.ip[k].sock.filter_gre_keys(&keys, false) {
            problems.push(format!("the shared receive socket cannot leave dedicated slices' labels out: {e}"));
        }
    }
    // 3. Open new receivers, or change the labels of running ones.
    for ((slice, k), keys) in want {
        let list: Vec<u32> = keys.iter().copied().collect();
        if let Some(rx) = rxs.get_mut(&(slice.clone(), *k)) {
            if &rx.keys != keys {
                match rx.sock.filter_gre_keys(&list, true) {
                    Ok(()) => rx.keys = keys.clone(),
                    Err(e) => problems.push(format!("{slice}: receive socket keeps its old labels: {e}")),
                }
            }
            continue;
        }
        let Some(set) = sets.get(slice) else { continue };
        match start(shared, slice, *k, set, &list, open) {
            Ok(rx) => {
                rxs.insert((slice.clone(), *k), SliceRx { keys: keys.clone(), ..rx });
            }
            Err(e) => problems
                .push(format!("{slice}: no receive socket of its own ({e}); its frames share the substrate receivers")),
        }
    }
    // 4. The shared sockets take back what no slice's socket took; the XDP
    // programs pass exactly what the slices' sockets take.
    for &k in &carriers {
        if let Err(e) = shared.ip[k].sock.filter_gre_keys(&keys_of(rxs, k), false) {
            problems.push(format!("the shared receive socket cannot take labels back: {e}"));
        }
    }
    let all: BTreeSet<u32> = rxs.values().flat_map(|r| r.keys.iter().copied()).collect();
    set_pass(pass, &all, &mut problems);
    problems
}

fn set_pass(pass: Option<&PassMap>, keys: &BTreeSet<u32>, problems: &mut Vec<String>) {
    if let Some(p) = pass
        && let Err(e) = p.set_gre_keys(keys)
    {
        problems.push(format!("AF_XDP still steals some dedicated slices' frames: {e}"));
    }
}

fn start(
    shared: &Arc<Shared>,
    slice: &str,
    k: usize,
    set: &Arc<WorkerSet>,
    keys: &[u32],
    open: &dyn Fn(u8) -> netslice_io::Result<Socket>,
) -> Result<SliceRx, String> {
    let netslice_dataplane::Carrier::IpProto(proto) = shared.ip[k].carrier else {
        return Err("not a raw IP carrier".into());
    };
    let sock = open(proto).map_err(|e| e.to_string())?;
    sock.filter_gre_keys(keys, true).map_err(|e| e.to_string())?;
    let sock = Arc::new(sock);
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let cpus: Vec<usize> = set.cpus.iter().flatten().copied().collect();
    let (s, so, st, fr, ws) = (shared.clone(), sock.clone(), stop.clone(), frames.clone(), set.clone());
    let handle = std::thread::Builder::new()
        .name(format!("rx-{slice}-ip{k}"))
        .spawn(move || {
            if !cpus.is_empty()
                && let Err(e) = netslice_io::cpu::pin_current_thread(&cpus)
            {
                tracing::warn!("cannot pin a slice's receiver: {e}");
            }
            ip_rx_on(&s, k, &so, Some(OwnRx { stop: &st, frames: &fr, set: ws }));
        })
        .map_err(|e| format!("starting its receiver: {e}"))?;
    Ok(SliceRx { set: set.clone(), sock, keys: BTreeSet::new(), stop, frames, handle })
}

/// Stops every receiver (the agent is stopping).
pub fn stop_all(rxs: &mut SliceRxs) {
    for (_, rx) in std::mem::take(rxs) {
        retire(rx);
    }
}

/// For reports: `gre socket, N frames` per receiver of `slice`.
pub fn describe(rxs: &SliceRxs, slice: &str, registry: &Registry, carriers: &[IpCarrier]) -> Vec<String> {
    rxs.iter()
        .filter(|((s, _), _)| s == slice)
        .map(|((_, k), rx)| {
            let name = registry.link(carriers[*k].link_type).map(|l| l.info().name).unwrap_or_default();
            format!("own {name} socket: {} frames", rx.frames.load(Ordering::Relaxed))
        })
        .collect()
}
