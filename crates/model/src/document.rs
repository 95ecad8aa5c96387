//! Reading documents that come from outside: slice specs, substrate
//! descriptions and API bodies, as JSON or YAML.
//!
//! Every document is bounded *before* it is deserialized: its size, its nesting
//! depth, its number of nodes and, for YAML, how far its aliases expand. Only a
//! document within [`Limits`] reaches the deserializer, so the work spent on any
//! input is bounded by the limits, not by the input. This matters for YAML:
//! libyaml's scanner (inside `serde_yaml_ng`) is quadratic in flow-collection
//! depth (100,000 nested `[` took 21 s), so a linear, pure-Rust event parser
//! (`saphyr-parser`, YAML 1.2, which itself stops at 255 levels within
//! microseconds) checks the bounds first and refuses anything deeper than
//! [`Limits::max_depth`] at the first event past it.
//!
//! JSON is parsed as JSON (`serde_json`), so everything JSON allows is read as
//! JSON means it, e.g. the surrogate-pair escapes (`"\ud83d\ude00"`) that
//! `json.dumps` writes for characters outside the BMP, which a YAML parser
//! refuses. Field paths in errors come from `serde_path_to_error` for JSON and
//! from `serde_yaml_ng` for YAML, in the same form (`links[1].endpoints[0].node`).

use std::collections::BTreeMap;

use crate::error::{FieldError, SpecError};

/// Bounds on a document, checked before it is deserialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes.
    pub max_bytes: usize,
    /// Most levels of nested mappings and sequences (the document's top-level
    /// mapping is level 1).
    pub max_depth: usize,
    /// Most nodes (scalars, mappings, sequences), aliases counted as the size
    /// of what they stand for.
    pub max_nodes: usize,
}

/// The limits of every document netslice reads: 1 MiB, 32 levels, 200,000
/// nodes. A slice spec at its own limits (256 nodes, 1024 links) needs 6
/// levels and about 20,000 nodes; node-type parameters nest a few more.
pub const LIMITS: Limits = Limits { max_bytes: 1 << 20, max_depth: 32, max_nodes: 200_000 };

/// How a document is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// JSON (RFC 8259).
    Json,
    /// YAML (which also reads most JSON).
    Yaml,
}

impl Format {
    /// The format a media type names (`application/json`,
    /// `application/yaml`, `application/x-yaml`, `text/yaml`, with or without
    /// parameters and `+json`/`+yaml` suffixes); `None` for anything else.
    pub fn from_media_type(media_type: &str) -> Option<Format> {
        let essence = media_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        let sub = essence.split_once('/').map(|(_, s)| s).unwrap_or_default();
        if sub == "json" || sub.ends_with("+json") {
            Some(Format::Json)
        } else if sub == "yaml" || sub == "x-yaml" || sub.ends_with("+yaml") {
            Some(Format::Yaml)
        } else {
            None
        }
    }

    /// A guess from the text: JSON if it starts with `{` or `[`.
    pub fn guess(text: &str) -> Format {
        match text.trim_start().as_bytes().first() {
            Some(b'{' | b'[') => Format::Json,
            _ => Format::Yaml,
        }
    }

    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "JSON",
            Format::Yaml => "YAML",
        }
    }

    /// The media type to send a document of this format with.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Yaml => "application/yaml",
        }
    }
}

/// Parses a document whose format is not declared: text that starts like JSON
/// (`{` or `[`) is read as JSON and, only if it is not JSON at all (a syntax
/// error), as YAML (a YAML flow mapping also starts with `{`); anything else as
/// YAML. Errors name the field and, where known, the line. Bounded by [`LIMITS`].
pub fn parse_document<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, SpecError> {
    parse_as(text, None)
}

/// Parses a document in `format` (or guessed, as [`parse_document`] does),
/// within [`LIMITS`]. Declared YAML that starts like JSON is read as
/// [`parse_document`] reads it: JSON is YAML, and a client that labels all
/// its documents YAML may send JSON.
pub fn parse_as<T: serde::de::DeserializeOwned>(text: &str, format: Option<Format>) -> Result<T, SpecError> {
    parse_with(text, format, &LIMITS)
}

