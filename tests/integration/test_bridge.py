"""Bridge mode: -i INTERNAL/EXTERNAL and the E/I
modifiers, IPv4<->IPv6 bridging with one -i per family, advertised addresses
(-A), alone and in a synced pair of instances. Loopback only: 127.0.0.2-5
and ::1."""

import os
import select
import shutil
import socket
import subprocess
import tempfile

import pytest

from harness import BINARY, Daemon, Peer, free_port, listing, rtp, wait_until

INT, EXT = "127.0.0.2", "127.0.0.3"


def relays(src, dst, to, expect_from, seq):
    """src sends one RTP packet to `to`; dst receives it from `expect_from`."""
    src.send(rtp(seq), to)
    data, frm = dst.recv()
    assert data == rtp(seq), "packet %d to %s was not relayed" % (seq, to)
    assert frm == expect_from, (frm, expect_from)


def test_bridge_mode_relays_between_the_internal_and_the_external_address():
    caller, callee = Peer(INT), Peer(EXT)  # a phone inside, a carrier outside
    with Daemon("-i", "%s/%s" % (INT, EXT), media=None) as d:
        # Kamailio's rtpproxy_manage("ie") on the INVITE, "ei" on its 200 OK.
        p, p_addr = d.cmd("UIE br %s %d A;1" % (INT, caller.port)).split()
        q, q_addr = d.cmd("LEI br %s %d A;1 B;1" % (EXT, callee.port)).split()
        assert p_addr == EXT, "the offer to the outside must name the external address"
        assert q_addr == INT, "the answer to the inside must name the internal address"
        p, q = int(p), int(q)
        for seq in range(3):
            relays(caller, callee, (INT, q), (EXT, p), seq)
            relays(callee, caller, (EXT, p), (INT, q), 100 + seq)
        # The ports exist on their own address only.
        caller.send(rtp(9), (EXT, q))
        assert callee.nothing() and caller.nothing()
        # Re-offer with n on the other side: the leg moves, the reply says where.
        p2, p2_addr = d.cmd("UIIn br %s %d A;1 B;1" % (INT, caller.port)).split()
        assert p2_addr == INT, p2_addr
        assert d.cmd("UIEI br %s %d A;1" % (INT, caller.port)) == "E12"  # at most two
        assert d.cmd("UEEE br %s %d A;1" % (INT, caller.port)) == "E11"
        assert d.cmd("D br A;1") == "0"
    caller.close()
    callee.close()


def test_without_two_sides_e_and_i_are_refused():
    with Daemon() as d:
        assert d.cmd("UIE c 127.0.0.1 4000 A;1") == "E12"
        assert d.cmd("UEI c 127.0.0.1 4000 A;1") == "E11"
        assert d.cmd("U c 127.0.0.1 4000 A;1").split()[1] == "127.0.0.1"


def test_an_ipv4_caller_reaches_an_ipv6_callee():
    caller = Peer("127.0.0.1")
    callee = Peer("::1", socket.AF_INET6)
    with Daemon("-i", "::1") as d:  # one IPv4 and one IPv6 -i: IPv4 is internal, IPv6 external
        # Kamailio's x flag: "IE" for an IPv4 SDP, "EI" and 6 for an IPv6 one.
        p_reply = d.cmd("UIE x46 127.0.0.1 %d A;1" % caller.port).split()
        assert p_reply[1:] == ["::1", "6"], p_reply
        q_reply = d.cmd("LEI6 x46 ::1 %d A;1 B;1" % callee.port).split()
        assert q_reply[1:] == ["127.0.0.1"], q_reply
        p, q = int(p_reply[0]), int(q_reply[0])
        for seq in range(3):
            caller.send(rtp(seq), ("127.0.0.1", q))
            data, frm = callee.recv()
            assert data == rtp(seq) and frm[:2] == ("::1", p), (data, frm)
            callee.send(rtp(50 + seq), ("::1", p))
            data, frm = caller.recv()
            assert data == rtp(50 + seq) and frm == ("127.0.0.1", q), (data, frm)
        assert d.cmd("Q x46 A;1 B;1").split()[1:3] == ["3", "3"]
    caller.close()
    callee.close()


