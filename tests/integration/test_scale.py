"""Cluster scale (issue 12) on loopback: an instance binds sockets only for
the legs it relays; a peer's leg is parked (no socket) and adopted by its
first packet through the catch-all path (eBPF sk_lookup). Three instances on
127.0.0.2, .3 and .4 under the machine's file limit of 20,000 hold 12,000
answered sessions, three times what one instance could bind."""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import time
import urllib.request

from harness import BINARY, Nodes, Daemon, listing, Peer, Skip, free_port, port_is_free, rtp, run_all, test, wait_until

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def batch(d, texts, window=128, timeout=60):
    """The replies to many commands, in order: up to `window` in flight; a
    command whose reply is late is sent again (the reply cache answers it)."""
    replies, pending, i = [None] * len(texts), {}, 0
    tag = "%06x" % random.getrandbits(24)  # a cookie is never used twice: the reply cache would answer it
    deadline = time.monotonic() + timeout
    while i < len(texts) or pending:
        assert time.monotonic() < deadline, "%d commands unanswered" % len(pending)
        while i < len(texts) and len(pending) < window:
            pending["%s-%d" % (tag, i)] = i
            d.sock.sendto(("%s-%d %s" % (tag, i, texts[i])).encode(), d.control)
            i += 1
        d.sock.settimeout(0.5)
        try:
            cookie, _, rest = d.sock.recv(65536).decode().partition(" ")
        except socket.timeout:
            for c in pending:
                d.sock.sendto(("%s %s" % (c, texts[pending[c]])).encode(), d.control)
            continue
        if cookie in pending:
            replies[pending.pop(cookie)] = rest.rstrip("\n")
    return replies


def control_port(host, avoid):
    """A free UDP port on `host` outside the relay ranges `avoid`."""
    for p in range(61000, 65000, 7):
        if all(not lo <= p <= hi for lo, hi in avoid) and port_is_free(p, host):
            return p
    raise RuntimeError("no free control port")


def fds(d):
    return len(os.listdir("/proc/%d/fd" % d.proc.pid))


def udp_sockets(d):
    """The daemon's UDP sockets (relay, catch-all, control): not its TCP ones,
    which come and go with sync and listing connections."""
    inodes = set()
    for name in os.listdir("/proc/%d/fd" % d.proc.pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (d.proc.pid, name))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    udp = set()
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        for line in open(table).read().splitlines()[1:]:
            udp.add(line.split()[9])
    return len(inodes & udp)


def info(d, name):
    return int(re.search(r"%s: (\d+)" % name, d.cmd("I")).group(1))


class Cluster(Nodes):
    def __init__(self, ranges, *args, limit=None, catch_all=True, level="info", media_of=lambda h: h,
                 args_of=lambda i: [], limit_of=lambda i: None):
        self.sync_port = free_port(socket.SOCK_STREAM)
        self.nodes = []
        for i, h in enumerate(HOSTS):
            peers = ",".join("%s:%d" % (o, self.sync_port) for o in HOSTS if o != h)
            d = Daemon("-S", str(self.sync_port), "-I", h, "-M", peers, *args, *args_of(i), host=h, media=media_of(h), ports=ranges[i],
                       control=control_port(h, ranges), start=False, level=level)
            # Our control client binds 127.0.0.1, not the wildcard: its port
            # cannot then collide with a relay port on 127.0.0.2-4 (the ranges
            # here cross the ephemeral range)
            d.sock.close()
            d.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            d.sock.bind(("127.0.0.1", 0))
            if limit or limit_of(i):
                n = limit or limit_of(i)
                d.argv = ["prlimit", "--nofile=%d:%d" % (n, n), "--"] + d.argv
            self.nodes.append(d)
        for d in self.nodes:
            d.start()
        wait_until(lambda: all(d.logtext().count("sync: connected to") >= 2 for d in self.nodes), 5,
                   "every instance to connect to its peers")
        if catch_all and any("catch-all unavailable" in d.logtext() for d in self.nodes):
            self.stop()
            raise Skip("no catch-all path here: " + self.nodes[0].logtext().split("catch-all unavailable")[1].split("\n")[0])


