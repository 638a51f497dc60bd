"""Anycast cluster semantics on loopback: three instances on 127.0.0.2, .3 and
.4, each relaying on its own address with its own port range, synchronised
over TCP. The partition test runs inside a network namespace of its own (root)."""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from harness import HOSTS, Daemon, NotifyListener, Peer, free_port, header, listing, port_is_free, rtp, wait_until

def stable(lines):
    """The listing without what differs per instance (ages, counters)."""
    return sorted(re.sub(r" (age|idle|ttl)=\d+s| (callee|caller)-pkts=\S+", "", l) for l in lines)


def active(d):
    return int(re.search(r"active sessions: (\d+)", d.cmd("I")).group(1))


def tables_equal(c):
    views = [stable(listing(h, c.sync_port)) for h in c.hosts]
    return views if all(v == views[0] for v in views) else None


def ports_of(reply):
    return int(reply.split()[0])


def test_any_instance_answers_any_command(cluster):
    with cluster() as c:
        a, b, cc = c.nodes
        start = time.monotonic()
        p = a.cmd("U call1 192.0.2.10 4000 A;1")
        assert p.endswith(" 127.0.0.2") and c.ranges[0][0] <= ports_of(p) <= c.ranges[0][1]
        wait_until(lambda: b.cmd("Q call1 A;1") != "E50", 2, "the offer to reach B")
        assert time.monotonic() - start < 1.0
        q = b.cmd("L call1 192.0.2.20 5000 A;1 B;1")
        assert q.endswith(" 127.0.0.3") and c.ranges[1][0] <= ports_of(q) <= c.ranges[1][1], q
        wait_until(lambda: cc.cmd("Q call1 A;1 B;1").startswith("60 "), 2, "the answer to reach C")
        assert a.cmd("U call1 192.0.2.10 4000 A;1 B;1").split()[0] == p.split()[0], "A still answers the same port"
        views = wait_until(lambda: tables_equal(c), 2, "equal listings")
        assert len(views[0]) == 1 and "state=answered" in views[0][0]
        assert "callee=%d " % ports_of(p) in views[0][0] and "caller=%d " % ports_of(q) in views[0][0]
        assert cc.cmd("D call1 A B") == "0"
        wait_until(lambda: all(n.cmd("Q call1 A;1") == "E50" for n in c.nodes), 2, "the delete to reach everyone")
        assert all(listing(h, c.sync_port) == [] for h in c.hosts)


def test_media_through_any_instance_and_split_legs(cluster):
    with cluster() as c:
        caller, callee = Peer(), Peer()
        a = c.nodes[0]
        p = ports_of(a.cmd("U m1 127.0.0.1 %d A;1" % caller.port))
        wait_until(lambda: c.nodes[1].cmd("Q m1 A;1") != "E50", 2, "the offer to reach B")
        q = ports_of(c.nodes[1].cmd("L m1 127.0.0.1 %d A;1 B;1" % callee.port))
        assert q > 0
        wait_until(lambda: tables_equal(c) and "caller=%d " % q in listing(HOSTS[2], c.sync_port)[0], 2,
                   "the session everywhere", debug=lambda: listing(HOSTS[2], c.sync_port))
        for i, h in enumerate(HOSTS):  # each instance relays both ways on its own address
            caller.send(rtp(10 * i, ssrc=1), (h, q))
            data, src = callee.recv()
            assert data == rtp(10 * i, ssrc=1) and src == (h, p), (h, src)
            callee.send(rtp(10 * i, ssrc=2), (h, p))
            data, src = caller.recv()
            assert data == rtp(10 * i, ssrc=2) and src == (h, q), (h, src)
        # split: the caller's packets reach A, the callee's reach C, at the same time
        caller.send(rtp(100, ssrc=1), (HOSTS[0], q))
        callee.send(rtp(100, ssrc=2), (HOSTS[2], p))
        assert callee.recv()[0] == rtp(100, ssrc=1)
        assert caller.recv()[0] == rtp(100, ssrc=2)


def test_a_latched_address_is_synced_and_learning_stays_closed(cluster):
    with cluster() as c:
        signalled, nat, callee, third = Peer(), Peer(), Peer(), Peer()
        p = ports_of(c.nodes[0].cmd("U l1 127.0.0.1 %d A;1" % signalled.port))
        q = ports_of(c.nodes[0].cmd("L l1 127.0.0.1 %d A;1 B;1" % callee.port))
        wait_until(lambda: tables_equal(c), 2, "the session everywhere")
        nat.send(rtp(1, ssrc=1), (HOSTS[0], q))  # the caller, behind NAT, latches on A
        assert callee.recv()[0] == rtp(1, ssrc=1)
        wait_until(lambda: all("caller-remote=127.0.0.1:%d(learned)" % nat.port in listing(h, c.sync_port)[0]
                               for h in HOSTS), 2, "the learned address on every instance")
        third.send(rtp(1, ssrc=66), (HOSTS[2], q))  # C must not open learning again
        assert callee.nothing()
        callee.send(rtp(2, ssrc=2), (HOSTS[2], p))
        data, src = nat.recv()
        assert data == rtp(2, ssrc=2), "C relays to the address A learned"
        assert signalled.nothing() and third.nothing()


