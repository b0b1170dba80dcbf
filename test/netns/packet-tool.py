#!/usr/bin/python3
"""Send crafted frames between network namespaces and report whether they arrived.

Reads one JSON request per line on stdin and answers one JSON line on stdout:
  {"src_ns", "dst_ns", "src_mac", "dst_mac", "src_ip", "dst_ip", "proto",
   "sport", "dport", "icmp_type", "icmp_code", "tcp_flags", "ip_id"}
  -> {"delivered": true|false}
The frame is built with scapy (Debian python3-scapy) and sent on eth0 of src_ns
with an AF_PACKET socket (so a spoofed source IP or MAC goes out as given); a
packet socket on eth0 of dst_ns waits up to 300 ms for a frame with the same
IP id and addresses. Used by test/netns/trace-kernel.test.ts.
"""
import ctypes
import json
import os
import socket
import sys
import time

from scapy.all import ICMP, IP, TCP, UDP, Ether, Raw  # noqa: E402
from scapy.layers.inet6 import IPv6, ICMPv6Unknown  # noqa: E402

CLONE_NEWNET = 0x40000000
ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4
libc = ctypes.CDLL("libc.so.6", use_errno=True)


def setns(name):
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {name}")
    finally:
        os.close(fd)


def packet_socket():
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.bind(("eth0", 0))
    return s


def frame(r):
    proto = r["proto"]
    if ":" in r["src_ip"]:
        # IPv6: the flow label identifies the probe.
        ip6 = IPv6(src=r["src_ip"], dst=r["dst_ip"], fl=r["ip_id"] & 0xFFFFF, hlim=255)
        if proto == 6:
            l4 = TCP(sport=r["sport"], dport=r["dport"], flags=r.get("tcp_flags", "S"), seq=1000)
        elif proto == 17:
            l4 = UDP(sport=r["sport"], dport=r["dport"])
        elif proto == 58:
            l4 = ICMPv6Unknown(type=r["icmp_type"], code=r["icmp_code"])
        else:
            ip6.nh = proto
            l4 = Raw()
        return bytes(Ether(src=r["src_mac"], dst=r["dst_mac"]) / ip6 / l4 / Raw(b"sgwall-probe"))
    ip = IP(src=r["src_ip"], dst=r["dst_ip"], id=r["ip_id"], ttl=64)
    if proto == 6:
        l4 = TCP(sport=r["sport"], dport=r["dport"], flags=r.get("tcp_flags", "S"), seq=1000)
    elif proto == 17:
        l4 = UDP(sport=r["sport"], dport=r["dport"])
    elif proto == 1:
        l4 = ICMP(type=r["icmp_type"], code=r["icmp_code"], id=r["ip_id"], seq=1)
    else:
        ip.proto = proto
        l4 = Raw()
    return bytes(Ether(src=r["src_mac"], dst=r["dst_mac"]) / ip / l4 / Raw(b"sgwall-probe"))


def matches(data, r):
    if ":" in r["src_ip"]:
        if len(data) < 54 or data[12:14] != b"\x86\xdd":
            return False
        fl = int.from_bytes(data[15:18], "big") & 0xFFFFF
        return (
            fl == r["ip_id"] & 0xFFFFF
            and data[22:38] == socket.inet_pton(socket.AF_INET6, r["src_ip"])
            and data[38:54] == socket.inet_pton(socket.AF_INET6, r["dst_ip"])
        )
    if len(data) < 34 or data[12:14] != b"\x08\x00":
        return False
    ip_id = int.from_bytes(data[18:20], "big")
    return ip_id == r["ip_id"] and socket.inet_ntoa(data[26:30]) == r["src_ip"] and socket.inet_ntoa(data[30:34]) == r["dst_ip"]


def handle(r):
    setns(r["dst_ns"])
    rx = packet_socket()
    rx.setblocking(False)
    setns(r["src_ns"])
    tx = packet_socket()
    try:
        tx.send(frame(r))
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            try:
                data, addr = rx.recvfrom(65535)
            except BlockingIOError:
                time.sleep(0.005)
                continue
            if addr[2] != PACKET_OUTGOING and matches(data, r):
                return True
        return False
    finally:
        rx.close()
        tx.close()


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    try:
        out = {"delivered": handle(json.loads(line))}
    except Exception as e:  # report, keep serving
        out = {"error": f"{type(e).__name__}: {e}"}
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()
