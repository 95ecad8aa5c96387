//! Measurement filters: tcpdump's pcap-filter expressions compiled by
//! libpcap (through the `pcap` crate) for Ethernet frames, once per job.
//! The agents run the instructions ([`netslice_dataplane::bpf`]); they need
//! no libpcap. A bad expression is refused with libpcap's own message.

use netslice_model::api::BpfInsn;

/// Compiles `expr` (optimised) for Ethernet frames.
pub fn compile(expr: &str) -> Result<Vec<BpfInsn>, String> {
    if expr.contains('\0') {
        return Err("the expression has a NUL byte".into());
    }
    let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).map_err(|e| format!("libpcap: {e}"))?;
    let prog = cap.compile(expr, true).map_err(|e| format!("libpcap: {}", e.to_string().trim()))?;
    prog.get_instructions()
        .iter()
        .map(|i| {
            // The binding shows an instruction as "code jt jf k".
            let text = i.to_string();
            let f: Vec<&str> = text.split_whitespace().collect();
            match f.as_slice() {
                [c, t, e, k] => Ok(BpfInsn {
                    code: c.parse().map_err(|_| "libpcap: bad instruction")?,
                    jt: t.parse().map_err(|_| "libpcap: bad instruction")?,
                    jf: e.parse().map_err(|_| "libpcap: bad instruction")?,
                    k: k.parse().map_err(|_| "libpcap: bad instruction")?,
                }),
                _ => Err("libpcap: bad instruction".to_string()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use netslice_dataplane::bpf::Program;
    use proptest::prelude::*;

    use super::*;

    const EXPRS: &[&str] = &[
        "ip",
        "not arp",
        "tcp port 80 and host 10.0.0.2",
        "udp and dst port 9999",
        "vlan",
        "vlan 100 and ip",
        "icmp or (tcp[tcpflags] & tcp-syn != 0)",
        "ip[8] < 64",
        "ether dst ff:ff:ff:ff:ff:ff",
        "net 10.0.0.0/24 and greater 100",
        "ip6",
    ];

    #[test]
    fn bad_expressions_get_libpcaps_error() {
        let e = compile("tcp port eighty").unwrap_err();
        assert!(e.starts_with("libpcap: ") && e.contains("eighty"), "{e}");
        assert!(compile("host 10.0.0.").is_err());
        assert!(compile("ip\0").is_err());
    }

    /// A frame that looks like the traffic the expressions are about: an
    /// Ethernet header (sometimes VLAN-tagged) and IPv4 with TCP or UDP, or
    /// random bytes.
    fn frames() -> impl Strategy<Value = Vec<u8>> {
        let ip = (
            any::<bool>(),
            any::<bool>(),
            0u8..3,
            any::<[u8; 4]>(),
            0u16..200,
            proptest::collection::vec(any::<u8>(), 0..120),
        )
            .prop_map(|(tagged, broadcast, proto, last, port, tail)| {
                let mut f = Vec::new();
                f.extend_from_slice(if broadcast { &[0xff; 6] } else { &[2, 0, 0, 0, 0, 1] });
                f.extend_from_slice(&[2, 0, 0, 0, 0, 2]);
                if tagged {
                    f.extend_from_slice(&[0x81, 0x00, 0x00, 100]);
                }
                f.extend_from_slice(&[0x08, 0x00]);
                let p = [6u8, 17, 1][proto as usize];
                f.extend_from_slice(&[
                    0x45,
                    0,
                    0,
                    60,
                    0,
                    0,
                    0,
                    0,
                    last[0] % 128,
                    p,
                    0,
                    0,
                    10,
                    0,
                    0,
                    last[1] % 4,
                    10,
                    0,
                    0,
                    2,
                ]);
                f.extend_from_slice(&(port % 3 * 40 + 9959).to_be_bytes());
                f.extend_from_slice(&[0, 80, 0, 0, 0, 0, 0, 0, 0, 0, 0x50, last[2], 0, 0, 0, 0, 0, 0]);
                f.extend_from_slice(&tail);
                f
            });
        prop_oneof![ip, proptest::collection::vec(any::<u8>(), 0..200)]
    }

    proptest! {
        /// The agents' interpreter agrees with libpcap's own filter on
        /// every expression and frame.
        #[test]
        fn the_interpreter_agrees_with_libpcap(frame in frames(), which in 0..EXPRS.len()) {
            let expr = EXPRS[which];
            let cap = pcap::Capture::dead(pcap::Linktype::ETHERNET).unwrap();
            let theirs = cap.compile(expr, true).unwrap();
            let ours = Program::new(compile(expr).unwrap()).unwrap();
            prop_assert_eq!(ours.matches(&frame), theirs.filter(&frame), "{} on {:02x?}", expr, frame);
        }
    }
}
