//! Learning switches: `l2switch` on Ethernet addresses, `extmac-switch` on the
//! 16-byte addresses of the extended-MAC frame (design brief §7).
//!
//! Both learn the source address of every frame on its input interface, age
//! entries out, forward known unicast to one interface and flood the rest to all
//! interfaces but the input. The table has a size limit: when it is full, new
//! addresses are not learned (their frames are flooded) and nothing is evicted,
//! so a flood of random sources in one slice's switch cannot push out known
//! entries, and it cannot touch another slice's switch at all (every node has its
//! own table).

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use netslice_model::types::{NodeDecl, NodeTypeInfo, ParamError};
use netslice_wire::extmac::{self, ExtAddr};
use netslice_wire::{EtherType, MacAddr, ethernet};

use super::params::{check_keys, duration_param, int_param, param};
use crate::program::{NodeInstance, NodeProgram, Outputs};
use crate::registry::{InstantiateError, NodeTypePlugin};

/// Default table size.
pub const DEFAULT_MAX_ENTRIES: u64 = 4096;
/// Default aging time, seconds.
pub const DEFAULT_AGING_S: u64 = 300;

/// A learning table with aging and a size limit.
#[derive(Debug)]
pub struct Table<A: Eq + Hash + Copy> {
    entries: HashMap<A, (usize, u64)>,
    max: usize,
    aging_ns: u64,
    /// Counters.
    pub stats: SwitchStats,
}

/// What a switch counts.
#[derive(Debug, Default, Clone, Copy)]
pub struct SwitchStats {
    /// Frames forwarded to one interface.
    pub unicast: u64,
    /// Frames flooded.
    pub flooded: u64,
    /// Frames dropped (destination on the input interface, malformed, wrong kind).
    pub dropped: u64,
    /// New addresses learned.
    pub learned: u64,
    /// Addresses not learned because the table was full.
    pub table_full: u64,
    /// Entries that moved to another interface.
    pub moved: u64,
    /// Entries aged out.
    pub aged: u64,
}

impl<A: Eq + Hash + Copy> Table<A> {
    /// An empty table.
    pub fn new(max: usize, aging_ns: u64) -> Table<A> {
        Table { entries: HashMap::new(), max, aging_ns, stats: SwitchStats::default() }
    }

    /// Entries now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Where `addr` was last seen, if not aged.
    pub fn lookup(&mut self, now: u64, addr: &A) -> Option<usize> {
        match self.entries.get(addr) {
            Some(&(iface, seen)) if now.saturating_sub(seen) <= self.aging_ns => Some(iface),
            Some(_) => {
                self.entries.remove(addr);
                self.stats.aged += 1;
                None
            }
            None => None,
        }
    }

    /// Learns `addr` on `iface`.
    pub fn learn(&mut self, now: u64, addr: A, iface: usize) {
        if let Some(e) = self.entries.get_mut(&addr) {
            if e.0 != iface {
                self.stats.moved += 1;
            }
            *e = (iface, now);
            return;
        }
        if self.entries.len() >= self.max {
            // Reclaim aged entries before refusing.
            let aging = self.aging_ns;
            let before = self.entries.len();
            self.entries.retain(|_, (_, seen)| now.saturating_sub(*seen) <= aging);
            self.stats.aged += (before - self.entries.len()) as u64;
            if self.entries.len() >= self.max {
                self.stats.table_full += 1;
                return;
            }
        }
        self.entries.insert(addr, (iface, now));
        self.stats.learned += 1;
    }

    /// Decides where a frame from `src` to `dst` arriving on `iface` goes.
    #[allow(clippy::too_many_arguments)]
    pub fn switch(
        &mut self,
        now: u64,
        iface: usize,
        src: A,
        dst: A,
        dst_is_group: bool,
        n_ifaces: usize,
        out: &mut Outputs,
    ) {
        self.learn(now, src, iface);
        match (!dst_is_group).then(|| self.lookup(now, &dst)).flatten() {
            Some(o) if o == iface => self.stats.dropped += 1,
            Some(o) => {
                out.forward.push(o);
                self.stats.unicast += 1;
            }
            None => {
                out.forward.extend((0..n_ifaces).filter(|&i| i != iface));
                self.stats.flooded += 1;
            }
        }
    }