/// Parses a document in `format` (or guessed) within `limits`.
pub fn parse_with<T: serde::de::DeserializeOwned>(
    text: &str,
    format: Option<Format>,
    limits: &Limits,
) -> Result<T, SpecError> {
    if text.len() > limits.max_bytes {
        return Err(SpecError::one(
            "",
            format!("the document is {} bytes, more than the {} allowed", text.len(), limits.max_bytes),
        ));
    }
    if text.trim().is_empty() {
        return Err(SpecError::one("", "the document is empty"));
    }
    match format {
        Some(Format::Json) => parse_json(text, limits).map_err(JsonFailure::into_error),
        // YAML that starts like JSON is read as JSON first (JSON is YAML but
        // for its surrogate-pair escapes, which only a JSON parser reads).
        Some(Format::Yaml) | None if Format::guess(text) == Format::Json => match parse_json(text, limits) {
            // Not JSON: YAML (a flow mapping), whose own errors then count,
            // unless it is not YAML either.
            Err(JsonFailure::Syntax(e)) => match check_yaml(text, limits) {
                Ok(()) => parse_yaml(text, limits),
                Err(_) => Err(e),
            },
            other => other.map_err(JsonFailure::into_error),
        },
        Some(Format::Yaml) | None => parse_yaml(text, limits),
    }
}

/// Why JSON did not parse: not JSON at all, or JSON that does not fit.
#[derive(Debug)]
enum JsonFailure {
    Syntax(SpecError),
    Other(SpecError),
}

impl JsonFailure {
    fn into_error(self) -> SpecError {
        match self {
            JsonFailure::Syntax(e) | JsonFailure::Other(e) => e,
        }
    }
}

fn at(field: impl Into<String>, message: impl Into<String>, line: Option<usize>, column: Option<usize>) -> SpecError {
    SpecError { file: None, errors: vec![FieldError { field: field.into(), message: message.into(), line, column }] }
}

fn too_deep(limits: &Limits, line: usize, column: usize) -> SpecError {
    at("", format!("the document nests deeper than {} levels", limits.max_depth), Some(line), Some(column))
}

fn too_many(limits: &Limits, line: usize, column: usize) -> SpecError {
    at(
        "",
        format!("the document has more than {} nodes (aliases counted expanded)", limits.max_nodes),
        Some(line),
        Some(column),
    )
}

/// Checks depth and size of a JSON text in one pass (strings skipped with
/// their escapes), before `serde_json` sees it.
fn check_json(text: &str, limits: &Limits) -> Result<(), SpecError> {
    let (mut depth, mut nodes, mut line, mut col) = (0usize, 0usize, 1usize, 0usize);
    let (mut in_string, mut escaped, mut in_value) = (false, false, false);
    for &b in text.as_bytes() {
        if b == b'\n' {
            line += 1;
            col = 0;
        } else {
            col += 1;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        let scalar_byte = !matches!(b, b'{' | b'[' | b'}' | b']' | b',' | b':' | b'"' | b' ' | b'\t' | b'\r' | b'\n');
        if scalar_byte && !in_value {
            nodes += 1;
        }
        in_value = scalar_byte;
        match b {
            b'"' => {
                in_string = true;
                nodes += 1;
            }
            b'{' | b'[' => {
                depth += 1;
                nodes += 1;
                if depth > limits.max_depth {
                    return Err(too_deep(limits, line, col));
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
        if nodes > limits.max_nodes {
            return Err(too_many(limits, line, col));
        }
    }
    Ok(())
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str, limits: &Limits) -> Result<T, JsonFailure> {
    check_json(text, limits).map_err(JsonFailure::Other)?;
    let mut de = serde_json::Deserializer::from_str(text);
    let v: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let field = path_string(e.path());
        json_failure(field, e.into_inner())
    })?;
    // Trailing characters after the document are an error too.
    de.end().map_err(|e| json_failure(String::new(), e))?;
    Ok(v)
}

fn json_failure(field: String, e: serde_json::Error) -> JsonFailure {
    let syntax = matches!(e.classify(), serde_json::error::Category::Syntax | serde_json::error::Category::Eof);
    // serde_json renders "message at line L column C"; the position is kept apart.
    let mut msg = e.to_string();
    if let Some(i) = msg.rfind(" at line ") {
        msg.truncate(i);
    }
    let (line, column) = if e.line() > 0 { (Some(e.line()), Some(e.column())) } else { (None, None) };
    let err = at(if syntax { String::new() } else { field }, msg, line, column);
    if syntax { JsonFailure::Syntax(err) } else { JsonFailure::Other(err) }
}

/// A path as the YAML errors write it: `links[1].endpoints[0].node`.
fn path_string(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut s = String::new();
    for seg in p.iter() {
        match seg {
            Segment::Seq { index } => s.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(key);
            }
            Segment::Unknown => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push('?');
            }
        }
    }
    s
}

