#!/usr/bin/env python3
"""Cluster scale benchmark (not a test), on loopback, as root (the
catch-all path loads an eBPF sk_lookup program):

  - descriptors and RSS of the instance that created the calls (local) and of
    a peer that mirrors them, with --catch-all (parked legs) and without;
  - sync bytes one instance sends per call lifecycle (U, L, D) to 1, 2, 4 and
    7 peers (clusters of 2, 3, 5 and 8);
  - adoption time: the first packet of a parked leg (the catch-all path binds
    the session, then relays) against the next one (the leg's own socket);
  - the largest cluster this machine holds: three instances, two relay
    addresses each, under the machine's file limit of 20,000, filled until
    the first refusal.

    python3 bench/cluster_scale.py [--quick] [--largest-only]
"""

import argparse
import os
import re
import statistics
import sys
import time
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from harness import Cluster, Peer, control_port, rtp, wait_until  # noqa: E402
from test_mirrored_legs import batch, fds, info  # noqa: E402


def rss_kib(d):
    for line in open("/proc/%d/status" % d.proc.pid):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cluster(n, ranges, *args, media_of=lambda h: h, limit=None, metrics_on_first=False):
    """n instances on 127.0.0.2..; each syncs from every other (the tests' Cluster)."""
    first = "127.0.0.2"
    metrics = ["--metrics", "%s:%d" % (first, control_port(first, ranges) + 1)] if metrics_on_first else []
    group = Cluster("-T", "600", *args, n=n, ranges=ranges, level="notice", media_of=media_of, limit=limit,
                    args_of=lambda i: metrics if i == 0 else [], connect_within=10)
    if any("catch-all unavailable" in d.logtext() for d in group.nodes if "--catch-all=off" not in d.argv):
        group.stop()
        raise SystemExit("no catch-all path here: " + group.nodes[0].logtext())
    return group, group.hosts


def answered(d, prefix, count, start=0, caller=4000, callee=5000):
    calls = ["%s%d" % (prefix, k) for k in range(start, start + count)]
    u = batch(d, ["U %s 127.0.0.1 %d A;1" % (c, caller) for c in calls])
    l = batch(d, ["L %s 127.0.0.1 %d A;1 B;1" % (c, callee) for c in calls])
    return [(c, p, q) for c, p, q in zip(calls, u, l)]


def footprint(points):
    rows = []
    ranges = [(20000, 36099), (40000, 40199), (40300, 40499)]  # the calls are all made on the first
    for mode in ("auto", "off"):
        group, _ = cluster(3, ranges, "--catch-all=" + mode)
        with group:
            a, b = group.nodes[0], group.nodes[1]
            made = 0
            for n in points:
                answered(a, "f", n - made, start=made)
                made = n
                wait_until(lambda: info(b, "active sessions") == n, 60, "the peer to hold %d sessions" % n)
                time.sleep(0.5)
                rows.append((mode, n, fds(a), rss_kib(a), fds(b), rss_kib(b)))
    return rows


def metric_sum(url, name):
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return sum(float(m.group(1)) for m in re.finditer(r"^%s\{[^}]*\} (\S+)$" % name, text, re.M))


def sync_bytes(sizes, calls):
    rows = []
    for n in sizes:
        ranges = [(20000 + 1000 * i, 20000 + 1000 * i + 999) for i in range(n)]
        group, hosts = cluster(n, ranges, metrics_on_first=True, media_of=lambda h: h)
        with group:
            a = group.nodes[0]
            url = "http://%s/metrics" % a.argv[a.argv.index("--metrics") + 1]
            time.sleep(2.5)  # the hellos and the first activity reports are out
            before = metric_sum(url, "anyrtpproxy_sync_peer_bytes_sent_total")
            for k in range(0, calls, 100):
                made = answered(a, "s", min(100, calls - k), start=k)
                assert all(not p.startswith("E") and not q.startswith("E") for _, p, q in made), made[:2]
                batch(a, ["D %s A;1 B;1" % c for c, _, _ in made])
            wait_until(lambda: all(info(d, "active sessions") == 0 for d in group.nodes), 20, "the deletes everywhere")
            after = metric_sum(url, "anyrtpproxy_sync_peer_bytes_sent_total")
            rows.append((n, (after - before) / calls, (after - before) / calls / (n - 1)))
    return rows


