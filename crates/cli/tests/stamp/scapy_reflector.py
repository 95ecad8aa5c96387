"""A STAMP session-reflector (RFC 8762, unauthenticated, stateful) built on
scapy's independent implementation of the packet formats (scapy.contrib.stamp).

Runs in a sliver: answers test packets on UDP 862 until it has answered
`count` or `seconds` pass, then prints a JSON summary of what it saw.
Usage: scapy_reflector.py SECONDS
"""
import json
import socket
import struct
import sys
import time

from scapy.contrib.stamp import (
    ErrorEstimate,
    STAMPSessionReflectorTestUnauthenticated as Reflected,
    STAMPSessionSenderTestUnauthenticated as Test,
)

NTP_EPOCH = 2208988800


def ntp_now():
    """Now as scapy's NTP timestamp fields take it: seconds since 1900."""
    return time.time() + NTP_EPOCH


def main():
    seconds = float(sys.argv[1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    # IP_RECVTTL (12 on Linux; not in every Python build's socket module).
    s.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_RECVTTL", 12), 1)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 255)
    s.bind(("0.0.0.0", 862))
    s.settimeout(0.2)
    seqs = {}
    seen = {"answered": 0, "ssids": [], "ttls": [], "short": 0, "senders": []}
    end = time.time() + seconds
    while time.time() < end:
        try:
            data, anc, _, addr = s.recvmsg(2048, socket.CMSG_SPACE(4))
        except socket.timeout:
            continue
        rx = ntp_now()
        ttl = 0
        for level, kind, value in anc:
            if level == socket.IPPROTO_IP and kind == socket.IP_TTL:
                ttl = struct.unpack("i", value[:4])[0]
        if len(data) < 44:
            seen["short"] += 1
            continue
        t = Test(data)
        key = (addr[0], addr[1], t.ssid)
        seq = seqs.get(key, 0)
        seqs[key] = seq + 1
        reply = Reflected(
            seq=seq,
            err_estimate=ErrorEstimate(S=0, Z=0, scale=10, multiplier=7),
            ssid=t.ssid,
            ts_rx=rx,
            seq_sender=t.seq,
            ts_sender=t.ts,
            err_estimate_sender=t.err_estimate,
            ttl_sender=ttl,
        )
        reply.ts = ntp_now()
        s.sendto(bytes(reply), addr)
        seen["answered"] += 1
        if t.ssid not in seen["ssids"]:
            seen["ssids"].append(t.ssid)
        if ttl not in seen["ttls"]:
            seen["ttls"].append(ttl)
        if addr[0] not in seen["senders"]:
            seen["senders"].append(addr[0])
    print(json.dumps(seen))


main()
