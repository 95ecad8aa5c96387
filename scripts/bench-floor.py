#!/usr/bin/env python3
"""The I/O floor: what chains of zero-logic relays deliver on this machine.

`netslice tool relay` moves frames between interfaces with the agents' own I/O
(TAP in offload mode, AF_XDP on veths) and wait policy, and nothing else: no
redirector, no encapsulation, no scheduler. Chained in the shape of a netslice
path (sliver a -> agent on h1 -> agent on t1 -> agent on h2 -> sliver b, each a
process of its own), the relays measure what the I/O alone allows, next to the
kernel's own paths, all in one run and in rounds (the machine drifts):

  veth      sliver a and sliver b joined by one veth pair (no forwarding at all)
  bridge    a veth from each sliver into a Linux bridge (the kernel path of
            scripts/bench-dataplane.py)
  tap1      one relay between the slivers' TAPs (one userspace hop, TAP I/O only)
  xsk1      one relay between AF_XDP sockets on veths into the slivers
  chain3    TAP -> relay -> veth -> relay -> veth -> relay -> TAP: three
            processes, AF_XDP on the substrate veths (netslice's default I/O)
  chain3x   the same with veths into the slivers, AF_XDP everywhere
  netslice  the real thing for comparison: the example testbed with the
            benchmark slice (examples/bench.yaml), sliver a on h1 -> sliver b on
            h2 over its gre link via t1, default I/O (AF_XDP on the substrate)

UDP: `netslice tool udp-send` into `udp-sink`, 1372-byte frames (the highest
paced rate delivering >= 99%, steps of 1.1x, and an unpaced sender) and 64-byte
frames (unpaced). The slivers' checksum and segmentation offloads are off in
these scenarios (a relay cannot put a partial checksum on an AF_XDP ring).

TCP (iperf3, one stream) runs in the tcp-* scenarios, with the slivers'
offloads on, so TCP hands over super-frames as it does through netslice:

  tcp-bridge    the kernel path (as `bridge`)
  tcp-tap1      one relay between the slivers' TAPs (super-frames pass whole)
  tcp-chain3u   TAP -> relay -> relay -> relay -> TAP, the relays exchanging
                frames (super-frames whole, behind their virtio-net header) as
                UDP datagrams without checksum over veths of MTU 9000 (the
                default substrate MTU): the I/O of netslice's VXLAN path over
                socket I/O
  tcp-netslice  the example testbed with socket I/O, over the benchmark
                slice's vxlan link

Sender, receiver and relays share the two cores.

  sudo python3 scripts/bench-floor.py [--rounds 3] [--seconds 4] [--only tap1,chain3]

With --profile PPS it measures nothing else: for each UDP scenario it sends
1372-byte frames paced at PPS, records every CPU with `perf record -a -g` for
--seconds meanwhile, and prints who used the CPU (by thread, with PIDs: the
relays' and agents' threads have the same names in every process); the
recording stays in /tmp/netslice-floor-KIND.data for `perf report -i`.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("NETSLICE_BIN", os.path.join(ROOT, "target", "release", "netslice"))
P = "fl%d" % (os.getpid() % 100000)
A, B, H1, T, H2 = (P + x for x in ("a", "b", "h1", "t", "h2"))
SCENARIOS = ["veth", "bridge", "tap1", "xsk1", "chain3", "chain3x", "netslice",
             "tcp-bridge", "tcp-tap1", "tcp-chain3u", "tcp-netslice"]
STATE = tempfile.mkdtemp(prefix="netslice-floor-")
ENV = dict(os.environ, NETSLICE_STATE_ROOT=STATE, NETSLICE_TESTBED=P,
           # Raw throughput, not guarantees: the benchmark slice's slivers may
           # use every core and its links borrow up to their ceilings, which the
           # testbed's shared CPU budget (issue 18) would refuse as guarantees.
           NETSLICE_FORWARDING=os.environ.get("NETSLICE_FORWARDING", "off"))
# Where the UDP runs go: sender's namespace, receiver's namespace, address.
PATH = {"src": A, "dst": B, "addr": "10.77.0.2"}


def sh(*args, check=True):
    r = subprocess.run(args, capture_output=True, text=True, env=ENV)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip()}")
    return r


def tool(ns, *args):
    return benchlib.tool_cmd(BIN, ns, *args)


def udp(frame, secs, rate=None):
    """-> (received pps, fraction delivered)."""
    sent, got = benchlib.udp_run(BIN, PATH["src"], PATH["dst"], PATH["addr"], frame, secs, rate)
    return benchlib.received_pps(sent, got), benchlib.delivered(sent, got)


def best_paced(frame, secs, start_pps):
    """Highest received pps with >= 99% delivered: down by 0.8x from
    `start_pps` until a rate passes, then up by 1.1x until one fails."""
    return benchlib.best_paced(lambda pps: udp(frame, secs, pps * frame * 8), start_pps, 0.8, 1.1, 8, 10)


def tcp(secs):
    """One iperf3 stream from the sender's namespace to the receiver's, Gbit/s."""
    pidfile = os.path.join(STATE, "iperf3.pid")
    sh("ip", "netns", "exec", PATH["dst"], "iperf3", "-s", "-D", "-p", "5302", "--pidfile", pidfile)
    try:
        time.sleep(0.5)
        out = sh("ip", "netns", "exec", PATH["src"], "iperf3", "-c", PATH["addr"], "-p", "5302", "-t", str(secs), "-J",
                 check=False).stdout
    finally:
        try:
            os.kill(int(open(pidfile).read().strip("\x00\n ")), 15)
        except (OSError, ValueError):
            pass
    doc = json.loads(out or "{}")
    if "sum_received" not in doc.get("end", {}):
        raise RuntimeError(f"iperf3 failed: {doc.get('error', out[-300:])}")
    return doc["end"]["sum_received"]["bits_per_second"] / 1e9


def veth(a, ns_a, b, ns_b):
    sh("ip", "link", "add", a, "netns", ns_a, "type", "veth", "peer", "name", b, "netns", ns_b)
    sh("ip", "-n", ns_a, "link", "set", a, "up")
    sh("ip", "-n", ns_b, "link", "set", b, "up")


def relay(procs, *ends):
    p = subprocess.Popen([BIN, "tool", "relay", *ends], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs.append(p)
    if p.stdout.readline().strip() != "ready":
        p.wait(timeout=10)
        raise RuntimeError(f"relay {' '.join(ends)}: {p.stderr.read().strip()}")


def offloads_off(ns):
    for line in sh("ip", "-n", ns, "-o", "link").stdout.splitlines():
        ifname = line.split(":")[1].strip().split("@")[0]
        if ifname != "lo":
            sh("ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off", "tso", "off", "gso", "off")


def setup(kind, procs):
    offloads = kind.startswith("tcp-")
    kind = kind.removeprefix("tcp-")
    if kind == "netslice":
        env = dict(ENV, NETSLICE_IO="sockets") if offloads else ENV
        r = subprocess.run([BIN, "testbed", "up", os.path.join(ROOT, "examples", "substrate.yaml"), "--name", P],
                           env=env, capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"testbed up: {r.stderr.strip()}")
        sh(BIN, "slice", "apply", "-f", os.path.join(ROOT, "examples", "bench.yaml"))
        # UDP over the gre link with the default I/O; TCP over the vxlan link
        # with socket I/O (the shape of tcp-chain3u).
        PATH.update(src=f"{P}.bench.a", dst=f"{P}.bench.b", addr="10.0.2.2" if offloads else "10.0.0.2")
        for ns in (PATH["src"], PATH["dst"]):
            if not offloads:
                offloads_off(ns)
        for _ in range(20):
            if sh(*tool(PATH["src"], "ping", PATH["addr"], "-c", "1", "-W", "0.5"), check=False).returncode == 0:
                return
        raise RuntimeError("netslice: sliver b does not answer pings")
    PATH.update(src=A, dst=B, addr="10.77.0.2")
    for n in (A, B, H1, T, H2):
        sh("ip", "netns", "add", n)
    if kind == "veth":
        veth("x0", A, "x0", B)
    elif kind == "bridge":
        sh("ip", "-n", T, "link", "add", "kbr", "type", "bridge")
        sh("ip", "-n", T, "link", "set", "kbr", "up")
        veth("pa", T, "x0", A)
        veth("pb", T, "x0", B)
        for n in ("pa", "pb"):
            sh("ip", "-n", T, "link", "set", n, "master", "kbr")
    elif kind == "tap1":
        relay(procs, f"tap:{A}:x0", f"tap:{B}:x0")
    elif kind == "xsk1":
        veth("pa", T, "x0", A)
        veth("pb", T, "x0", B)
        relay(procs, f"xsk:{T}:pa", f"xsk:{T}:pb")
    elif kind in ("chain3", "chain3x"):
        veth("h1t", H1, "ta", T)
        veth("tb", T, "h2t", H2)
        if kind == "chain3":
            first, last = f"tap:{A}:x0", f"tap:{B}:x0"
        else:
            veth("x0", A, "h1a", H1)
            veth("h2b", H2, "x0", B)
            first, last = f"xsk:{H1}:h1a", f"xsk:{H2}:h2b"
        relay(procs, first, f"xsk:{H1}:h1t")
        relay(procs, f"xsk:{T}:ta", f"xsk:{T}:tb")
        relay(procs, f"xsk:{H2}:h2t", last)
    elif kind == "chain3u":
        veth("h1t", H1, "ta", T)
        veth("tb", T, "h2t", H2)
        for ns, dev, ip in ((H1, "h1t", "10.78.1.1"), (T, "ta", "10.78.1.2"), (T, "tb", "10.78.2.2"),
                            (H2, "h2t", "10.78.2.1")):
            sh("ip", "-n", ns, "link", "set", dev, "mtu", "9000")
            sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", dev)
        relay(procs, f"tap:{A}:x0", f"udp:{H1}:5000:10.78.1.2:5001")
        relay(procs, f"udp:{T}:5001:10.78.1.1:5000", f"udp:{T}:5002:10.78.2.1:5000")
        relay(procs, f"udp:{H2}:5000:10.78.2.2:5002", f"tap:{B}:x0")
    else:
        raise ValueError(kind)
    for ns, ip in ((A, "10.77.0.1"), (B, "10.77.0.2")):
        sh("ip", "-n", ns, "addr", "add", ip + "/24", "dev", "x0")
        sh("ip", "-n", ns, "link", "set", "x0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        if not offloads:
            sh("ip", "netns", "exec", ns, "ethtool", "-K", "x0", "tx", "off", "tso", "off", "gso", "off")
    for _ in range(20):
        if sh(*tool(A, "ping", "10.77.0.2", "-c", "1", "-W", "0.5"), check=False).returncode == 0:
            return
    raise RuntimeError(f"{kind}: sliver b does not answer pings")


def teardown(procs):
    for p in procs:  # our relays, by PID
        if p.poll() is None:
            p.kill()
            p.wait()
    procs.clear()
    for n in (A, B, H1, T, H2):
        sh("ip", "netns", "del", n, check=False)
    if PATH["src"] != A:
        sh(BIN, "testbed", "down", P, check=False)


def fmt(vals, scale=1.0, digits=0):
    vals = [v * scale for v in vals]
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:,.{digits}f}"
    return f"{med:,.{digits}f} ({min(vals):,.{digits}f} - {max(vals):,.{digits}f})"


def profile(kind, pps, secs):
    """Paced 1372-byte UDP at `pps` for `secs` + 4 s, `perf record -a -g`
    over `secs` of it; prints the delivered fraction and the busiest threads."""
    data = f"/tmp/netslice-floor-{kind}.data"
    send = None
    sink = subprocess.Popen(tool(PATH["dst"], "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", str(secs + 6),
                                 "--json"), stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        send = subprocess.Popen(tool(PATH["src"], "udp-send", f"{PATH['addr']}:9999", "--size", "1330", "--seconds",
                                     str(secs + 4), "--rate", f"{int(pps * 1372 * 8)}bit", "--json"),
                                stdout=subprocess.PIPE, text=True)
        time.sleep(2)
        sh("perf", "record", "-a", "-g", "-o", data, "--", "sleep", str(secs))
        sent = json.loads(send.communicate(timeout=60)[0])["packets"]
        got = json.loads(sink.communicate(timeout=60)[0])["packets"]
    finally:
        for p in (sink, send):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    rep = sh("perf", "report", "-i", data, "--no-children", "--sort", "pid", "-g", "none", "--stdio").stdout
    top = [line.strip() for line in rep.splitlines() if line.strip() and not line.startswith("#")][:8]
    print(f"{kind}: {pps:,.0f} pps offered, {got / max(sent, 1):.1%} delivered while recorded; CPU by thread "
          f"(share of all samples on all CPUs):")
    for line in top:
        print(f"    {line}")
    print(f"    (perf report -i {data} --no-children --tid TID --sort sym -g none --stdio)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--only", default=",".join(SCENARIOS))
    ap.add_argument("--profile", type=float, metavar="PPS",
                    help="record CPU profiles at this paced rate of 1372-byte frames instead of measuring")
    args = ap.parse_args()
    kinds = [k for k in args.only.split(",") if k]
    for k in kinds:
        if k not in SCENARIOS:
            sys.exit(f"unknown scenario {k!r}; known: {', '.join(SCENARIOS)}")
    if os.geteuid() != 0:
        sys.exit("run as root (namespaces, TAPs, AF_XDP)")
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: cargo build --release --bin netslice")
    res = {k: {"paced": [], "unpaced": [], "small": [], "tcp": []} for k in kinds}
    procs = []
    if args.profile:
        if not shutil.which("perf"):
            sys.exit("--profile needs perf (Debian: linux-perf)")
        try:
            for k in kinds:
                if k.startswith("tcp-"):
                    continue
                setup(k, procs)
                try:
                    profile(k, args.profile, args.seconds)
                finally:
                    teardown(procs)
        finally:
            teardown(procs)
            shutil.rmtree(STATE, ignore_errors=True)
        return
    try:
        for r in range(args.rounds):
            for k in kinds:
                t0 = time.time()
                setup(k, procs)
                try:
                    if k.startswith("tcp-"):
                        res[k]["tcp"].append(tcp(args.seconds))
                        got = f"TCP {res[k]['tcp'][-1]:.2f} Gbit/s"
                    else:
                        unpaced, _ = udp(1372, args.seconds)
                        paced = best_paced(1372, args.seconds, unpaced * 0.9)
                        small, _ = udp(64, args.seconds)
                        res[k]["paced"].append(paced)
                        res[k]["unpaced"].append(unpaced)
                        res[k]["small"].append(small)
                        got = f"1372 B >= 99% {paced:,.0f} pps, unpaced {unpaced:,.0f} pps; 64 B {small / 1e6:.3f} Mpps"
                finally:
                    teardown(procs)
                print(f"round {r + 1}/{args.rounds} {k}: {got} ({time.time() - t0:.0f} s)", file=sys.stderr, flush=True)
    finally:
        teardown(procs)
        shutil.rmtree(STATE, ignore_errors=True)
    print(f"\nMedian (min - max) of {args.rounds} rounds, {args.seconds:g} s per measurement:")
    if any(res[k]["paced"] for k in kinds):
        print("\n| scenario | UDP 1372 B, >= 99% delivered | Gbit/s | UDP 1372 B, unpaced sender "
              "| UDP 64 B, unpaced sender |")
        print("| --- | --- | --- | --- | --- |")
    for k in kinds:
        v = res[k]
        if v["paced"]:
            print(f"| {k} | {fmt(v['paced'])} pps | {fmt(v['paced'], 1372 * 8 / 1e9, 2)} | {fmt(v['unpaced'])} pps "
                  f"| {fmt(v['small'], 1e-6, 3)} Mpps |")
    tcps = [k for k in kinds if res[k]["tcp"]]
    if tcps:
        print("\n| scenario | TCP, 1 stream |")
        print("| --- | --- |")
        for k in tcps:
            print(f"| {k} | {fmt(res[k]['tcp'], 1.0, 2)} Gbit/s |")


if __name__ == "__main__":
    main()