def adoption(samples):
    ranges = [(20000, 21999), (30000, 30999), (31000, 31999)]  # 1,000 pairs on A
    group, hosts = cluster(3, ranges)
    caller, callee = Peer(), Peer()
    first, second = [], []
    with group:
        a, b = group.nodes[0], group.nodes[1]
        made = answered(a, "a", samples, caller=caller.port, callee=callee.port)
        wait_until(lambda: info(b, "parked legs") == 2 * samples, 20, "every leg parked on the peer")
        for k, (_, p, q) in enumerate(made):
            p, q = int(p.split()[0]), int(q.split()[0])
            for seq, out in ((2 * k, first), (2 * k + 1, second)):
                t0 = time.perf_counter()
                caller.send(rtp(seq, ssrc=1), (hosts[1], q))
                data, _ = callee.recv(2)
                out.append((time.perf_counter() - t0) * 1e6)
                assert data == rtp(seq, ssrc=1), (k, data)
        assert info(b, "adopted legs") == 2 * samples
    pct = lambda xs, q: sorted(xs)[min(len(xs) - 1, int(len(xs) * q))]
    return [("first packet (adopts)", pct(first, 0.5), pct(first, 0.99)),
            ("second packet (own socket)", pct(second, 0.5), pct(second, 0.99))]


def largest():
    ranges = [(20000, 30999), (31000, 41999), (42000, 52999)]  # 5,500 pairs per address, two addresses each
    second = lambda h: "127.0.0.1%s" % h[-1]
    group, hosts = cluster(3, ranges, media_of=lambda h: "%s,%s" % (h, second(h)), limit=20000)
    rows = []
    with group:
        for i, d in enumerate(group.nodes):
            held, k = 0, 0
            while True:
                made = answered(d, "x%d-" % i, 500, start=k)
                k += 500
                ok = [m for m in made if not m[1].startswith("E") and not m[2].startswith("E")]
                held += len(ok)
                if len(ok) < len(made):
                    break
            rows.append(held)
        total = sum(rows)
        wait_until(lambda: all(info(d, "active sessions") >= total for d in group.nodes), 60,
                   "every instance to hold the cluster's %d sessions" % total)
        # Every peer's leg has arrived (parked, or reported unbound) before the sample.
        mirrored = [2 * (total - held) for held in rows]
        wait_until(lambda: all(info(d, "parked legs") + info(d, "unbound legs") >= m
                               for d, m in zip(group.nodes, mirrored)), 60, "every peer's leg to arrive")
        sample = [(fds(d), rss_kib(d), info(d, "parked legs"), info(d, "unbound legs")) for d in group.nodes]
        for d, (_, _, _, unbound) in zip(group.nodes, sample):
            if unbound:
                why = [l for l in d.logtext().splitlines() if "leg not bound" in l]
                print("  %s: %d unbound legs; the log says:" % (d.control[0], unbound), *why[:3], sep="\n    ")
        q = batch(group.nodes[2], ["Q x0-%d A;1 B;1" % k for k in range(0, rows[0], 97)])
        assert not any(r.startswith("E") for r in q), q[:3]
    return rows, sample


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer samples")
    ap.add_argument("--largest-only", action="store_true", help="only the largest cluster")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root: the catch-all path loads an eBPF program")
    if args.largest_only:
        return print_largest()
    points = (1000, 2000) if args.quick else (1000, 2000, 4000)
    print("| catch-all | sessions (made on A) | A fds | A RSS KiB | B fds (mirrors) | B RSS KiB |")
    print("|---|---|---|---|---|---|")
    for mode, n, afd, arss, bfd, brss in footprint(points):
        print("| %s | %d | %d | %d | %d | %d |" % ("on" if mode == "auto" else "off", n, afd, arss, bfd, brss))
    print()
    print("| instances | sync bytes per call lifecycle (U, L, D) | per peer |")
    print("|---|---|---|")
    for n, total, per in sync_bytes((2, 3) if args.quick else (2, 3, 5, 8), 200 if args.quick else 1000):
        print("| %d | %.0f | %.0f |" % (n, total, per))
    print()
    print("| adoption (loopback, %s calls) | p50 us | p99 us |" % (50 if args.quick else 300))
    print("|---|---|---|")
    for name, p50, p99 in adoption(50 if args.quick else 300):
        print("| %s | %.0f | %.0f |" % (name, p50, p99))
    print()
    print_largest()


def print_largest():
    held, sample = largest()
    print("largest cluster: %d answered sessions (%s per instance), file limit 20,000 each" %
          (sum(held), ", ".join(str(h) for h in held)))
    for i, (f, r, parked, unbound) in enumerate(sample):
        print("  instance %d: %d fds, %d KiB RSS, %d parked legs, %d unbound" % (i + 1, f, r, parked, unbound))


if __name__ == "__main__":
    main()
