#!/usr/bin/env python3
"""Scale benchmark: one vnode hosting many slivers.

    sudo scripts/bench.sh --scale [--slivers 200] [--changes 5] [--seconds 3] [--baseline BIN]

A host h1 (and a second host, h2, that stays idle) carries one slice of N
slowpath nodes, paired by N/2 links on h1 (every frame crosses h1's agent
from one sliver's TAP to another's). For each binary measured (the build
under test, and with --baseline an older build, in the same run):

- the time `slice apply` takes to bring up all N slivers;
- the agent's threads (every thread of its process) and resident memory;
- the reconcile time of a change that touches one sliver (an address of
  node n0 changes; the agent logs how long its apply took), the median of
  --changes changes, and how long `slice apply` waited for it;
- the forwarding rate between slivers n0 and n1 while the others are idle:
  1372-byte UDP frames, unpaced, received packets per second.

Prints a Markdown table for docs/benchmarks.md with the ratios.
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import benchlib  # noqa: E402

TB = "sc%d" % (os.getpid() % 100000)


def sh(binary, env, *args, check=True):
    return subprocess.run([binary, *args], check=check, env=env, capture_output=True, text=True)


def spec(path, n, changed=0):
    """A slice of `n` nodes on h1, paired by links; `changed` varies n0's address."""
    lines = ["name: scale", "nodes:"]
    lines += [f"  - {{name: n{i}, host: h1, cpu: 0.01, memory: 16Mi}}" for i in range(n)]
    lines.append("links:")
    for k in range(n // 2):
        a, b = 2 * k, 2 * k + 1
        first = f"10.{k // 250}.{k % 250}.{1 + (changed if k == 0 else 0) * 2}/24"
        lines.append(f"  - name: l{k}")
        lines.append("    bandwidth: 10Mbit")
        lines.append("    ceiling: 10Gbit")
        lines.append(f"    endpoints: [{{node: n{a}, address: {first}}}, "
                     f"{{node: n{b}, address: 10.{k // 250}.{k % 250}.2/24}}]")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def agent_pid(state):
    with open(os.path.join(state, TB, "daemons.json")) as f:
        return json.load(f)["agents"]["h1"]["pid"]


def threads_and_rss(pid):
    n = len(os.listdir(f"/proc/{pid}/task"))
    rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])  # kB
    return n, rss / 1024.0


def applied_times(state):
    """The agent's apply durations in ms, in log order."""
    log = open(os.path.join(state, TB, "agents", "h1.log")).read()
    out = []
    for m in re.finditer(r"applied revision \d+: .*? in ([0-9.]+)(ns|µs|us|ms|s)\b", log):
        v, unit = float(m.group(1)), m.group(2)
        out.append(v * {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1000.0}[unit])
    return out


def measure(binary, n, changes, secs):
    state = tempfile.mkdtemp(prefix="netslice-scale-")
    env = dict(os.environ, NETSLICE_STATE_ROOT=state, NETSLICE_TESTBED=TB)
    sub = os.path.join(state, "sub.yaml")
    with open(sub, "w") as f:
        f.write(f"name: {TB}\nhosts:\n"
                f"  - {{name: h1, role: vnode, cpu: 64, memory: 64Gi, slivers: {n + 10}}}\n"
                "  - {name: h2, role: vnode}\n"
                "links:\n  - {endpoints: [h1, h2], bandwidth: 10Gbit}\n")
    path = os.path.join(state, "scale.yaml")
    res = {}
    try:
        sh(binary, env, "testbed", "up", sub)
        spec(path, n)
        t = time.monotonic()
        sh(binary, env, "slice", "apply", "-f", path, "--wait", "900")
        res["up_s"] = time.monotonic() - t
        time.sleep(3)
        pid = agent_pid(state)
        res["threads"], res["rss_mib"] = threads_and_rss(pid)
        before = len(applied_times(state))
        waits = []
        for c in range(1, changes + 1):
            spec(path, n, changed=c % 2)
            t = time.monotonic()
            sh(binary, env, "slice", "apply", "-f", path)
            waits.append(time.monotonic() - t)
        time.sleep(1)
        times = applied_times(state)[before:]
        res["reconcile_ms"] = statistics.median(times) if times else float("nan")
        res["apply_wait_s"] = statistics.median(waits)
        spec(path, n)
        sh(binary, env, "slice", "apply", "-f", path)
        a, b = f"{TB}.scale.n0", f"{TB}.scale.n1"
        sent, got = benchlib.udp_run(binary, a, b, "10.0.0.2", 1372, secs, env=env)
        res["pps"] = benchlib.received_pps(sent, got)
    finally:
        sh(binary, env, "testbed", "down", TB, check=False)
        shutil.rmtree(state, ignore_errors=True)
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--slivers", type=int, default=200)
    ap.add_argument("--changes", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--baseline", help="an older netslice binary, measured first in the same run")
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "netslice"))
    args = ap.parse_args()
    runs = []
    if args.baseline:
        runs.append(("baseline", args.baseline))
    runs.append(("this build", args.bin))
    rows = []
    for name, binary in runs:
        print(f"measuring {name} ({binary}) with {args.slivers} slivers ...", file=sys.stderr)
        rows.append((name, measure(binary, args.slivers, args.changes, args.seconds)))
    print(f"\n{args.slivers} slivers on one host ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}):\n")
    print("| build | slice up (s) | agent threads | agent RSS (MiB) | one-sliver change: agent apply (ms) | "
          "`slice apply` waits (s) | forwarding n0 -> n1 (kpps, 1372 B) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r in rows:
        print(f"| {name} | {r['up_s']:.1f} | {r['threads']} | {r['rss_mib']:.0f} | {r['reconcile_ms']:.1f} | "
              f"{r['apply_wait_s']:.2f} | {r['pps'] / 1000:.1f} |")
    if len(rows) == 2:
        (_, a), (_, b) = rows
        print(f"\nratios (this build / baseline): threads {b['threads'] / a['threads']:.2f}x, "
              f"RSS {b['rss_mib'] / a['rss_mib']:.2f}x, one-sliver apply {b['reconcile_ms'] / a['reconcile_ms']:.3f}x, "
              f"forwarding {b['pps'] / max(a['pps'], 1):.2f}x")


if __name__ == "__main__":
    main()
