//! The names that travel in URLs and become namespace, interface and file
//! names: slices, nodes, hosts, users. One check per kind, used by the spec
//! validators, the API (path segments) and the CLI (before any request is
//! sent), so that a name is refused with the same words wherever it is typed.

/// Why a name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NameError(pub String);

/// A lowercase name: 1-`max` of lowercase letters, digits and `-`, starting
/// with a letter and not ending with `-`. Slices, virtual nodes and links,
/// substrates and hosts are named so.
pub fn lowercase(name: &str, max: usize) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= max
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(NameError(format!(
            "{name:?} is not a valid name: use 1-{max} lowercase letters, digits and '-', starting with a letter"
        )))
    }
}

/// Longest slice, node and link name.
pub const MAX_SLICE_NAME: usize = 24;
/// Longest substrate and host name.
pub const MAX_HOST_NAME: usize = 24;

/// A slice name.
pub fn slice(name: &str) -> Result<(), NameError> {
    lowercase(name, MAX_SLICE_NAME)
}

/// A substrate host name.
pub fn host(name: &str) -> Result<(), NameError> {
    lowercase(name, MAX_HOST_NAME)
}

/// Longest user name.
pub const MAX_USER: usize = 32;

/// A user name: 1-32 of letters, digits, `-` and `_`.
pub fn user(name: &str) -> Result<(), NameError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_USER
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok { Ok(()) } else { Err(NameError(format!("{name:?} is not a user name (1-{MAX_USER} of [A-Za-z0-9_-])"))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn path_tricks_are_not_names() {
        for bad in ["", "..", "../users/dave", "a/b", "a%2Fb", "A", "a-", "-a", "a b", "a?x=1", "a#b", "\u{0}", "é"] {
            assert!(slice(bad).is_err(), "{bad:?}");
            assert!(host(bad).is_err(), "{bad:?}");
        }
        for bad in ["", "..", "../slices/x", "a/b", "a.b", "a b", "%2e%2e"] {
            assert!(user(bad).is_err(), "{bad:?}");
        }
        assert!(slice("red-2").is_ok() && host("h1").is_ok() && user("Dave_1").is_ok());
        assert!(slice(&"a".repeat(25)).is_err() && user(&"a".repeat(33)).is_err());
    }

    proptest! {
        #[test]
        fn a_valid_name_needs_no_escaping_in_a_url(s in "\\PC{0,40}") {
            for ok in [slice(&s).is_ok(), user(&s).is_ok(), host(&s).is_ok()] {
                if ok {
                    prop_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
                }
            }
        }
    }
}
