"""Control protocol over real sockets: UDP with cookies, the reply cache,
unix one-shot mode, IPv6 control, hostile datagrams."""

import os
import random
import re
import signal
import socket
import tempfile

import pytest

from harness import Daemon, free_port, wait_until


def test_section9_examples_over_udp():
    with Daemon() as d:
        # every reply carries the cookie and ends in \n (checked by cmd())
        assert d.cmd("V") == "20040107"
        assert d.cmd("VF 20050322") == "1"
        assert d.cmd("VF 20081224") == "0"
        assert d.cmd("VF 20071116") == "0"  # no Z re-packetization: Kamailio drops Z then
        assert d.cmd("VF 12345678") == "0"
        assert d.cmd("Vf") == "E1"
        assert d.cmd("A aVF 20080403") == "E0"
        assert d.cmd("Ugarbage cid a p f t") == "E35"
        p = d.cmd("U c1 192.0.2.10 4000 A;1")
        port, addr = p.split()
        assert addr == "127.0.0.1" and int(port) % 2 == 0 and d.ports[0] <= int(port) <= d.ports[1]
        assert d.cmd("U c1 192.0.2.10 4000 A;1") == p
        q = d.cmd("L c1 192.0.2.20 5000 A;1 B;1")
        assert q != p and q.endswith(" 127.0.0.1")
        assert d.cmd("U c1 192.0.2.20 5000 B;1 A;1") == q
        assert d.cmd("L c1 192.0.2.10 4000 B;1 A;1") == p
        assert d.cmd("Q c1 A;1 B;1") == "60 0 0 0 0"
        assert d.cmd("I") == ("sessions created: 1\nactive sessions: 1\nactive streams: 2\npackets received: 0\n"
                          "packets transmitted: 0\nunbound legs: 0\nsessions created here: 1\n"
                          "sessions synced from peers: 0\nactive local sessions: 1\nactive synced sessions: 0\n"
                          "packets forwarded by the kernel: 0\nparked legs: 0\nadopted legs: 0\nhealth: healthy")
        assert d.cmd("D c1 A B") == "0"
        assert d.cmd("L c1 192.0.2.20 5000 A;1 B;1") == "0"
        assert d.cmd("D c1 A B") == "E50"
        assert d.cmd("L nosuchcall 192.0.2.20 5000 A;1 B;1") == "0"
        assert d.cmd("U6 c6 2001:db8::10 4000 A;1") == "E36"
        assert d.cmd("U c7 1.2.3.x 4000 A;1") == "E37"
        assert re.fullmatch(r"nsess_created=1 ncmds_rcvd=\d+", d.cmd("Gv nsess_created ncmds_rcvd"))
        assert d.cmd("X") == "0"


def test_cookie_only_and_raw_datagrams():
    with Daemon() as d:
        assert d.raw(b"k3") == b"k3 E5\n"
        assert d.raw(b"k1 V") == b"k1 20040107\n"
        assert d.raw(b"k4 V\x00 x") == b"k4 E5\n"
        assert d.raw(b"k5 " + b"V " * 5000) == b"k5 E5\n"  # 10 KB: over the 8 KiB command limit
        assert d.raw(b"k6 U c 1.2.3.4 5 " + b"t" * 8000) .startswith(b"k6 ")


def test_retransmission_gets_the_identical_reply_and_is_not_executed_again():
    with Daemon() as d:
        first = d.raw(b"rx1 U c9 192.0.2.10 4000 A;1")
        assert d.raw(b"rx1 U c9 192.0.2.10 4000 A;1") == first
        assert d.cmd("G nsess_created") == "1"
        assert d.raw(b"rx2 D c9 A") == b"rx2 0\n"
        assert d.raw(b"rx2 D c9 A") == b"rx2 0\n"  # not E50: answered from the cache
        assert d.cmd("G ncmds_rcvd_ndups") == "2"


def test_hostile_datagrams_do_not_stop_the_daemon():
    rnd = random.Random(42)
    alphabet = b"UuLlDdQqVvGgIiXxPpSsRrCcNn &;:%.0123456789abcdef\r\n\t\x00\xff"
    with Daemon() as d:
        fuzz = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # its replies pile up unread
        for i in range(1500):
            n = rnd.randrange(0, 300)
            data = bytes(rnd.choice(alphabet) for _ in range(n))
            fuzz.sendto(data, d.control)
        fuzz.sendto(os.urandom(65000), d.control)
        fuzz.close()
        assert d.cmd("V", timeout=3) == "20040107"
        # the pool is intact: every session created by the fuzz can be deleted and the range reused
        assert d.cmd("X") == "0"
        assert d.cmd("U after 192.0.2.1 4000 A;1").split()[0].isdigit()


