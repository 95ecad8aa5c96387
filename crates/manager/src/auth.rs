//! Who is calling: API tokens of developers and operators, and per-node agent
//! credentials. Secrets are random 256-bit values shown once; only their SHA-256
//! digests are stored (a fast hash is enough for random secrets of this size).

use rand::RngCore;
use sha2::{Digest, Sha256};

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// A person: a developer sees and changes only their own slices; an operator
    /// sees and changes everything and manages users.
    User {
        /// User name.
        name: String,
        /// Operator (else developer).
        operator: bool,
    },
    /// The agent of one substrate host.
    Node(String),
}

impl Principal {
    /// The user name, for people.
    pub fn user(&self) -> Option<&str> {
        match self {
            Principal::User { name, .. } => Some(name),
            Principal::Node(_) => None,
        }
    }

    /// Whether this is an operator.
    pub fn is_operator(&self) -> bool {
        matches!(self, Principal::User { operator: true, .. })
    }

    /// The built-in operator used for housekeeping (lease expiry).
    pub fn system() -> Principal {
        Principal::User { name: "system".into(), operator: true }
    }
}

/// A new random secret: 64 hex digits.
pub fn new_secret() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex(&b)
}

/// SHA-256 of a secret, hex.
pub fn digest(secret: &str) -> String {
    hex(&Sha256::digest(secret.trim().as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_digests_stable() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(digest(&a), digest(&format!("{a}\n")), "trailing newline of a token file ignored");
        assert_eq!(digest("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