def test_expiry_follows_activity_anywhere(cluster):
    with cluster("-T", "3") as c:
        caller, callee = Peer(), Peer()
        p = ports_of(c.nodes[0].cmd("U e1 127.0.0.1 %d A;1" % caller.port))
        q = ports_of(c.nodes[0].cmd("L e1 127.0.0.1 %d A;1 B;1" % callee.port))
        wait_until(lambda: tables_equal(c), 2, "the session everywhere")
        end = time.monotonic() + 6
        seq = 0
        while time.monotonic() < end:  # media only through C, for twice the timeout
            caller.send(rtp(seq, ssrc=1), (HOSTS[2], q))
            seq += 1
            time.sleep(0.1)  # paced: 10 packets a second
        assert all(n.cmd("Q e1 A;1") != "E50" for n in c.nodes), "media through C kept it alive on A and B"
        ttl, from_caller, from_callee, relayed, dropped = map(int, c.nodes[0].cmd("Q e1 A;1 B;1").split())
        assert from_caller >= seq - 25 and relayed >= seq - 25, "Q on A counts the media C relayed: %d of %d" % (from_caller, seq)
        wait_until(lambda: all(n.cmd("Q e1 A;1") == "E50" for n in c.nodes), 8, "idle expiry everywhere")
        for n in c.nodes:
            assert n.proc.poll() is None


def test_a_killed_instance_resyncs_and_its_calls_survive(cluster):
    with cluster() as c:
        a, b, cc = c.nodes
        caller, callee = Peer(), Peer()
        p = ports_of(a.cmd("U k1 127.0.0.1 %d A;1" % caller.port))
        q = ports_of(a.cmd("L k1 127.0.0.1 %d A;1 B;1" % callee.port))
        b.cmd("U k2 192.0.2.1 4000 A;1")
        wait_until(lambda: tables_equal(c) and len(listing(HOSTS[2], c.sync_port)) == 2, 2, "two sessions everywhere")
        a.kill()  # the instance that created k1
        caller.send(rtp(1, ssrc=1), (HOSTS[1], q))
        assert callee.recv()[0] == rtp(1, ssrc=1), "B relays A's call"
        assert b.cmd("Q k1 A;1 B;1").split()[0] != "E50"
        cc.cmd("D k2 A")  # changes while A is down
        cc.cmd("U k3 192.0.2.1 4000 A;1")
        a.start()
        views = wait_until(lambda: tables_equal(c), 3, "the restarted instance to resync")
        assert sorted(re.search(r"call-id=(\S+)", l).group(1) for l in views[0]) == ["k1", "k3"]
        # A holds its own old call again, on its own ports
        caller.send(rtp(2, ssrc=1), (HOSTS[0], q))
        assert callee.recv()[0] == rtp(2, ssrc=1)
        callee.send(rtp(3, ssrc=2), (HOSTS[0], p))
        assert caller.recv()[0] == rtp(3, ssrc=2)
        assert "not bound" not in a.logtext()


def test_a_restart_learns_the_calls_of_a_peer_that_is_down_from_another(cluster):
    """B is down when A restarts: A hears B's calls from C only, before B's
    range (B never says it now), and takes them all the same."""
    with cluster() as c:
        a, b, cc = c.nodes
        for k in range(3):
            b.cmd("U of-b-%d 192.0.2.1 %d A;1" % (k, 4000 + 2 * k))
        wait_until(lambda: all(active(d) == 3 for d in c.nodes), 3, "B's calls everywhere")
        b.kill()
        a.kill()
        a.start()
        wait_until(lambda: active(a) == 3, 3, "B's calls on the restarted A", debug=lambda: a.logtext()[-1500:])
        assert "has not said its range" not in a.logtext()


def test_calls_of_a_dead_instance_expire_when_idle(cluster):
    with cluster("-T", "2") as c:
        c.nodes[0].cmd("U orphan 192.0.2.1 4000 A;1")
        wait_until(lambda: all(n.cmd("Q orphan A;1") != "E50" for n in c.nodes[1:]), 2, "the call everywhere")
        c.nodes[0].kill()
        wait_until(lambda: all(n.cmd("Q orphan A;1") == "E50" for n in c.nodes[1:]), 6, "the idle call to expire")
        assert all("expired call-id=orphan" in n.logtext() for n in c.nodes[1:])