def test_reply_comes_from_the_address_the_request_reached():
    port = free_port()
    with Daemon(extra_control=["udp:*:%d" % port]) as d:
        for dst in ("127.0.0.1", "127.0.0.5"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.settimeout(2)
            s.connect((dst, port))  # as Kamailio does: only replies from dst:port are accepted
            s.send(b"c1 V")
            assert s.recv(100) == b"c1 20040107\n"
            s.close()


def test_ipv6_control_socket():
    try:
        probe = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        probe.bind(("::1", 0))
        probe.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    port = free_port(host="::1", family=socket.AF_INET6)
    with Daemon(extra_control=["udp6:::1:%d" % port]) as d:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(b"k6 V", ("::1", port))
        assert s.recv(100) == b"k6 20040107\n"


def test_unix_one_shot_mode():
    path = os.path.join(tempfile.mkdtemp(prefix="arp-"), "ctl.sock")
    with Daemon(extra_control=["unix:" + path]) as d:
        def ask(cmd):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(2)
            s.connect(path)
            s.send(cmd)  # no cookie, no newline, no half-close: as Kamailio's unix mode
            reply = s.recv(256)
            assert s.recv(256) == b"", "the daemon must close after one reply"
            s.close()
            return reply
        assert ask(b"V") == b"20040107\n"
        r = ask(b"U cu 192.0.2.1 4000 A;1")
        assert re.fullmatch(rb"\d+ 127\.0\.0\.1\n", r), r
        assert ask(b"D cu A") == b"0\n"
        idle = [socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) for _ in range(20)]
        for s in idle:
            s.connect(path)
        assert ask(b"VF 20050322") == b"1\n"  # idle connections do not block others
        for s in idle:
            s.close()
    assert not os.path.exists(path), "the unix socket is removed at exit"


def read_lines(s, count, timeout=2):
    s.settimeout(timeout)
    data = b""
    while data.count(b"\n") < count:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_persistent_stream_modes_for_opensips():
    path = os.path.join(tempfile.mkdtemp(prefix="arp-"), "c.sock")
    tcp_port = free_port(socket.SOCK_STREAM)
    with Daemon(extra_control=["cunix:" + path, "tcp:127.0.0.1:%d" % tcp_port]) as d:
        u = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        u.connect(path)
        u.sendall(b"V\nVF 20050322\n")  # two commands in one stream write
        assert read_lines(u, 2) == b"20040107\n1\n"
        t = socket.create_connection(("127.0.0.1", tcp_port), timeout=2)
        t.sendall(b"U tc 192.0.2.1 4000 A;1\nQ tc A;1\r\nD tc A\n")
        lines = read_lines(t, 3).decode().split("\n")
        assert re.fullmatch(r"\d+ 127\.0\.0\.1", lines[0]) and lines[1].startswith("60 ") and lines[2] == "0", lines
        t.sendall(b"V\n")
        assert read_lines(t, 1) == b"20040107\n", "the connection stays open for more commands"
        t.sendall(b"X" * 9000)  # no newline within the 8 KiB limit
        assert read_lines(t, 1) == b"E5\n"
        try:
            closed = t.recv(100) == b""
        except ConnectionResetError:  # closed with the rest of the line unread
            closed = True
        assert closed, "and then it is closed"
        assert d.cmd("V") == "20040107"
        u.close()
        t.close()
    assert not os.path.exists(path)


def test_one_client_cannot_take_every_stream_control_slot():
    """100 idle TCP control connections from one address (the global limit)
    leave room for another client: at most 32 come from one address."""
    tcp_port = free_port(socket.SOCK_STREAM)
    with Daemon(extra_control=["tcp:127.0.0.1:%d" % tcp_port], level="info") as d:
        hog = []
        for _ in range(100):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.bind(("127.0.0.1", 0))
            c.settimeout(2)
            c.connect(("127.0.0.1", tcp_port))
            hog.append(c)
        wait_until(lambda: "refused a connection from 127.0.0.1: 32 connections open from this address" in d.logtext(), 3, "the refusal to be logged")
        hog[-1].sendall(b"V\n")
        try:
            closed = hog[-1].recv(100) == b""
        except ConnectionResetError:
            closed = True
        assert closed, "the 100th connection from one address is closed"
        other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        other.bind(("127.0.0.2", 0))
        other.settimeout(2)
        other.connect(("127.0.0.1", tcp_port))
        other.sendall(b"V\n")
        assert read_lines(other, 1) == b"20040107\n", "another client is still served"
        hog[0].sendall(b"V\n")
        assert read_lines(hog[0], 1) == b"20040107\n", "and so are the first 32 of the first one"
        assert d.logtext().count("connections open from this address") == 1, "refusals are logged once a minute per address"
        for c in hog + [other]:
            c.close()


def relay_bind_failures(d):
    """The relay's bind-failures counter, from the SIGUSR1 statistics line."""
    before = d.logtext().count("stats: sessions active=")
    d.proc.send_signal(signal.SIGUSR1)
    wait_until(lambda: d.logtext().count("stats: sessions active=") > before, 2, "the SIGUSR1 statistics")
    return int(re.findall(r"sockets=\d+ bind-failures=(\d+)", d.logtext())[-1])


def test_the_file_limit_fails_a_command_at_once_and_quietly():
    """Out of descriptors, a U fails with E72 after one bind attempt (not one per
    free pair of a 2,000-pair range), and 200 such commands log one line."""
    base = free_port(pair=True)
    d = Daemon(ports=(base, base + 3999), start=False)
    d.argv = ["prlimit", "--nofile=64:64", "--"] + d.argv
    d.start()
    with d:
        for i in range(100):  # fill the descriptors with sessions
            if d.cmd("U fill%d 127.0.0.1 4000 A;1" % i) == "E72":
                break
            if d.cmd("L fill%d 127.0.0.1 5000 A;1 B;1" % i) == "E71":
                break
        else:
            raise AssertionError("64 descriptors held 100 sessions?")
        tried = relay_bind_failures(d)
        for i in range(200):
            assert d.cmd("U over%d 127.0.0.1 4000 A;1" % i) == "E72"
        assert relay_bind_failures(d) - tried == 200, "one bind attempt per failing command"
        lines = [l for l in d.logtext().splitlines() if "E72" in l]
        assert 1 <= len(lines) <= 2, lines
        assert "open-file limit is reached" in lines[0], lines

