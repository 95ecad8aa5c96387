#!/usr/bin/env bash
# Data-plane benchmark: sliver -> sliver across one transit hop, through netslice's
# userspace redirector (GRE and VXLAN links) and, in the same run and between the
# same two sliver namespaces, through the kernel (veth + a Linux bridge in the
# transit host's namespace). Prints a Markdown table for docs/benchmarks.md.
#
#   sudo scripts/bench.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
TB=bench$$
ROOT=$(mktemp -d)
BIN=./target/release/netslice
export NETSLICE_STATE_ROOT=$ROOT NETSLICE_TESTBED=$TB

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
for tool in iperf3 ip tc; do
    command -v $tool >/dev/null 2>&1 || { as_root apt-get update; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y iperf3 iproute2; break; }
done
cargo build --release --quiet --bin netslice

cleanup() {
    [ -n "${IPERF_PIDS:-}" ] && kill $IPERF_PIDS 2>/dev/null || true
    $BIN testbed down "$TB" >/dev/null 2>&1 || true
    rm -rf "$ROOT"
}
trap cleanup EXIT

$BIN testbed up examples/substrate.yaml --name "$TB" >/dev/null 2>"$ROOT/up.log"
$BIN slice apply -f examples/bench.yaml >/dev/null 2>>"$ROOT/up.log"
A=$TB.bench.a; B=$TB.bench.b; T=$TB.t1

# Kernel baseline between the same two sliver namespaces: a bridge in t1.
ip -n "$T" link add kbr type bridge
ip -n "$T" link set kbr up
for x in a b; do
    ns=$TB.bench.$x
    ip link add kb-$x netns "$T" type veth peer name kern0 netns "$ns"
    ip -n "$T" link set kb-$x master kbr up
    ip -n "$ns" link set kern0 up
done
ip -n "$A" addr add 10.99.0.1/24 dev kern0
ip -n "$B" addr add 10.99.0.2/24 dev kern0

ip netns exec "$B" iperf3 -s -D -p 5301 --pidfile "$ROOT/iperf.pid"
sleep 0.5
IPERF_PIDS=$(cat "$ROOT/iperf.pid")

tcp() { # addr streams -> Gbit/s
    ip netns exec "$A" iperf3 -c "$1" -p 5301 -t "$SECS" -P "$2" -J \
        | python3 -c 'import json,sys; print("%.2f" % (json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e9))'
}
udp() { # addr -> "pps gbit" received by a sink in b, 1330-byte payload = 1372-byte frames
    ip netns exec "$B" $BIN tool udp-sink --listen 0.0.0.0:9999 --seconds $((SECS + 2)) --json > "$ROOT/sink.json" &
    local sink=$!
    sleep 0.5
    ip netns exec "$A" $BIN tool udp-send "$1:9999" --size 1330 --seconds "$SECS" --json > "$ROOT/send.json"
    wait $sink
    python3 - "$ROOT/send.json" "$ROOT/sink.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1])); r = json.load(open(sys.argv[2]))
print("%.0f %.2f %.0f %.1f" % (r["pps"], r["pps"] * 1372 * 8 / 1e9, s["pps"], 100.0 * r["packets"] / max(s["packets"], 1)))
PY
}

echo "measuring ($SECS s per run) ..." >&2
K1=$(tcp 10.99.0.2 1); G1=$(tcp 10.0.0.2 1); V1=$(tcp 10.0.2.2 1)
K4=$(tcp 10.99.0.2 4); G4=$(tcp 10.0.0.2 4)
read -r KP KG KS KD <<<"$(udp 10.99.0.2)"
read -r GP GG GS GD <<<"$(udp 10.0.0.2)"
ratio() { python3 -c "print('%.2f' % ($1 / $2))"; }

cat <<EOF2
| path (sliver a on h1 -> sliver b on h2, via t1) | TCP 1 stream | TCP 4 streams | UDP 1372-byte frames received | delivered |
| --- | --- | --- | --- | --- |
| kernel: veth + Linux bridge in t1 (baseline) | $K1 Gbit/s | $K4 Gbit/s | $KP pps ($KG Gbit/s) | $KD % of $KS pps sent |
| netslice, link type gre | $G1 Gbit/s ($(ratio $G1 $K1) x kernel) | $G4 Gbit/s ($(ratio $G4 $K4) x kernel) | $GP pps ($GG Gbit/s, $(ratio $GP $KP) x kernel) | $GD % of $GS pps sent |
| netslice, link type vxlan | $V1 Gbit/s ($(ratio $V1 $K1) x kernel) | | | |
EOF2
