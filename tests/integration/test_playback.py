"""Playback: P and S with --prompts, real RTP paced at
20 ms, relaying suppressed while a prompt plays, and a prompt that moves to
the peer when its instance dies. Loopback only."""

import os
import shutil
import struct
import tempfile
import time

from harness import Daemon, Peer, listing, rtp, wait_until

LO = "127.0.0.1"
FRAMES = [bytes([0x10 + i]) * 160 for i in range(3)]  # moh.8: three distinct 20 ms PCMA frames


def prompts():
    d = tempfile.mkdtemp(prefix="arp-prompts-")
    with open(os.path.join(d, "moh.8"), "wb") as f:
        f.write(b"".join(FRAMES))
    return d


def call(d, a, b, cid, host=LO):
    p = int(d.cmd("Uc8,0 %s %s %d A;1" % (cid, host, a.port)).split()[0])
    q = int(d.cmd("Lc8 %s %s %d A;1 B;1" % (cid, host, b.port)).split()[0])
    return p, q


def latched_call(d, a, b, cid):
    """A call whose both legs latched: each party sent one packet through."""
    p, q = call(d, a, b, cid)
    a.send(rtp(1), (LO, q))
    assert b.recv()[0] == rtp(1)
    b.send(rtp(2), (LO, p))
    assert a.recv()[0] == rtp(2)
    return p, q


def receive(peer, count, timeout=2.0):
    """Up to count (arrival time, header fields, payload) of RTP packets."""
    got, end = [], time.monotonic() + timeout
    while len(got) < count and time.monotonic() < end:
        data, _ = peer.recv(max(0.01, end - time.monotonic()))
        if data is None:
            break
        b0, b1, seq, ts, ssrc = struct.unpack("!BBHII", data[:12])
        got.append((time.monotonic(), b1 & 0x80, b1 & 0x7f, seq, ts, ssrc, data[12:]))
    return got


def test_p_plays_the_prompt_as_paced_rtp_and_the_leg_relays_again_after():
    dirp = prompts()
    a, b = Peer(), Peer()
    with Daemon("--prompts", dirp) as d:
        p, q = latched_call(d, a, b, "pb")
        # Kamailio's rtpproxy_stream2uac("moh", 2): P2 cid moh session F;1 T;1 plays to the caller (F's party).
        assert d.cmd("P2 pb moh session A;1 B;1") == "0"
        b.send(rtp(3), (LO, p))  # the callee's media waits while the caller hears the prompt
        got = receive(a, 6)
        assert len(got) == 6, "only %d prompt packets" % len(got)
        assert [g[6] for g in got] == FRAMES * 2  # the file, twice, frame by frame
        assert all(g[2] == 8 for g in got)  # PCMA, chosen from the session's codec list "8,0"
        assert got[0][1] and not any(g[1] for g in got[1:])  # marker on the first packet only
        assert [(g[3] - got[0][3]) % 65536 for g in got] == list(range(6))
        assert [(g[4] - got[0][4]) % 2 ** 32 for g in got] == [160 * i for i in range(6)]
        assert len({g[5] for g in got}) == 1
        assert got[-1][0] - got[0][0] >= 0.08, "6 packets in %.3f s: not paced" % (got[-1][0] - got[0][0])
        assert a.nothing(0.2)  # played twice: then silence, and rtp(3) was never relayed
        b.send(rtp(4), (LO, p))
        assert a.recv()[0] == rtp(4), "the leg relays again after the prompt"
        assert d.cmd("Q pb A;1 B;1")  # still there
    a.close()
    b.close()
    shutil.rmtree(dirp)


def test_s_stops_an_endless_prompt_and_errors_follow_the_protocol():
    dirp = prompts()
    a, b = Peer(), Peer()
    with Daemon("--prompts", dirp) as d:
        p, q = latched_call(d, a, b, "st")
        assert d.cmd("P-1 st moh 0,8 A;1 B;1") == "0"  # 0 has no file: 8 plays
        assert len(receive(a, 10)) == 10
        assert d.cmd("S st A;1 B;1") == "0"
        while a.recv(0.05)[0] is not None:  # what was in flight
            pass
        assert a.nothing(0.2)
        b.send(rtp(5), (LO, p))
        assert a.recv()[0] == rtp(5)
        assert d.cmd("S st A;1 B;1") == "0"  # nothing plays: still 0
        assert d.cmd("P1 st nosuch 8 A;1 B;1") == "E60"
        assert d.cmd("P1 st ../moh 8 A;1 B;1") == "E60"  # a name, never a path
        assert d.cmd("P1 st moh 18 A;1 B;1") == "E60"  # no moh.18
        assert d.cmd("P1 nosuch moh 8 A;1") == "E50"
        assert d.cmd("Px st moh 8 A;1") == "E17"
        d.cmd("U nc %s %d A;1" % (LO, a.port))
        assert d.cmd("P1 nc moh session A;1") == "E35"  # no c list for that party
    with Daemon() as d:  # no --prompts
        p, q = call(d, a, b, "np")
        assert d.cmd("P1 np moh 8 A;1 B;1") == "E60"
    a.close()
    b.close()
    shutil.rmtree(dirp)


def test_a_prompt_continues_on_the_peer_when_its_instance_dies(cluster):
    dirp = prompts()
    c = cluster("--prompts", dirp, n=2)
    nodes, hosts = c.nodes, c.hosts
    a, b = Peer(hosts[0]), Peer(hosts[0])
    try:
        p, q = call(nodes[0], a, b, "mv", host=hosts[0])
        a.send(rtp(1), (hosts[0], q))
        assert b.recv()[0] == rtp(1)
        wait_until(lambda: nodes[1].cmd("Q mv A;1 B;1") != "E50" and "unbound legs: 0" in nodes[1].cmd("I"), 5,
                   "the peer to hold the call")
        assert nodes[0].cmd("P-1 mv moh 8 A;1 B;1") == "0"
        first = receive(a, 5)
        assert len(first) == 5 and all(g[6] in FRAMES for g in first)
        wait_until(lambda: any("call-id=mv " in l and "playing=moh" in l for l in listing(hosts[1], c.sync_port)), 3,
                   "the prompt to reach the peer")
        nodes[0].kill()
        b.send(rtp(7), (hosts[1], p))  # the route moved: the callee's media (held back) keeps the call alive on B
        later = [g for g in receive(a, 30, timeout=3) if g[0] > time.monotonic() - 1.0][-5:]  # the last second's
        assert len(later) == 5, "the peer did not continue the prompt"
        assert {g[5] for g in later} == {first[0][5]}, "the same SSRC"
        assert (later[0][3] - first[0][3]) % 65536 > 5, "sequence numbers continue past A's"
        assert "taken over from" in nodes[1].logtext()
        assert nodes[1].cmd("S mv A;1 B;1") == "0"
    finally:
        a.close()
        b.close()
        shutil.rmtree(dirp)

