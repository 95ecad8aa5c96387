//! Interfaces, addresses and routes inside network namespaces, over
//! rtnetlink (the `rtnetlink` crate) instead of one `ip` process per change:
//! a sliver's reconcile asks the kernel directly, in microseconds.
//!
//! [`Netlink`] is synchronous for the agent's control thread: it owns a
//! single-threaded runtime on which every namespace's connection runs, and
//! each call blocks until the kernel answered. A namespace's connection is
//! opened once (its socket is made inside the namespace) and kept.

use std::collections::HashMap;
use std::net::IpAddr;

use futures_util::stream::TryStreamExt;
use ipnet::IpNet;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use rtnetlink::packet_route::link::{LinkAttribute, LinkMessage};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use crate::{Error, Result, netns};

fn nl(what: impl Into<String>, e: rtnetlink::Error) -> Error {
    let source = match e {
        rtnetlink::Error::NetlinkError(m) => match m.code {
            Some(code) => std::io::Error::from_raw_os_error(-code.get()),
            None => std::io::Error::other("netlink error without a code"),
        },
        other => std::io::Error::other(other.to_string()),
    };
    Error::os(what, source)
}

/// Whether a netlink error is "no such thing" (deleting what is gone).
fn is_absent(e: &Error) -> bool {
    matches!(e, Error::Os { source, .. } if matches!(source.raw_os_error(), Some(libc::ENODEV | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENOENT)))
}

/// rtnetlink connections to any number of namespaces.
#[derive(Debug)]
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handles: HashMap<String, Handle>,
}

/// An address of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddress {
    /// Address and prefix.
    pub net: IpNet,
    /// Link-local scope (IPv6 `fe80::/64` and the like).
    pub link_scope: bool,
}

