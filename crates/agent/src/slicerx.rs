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

use netslice_dataplane::{Carrier, LabelField, Registry};
use netslice_io::sock::Socket;
use netslice_io::xdp::{PassKey, PassMap};
use netslice_model::api::NodeConfig;

use crate::forward::{IpCarrier, OwnRx, Shared, ip_rx_on};
use crate::workers::WorkerSet;

/// One slice's receiver on one carrier.
#[derive(Debug)]
pub struct SliceRx {
    set: Arc<WorkerSet>,
    sock: Arc<Socket>,
    keys: BTreeSet<u32>,
    /// UDP carriers: the socket's index in the reuseport group.
    index: Option<u32>,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
    handle: JoinHandle<()>,
}

/// Receivers by (slice, carrier index).
type Rxs = BTreeMap<(String, usize), SliceRx>;

/// The dedicated slices' receivers of one agent, and what the shared GRE
/// sockets' filters drop now (so an unchanged config attaches nothing).
#[derive(Debug, Default)]
pub struct SliceRxs {
    rxs: Rxs,
    excluded: BTreeMap<usize, Vec<u32>>,
}

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
        let Some(k) = carriers.iter().position(|c| c.carrier == p.carrier()) else { continue };
        let steerable = match (p.label_field(), p.carrier()) {
            (Some(LabelField::GreKey), Carrier::IpProto(_)) => true,
            (Some(LabelField::UdpBe24 { .. }), Carrier::Udp(_)) => carriers[k].steer.is_some(),
            _ => false,
        };
        if !steerable {
            continue;
        }
        want.entry((l.slice.clone(), k)).or_default().insert(l.label);
    }
    want
}

fn keys_of(rxs: &Rxs, k: usize) -> BTreeSet<u32> {
    rxs.iter().filter(|((_, c), _)| *c == k).flat_map(|(_, r)| r.keys.iter().copied()).collect()
}

/// Makes the shared GRE socket of carrier `k` drop exactly `keys`.
fn exclude(
    carriers: &[IpCarrier],
    excluded: &mut BTreeMap<usize, Vec<u32>>,
    k: usize,
    keys: BTreeSet<u32>,
) -> netslice_io::Result<()> {
    let keys: Vec<u32> = keys.into_iter().collect();
    if excluded.get(&k).map_or(keys.is_empty(), |now| *now == keys) {
        return Ok(());
    }
    carriers[k].sock.filter_gre_keys(&keys, false)?;
    excluded.insert(k, keys);
    Ok(())
}

fn is_gre(carriers: &[IpCarrier], k: usize) -> bool {
    matches!(carriers[k].carrier, Carrier::IpProto(_))
}

/// What the XDP programs must pass for these receivers.
fn pass_keys<'a>(
    carriers: &[IpCarrier],
    rxs: impl Iterator<Item = (&'a (String, usize), &'a SliceRx)>,
) -> BTreeSet<PassKey> {
    let mut keys = BTreeSet::new();
    for ((_, k), rx) in rxs {
        for &label in &rx.keys {
            keys.insert(match carriers[*k].carrier {
                Carrier::Udp(port) => PassKey::Udp { port, label },
                _ => PassKey::Gre(label),
            });
        }
    }
    keys
}

/// Points the labels of these receivers on UDP carrier `k` to their sockets.
fn steer_labels<'a>(
    carriers: &[IpCarrier],
    k: usize,
    rxs: impl Iterator<Item = (&'a (String, usize), &'a SliceRx)>,
    problems: &mut Vec<String>,
) {
    let Some(steer) = &carriers[k].steer else { return };
    let want: BTreeMap<u32, u32> = rxs
        .filter(|((_, c), _)| *c == k)
        .filter_map(|(_, rx)| rx.index.map(|i| (rx, i)))
        .flat_map(|(rx, i)| rx.keys.iter().map(move |&l| (l, i)))
        .collect();
    if let Err(e) = steer.set_labels(&want) {
        problems.push(format!("the VXLAN port's socket selector: {e}"));
    }
}

