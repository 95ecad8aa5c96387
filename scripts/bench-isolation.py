#!/usr/bin/env python3
"""Isolation benchmark: what a slice's dedicated CPUs (`qos.cpus`) keep for it
when another slice floods the same hosts.

    sudo scripts/bench.sh --isolation [--seconds 10] [--link gre|vxlan]

Two slices on the example testbed, each with sliver a on h1 and sliver b on h2
joined by one `gre` (or `--link vxlan`) link through the transit host t1 (1 Gbit/s guaranteed, 10
Gbit/s ceiling): the victim `vic` and the aggressor `agg`. The aggressor's
sliver a sends 64-byte UDP datagrams unpaced to its sliver b: a load on the
CPUs (sender, receiver, three agents), not on bandwidth (it stays far below
its guarantee), so the schedulers cannot help and only CPU placement can.
Measured for the victim, alone and during the flood: TCP (iperf3, 1 stream)
and the round-trip time of 200 pings 10 ms apart. Twice: with every thread
and process on both CPUs (no `qos.cpus`), then with `qos.cpus: [1]` on the
victim, which puts its slivers' processes, its port readers and its workers on
CPU 1 and everything else (the aggressor's processes, the shared substrate
receivers) on CPU 0. Every process in a slice is started with `netslice slice
exec`, as a user would, so it runs in its sliver's cgroups. Prints a Markdown
table for docs/benchmarks.md, and what `node list` reports afterwards.
"""

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time

_spec = importlib.util.spec_from_file_location(
    "bench_dataplane", os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-dataplane.py"))
bd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bd)



def in_slice(slice_, node, *cmd):
    """`cmd` in a sliver through `slice exec`, so that it runs in the sliver's
    cgroups (a dedicated slice's CPUs, the others' CPUs) as a user's would."""
    return [bd.BIN, "slice", "exec", slice_, node, "--", *cmd]


def tool(slice_, node, *args):
    return in_slice(slice_, node, bd.BIN, "tool", *args)


LINK = "gre"  # set by --link


def spec(name, cpus):
    qos = f"qos: {{cpus: {cpus}}}\n" if cpus else ""
    path = os.path.join(bd.STATE, f"{name}.yaml")
    with open(path, "w") as f:
        f.write(f"name: {name}\n{qos}nodes:\n  - {{name: a, host: h1}}\n  - {{name: b, host: h2}}\n"
                f"links:\n  - name: ab\n    type: {LINK}\n    bandwidth: 1Gbit\n    ceiling: 10Gbit\n"
                "    endpoints:\n      - {node: a, address: 10.0.0.1/24}\n      - {node: b, address: 10.0.0.2/24}\n")
    return path


def ping():
    """-> (p50, p99, max) RTT in ms of 200 pings 10 ms apart from vic.a to vic.b."""
    out = subprocess.run(tool("vic", "a", "ping", "10.0.0.2", "-c", "200", "-i", "0.01", "--json"),
                         capture_output=True, text=True, env=bd.ENV).stdout
    r = json.loads(out or "{}")
    return r.get("rtt_p50_ms") or 0.0, r.get("rtt_p99_ms") or 0.0, r.get("rtt_max_ms") or 0.0, r.get("received", 0)


def flood(secs):
    """Starts the aggressor's unpaced 64-byte flood (sink and sender) for `secs`."""
    sink = subprocess.Popen(tool("agg", "b", "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", str(secs + 1),
                                    "--json"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=bd.ENV)
    time.sleep(0.3)
    send = subprocess.Popen(tool("agg", "a", "udp-send", "10.0.0.2:9999", "--size", "22", "--seconds", str(secs),
                                    "--json"), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=bd.ENV)
    time.sleep(1)
    return sink, send


def flood_rate(sink, send):
    send.communicate(timeout=120)
    out, _ = sink.communicate(timeout=120)
    r = json.loads(out or "{}")
    return r.get("pps", 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--link", choices=["gre", "vxlan"], default="gre", help="the slices' link type")
    args = ap.parse_args()
    global LINK
    LINK = args.link
    secs = args.seconds
    rows = []
    try:
        for label, cpus in [("shared CPUs (no qos.cpus)", None), ("victim with qos.cpus: [1]", "[1]")]:
            print(f"measuring {label} ...", file=sys.stderr)
            subprocess.run([bd.BIN, "testbed", "up", os.path.join(bd.ROOT, "examples", "substrate.yaml"), "--name",
                            bd.TB], check=True, env=bd.ENV, capture_output=True, text=True)
            bd.sh(bd.BIN, "slice", "apply", "-f", spec("vic", cpus))
            bd.sh(bd.BIN, "slice", "apply", "-f", spec("agg", None))
            pidfile = os.path.join(bd.STATE, f"iperf-{len(rows)}.pid")
            subprocess.run(in_slice("vic", "b", "iperf3", "-s", "-D", "-p", "5301", "--pidfile", pidfile), check=True,
                           env=bd.ENV)
            time.sleep(1)
            iperf = int(open(pidfile).read().strip("\x00\n "))
            bd.PIDS.append(iperf)
            alone_tcp = bd.tcp("10.0.0.2", 1, secs, via=in_slice("vic", "a"))
            alone_rtt = ping()
            sink, send = flood(secs + 4)
            loaded_tcp = bd.tcp("10.0.0.2", 1, secs, via=in_slice("vic", "a"))
            loaded_rtt = ping()
            agg_pps = flood_rate(sink, send)
            time.sleep(2.5)  # the agents report every 2 s
            hosts = json.loads(bd.sh(bd.BIN, "node", "list", "--json").stdout)
            placed = [f"{h['name']}: {h.get('forwarding') or '-'}" for h in hosts]
            rows.append((label, alone_tcp, loaded_tcp, alone_rtt, loaded_rtt, agg_pps, placed))
            os.kill(iperf, signal.SIGTERM)
            bd.PIDS.remove(iperf)
            bd.sh(bd.BIN, "testbed", "down", bd.TB)
        print(f"{secs} s per TCP run, {LINK} links; the aggressor floods unpaced 64-byte UDP\n")
        print("| victim's CPUs | victim TCP alone | victim TCP during the flood | victim RTT alone (p50 / p99 / max)"
              " | victim RTT during the flood (p50 / p99 / max) | aggressor delivered |")
        print("| --- | --- | --- | --- | --- | --- |")
        for (label, t0, t1, r0, r1, agg, _) in rows:
            keep = f" ({t1 / t0:.2f} x alone)" if t0 else ""
            print(f"| {label} | {t0:.2f} Gbit/s | {t1:.2f} Gbit/s{keep} | {r0[0]:.3f} / {r0[1]:.3f} / {r0[2]:.3f} ms"
                  f" | {r1[0]:.3f} / {r1[1]:.3f} / {r1[2]:.3f} ms | {agg / 1e6:.3f} Mpps |")
        for (label, *_, placed) in rows:
            print(f"\n{label}: node list forwarding after the runs:", file=sys.stderr)
            for p in placed:
                print(f"  {p}", file=sys.stderr)
    finally:
        bd.cleanup()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, veths, XDP): run it with sudo")
    main()
