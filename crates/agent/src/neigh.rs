//! Permanent neighbour entries for the substrate peers.
//!
//! Socket I/O hands outer packets to the host's IP stack, which must know the
//! next hop's MAC. Left to ARP, the first packets after a slice comes up wait in
//! the neighbour entry's queue while the request goes out: a fast burst
//! overflows that queue (`unres_qlen_bytes`, about 200 KB) and loses the rest,
//! and if the peer does not answer, all of it goes after three seconds. The
//! AF_XDP path never had this: it writes the peer's MAC from the link's config
//! itself.
//!
//! So the agent writes the same MACs into the host's neighbour table, as
//! permanent entries, for every underlay link whose config names both MACs and
//! whose local interface carries the MAC the config says (the substrate's MAC
//! plan is in force on this host). Entries of links that leave the config are
//! removed again; the agent's own records say which entries it made (a restarted
//! agent applies its cached config first, so it learns its predecessor's).

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use netslice_io::cmd::{ip_at, link_mac};
use netslice_model::api::UnderlayLink;

use netslice_wire::MacAddr;

/// The entries an agent made: (interface, peer address) -> MAC.
#[derive(Debug, Default)]
pub struct Neighbours {
    made: BTreeMap<(String, Ipv4Addr), MacAddr>,
    /// Links whose interface does not carry the planned MAC (said once).
    skipped: BTreeMap<(String, Ipv4Addr), MacAddr>,
}

impl Neighbours {
    /// Makes the host's neighbour table match `underlay` (in namespace
    /// `netns`, or this one). Returns one line per entry that could not be
    /// written; traffic on that link then resolves the peer by ARP as before.
    pub fn sync(&mut self, netns: Option<&str>, underlay: &[UnderlayLink]) -> Vec<String> {
        let mut problems = Vec::new();
        let want: BTreeMap<(String, Ipv4Addr), &UnderlayLink> =
            underlay.iter().map(|u| ((u.ifname.clone(), u.peer), u)).collect();
        let gone: Vec<(String, Ipv4Addr)> = self
            .made
            .iter()
            .filter(|(k, mac)| want.get(*k).is_none_or(|u| u.peer_mac != **mac))
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            self.made.remove(&k);
            // The interface may be gone with it; nothing is left to remove then.
            let _ = ip_at(netns, &["neigh", "del", &k.1.to_string(), "dev", &k.0]);
        }
        for (k, u) in want {
            if self.made.contains_key(&k) || self.skipped.get(&k) == Some(&u.local_mac) {
                continue;
            }
            match link_mac(netns, &u.ifname) {
                Ok(m) if m.parse::<MacAddr>().ok() == Some(u.local_mac) => {}
                Ok(m) => {
                    tracing::info!(
                        "{}: MAC {m}, not the {} the substrate plans; its peer is left to ARP",
                        u.ifname,
                        u.local_mac
                    );
                    self.skipped.insert(k, u.local_mac);
                    continue;
                }
                Err(e) => {
                    problems.push(format!("{}: {e}", u.ifname));
                    continue;
                }
            }
            let (peer, mac) = (u.peer.to_string(), u.peer_mac.to_string());
            let args = ["neigh", "replace", &peer, "lladdr", &mac, "dev", &u.ifname, "nud", "permanent"];
            match ip_at(netns, &args) {
                Ok(_) => {
                    self.made.insert(k, u.peer_mac);
                }
                Err(e) => problems.push(format!("{}: {e}", u.ifname)),
            }
        }
        problems
    }
}
