"""Media through the real daemon: RTP and RTCP both ways, latching under the
three policies, expiry and deletion freeing ports, IPv6, notifications."""

import os
import signal
import socket
import struct
import time

import pytest

from harness import Daemon, NotifyListener, Peer, free_port, port_is_free, rtcp, rtp, wait_until

LO = "127.0.0.1"


def pair_peer(host=LO, family=socket.AF_INET):
    """An RTP socket on an even port and its RTCP socket on port + 1."""
    base = free_port(host=host, family=family, pair=True)
    return Peer(host, family, base), Peer(host, family, base + 1)


def call(d, a_port, b_port, call_id="c", mods="", a_host=LO, b_host=LO):
    p = int(d.cmd("U%s %s %s %d A;1" % (mods, call_id, a_host, a_port)).split()[0])
    q = int(d.cmd("L%s %s %s %d A;1 B;1" % (mods, call_id, b_host, b_port)).split()[0])
    return p, q  # p: towards the callee (B sends here), q: towards the caller (A sends here)


def query(d, call_id="c"):
    return [int(x) for x in d.cmd("Q %s A;1 B;1" % call_id).split()]


def test_rtp_and_rtcp_both_ways():
    a, a_rtcp = pair_peer()
    b, b_rtcp = pair_peer()
    with Daemon() as d:
        p, q = call(d, a.port, b.port)
        for seq in range(5):
            a.send(rtp(seq, ssrc=1), (LO, q))
            data, src = b.recv()
            assert data == rtp(seq, ssrc=1) and src == (LO, p), (data, src)
            b.send(rtp(seq, ssrc=2), (LO, p))
            data, src = a.recv()
            assert data == rtp(seq, ssrc=2) and src == (LO, q), (data, src)
        a_rtcp.send(rtcp(1), (LO, q + 1))
        data, src = b_rtcp.recv()
        assert data == rtcp(1) and src == (LO, p + 1)
        b_rtcp.send(rtcp(2), (LO, p + 1))
        data, src = a_rtcp.recv()
        assert data == rtcp(2) and src == (LO, q + 1)
        ttl, from_a, from_b, relayed, dropped = query(d)
        assert (from_a, from_b, relayed, dropped) == (6, 6, 12, 0), query(d)
        assert d.cmd("G npkts_relayed") == "12"


def test_default_latches_the_first_source_then_refuses_others():
    a, _ = pair_peer()
    nat_a = Peer()  # A's packets really come from here (a NAT mapping)
    b, _ = pair_peer()
    third = Peer()
    with Daemon() as d:
        p, q = call(d, a.port, b.port)
        nat_a.send(rtp(1, ssrc=1), (LO, q))
        assert b.recv()[0] == rtp(1, ssrc=1)
        b.send(rtp(1, ssrc=2), (LO, p))
        data, src = nat_a.recv()
        assert data == rtp(1, ssrc=2), "B's media follows A's learned address"
        assert a.nothing()
        third.send(rtp(1, ssrc=666), (LO, q))
        assert b.nothing(), "a third party must not reach B once A latched"
        b.send(rtp(2, ssrc=2), (LO, p))
        assert nat_a.recv()[0] == rtp(2, ssrc=2), "and it must not steal B's media"
        assert query(d)[4] == 1
        assert "latched call-id=c" in d.logtext()


def forwarded(sender, to, packets, receiver, quiet=0.3):
    """Sends packets from sender to the relay port `to`; how many of them the
    receiver got (it waits until `quiet` seconds pass without one)."""
    for pkt in packets:
        sender.send(pkt, to)
    got = 0
    while receiver.recv(quiet)[0] is not None:
        got += 1
    return got


