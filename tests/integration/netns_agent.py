"""A test agent that runs inside a network namespace (ip netns exec NS python3
netns_agent.py) and takes JSON commands, one per line, on stdin:

  {"op": "cmd", "to": [host, port], "text": "U ..."}      -> {"reply": "..."}
  {"op": "open", "calls": [[id, local_host, local_port], ...]}
  {"op": "stream", "targets": {id: [host, port]}, "pps": 50, "ssrc": base, "replace": false}
  {"op": "inject", "call": id, "to": [host, port], "count": n, "ssrc": s}   (a third source)
  {"op": "stats", "since": t}                              -> per call: packets, sources, max gap, lost,
                                                              first and last seq, payloads' first bytes
  {"op": "quit"}

Sender and receiver run in threads; every loop is bounded by the test's quit."""

import json
import random
import select
import socket
import struct
import sys
import threading
import time

lock = threading.Lock()
socks = {}        # call id -> socket
targets = {}      # call id -> (host, port)
received = {}     # call id -> list of (arrival, seq, ssrc, source)
running = True
pps = 50
ssrc_base = 0


def sender():
    seq = 0
    next_at = time.monotonic()
    while running:
        with lock:
            items = list(targets.items())
        for cid, dest in items:
            pkt = struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc_base + int(cid)) + b"\xd5" * 160
            try:
                socks[cid].sendto(pkt, tuple(dest))
            except OSError:
                pass
        seq += 1
        next_at += 1.0 / pps
        time.sleep(max(0, next_at - time.monotonic()))


def receiver():
    while running:
        with lock:
            fds = {s.fileno(): cid for cid, s in socks.items()}
        if not fds:
            time.sleep(0.05)
            continue
        r, _, _ = select.select(list(fds), [], [], 0.05)
        now = time.monotonic()
        for fd in r:
            cid = fds[fd]
            try:
                data, src = socks[cid].recvfrom(2048)
            except OSError:
                continue
            if len(data) >= 12:
                seq, ssrc = struct.unpack("!H", data[2:4])[0], struct.unpack("!I", data[8:12])[0]
                first = data[12] if len(data) > 12 else -1  # the payload's first byte: which prompt frame
                with lock:
                    received.setdefault(cid, []).append((now, seq, ssrc, ("[%s]:%d" if ":" in src[0] else "%s:%d") % src[:2],
                                                         first))


def family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def stats(since):
    out = {}
    with lock:
        for cid in socks:
            rx = [r for r in received.get(cid, []) if r[0] >= since]
            times = [r[0] for r in rx]
            gaps = [b - a for a, b in zip(times, times[1:])]
            seqs = sorted(set(r[1] for r in rx))
            lost = (seqs[-1] - seqs[0] + 1 - len(seqs)) if seqs else 0
            out[cid] = {"packets": len(rx), "max_gap_ms": round(1000 * max(gaps), 1) if gaps else None,
                        "lost": lost, "ssrcs": sorted(set(r[2] for r in rx)), "sources": sorted(set(r[3] for r in rx)),
                        "last": times[-1] if times else None,
                        "first_seq": rx[0][1] if rx else None, "last_seq": rx[-1][1] if rx else None,
                        "first_bytes": sorted(set(r[4] for r in rx))}
    return out


def main():
    global running, pps, ssrc_base
    threads = [threading.Thread(target=sender, daemon=True), threading.Thread(target=receiver, daemon=True)]
    for t in threads:
        t.start()
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for line in sys.stdin:
        req = json.loads(line)
        op = req["op"]
        reply = {"ok": True, "now": time.monotonic()}
        if op == "cmd":
            cookie = "%08x" % random.getrandbits(32)
            ctl.settimeout(2)
            ctl.sendto(("%s %s" % (cookie, req["text"])).encode(), tuple(req["to"]))
            try:
                while True:
                    data = ctl.recv(4096).decode()
                    if data.startswith(cookie + " "):
                        reply["reply"] = data[len(cookie) + 1:].rstrip("\n")
                        break
            except socket.timeout:
                reply["reply"] = None
        elif op == "open":
            with lock:
                for cid, host, port in req["calls"]:
                    s = socket.socket(family(host), socket.SOCK_DGRAM)
                    s.bind((host, port))
                    socks[str(cid)] = s
        elif op == "stream":
            pps = req.get("pps", 50)
            ssrc_base = req.get("ssrc", 0)
            with lock:
                if req.get("replace"):
                    targets.clear()
                targets.update({str(k): v for k, v in req["targets"].items()})
        elif op == "inject":
            s = socket.socket(family(req["to"][0]), socket.SOCK_DGRAM)
            for i in range(req["count"]):
                s.sendto(struct.pack("!BBHII", 0x80, 8, 40000 + i, 0, req["ssrc"]) + b"\x00" * 160, tuple(req["to"]))
                time.sleep(0.002)
            s.close()
        elif op == "stats":
            reply["stats"] = stats(req.get("since", 0))
        elif op == "quit":
            running = False
            print(json.dumps(reply), flush=True)
            break
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