def test_one_timeout_notification_even_when_the_creator_died(cluster):
    listener = NotifyListener()
    path = listener.path
    notifications = listener.collect
    with cluster("-T", "2", "--notify", "unix:" + path) as c:
        c.nodes[0].cmd("U alive 192.0.2.1 4000 A;1 unix:%s alive" % path)
        c.nodes[0].cmd("U orphan 192.0.2.1 4000 A;1 unix:%s orphan" % path)
        wait_until(lambda: all(n.cmd("Q orphan A;1") != "E50" for n in c.nodes), 2, "the calls everywhere")
        got = sorted(notifications(10, count=2))  # both expire while A lives: A alone tells, once per call
        assert got == [b"alive\n", b"orphan\n"], got
        assert notifications(2.5) == [], "each call is reported once"
        c.nodes[0].cmd("U orphan2 192.0.2.1 4000 A;1 unix:%s orphan2" % path)
        wait_until(lambda: all(n.cmd("Q orphan2 A;1") != "E50" for n in c.nodes), 2, "the call everywhere")
        c.nodes[0].kill()
        got = notifications(12, count=1) + notifications(2.5)  # then the others had their sweep too
        assert got == [b"orphan2\n"], "exactly one instance reports the dead creator's call: %r" % got
    listener.close()


def test_the_original_manuals_cluster_example_works_as_written():
    """anyrtpproxy(8) of the anytun project: three instances with -p 20000 25000,
    -p 25000 30000 and -p 30000 35000 (neighbours share an end port, which is
    never allocated). They sync: a call made on one is answered on the others."""
    sync_port = free_port(socket.SOCK_STREAM)
    ranges = [(20000, 25000), (25000, 30000), (30000, 35000)]
    nodes = []
    for i, h in enumerate(HOSTS):
        peers = ",".join("%s:%d" % (o, sync_port) for o in HOSTS if o != h)
        nodes.append(Daemon("-S", str(sync_port), "-I", h, "-M", peers, host=h, media=h, ports=ranges[i],
                            control=free_port(), start=False, level="info"))
    try:
        for n in nodes:
            n.start()
        wait_until(lambda: all(n.logtext().count("is instance ") == 2 for n in nodes), 5, "every hello taken")
        for n in nodes:
            assert "overlap" not in n.logtext(), n.logtext()
        port = ports_of(nodes[0].cmd("U manual 192.0.2.1 4000 A;1"))
        assert 20000 <= port < 25000
        wait_until(lambda: all(n.cmd("Q manual A;1") != "E50" for n in nodes[1:]), 3, "the call on the others")
        assert 25000 <= ports_of(nodes[1].cmd("L manual 192.0.2.2 5000 A;1 B;1")) < 30000
        wait_until(lambda: nodes[2].cmd("Q manual A;1 B;1").startswith("60 "), 3, "the answer on the third")
    finally:
        for n in nodes:
            n.stop()


def test_sync_over_ipv6():
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    p1, p2 = free_port(socket.SOCK_STREAM, "::1", socket.AF_INET6), free_port(socket.SOCK_STREAM, "::1", socket.AF_INET6)
    base = free_port(pair=True)
    one = Daemon("-S", str(p1), "-I", "::1", "-M", "[::1]:%d" % p2, host=HOSTS[0], media=HOSTS[0],
                 ports=(base, base + 49), level="info")
    two = Daemon("-S", str(p2), "-I", "::1", "-M", "[::1]:%d" % p1, host=HOSTS[1], media=HOSTS[1],
                 ports=(base + 100, base + 149), level="info")
    try:
        one.cmd("U six 192.0.2.1 4000 A;1")
        wait_until(lambda: two.cmd("Q six A;1") != "E50", 3, "the session over IPv6 sync")
        assert len(listing("::1", p2)) == 1
    finally:
        one.stop()
        two.stop()


def test_overlapping_ranges_are_refused():
    sync_port = free_port(socket.SOCK_STREAM)
    base = free_port(pair=True)
    one = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], sync_port), host=HOSTS[0],
                 media=HOSTS[0], ports=(base, base + 99), level="info")
    two = Daemon("-S", str(sync_port), "-I", HOSTS[1], "-M", "%s:%d" % (HOSTS[0], sync_port), host=HOSTS[1],
                 media=HOSTS[1], ports=(base + 50, base + 149), level="info")
    try:
        one.cmd("U o1 192.0.2.1 4000 A;1")
        wait_until(lambda: "overlap ours" in one.logtext() and "overlap ours" in two.logtext(), 3, "both to refuse")
        assert two.cmd("Q o1 A;1") == "E50", "the other's sessions are not taken over"
    finally:
        one.stop()
        two.stop()


def test_the_listing_shows_changes_as_they_happen(cluster):
    with cluster() as c:
        s = socket.create_connection((HOSTS[1], c.sync_port), timeout=2)
        got = b""
        while b"# end of listing" not in got:
            got += s.recv(65536)
        c.nodes[1].cmd("U w1 192.0.2.1 4000 A;1")  # a change on this instance: an S line
        c.nodes[0].cmd("U w2 192.0.2.1 4000 A;1")  # a change that came from a peer: an S line too
        wait_until(lambda: c.nodes[2].cmd("Q w2 A;1") != "E50", 2, "w2 to reach C")
        assert c.nodes[2].cmd("D w2 A") == "0"
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not (b"call-id=w1" in got and b"S call-id=w2" in got and b"deleted call-id=w2" in got):
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                got += s.recv(65536)
            except socket.timeout:
                break
        text = got.decode()
        assert re.search(r"^S call-id=w1 media=1 from-tag=A;1", text, re.M), text
        assert re.search(r"^S call-id=w2 media=1 from-tag=A;1", text, re.M), text
        assert not re.search(r"^F ", text, re.M), "an operator gets no frames: %s" % text
        assert re.search(r"^# deleted call-id=w2 tag=A;1 by ", text, re.M), text