@test
def three_instances_under_a_20000_file_limit_hold_12000_answered_sessions():
    if os.geteuid() != 0:
        raise Skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    per = 4000
    # 8,050 pairs each; the control ports lie above them (a peer's port that is
    # taken here, as by a control socket, is not parked but reported unbound)
    ranges = [(4000 + 16100 * i, 4000 + 16100 * (i + 1) - 1) for i in range(3)]
    caller, callee = Peer(), Peer()
    with Cluster(ranges, limit=20000, level="notice") as c:
        base = [fds(d) for d in c.nodes]
        ports = {}
        for i, d in enumerate(c.nodes):
            calls = ["s%d-%d" % (i, k) for k in range(per)]
            u = batch(d, ["U %s 127.0.0.1 %d A;1" % (call, caller.port) for call in calls])
            l = batch(d, ["L %s 127.0.0.1 %d A;1 B;1" % (call, callee.port) for call in calls])
            for call, p, q in zip(calls, u, l):
                assert not p.startswith("E") and not q.startswith("E"), (call, p, q)
                ports[call] = (int(p.split()[0]), int(q.split()[0]))
        total = 3 * per
        wait_until(lambda: all(info(d, "active sessions") == total for d in c.nodes), 60,
                   "every instance to hold all %d sessions" % total,
                   debug=lambda: [info(d, "active sessions") for d in c.nodes])
        wait_until(lambda: all(info(d, "parked legs") == 2 * (total - per) for d in c.nodes), 30,
                   "every peer's leg parked", debug=lambda: [d.cmd("I") for d in c.nodes])
        for i, d in enumerate(c.nodes):  # 4 sockets per own session, none per mirrored one
            assert fds(d) <= 4 * per + base[i] + 16, (d.control[0], fds(d), base[i])
            assert info(d, "unbound legs") == 0
        for d in c.nodes:  # Q answers every call everywhere
            replies = batch(d, ["Q %s A;1 B;1" % call for call in ports])
            bad = [(call, r) for call, r in zip(ports, replies) if r.startswith("E")]
            assert not bad, (d.control[0], len(bad), bad[:3])
        # The route moves: packets of calls created on .2 reach .3, which adopts them.
        b = c.nodes[1]
        before = udp_sockets(b)
        for k in range(5):
            p, q = ports["s0-%d" % k]
            caller.send(rtp(k, ssrc=1), (HOSTS[1], q))
            data, src = callee.recv(2)
            assert data == rtp(k, ssrc=1) and src == (HOSTS[1], p), (k, data, src)
            callee.send(rtp(k, ssrc=2), (HOSTS[1], p))
            data, src = caller.recv(2)
            assert data == rtp(k, ssrc=2) and src == (HOSTS[1], q), (k, data, src)
        assert udp_sockets(b) == before + 4 * 5, (before, udp_sockets(b))
        assert info(b, "adopted legs") == 10 and info(b, "parked legs") == 2 * (total - per) - 10


@test
def a_parked_legs_rtcp_and_both_directions_are_relayed_from_the_first_packet():
    if os.geteuid() != 0:
        raise Skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    caller, callee = Peer(), Peer()
    with Cluster([(base + 300 * i, base + 300 * i + 199) for i in range(3)]) as c:
        a, b, _ = c.nodes
        p = int(a.cmd("U r1 127.0.0.1 %d A;1" % caller.port).split()[0])
        q = int(a.cmd("L r1 127.0.0.1 %d A;1 B;1" % callee.port).split()[0])
        wait_until(lambda: info(b, "parked legs") == 2, 5, "B to park both legs")
        for port in (p, p + 1, q, q + 1):  # B holds no socket there: binding one here would fail if it did in (p, p + 1, q, q + 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((HOSTS[1], port))
            s.close()
        callee.send(rtp(1, ssrc=2), (HOSTS[1], p))  # the first packet comes from the callee's side
        data, src = caller.recv(2)
        assert data == rtp(1, ssrc=2) and src == (HOSTS[1], q), (data, src)
        assert info(b, "parked legs") == 0 and info(b, "adopted legs") == 2
        for k in range(2, 12):
            callee.send(rtp(k, ssrc=2), (HOSTS[1], p))
            assert caller.recv(2)[0] == rtp(k, ssrc=2)
            caller.send(rtp(k, ssrc=1), (HOSTS[1], q))
            assert callee.recv(2)[0] == rtp(k, ssrc=1)
        assert b.logtext().count("adopted call-id=r1 ") == 1
        assert a.cmd("D r1 A") == "0"
        wait_until(lambda: info(b, "active sessions") == 0, 5, "the delete to reach B")
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOSTS[1], p))  # its sockets were closed
        s.close()


