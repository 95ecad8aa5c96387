//! `netslice slice graph`: a slice's virtual topology, and with
//! `--placement` its embedding (the host of every node, the path and labels
//! of every link), drawn the way containerlab and netlab draw labs: DOT for
//! Graphviz, Mermaid for Markdown, and JSON for programs (what the portal
//! will draw).

use std::fmt::Write;

use netslice_model::SliceSpec;
use netslice_model::api::SlicePlan;
use serde::Serialize;

/// The output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GraphFormat {
    /// Graphviz (`dot -Tsvg`).
    Dot,
    /// Mermaid (`graph LR`), for Markdown.
    Mermaid,
    /// JSON.
    Json,
}

/// A virtual node.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphNode {
    /// Name.
    pub name: String,
    /// Node type.
    #[serde(rename = "type")]
    pub node_type: String,
    /// Substrate host (with placement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// A virtual link.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraphLink {
    /// Name.
    pub name: String,
    /// Link type.
    #[serde(rename = "type")]
    pub link_type: String,
    /// Guaranteed bandwidth, as written.
    pub bandwidth: String,
    /// Its two ends: node, and the address there if any.
    pub endpoints: [(String, Option<String>); 2],
    /// Hosts from endpoint 0's to endpoint 1's (with placement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<Vec<String>>,
    /// Labels per hop, forward direction (with placement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward_labels: Option<Vec<u32>>,
    /// Link type per hop (with placement).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hop_types: Option<Vec<String>>,
}

/// A slice as a graph.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Graph {
    /// Slice name.
    pub slice: String,
    /// Nodes, in spec order.
    pub nodes: Vec<GraphNode>,
    /// Links, in spec order.
    pub links: Vec<GraphLink>,
}

impl Graph {
    /// The graph of `spec`; with `plan`, its placement too.
    pub fn of(spec: &SliceSpec, plan: Option<&SlicePlan>) -> Graph {
        let nodes = spec
            .nodes
            .iter()
            .map(|n| GraphNode {
                name: n.name.clone(),
                node_type: n.node_type.clone(),
                host: plan.and_then(|p| p.node(&n.name)).map(|np| np.host.clone()),
            })
            .collect();
        let links = spec
            .links
            .iter()
            .map(|l| {
                let end = |k: usize| {
                    let e = &l.endpoints[k.min(l.endpoints.len().saturating_sub(1))];
                    (e.node.clone(), e.address.map(|a| a.to_string()))
                };
                let lp = plan.and_then(|p| p.link(&l.name));
                GraphLink {
                    name: l.name.clone(),
                    link_type: l.link_type.to_string(),
                    bandwidth: l.bandwidth.to_string(),
                    endpoints: [end(0), end(1)],
                    path: lp.map(|p| p.path.clone()),
                    forward_labels: lp.map(|p| p.forward_labels.clone()),
                    hop_types: lp.map(|p| p.hop_types.iter().map(|t| t.to_string()).collect()),
                }
            })
            .collect();
        Graph { slice: spec.name.clone(), nodes, links }
    }

    /// Rendered as `format`.
    pub fn render(&self, format: GraphFormat) -> String {
        match format {
            GraphFormat::Dot => self.dot(),
            GraphFormat::Mermaid => self.mermaid(),
            GraphFormat::Json => serde_json::to_string_pretty(self).expect("a graph serialises") + "\n",
        }
    }

    fn placed(&self) -> bool {
        self.nodes.iter().any(|n| n.host.is_some())
    }

    /// Hosts in first-seen order, each with its nodes.
    fn hosts(&self) -> Vec<(String, Vec<&GraphNode>)> {
        let mut hosts: Vec<(String, Vec<&GraphNode>)> = Vec::new();
        for n in &self.nodes {
            let Some(h) = &n.host else { continue };
            match hosts.iter_mut().find(|(x, _)| x == h) {
                Some((_, v)) => v.push(n),
                None => hosts.push((h.clone(), vec![n])),
            }
        }
        hosts
    }

    fn edge_label(l: &GraphLink) -> String {
        let mut s = format!("{} ({} {})", l.name, l.link_type, l.bandwidth);
        if let (Some(path), Some(labels)) = (&l.path, &l.forward_labels)
            && path.len() > 1
        {
            let hops: Vec<String> = labels.iter().map(|x| x.to_string()).collect();
            let _ = write!(s, "\\nvia {} labels {}", path.join(" > "), hops.join(","));
        }
        s
    }

    fn dot(&self) -> String {
        // Labels carry DOT's own `\n` line breaks; only quotes need escaping.
        let q = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
        let mut out = format!("graph {} {{\n  rankdir=LR;\n  node [shape=box, style=rounded];\n", q(&self.slice));
        let node_line = |n: &GraphNode| {
            let shape = if n.node_type == "slowpath" { "" } else { ", shape=hexagon" };
            format!("{} [label={}{shape}];", q(&n.name), q(&format!("{}\\n{}", n.name, n.node_type)))
        };
        if self.placed() {
            for (i, (host, nodes)) in self.hosts().iter().enumerate() {
                let _ = writeln!(out, "  subgraph cluster_{i} {{\n    label={};\n    style=dashed;", q(host));
                for n in nodes {
                    let _ = writeln!(out, "    {}", node_line(n));
                }
                out.push_str("  }\n");
            }
        } else {
            for n in &self.nodes {
                let _ = writeln!(out, "  {}", node_line(n));
            }
        }
        for l in &self.links {
            let [(a, aa), (b, ba)] = &l.endpoints;
            let mut attrs = format!("label={}", q(&Self::edge_label(l)));
            if let Some(x) = aa {
                let _ = write!(attrs, ", taillabel={}", q(x));
            }
            if let Some(x) = ba {
                let _ = write!(attrs, ", headlabel={}", q(x));
            }
            let _ = writeln!(out, "  {} -- {} [{attrs}];", q(a), q(b));
        }
        out.push_str("}\n");
        out
    }