def test_hostile_sync_input_does_not_hurt():
    """A fake peer that speaks garbage, oversize frames, a newer version; 200 idle
    connections to the sync port; media keeps flowing and memory stays bounded."""
    fake = fake_peer_listener()
    fake_port = fake.getsockname()[1]
    sync_port = free_port(socket.SOCK_STREAM)
    caller, callee = Peer(), Peer()
    with Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], fake_port), host=HOSTS[0],
                media=HOSTS[0], level="info") as d:
        p = ports_of(d.cmd("U h1 127.0.0.1 %d A;1" % caller.port))
        q = ports_of(d.cmd("L h1 127.0.0.1 %d A;1 B;1" % callee.port))
        attacks = [
            b"F 1 upsert 20 x\n4000000000 abcdefghi\n",          # a string claiming 4 GB
            b"F 1 upsert 40 x\n22 serialization::archive 17 0 0 4\n" + b" " * 6 + b"\n",
            b"F 9 upsert 3 x\nabc\n",                              # a newer wire version
            b"F 1 upsert 99999999 x\n",                            # oversized
            b"F 1 upsert 100 x\nshort",                            # truncated, then closed
            os.urandom(5000),
            b"x" * 100000,                                         # a line without end
        ]
        rss = []
        for attack in attacks:
            conn, _ = fake.accept()
            conn.sendall(attack)
            conn.close()  # the kernel delivers the bytes before the end
            caller.send(rtp(len(rss), ssrc=1), (HOSTS[0], q))
            assert callee.recv()[0] == rtp(len(rss), ssrc=1), "media keeps flowing"
            rss.append(int(open("/proc/%d/status" % d.proc.pid).read().split("VmRSS:")[1].split()[0]))
        assert max(rss) < 64 * 1024, "RSS stayed bounded: %s KiB" % rss
        log = d.logtext()
        assert "newer than ours" in log and "4000000000" in log, log[-2000:]
        idle = []
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex((HOSTS[0], sync_port))
            idle.append(s)
        wait_until(lambda: "refused a connection from 127.0.0.1: too many" in d.logtext(), 3, "the flood to be capped")
        for i in range(20):
            caller.send(rtp(100 + i, ssrc=1), (HOSTS[0], q))
            assert callee.recv()[0] == rtp(100 + i, ssrc=1)
        assert d.cmd("V") == "20040107"
        for s in idle:
            s.close()
        assert len(listing(HOSTS[0], sync_port)) == 1, "the sync port still serves after the flood"
        chatty = socket.create_connection((HOSTS[0], sync_port), timeout=2)
        try:
            for _ in range(100):  # 100 KiB to a read-only port: it hangs up (at the first line that is no hello)
                chatty.sendall(b"x" * 1024)
        except OSError:
            pass
        try:
            closed = chatty.recv(65536) == b""
        except (ConnectionResetError, socket.timeout) as e:
            closed = isinstance(e, ConnectionResetError)
        assert closed, "the chatty client is cut off"
        chatty.close()
    fake.close()


def partition(node_host, peer_host, port, on, cut=True):
    """Drops the sync traffic between two instances (inside the test's own
    namespace); `cut`: and resets the connections already open, else they
    stall in silence as behind a broken link."""
    if on:
        rules = ("table inet anyrtp_partition {\n chain out {\n  type filter hook output priority 0;\n"
                 "  ip saddr %s ip daddr %s tcp dport %d drop\n  ip saddr %s ip daddr %s tcp sport %d drop\n"
                 "  ip saddr %s ip daddr %s tcp dport %d drop\n  ip saddr %s ip daddr %s tcp sport %d drop\n }\n}\n"
                 % (node_host, peer_host, port, peer_host, node_host, port,
                    peer_host, node_host, port, node_host, peer_host, port))
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)
        if not cut:
            return
        # connections already open would linger: cut them now
        subprocess.run(["ss", "-K", "dst", peer_host, "dport", "=", ":%d" % port, "src", node_host], capture_output=True)
        subprocess.run(["ss", "-K", "dst", node_host, "dport", "=", ":%d" % port, "src", peer_host], capture_output=True)
    else:
        subprocess.run(["nft", "delete", "table", "inet", "anyrtp_partition"], check=True)


