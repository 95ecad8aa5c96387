//! Forwarding capacity: what a host's agent spends, in CPU time, on each
//! frame it forwards, as its calibration measured it (or as the operator
//! gave it). The manager admits virtual links against it like it admits
//! them against link bandwidth: a link's guaranteed rate, at the frame size
//! the slice declares, reserves forwarding work on every host of its path.
//!
//! Work is counted in *cores*: nanoseconds of CPU per second of wall time,
//! divided by 10^9. A host's budget is the cores its agent may use (or, when
//! several hosts share one machine, the machine's cores, once for all of
//! them); slivers' CPU limits, dedicated CPUs and forwarding work all come
//! out of it.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Smallest frame size a link may declare (an Ethernet frame without FCS).
pub const MIN_FRAME_SIZE: u32 = 60;

/// The frame size a virtual link is reserved at when its spec does not say:
/// conservative for bulk traffic (whose frames are full-size, or larger
/// still as TCP super-frames), and a link that carries small frames at
/// its guaranteed rate says so with `frame_size`.
pub const DEFAULT_FRAME_SIZE: u32 = 512;

/// CPU time to forward one frame of `bytes` bytes: `per_frame_ns +
/// per_byte_ns x bytes`, a line through the measured points.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Cost {
    /// Nanoseconds per frame, whatever its size.
    pub per_frame_ns: f64,
    /// Nanoseconds per byte of the frame.
    pub per_byte_ns: f64,
}

impl Cost {
    /// Nanoseconds of CPU for one frame of `bytes` bytes (at least 1).
    pub fn ns(&self, bytes: u32) -> f64 {
        (self.per_frame_ns + self.per_byte_ns * f64::from(bytes)).max(1.0)
    }

    /// The line through two measured points `(bytes, ns)`, never falling
    /// with size and never below either point at its own size.
    pub fn through(a: (u32, f64), b: (u32, f64)) -> Cost {
        let ((x0, y0), (x1, y1)) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        if x1 == x0 {
            return Cost { per_frame_ns: y0.max(y1), per_byte_ns: 0.0 };
        }
        let slope = ((y1 - y0) / f64::from(x1 - x0)).max(0.0);
        // Through the higher of the two points once the slope is clamped.
        let base = (y0 - slope * f64::from(x0)).max(y1 - slope * f64::from(x1));
        Cost { per_frame_ns: base, per_byte_ns: slope }
    }

    /// The larger of two costs at every size (pointwise upper bound of the
    /// two lines, itself a line: the larger base and the larger slope).
    pub fn max(self, other: Cost) -> Cost {
        Cost {
            per_frame_ns: self.per_frame_ns.max(other.per_frame_ns),
            per_byte_ns: self.per_byte_ns.max(other.per_byte_ns),
        }
    }

    /// Frames per second one core forwards at `bytes` bytes a frame.
    pub fn frames_per_core(&self, bytes: u32) -> f64 {
        1e9 / self.ns(bytes)
    }

    /// Cores needed to forward `bps` bits per second of `bytes`-byte frames.
    pub fn cores(&self, bps: u64, bytes: u32) -> f64 {
        let fps = bps as f64 / (8.0 * f64::from(bytes.max(1)));
        fps * self.ns(bytes) / 1e9
    }

    /// Bits per second `cores` cores forward at `bytes` bytes a frame.
    pub fn bps(&self, cores: f64, bytes: u32) -> f64 {
        cores.max(0.0) * 1e9 / self.ns(bytes) * 8.0 * f64::from(bytes)
    }
}

/// One measured point of a calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Point {
    /// `ends` (a frame entering at one host and leaving at the next, both
    /// agents' work) or `transit` (one more host in between).
    pub hop: String,
    /// Frame size, bytes (the slice's Ethernet frame).
    pub frame_size: u32,
    /// Frames forwarded while measuring.
    pub frames: u64,
    /// CPU spent on them, nanoseconds per frame (for `transit`: the path's
    /// cost less the `ends` cost at the same size).
    pub ns_per_frame: f64,
}

/// What forwarding one link type's frames costs with one I/O backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct LinkTypeCost {
    /// Link type (`gre`, `vxlan`, ...).
    pub link_type: String,
    /// One frame from a sliver at one host to a sliver at the next: the
    /// first agent's ingress and the second's egress together. A host at
    /// one end of a virtual link with `f` frames a second each way does one
    /// ingress and one egress per pair: `f x ends`.
    pub ends: Cost,
    /// One frame through one transit host (its receive, label swap and
    /// send). A transit host with `f` frames a second each way does `2f x
    /// transit`.
    pub transit: Cost,
    /// The points the lines were drawn through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub points: Vec<Point>,
}

/// What one I/O backend costs, per link type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct BackendCost {
    /// The backend (`xdp` or `sockets`).
    pub io: String,
    /// Per link type.
    pub link_types: Vec<LinkTypeCost>,
}

