#!/usr/bin/env python3
"""Monitoring benchmark: what measurement jobs cost the data plane end to end.

    sudo scripts/bench.sh --monitoring [--seconds 5] [--rounds 3]

One slice on the example testbed, sliver a on h1 and sliver b on h2 joined
by one gre link through the transit host t1 (1 Gbit/s guaranteed, 10 Gbit/s
ceiling). Sliver a sends 1372-byte UDP datagrams unpaced for `--seconds`;
sliver b counts what arrives (frames per second). Five cases, in the same
run, each `--rounds` times (the median is shown): no job; a counting job at
t1; a counting job with a tcpdump filter at t1; a capture job at t1 (the
same filter, 128 bytes a frame, a 256 MiB cap); a STAMP probe from a to b
(1000 test packets a second, reflected by h2's agent) inside the same link.
The jobs' windows cover the whole send. Prints a Markdown table for
docs/benchmarks.md, with the rate as a ratio of the no-job rate, what the
capture held and what the probe measured under the flood.
"""

import argparse
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import time

_spec = importlib.util.spec_from_file_location(
    "bench_dataplane", os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench-dataplane.py"))
bd = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bd)

FILTER = "udp and dst port 9999"


def tool(node, *args):
    return [bd.BIN, "slice", "exec", "mon", node, "--", bd.BIN, "tool", *args]


def spec():
    path = os.path.join(bd.STATE, "mon.yaml")
    with open(path, "w") as f:
        f.write("name: mon\nnodes:\n  - {name: a, host: h1}\n  - {name: b, host: h2}\n"
                "links:\n  - name: ab\n    type: gre\n    bandwidth: 1Gbit\n    ceiling: 10Gbit\n"
                "    endpoints:\n      - {node: a, address: 10.0.0.1/24}\n      - {node: b, address: 10.0.0.2/24}\n")
    return path


def job(secs, *extra):
    point = [] if "--point" in extra else ["--point", "ab/t1"]
    out = bd.sh(bd.BIN, "measure", "create", "--slice", "mon", *point, "--duration", f"{secs + 4}s",
                "-o", "json", *extra).stdout
    return json.loads(out)["id"]


def flood(secs):
    sink = subprocess.Popen(tool("b", "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", str(secs + 2), "--json"),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=bd.ENV)
    time.sleep(0.5)
    send = subprocess.run(tool("a", "udp-send", "10.0.0.2:9999", "--size", "1330", "--seconds", str(secs), "--json"),
                          capture_output=True, text=True, env=bd.ENV)
    out, _ = sink.communicate(timeout=120)
    sent = json.loads(send.stdout or "{}")
    got = json.loads(out or "{}")
    return got.get("pps", 0.0), sent.get("pps", 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    secs = args.seconds
    cases = [
        ("no job", []),
        ("counting job at t1", []),
        (f"counting job at t1, filter `{FILTER}`", ["--filter", FILTER]),
        ("capture job at t1, same filter, 128 B a frame, 256 MiB cap",
         ["--filter", FILTER, "--capture", "--snaplen", "128", "--capture-bytes", "256Mi"]),
        ("STAMP probe a -> b, 1000 a second, in the same link",
         ["--point", "ab@a", "--point", "ab@b", "--probe", "--rate", "1000"]),
    ]
    rates = {c: [] for c, _ in cases}
    held = []
    probes = []
    try:
        subprocess.run([bd.BIN, "testbed", "up", os.path.join(bd.ROOT, "examples", "substrate.yaml"), "--name", bd.TB],
                       check=True, env=bd.ENV, capture_output=True, text=True)
        bd.sh(bd.BIN, "slice", "apply", "-f", spec())
        subprocess.run(tool("a", "ping", "10.0.0.2", "-c", "2"), env=bd.ENV, capture_output=True, check=True)
        for r in range(args.rounds):
            for label, extra in cases:
                print(f"round {r + 1}: {label} ...", file=sys.stderr)
                jid = None if label == "no job" else job(secs, *extra)
                time.sleep(1.5)  # the job's config reaches the agents
                got, _sent = flood(secs)
                rates[label].append(got)
                if jid is not None:
                    info = json.loads(bd.sh(bd.BIN, "measure", "results", str(jid), "--wait", "-o", "json").stdout)
                    if "--capture" in extra:
                        p = info["points"][0]
                        held.append((info.get("capture_bytes", 0), p["captured"], p["capture_full"]))
                    if "--probe" in extra:
                        probes.append(info["stamp"])
                    bd.sh(bd.BIN, "measure", "delete", str(jid))
        base = statistics.median(rates["no job"])
        print(f"{secs} s of unpaced 1372-byte frames per run, gre, a on h1 -> t1 -> b on h2; median of {args.rounds}\n")
        print("| case | delivered (median) | ratio to no job | rounds |")
        print("| --- | --- | --- | --- |")
        for label, _ in cases:
            m = statistics.median(rates[label])
            each = ", ".join(f"{r / 1e3:.1f}" for r in rates[label])
            print(f"| {label} | {m / 1e3:.1f} kpps | {m / base:.2f}x | {each} |")
        for b, n, full in held:
            print(f"\ncapture: {b / 2**20:.1f} MiB held, {n} frames kept, {full} left out "
                  f"({b / max(n, 1):.0f} bytes a frame)")
        for st in probes:
            rt = st.get("round_trip") or {}
            print(f"\nprobe: {st['received']} of {st['sent']} back ({st['lost_forward']} lost out, "
                  f"{st['lost_reverse']} back); round trip min {rt.get('min_ms', float('nan')):.3f}, "
                  f"median {rt.get('median_ms', float('nan')):.3f}, p99 {rt.get('p99_ms', float('nan')):.3f} ms")
    finally:
        bd.cleanup()


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if os.geteuid() != 0:
        sys.exit("needs root (namespaces, veths, XDP): run it with sudo")
    main()
