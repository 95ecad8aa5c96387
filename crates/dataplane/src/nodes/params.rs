//! Checking a node's `params:` the same way in every node type.

use netslice_model::types::{ParamError, ParamInfo};
use serde_json::Value;

/// Refuses unknown parameter names (`params.<name>`) and a non-mapping `params`.
pub fn check_keys(params: &Value, known: &[&str]) -> Vec<ParamError> {
    match params {
        Value::Null => Vec::new(),
        Value::Object(m) => m
            .keys()
            .filter(|k| !known.contains(&k.as_str()))
            .map(|k| {
                let offered = if known.is_empty() { "none".to_string() } else { known.join(", ") };
                ParamError::new(format!("params.{k}"), format!("unknown parameter (this type takes: {offered})"))
            })
            .collect(),
        _ => vec![ParamError::new("params", "params must be a mapping")],
    }
}

/// An optional integer parameter within a range.
pub fn int_param(
    params: &Value,
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ParamError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => match v.as_u64() {
            Some(n) if range.contains(&n) => Ok(n),
            _ => Err(ParamError::new(
                format!("params.{name}"),
                format!("{v} is not an integer in {}..={}", range.start(), range.end()),
            )),
        },
    }
}

/// An optional duration parameter ("300s", "5m") within a range, in nanoseconds.
pub fn duration_param(params: &Value, name: &str, default_s: u64, max_s: u64) -> Result<u64, ParamError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(default_s * 1_000_000_000),
        Some(Value::String(s)) => match s.parse::<netslice_model::Micros>() {
            Ok(m) if m.0 >= 1_000_000 && m.0 <= max_s * 1_000_000 => Ok(m.0 * 1000),
            Ok(_) => Err(ParamError::new(format!("params.{name}"), format!("{s} is outside 1s..{max_s}s"))),
            Err(e) => Err(ParamError::new(format!("params.{name}"), e.0)),
        },
        Some(v) => Err(ParamError::new(format!("params.{name}"), format!("{v} is not a duration such as \"300s\""))),
    }
}

/// A parameter description.
pub fn param(name: &str, kind: &str, default: Option<&str>, description: &str) -> ParamInfo {
    ParamInfo {
        name: name.into(),
        kind: kind.into(),
        default: default.map(str::to_string),
        description: description.into(),
    }
}