impl BackendCost {
    /// The costs of `link_type`; a link type that was not measured (the
    /// Ethernet-layer ones, or any new plugin) costs the most expensive of
    /// those that were.
    pub fn of(&self, link_type: &str) -> Option<LinkTypeCost> {
        if let Some(c) = self.link_types.iter().find(|c| c.link_type == link_type) {
            return Some(c.clone());
        }
        let mut it = self.link_types.iter();
        let first = it.next()?.clone();
        Some(it.fold(first, |acc, c| LinkTypeCost {
            link_type: link_type.to_string(),
            ends: acc.ends.max(c.ends),
            transit: acc.transit.max(c.transit),
            points: Vec::new(),
        }))
    }
}

/// A calibration as `netslice node calibrate` writes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Calibration {
    /// Format version (1).
    pub version: u32,
    /// What it was measured on: CPU model, CPUs, kernel, netslice version.
    /// A calibration found for another machine is measured again.
    pub machine: String,
    /// When (Unix seconds).
    pub created: u64,
    /// How long it took, seconds.
    pub seconds: f64,
    /// Whether the traffic generator had a core of its own (else its work
    /// is in the figures: they are then higher than the truth).
    pub separate_generator_core: bool,
    /// Per I/O backend.
    pub backends: Vec<BackendCost>,
}

/// What an agent reports it can forward.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ForwardingCapacity {
    /// CPUs the agent's forwarding threads may use.
    pub cores: f64,
    /// The I/O backend these costs are for (the one the agent runs).
    pub io: String,
    /// Per link type.
    pub link_types: Vec<LinkTypeCost>,
    /// Where the figures come from (`calibrated <when> on <machine>`, or
    /// `operator: FILE`).
    pub source: String,
}

impl ForwardingCapacity {
    /// The costs for `link_type` (see [`BackendCost::of`]).
    pub fn of(&self, link_type: &str) -> Option<LinkTypeCost> {
        BackendCost { io: self.io.clone(), link_types: self.link_types.clone() }.of(link_type)
    }

    /// Checks figures from a file or a report: finite, non-negative, at
    /// least one link type, a positive number of cores.
    pub fn check(&self) -> Result<(), String> {
        if !(self.cores.is_finite() && self.cores > 0.0 && self.cores <= 4096.0) {
            return Err(format!("cores: {} is not a number of CPUs", self.cores));
        }
        if self.link_types.is_empty() {
            return Err("link_types: no link type measured".into());
        }
        for (i, l) in self.link_types.iter().enumerate() {
            for (what, c) in [("ends", l.ends), ("transit", l.transit)] {
                let ok = |v: f64| v.is_finite() && (0.0..=1e9).contains(&v);
                if !ok(c.per_frame_ns) || !ok(c.per_byte_ns) {
                    return Err(format!("link_types[{i}].{what}: {c:?} is not a cost in nanoseconds"));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_through_two_points_passes_both_and_never_falls() {
        let c = Cost::through((200, 3000.0), (1500, 4300.0));
        assert!((c.per_byte_ns - 1.0).abs() < 1e-9);
        assert!((c.ns(200) - 3000.0).abs() < 1e-6 && (c.ns(1500) - 4300.0).abs() < 1e-6);
        // Noise made the big frame look cheaper: flat, at the higher point.
        let c = Cost::through((1500, 2900.0), (200, 3000.0));
        assert_eq!(c.per_byte_ns, 0.0);
        assert_eq!(c.ns(1500), 3000.0);
        assert_eq!(c.ns(200), 3000.0);
    }

    #[test]
    fn cores_and_rates_are_inverse() {
        let c = Cost { per_frame_ns: 2000.0, per_byte_ns: 0.5 };
        let cores = c.cores(1_000_000_000, 1500);
        assert!((c.bps(cores, 1500) - 1e9).abs() < 1.0);
        // 1 Gbit/s of 1500-byte frames: 83,333 frames/s x 2.75 us.
        assert!((cores - 83_333.33 * 2750.0 / 1e9).abs() < 1e-6);
    }

    #[test]
    fn an_unmeasured_link_type_costs_the_most_of_those_measured() {
        let b = BackendCost {
            io: "xdp".into(),
            link_types: vec![
                LinkTypeCost {
                    link_type: "gre".into(),
                    ends: Cost { per_frame_ns: 3000.0, per_byte_ns: 0.1 },
                    transit: Cost { per_frame_ns: 1000.0, per_byte_ns: 0.3 },
                    points: vec![],
                },
                LinkTypeCost {
                    link_type: "vxlan".into(),
                    ends: Cost { per_frame_ns: 2500.0, per_byte_ns: 0.2 },
                    transit: Cost { per_frame_ns: 1200.0, per_byte_ns: 0.1 },
                    points: vec![],
                },
            ],
        };
        let v = b.of("vlan").unwrap();
        assert_eq!(v.ends, Cost { per_frame_ns: 3000.0, per_byte_ns: 0.2 });
        assert_eq!(v.transit, Cost { per_frame_ns: 1200.0, per_byte_ns: 0.3 });
        assert_eq!(b.of("gre").unwrap().ends.per_frame_ns, 3000.0);
    }
}
