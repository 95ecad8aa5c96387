#!/usr/bin/env python3
"""Isolation benchmark: netslice's schedulers and policers next to Linux tc, on
the same namespaces in the same run. Prints a Markdown table for
docs/benchmarks.md.

    sudo python3 scripts/bench-qos.py [--seconds 5]

Substrate: h1-h2 (10 Gbit/s) for rate accuracy, h3-h4 (100 Mbit/s) for sharing.
netslice side: slices on the testbed, traffic from `netslice tool udp-send`
(1372-byte frames) into `netslice tool udp-sink` inside the slivers. Linux side:
`tc htb` (and `tc police`) on a veth between the same sliver namespaces, or on the
same physical link between the host namespaces, with the same tools.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "netslice")
FRAME = 1372  # bytes of Ethernet frame per datagram (1330 payload + 42 headers)
TB = "qb%d" % (os.getpid() % 100000)
STATE = tempfile.mkdtemp(prefix="netslice-bench-")
ENV = dict(os.environ, NETSLICE_STATE_ROOT=STATE, NETSLICE_TESTBED=TB)
PROCS = []

SUBSTRATE = f"""name: {TB}
hosts:
  - {{name: h1, role: vnode, slivers: 64, cpu: 64, memory: 64Gi}}
  - {{name: h2, role: vnode, slivers: 64, cpu: 64, memory: 64Gi}}
  - {{name: h3, role: vnode, slivers: 64, cpu: 64, memory: 64Gi}}
  - {{name: h4, role: vnode, slivers: 64, cpu: 64, memory: 64Gi}}
links:
  - {{endpoints: [h1, h2], bandwidth: 10Gbit}}
  - {{endpoints: [h3, h4], bandwidth: 100Mbit}}
"""


def sh(*args, check=True, **kw):
    return subprocess.run(args, check=check, env=ENV, capture_output=True, text=True, **kw)


def ns_cmd(ns, *args):
    return ["ip", "netns", "exec", ns, BIN, "tool", *args]


def spawn(ns, *args):
    p = subprocess.Popen(ns_cmd(ns, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)
    PROCS.append(p)
    return p


def result(p):
    out, err = p.communicate(timeout=120)
    if p.returncode != 0:
        raise RuntimeError(f"tool failed: {err}")
    return json.loads(out)


def sliver(slice_, node):
    return f"{TB}.{slice_}.{node}"


def host(h):
    return f"{TB}.{h}"


def apply(name, text):
    path = os.path.join(STATE, name + ".yaml")
    with open(path, "w") as f:
        f.write(text)
    sh(BIN, "slice", "apply", "-f", path)


def delete(name):
    sh(BIN, "slice", "delete", name)


def two_node(name, a, b, link, subnet="10.0.0"):
    return f"""name: {name}
nodes:
  - {{name: x, host: {a}}}
  - {{name: y, host: {b}}}
links:
  - {{name: l, {link}, endpoints: [{{node: x, address: {subnet}.1/24}}, {{node: y, address: {subnet}.2/24}}]}}