    fn report(&self) -> BTreeMap<String, u64> {
        let s = self.stats;
        [
            ("entries", self.entries.len() as u64),
            ("unicast", s.unicast),
            ("flooded", s.flooded),
            ("dropped", s.dropped),
            ("learned", s.learned),
            ("table_full", s.table_full),
            ("moved", s.moved),
            ("aged", s.aged),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }
}

fn switch_params() -> Vec<netslice_model::types::ParamInfo> {
    vec![
        param(
            "max_entries",
            "integer",
            Some("4096"),
            "most addresses learned; when full, new ones are flooded, old ones kept",
        ),
        param("aging", "duration", Some("300s"), "how long an address stays learned without traffic"),
    ]
}

fn check_switch(node: &NodeDecl<'_>) -> Vec<ParamError> {
    let mut errs = check_keys(node.params, &["max_entries", "aging"]);
    if let Err(e) = int_param(node.params, "max_entries", DEFAULT_MAX_ENTRIES, 1..=1_000_000) {
        errs.push(e);
    }
    if let Err(e) = duration_param(node.params, "aging", DEFAULT_AGING_S, 86_400) {
        errs.push(e);
    }
    if node.interfaces.len() < 2 {
        errs.push(ParamError::node(format!("a switch needs at least 2 links, this one has {}", node.interfaces.len())));
    }
    errs
}

/// What a switch's table holds at its limit: 64 bytes an entry (key, port,
/// time and the hash table's own share, rounded up) plus 64 KiB.
fn switch_memory(node: &NodeDecl<'_>, entry: u64) -> u64 {
    let max = int_param(node.params, "max_entries", DEFAULT_MAX_ENTRIES, 1..=1_000_000).unwrap_or(DEFAULT_MAX_ENTRIES);
    (64 << 10) + max * entry
}

fn table<A: Eq + Hash + Copy>(node: &NodeInstance) -> Result<Table<A>, InstantiateError> {
    let max = int_param(&node.params, "max_entries", DEFAULT_MAX_ENTRIES, 1..=1_000_000)?;
    let aging = duration_param(&node.params, "aging", DEFAULT_AGING_S, 86_400)?;
    Ok(Table::new(max as usize, aging))
}

/// The `l2switch` node type.
#[derive(Debug, Clone, Copy)]
pub struct L2SwitchType;

impl NodeTypePlugin for L2SwitchType {
    fn info(&self) -> NodeTypeInfo {
        NodeTypeInfo {
            name: "l2switch".into(),
            description: "learning Ethernet switch in the agent's fast path (aging, flooding, table size limit)".into(),
            fast_path: true,
            params: switch_params(),
        }
    }

    fn check(&self, node: &NodeDecl<'_>) -> Vec<ParamError> {
        check_switch(node)
    }

    fn memory(&self, node: &NodeDecl<'_>) -> u64 {
        switch_memory(node, 64)
    }

    fn instantiate(&self, node: &NodeInstance) -> Result<Option<Box<dyn NodeProgram>>, InstantiateError> {
        Ok(Some(Box::new(L2Switch { table: table(node)?, ifaces: node.interfaces.len() })))
    }
}

/// A running `l2switch`.
#[derive(Debug)]
pub struct L2Switch {
    /// Its table.
    pub table: Table<MacAddr>,
    ifaces: usize,
}

impl NodeProgram for L2Switch {
    fn process(&mut self, now: u64, iface: usize, frame: &mut [u8], out: &mut Outputs) {
        let Ok(f) = ethernet::Frame::new_checked(&*frame) else {
            self.table.stats.dropped += 1;
            return;
        };
        let (src, dst) = (f.src_addr(), f.dst_addr());
        if src.is_multicast() {
            self.table.stats.dropped += 1;
            return;
        }
        self.table.switch(now, iface, src, dst, dst.is_multicast(), self.ifaces, out);
    }

    fn stats(&self) -> BTreeMap<String, u64> {
        self.table.report()
    }
}

/// The `extmac-switch` node type.
#[derive(Debug, Clone, Copy)]
pub struct ExtMacSwitchType;

impl NodeTypePlugin for ExtMacSwitchType {
    fn info(&self) -> NodeTypeInfo {
        NodeTypeInfo {
            name: "extmac-switch".into(),
            description: "learning switch on the 16-byte addresses of extended-MAC frames (EtherType 0x88B5); other frames dropped"
                .into(),
            fast_path: true,
            params: switch_params(),
        }
    }

    fn check(&self, node: &NodeDecl<'_>) -> Vec<ParamError> {
        check_switch(node)
    }

    fn memory(&self, node: &NodeDecl<'_>) -> u64 {
        // 16-byte keys.
        switch_memory(node, 96)
    }