impl Netlink {
    /// No connection yet.
    pub fn new() -> Result<Netlink> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|e| Error::os("starting the netlink runtime", e))?;
        Ok(Netlink { rt, handles: HashMap::new() })
    }

    /// The connection to namespace `ns`, opened on first use.
    fn handle(&mut self, ns: &str) -> Result<Handle> {
        if let Some(h) = self.handles.get(ns) {
            return Ok(h.clone());
        }
        let rt = self.rt.handle().clone();
        let (conn, handle, _) = netns::run_in(ns, move || {
            let _in_runtime = rt.enter();
            rtnetlink::new_connection().map_err(|e| Error::os("opening a netlink socket", e))
        })?;
        self.rt.spawn(conn);
        self.handles.insert(ns.to_string(), handle.clone());
        Ok(handle)
    }

    /// Forgets the connection to `ns` (the namespace is going).
    pub fn forget(&mut self, ns: &str) {
        self.handles.remove(ns);
    }

    /// The index of interface `name` in `ns` (`None`: no such interface).
    pub fn link_index(&mut self, ns: &str, name: &str) -> Result<Option<u32>> {
        let h = self.handle(ns)?;
        let found: std::result::Result<Option<LinkMessage>, rtnetlink::Error> =
            self.rt.block_on(async { h.link().get().match_name(name.to_string()).execute().try_next().await });
        match found {
            Ok(m) => Ok(m.map(|m| m.header.index)),
            Err(e) => {
                let e = nl(format!("looking up {name} in {ns}"), e);
                if is_absent(&e) { Ok(None) } else { Err(e) }
            }
        }
    }

    fn index(&mut self, ns: &str, name: &str) -> Result<u32> {
        self.link_index(ns, name)?
            .ok_or_else(|| Error::os(format!("{name} in {ns}"), std::io::Error::from_raw_os_error(libc::ENODEV)))
    }

    /// Sets interface `name`'s MAC, MTU and (if given) largest GSO packet,
    /// and brings it up.
    pub fn set_link(&mut self, ns: &str, name: &str, mac: [u8; 6], mtu: u32, gso_max_size: Option<u32>) -> Result<()> {
        let h = self.handle(ns)?;
        let index = self.index(ns, name)?;
        let mut b = LinkUnspec::new_with_index(index).address(mac.to_vec()).mtu(mtu).up();
        if let Some(g) = gso_max_size {
            b = b.append_extra_attribute(LinkAttribute::GsoMaxSize(g));
        }
        let msg = b.build();
        self.rt.block_on(h.link().set(msg).execute()).map_err(|e| nl(format!("setting {name} in {ns}"), e))
    }

    /// Deletes interface `name` (gone already is fine).
    pub fn delete_link(&mut self, ns: &str, name: &str) -> Result<()> {
        let h = self.handle(ns)?;
        let Some(index) = self.link_index(ns, name)? else { return Ok(()) };
        match self.rt.block_on(h.link().del(index).execute()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = nl(format!("deleting {name} in {ns}"), e);
                if is_absent(&e) { Ok(()) } else { Err(e) }
            }
        }
    }

    /// The addresses of interface `name`.
    pub fn addresses(&mut self, ns: &str, name: &str) -> Result<Vec<IfAddress>> {
        let h = self.handle(ns)?;
        let index = self.index(ns, name)?;
        let msgs: Vec<AddressMessage> = self
            .rt
            .block_on(h.address().get().set_link_index_filter(index).execute().try_collect())
            .map_err(|e| nl(format!("listing the addresses of {name} in {ns}"), e))?;
        let mut out = Vec::new();
        for m in msgs {
            let addr = m.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            let Some(addr) = addr else { continue };
            if let Ok(net) = IpNet::new(addr, m.header.prefix_len) {
                out.push(IfAddress { net, link_scope: m.header.scope == AddressScope::Link });
            }
        }
        Ok(out)
    }

    /// Adds an address to interface `name`; `nodad`: an IPv6 address is
    /// usable at once (no duplicate address detection).
    pub fn add_address(&mut self, ns: &str, name: &str, net: IpNet, nodad: bool) -> Result<()> {
        let h = self.handle(ns)?;
        let index = self.index(ns, name)?;
        let mut req = h.address().add(index, net.addr(), net.prefix_len());
        if nodad {
            req.message_mut().attributes.push(AddressAttribute::Flags(AddressFlags::Nodad));
        }
        self.rt.block_on(req.execute()).map_err(|e| nl(format!("adding {net} to {name} in {ns}"), e))
    }

    /// Removes an address from interface `name` (gone already is fine).
    pub fn delete_address(&mut self, ns: &str, name: &str, net: IpNet) -> Result<()> {
        let h = self.handle(ns)?;
        let index = self.index(ns, name)?;
        let found: Vec<AddressMessage> = self
            .rt
            .block_on(
                h.address()
                    .get()
                    .set_link_index_filter(index)
                    .set_address_filter(net.addr())
                    .set_prefix_length_filter(net.prefix_len())
                    .execute()
                    .try_collect(),
            )
            .map_err(|e| nl(format!("finding {net} on {name} in {ns}"), e))?;
        for m in found {
            if let Err(e) = self.rt.block_on(h.address().del(m).execute()) {
                let e = nl(format!("removing {net} from {name} in {ns}"), e);
                if !is_absent(&e) {
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    fn route(to: IpNet, via: IpAddr) -> Option<rtnetlink::packet_route::route::RouteMessage> {
        RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(to.addr(), to.prefix_len())
            .ok()?
            .gateway(via)
            .ok()
            .map(|b| b.build())
    }

    /// Adds or replaces the route to `to` via `via`.
    pub fn replace_route(&mut self, ns: &str, to: IpNet, via: IpAddr) -> Result<()> {
        let h = self.handle(ns)?;
        let msg = Self::route(to, via).ok_or_else(|| {
            Error::os(format!("route to {to} via {via}"), std::io::Error::from(std::io::ErrorKind::InvalidInput))
        })?;
        self.rt
            .block_on(h.route().add(msg).replace().execute())
            .map_err(|e| nl(format!("route to {to} via {via} in {ns}"), e))
    }

    /// Removes the route to `to` via `via` (gone already is fine).
    pub fn delete_route(&mut self, ns: &str, to: IpNet, via: IpAddr) -> Result<()> {
        let h = self.handle(ns)?;
        let Some(msg) = Self::route(to, via) else { return Ok(()) };
        match self.rt.block_on(h.route().del(msg).execute()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let e = nl(format!("removing the route to {to} via {via} in {ns}"), e);
                if is_absent(&e) { Ok(()) } else { Err(e) }
            }
        }
    }
}