def test_partition_heals(netns, cluster):
    """A and B cannot reach each other for a while (an nftables rule in the
    test's own namespace); C still talks to both. What changed on either side
    meanwhile converges within 2 s of the partition's end."""
    if not os.path.exists("/usr/sbin/nft"):
        pytest.skip("needs nftables (tests/install-deps.sh test)")
    names = lambda lines: sorted(re.search(r"call-id=(\S+)", l).group(1) for l in lines)
    with cluster() as c:
        a, b, cc = c.nodes
        a.cmd("U before 192.0.2.1 4000 A;1")
        b.cmd("U doomed 192.0.2.1 4000 A;1")
        wait_until(lambda: tables_equal(c) and len(listing(HOSTS[0], c.sync_port)) == 2, 2, "two sessions everywhere")
        partition(HOSTS[0], HOSTS[1], c.sync_port, True)  # A and B cannot sync; C still talks to both
        wait_until(lambda: "sync: %s:%d:" % (HOSTS[1], c.sync_port) in a.logtext() and
                   "sync: %s:%d:" % (HOSTS[0], c.sync_port) in b.logtext(), 5, "A and B to lose each other")
        a.cmd("U during-a 192.0.2.1 4000 A;1")
        b.cmd("U during-b 192.0.2.1 4000 A;1")
        a.cmd("D doomed A")
        b.cmd("L before 192.0.2.2 5000 A;1 B;1")
        wait_until(lambda: names(listing(HOSTS[2], c.sync_port)) == ["before", "during-a", "during-b"], 5,
                   "C to hold what both sides did")
        partition(HOSTS[0], HOSTS[1], c.sync_port, False)
        healed = time.monotonic()
        views = wait_until(lambda: tables_equal(c), 4, "the tables to converge")
        took = time.monotonic() - healed
        assert names(views[0]) == ["before", "during-a", "during-b"], views[0]
        assert "state=answered" in [l for l in views[0] if "call-id=before" in l][0]
        assert took < 2.0, "converged in %.2f s" % took


@pytest.mark.parametrize("seconds", [2.5, 6])
def test_a_silent_partition_of_any_length_converges_within_2_s_of_its_end(netns, cluster, seconds):
    """Nothing tells the instances of this partition: their connections
    stall. A connection on which no frame came for 3 s is dialled again, so
    what changed meanwhile converges within 2 s of the end, whatever its
    length (TCP's own retransmissions would wait ever longer)."""
    if not os.path.exists("/usr/sbin/nft"):
        pytest.skip("needs nftables (tests/install-deps.sh test)")
    with cluster(n=2) as c:
        a, b = c.nodes
        a.cmd("U before 192.0.2.1 4000 A;1")
        wait_until(lambda: tables_equal(c) and len(listing(HOSTS[0], c.sync_port)) == 1, 2, "the session on both")
        partition(HOSTS[0], HOSTS[1], c.sync_port, True, cut=False)
        a.cmd("U during 192.0.2.1 4000 A;1")
        b.cmd("D before A")
        end = time.monotonic() + seconds
        wait_until(lambda: time.monotonic() >= end, seconds + 1, "the partition's end")
        partition(HOSTS[0], HOSTS[1], c.sync_port, False)
        healed = time.monotonic()
        wait_until(lambda: tables_equal(c) and len(listing(HOSTS[0], c.sync_port)) == 1, 4,
                   "the tables to converge", debug=lambda: [listing(h, c.sync_port) for h in HOSTS[:2]])
        took = time.monotonic() - healed
        assert "call-id=during" in listing(HOSTS[1], c.sync_port)[0]
        assert took < 2.0, "converged %.2f s after a %.1f s partition" % (took, seconds)
        if seconds > 3:
            assert "the path or the peer is silent" in a.logtext() + b.logtext()


def test_a_peer_dialling_from_the_wrong_address_hears_why_and_backs_off(netns):
    """Two instances on one host with -M but no -I: each dials from
    127.0.0.1, which the other does not know. Both sides log why, naming -I,
    and the dialling backs off to once a second."""
    ports = [free_port(socket.SOCK_STREAM), free_port(socket.SOCK_STREAM)]  # both listen on every address
    nodes = [Daemon("-S", str(ports[i]), "-M", "%s:%d" % (HOSTS[1 - i], ports[1 - i]), host=h, media=h, level="debug",
                    ports=(21000 + 1000 * i, 21099 + 1000 * i)) for i, h in enumerate(HOSTS[:2])]
    try:
        wait_until(lambda: all("give it -I" in d.logtext() for d in nodes), 5, "both to say why",
                   debug=lambda: [d.logtext()[-1500:] for d in nodes])
        text = nodes[0].logtext()
        assert "refused a peer's hello from 127.0.0.1, which is none of instance" in text, text[-2000:]
        assert "sync: refused a connection from 127.0.0.1: a peer's hello from 127.0.0.1" in text, text[-2000:]
        before = nodes[0].logtext().count("refused a peer's hello")
        start = time.monotonic()
        wait_until(lambda: time.monotonic() - start > 3, 4, "three seconds")
        dials = nodes[0].logtext().count("refused a peer's hello") - before
        assert dials <= 5, "%d attempts in 3 s" % dials
        peers = [l for l in header(HOSTS[0], ports[0]) if l.startswith("# peer: ")]
        assert len(peers) == 1 and "not connected: refused a peer's hello from 127.0.0.1" in peers[0], peers
    finally:
        for d in nodes:
            d.stop()


