//! Names and numbers that identify things, as types: a slice name is not a
//! link name, a label is not a port number, and the compiler says so. They
//! travel as the plain strings and numbers they wrap (`#[serde(transparent)]`),
//! so documents and stored records read as before. Names are checked where
//! they enter (the spec and substrate validators, [`crate::names`]); these
//! types carry them after that.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

macro_rules! name_type {
    ($(#[$doc:meta])* $t:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        pub struct $t(pub String);

        impl $t {
            /// The name.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $t {
            type Target = str;
            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $t {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $t {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<String> for $t {
            fn from(s: String) -> $t {
                $t(s)
            }
        }

        impl From<&str> for $t {
            fn from(s: &str) -> $t {
                $t(s.to_string())
            }
        }

        impl From<&String> for $t {
            fn from(s: &String) -> $t {
                $t(s.clone())
            }
        }

        impl PartialEq<str> for $t {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $t {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }

        impl PartialEq<String> for $t {
            fn eq(&self, other: &String) -> bool {
                &self.0 == other
            }
        }

        impl PartialEq<$t> for String {
            fn eq(&self, other: &$t) -> bool {
                *self == other.0
            }
        }

        impl PartialEq<$t> for str {
            fn eq(&self, other: &$t) -> bool {
                self == other.0
            }
        }

        impl PartialEq<$t> for &str {
            fn eq(&self, other: &$t) -> bool {
                *self == other.0
            }
        }
    };
}

macro_rules! number_type {
    ($(#[$doc:meta])* $t:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
        #[serde(transparent)]
        pub struct $t(pub u32);

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<u32> for $t {
            fn from(v: u32) -> $t {
                $t(v)
            }
        }

        impl From<$t> for u32 {
            fn from(v: $t) -> u32 {
                v.0
            }
        }
    };
}

name_type!(
    /// A slice's name.
    SliceName
);
name_type!(
    /// A virtual node's name (unique in its slice).
    NodeName
);
name_type!(
    /// A substrate host's name.
    HostName
);
name_type!(
    /// A virtual link's name (unique in its slice).
    LinkName
);
name_type!(
    /// A physical (substrate) link's name, such as `h1-t1`.
    PhysLinkName
);
number_type!(
    /// A per-hop label of a virtual link (a GRE key, a VXLAN VNI, a VLAN id,
    /// an I-SID), chosen by the host that receives it.
    Label
);
number_type!(
    /// A sliver or fast-path node interface's port number on its host.
    PortNo
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_travel_as_what_they_wrap() {
        assert_eq!(serde_json::to_string(&SliceName::from("red")).unwrap(), "\"red\"");
        assert_eq!(serde_json::from_str::<Label>("16").unwrap(), Label(16));
        assert_eq!(serde_json::to_string(&PortNo(3)).unwrap(), "3");
        let m: std::collections::BTreeMap<SliceName, u8> = [(SliceName::from("red"), 1)].into();
        assert_eq!(m.get("red"), Some(&1), "looked up by &str");
        let red = SliceName::from("red");
        assert_eq!(red, "red");
        assert_eq!("red", red);
    }
}
