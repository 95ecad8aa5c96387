//! Entity tags: every slice's `ETag` is its revision (`"42"`), and the
//! conditional headers `If-Match` / `If-None-Match` (RFC 9110 §13.1) say
//! which revisions a write expects.
//!
//! The grammar, from the RFC: `"*"` or a comma-separated list of entity
//! tags, each `[W/]"<etagc>*"` with `etagc` any visible ASCII byte but `"`
//! (or obs-text); empty list elements and optional whitespace around commas
//! are allowed. `If-Match` compares strongly (a weak tag never matches);
//! here a tag that is not a revision number never matches either.

/// The `ETag` of revision `rev`.
pub fn etag(rev: u64) -> String {
    format!("\"{rev}\"")
}

/// A parsed `If-Match` or `If-None-Match` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    /// `*`: any current representation.
    Any,
    /// The listed tags.
    Tags(Vec<EntityTag>),
}

/// One entity tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTag {
    /// `W/` given.
    pub weak: bool,
    /// Between the quotes.
    pub opaque: String,
}

impl EntityTag {
    /// The revision this tag names, if it is a strong tag of one.
    pub fn revision(&self) -> Option<u64> {
        if self.weak || self.opaque.is_empty() || !self.opaque.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        self.opaque.parse().ok()
    }
}

impl std::fmt::Display for EntityTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\"{}\"", if self.weak { "W/" } else { "" }, self.opaque)
    }
}

impl std::fmt::Display for Condition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Condition::Any => f.write_str("*"),
            Condition::Tags(t) => f.write_str(&t.iter().map(|t| t.to_string()).collect::<Vec<_>>().join(", ")),
        }
    }
}

/// Most tags in one header: more is refused rather than compared.
pub const MAX_TAGS: usize = 64;

/// Why a conditional header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadCondition(pub String);

fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7e).contains(&b) || b >= 0x80
}

/// Parses an `If-Match` / `If-None-Match` value.
pub fn parse(value: &[u8]) -> Result<Condition, BadCondition> {
    let ows = |b: u8| b == b' ' || b == b'\t';
    let trimmed = {
        let s = value.iter().position(|&b| !ows(b)).unwrap_or(value.len());
        let e = value.iter().rposition(|&b| !ows(b)).map(|i| i + 1).unwrap_or(s);
        &value[s..e.max(s)]
    };
    if trimmed == b"*" {
        return Ok(Condition::Any);
    }
    let mut tags = Vec::new();
    let mut i = 0;
    let n = trimmed.len();
    loop {
        while i < n && (ows(trimmed[i]) || trimmed[i] == b',') {
            i += 1;
        }
        if i == n {
            break;
        }
        let weak = trimmed[i..].starts_with(b"W/");
        if weak {
            i += 2;
        }
        if i >= n || trimmed[i] != b'"' {
            return Err(BadCondition(format!("byte {i}: an entity tag starts with a double quote, as in \"42\"")));
        }
        i += 1;
        let start = i;
        while i < n && is_etagc(trimmed[i]) {
            i += 1;
        }
        if i >= n || trimmed[i] != b'"' {
            return Err(BadCondition(format!("byte {i}: the entity tag is not closed by a double quote")));
        }
        let opaque = String::from_utf8_lossy(&trimmed[start..i]).into_owned();
        i += 1;
        while i < n && ows(trimmed[i]) {
            i += 1;
        }
        if i < n && trimmed[i] != b',' {
            return Err(BadCondition(format!("byte {i}: entity tags are separated by commas")));
        }
        if tags.len() == MAX_TAGS {
            return Err(BadCondition(format!("more than {MAX_TAGS} entity tags")));
        }
        tags.push(EntityTag { weak, opaque });
    }
    if tags.is_empty() {
        return Err(BadCondition("no entity tag: give \"*\" or a list such as \"42\"".into()));
    }
    Ok(Condition::Tags(tags))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_forms_of_rfc_9110() {
        assert_eq!(parse(b"*"), Ok(Condition::Any));
        assert_eq!(parse(b" * "), Ok(Condition::Any));
        let tags = |v: &[(bool, &str)]| {
            Ok(Condition::Tags(v.iter().map(|(w, o)| EntityTag { weak: *w, opaque: o.to_string() }).collect()))
        };
        assert_eq!(parse(b"\"42\""), tags(&[(false, "42")]));
        assert_eq!(
            parse(b"\"xyzzy\", \"r2d2xxxx\", \"c3piozzzz\""),
            tags(&[(false, "xyzzy"), (false, "r2d2xxxx"), (false, "c3piozzzz")])
        );
        assert_eq!(parse(b"W/\"1\",, \"\""), tags(&[(true, "1"), (false, "")]));
        for bad in [&b""[..], b" ", b",", b"42", b"\"42", b"\"4\"2\"", b"W/42", b"\"1\" \"2\"", b"**", b"\"a\x01\""] {
            assert!(parse(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        assert!(parse("\"1\",".repeat(MAX_TAGS + 1).as_bytes()).is_err());
    }

    #[test]
    fn only_strong_numeric_tags_name_revisions() {
        let t = |weak, o: &str| EntityTag { weak, opaque: o.into() };
        assert_eq!(t(false, "42").revision(), Some(42));
        assert_eq!(t(true, "42").revision(), None);
        assert_eq!(t(false, "+42").revision(), None);
        assert_eq!(t(false, "").revision(), None);
        assert_eq!(t(false, "99999999999999999999999").revision(), None);
        assert_eq!(etag(7), "\"7\"");
    }

    proptest! {
        #[test]
        fn lists_round_trip(tags in proptest::collection::vec((any::<bool>(), "[!#-~]{0,12}"), 1..8)) {
            let c = Condition::Tags(tags.into_iter().map(|(weak, opaque)| EntityTag { weak, opaque }).collect());
            prop_assert_eq!(parse(c.to_string().as_bytes()), Ok(c));
        }

        #[test]
        fn any_bytes_get_an_answer(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
