"""Planned stops on a loopback cluster: SIGTERM makes an instance with peers
say "draining" on its --health socket at once, keep relaying and answering,
and stop a second after its calls' packets stopped coming (their route moved)
or after --drain-seconds; a second SIGTERM stops at once. SIGUSR2 drains for
maintenance without stopping, and again serves again. A restarted instance
says it is syncing until its peers' tables are there."""

import os
import shutil
import signal
import socket
import tempfile
import time

import pytest

from harness import HealthClient, Peer, free_port, header, rtp, wait_until
from test_operations import LO, samples, scrape


@pytest.fixture
def sockets():
    work = tempfile.mkdtemp(prefix="arp-drain-")
    yield lambda i: os.path.join(work, "health%d.sock" % i)
    shutil.rmtree(work, ignore_errors=True)


def two(cluster, sockets, *args):
    return cluster(*args, n=2, args_of=lambda i: ["--health", sockets(i)])


class Call:
    """One call through instance `d`: a caller and a callee on loopback."""

    def __init__(self, d, name="drain"):
        self.a, self.b = Peer(), Peer()
        p = d.cmd("U %s 127.0.0.1 %d ft" % (name, self.a.port))
        q = d.cmd("L %s 127.0.0.1 %d ft tt" % (name, self.b.port))
        self.to_b = (p.split()[1], int(p.split()[0]))
        self.to_a = (q.split()[1], int(q.split()[0]))
        self.seq = 0

    def packet(self):
        """One packet each way; how many arrived at the other side."""
        self.seq += 1
        self.a.send(rtp(self.seq, 0x1111), self.to_b)
        self.b.send(rtp(self.seq, 0x2222), self.to_a)
        got = 0
        for peer in (self.a, self.b):
            try:
                peer.recv(0.2)
                got += 1
            except OSError:
                pass
        return got

    def close(self):
        self.a.close()
        self.b.close()


def paced(call, seconds, until=lambda: False):
    """Media at about 50 pps for `seconds` (or until `until()`); the share of packets that arrived."""
    sent, got, end = 0, 0, time.monotonic() + seconds
    while time.monotonic() < end and not until():
        got += call.packet()
        sent += 2
        time.sleep(0.02)
    return got / max(sent, 1)


def test_sigterm_drains_while_packets_come_and_stops_a_second_after_they_stop(cluster, sockets):
    c = two(cluster, sockets)
    d, peer = c.nodes
    health = HealthClient(sockets(0))
    wait_until(lambda: health.line().startswith("healthy "), 3, "healthy")
    call = Call(d)
    try:
        assert paced(call, 0.5) == 1.0
        wait_until(lambda: "active sessions: 1" in peer.cmd("I"), 3, "the call on the peer")
        d.terminate()
        t0 = time.monotonic()
        wait_until(lambda: health.line() == "draining", 0.5, "the health socket to say draining")
        relayed = paced(call, 1.5)  # the route has not moved: media still comes here and is relayed
        assert relayed == 1.0, relayed
        assert d.exit_status() is None and d.cmd("V") == "20040107"  # commands are answered too
        assert "health: draining: stopping on SIGTERM" in d.cmd("I")
        stopped_sending = time.monotonic()
        wait_until(lambda: d.exit_status() is not None, 3, "the stop after the drain")
        took = time.monotonic() - stopped_sending
        assert 0.8 <= took <= 1.6, "stopped %.2f s after the last packet" % took
        assert d.exit_status() == 0 and health.closed(1)
        assert "drained after" in d.logtext() and "no packet came for a second" in d.logtext()
        assert time.monotonic() - t0 > 2.0
        assert "active sessions: 1" in peer.cmd("I")  # a planned stop leaves the peers its calls
    finally:
        call.close()