def test_an_unbound_leg_is_shown_retried_and_relays_once_it_can_be_bound():
    """An instance short of descriptors (that binds every mirrored leg:
    --catch-all=off) cannot bind all of its peer's sessions:
    it says so (I, its listing, its peer's listing), and once sockets are
    closed it binds them and relays their media."""
    sync_port = free_port(socket.SOCK_STREAM)
    base = free_port(pair=True) // 1000 * 1000
    a = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], sync_port), host=HOSTS[0],
               media=HOSTS[0], ports=(base, base + 199), control=free_port(), start=False, level="info")
    b = Daemon("-S", str(sync_port), "-I", HOSTS[1], "-M", "%s:%d" % (HOSTS[0], sync_port), "--catch-all=off", host=HOSTS[1],
               media=HOSTS[1], ports=(base + 300, base + 499), control=free_port(), start=False, level="info")
    b.argv = ["prlimit", "--nofile=72:72", "--"] + b.argv  # room for about 6 sessions' sockets (32 kept for connections)
    caller, callee = Peer(), Peer()
    with a, b:
        a.start()
        b.start()
        wait_until(lambda: "sync: connected to" in a.logtext() and "sync: connected to" in b.logtext(), 5,
                   "the two instances to connect")
        legs = []
        for i in range(12):
            p = ports_of(a.cmd("U u%d 127.0.0.1 %d A;1" % (i, caller.port)))
            q = ports_of(a.cmd("L u%d 127.0.0.1 %d A;1 B;1" % (i, callee.port)))
            legs.append((p, q))
        wait_until(lambda: "open-file limit is reached" in b.logtext(), 5, "B to say it cannot bind")
        unbound = lambda: int(re.search(r"unbound legs: (\d+)", b.cmd("I")).group(1))
        wait_until(lambda: unbound() > 0 and b.cmd("Q u11 A;1 B;1") != "E50", 5, "B to hold the sessions unbound")
        # Out of descriptors for media, B keeps its last ones for connections and does not spin.
        queued = socket.create_connection((HOSTS[1], sync_port), timeout=2)
        cpu = lambda: sum(int(x) for x in open("/proc/%d/stat" % b.proc.pid).read().rsplit(")", 1)[1].split()[11:13])
        start, spent = time.monotonic(), cpu()
        wait_until(lambda: time.monotonic() - start > 1.0, 2)
        ticks = os.sysconf("SC_CLK_TCK")
        assert (cpu() - spent) / ticks < 0.3, "B used %.2f s of CPU in 1 s" % ((cpu() - spent) / ticks)
        queued.close()
        wait_until(lambda: any("(unbound)" in l for l in listing(HOSTS[1], sync_port)), 5, "B's listing to mark it")
        wait_until(lambda: any("(unbound at " in l for l in listing(HOSTS[0], sync_port)), 5,
                   "A's listing to show which instance cannot carry which leg")
        for i in range(8):  # B closes their sockets, and binds the others' legs
            assert a.cmd("D u%d A" % i) == "0"
        wait_until(lambda: unbound() == 0, 8, "B to bind the legs it could not")
        assert "is bound now" in b.logtext()
        p, q = legs[11]
        caller.send(rtp(1, ssrc=11), (HOSTS[1], q))
        data, src = callee.recv(2)
        assert data == rtp(1, ssrc=11) and src == (HOSTS[1], p), (data, src)
        wait_until(lambda: not any("unbound" in l for l in listing(HOSTS[0], sync_port)), 5,
                   "A's listing to drop the mark")


def fake_peer_listener():
    """A TCP listener on a peer's address, for a daemon to sync from (-M)."""
    fake = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fake.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    fake.bind((HOSTS[1], 0))
    fake.listen(16)
    fake.settimeout(5)
    return fake


def rss_kib(pid):
    return int(open("/proc/%d/status" % pid).read().split("VmRSS:")[1].split()[0])


def test_a_dropped_slow_reader_gives_its_memory_back():
    """A peer that stops reading while changes pile up is dropped at 64 MiB
    queued, and the daemon's RSS comes back near where it was."""
    if os.environ.get("SANITIZE") == "1":
        pytest.skip("ASan's allocator keeps freed memory in quarantine: RSS says nothing of glibc's here")
    sync_port = free_port(socket.SOCK_STREAM)
    with Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], free_port(socket.SOCK_STREAM)),
                host=HOSTS[0], media=HOSTS[0], level="warning", ports=(20000, 20999)) as d:
        calls = ["%04d%s" % (i, "c" * 1000) for i in range(20)]  # long call-ids: long change lines
        for c in calls:
            assert d.cmd("U %s 192.0.2.1 4000 A;1" % c).split()[0].isdigit()
        base = rss_kib(d.proc.pid)
        slow = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.bind((HOSTS[1], 0))  # the configured peer's address
        slow.connect((HOSTS[0], sync_port))
        slow.sendall(b"P 7 slow:1\n")  # a peer, which then never reads
        deadline = time.monotonic() + 60
        sent = 0
        while "reads too slowly" not in d.logtext() and time.monotonic() < deadline:
            for k in range(50):  # each U is a change: a frame of about 1.4 KB for the peer
                d.sock.sendto(b"x%d U %s 192.0.2.%d 4000 A;1" % (sent + k, calls[k % 20].encode(), 1 + sent % 200),
                              d.control)
            sent += 50
            d.sock.settimeout(1)
            try:
                for _ in range(50):
                    d.sock.recv(65536)
            except socket.timeout:
                pass
        assert "reads too slowly" in d.logtext(), "not dropped after %d changes" % sent
        wait_until(lambda: rss_kib(d.proc.pid) < base + 16 * 1024, 5, "the memory to go back",
                   debug=lambda: (base, rss_kib(d.proc.pid)))
        slow.close()