def test_default_latching_cannot_be_hijacked():
    """The SECURITY section's rules of the default mode, each with the number of
    packets forwarded: (a) a third party that sends first loses the leg to the
    signalled address; (b) then it is dropped; (c) the caller's SSRC from
    elsewhere is refused while the caller sends and followed (a NAT rebinding)
    only after 2 s of silence; (d) RTCP from another host never latches."""
    a, a_rtcp = pair_peer()  # the caller, sending from its signalled address
    b, b_rtcp = pair_peer()
    third, third_rtcp = Peer("127.0.0.2"), Peer("127.0.0.2")  # an attacker on another host
    with Daemon() as d:
        p, q = call(d, a.port, b.port)
        # (a) first come is served only until the signalled address speaks
        assert forwarded(third, (LO, q), [rtp(i, ssrc=66) for i in range(10)], b) == 10
        assert forwarded(a, (LO, q), [rtp(i, ssrc=1) for i in range(10)], b) == 10
        b.send(rtp(1, ssrc=2), (LO, p))
        assert a.recv()[0] == rtp(1, ssrc=2), "B's media goes to the caller again"
        assert third.nothing()
        # (b) the leg is the caller's now
        assert forwarded(third, (LO, q), [rtp(10 + i, ssrc=66) for i in range(10)], b) == 0
        # (c) the caller's own SSRC and sequence from the attacker, while the caller sends
        for i in range(5):
            a.send(rtp(20 + i, ssrc=1), (LO, q))
            assert b.recv()[0] == rtp(20 + i, ssrc=1)
            assert forwarded(third, (LO, q), [rtp(21 + i, ssrc=1)], b, quiet=0.05) == 0
        last_heard = time.monotonic()
        # (d) RTCP from the attacker's host is refused, the caller's is relayed
        assert forwarded(third_rtcp, (LO, q + 1), [rtcp(66) for _ in range(5)], b_rtcp) == 0
        assert forwarded(a_rtcp, (LO, q + 1), [rtcp(1) for _ in range(5)], b_rtcp) == 5
        # (c) a NAT rebinding: the caller's stream from a new port, once the old one fell silent
        moved = Peer()
        seq = iter(range(30, 1000))
        wait_until(lambda: forwarded(moved, (LO, q), [rtp(next(seq), ssrc=1)], b, quiet=0.1) == 1, 6,
                   "the rebinding to be followed")
        assert time.monotonic() - last_heard >= 1.9, "followed while the latched source was still sending"
        b.send(rtp(3, ssrc=2), (LO, p))
        assert moved.recv()[0] == rtp(3, ssrc=2), "B's media follows the rebinding"


def test_no_nat_once_accepts_only_the_signalled_source():
    a, _ = pair_peer()
    b, _ = pair_peer()
    third = Peer()
    with Daemon("-o") as d:
        p, q = call(d, a.port, b.port)
        third.send(rtp(1, ssrc=9), (LO, q))
        assert b.nothing(), "-o: a source other than the signalled one is dropped"
        a.send(rtp(2, ssrc=1), (LO, q))
        assert b.recv()[0] == rtp(2, ssrc=1)
        b.send(rtp(3, ssrc=2), (LO, p))
        assert a.recv()[0] == rtp(3, ssrc=2)
        assert third.nothing()
        assert query(d)[4] == 1


def test_nat_follows_every_new_source():
    a, _ = pair_peer()
    a2 = Peer()
    b, _ = pair_peer()
    with Daemon("-n") as d:
        p, q = call(d, a.port, b.port)
        a.send(rtp(1, ssrc=1), (LO, q))
        assert b.recv()[0] == rtp(1, ssrc=1)
        a2.send(rtp(2, ssrc=5), (LO, q))  # -n: the leg moves to the new source
        assert b.recv()[0] == rtp(2, ssrc=5)
        b.send(rtp(3, ssrc=2), (LO, p))
        assert a2.recv()[0] == rtp(3, ssrc=2)
        assert a.nothing()


def test_non_rtp_cannot_latch():
    a, _ = pair_peer()
    nat_a = Peer()
    b, _ = pair_peer()
    with Daemon() as d:
        p, q = call(d, a.port, b.port)
        nat_a.send(b"\x00garbage that is no RTP", (LO, q))
        assert b.nothing()
        b.send(rtp(1, ssrc=2), (LO, p))
        assert a.recv()[0] == rtp(1, ssrc=2), "the signalled address still holds"