@test
def a_stranger_spraying_a_parked_leg_makes_it_bind_nothing():
    """Only a packet the table would relay adopts a session: a third party's
    packets to a latched call's parked port are dropped, no socket bound."""
    if os.geteuid() != 0:
        raise Skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    caller, callee, stranger = Peer(), Peer(), Peer()
    with Cluster([(base + 300 * i, base + 300 * i + 199) for i in range(3)]) as c:
        a, b, _ = c.nodes
        p = int(a.cmd("U x1 127.0.0.1 %d A;1" % caller.port).split()[0])
        q = int(a.cmd("L x1 127.0.0.1 %d A;1 B;1" % callee.port).split()[0])
        caller.send(rtp(1, ssrc=1), (HOSTS[0], q))  # latches on A; the latch reaches B
        assert callee.recv(2)[0] == rtp(1, ssrc=1)
        wait_until(lambda: "(learned)" in "".join(listing(HOSTS[1], c.sync_port)), 5, "the latch to reach B")
        before = udp_sockets(b)
        for k in range(20):
            stranger.send(rtp(100 + k, ssrc=66), (HOSTS[1], q))
        assert callee.nothing(0.5), "a stranger's packet was relayed"
        assert info(b, "parked legs") == 2 and info(b, "adopted legs") == 0 and udp_sockets(b) == before
        caller.send(rtp(2, ssrc=1), (HOSTS[1], q))  # the latched caller: adopted, relayed
        data, src = callee.recv(2)
        assert data == rtp(2, ssrc=1) and src == (HOSTS[1], p), (data, src)
        assert info(b, "adopted legs") == 2 and udp_sockets(b) == before + 4


@test
def an_adopted_call_idle_here_is_parked_again():
    """--park-idle: once the route has moved back (no packets here), the
    adopted call's sockets are closed and it is parked; it is adopted again
    by its next packet."""
    if os.geteuid() != 0:
        raise Skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    caller, callee = Peer(), Peer()
    with Cluster([(base + 300 * i, base + 300 * i + 199) for i in range(3)], "--park-idle", "2") as c:
        a, b, _ = c.nodes
        p = int(a.cmd("U i1 127.0.0.1 %d A;1" % caller.port).split()[0])
        q = int(a.cmd("L i1 127.0.0.1 %d A;1 B;1" % callee.port).split()[0])
        wait_until(lambda: info(b, "parked legs") == 2, 5, "B to park both legs")
        idle = udp_sockets(b)
        caller.send(rtp(1, ssrc=1), (HOSTS[1], q))
        assert callee.recv(2)[0] == rtp(1, ssrc=1)
        assert info(b, "parked legs") == 0 and udp_sockets(b) == idle + 4
        wait_until(lambda: info(b, "parked legs") == 2, 6, "B to park the idle call again")
        assert udp_sockets(b) == idle and "parked again 2 adopted legs" in b.logtext()
        caller.send(rtp(2, ssrc=1), (HOSTS[1], q))  # back again: adopted again
        data, src = callee.recv(2)
        assert data == rtp(2, ssrc=1) and src == (HOSTS[1], p), (data, src)
        assert info(b, "adopted legs") == 4


@test
def a_port_another_program_holds_is_not_taken_from_it():
    """The catch-all program runs before the kernel's socket lookup: a peer's
    leg on a port that something else holds here is reported unbound, never
    parked, and that socket keeps its packets."""
    if os.geteuid() != 0:
        raise Skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    ranges = [(base + 300 * i, base + 300 * i + 199) for i in range(3)]
    holders = []
    for port in range(ranges[0][0], ranges[0][1] + 1):  # another program holds A's whole range on B's address
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOSTS[1], port))
        s.settimeout(1)
        holders.append(s)
    try:
        with Cluster(ranges) as c:
            a, b, _ = c.nodes
            p = int(a.cmd("U h1 127.0.0.1 4000 A;1").split()[0])
            wait_until(lambda: info(b, "unbound legs") == 1, 5, "B to report the leg it cannot hold")
            assert info(b, "parked legs") == 0
            probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            probe.sendto(b"mine", (HOSTS[1], p))
            assert holders[p - ranges[0][0]].recv(100) == b"mine"
            probe.close()
            assert "taken by another program" in b.logtext()
    finally:
        for s in holders:
            s.close()