def test_replies_carry_the_advertised_addresses():
    with Daemon("-i", "%s/%s" % (INT, EXT), "-A", "203.0.113.1/198.51.100.1", media=None) as d:
        assert d.cmd("UIE adv %s 4000 A;1" % INT).split()[1] == "198.51.100.1"
        assert d.cmd("LEI adv %s 5000 A;1 B;1" % EXT).split()[1] == "203.0.113.1"
        assert d.cmd("U plain %s 4000 A;1" % INT).split()[1] == "203.0.113.1"  # no E/I: the internal side
    with Daemon("-A", "192.0.2.55") as d:  # behind 1:1 NAT, no bridge
        assert d.cmd("U nat 127.0.0.1 4000 A;1").split()[1] == "192.0.2.55"


def test_bad_bridge_and_advertise_options_are_refused_naming_them():
    for args, message in (
            (["-i", "%s/192.0.2.99" % INT], "-i/--interface: 192.0.2.99 is not an address of this host"),
            (["-i", "127.0.0.2/::1"], "mixes IPv4 and IPv6"),
            (["-i", "127.0.0.2/"], "is not ADDR or ADDR/ADDR"),
            (["-i", "0.0.0.0/127.0.0.3"], "bridge mode needs two addresses of this host"),
            (["-i", "127.0.0.1", "-A", "2001:db8::1"], "-A/--advertise: '2001:db8::1' has no -i address of its family"),
            (["-i", "127.0.0.1", "-A", "192.0.2.1/192.0.2.2"], "has no -i external address"),
            (["-A", "example"], "is not a unicast IP address")):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:%d" % free_port()] + args, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and message in r.stderr, (args, r.returncode, r.stderr)


def test_a_bridged_call_moves_to_the_peer_with_its_sides():
    """Two instances synced: A bridges 127.0.0.2/127.0.0.3, B 127.0.0.4/127.0.0.5.
    A call set up on A is relayed by B on B's own sides: each leg keeps its side."""
    sync_port = free_port(socket.SOCK_STREAM)
    base = free_port(pair=True) // 1000 * 1000
    a = Daemon("-S", str(sync_port), "-I", INT, "-M", "127.0.0.4:%d" % sync_port, "-i", "%s/%s" % (INT, EXT),
               host=INT, media=None, ports=(base, base + 99), control=free_port(), start=False, level="info")
    b = Daemon("-S", str(sync_port), "-I", "127.0.0.4", "-M", "%s:%d" % (INT, sync_port), "-i", "127.0.0.4/127.0.0.5",
               host="127.0.0.4", media=None, ports=(base + 300, base + 399), control=free_port(), start=False,
               level="info")
    caller, callee = Peer("127.0.0.4"), Peer("127.0.0.5")
    with a, b:
        a.start()
        b.start()
        wait_until(lambda: "sync: connected to" in a.logtext() and "sync: connected to" in b.logtext(), 5,
                   "the two instances to connect")
        p = int(a.cmd("UIE mv 127.0.0.4 %d A;1" % caller.port).split()[0])
        q = int(a.cmd("LEI mv 127.0.0.5 %d A;1 B;1" % callee.port).split()[0])
        wait_until(lambda: b.cmd("Q mv A;1 B;1") != "E50" and "unbound legs: 0" in b.cmd("I"), 5,
                   "B to hold the call with both legs bound")
        line = [l for l in listing("127.0.0.4", sync_port) if "call-id=mv " in l][0]
        assert " callee=%d@external " % p in line and " caller=%d " % q in line, line
        # The route moved to B: the caller's media reaches B's internal address.
        relays(caller, callee, ("127.0.0.4", q), ("127.0.0.5", p), 1)
        relays(callee, caller, ("127.0.0.5", p), ("127.0.0.4", q), 2)
    caller.close()
    callee.close()


ENDPOINT = r"""
import socket, sys
role, me, port, peer, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((me, port))
s.settimeout(3)
print("ready", flush=True)
got = 0
if role == "caller":
    host, dport = peer.rsplit(":", 1)
    for i in range(n):
        s.sendto(b"\x80\x08" + i.to_bytes(2, "big") + b"\0" * 8 + b"\xd5" * 160, (host, int(dport)))
        try:
            data, src = s.recvfrom(2048)
            got += src == (host, int(dport)) and data[2:4] == i.to_bytes(2, "big")
        except socket.timeout:
            break
else:
    for i in range(n):
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            break
        got += src[0] == peer
        s.sendto(data, src)  # the echo goes back through the relay
print(got)
"""


