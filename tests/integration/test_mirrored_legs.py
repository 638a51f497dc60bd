"""Mirrored legs on loopback: an instance binds sockets only for the legs it
relays; a peer's leg is parked (no socket) and adopted by its first packet
through the catch-all path (eBPF sk_lookup). Three instances on 127.0.0.2, .3
and .4 under a file limit of 20,000 hold 12,000 answered sessions, three
times what one instance could bind."""

import json
import os
import random
import re
import shutil
import socket
import subprocess
import time

import pytest

from harness import HOSTS, Daemon, listing, Peer, free_port, rtp, wait_until


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


def test_three_instances_under_a_20000_file_limit_hold_12000_answered_sessions(cluster):
    if os.geteuid() != 0:
        pytest.skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    per = 4000
    # 8,050 pairs each; the control ports lie above them (a peer's port that is
    # taken here, as by a control socket, is not parked but reported unbound)
    ranges = [(4000 + 16100 * i, 4000 + 16100 * (i + 1) - 1) for i in range(3)]
    caller, callee = Peer(), Peer()
    with cluster(ranges=ranges, limit=20000, level="notice", needs_catch_all=True) as c:
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


def test_a_parked_legs_rtcp_and_both_directions_are_relayed_from_the_first_packet(cluster):
    if os.geteuid() != 0:
        pytest.skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    caller, callee = Peer(), Peer()
    with cluster(ranges=[(base + 300 * i, base + 300 * i + 199) for i in range(3)], needs_catch_all=True) as c:
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


def test_a_neighbours_first_port_at_the_end_of_this_ranges_is_parked(bed):
    """Ranges that share an end port, as in the man page's cluster example:
    R1's -p ends where R2's begins (two hosts in the anycast bed). The
    catch-all socket holds no relay port, so R1 parks a leg on that port like
    any other and stays healthy."""
    b = bed(instances=2)
    b.range_of = lambda i: (30000, 32000) if i == 1 else (32000, 32002)
    b.start(1)
    b.start(2)
    rt = b.agent("RT")
    ask = lambda i, text: rt(op="cmd", to=["10.250.1.%d" % i, 22222], text=text)["reply"]
    count = lambda i, name: int(re.search(r"%s: (\d+)" % name, ask(i, "I")).group(1))
    wait_until(lambda: ask(1, "V") == ask(2, "V") == "20040107", 10, "both instances")
    if "catch-all unavailable" in open(b.log_of(1)).read():
        pytest.skip("no catch-all path here")
    wait_until(lambda: "sync: connected to" in open(b.log_of(1)).read(), 5, "R1 to hear R2")
    p = int(ask(2, "U edge 10.250.10.1 4000 A;1").split()[0])
    assert p == 32000  # R2's only pair: R1's end port
    wait_until(lambda: count(1, "parked legs") == 1, 5, "R1 to park the leg",
               debug=lambda: open(b.log_of(1)).read()[-1500:])
    assert count(1, "unbound legs") == 0
    wait_until(lambda: "health: healthy" in ask(1, "I"), 6, "R1 healthy")


def test_a_stranger_spraying_a_parked_leg_makes_it_bind_nothing(cluster):
    """Only a packet the table would relay adopts a session: a third party's
    packets to a latched call's parked port are dropped, no socket bound."""
    if os.geteuid() != 0:
        pytest.skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    caller, callee, stranger = Peer(), Peer(), Peer()
    with cluster(ranges=[(base + 300 * i, base + 300 * i + 199) for i in range(3)], needs_catch_all=True) as c:
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


def test_an_adopted_call_idle_here_is_parked_again(cluster):
    """--park-idle: once the route has moved back (no packets here), the
    adopted call's sockets are closed and it is parked; it is adopted again
    by its next packet."""
    if os.geteuid() != 0:
        pytest.skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    caller, callee = Peer(), Peer()
    with cluster("--park-idle", "2", ranges=[(base + 300 * i, base + 300 * i + 199) for i in range(3)], needs_catch_all=True) as c:
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


def test_a_port_another_program_holds_is_not_taken_from_it(cluster):
    """The catch-all program runs before the kernel's socket lookup: a peer's
    leg on a port that something else holds here is reported unbound, never
    parked, and that socket keeps its packets."""
    if os.geteuid() != 0:
        pytest.skip("the catch-all path needs root (CAP_BPF, CAP_NET_ADMIN)")
    base = free_port(pair=True) // 1000 * 1000
    ranges = [(base + 300 * i, base + 300 * i + 199) for i in range(3)]
    holders = []
    for port in range(ranges[0][0], ranges[0][1] + 1):  # another program holds A's whole range on B's address
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((HOSTS[1], port))
        s.settimeout(1)
        holders.append(s)
    try:
        with cluster(ranges=ranges, needs_catch_all=True) as c:
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


def test_without_the_catch_all_every_mirrored_leg_is_bound(cluster):
    base = free_port(pair=True) // 1000 * 1000
    with cluster("--catch-all=off", ranges=[(base + 300 * i, base + 300 * i + 199) for i in range(3)]) as c:
        a, b, _ = c.nodes
        assert "catch-all off: every peer's leg is bound here" in b.logtext()
        before = udp_sockets(b)
        a.cmd("U o1 127.0.0.1 4000 A;1")
        a.cmd("L o1 127.0.0.1 5000 A;1 B;1")
        wait_until(lambda: udp_sockets(b) == before + 4, 5, "B to bind the four sockets")
        assert info(b, "parked legs") == 0


def test_a_killed_instance_leaves_no_catch_all_behind():
    """The sk_lookup program hangs on a link only the daemon's descriptor
    holds: SIGKILL takes it away, and the next start attaches afresh."""
    if os.geteuid() != 0 or not shutil.which("bpftool"):
        pytest.skip("needs root and bpftool")

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