@test
def without_the_catch_all_every_mirrored_leg_is_bound():
    base = free_port(pair=True) // 1000 * 1000
    with Cluster([(base + 300 * i, base + 300 * i + 199) for i in range(3)], "--catch-all=off", catch_all=False) as c:
        a, b, _ = c.nodes
        assert "catch-all off: every peer's leg is bound here" in b.logtext()
        before = udp_sockets(b)
        a.cmd("U o1 127.0.0.1 4000 A;1")
        a.cmd("L o1 127.0.0.1 5000 A;1 B;1")
        wait_until(lambda: udp_sockets(b) == before + 4, 5, "B to bind the four sockets")
        assert info(b, "parked legs") == 0


@test
def a_new_leg_goes_to_the_relay_address_with_the_most_free_ports():
    """-i A1,A2: each address has its own copy of the -p range; legs are
    spread over them, replies name the address, media flows on both."""
    base = free_port(pair=True)
    caller, callee = Peer(), Peer()
    with Daemon(media="127.0.0.1,127.0.0.5", ports=(base, base + 8)) as d:  # four pairs on each address
        replies = [d.cmd("U m%d 127.0.0.1 %d A;1" % (i, caller.port)) for i in range(8)]
        addrs = [r.split()[1] for r in replies]
        assert sorted(addrs) == ["127.0.0.1"] * 4 + ["127.0.0.5"] * 4, replies
        assert all(base <= int(r.split()[0]) < base + 8 for r in replies), replies
        assert d.cmd("U m8 127.0.0.1 4000 A;1").startswith("E"), "both copies of the range are used up"
        assert d.cmd("D m0 A") == "0"
        p, p_addr = replies[1].split()
        r = d.cmd("L m1 127.0.0.1 %d A;1 B;1" % callee.port).split()
        assert r[1] == addrs[0], (r, addrs[0])  # the only free pair: where m0's was
        caller.send(rtp(1, ssrc=1), (r[1], int(r[0])))
        data, src = callee.recv(2)
        assert data == rtp(1, ssrc=1) and src == (p_addr, int(p)), (data, src)
        callee.send(rtp(2, ssrc=2), (p_addr, int(p)))
        assert caller.recv(2) == (rtp(2, ssrc=2), (r[1], int(r[0])))


@test
def two_relay_addresses_per_instance_sync_and_relay_on_both():
    """Two instances with two relay addresses each: a leg on a peer's second
    address is held on this instance's second address, shown as #2 in the
    listing, and relayed there; overlapping ranges are still refused."""
    base = free_port(pair=True) // 1000 * 1000
    ranges = [(base + 300 * i, base + 300 * i + 199) for i in range(3)]
    caller, callee = Peer(), Peer()
    second = {h: "127.0.0.1%s" % h[-1] for h in HOSTS}  # 127.0.0.12, .13, .14
    with Cluster(ranges, media_of=lambda h: "%s,%s" % (h, second[h])) as c:
        a, b, _ = c.nodes
        u = a.cmd("U t1 127.0.0.1 %d A;1" % caller.port).split()
        l = a.cmd("L t1 127.0.0.1 %d A;1 B;1" % callee.port).split()
        assert {u[1], l[1]} == {HOSTS[0], second[HOSTS[0]]}, (u, l)  # the second leg went to the emptier address
        p, q = int(u[0]), int(l[0])
        on_b = lambda addr: second[HOSTS[1]] if addr == second[HOSTS[0]] else HOSTS[1]
        wait_until(lambda: any("#2" in line for line in listing(HOSTS[1], c.sync_port)), 5, "B to list the leg on #2")
        caller.send(rtp(1, ssrc=1), (on_b(l[1]), q))
        data, src = callee.recv(2)
        assert data == rtp(1, ssrc=1) and src == (on_b(u[1]), p), (data, src)
        callee.send(rtp(2, ssrc=2), (on_b(u[1]), p))
        assert caller.recv(2) == (rtp(2, ssrc=2), (on_b(l[1]), q))
    sync_port = free_port(socket.SOCK_STREAM)
    one = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], sync_port), host=HOSTS[0],
                 media="%s,%s" % (HOSTS[0], second[HOSTS[0]]), ports=(base, base + 99), level="info")
    two = Daemon("-S", str(sync_port), "-I", HOSTS[1], "-M", "%s:%d" % (HOSTS[0], sync_port), host=HOSTS[1],
                 media="%s,%s" % (HOSTS[1], second[HOSTS[1]]), ports=(base + 50, base + 149), level="info")
    with Nodes() as n:
        n.nodes = [one, two]
        wait_until(lambda: "overlap ours" in one.logtext() and "overlap ours" in two.logtext(), 3, "both to refuse")