def test_bridge_mode_joins_two_networks_that_have_no_route_between_them():
    """Namespaces: IN (caller 10.251.1.2) - relay (10.251.1.1 | 10.251.2.1) - OUT
    (callee 10.251.2.2). The relay forwards no IP; only anyrtpproxy joins them."""
    from anycast_bed import can_run, sh
    why = can_run()
    if why:
        pytest.skip(why)
    prefix = "arpbr%d" % (os.getpid() % 100000)
    ns = {n: prefix + n for n in ("IN", "RL", "OUT")}
    tmp = tempfile.mkdtemp(prefix="arp-br-")
    control = os.path.join(tmp, "control.sock")
    relay = None
    try:
        for n in ns.values():
            sh("ip", "netns", "add", n)
        for side, (net, peer_ns) in {"i": ("10.251.1", ns["IN"]), "o": ("10.251.2", ns["OUT"])}.items():
            a, b = prefix + side + "a", prefix + side + "b"
            sh("ip", "link", "add", a, "netns", ns["RL"], "type", "veth", "peer", "name", b, "netns", peer_ns)
            sh("ip", "-n", ns["RL"], "addr", "add", net + ".1/24", "dev", a)
            sh("ip", "-n", peer_ns, "addr", "add", net + ".2/24", "dev", b)
            sh("ip", "-n", ns["RL"], "link", "set", a, "up")
            sh("ip", "-n", peer_ns, "link", "set", b, "up")
        for n in ns.values():
            sh("ip", "-n", n, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", ns["RL"], "sysctl", "-qw", "net.ipv4.ip_forward=0")
        log = open(os.path.join(tmp, "relay.log"), "w+")
        relay = subprocess.Popen(["ip", "netns", "exec", ns["RL"], BINARY, "-D", "-s", "unix:" + control,
                                  "-i", "10.251.1.1/10.251.2.1", "-p", "30000", "30100"], stdout=log,
                                 stderr=subprocess.STDOUT)

        def cmd(text):
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(2)
            c.connect(control)
            c.sendall(text.encode())
            reply = c.recv(1024).decode().strip()
            c.close()
            return reply

        wait_until(lambda: os.path.exists(control), 5, "the relay's control socket")
        p, p_addr = cmd("UIE nscall 10.251.1.2 4000 A;1").split()
        q, q_addr = cmd("LEI nscall 10.251.2.2 5000 A;1 B;1").split()
        assert (p_addr, q_addr) == ("10.251.2.1", "10.251.1.1"), (p_addr, q_addr)
        # The networks cannot reach each other directly.
        assert sh("ip", "-n", ns["IN"], "route", "get", "10.251.2.2", check=False).returncode != 0
        n = 20
        callee = subprocess.Popen(["ip", "netns", "exec", ns["OUT"], "python3", "-c", ENDPOINT, "callee", "10.251.2.2",
                                   "5000", "10.251.2.1", str(n)], stdout=subprocess.PIPE, text=True)
        ready, _, _ = select.select([callee.stdout], [], [], 10)
        assert ready and callee.stdout.readline().strip() == "ready", "the callee did not bind"
        caller = subprocess.run(["ip", "netns", "exec", ns["IN"], "python3", "-c", ENDPOINT, "caller", "10.251.1.2",
                                 "4000", "10.251.1.1:%s" % q, str(n)], capture_output=True, text=True, timeout=30)
        assert caller.stdout.split()[-1] == str(n), "caller got %s echoes: %s" % (caller.stdout, caller.stderr)
        assert callee.communicate(timeout=10)[0].strip() == str(n), "the callee saw other sources"
        assert cmd("Q nscall A;1 B;1").split()[1:4] == [str(n), str(n), str(2 * n)]
    finally:
        if relay:
            relay.terminate()
            relay.wait(5)
        for n in ns.values():
            sh("ip", "netns", "del", n, check=False)
        shutil.rmtree(tmp, ignore_errors=True)