def test_expiry_frees_ports_for_reuse():
    base = free_port(pair=True)
    with Daemon("-T", "1", ports=(base, base + 2)) as d:  # room for one port pair only (the end is never allocated)
        first = d.cmd("U e1 192.0.2.1 4000 A;1")
        assert first.startswith(str(base))
        assert d.cmd("U e2 192.0.2.1 4000 A;1") == "E72"
        wait_until(lambda: port_is_free(base) and port_is_free(base + 1), 5, "the expired session's ports to close")
        assert d.cmd("L e1 192.0.2.1 4000 A;1 B;1") == "0"
        assert d.cmd("U e2 192.0.2.1 4000 A;1") == first, "the freed pair is handed out again"
        assert "expired call-id=e1" in d.logtext()
        assert d.cmd("G nsess_timeout") == "1"


def test_setup_timeout_applies_until_answered():
    with Daemon("-T", "30", "-W", "1") as d:
        d.cmd("U w1 192.0.2.1 4000 A;1")
        d.cmd("U w2 192.0.2.1 4000 A;1")
        d.cmd("L w2 192.0.2.2 5000 A;1 B;1")
        wait_until(lambda: d.cmd("Q w1 A;1") == "E50", 5, "the unanswered offer to expire")
        assert int(d.cmd("Q w2 A;1 B;1").split()[0]) >= 25, "the answered call runs on -T"


def test_delete_and_x_close_the_sockets():
    with Daemon() as d:
        p1, q1 = call(d, 4000, 5000, "d1")
        assert not port_is_free(p1) and not port_is_free(q1 + 1)
        assert d.cmd("D d1 A") == "0"
        assert all(port_is_free(x) for x in (p1, p1 + 1, q1, q1 + 1))
        p2, q2 = call(d, 4000, 5000, "d2")
        assert d.cmd("X") == "0"
        assert all(port_is_free(x) for x in (p2, p2 + 1, q2, q2 + 1))
        assert d.cmd("I").startswith("sessions created: 2\nactive sessions: 0")


IP_RECVTOS = getattr(socket, "IP_RECVTOS", 13)  # Linux's values, where Python does not name them
IPV6_RECVTCLASS = getattr(socket, "IPV6_RECVTCLASS", 66)
IPV6_TCLASS = getattr(socket, "IPV6_TCLASS", 67)


def received_tos(peer, family):
    """The TOS byte (IPv4) or traffic class (IPv6) of the next datagram."""
    level, kind = (socket.IPPROTO_IP, socket.IP_TOS) if family == socket.AF_INET else (socket.IPPROTO_IPV6, IPV6_TCLASS)
    peer.s.settimeout(2)
    _, anc, _, _ = peer.s.recvmsg(2048, 64)
    for lvl, typ, value in anc:
        if lvl == level and typ == kind:
            return value[0]
    raise AssertionError("no TOS/traffic class on the datagram: %r" % anc)


def test_relayed_packets_carry_the_tos_for_ipv4_and_ipv6():
    """-t sets the TOS byte and the IPv6 traffic class; the default is DSCP EF."""
    for args, want in (((), 0xB8), (("-t", "40"), 40)):
        a, b = Peer(), Peer()
        b.s.setsockopt(socket.IPPROTO_IP, IP_RECVTOS, 1)
        with Daemon(*args) as d:
            p, q = call(d, a.port, b.port)
            a.send(rtp(1, ssrc=1), (LO, q))
            assert received_tos(b, socket.AF_INET) == want, args
    try:
        a6, b6 = Peer("::1", socket.AF_INET6), Peer("::1", socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    b6.s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVTCLASS, 1)
    base = free_port(pair=True)
    with Daemon("-i", "::1", "-t", "40", ports=(base, base + 8)) as d:
        p = int(d.cmd("U6 t6 ::1 %d A;1" % a6.port).split()[0])
        q = int(d.cmd("L6 t6 ::1 %d A;1 B;1" % b6.port).split()[0])
        a6.send(rtp(1, ssrc=1), ("::1", q))
        assert received_tos(b6, socket.AF_INET6) == 40


