"""A STAMP session-sender (RFC 8762, unauthenticated) built on scapy's
independent implementation of the packet formats (scapy.contrib.stamp).

Runs in a sliver: sends COUNT test packets to REFLECTOR:862 at 100 a second,
reads the replies, checks every field a reflector must fill, and prints a
JSON summary. Usage: scapy_sender.py REFLECTOR COUNT SSID
"""
import json
import socket
import sys
import time

from scapy.contrib.stamp import (
    ErrorEstimate,
    STAMPSessionReflectorTestUnauthenticated as Reflected,
    STAMPSessionSenderTestUnauthenticated as Test,
)

NTP_EPOCH = 2208988800


def main():
    peer, count, ssid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    sent = {}
    replies = []
    problems = []

    def read_replies(until):
        """Reads replies until `until` (time.time()), stamping each as it comes."""
        while True:
            left = until - time.time()
            if left <= 0:
                return
            s.settimeout(left)
            try:
                data, addr = s.recvfrom(2048)
            except socket.timeout:
                return
            arrived = time.time() + NTP_EPOCH
            if addr != (peer, 862):
                problems.append(f"a reply from {addr}")
                continue
            r = Reflected(data)
            replies.append((r, arrived))

    for i in range(count):
        ts = time.time() + NTP_EPOCH
        t = Test(seq=i, ts=ts, err_estimate=ErrorEstimate(S=0, Z=0, scale=12, multiplier=9), ssid=ssid)
        sent[i] = t.ts
        s.sendto(bytes(t), (peer, 862))
        read_replies(time.time() + 0.01)
    read_replies(time.time() + 2)

    reflector_seqs = []
    for r, arrived in replies:
        if r.seq_sender not in sent:
            problems.append(f"seq_sender {r.seq_sender} was never sent")
            continue
        if r.ts_sender != sent[r.seq_sender]:
            problems.append(f"seq {r.seq_sender}: ts_sender {r.ts_sender} != {sent[r.seq_sender]}")
        if r.ssid != ssid:
            problems.append(f"seq {r.seq_sender}: ssid {r.ssid}")
        if r.err_estimate_sender.scale != 12 or r.err_estimate_sender.multiplier != 9:
            problems.append(f"seq {r.seq_sender}: the sender's error estimate came back changed")
        if r.err_estimate.multiplier == 0:
            problems.append(f"seq {r.seq_sender}: reflector error estimate multiplier 0")
        if r.ttl_sender != 64:
            problems.append(f"seq {r.seq_sender}: ttl_sender {r.ttl_sender}, sent with 64")
        if not (r.ts_sender <= r.ts_rx <= r.ts <= arrived + 1):
            problems.append(f"seq {r.seq_sender}: timestamps out of order {r.ts_sender} {r.ts_rx} {r.ts} {arrived}")
        reflector_seqs.append(r.seq)
    print(json.dumps({
        "sent": count,
        "received": len(replies),
        "reflector_seqs_in_order": reflector_seqs == sorted(reflector_seqs),
        "reflector_seqs": sorted(reflector_seqs) == list(range(len(reflector_seqs))),
        "rtt_ms": sorted(float(a - r.ts_sender) * 1e3 for r, a in replies)[len(replies) // 2] if replies else None,
        "problems": problems[:20],
    }))


main()
