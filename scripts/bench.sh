#!/usr/bin/env bash
# Data-plane benchmark (scripts/bench-dataplane.py): sliver -> sliver across one
# transit hop through netslice (GRE and VXLAN links), the kernel (veth + bridge)
# and Open vSwitch's userspace datapath, all in one run. Prints a Markdown table
# for docs/benchmarks.md. Installs iperf3 (and openvswitch-switch) if missing.
# With --isolation it runs scripts/bench-isolation.py instead: what a slice's
# dedicated CPUs keep for it while another slice floods the same hosts. With
# --floor it runs scripts/bench-floor.py: chains of zero-logic relays in the
# shape of a netslice path, the I/O floor on this machine. With --scale it
# runs scripts/bench-scale.py: one host with many slivers (threads, memory,
# the reconcile time of a one-sliver change, forwarding rate).
#
#   sudo scripts/bench.sh [--seconds 10] [--no-ovs] [--no-sockets] [--workers 2]
#   sudo scripts/bench.sh --isolation [--seconds 10] [--link gre|vxlan]
#   sudo scripts/bench.sh --floor [--rounds 3] [--seconds 4] [--only tap1,chain3] [--profile PPS]
#   sudo scripts/bench.sh --scale [--slivers 200] [--changes 5] [--baseline OLD_BINARY]
#   sudo scripts/bench.sh --monitoring [--seconds 5] [--rounds 3]
set -euo pipefail
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
for tool in iperf3 ip python3 ethtool /usr/include/pcap.h; do
    command -v $tool >/dev/null 2>&1 || [ -e "$tool" ] || {
        as_root apt-get update
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 iproute2 python3 ethtool libpcap-dev
        break
    }
done
cargo build --release --quiet --bin netslice
if [ "${1:-}" = --isolation ]; then
    shift
    as_root python3 scripts/bench-isolation.py "$@"
elif [ "${1:-}" = --floor ]; then
    shift
    as_root python3 scripts/bench-floor.py "$@"
elif [ "${1:-}" = --monitoring ]; then
    shift
    as_root python3 scripts/bench-monitoring.py "$@"
elif [ "${1:-}" = --scale ]; then
    shift
    as_root python3 scripts/bench-scale.py "$@"
else
    as_root python3 scripts/bench-dataplane.py "$@"
fi
