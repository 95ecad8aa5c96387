//! Why a buffer is not a packet.

/// Why a buffer could not be read as a packet of some format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The buffer is shorter than the header (or the length the header claims).
    #[error("truncated packet")]
    Truncated,
    /// A field holds a value the format does not allow.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The checksum does not match the contents.
    #[error("bad checksum")]
    Checksum,
    /// Valid, but a variant this implementation does not handle.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
}

/// Result of parsing.
pub type Result<T> = core::result::Result<T, Error>;