/// Stops a receiver: its socket stops taking frames, it forwards what the
/// socket still holds, and exits.
fn retire(carriers: &[IpCarrier], k: usize, rx: SliceRx) {
    let closed = match (&carriers[k].steer, rx.index) {
        (Some(steer), Some(i)) => steer.clear_socket(i),
        _ => rx.sock.filter_gre_keys(&[], true),
    };
    if let Err(e) = closed {
        tracing::warn!("closing a slice's receive socket: {e}");
    }
    rx.stop.store(true, Ordering::Relaxed);
    let _ = rx.handle.join();
}

/// Makes the running receivers match `want`; returns problems to report.
/// `open` opens a carrier's socket in the host's namespace (a raw socket for
/// an IP protocol, a `SO_REUSEPORT` socket for a UDP port).
pub fn sync(
    shared: &Arc<Shared>,
    state: &mut SliceRxs,
    want: &BTreeMap<(String, usize), BTreeSet<u32>>,
    sets: &BTreeMap<String, Arc<WorkerSet>>,
    pass: Option<&PassMap>,
    open: &dyn Fn(Carrier) -> netslice_io::Result<Socket>,
) -> Vec<String> {
    let ip = &shared.ip;
    let SliceRxs { rxs, excluded } = state;
    let mut problems = Vec::new();
    // Carriers whose shared socket or selector may change (before receivers go).
    let carriers: BTreeSet<usize> = want.keys().map(|(_, k)| *k).chain(rxs.keys().map(|(_, k)| *k)).collect();
    // 1. Receivers no longer wanted, or whose slice got a new worker set: the
    // XDP programs and the VXLAN selector stop sending them anything first.
    let stale: Vec<(String, usize)> = rxs
        .iter()
        .filter(|(key, rx)| !want.contains_key(*key) || sets.get(&key.0).is_none_or(|s| !Arc::ptr_eq(s, &rx.set)))
        .map(|(key, _)| key.clone())
        .collect();
    if !stale.is_empty() {
        let kept = || rxs.iter().filter(|(k, _)| !stale.contains(k));
        set_pass(pass, &pass_keys(ip, kept()), &mut problems);
        for &k in carriers.iter().filter(|&&k| !is_gre(ip, k)) {
            steer_labels(ip, k, kept(), &mut problems);
        }
    }
    for key in &stale {
        if let Some(rx) = rxs.remove(key) {
            retire(ip, key.1, rx);
        }
    }
    // 2. The shared GRE sockets drop every key about to be dedicated.
    for &k in carriers.iter().filter(|&&k| is_gre(ip, k)) {
        let mut keys = keys_of(rxs, k);
        keys.extend(want.iter().filter(|((_, c), _)| *c == k).flat_map(|(_, v)| v.iter().copied()));
        if let Err(e) = exclude(ip, excluded, k, keys) {
            problems.push(format!("the shared receive socket cannot leave dedicated slices' labels out: {e}"));
        }
    }
    // 3. Open new receivers, or change the labels of running ones.
    for ((slice, k), keys) in want {
        if let Some(rx) = rxs.get_mut(&(slice.clone(), *k)) {
            if &rx.keys != keys {
                if is_gre(ip, *k) {
                    let list: Vec<u32> = keys.iter().copied().collect();
                    match rx.sock.filter_gre_keys(&list, true) {
                        Ok(()) => rx.keys = keys.clone(),
                        Err(e) => problems.push(format!("{slice}: receive socket keeps its old labels: {e}")),
                    }
                } else {
                    rx.keys = keys.clone(); // the selector follows in step 4
                }
            }
            continue;
        }
        let Some(set) = sets.get(slice) else { continue };
        let used: BTreeSet<u32> = rxs.iter().filter(|((_, c), _)| c == k).filter_map(|(_, r)| r.index).collect();
        match start(shared, slice, *k, set, keys, &used, open) {
            Ok(rx) => {
                rxs.insert((slice.clone(), *k), rx);
            }
            Err(e) => problems
                .push(format!("{slice}: no receive socket of its own ({e}); its frames share the substrate receivers")),
        }
    }
    // 4. The shared GRE sockets take back what no slice's socket took; the
    // VXLAN selector points each dedicated VNI to its socket; the XDP
    // programs pass exactly what the slices' sockets take.
    for &k in &carriers {
        if is_gre(ip, k) {
            if let Err(e) = exclude(ip, excluded, k, keys_of(rxs, k)) {
                problems.push(format!("the shared receive socket cannot take labels back: {e}"));
            }
        } else {
            steer_labels(ip, k, rxs.iter(), &mut problems);
        }
    }
    set_pass(pass, &pass_keys(ip, rxs.iter()), &mut problems);
    problems
}

