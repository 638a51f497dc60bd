"""Faults in any order: a seeded random fault test. A loopback cluster of 3
to 5 instances (in the test's own network namespace) takes a steady stream
of U, L and D at random instances while faults drawn at random strike:
SIGKILL and restart, SIGSTOP and SIGCONT, a silent sync partition between
two instances (nftables drops, nothing resets), an upgrade to this release
or a rollback to the previous one (built from this repository's history).
After each heal, within 2 s: every instance lists exactly the live calls,
no deleted call is back, no port of a relay address is held by two calls,
and a new call through every instance relays media.

The seed is printed ("chaos: seed N"); CHAOS_SEEDS=N[,N...] and
CHAOS_ROUNDS=M replay or extend it (make chaos SEED=N ROUNDS=M). Every loop
is bounded by the rounds and its deadlines."""

import os
import random
import re
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import BINARY, listing, previous_release, relays_a_call, wait_until

SEEDS = [int(s) for s in os.environ.get("CHAOS_SEEDS", "1,2,3").split(",") if s]
ROUNDS = int(os.environ.get("CHAOS_ROUNDS", "6"))
FAULTS = ["kill", "hang", "partition", "version"]


def partition(a, b, port, on):
    """A silent partition of the sync traffic between two instances' addresses."""
    table = "chaos_%s_%s" % (a.replace(".", "_"), b.replace(".", "_"))
    if not on:
        subprocess.run(["nft", "delete", "table", "inet", table], check=True)
        return
    rules = ("table inet %s {\n chain out {\n  type filter hook output priority 0;\n"
             "  ip saddr %s ip daddr %s tcp dport %d drop\n  ip saddr %s ip daddr %s tcp sport %d drop\n"
             "  ip saddr %s ip daddr %s tcp dport %d drop\n  ip saddr %s ip daddr %s tcp sport %d drop\n }\n}\n"
             % (table, a, b, port, b, a, port, b, a, port, a, b, port))
    subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)


class World:
    """What the cluster should hold: the live calls, the deleted ones."""

    def __init__(self, c, rng):
        self.c, self.rng = c, rng
        self.live, self.deleted = set(), set()
        self.serial = 0
        self.hung = set()

    def usable(self):
        return [i for i, d in enumerate(self.c.nodes) if i not in self.hung and d.exit_status() is None]

    def traffic(self, n=6):
        """n commands' worth of calls created and deleted at random instances."""
        for _ in range(n):
            i = self.rng.choice(self.usable())
            d = self.c.nodes[i]
            if self.live and self.rng.random() < 0.35:
                # at a random instance that knows it: behind a partition, one may not yet
                name = self.rng.choice(sorted(self.live))
                others = [k for k in self.usable() if k != i]
                self.rng.shuffle(others)
                replies = [d.cmd("D %s A" % name)]
                for k in others:
                    if replies[-1] == "0":
                        break
                    replies.append(self.c.nodes[k].cmd("D %s A" % name))
                assert replies[-1] == "0", (name, replies)
                self.live.discard(name)
                self.deleted.add(name)
            else:
                self.serial += 1
                name = "chaos-%d" % self.serial
                p = d.cmd("U %s 192.0.2.1 4000 A;1" % name)
                q = d.cmd("L %s 192.0.2.2 6000 A;1 B;1" % name)
                assert not p.startswith("E") and not q.startswith("E"), (name, p, q)
                self.live.add(name)

    def listings(self):
        """Every instance's listing, read at once (each waits 300 ms to be taken for an operator)."""
        with ThreadPoolExecutor(len(self.c.nodes)) as pool:
            return list(pool.map(lambda d: listing(d.control[0], self.c.sync_port), self.c.nodes))

    def converged(self):
        """Every instance lists exactly the live calls; no port is held twice."""
        for lines in self.listings():
            names = [re.search(r"call-id=(\S+)", l).group(1) for l in lines]
            held = set(n for n in names if n.startswith("chaos-"))
            if held != self.live or len(names) != len(set(names)):
                return False
            ports = [p for l in lines for p in re.findall(r"(?:callee|caller)=(\d+)", l)]
            if len(ports) != len(set(ports)):
                return False
        return True

    def explain(self):
        out = []
        for d, lines in zip(self.c.nodes, self.listings()):
            held = set(re.search(r"call-id=(\S+)", l).group(1) for l in lines)
            out.append({"node": d.control[0], "missing": sorted(self.live - held)[:5],
                        "extra": sorted(held - self.live)[:5], "back": sorted(held & self.deleted)[:5]})
        return out


@pytest.mark.parametrize("seed", SEEDS)
def test_random_faults_converge_within_2_s_of_each_heal(netns, cluster, seed):
    if not os.path.exists("/usr/sbin/nft"):
        pytest.fail("nftables is missing (tests/install-deps.sh test installs it)")
    rng = random.Random(seed)
    n = rng.randint(3, 5)
    print("chaos: seed %d, %d instances, %d rounds (CHAOS_SEEDS=%d CHAOS_ROUNDS=%d to replay)" %
          (seed, n, ROUNDS, seed, ROUNDS))
    previous = previous_release()
    binaries = {}
    c = cluster("-T", "600", n=n)
    world = World(c, rng)
    for round_ in range(ROUNDS):
        # Faults strike a converged cluster: a call answered within the sync's
        # batching window (20 ms) of its instance's SIGKILL is lost with it.
        world.traffic()
        wait_until(world.converged, 3, "convergence before round %d, seed %d" % (round_, seed), debug=world.explain)
        fault = rng.choice(FAULTS)
        i = rng.randrange(n)
        d = c.nodes[i]
        print("chaos: round %d: %s on instance %d" % (round_, fault, i))
        if fault == "kill":
            d.kill()
            world.traffic()
            d.start()
        elif fault == "hang":
            d.proc.send_signal(signal.SIGSTOP)
            world.hung.add(i)
            try:
                world.traffic()
                time.sleep(rng.uniform(0.5, 2.0))  # how long it hangs is the fault's size
            finally:
                d.proc.send_signal(signal.SIGCONT)
                world.hung.discard(i)
        elif fault == "partition":
            j = rng.choice([k for k in range(n) if k != i])
            partition(c.hosts[i], c.hosts[j], c.sync_port, True)
            try:
                world.traffic()
                time.sleep(rng.uniform(1.0, 5.0))  # the partition's length is the fault's size
                world.traffic()
            finally:
                partition(c.hosts[i], c.hosts[j], c.sync_port, False)
        else:  # an upgrade, or a rollback
            now = binaries.get(i, BINARY)
            binaries[i] = previous if now == BINARY else BINARY
            c.replace(i, binaries[i])
            world.traffic()
        healed = time.monotonic()
        wait_until(world.converged, 2.0 + (1.0 if fault in ("kill", "version") else 0.0),
                   "convergence after round %d (%s on %d), seed %d" % (round_, fault, i, seed), debug=world.explain)
        print("chaos: round %d converged in %.2f s" % (round_, time.monotonic() - healed))
        assert all(relays_a_call(c.nodes[k]) for k in range(n)), "media after round %d, seed %d" % (round_, seed)
