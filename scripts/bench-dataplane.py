#!/usr/bin/env python3
"""Data-plane benchmark: sliver -> sliver across one transit hop, through
netslice's redirector (GRE and VXLAN links) and, in the same run and between
the same two sliver namespaces, through the kernel (veth + a Linux bridge in
the transit host's namespace) and through Open vSwitch's userspace datapath
(`datapath_type=netdev`, AF_XDP ports, in the transit host's namespace).
netslice runs with its default substrate I/O (AF_XDP where it attaches), then
again with socket I/O only (raw GRE sockets; UDP sockets with GSO and GRO for
VXLAN), then with flow-hashed workers. Prints a Markdown table for
docs/benchmarks.md.

    sudo scripts/bench.sh [--seconds 10] [--no-ovs] [--no-sockets] [--workers 2]

Columns: TCP (iperf3, 1 and 4 streams); UDP with 1372-byte and 64-byte frames
from `netslice tool udp-send` into `netslice tool udp-sink`: the highest paced
rate delivered at >= 99% (a step search), and what arrives when the sender is
not paced at all (it then competes with the data path for the 2 cores).
Everything runs on this machine: sender, receiver, the three agents (or the
kernel, or ovs-vswitchd) share its cores.

The last column is the forwarding cost in the unpaced 64-byte run: packets
delivered times forwarding steps (3 agents on the path; ovs-vswitchd forwards
once) divided by the CPU seconds those processes used (user + system time,
all threads; kernel work they cause in softirq on other threads is not in
it). The kernel path has no process to charge, hence no figure.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchlib  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "netslice")
TB = "db%d" % (os.getpid() % 100000)
STATE = tempfile.mkdtemp(prefix="netslice-bench-")
ENV = dict(os.environ, NETSLICE_STATE_ROOT=STATE, NETSLICE_TESTBED=TB,
           # Raw throughput, not guarantees: the benchmark slice's slivers may
           # use every core and its links borrow up to their ceilings, which the
           # testbed's shared CPU budget (issue 18) would refuse as guarantees.
           NETSLICE_FORWARDING=os.environ.get("NETSLICE_FORWARDING", "off"))
A, B, T = f"{TB}.bench.a", f"{TB}.bench.b", f"{TB}.t1"
PIDS = []  # daemons we started, stopped by PID
OVS = os.path.join(STATE, "ovs")


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, env=ENV, capture_output=True, text=True, **kw)


def tool(ns, *args):
    return benchlib.tool_cmd(BIN, ns, *args)


def cpu_seconds(pids):
    """User + system CPU time of processes (all their threads), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
        except (OSError, IndexError, ValueError):
            pass
    return total / tick


def udp(addr, frame, secs, rate=None, cpu_of=(), src=None, dst=None):
    """-> (sent pps, received pps, fraction delivered, CPU seconds of cpu_of,
    datagrams received); from namespace `src` (sliver a) to `dst` (sliver b)."""
    cpu0 = []
    sent, got = benchlib.udp_run(BIN, src or A, dst or B, addr, frame, secs, rate,
                                 on_send=lambda: cpu0.append(cpu_seconds(cpu_of)))
    cpu = cpu_seconds(cpu_of) - cpu0[0]
    return sent["pps"], benchlib.received_pps(sent, got), benchlib.delivered(sent, got), cpu, got["packets"]


def best_paced(addr, frame, secs, start_pps):
    """The highest delivered pps with >= 99% arriving: starts at 0.6x the
    unpaced rate, steps down (x0.6) until a rate passes, then up (x1.25) until
    one fails."""
    def measure(pps):
        _, got, frac, _, _ = udp(addr, frame, secs, rate=pps * frame * 8)
        return got, frac
    return benchlib.best_paced(measure, max(start_pps * 0.6, 10_000), 0.6, 1.25, 5, 8)


def tcp(addr, streams, secs, src=None, via=None):
    """iperf3 client in namespace `src` (default A), or under the command prefix `via`."""
    via = via or ["ip", "netns", "exec", src or A]
    out = subprocess.run([*via, "iperf3", "-c", addr, "-p", "5301", "-t", str(secs), "-P", str(streams), "-J"],
                         capture_output=True, text=True, env=ENV).stdout
    doc = json.loads(out or "{}")
    if "sum_received" not in doc.get("end", {}):
        print(f"iperf3 to {addr} failed: {doc.get('error', out[-300:])}", file=sys.stderr)
        return 0.0
    return doc["end"]["sum_received"]["bits_per_second"] / 1e9


def veth_pair(name_t, name_s, sliver, addr):
    subprocess.run(["ip", "link", "add", name_t, "netns", T, "type", "veth", "peer", "name", name_s, "netns", sliver],
                   check=True)
    subprocess.run(["ip", "-n", sliver, "addr", "add", addr, "dev", name_s], check=True)
    subprocess.run(["ip", "-n", sliver, "link", "set", name_s, "up"], check=True)
    subprocess.run(["ip", "-n", T, "link", "set", name_t, "up"], check=True)


