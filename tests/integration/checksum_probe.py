"""Run inside a network namespace: capture UDP packets from a source address
on an interface (AF_PACKET) and check their IP and UDP checksums as a
receiver on a real wire would. Prints JSON: {"udp": n, "ip_bad": n, "udp_bad": n}.
  python3 checksum_probe.py IFACE SRC_ADDR COUNT TIMEOUT"""

import ipaddress
import json
import socket
import struct
import sys
import time


def fold(total):
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def ones(data):
    if len(data) % 2:
        data += b"\0"
    return fold(sum(struct.unpack("!%dH" % (len(data) // 2), data)))


def main():
    iface, src, count, timeout = sys.argv[1], ipaddress.ip_address(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
    s.bind((iface, 0))
    s.settimeout(0.2)
    out = {"udp": 0, "ip_bad": 0, "udp_bad": 0}
    end = time.monotonic() + timeout
    while out["udp"] < count and time.monotonic() < end:
        try:
            frame, meta = s.recvfrom(65535)
        except socket.timeout:
            continue
        if meta[2] == socket.PACKET_OUTGOING:
            continue
        ethertype = struct.unpack("!H", frame[12:14])[0]
        if ethertype == 0x0800 and src.version == 4:
            ip = frame[14:]
            ihl = (ip[0] & 15) * 4
            if ip[9] != 17 or ipaddress.ip_address(ip[12:16]) != src:
                continue
            total = struct.unpack("!H", ip[2:4])[0]
            udp = ip[ihl:total]
            out["ip_bad"] += ones(ip[:ihl]) != 0xFFFF
            if struct.unpack("!H", udp[6:8])[0]:
                pseudo = ip[12:20] + struct.pack("!BBH", 0, 17, len(udp))
                out["udp_bad"] += ones(pseudo + udp) != 0xFFFF
        elif ethertype == 0x86DD and src.version == 6:
            ip = frame[14:]
            if ip[6] != 17 or ipaddress.ip_address(ip[8:24]) != src:
                continue
            udp = ip[40:40 + struct.unpack("!H", ip[4:6])[0]]
            pseudo = ip[8:40] + struct.pack("!IxxxB", len(udp), 17)
            out["udp_bad"] += ones(pseudo + udp) != 0xFFFF
        else:
            continue
        out["udp"] += 1
    print(json.dumps(out))


if __name__ == "__main__":
    main()
