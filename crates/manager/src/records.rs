//! What the store writes, versioned apart from the API's types.
//!
//! A slice's plan is the manager's own record: the API shows it
//! ([`SlicePlan`] in `SliceInfo`), but the store does not write the API type.
//! It writes a [`PlanV1`], a frozen copy of the shape every manager so far has
//! written, and converts at the edge. A change of the API type therefore
//! fails to compile here instead of silently changing what is on disk (and
//! what an older database is read as); a new record shape is a new `PlanV2`
//! beside this one, a `plan_version` the reader dispatches on, and a test
//! that a database written with the old one still opens
//! (`crates/manager/tests/store_compat.rs`).
//!
//! The spec and the substrate are stored as the documents the user and the
//! operator wrote (their serde form *is* the file format, which has its own
//! compatibility promise: an old spec file keeps being accepted), so they
//! need no record type of their own.

use std::str::FromStr;

use netslice_model::LinkType;
use netslice_model::api::{InterfacePlan, LinkPlan, NodePlan, SlicePlan};
use netslice_wire::MacAddr;
use serde::{Deserialize, Serialize};

/// The plan record version this manager writes.
pub const PLAN_VERSION: i64 = 1;

/// A slice's plan as stored, version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanV1 {
    nodes: Vec<NodeV1>,
    links: Vec<LinkV1>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    cpus: Vec<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct NodeV1 {
    name: String,
    host: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netns: Option<String>,
    interfaces: Vec<InterfaceV1>,
    #[serde(default)]
    cpu_milli: u64,
    #[serde(default)]
    memory: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InterfaceV1 {
    name: String,
    link: String,
    endpoint: u8,
    port: u32,
    /// `02:6a:3e:00:10:01`.
    mac: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LinkV1 {
    name: String,
    path: Vec<String>,
    underlay: Vec<String>,
    forward_labels: Vec<u32>,
    reverse_labels: Vec<u32>,
    #[serde(default)]
    reserved: u64,
    #[serde(default)]
    hop_types: Vec<String>,
    /// Added within version 1: rows written before it have none (nothing
    /// was reserved for forwarding then), which is what the default says.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    forwarding: Vec<u64>,
}

impl From<&SlicePlan> for PlanV1 {
    fn from(p: &SlicePlan) -> Self {
        PlanV1 {
            nodes: p
                .nodes
                .iter()
                .map(|n| NodeV1 {
                    name: n.name.clone(),
                    host: n.host.clone(),
                    netns: n.netns.clone(),
                    interfaces: n
                        .interfaces
                        .iter()
                        .map(|i| InterfaceV1 {
                            name: i.name.clone(),
                            link: i.link.clone(),
                            endpoint: i.endpoint,
                            port: i.port,
                            mac: i.mac.to_string(),
                        })
                        .collect(),
                    cpu_milli: n.cpu_milli,
                    memory: n.memory,
                })
                .collect(),
            links: p
                .links
                .iter()
                .map(|l| LinkV1 {
                    name: l.name.clone(),
                    path: l.path.clone(),
                    underlay: l.underlay.clone(),
                    forward_labels: l.forward_labels.clone(),
                    reverse_labels: l.reverse_labels.clone(),
                    reserved: l.reserved,
                    hop_types: l.hop_types.iter().map(|t| t.as_str().to_string()).collect(),
                    forwarding: l.forwarding.clone(),
                })
                .collect(),
            cpus: p.cpus.clone(),
        }
    }
}

impl TryFrom<PlanV1> for SlicePlan {
    type Error = String;

    fn try_from(p: PlanV1) -> Result<Self, String> {
        let mut nodes = Vec::with_capacity(p.nodes.len());
        for n in p.nodes {
            let mut interfaces = Vec::with_capacity(n.interfaces.len());
            for i in n.interfaces {
                let mac = MacAddr::from_str(&i.mac)
                    .map_err(|e| format!("node {} interface {}: MAC address {:?}: {e}", n.name, i.name, i.mac))?;
                interfaces.push(InterfacePlan { name: i.name, link: i.link, endpoint: i.endpoint, port: i.port, mac });
            }
            nodes.push(NodePlan {
                name: n.name,
                host: n.host,
                netns: n.netns,
                interfaces,
                cpu_milli: n.cpu_milli,
                memory: n.memory,
            });
        }
        let links = p
            .links
            .into_iter()
            .map(|l| LinkPlan {
                name: l.name,
                path: l.path,
                underlay: l.underlay,
                forward_labels: l.forward_labels,
                reverse_labels: l.reverse_labels,
                reserved: l.reserved,
                hop_types: l.hop_types.iter().map(|t| LinkType::new(t)).collect(),
                forwarding: l.forwarding,
            })
            .collect();
        Ok(SlicePlan { nodes, links, cpus: p.cpus })
    }
}

/// The stored text of a plan (the current record version, [`PLAN_VERSION`]).
pub fn encode_plan(plan: &SlicePlan) -> String {
    serde_json::to_string(&PlanV1::from(plan)).expect("a plan record serializes")
}

/// A stored plan of record version `version`, read back.
pub fn decode_plan(version: i64, text: &str) -> Result<SlicePlan, String> {
    match version {
        1 => {
            let r: PlanV1 = serde_json::from_str(text).map_err(|e| e.to_string())?;
            SlicePlan::try_from(r)
        }
        v => Err(format!("plan record version {v} is unknown to this netslice (it knows up to {PLAN_VERSION})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> SlicePlan {
        SlicePlan {
            nodes: vec![NodePlan {
                name: "a".into(),
                host: "h1".into(),
                netns: Some("ns-red-a".into()),
                interfaces: vec![InterfacePlan {
                    name: "eth0".into(),
                    link: "l".into(),
                    endpoint: 0,
                    port: 7,
                    mac: "02:6a:3e:00:10:01".parse().unwrap(),
                }],
                cpu_milli: 500,
                memory: 256 << 20,
            }],
            links: vec![LinkPlan {
                name: "l".into(),
                path: vec!["h1".into(), "h2".into()],
                underlay: vec!["p1".into()],
                forward_labels: vec![17],
                reverse_labels: vec![18],
                reserved: 10_000_000,
                hop_types: vec![LinkType::new("ether")],
                forwarding: vec![1_000, 0],
            }],
            cpus: vec![1],
        }
    }

    #[test]
    fn a_plan_survives_its_record() {
        let p = plan();
        assert_eq!(decode_plan(PLAN_VERSION, &encode_plan(&p)).unwrap(), p);
    }

    /// The record is what managers have always written: the API type's JSON
    /// of the same plan reads as a version 1 record. When the API type
    /// changes shape on purpose this test says so, and the store keeps
    /// writing version 1 until a version 2 is made.
    #[test]
    fn version_1_is_the_shape_written_so_far() {
        let p = plan();
        let api_json = serde_json::to_value(&p).unwrap();
        let record_json = serde_json::to_value(PlanV1::from(&p)).unwrap();
        assert_eq!(api_json, record_json);
    }

    #[test]
    fn unknown_versions_and_bad_records_are_refused() {
        assert!(decode_plan(2, "{}").unwrap_err().contains("version 2"));
        let bad = encode_plan(&plan()).replace("02:6a:3e:00:10:01", "02:zz");
        assert!(decode_plan(1, &bad).unwrap_err().contains("MAC address"));
    }
}