    fn instantiate(&self, node: &NodeInstance) -> Result<Option<Box<dyn NodeProgram>>, InstantiateError> {
        Ok(Some(Box::new(ExtMacSwitch { table: table(node)?, ifaces: node.interfaces.len(), not_extmac: 0 })))
    }
}

/// A running `extmac-switch`.
#[derive(Debug)]
pub struct ExtMacSwitch {
    /// Its table.
    pub table: Table<ExtAddr>,
    ifaces: usize,
    not_extmac: u64,
}

impl NodeProgram for ExtMacSwitch {
    fn process(&mut self, now: u64, iface: usize, frame: &mut [u8], out: &mut Outputs) {
        let Ok(f) = ethernet::Frame::new_checked(&*frame) else {
            self.table.stats.dropped += 1;
            return;
        };
        if f.ethertype() != EtherType::ExtMac {
            self.not_extmac += 1;
            return;
        }
        let Ok(r) = extmac::Packet::new_checked(f.payload()).and_then(|p| extmac::Repr::parse(&p)) else {
            self.table.stats.dropped += 1;
            return;
        };
        if r.src_addr.is_multicast() {
            self.table.stats.dropped += 1;
            return;
        }
        self.table.switch(now, iface, r.src_addr, r.dst_addr, r.dst_addr.is_multicast(), self.ifaces, out);
    }

    fn stats(&self) -> BTreeMap<String, u64> {
        let mut s = self.table.report();
        s.insert("not_extmac".into(), self.not_extmac);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(dst: [u8; 6], src: [u8; 6]) -> Vec<u8> {
        let mut f = vec![0u8; 60];
        f[..6].copy_from_slice(&dst);
        f[6..12].copy_from_slice(&src);
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f
    }

    fn sw(max: u64) -> L2Switch {
        L2Switch { table: Table::new(max as usize, 10_000_000_000), ifaces: 3 }
    }

    #[test]
    fn learns_floods_forwards_ages() {
        let mut s = sw(16);
        let mut out = Outputs::default();
        let a = [2, 0, 0, 0, 0, 0xa];
        let b = [2, 0, 0, 0, 0, 0xb];
        s.process(0, 0, &mut frame(b, a), &mut out);
        assert_eq!(out.forward, [1, 2], "unknown destination floods");
        out.clear();
        s.process(1, 2, &mut frame(a, b), &mut out);
        assert_eq!(out.forward, [0], "learned a on 0");
        out.clear();
        s.process(2, 0, &mut frame(b, a), &mut out);
        assert_eq!(out.forward, [2]);
        out.clear();
        s.process(3, 0, &mut frame([0xff; 6], a), &mut out);
        assert_eq!(out.forward, [1, 2], "broadcast floods");
        out.clear();
        // b ages out after 10 s without traffic.
        s.process(20_000_000_000, 0, &mut frame(b, a), &mut out);
        assert_eq!(out.forward, [1, 2]);
        assert!(s.stats()["aged"] >= 1);
    }

    #[test]
    fn full_table_keeps_old_entries() {
        let mut s = sw(2);
        let mut out = Outputs::default();
        let a = [2, 0, 0, 0, 0, 0xa];
        let b = [2, 0, 0, 0, 0, 0xb];
        s.process(0, 0, &mut frame(b, a), &mut out);
        s.process(0, 1, &mut frame(a, b), &mut out);
        for i in 0..100u8 {
            s.process(1, 2, &mut frame(a, [2, 1, 1, 1, 1, i]), &mut out);
        }
        assert_eq!(s.table.len(), 2);
        assert_eq!(s.stats()["table_full"], 100);
        out.clear();
        s.process(2, 0, &mut frame(b, a), &mut out);
        assert_eq!(out.forward, [1], "b is still known after the flood");
    }

    #[test]
    fn extmac_switch_learns_long_addresses() {
        let mut s = ExtMacSwitch { table: Table::new(16, 10_000_000_000), ifaces: 3, not_extmac: 0 };
        let mk = |dst: ExtAddr, src: ExtAddr| {
            let mut f = vec![0u8; 14 + extmac::HEADER_LEN + 4];
            f[..6].copy_from_slice(&[0xff; 6]);
            f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
            f[12..14].copy_from_slice(&[0x88, 0xb5]);
            extmac::Repr { ethertype: EtherType::Unknown(0x1234), dst_addr: dst, src_addr: src }
                .emit(&mut extmac::Packet::new_unchecked(&mut f[14..]));
            f
        };
        let (a, b) = (ExtAddr([2; 16]), ExtAddr([4; 16]));
        let mut out = Outputs::default();
        s.process(0, 0, &mut mk(b, a), &mut out);
        assert_eq!(out.forward, [1, 2]);
        out.clear();
        s.process(0, 1, &mut mk(a, b), &mut out);
        assert_eq!(out.forward, [0]);
        out.clear();
        s.process(0, 1, &mut frame([2; 6], [4; 6]), &mut out);
        assert!(out.forward.is_empty());
        assert_eq!(s.stats()["not_extmac"], 1);
    }
}