@test
def instances_listing_the_same_addresses_in_another_order_are_told():
    """A leg travels as its address's position in -i: an instance that lists
    the cluster's addresses in another order would bind a failed-over leg on
    the other address. Both ends say so when they meet; the same order, or
    addresses of their own, say nothing."""
    base = free_port(pair=True) // 1000 * 1000
    shared = ["127.0.0.20", "127.0.0.21"]

    def pair(second_media):
        sync_port = free_port(socket.SOCK_STREAM)
        one = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], sync_port), host=HOSTS[0],
                     media=",".join(shared), ports=(base, base + 99), level="info")
        two = Daemon("-S", str(sync_port), "-I", HOSTS[1], "-M", "%s:%d" % (HOSTS[0], sync_port), host=HOSTS[1],
                     media=second_media, ports=(base + 200, base + 299), level="info")
        n = Nodes()
        n.nodes = [one, two]
        return n, one, two

    n, one, two = pair(",".join(reversed(shared)))
    with n:
        told = lambda d, own, mine, theirs: ("lists %s as relay address %d of its IPv4 list, this instance as relay "
                                             "address %d of its IPv4 list" % (own[mine - 1], theirs, mine)) in d.logtext()
        back = list(reversed(shared))
        wait_until(lambda: told(one, shared, 1, 2) and told(one, shared, 2, 1) and told(two, back, 1, 2) and
                   told(two, back, 2, 1), 5,
                   "both to say the order differs", debug=lambda: (one.logtext()[-600:], two.logtext()[-600:]))
    for media in (",".join(shared), "%s,127.0.0.1%s" % (HOSTS[1], HOSTS[1][-1])):
        n, one, two = pair(media)
        with n:
            wait_until(lambda: all(d.logtext().count("is instance") >= 1 for d in (one, two)), 5, "the hellos")
            time.sleep(0.2)
            assert not any("relay address 1 of its" in d.logtext() for d in (one, two)), media


def header(host, port):
    """The comment lines an operator's listing starts with."""
    s = socket.create_connection((host, port), timeout=2)
    data = b""
    while b"# end of listing" not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return [l for l in data.decode().split("# end of listing")[0].splitlines() if l.startswith("# ")]


@test
def every_instance_announces_its_capacity_and_says_when_it_cannot_take_over():
    """Each instance tells its peers every 2 s what it can still carry; the
    listing and the metrics show every instance's; one that could not adopt
    all the legs a peer relays says so, and again when it can."""
    base = free_port(pair=True) // 1000 * 1000
    mport = free_port(socket.SOCK_STREAM)
    with Cluster([(base + 300 * i, base + 300 * i + 199) for i in range(3)], "-T", "600", level="info",
                 args_of=lambda i: ["--metrics", "%s:%d" % (HOSTS[i], mport)], limit_of=lambda i: 90 if i == 1 else None) as c:
        a, b, _ = c.nodes
        names = lambda: [re.search(r"instance (\S+) ", l).group(1) for l in header(HOSTS[0], c.sync_port)
                         if l.startswith("# capacity: ")]
        wait_until(lambda: len(names()) == 3, 6, "A's listing to show all three instances", debug=names)
        lines = [l for l in header(HOSTS[0], c.sync_port) if l.startswith("# capacity: ")]
        assert "(this instance)" in lines[0] and all("announced" in l for l in lines[1:]), lines
        assert all(re.search(r" headroom=\d+ relays=\d+ parks=\d+ (healthy|unhealthy) ", l) for l in lines), lines
        metrics = urllib.request.urlopen("http://%s:%d/metrics" % (HOSTS[0], mport), timeout=5).read().decode()
        assert len(re.findall(r"^anyrtpproxy_cluster_headroom_legs\{instance=", metrics, re.M)) == 3, metrics
        # B (90 descriptors) cannot adopt what A relays once A holds 40 answered calls (80 legs)
        made = batch(a, ["U k%d 127.0.0.1 4000 A;1" % k for k in range(40)] +
                     ["L k%d 127.0.0.1 5000 A;1 B;1" % k for k in range(40)])
        assert not any(r.startswith("E") for r in made), made
        wait_until(lambda: "capacity: cannot take over instance" in b.logtext(), 8, "B to say it cannot take over A")
        assert "capacity: cannot take over instance" not in c.nodes[2].logtext()  # C has room
        batch(a, ["D k%d A;1 B;1" % k for k in range(40)])
        wait_until(lambda: "capacity: can take over instance" in b.logtext(), 8, "B to say it can again")
        assert b.logtext().count("capacity: cannot take over instance") == 1


