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
//! filter), read by a receiver pinned to the slice's CPUs (a thread of the agent's
//! registry, [`crate::threads`]); the shared socket
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
use std::sync::atomic::AtomicU64;

use netslice_dataplane::{Carrier, LabelField, Registry};
use netslice_io::sock::Socket;
use netslice_io::xdp::{PassKey, PassMap};
use netslice_model::api::NodeConfig;
use netslice_model::{Label, SliceName};

use crate::rx::{Role, SockDev, receive};
use crate::shared::{IpCarrier, Shared};
use crate::threads::{ThreadKey, Threads};

/// One slice's receiver on one carrier.
#[derive(Debug)]
struct SliceRx {
    /// The CPUs it runs on (a change restarts it there).
    cpus: Vec<usize>,
    sock: Arc<Socket>,
    keys: BTreeSet<Label>,
    /// UDP carriers: the socket's index in the reuseport group.
    index: Option<u32>,
    frames: Arc<AtomicU64>,
}

/// Receivers by (slice, carrier index).
type Rxs = BTreeMap<(SliceName, usize), SliceRx>;

/// The dedicated slices' receivers of one agent, and what the shared GRE
/// sockets' filters drop now (so an unchanged config attaches nothing).
#[derive(Debug, Default)]
pub(crate) struct SliceRxs {
    rxs: Rxs,
    excluded: BTreeMap<usize, Vec<u32>>,
    /// Sockets opened since the agent began.
    pub(crate) opened: u64,
}