def closed_without_a_byte(host, port, source, timeout=2):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((source, 0))
    s.settimeout(timeout)
    s.connect((host, port))
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    s.close()
    return data == b""


def test_strangers_get_nothing_and_are_logged_once():
    """A client that is neither a configured peer nor in --sync-allow is closed
    before a byte is written, counted, and logged once per address a minute."""
    sync_port = free_port(socket.SOCK_STREAM)
    with Daemon("-S", str(sync_port), "-I", HOSTS[0], "--sync-allow", "127.0.0.9/32", host=HOSTS[0], media=HOSTS[0],
                level="info") as d:
        d.cmd("U secret-call 192.0.2.1 4000 A;1")
        for _ in range(5):
            assert closed_without_a_byte(HOSTS[0], sync_port, "127.0.0.1")
        assert closed_without_a_byte(HOSTS[0], sync_port, "127.0.0.7")
        log = d.logtext()
        assert log.count("refused a connection from 127.0.0.1: neither a configured peer nor in --sync-allow") == 1, log
        assert log.count("refused a connection from 127.0.0.7") == 1, log
        d.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: re.search(r" refused=6$", d.logtext(), re.M), 2, "6 refusals counted")
        # the allowed operator reads the listing without typing anything
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.9", 0))
        s.settimeout(2)
        s.connect((HOSTS[0], sync_port))
        got = b""
        while b"# end of listing" not in got:
            got += s.recv(65536)
        assert b"S call-id=secret-call" in got and b"F " not in got
        s.close()


def test_a_peer_gets_the_machine_stream_only(cluster):
    """A peer (its address, its hello line) gets frames, never listing lines."""
    with cluster(hosts=HOSTS[:2]) as c:
        c.nodes[0].cmd("U framed 192.0.2.1 4000 A;1")
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOSTS[1], 0))  # B's address: a configured peer of A
        s.settimeout(2)
        s.connect((HOSTS[0], c.sync_port))
        s.sendall(b"P 7 probe:1\n")
        got = b""
        deadline = time.monotonic() + 3
        while b"call-id=framed" not in got and time.monotonic() < deadline:
            got += s.recv(65536)
        s.close()
        assert got.startswith(b"F 7 hello "), got[:200]
        assert b"call-id=framed" in got
        assert not re.search(rb"^(S |#)", got, re.M), "a peer gets no listing lines: %r" % got[:500]
        # the same address without a hello is no operator (not in --sync-allow): closed after 5 s, unread
        start = time.monotonic()
        assert closed_without_a_byte(HOSTS[0], c.sync_port, HOSTS[1], timeout=8)
        assert time.monotonic() - start >= 4.5


def test_idle_connections_cannot_lock_a_peer_out(cluster):
    """100 idle connections, from operators' addresses and from strangers', while
    a peer restarts: the peer still gets its slot and the whole table."""
    with cluster("--sync-allow", "127.0.0.0/8", hosts=HOSTS[:2]) as c:
        a, b = c.nodes
        a.cmd("U before-flood 192.0.2.1 4000 A;1")
        wait_until(lambda: b.cmd("Q before-flood A;1") != "E50", 3, "the call on B")
        b.kill()
        idle = []
        for i in range(100):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.%d.%d" % (1 + i // 50, 10 + i % 50), 0))
            s.setblocking(False)
            s.connect_ex((HOSTS[0], c.sync_port))
            idle.append(s)
        a.cmd("U during-flood 192.0.2.1 4000 A;1")
        b.start()
        wait_until(lambda: b.cmd("Q during-flood A;1") != "E50" and b.cmd("Q before-flood A;1") != "E50", 5,
                   "the restarted peer to get A's table despite the flood")
        for s in idle:
            s.close()


def v2_frame(kind, fields):
    """A frame of sync wire version 2: Boost text archive fields (numbers, and
    strings as "<size> <bytes>"), in the order of src/core/sync_codec.cpp."""
    payload = " ".join(str(f) for f in fields) + "\n"
    return ("F 2 %s %d x\n" % (kind, len(payload.encode()))).encode() + payload.encode() + b"\n"


def text(value):
    return "%d %s" % (len(value.encode()), value)