/// Checks depth, node count and alias expansion of a YAML text with a linear
/// event parser, stopping at the first event past a limit.
fn check_yaml(text: &str, limits: &Limits) -> Result<(), SpecError> {
    use saphyr_parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    // Open collections: (anchor id, expanded node count when it opened).
    let mut open: Vec<(usize, usize)> = Vec::new();
    // Expanded size of each anchored node.
    let mut sizes: BTreeMap<usize, usize> = BTreeMap::new();
    let mut nodes = 0usize;
    while let Some(ev) = parser.next_event() {
        let (ev, span) = ev.map_err(|e| {
            let m = e.marker();
            // The scanner looks ahead for keys and stops at its own depth limit
            // (255 flow levels) before the parser's events reach ours.
            if e.info().contains("recursion limit") {
                return too_deep(limits, m.line(), m.col() + 1);
            }
            at("", format!("not valid YAML: {}", e.info()), Some(m.line()), Some(m.col() + 1))
        })?;
        let (line, column) = (span.start.line(), span.start.col() + 1);
        match ev {
            Event::SequenceStart(anchor, _) | Event::MappingStart(anchor, _) => {
                nodes += 1;
                open.push((anchor, nodes));
                if open.len() > limits.max_depth {
                    return Err(too_deep(limits, line, column));
                }
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((anchor, start)) = open.pop()
                    && anchor != 0
                {
                    sizes.insert(anchor, nodes - start + 1);
                }
            }
            Event::Scalar(_, _, anchor, _) => {
                nodes += 1;
                if anchor != 0 {
                    sizes.insert(anchor, 1);
                }
            }
            Event::Alias(anchor) => nodes = nodes.saturating_add(sizes.get(&anchor).copied().unwrap_or(1)),
            Event::StreamStart | Event::StreamEnd | Event::DocumentStart(_) | Event::DocumentEnd | Event::Nothing => {}
        }
        if nodes > limits.max_nodes {
            return Err(too_many(limits, line, column));
        }
    }
    Ok(())
}