@test
def address_lists_compose_with_bridge_mode():
    """-i I1,I2/E1,E2: each side has its list; a leg goes to its side's
    address with the most free ports."""
    base = free_port(pair=True)
    with Daemon(media="127.0.0.1,127.0.0.8/127.0.0.6,127.0.0.7", ports=(base, base + 8)) as d:
        external = [d.cmd("UIE e%d 127.0.0.1 4000 A;1" % i).split()[1] for i in range(8)]
        internal = [d.cmd("U i%d 127.0.0.1 4000 A;1" % i).split()[1] for i in range(8)]
        assert sorted(external) == ["127.0.0.6"] * 4 + ["127.0.0.7"] * 4, external
        assert sorted(internal) == ["127.0.0.1"] * 4 + ["127.0.0.8"] * 4, internal


@test
def a_killed_instance_leaves_no_catch_all_behind():
    """The sk_lookup program hangs on a link only the daemon's descriptor
    holds: SIGKILL takes it away, and the next start attaches afresh."""
    if os.geteuid() != 0 or not shutil.which("bpftool"):
        raise Skip("needs root and bpftool")

    def netns_links(pid):
        ids = set()
        for fd in os.listdir("/proc/%d/fdinfo" % pid):
            try:
                text = open("/proc/%d/fdinfo/%s" % (pid, fd)).read()
            except OSError:
                continue
            m = re.search(r"link_type:\s+netns\s+link_id:\s+(\d+)", text)
            if m:
                ids.add(int(m.group(1)))
        return ids

    listed = lambda: {l["id"] for l in json.loads(subprocess.run(["bpftool", "-j", "link", "show"], capture_output=True,
                                                                  text=True, timeout=10).stdout or "[]")}
    d = Daemon(level="info")
    try:
        ids = netns_links(d.proc.pid)
        assert len(ids) == 1 and ids <= listed(), (ids, listed())
        d.kill()
        assert not ids & listed(), "the killed daemon's sk_lookup link is still there"
        d.start()
        assert "catch-all: peers' legs are mirrored without sockets" in d.logtext()
        assert len(netns_links(d.proc.pid)) == 1
    finally:
        d.stop()


@test
def bad_relay_address_lists_are_refused_naming_the_option():
    for value, message in (("127.0.0.1,,127.0.0.5", "has an empty address"),
                           ("127.0.0.1,::1", "mixes IPv4 and IPv6"),
                           ("0.0.0.0,127.0.0.1", "lists a wildcard address among others"),
                           ("127.0.0.1,127.0.0.1", "127.0.0.1 is listed twice"),
                           (",".join("127.0.0.%d" % i for i in range(1, 10)), "lists more than 8 addresses")):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "-i", value], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2 and "-i/--interface" in r.stderr and message in r.stderr, (value, r.stderr)
    r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "-i", "127.0.0.1", "-A", "192.0.2.1,192.0.2.2"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "-A/--advertise" in r.stderr and "at position 2" in r.stderr, r.stderr
    for value in ("-1", "soon", "86401"):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "--park-idle", value], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and "--park-idle" in r.stderr, (value, r.stderr)


if __name__ == "__main__":
    run_all()