def leg_fields(port, owner, remote=("127.0.0.1", 0)):
    known = 1 if remote[1] else 0
    return [port, text(remote[0]), remote[1], known, 0, text(remote[0]), remote[1] + known, known, 0,
            0, 0, 0, text(""), 0, 0, 0, 0, text(owner), text("0.0.0.0"), 0, 0]


def session_frame(call, ports, owners, notify=("", ""), origin="evil:1"):
    fields = [text(call), text("A;1"), text(""), 0]
    for port, owner in zip(ports, owners):
        fields += leg_fields(port, owner, ("127.0.0.1", 4000))
    fields += [0, 0, 1, text(notify[0]), text(notify[1]), text(origin), 5, text(origin)]
    return v2_frame("upsert", fields)


def test_a_peer_filling_the_table_with_maximal_strings_stops_at_the_budget():
    """20,000 sessions with every string at its bound (port-less legs, so only
    memory counts): the table stops at its 64 MiB budget, says so, and the
    daemon's memory stays within the budget."""
    fake = fake_peer_listener()
    with Daemon("-M", "%s:%d" % fake.getsockname(), host=HOSTS[0], media=HOSTS[0], level="notice") as d:
        base = rss_kib(d.proc.pid)
        conn, _ = fake.accept()
        conn.settimeout(30)
        origin = "f" * 64
        big = []
        for i in range(20000):
            fields = [text("%05d" % i + "c" * 1019), text("t" * 256), text("u" * 256), 0]
            for _ in range(2):
                fields += [0, text("0.0.0.0"), 0, 0, 0, text("0.0.0.0"), 0, 0, 0, 0, 0, 0, text("k" * 256),
                           0, 0, 0, 0, text(""), text("0.0.0.0"), 0, 0]
            fields += [0, 0, 1, text(""), text("n" * 1024), text(origin), 1, text(origin)]
            big.append(v2_frame("upsert", fields))
        conn.sendall(v2_frame("hello", [text(origin), 10000, 10999, 20000]) + b"".join(big))
        wait_until(lambda: "memory budget (64 MiB) is used up" in d.logtext(), 20, "the budget to be reached")

        def counted():  # sessions taken and refused for the budget, from the SIGUSR1 line
            d.proc.send_signal(signal.SIGUSR1)  # the line comes by one of the next polls
            stats = re.findall(r" applied=(\d+) .* refused-budget=(\d+)", d.logtext())
            return tuple(map(int, stats[-1])) if stats else (0, 0)
        wait_until(lambda: sum(counted()) == 20000, 20, "every session to be taken or refused", debug=counted)
        held, refused = counted()
        grown = rss_kib(d.proc.pid) - base
        assert 5000 < held < 20000 and refused == 20000 - held, (held, refused)
        assert int(re.search(r"active sessions: (\d+)", d.cmd("I")).group(1)) == held
        if os.environ.get("SANITIZE") != "1":  # ASan's shadow memory and quarantine are no measure of ours
            assert grown < 96 * 1024, "RSS grew by %d KiB for a 64 MiB budget" % grown
        conn.close()
    fake.close()


def test_a_peers_data_is_checked_like_a_command():
    """A peer that speaks valid frames still binds nothing outside the range it
    announced (port 5060 stays free), smuggles no line breaks into a
    notification, speaks for no other instance, and what it sends that is
    valid still applies."""
    fake = fake_peer_listener()
    with Daemon("-M", "%s:%d" % fake.getsockname(), host=HOSTS[0], media=HOSTS[0], level="info") as d:
        lo = 10000 if d.ports[0] > 20000 else 50000  # the fake's range, away from the daemon's
        conn, _ = fake.accept()
        conn.sendall(session_frame("early", (lo, lo + 2), ("evil:1", "evil:1")) +  # before its hello
                     v2_frame("hello", [text("evil:1"), lo, lo + 999, 3]) +
                     session_frame("dns", (5060, lo + 2), ("evil:1", "evil:1")) +
                     session_frame("crlf", (lo + 4, lo + 6), ("evil:1", "evil:1"), ("tcp:127.0.0.1:9", "x\r\nBYE")) +
                     session_frame("ghost", (lo + 8, lo + 10), ("ghost:2", "ghost:2")) +
                     session_frame("ok", (lo + 12, lo + 14), ("evil:1", "evil:1")))
        wait_until(lambda: d.cmd("Q ok A;1 B;1") != "E50", 5, "the valid session to apply")
        for call in ("early", "dns", "crlf", "ghost"):
            assert d.cmd("Q %s A;1 B;1" % call) == "E50", call
        assert port_is_free(5060, host=HOSTS[0]), "port 5060 was bound for a peer"
        log = d.logtext()
        for why in ("a frame before its hello", "port 5060 outside the range", "a notify target or tag",
                    "ghost:2, an instance that has not said its range, lies in the range of evil:1"):
            assert why in log, (why, log[-3000:])
        d.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: "invalid=4 " in d.logtext(), 2, "4 refused frames counted")
        conn.close()
    fake.close()