    fn mermaid(&self) -> String {
        // Mermaid ids: letters, digits, `_`; names keep `-`, so they are mapped.
        let id = |s: &str| format!("n_{}", s.replace('-', "_"));
        let text = |s: &str| s.replace('"', "#quot;");
        let mut out = String::from("graph LR\n");
        let node_line = |n: &GraphNode| {
            let (open, close) = if n.node_type == "slowpath" { ("(", ")") } else { ("{{", "}}") };
            format!("{}{open}\"{}<br/>{}\"{close}", id(&n.name), text(&n.name), text(&n.node_type))
        };
        if self.placed() {
            for (i, (host, nodes)) in self.hosts().iter().enumerate() {
                let _ = writeln!(out, "  subgraph host_{i} [\"{}\"]", text(host));
                for n in nodes {
                    let _ = writeln!(out, "    {}", node_line(n));
                }
                out.push_str("  end\n");
            }
        } else {
            for n in &self.nodes {
                let _ = writeln!(out, "  {}", node_line(n));
            }
        }
        for l in &self.links {
            let [(a, _), (b, _)] = &l.endpoints;
            let label = text(&Self::edge_label(l).replace("\\n", "<br/>"));
            let _ = writeln!(out, "  {} ---|\"{label}\"| {}", id(a), id(b));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netslice_model::api::{InterfacePlan, LinkPlan, NodePlan};
    use netslice_model::{LinkType, SliceSpec};

    fn spec() -> SliceSpec {
        SliceSpec::from_text(
            "name: lan
nodes:
  - {name: a}
  - {name: sw, type: l2switch}
links:
  - {name: a-sw, type: vxlan, bandwidth: 10Mbit, endpoints: [{node: a, address: 10.5.0.1/24}, {node: sw}]}
",
        )
        .unwrap()
    }

    fn plan() -> SlicePlan {
        let iface = |link: &str, endpoint| InterfacePlan {
            name: "eth0".into(),
            link: link.into(),
            endpoint,
            port: 1,
            mac: Default::default(),
        };
        SlicePlan {
            nodes: vec![
                NodePlan {
                    name: "a".into(),
                    host: "h1".into(),
                    netns: None,
                    interfaces: vec![iface("a-sw", 0)],
                    cpu_milli: 0,
                    memory: 0,
                },
                NodePlan {
                    name: "sw".into(),
                    host: "h2".into(),
                    netns: None,
                    interfaces: vec![iface("a-sw", 1)],
                    cpu_milli: 0,
                    memory: 0,
                },
            ],
            links: vec![LinkPlan {
                name: "a-sw".into(),
                path: vec!["h1".into(), "t1".into(), "h2".into()],
                underlay: vec!["h1-t1".into(), "t1-h2".into()],
                forward_labels: vec![16, 17],
                reverse_labels: vec![18, 19],
                reserved: 10_000_000,
                hop_types: vec![LinkType("vxlan".into()), LinkType("vlan".into())],
                forwarding: Vec::new(),
            }],
            cpus: Vec::new(),
        }
    }

    #[test]
    fn the_topology_alone_draws_nodes_and_links() {
        let g = Graph::of(&spec(), None);
        let dot = g.render(GraphFormat::Dot);
        assert_eq!(
            dot,
            "graph \"lan\" {\n  rankdir=LR;\n  node [shape=box, style=rounded];\n  \"a\" [label=\"a\\nslowpath\"];\n  \"sw\" [label=\"sw\\nl2switch\", shape=hexagon];\n  \"a\" -- \"sw\" [label=\"a-sw (vxlan 10Mbit)\", taillabel=\"10.5.0.1/24\"];\n}\n"
        );
        let m = g.render(GraphFormat::Mermaid);
        assert_eq!(
            m,
            "graph LR\n  n_a(\"a<br/>slowpath\")\n  n_sw{{\"sw<br/>l2switch\"}}\n  n_a ---|\"a-sw (vxlan 10Mbit)\"| n_sw\n"
        );
        let j: serde_json::Value = serde_json::from_str(&g.render(GraphFormat::Json)).unwrap();
        assert_eq!(j["links"][0]["endpoints"][0], serde_json::json!(["a", "10.5.0.1/24"]));
        assert!(j["nodes"][0].get("host").is_none());
    }

    #[test]
    fn the_placement_adds_hosts_paths_and_labels() {
        let g = Graph::of(&spec(), Some(&plan()));
        let dot = g.render(GraphFormat::Dot);
        assert!(dot.contains("subgraph cluster_0 {\n    label=\"h1\";"), "{dot}");
        assert!(dot.contains("subgraph cluster_1 {\n    label=\"h2\";"), "{dot}");
        assert!(dot.contains("via h1 > t1 > h2 labels 16,17"), "{dot}");
        let m = g.render(GraphFormat::Mermaid);
        assert!(m.contains("subgraph host_0 [\"h1\"]") && m.contains("<br/>via h1 > t1 > h2"), "{m}");
        let j: serde_json::Value = serde_json::from_str(&g.render(GraphFormat::Json)).unwrap();
        assert_eq!(j["nodes"][1]["host"], "h2");
        assert_eq!(j["links"][0]["hop_types"], serde_json::json!(["vxlan", "vlan"]));
    }
}