def kernel_bridge():
    subprocess.run(["ip", "-n", T, "link", "add", "kbr", "type", "bridge"], check=True)
    subprocess.run(["ip", "-n", T, "link", "set", "kbr", "up"], check=True)
    for x, ns, a in [("a", A, "10.99.0.1/24"), ("b", B, "10.99.0.2/24")]:
        veth_pair(f"kb-{x}", "kern0", ns, a)
        subprocess.run(["ip", "-n", T, "link", "set", f"kb-{x}", "master", "kbr"], check=True)


def ovs_up():
    """Open vSwitch, userspace datapath, AF_XDP ports, daemons in t1's namespace."""
    if not shutil.which("ovs-vswitchd") or not shutil.which("ethtool"):
        subprocess.run(["apt-get", "update"], check=True, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "openvswitch-switch", "ethtool"], check=True, capture_output=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        # The package starts the system's own daemons; ours are separate (private
        # directories), the system's are left as the package set them up.
    os.makedirs(OVS, exist_ok=True)
    env = dict(os.environ, OVS_RUNDIR=OVS, OVS_LOGDIR=OVS, OVS_DBDIR=OVS, OVS_SYSCONFDIR=OVS)
    db, sock = os.path.join(OVS, "conf.db"), os.path.join(OVS, "db.sock")
    subprocess.run(["ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"], check=True, env=env)
    subprocess.run(["ovsdb-server", db, f"--remote=punix:{sock}", f"--pidfile={OVS}/ovsdb.pid", "--detach",
                    f"--log-file={OVS}/ovsdb.log", f"--unixctl={OVS}/ovsdb.ctl"], check=True, env=env)
    PIDS.append(int(open(f"{OVS}/ovsdb.pid").read()))
    vsctl = ["ovs-vsctl", f"--db=unix:{sock}"]
    subprocess.run(vsctl + ["--no-wait", "init"], check=True, env=env)
    subprocess.run(["ip", "netns", "exec", T, "ovs-vswitchd", f"unix:{sock}", f"--pidfile={OVS}/vswitchd.pid",
                    "--detach", f"--log-file={OVS}/vswitchd.log", f"--unixctl={OVS}/vswitchd.ctl"], check=True, env=env,
                   capture_output=True)
    PIDS.append(int(open(f"{OVS}/vswitchd.pid").read()))
    subprocess.run(vsctl + ["add-br", "obr", "--", "set", "bridge", "obr", "datapath_type=netdev"], check=True, env=env)
    for x, ns, a in [("a", A, "10.98.0.1/24"), ("b", B, "10.98.0.2/24")]:
        veth_pair(f"ob-{x}", "ovs0", ns, a)
        # A veth hands over partial checksums, which XDP does not carry: the
        # senders must compute them (PEERS.md).
        subprocess.run(["ip", "netns", "exec", ns, "ethtool", "-K", "ovs0", "tx", "off"], check=True,
                       capture_output=True)
        subprocess.run(vsctl + ["add-port", "obr", f"ob-{x}", "--", "set", "interface", f"ob-{x}", "type=afxdp"],
                       check=True, env=env)
    # Wait until the switch forwards (ports come up asynchronously).
    for _ in range(50):
        r = subprocess.run(tool(A, "ping", "10.98.0.2", "-c", "1", "-W", "0.5", "--json"), capture_output=True,
                           text=True)
        if r.returncode == 0:
            return True
        time.sleep(0.2)
    print("warning: Open vSwitch did not forward; its column is left out", file=sys.stderr)
    return False


def ovs_down():
    for f in ("vswitchd.pid", "ovsdb.pid"):
        try:
            pid = int(open(os.path.join(OVS, f)).read())
            os.kill(pid, 15)
            PIDS.remove(pid)
        except (OSError, ValueError):
            pass
    time.sleep(1)