def test_ipv6_session_on_loopback():
    try:
        a, _ = pair_peer("::1", socket.AF_INET6)
        b, _ = pair_peer("::1", socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback")
    base = free_port(pair=True)
    with Daemon("-i", "::1", ports=(base, base + 4)) as d:
        pr = d.cmd("U6 c6 ::1 %d A;1" % a.port)
        p = int(pr.split()[0])
        assert pr == "%d ::1 6" % p
        q = int(d.cmd("L6 c6 ::1 %d A;1 B;1" % b.port).split()[0])
        a.send(rtp(1, ssrc=1), ("::1", q))
        assert b.recv()[0] == rtp(1, ssrc=1)
        b.send(rtp(2, ssrc=2), ("::1", p))
        assert a.recv()[0] == rtp(2, ssrc=2)
        assert d.cmd("U c4 127.0.0.1 4000 A;1").endswith(" 127.0.0.1"), "IPv4 still served"


def test_timeout_notification_is_sent():
    listener = NotifyListener()
    path = listener.path
    with Daemon("-T", "1", "--notify", "unix:" + path) as d:
        assert d.cmd("VF 20081224") == "1"
        d.cmd("U n1 192.0.2.1 4000 A;1 unix:%s tag%%201" % path)
        d.cmd("U n2 192.0.2.1 4000 A;1 unix:%s;glued" % path)  # Kamailio's form
        got = set(listener.collect(6, count=2))
        assert got == {b"tag 1\n", b"glued\n"}, got
        assert d.cmd("U n3 192.0.2.1 4000 A;1 unix:/nowhere x") != "E75"
    listener.close()


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux's value; Python 3.11 does not name it


def timestamped(sock):
    """Datagrams on sock carry the kernel's receive time (SO_TIMESTAMPNS)."""
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def recv_stamped(sock):
    data, anc, _, _ = sock.recvmsg(2048, socket.CMSG_SPACE(16))
    for level, kind, value in anc:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            sec, nsec = struct.unpack("qq", value[:16])
            return data, sec * 10**9 + nsec
    raise AssertionError("no kernel timestamp on a datagram")


def test_leftovers_are_relayed_and_control_answered_between_wakes():
    """More ready sockets (300) than one readiness poll returns (256), and more
    queued datagrams (3,900) than one wake relays (1,024), all queued while the
    daemon was stopped, together with 192 V commands (three control wakes of
    64): every datagram is relayed without a further packet arriving, every V
    is answered, and between two consecutive replies at most one wake's worth
    of packets was relayed (packet_path.h: fairness and leftovers). Kernel
    receive timestamps order replies and relayed packets."""
    sessions, per_socket, commands, per_wake = 300, 13, 192, 1024
    total = sessions * per_socket
    a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a.bind((LO, 0))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)  # holds the whole burst
    b.bind((LO, 0))
    timestamped(b)
    control = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    control.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024 * 1024)
    timestamped(control)
    base = free_port(pair=True)
    with Daemon(level="warning", ports=(base, base + 4 * sessions + 400)) as d:
        qs = [call(d, a.getsockname()[1], b.getsockname()[1], call_id="f%d" % i)[1] for i in range(sessions)]
        os.kill(d.proc.pid, signal.SIGSTOP)
        try:
            for seq in range(per_socket):
                for i, q in enumerate(qs):
                    a.sendto(rtp(seq, ssrc=i, payload=b"x" * 4), (LO, q))
            for k in range(commands):
                control.sendto(b"v%d V" % k, d.control)
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        relayed, replies = [], []
        deadline = time.monotonic() + 10
        b.settimeout(0.5)
        while len(relayed) < total and time.monotonic() < deadline:
            try:
                relayed.append(recv_stamped(b)[1])
            except socket.timeout:
                pass
        assert len(relayed) == total, "%d of %d queued packets relayed: leftovers stranded" % (len(relayed), total)
        control.settimeout(2)
        for _ in range(commands):
            reply, stamp = recv_stamped(control)
            assert reply.endswith(b" 20040107\n"), reply
            replies.append(stamp)
        replies.sort()
        edges = [0] + replies  # before the first reply, too, at most one wake ran
        runs = [sum(1 for t in relayed if lo < t < hi) for lo, hi in zip(edges, edges[1:])]
        assert max(runs) <= per_wake, "%d packets relayed between two control replies" % max(runs)
        assert sum(1 for t in relayed if t < replies[-1]) > per_wake, "relaying and commands did not interleave"
        received, forwarded = (int(x) for x in d.cmd("G npkts_rcvd npkts_relayed").split())
        assert received == forwarded == total, (received, forwarded, total)