fn set_pass(pass: Option<&PassMap>, keys: &BTreeSet<PassKey>, problems: &mut Vec<String>) {
    if let Some(p) = pass
        && let Err(e) = p.set(keys)
    {
        problems.push(format!("AF_XDP still steals some dedicated slices' frames: {e}"));
    }
}

fn start(
    shared: &Arc<Shared>,
    slice: &str,
    k: usize,
    set: &Arc<WorkerSet>,
    keys: &BTreeSet<u32>,
    used: &BTreeSet<u32>,
    open: &dyn Fn(Carrier) -> netslice_io::Result<Socket>,
) -> Result<SliceRx, String> {
    let carrier = &shared.ip[k];
    let sock = open(carrier.carrier).map_err(|e| e.to_string())?;
    let index = match &carrier.steer {
        Some(steer) => {
            let i = (1..netslice_io::reuseport::MAX_SOCKETS)
                .find(|i| !used.contains(i))
                .ok_or("every socket slot of the VXLAN port is taken")?;
            steer.set_socket(i, &sock).map_err(|e| e.to_string())?;
            Some(i)
        }
        None => {
            let list: Vec<u32> = keys.iter().copied().collect();
            sock.filter_gre_keys(&list, true).map_err(|e| e.to_string())?;
            None
        }
    };
    let sock = Arc::new(sock);
    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let cpus: Vec<usize> = set.cpus.iter().flatten().copied().collect();
    let (s, so, st, fr, ws) = (shared.clone(), sock.clone(), stop.clone(), frames.clone(), set.clone());
    let spawned = std::thread::Builder::new().name(format!("rx-{slice}-ip{k}")).spawn(move || {
        if !cpus.is_empty()
            && let Err(e) = netslice_io::cpu::pin_current_thread(&cpus)
        {
            tracing::warn!("cannot pin a slice's receiver: {e}");
        }
        ip_rx_on(&s, k, &so, Some(OwnRx { stop: &st, frames: &fr, set: ws }));
    });
    let handle = match spawned {
        Ok(h) => h,
        Err(e) => {
            if let (Some(steer), Some(i)) = (&carrier.steer, index) {
                let _ = steer.clear_socket(i);
            }
            return Err(format!("starting its receiver: {e}"));
        }
    };
    Ok(SliceRx { set: set.clone(), sock, keys: keys.clone(), index, stop, frames, handle })
}

/// Stops every receiver (the agent is stopping).
pub fn stop_all(carriers: &[IpCarrier], state: &mut SliceRxs) {
    for ((_, k), rx) in std::mem::take(&mut state.rxs) {
        retire(carriers, k, rx);
    }
}

/// For reports: `gre socket, N frames` per receiver of `slice`.
pub fn describe(state: &SliceRxs, slice: &str, registry: &Registry, carriers: &[IpCarrier]) -> Vec<String> {
    state
        .rxs
        .iter()
        .filter(|((s, _), _)| s == slice)
        .map(|((_, k), rx)| {
            let name = registry.link(carriers[*k].link_type).map(|l| l.info().name).unwrap_or_default();
            format!("own {name} socket: {} frames", rx.frames.load(Ordering::Relaxed))
        })
        .collect()
}