fn parse_yaml<T: serde::de::DeserializeOwned>(text: &str, limits: &Limits) -> Result<T, SpecError> {
    check_yaml(text, limits)?;
    T::deserialize(serde_yaml_ng::Deserializer::from_str(text)).map_err(|e: serde_yaml_ng::Error| {
        let (line, column) = match e.location() {
            Some(l) => (Some(l.line()), Some(l.column())),
            None => (None, None),
        };
        let msg = e.to_string();
        // serde_yaml_ng renders "path: message at line L column C"; split the parts.
        let msg = match msg.rfind(" at line ") {
            Some(i) => msg[..i].to_string(),
            None => msg,
        };
        let (field, message) = match msg.split_once(": ") {
            Some((p, m)) if !p.contains(' ') => (p.to_string(), m.to_string()),
            _ => (String::new(), msg),
        };
        at(field, message, line, column)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        name: String,
        #[serde(default)]
        items: Vec<Item>,
        #[serde(default)]
        any: serde_json::Value,
    }

    #[derive(Debug, PartialEq, serde::Deserialize, serde::Serialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        n: u32,
    }

    fn err(text: &str, format: Option<Format>) -> FieldError {
        parse_as::<Doc>(text, format).unwrap_err().errors.remove(0)
    }

    #[test]
    fn json_is_read_as_json() {
        // What `json.dumps` writes for an emoji: a surrogate pair.
        let d: Doc = parse_document(r#"{"name": "\ud83d\ude00"}"#).unwrap();
        assert_eq!(d.name, "\u{1F600}");
        let d: Doc = parse_as(r#"{"name": "\ud83d\ude00"}"#, Some(Format::Json)).unwrap();
        assert_eq!(d.name, "\u{1F600}");
        // A lone surrogate is not JSON, and not YAML either: the JSON error is reported.
        let e = err(r#"{"name": "\ud83d"}"#, None);
        assert!(e.message.contains("escape"), "{e}");
        assert_eq!(e.line, Some(1));
    }

    #[test]
    fn yaml_flow_documents_that_start_like_json_still_parse() {
        let d: Doc = parse_document("{name: red, items: [{n: 1}]}").unwrap();
        assert_eq!(d.items, [Item { n: 1 }]);
        // Their errors are YAML's, with the field.
        let e = err("{name: red, items: [{n: x}]}", None);
        assert_eq!(e.field, "items[0].n", "{e:?}");
    }

    #[test]
    fn errors_name_the_field_in_both_formats() {
        let yaml = err("name: a\nitems:\n  - {n: 1}\n  - {n: x}\n", None);
        assert_eq!((yaml.field.as_str(), yaml.line), ("items[1].n", Some(4)));
        let json = err("{\"name\": \"a\",\n \"items\": [{\"n\": 1}, {\"n\": \"x\"}]}", None);
        assert_eq!((json.field.as_str(), json.line), ("items[1].n", Some(2)));
        let unknown = err(r#"{"name": "a", "items": [{"m": 1}]}"#, Some(Format::Json));
        assert!(unknown.field.starts_with("items[0]"), "{unknown:?}");
        assert!(unknown.message.contains("unknown field"), "{unknown:?}");
        let trailing = err(r#"{"name": "a"} x"#, Some(Format::Json));
        assert!(trailing.message.contains("trailing"), "{trailing:?}");
    }

    fn nested(open: &str, close: &str, depth: usize) -> String {
        format!("{}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    // Hostile input must be refused in bounded wall time: that is what is measured.
    #[allow(clippy::disallowed_methods)]
    fn deep_documents_are_refused_quickly_in_both_formats() {
        for depth in [33, 1_000, 100_000] {
            for (text, format) in [
                (format!("{{\"name\": \"a\", \"any\": {}}}", nested("[", "]", depth)), None),
                (format!("name: a\nany: {}\n", nested("[", "]", depth)), None),
                (format!("name: a\nany: {}\n", nested("{a: ", "}", depth)), Some(Format::Yaml)),
                (format!("{{\"name\": \"a\", \"any\": {}}}", nested("{\"a\": ", "}", depth)), Some(Format::Json)),
            ] {
                let t = Instant::now();
                let e = err(&text, format);
                assert!(t.elapsed() < Duration::from_millis(200), "depth {depth}: {:?}", t.elapsed());
                assert!(e.message.contains("deeper than 32 levels"), "depth {depth}: {e}");
                assert!(e.line.is_some(), "{e:?}");
            }
        }
        // Block-style nesting too.
        let block: String = (0..40).map(|i| format!("{}- \n", " ".repeat(i + 2))).collect();
        let e = err(&format!("name: a\nany:\n{block}"), None);
        assert!(e.message.contains("deeper than"), "{e}");
        // Within the limit, fine.
        let ok: Doc = parse_document(&format!("name: a\nany: {}\n", nested("[", "]", 30))).unwrap();
        assert!(ok.any.is_array());
    }

    #[test]
    // Hostile input must be refused in bounded wall time: that is what is measured.
    #[allow(clippy::disallowed_methods)]
    fn alias_bombs_are_counted_expanded() {
        // Nine levels of ten aliases each: 10^9 nodes once expanded.
        let mut text = String::from("name: a\nany:\n  l0: &l0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..9 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            text.push_str(&format!("  l{i}: &l{i} [{refs}]\n"));
        }
        let t = Instant::now();
        let e = err(&text, None);
        assert!(t.elapsed() < Duration::from_millis(200), "{:?}", t.elapsed());
        assert!(e.message.contains("more than 200000 nodes"), "{e}");
    }

    #[test]
    fn size_and_emptiness() {
        let big = format!("name: a\nany: \"{}\"\n", "x".repeat(LIMITS.max_bytes));
        assert!(err(&big, None).message.contains("bytes, more than"));
        assert!(err(" \n", None).message.contains("empty"));
    }

    #[test]
    fn media_types() {
        assert_eq!(Format::from_media_type("application/json; charset=utf-8"), Some(Format::Json));
        assert_eq!(Format::from_media_type("application/vnd.x+json"), Some(Format::Json));
        assert_eq!(Format::from_media_type("application/yaml"), Some(Format::Yaml));
        assert_eq!(Format::from_media_type("text/x-yaml"), Some(Format::Yaml));
        assert_eq!(Format::from_media_type("text/plain"), None);
        assert_eq!(Format::from_media_type(""), None);
    }

    proptest! {
        #[test]
        fn json_and_yaml_agree(name in "\\PC{0,40}", ns in proptest::collection::vec(any::<u32>(), 0..8)) {
            let doc = Doc { name, items: ns.into_iter().map(|n| Item { n }).collect(), any: serde_json::Value::Null };
            let json = serde_json::to_string(&doc).unwrap();
            prop_assert_eq!(&parse_as::<Doc>(&json, Some(Format::Json)).unwrap(), &doc);
            prop_assert_eq!(&parse_document::<Doc>(&json).unwrap(), &doc);
            let yaml = serde_yaml_ng::to_string(&doc).unwrap();
            prop_assert_eq!(&parse_as::<Doc>(&yaml, Some(Format::Yaml)).unwrap(), &doc);
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let _ = parse_document::<Doc>(&text);
            let _ = parse_as::<serde_json::Value>(&text, Some(Format::Yaml));
        }
    }
}
