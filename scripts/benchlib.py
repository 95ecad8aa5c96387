"""What the benchmark scripts share: one UDP run through netslice's own tools,
and the search for the highest rate that arrives (almost) whole.

Each script keeps its own namespaces, binary and state; these functions take
them as arguments, so they hold no globals of their own.
"""

import json
import subprocess
import time


def tool_cmd(binary, ns, *args):
    """`netslice tool ARGS` inside network namespace `ns`."""
    return ["ip", "netns", "exec", ns, binary, "tool", *args]


def udp_run(binary, src, dst, addr, frame, secs, rate=None, env=None, on_send=None):
    """Sends `frame`-byte Ethernet frames (UDP payload `frame - 42`) for `secs`
    seconds from namespace `src` to `addr`:9999, where a sink in namespace
    `dst` counts them; `rate` paces the sender (bit/s of frames), else it
    sends as fast as it can. `on_send` is called right before the sender
    starts. -> (the sender's report, the sink's report), as the tools print
    them with --json."""
    sink = subprocess.Popen(
        tool_cmd(binary, dst, "udp-sink", "--listen", "0.0.0.0:9999", "--seconds", str(secs + 2), "--json"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(0.5)
        args = ["udp-send", f"{addr}:9999", "--size", str(frame - 42), "--seconds", str(secs), "--json"]
        if rate:
            args += ["--rate", f"{int(rate)}bit"]
        if on_send:
            on_send()
        sent = json.loads(subprocess.run(tool_cmd(binary, src, *args), check=True, capture_output=True,
                                         text=True, env=env).stdout)
        got = json.loads(sink.communicate(timeout=60)[0])
    finally:
        if sink.poll() is None:
            sink.kill()
            sink.wait()
    return sent, got


def received_pps(sent, got):
    """Datagrams received per second of sending."""
    return got["packets"] / max(sent["seconds"], 1e-9) if sent["packets"] else 0.0


def delivered(sent, got):
    """The fraction of the sent datagrams that arrived."""
    return got["packets"] / max(sent["packets"], 1)


def best_paced(measure, start_pps, down, up, tries_down, tries_up, enough=0.99):
    """The highest received rate with at least `enough` of the frames
    arriving. `measure(pps)` runs at `pps` and returns (received pps, fraction
    delivered). Starts at `start_pps`, multiplies by `down` (< 1) until a rate
    passes (at most `tries_down` runs), then by `up` (> 1) until one fails (at
    most `tries_up` runs). 0.0 when no rate passed."""
    best, pps = 0.0, start_pps
    for _ in range(tries_down):
        got, frac = measure(pps)
        if frac >= enough:
            best = got
            break
        pps *= down
    if not best:
        return 0.0
    for _ in range(tries_up):
        pps *= up
        got, frac = measure(pps)
        if frac < enough:
            break
        best = max(best, got)
    return best