def test_a_drain_ends_at_drain_seconds_when_packets_never_stop_and_a_second_sigterm_at_once(cluster, sockets):
    c = cluster(n=2, args_of=lambda i: ["--health", sockets(i), "--drain-seconds", "2"])
    d, other = c.nodes
    call = Call(d)
    try:
        d.terminate()
        t0 = time.monotonic()
        paced(call, 4, until=lambda: d.exit_status() is not None)
        took = time.monotonic() - t0
        assert d.exit_status() == 0 and 1.8 <= took <= 2.8, took
        assert "--drain-seconds passed with packets still coming" in d.logtext()
        # the other one: SIGTERM twice while media comes
        call2 = Call(other, "second")
        try:
            other.terminate()
            paced(call2, 0.3)
            other.terminate()
            t1 = time.monotonic()
            wait_until(lambda: other.exit_status() is not None, 1, "the second SIGTERM to stop at once")
            assert time.monotonic() - t1 < 0.5 and other.exit_status() == 0
            assert "stopping on SIGTERM (the second): at once" in other.logtext()
        finally:
            call2.close()
    finally:
        call.close()


def test_sigusr2_drains_for_maintenance_says_so_everywhere_and_serves_again(cluster, sockets):
    c = two(cluster, sockets)
    d, peer = c.nodes
    health = HealthClient(sockets(0))
    wait_until(lambda: health.line().startswith("healthy "), 3, "healthy")
    d.proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: health.line() == "draining", 0.5, "draining")
    assert "health: draining: maintenance (SIGUSR2)" in d.cmd("I")
    listed = [l for l in header(d.control[0], c.sync_port) if l.startswith("# capacity: instance ")]
    assert any(" draining (this instance); maintenance (SIGUSR2)" in l for l in listed), listed
    call = Call(d)  # still answering and relaying
    try:
        assert paced(call, 0.3) == 1.0
    finally:
        call.close()
    wait_until(lambda: "maintenance: drained after" in d.logtext(), 3, "the drained note")
    assert d.exit_status() is None  # maintenance never stops
    # the peer hears it cannot count on this instance
    wait_until(lambda: any(" draining (announced" in l for l in header(peer.control[0], c.sync_port)
                           if l.startswith("# capacity: instance ")), 4, "the peer to hear of the drain")
    d.proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: health.line().startswith("healthy "), 0.5, "healthy again")
    assert "health: healthy" in d.cmd("I")
    assert "maintenance over (SIGUSR2): serving again" in d.logtext()


def test_the_metrics_say_the_state_and_why(cluster, sockets):
    mport = free_port(socket.SOCK_STREAM, LO)
    c = cluster(n=2, args_of=lambda i: ["--health", sockets(i)] + (["--metrics", "%s:%d" % (LO, mport)] if i == 0 else []))
    d = c.nodes[0]
    wait_until(lambda: samples(scrape(mport)).get('anyrtpproxy_health{state="healthy",reason=""}') == 1, 3, "healthy")
    d.proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: samples(scrape(mport)).get('anyrtpproxy_health{state="draining",reason="maintenance"}') == 1, 2,
               "draining in the metrics")
    m = samples(scrape(mport))
    assert m['anyrtpproxy_health{state="healthy",reason=""}'] == 0 and m["anyrtpproxy_healthy"] == 0


def test_a_restarted_instance_says_syncing_until_its_peers_tables_are_there(cluster, sockets):
    c = two(cluster, sockets)
    d, peer = c.nodes
    call = Call(peer, "kept")
    try:
        wait_until(lambda: "active sessions: 1" in d.cmd("I"), 3, "the call mirrored")
        d.kill()
        d.start()
        health = HealthClient(sockets(0))
        first = health.line()
        assert first.startswith("unhealthy syncing") or first == "unhealthy starting", first
        wait_until(lambda: health.line().startswith("healthy "), 3, "healthy once synced")
        assert "active sessions: 1" in d.cmd("I")  # what it says healthy with: the peer's calls
    finally:
        call.close()


def test_an_instance_without_peers_stops_at_once(daemon):
    d = daemon()
    d.terminate()
    t0 = time.monotonic()
    wait_until(lambda: d.exit_status() is not None, 1, "the stop")
    assert time.monotonic() - t0 < 0.5 and d.exit_status() == 0
