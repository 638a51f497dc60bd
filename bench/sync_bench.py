#!/usr/bin/env python3
"""Cluster benchmark (not a test): sync propagation latency, resync time of a
restarted instance, and the media gap and loss per leg when the instance that
carries 20 calls dies (network namespaces, root).

    python3 bench/sync_bench.py [--sessions N] [--skip-failover]
"""

import argparse
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from anycast_bed import ANYCAST, Bed, can_run  # noqa: E402
from harness import BINARY, Daemon, free_port, wait_until  # noqa: E402

HOSTS = ["127.0.0.2", "127.0.0.3"]


def pair(args=()):
    sync = free_port(socket.SOCK_STREAM)
    nodes = []
    for i, h in enumerate(HOSTS):
        other = HOSTS[1 - i]
        nodes.append(Daemon("-S", str(sync), "-I", h, "-M", "%s:%d" % (other, sync), "-T", "600", *args, host=h, media=h,
                            ports=[(20000, 45999), (46000, 64999)][i], level="notice", start=False))
    for n in nodes:
        n.start()
    wait_until(lambda: all("sync: connected" in n.logtext() for n in nodes), 5, "the pair to connect")
    return sync, nodes


def propagation(samples=300):
    """U on one instance -> the change line on the other's sync port."""
    sync, (a, b) = pair()
    try:
        watch = socket.create_connection((HOSTS[1], sync))
        buf = b""
        while b"# end of listing" not in buf:
            buf += watch.recv(65536)
        buf = b""
        lat = []
        for i in range(samples):
            t0 = time.perf_counter()
            a.cmd("U prop%d 192.0.2.1 4000 A;1" % i)
            marker = ("S call-id=prop%d " % i).encode()
            while marker not in buf:
                buf += watch.recv(65536)
            lat.append((time.perf_counter() - t0) * 1e6)
            buf = buf[buf.index(marker) + len(marker):]
        watch.close()
        lat.sort()
        return lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    finally:
        a.stop()
        b.stop()


def resync(sessions):
    """Fill the table through A (answered calls), SIGKILL B, restart it, and time
    until B holds and has bound every session again."""
    sync, (a, b) = pair()
    try:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(5)
        for start in range(0, sessions, 200):
            batch = range(start, min(sessions, start + 200))
            for i in batch:
                s.sendto(("r%d U rs%d 192.0.2.1 4000 A;1" % (i, i)).encode(), a.control)
            for _ in batch:
                s.recv(200)
            for i in batch:  # answered: both legs, four sockets per session on every instance
                s.sendto(("l%d L rs%d 192.0.2.2 5000 A;1 B;1" % (i, i)).encode(), a.control)
            for _ in batch:
                s.recv(200)
        wait_until(lambda: b.cmd("I").split("\n")[1] == "active sessions: %d" % sessions, 60, "B to hold the table")
        b.kill()
        t0 = time.perf_counter()
        b.start()
        wait_until(lambda: b.cmd("I").split("\n")[1] == "active sessions: %d" % sessions, 120, "B to resync")
        took = time.perf_counter() - t0
        return took
    finally:
        a.stop()
        b.stop()


def failover(calls=20, args=(), route_first=False):
    bed = Bed(BINARY, extra_args=list(args))
    try:
        for i in (1, 2, 3):
            bed.start(i)
        rt, a, b = bed.agent("RT"), bed.agent("A"), bed.agent("B")
        ctl = lambda i, t: rt(op="cmd", to=["10.250.1.%d" % i, 22222], text=t)["reply"]  # noqa: E731
        wait_until(lambda: all(ctl(i, "V") == "20040107" for i in (1, 2, 3)), 10, "three instances")
        a(op="open", calls=[[c, "10.250.10.1", 30000 + 2 * c] for c in range(calls)])
        b(op="open", calls=[[c, "10.250.20.1", 31000 + 2 * c] for c in range(calls)])
        to_callee, to_caller = {}, {}
        for c in range(calls):
            to_callee[c] = int(ctl(1, "U f%d 10.250.10.1 %d A;1" % (c, 30000 + 2 * c)).split()[0])
            to_caller[c] = int(ctl(1, "L f%d 10.250.20.1 %d A;1 B;1" % (c, 31000 + 2 * c)).split()[0])
        wait_until(lambda: ctl(2, "I").split("\n")[1] == "active sessions: %d" % calls, 5, "the calls on R2")
        a(op="stream", targets={c: [ANYCAST, to_caller[c]] for c in range(calls)}, pps=50, ssrc=1000)
        b(op="stream", targets={c: [ANYCAST, to_callee[c]] for c in range(calls)}, pps=50, ssrc=2000)
        time.sleep(2)
        t = rt(op="cmd", to=["10.250.1.2", 22222], text="V")["now"]
        if route_first:  # the route moves to R2 while R1 still runs (maintenance, a BGP change)
            bed.route_to(2)
            bed.kill(1)
        else:
            bed.kill(1)
            bed.route_to(2)
        time.sleep(3)
        sa = a(op="stats", since=t - 1)["stats"]  # what the caller got: the callee -> caller leg
        sb = b(op="stats", since=t - 1)["stats"]
        return ([sb[str(c)]["max_gap_ms"] for c in range(calls)], [sb[str(c)]["lost"] for c in range(calls)],
                [sa[str(c)]["max_gap_ms"] for c in range(calls)], [sa[str(c)]["lost"] for c in range(calls)])
    finally:
        bed.destroy()


def main():
    ap = argparse.ArgumentParser()
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    ap.add_argument("--sessions", type=int, default=min(4800, (hard - 200) // 4))
    ap.add_argument("--skip-failover", action="store_true")
    args = ap.parse_args()
    rows = []
    p50, p99 = propagation()
    rows.append(("sync propagation, U on A -> change line on B (loopback), p50 / p99", "%.0f / %.0f us" % (p50, p99)))
    took = resync(args.sessions)
    rows.append(("resync of a restarted instance, %d sessions (file limit %d)" % (args.sessions, hard), "%.2f s" % took))
    if not args.skip_failover:
        why = can_run()
        if why:
            rows.append(("failover", "skipped: " + why))
        else:
            for name, args, first in (
                    ("kernel fast path", [], False),
                    ("userspace, catch-all adoption", ["--kernel-offload=off"], False),
                    ("userspace, every leg bound", ["--kernel-offload=off", "--catch-all=off"], False),
                    ("userspace, catch-all adoption, route moved before the kill", ["--kernel-offload=off"], True)):
                gap_ab, lost_ab, gap_ba, lost_ba = failover(args=args, route_first=first)
                rows.append(("failover (%s), caller -> callee: largest gap p50 / max, lost p50 / max (20 calls, 50 pps)" % name,
                             "%.0f / %.0f ms, %d / %d" % (statistics.median(gap_ab), max(gap_ab), statistics.median(lost_ab), max(lost_ab))))
                rows.append(("failover (%s), callee -> caller" % name,
                             "%.0f / %.0f ms, %d / %d" % (statistics.median(gap_ba), max(gap_ba), statistics.median(lost_ba), max(lost_ba))))
    print("| measure | result |")
    print("|---|---|")
    for k, v in rows:
        print("| %s | %s |" % (k, v))


if __name__ == "__main__":
    main()
