//! The types every deployment has, registered together.

use crate::registry::Registry;

impl Registry {
    /// The built-in types: link types `gre`, `vxlan`, `vlan`, `pbb`; node types
    /// `slowpath`, `l2switch`, `extmac-switch`, `router`.
    pub fn builtin() -> Registry {
        let mut r = Registry::default();
        for l in crate::links::builtin() {
            r.register_link(l).expect("built-in names are unique");
        }
        for n in crate::nodes::builtin() {
            r.register_node(n).expect("built-in names are unique");
        }
        r
    }
}