"""


def flows(pairs, secs):
    """pairs: [(send_ns, sink_ns, addr, port, rate)] -> frame bit/s received and per-second counts."""
    sinks = [spawn(r, "udp-sink", "--listen", f"0.0.0.0:{port}", "--seconds", str(secs + 2), "--json")
             for (_, r, _, port, _) in pairs]
    time.sleep(0.5)
    senders = [spawn(s, "udp-send", f"{addr}:{port}", "--rate", rate, "--seconds", str(secs), "--json")
               for (s, _, addr, port, rate) in pairs]
    for p in senders:
        result(p)
    out = []
    for p in sinks:
        r = result(p)
        out.append((r["pps"] * FRAME * 8, r.get("per_second", [])))
    return out


def ping(ns, addr, count=100):
    return result(spawn(ns, "ping", addr, "-c", str(count), "-i", "0.02", "-W", "1", "--json"))


def jain(xs):
    s = sum(xs)
    s2 = sum(x * x for x in xs)
    return s * s / (len(xs) * s2) if s2 else 0.0


def burst(rate_mbit):
    """The burst netslice uses by default for a shaped link: 5 ms at the ceiling."""
    return str(max(int(rate_mbit * 1e6 / 8 / 200), 3028))


def tc(ns, *args):
    subprocess.run(["tc", "-n", ns, *args], check=True, stderr=subprocess.DEVNULL)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    secs = args.seconds
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "netslice"], cwd=ROOT, check=True)
    sub = os.path.join(STATE, "substrate.yaml")
    with open(sub, "w") as f:
        f.write(SUBSTRATE)
    sh(BIN, "testbed", "up", sub)
    rows = []
    try:
        # (a) rate accuracy of one shaped link, flooded at 1.5x.
        for label, bw, flood in [("10 Mbit/s", "10Mbit", "15Mbit"), ("100 Mbit/s", "100Mbit", "150Mbit"),
                                 ("1 Gbit/s", "1Gbit", "1500Mbit")]:
            rate = {"10Mbit": 10e6, "100Mbit": 100e6, "1Gbit": 1e9}[bw]
            apply("acc", two_node("acc", "h1", "h2", f"bandwidth: {bw}"))
            x, y = sliver("acc", "x"), sliver("acc", "y")
            ours = flows([(x, y, "10.0.0.2", 9999, flood)], secs)[0][0]
            # Linux: a direct veth between the same two slivers, htb at the same rate.
            subprocess.run(["ip", "link", "add", "kx", "netns", x, "type", "veth", "peer", "name", "ky", "netns", y], check=True)
            for ns, dev, a in [(x, "kx", "10.9.0.1/24"), (y, "ky", "10.9.0.2/24")]:
                subprocess.run(["ip", "-n", ns, "addr", "add", a, "dev", dev], check=True)
                subprocess.run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
            tc(x, "qdisc", "add", "dev", "kx", "root", "handle", "1:", "htb", "default", "10")
            mb = {"10Mbit": 10, "100Mbit": 100, "1Gbit": 1000}[bw]
            tc(x, "class", "add", "dev", "kx", "parent", "1:", "classid", "1:10", "htb", "rate", bw, "ceil", bw,
               "burst", burst(mb), "cburst", burst(mb))
            linux = flows([(x, y, "10.9.0.2", 9998, flood)], secs)[0][0]
            delete("acc")
            rows.append((f"(a) one link shaped to {label}, flooded at 1.5x: received / configured",
                         f"{ours / rate:.4f}", f"{linux / rate:.4f}", "within 2%"))

        # (b, c) victim and aggressor on the 100 Mbit/s link h3-h4.
        apply("victim", two_node("victim", "h3", "h4", "bandwidth: 20Mbit"))
        apply("aggr", two_node("aggr", "h3", "h4", "bandwidth: 20Mbit, ceiling: 100Mbit"))
        vx, vy, ax, ay = sliver("victim", "x"), sliver("victim", "y"), sliver("aggr", "x"), sliver("aggr", "y")
        idle = ping(vx, "10.0.0.2")

        def contended(pairs, ping_ns, ping_addr):
            sinks = [spawn(r, "udp-sink", "--listen", f"0.0.0.0:{port}", "--seconds", str(secs + 3), "--json")
                     for (_, r, _, port, _) in pairs]
            time.sleep(0.5)
            senders = [spawn(s, "udp-send", f"{addr}:{port}", "--rate", rate, "--seconds", str(secs), "--json")
                       for (s, _, addr, port, rate) in pairs]
            time.sleep(1)
            pg = ping(ping_ns, ping_addr)
            for p in senders:
                result(p)
            return [result(p)["pps"] * FRAME * 8 for p in sinks], pg

        (v_ours, a_ours), _ = contended(
            [(vx, vy, "10.0.0.2", 9001, "20Mbit"), (ax, ay, "10.0.0.2", 9002, "200Mbit")], vx, "10.0.0.2")
        # (c) latency: the victim sends only its pings while the aggressor floods.
        (_,), pg_ours = contended([(ax, ay, "10.0.0.2", 9002, "200Mbit")], vx, "10.0.0.2")
        # Linux: htb on the same physical link (h3's end), classes by UDP port, ICMP with the victim.
        h3, h4 = host("h3"), host("h4")
        addr4 = subprocess.run(["ip", "-n", h4, "-j", "addr", "show", "dev", "to-h3"], capture_output=True, text=True,
                               check=True)
        a4 = json.loads(addr4.stdout)[0]["addr_info"][0]["local"]
        tc(h3, "qdisc", "replace", "dev", "to-h4", "root", "handle", "1:", "htb", "default", "30")
        tc(h3, "class", "add", "dev", "to-h4", "parent", "1:", "classid", "1:1", "htb", "rate", "100mbit", "ceil",
           "100mbit")
        for cid, rate, ceil, b in [("1:10", "20mbit", "20mbit", 20), ("1:20", "20mbit", "100mbit", 100),
                                   ("1:30", "60mbit", "100mbit", 100)]:
            tc(h3, "class", "add", "dev", "to-h4", "parent", "1:1", "classid", cid, "htb", "rate", rate, "ceil", ceil,
               "burst", burst(b), "cburst", burst(b))
        for match, cid in [(["ip", "dport", "9001", "0xffff"], "1:10"), (["ip", "dport", "9002", "0xffff"], "1:20"),
                           (["ip", "protocol", "1", "0xff"], "1:10")]:
            tc(h3, "filter", "add", "dev", "to-h4", "parent", "1:", "protocol", "ip", "u32", "match", *match,
               "flowid", cid)
        idle_l = ping(h3, a4)
        (v_l, a_l), _ = contended([(h3, h4, a4, 9001, "20Mbit"), (h3, h4, a4, 9002, "200Mbit")], h3, a4)
        (_,), pg_l = contended([(h3, h4, a4, 9002, "200Mbit")], h3, a4)
        rows.append(("(b) victim's share of its 20 Mbit/s guarantee, aggressor flooding at 10x",
                     f"{v_ours / 20e6:.3f} (aggressor {a_ours / 1e6:.1f} Mbit/s)",
                     f"{v_l / 20e6:.3f} (aggressor {a_l / 1e6:.1f} Mbit/s)", ">= 0.98"))
        rows.append(("(c) victim's ping RTT p50 / p99 while the aggressor floods at 10x (idle p50 / p99), ms",
                     f"{pg_ours['rtt_p50_ms']:.2f} / {pg_ours['rtt_p99_ms']:.2f} ({idle['rtt_p50_ms']:.2f} / {idle['rtt_p99_ms']:.2f})",
                     f"{pg_l['rtt_p50_ms']:.2f} / {pg_l['rtt_p99_ms']:.2f} ({idle_l['rtt_p50_ms']:.2f} / {idle_l['rtt_p99_ms']:.2f})",
                     "p99 <= 5 ms"))
        delete("victim")
        delete("aggr")

        # (d) four equal backlogged slices: Jain's index per 1 s window (worst window).
        for i in range(4):
            apply(f"eq{i}", two_node(f"eq{i}", "h3", "h4", "bandwidth: 20Mbit, ceiling: 100Mbit"))
        got = flows([(sliver(f"eq{i}", "x"), sliver(f"eq{i}", "y"), "10.0.0.2", 9100 + i, "60Mbit") for i in range(4)],
                    secs)
        windows = min(len(w) for _, w in got)
        j_ours = min(jain([w[k] for _, w in got]) for k in range(windows))
        tc(h3, "qdisc", "replace", "dev", "to-h4", "root", "handle", "2:", "htb")
        tc(h3, "class", "add", "dev", "to-h4", "parent", "2:", "classid", "2:1", "htb", "rate", "100mbit")
        for i in range(4):
            tc(h3, "class", "add", "dev", "to-h4", "parent", "2:1", "classid", f"2:1{i}", "htb", "rate", "20mbit",
               "ceil", "100mbit", "burst", burst(100), "cburst", burst(100))
            tc(h3, "filter", "add", "dev", "to-h4", "parent", "2:", "protocol", "ip", "u32", "match", "ip", "dport",
               str(9200 + i), "0xffff", "flowid", f"2:1{i}")
        got_l = flows([(h3, h4, a4, 9200 + i, "60Mbit") for i in range(4)], secs)
        windows = min(len(w) for _, w in got_l)
        j_l = min(jain([w[k] for _, w in got_l]) for k in range(windows))
        rows.append(("(d) four equal slices backlogged: Jain's index, worst 1 s window", f"{j_ours:.4f}",
                     f"{j_l:.4f}", ">= 0.99"))
        for i in range(4):
            delete(f"eq{i}")

        # (e) 50 policed slices on one port, each policed at 1 Mbit/s and sending 2 Mbit/s.
        n = 50
        for i in range(n):
            apply(f"p{i:02}", two_node(f"p{i:02}", "h3", "h4", "bandwidth: 1Mbit, isolation: policed"))
        got = flows([(sliver(f"p{i:02}", "x"), sliver(f"p{i:02}", "y"), "10.0.0.2", 9300 + i, "2Mbit")
                     for i in range(n)], secs)
        dev_ours = [abs(r / 1e6 - 1.0) for r, _ in got]
        # Linux: this kernel has no act_police module (tc police fails with "Failed
        # to load TC action module"), so the nearest Linux equivalent is one htb
        # class per flow at the same rate on the same link.
        tc(h3, "qdisc", "replace", "dev", "to-h4", "root", "handle", "3:", "htb")
        tc(h3, "class", "add", "dev", "to-h4", "parent", "3:", "classid", "3:1", "htb", "rate", "100mbit")
        for i in range(n):
            tc(h3, "class", "add", "dev", "to-h4", "parent", "3:1", "classid", f"3:{100 + i}", "htb", "rate", "1mbit",
               "ceil", "1mbit")
            tc(h3, "filter", "add", "dev", "to-h4", "parent", "3:", "protocol", "ip", "u32", "match", "ip", "dport",
               str(9400 + i), "0xffff", "flowid", f"3:{100 + i}")
        got_l = flows([(h3, h4, a4, 9400 + i, "2Mbit") for i in range(n)], secs)
        dev_l = [abs(r / 1e6 - 1.0) for r, _ in got_l]
        rows.append((f"(e) {n} policed slices at 1 Mbit/s, each sending 2 Mbit/s: within 5% / worst deviation "
                     "(Linux: htb per flow; no tc police in this kernel)",
                     f"{sum(d <= 0.05 for d in dev_ours)}/{n}, {max(dev_ours) * 100:.1f}%",
                     f"{sum(d <= 0.05 for d in dev_l)}/{n}, {max(dev_l) * 100:.1f}%", f"{n}/{n} within 5%"))
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
        sh(BIN, "testbed", "down", TB, check=False)
        subprocess.run(["rm", "-rf", STATE])
    print("| measurement | netslice | Linux tc (same namespaces, same run) | target |")
    print("| --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    sys.exit(main())