/// The labels each dedicated slice (a key of `cpus`) should receive on a
/// socket of its own, by (slice, index into `carriers`).
pub(crate) fn wanted(
    cfg: &NodeConfig,
    registry: &Registry,
    carriers: &[IpCarrier],
    cpus: &BTreeMap<SliceName, Vec<usize>>,
) -> BTreeMap<(SliceName, usize), BTreeSet<Label>> {
    let mut want: BTreeMap<(SliceName, usize), BTreeSet<Label>> = BTreeMap::new();
    for l in cfg.labels.iter().filter(|l| cpus.contains_key(&l.slice)) {
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

fn keys_of(rxs: &Rxs, k: usize) -> BTreeSet<Label> {
    rxs.iter().filter(|((_, c), _)| *c == k).flat_map(|(_, r)| r.keys.iter().copied()).collect()
}

/// Makes the shared GRE socket of carrier `k` drop exactly `keys`.
fn exclude(
    carriers: &[IpCarrier],
    excluded: &mut BTreeMap<usize, Vec<u32>>,
    k: usize,
    keys: BTreeSet<Label>,
) -> netslice_io::Result<()> {
    let keys: Vec<u32> = keys.into_iter().map(|l| l.0).collect();
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
    rxs: impl Iterator<Item = (&'a (SliceName, usize), &'a SliceRx)>,
) -> BTreeSet<PassKey> {
    let mut keys = BTreeSet::new();
    for ((_, k), rx) in rxs {
        for &label in &rx.keys {
            keys.insert(match carriers[*k].carrier {
                Carrier::Udp(port) => PassKey::Udp { port, label: label.0 },
                _ => PassKey::Gre(label.0),
            });
        }
    }
    keys
}

/// Points the labels of these receivers on UDP carrier `k` to their sockets.
fn steer_labels<'a>(
    carriers: &[IpCarrier],
    k: usize,
    rxs: impl Iterator<Item = (&'a (SliceName, usize), &'a SliceRx)>,
    problems: &mut Vec<String>,
) {
    let Some(steer) = &carriers[k].steer else { return };
    let want: BTreeMap<u32, u32> = rxs
        .filter(|((_, c), _)| *c == k)
        .filter_map(|(_, rx)| rx.index.map(|i| (rx, i)))
        .flat_map(|(rx, i)| rx.keys.iter().map(move |&l| (l.0, i)))
        .collect();
    if let Err(e) = steer.set_labels(&want) {
        problems.push(format!("the VXLAN port's socket selector: {e}"));
    }
}

/// Stops a receiver: its socket stops taking frames, it forwards what the
/// socket still holds, and exits.
fn retire(carriers: &[IpCarrier], threads: &mut Threads, slice: &SliceName, k: usize, rx: SliceRx) {
    let closed = match (&carriers[k].steer, rx.index) {
        (Some(steer), Some(i)) => steer.clear_socket(i),
        _ => rx.sock.filter_gre_keys(&[], true),
    };
    if let Err(e) = closed {
        tracing::warn!("closing a slice's receive socket: {e}");
    }
    threads.stop(&ThreadKey::SliceRx(slice.clone(), k));
}

/// Makes the running receivers match `want`; returns problems to report.
/// `open` opens a carrier's socket in the host's namespace (a raw socket for
/// an IP protocol, a `SO_REUSEPORT` socket for a UDP port).
pub(crate) fn sync(
    shared: &Arc<Shared>,
    threads: &mut Threads,
    state: &mut SliceRxs,
    want: &BTreeMap<(SliceName, usize), BTreeSet<Label>>,
    cpus: &BTreeMap<SliceName, Vec<usize>>,
    pass: Option<&PassMap>,
    open: &dyn Fn(Carrier) -> netslice_io::Result<Socket>,
) -> Vec<String> {
    let ip = &shared.carriers;
    let SliceRxs { rxs, excluded, opened } = state;
    let mut problems = Vec::new();
    // Carriers whose shared socket or selector may change (before receivers go).
    let carriers: BTreeSet<usize> = want.keys().map(|(_, k)| *k).chain(rxs.keys().map(|(_, k)| *k)).collect();
    // 1. Receivers no longer wanted, or whose slice's CPUs changed: the XDP
    // programs and the VXLAN selector stop sending them anything first.
    let stale: Vec<(SliceName, usize)> = rxs
        .iter()
        .filter(|(key, rx)| !want.contains_key(*key) || cpus.get(&key.0).is_none_or(|c| *c != rx.cpus))
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
            retire(ip, threads, &key.0, key.1, rx);
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
                    let list: Vec<u32> = keys.iter().map(|l| l.0).collect();
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
        let Some(set) = cpus.get(slice) else { continue };
        let used: BTreeSet<u32> = rxs.iter().filter(|((_, c), _)| c == k).filter_map(|(_, r)| r.index).collect();
        match start(shared, threads, slice, *k, set, keys, &used, open) {
            Ok(rx) => {
                *opened += 1;
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

#[allow(clippy::too_many_arguments)]
fn start(
    shared: &Arc<Shared>,
    threads: &mut Threads,
    slice: &SliceName,
    k: usize,
    cpus: &[usize],
    keys: &BTreeSet<Label>,
    used: &BTreeSet<u32>,
    open: &dyn Fn(Carrier) -> netslice_io::Result<Socket>,
) -> Result<SliceRx, String> {
    let carrier = &shared.carriers[k];
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
            let list: Vec<u32> = keys.iter().map(|l| l.0).collect();
            sock.filter_gre_keys(&list, true).map_err(|e| e.to_string())?;
            None
        }
    };
    let sock = Arc::new(sock);
    let frames = Arc::new(AtomicU64::new(0));
    let pinned = cpus.to_vec();
    let (s, so, fr, name) = (shared.clone(), sock.clone(), frames.clone(), slice.clone());
    let spawned = threads.ensure(ThreadKey::SliceRx(slice.clone(), k), move |stop| {
        if !pinned.is_empty()
            && let Err(e) = netslice_io::cpu::pin_current_thread(&pinned)
        {
            tracing::warn!("cannot pin a slice's receiver: {e}");
        }
        let c = &s.carriers[k];
        let mut dev = SockDev::new(&so, c.carrier, c.link_type);
        receive(&s, &mut dev, &stop, Role::Own { slice: name, frames: fr });
    });
    if let Err(e) = spawned {
        if let (Some(steer), Some(i)) = (&carrier.steer, index) {
            let _ = steer.clear_socket(i);
        }
        return Err(format!("starting its receiver: {e}"));
    }
    Ok(SliceRx { cpus: cpus.to_vec(), sock, keys: keys.clone(), index, frames })
}

/// Stops every receiver (the agent is stopping).
pub(crate) fn stop_all(carriers: &[IpCarrier], threads: &mut Threads, state: &mut SliceRxs) {
    for ((slice, k), rx) in std::mem::take(&mut state.rxs) {
        retire(carriers, threads, &slice, k, rx);
    }
}

/// For reports: the link type and the frame counter of each receiver of `slice`.
pub(crate) fn describe(
    state: &SliceRxs,
    slice: &str,
    registry: &Registry,
    carriers: &[IpCarrier],
) -> Vec<(String, Arc<AtomicU64>)> {
    state
        .rxs
        .iter()
        .filter(|((s, _), _)| s == slice)
        .map(|((_, k), rx)| {
            let name = registry.link(carriers[*k].link_type).map(|l| l.info().name).unwrap_or_default();
            (name, rx.frames.clone())
        })
        .collect()
}