def cleanup():
    for pid in reversed(PIDS):
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            pass
    time.sleep(0.5)
    for pid in PIDS:
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    sh(BIN, "testbed", "down", TB, check=False)
    shutil.rmtree(STATE, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--no-ovs", action="store_true", help="leave out Open vSwitch")
    ap.add_argument("--no-sockets", action="store_true",
                    help="leave out the rows with socket I/O (the default I/O is AF_XDP)")
    ap.add_argument("--workers", type=int, default=2,
                    help="also measure gre with this many flow-hashed workers per agent (0: skip)")
    args = ap.parse_args()
    secs = search = args.seconds
    try:
        ups = []

        def testbed_up(workers, io=None):
            ups.append(workers)
            pidfile = os.path.join(STATE, f"iperf{len(ups)}.pid")
            env = dict(ENV, NETSLICE_WORKERS=str(workers))
            if io:
                env["NETSLICE_IO"] = io
            subprocess.run([BIN, "testbed", "up", os.path.join(ROOT, "examples", "substrate.yaml"), "--name", TB],
                           check=True, env=env, capture_output=True, text=True)
            sh(BIN, "slice", "apply", "-f", os.path.join(ROOT, "examples", "bench.yaml"))
            subprocess.run(["ip", "netns", "exec", B, "iperf3", "-s", "-D", "-p", "5301", "--pidfile", pidfile],
                           check=True)
            time.sleep(0.5)
            PIDS.append(int(open(pidfile).read().strip("\x00\n ")))
            state = json.load(open(os.path.join(STATE, TB, "daemons.json")))
            return [a["pid"] for a in state["agents"].values()]

        agents = testbed_up(0)
        io_sockets = []
        hosts = json.loads(sh(BIN, "node", "list", "--json").stdout)
        io = sorted({h.get("io_backend") or "?" for h in hosts})
        kernel_bridge()

        def measure(label, addr, pids=(), hops=1):
            """pids: the processes that forward (their CPU time is the cost);
            hops: how many times each of them forwards a packet in all."""
            print(f"measuring {label} ...", file=sys.stderr)
            t1 = tcp(addr, 1, secs)
            t4 = tcp(addr, 4, secs)
            _, big_free, _, _, _ = udp(addr, 1372, secs)
            big = best_paced(addr, 1372, search, big_free)
            _, small_free, _, cpu, pkts = udp(addr, 64, secs, cpu_of=pids)
            per_core = pkts * hops / cpu if pids and cpu > 0 else None
            small = best_paced(addr, 64, search, small_free)
            return (label, t1, t4, big, big_free, small, small_free, per_core)

        rows = [measure("kernel: veth + Linux bridge in t1", "10.99.0.2")]
        rows.append(measure("netslice, link type gre", "10.0.0.2", agents, 3))
        rows.append(measure("netslice, link type vxlan", "10.0.2.2", agents, 3))
        # Last, and stopped right after: its polling thread keeps a core busy.
        if not args.no_ovs and ovs_up():
            vswitchd = int(open(os.path.join(OVS, "vswitchd.pid")).read())
            rows.insert(1, measure("Open vSwitch 3.1 userspace datapath (netdev, AF_XDP ports) in t1", "10.98.0.2",
                                   [vswitchd], 1))
            ovs_down()
        if not args.no_sockets and ENV.get("NETSLICE_IO", "auto") != "sockets":
            # The same testbed again with socket I/O (no XDP program on the
            # substrate veths): raw GRE sockets; UDP sockets with GSO and GRO.
            sh(BIN, "testbed", "down", TB)
            agents = testbed_up(0, "sockets")
            hosts = json.loads(sh(BIN, "node", "list", "--json").stdout)
            io_sockets = sorted({h.get("io_backend") or "?" for h in hosts})
            rows.append(measure("netslice, link type gre, socket I/O", "10.0.0.2", agents, 3))
            rows.append(measure("netslice, link type vxlan, socket I/O (UDP GSO/GRO)", "10.0.2.2", agents, 3))
        if args.workers:
            # The same testbed again with flow-hashed worker threads in every agent.
            sh(BIN, "testbed", "down", TB)
            agents = testbed_up(args.workers)
            rows.append(measure(f"netslice, link type gre, {args.workers} workers per agent", "10.0.0.2", agents, 3))
        base = rows[0]
        ovs = next((r for r in rows if r[0].startswith("Open vSwitch")), None)

        def ratio(v, b):
            return f"{v / b:.2f}" if b else "-"

        print(f"agents' substrate I/O: {', '.join(io)}" + (f"; with socket I/O: {', '.join(io_sockets)}" if io_sockets else "")
              + f"; {secs} s per run\n")
        print("| path (sliver a on h1 -> sliver b on h2, via t1) | TCP 1 stream | TCP 4 streams "
              "| UDP 1372 B, >= 99% delivered | UDP 1372 B, unpaced sender | UDP 64 B, >= 99% delivered "
              "| UDP 64 B, unpaced sender | 64 B per forwarding core |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- |")
        for (label, t1, t4, big, big_free, small, small_free, per_core) in rows:
            rel = ""
            if label.startswith("netslice"):
                rel = f" ({ratio(t1, base[1])} x kernel" + (f", {ratio(t1, ovs[1])} x OVS" if ovs else "") + ")"
            core = f"{per_core / 1e6:.2f} Mpps" if per_core else "-"
            print(f"| {label} | {t1:.2f} Gbit/s{rel} | {t4:.2f} Gbit/s | {big:,.0f} pps ({big * 1372 * 8 / 1e9:.2f} Gbit/s)"
                  f" | {big_free:,.0f} pps ({big_free * 1372 * 8 / 1e9:.2f} Gbit/s) | {small / 1e6:.3f} Mpps"
                  f" | {small_free / 1e6:.3f} Mpps | {core} |")
    finally:
        cleanup()


if __name__ == "__main__":
    # A SIGTERM (timeout, kill) unwinds through main's `finally` like Ctrl-C.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, veths, XDP): run it with sudo")
    main()
