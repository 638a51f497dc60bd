"""Recording: R and N, -r, --spool-dir, --record-pcap,
-a; the pcap parsed back; a full or read-only directory stops the recording
while the media keeps flowing. Loopback only; the full and read-only
directories are tmpfs mounts the test makes (as root) and removes."""

import os
import shutil
import socket
import subprocess
import tempfile

import pytest

from harness import BINARY, Daemon, Peer, free_port, listing, read_pcap, rtcp, rtp, stays, wait_until

LO = "127.0.0.1"


def call(d, a, b, cid="rec"):
    p = int(d.cmd("U %s %s %d A;1" % (cid, LO, a.port)).split()[0])
    q = int(d.cmd("L %s %s %d A;1 B;1" % (cid, LO, b.port)).split()[0])
    return p, q


def exchange(a, b, a_rtcp, b_rtcp, p, q, n=5):
    """n RTP packets each way and one RTCP each way, every one relayed."""
    for seq in range(n):
        a.send(rtp(seq, ssrc=1), (LO, q))
        assert b.recv()[0] == rtp(seq, ssrc=1)
        b.send(rtp(seq, ssrc=2), (LO, p))
        assert a.recv()[0] == rtp(seq, ssrc=2)
    a_rtcp.send(rtcp(1), (LO, q + 1))
    assert b_rtcp.recv()[0] == rtcp(1)
    b_rtcp.send(rtcp(2), (LO, p + 1))
    assert a_rtcp.recv()[0] == rtcp(2)


def pair(host=LO):
    base = free_port(host=host, pair=True)
    return Peer(host, port=base), Peer(host, port=base + 1)


def files(d):
    return sorted(os.listdir(d))


def test_r_records_rtp_and_rtcp_of_both_directions_in_a_pcap():
    rec = tempfile.mkdtemp(prefix="arp-rec-")
    a, a_rtcp = pair()
    b, b_rtcp = pair()
    with Daemon("-r", rec, "--record-pcap") as d:
        assert d.cmd("VF 20071218") == "1" and d.cmd("VF 20200226") == "1"
        p, q = call(d, a, b, "pc/../x")  # a call-id with a path in it stays inside -r
        assert d.cmd("R pc/../x A B") == "0"  # the caller's direction (Kamailio: R cid F T)
        assert d.cmd("R pc/../x B A") == "0"  # the callee's (in the 200 OK's route: R cid T F)
        assert d.cmd("R nosuch A") == "E50"
        exchange(a, b, a_rtcp, b_rtcp, p, q)
        assert d.cmd("D pc/../x A") == "0"
        wait_until(lambda: files(rec) == ["pc_.._x=A.pcap"], 3, "the pcap to be closed", debug=lambda: files(rec))
        wait_until(lambda: len(read_pcap(os.path.join(rec, "pc_.._x=A.pcap"), allow_cut=True)) == 12, 3, "12 packets written")
        packets = read_pcap(os.path.join(rec, "pc_.._x=A.pcap"))
        to_q = [x for x in packets if x[3] in (q, q + 1)]
        to_p = [x for x in packets if x[3] in (p, p + 1)]
        assert [x[4] for x in to_q] == [rtp(s, ssrc=1) for s in range(5)] + [rtcp(1)]
        assert [x[4] for x in to_p] == [rtp(s, ssrc=2) for s in range(5)] + [rtcp(2)]
        assert all(x[:2] == (LO, a.port) for x in to_q[:5]) and to_q[5][:2] == (LO, a_rtcp.port)
        assert all(x[:2] == (LO, b.port) for x in to_p[:5]) and to_p[5][:2] == (LO, b_rtcp.port)
    shutil.rmtree(rec)


def test_n_stops_and_the_spool_holds_files_until_the_session_ends():
    rec, spool = tempfile.mkdtemp(prefix="arp-rec-"), tempfile.mkdtemp(prefix="arp-spool-")
    a, a_rtcp = pair()
    b, b_rtcp = pair()
    with Daemon("-r", rec, "--spool-dir", spool) as d:  # rtpproxy's own per-direction files
        p, q = call(d, a, b, "sp")
        assert d.cmd("R sp A;1 B;1") == "0"
        exchange(a, b, a_rtcp, b_rtcp, p, q, n=3)
        wait_until(lambda: files(spool) == ["sp=A.o.rtcp", "sp=A.o.rtp"], 3, "the caller's files in the spool",
                   debug=lambda: files(spool))
        assert files(rec) == []
        assert d.cmd("N sp A;1 B;1") == "0"  # stops: the recording closes, out of the spool
        wait_until(lambda: files(rec) == ["sp=A.o.rtcp", "sp=A.o.rtp"] and files(spool) == [], 3, "the move")
        size = os.path.getsize(os.path.join(rec, "sp=A.o.rtp"))
        assert size == 3 * (30 + len(rtp(0))), size  # rtpproxy's 30-byte header before each packet
        exchange(a, b, a_rtcp, b_rtcp, p, q, n=2)  # not recorded any more
        stays(lambda: os.path.getsize(os.path.join(rec, "sp=A.o.rtp")) == size and files(spool) == [], 0.2,
              "the closed recording to stay as it was")
    with Daemon() as d:  # no -r: R cannot record; N and C work
        assert d.cmd("VF 20071218") == "0" and d.cmd("VF 20200226") == "1" and d.cmd("VF 20250523") == "1"
        call(d, a, b, "none")
        assert d.cmd("R none A;1") == "E50"
    shutil.rmtree(rec)
    shutil.rmtree(spool)


def test_record_all_records_every_session():
    rec = tempfile.mkdtemp(prefix="arp-rec-")
    a, a_rtcp = pair()
    b, b_rtcp = pair()
    with Daemon("-r", rec, "--record-pcap", "-a") as d:
        p, q = call(d, a, b, "all")
        exchange(a, b, a_rtcp, b_rtcp, p, q, n=2)
        assert d.cmd("D all A") == "0"
        wait_until(lambda: files(rec) == ["all=A.pcap"] and len(read_pcap(os.path.join(rec, "all=A.pcap"), allow_cut=True)) == 6, 3,
                   "both directions recorded without R")
    shutil.rmtree(rec)


def tmpfs(options):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a tmpfs")
    where = tempfile.mkdtemp(prefix="arp-tmpfs-")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", where], capture_output=True, text=True)
    if r.returncode != 0:
        os.rmdir(where)
        pytest.skip("cannot mount a tmpfs here: " + r.stderr.strip())
    return where


def unmount(where):
    subprocess.run(["umount", where], capture_output=True)
    os.rmdir(where)


def test_a_full_or_read_only_directory_stops_the_recording_and_media_flows():
    for options, why in (("size=64k", "cannot write it"), ("ro,size=1m", "cannot create it")):
        where = tmpfs(options)
        a, a_rtcp = pair()
        b, b_rtcp = pair()
        try:
            with Daemon("-r", where, "--record-pcap", level="info") as d:
                p, q = call(d, a, b, "full")
                assert d.cmd("R full A;1") == "0"
                payload = b"\xd5" * 1000
                for seq in range(200):  # 200 kB: more than the 64 kB tmpfs holds
                    a.send(rtp(seq, payload=payload), (LO, q))
                    assert b.recv()[0] == rtp(seq, payload=payload), "packet %d was not relayed" % seq
                wait_until(lambda: why in d.logtext(), 5, "the recording's one log line", debug=lambda: d.logtext()[-500:])
                assert d.logtext().count("recording stopped") == 1, d.logtext()[-2000:]
                assert d.cmd("Q full A;1 B;1").split()[1] == "200"
                assert d.cmd("D full A;1") == "0"
        finally:
            unmount(where)


def test_after_a_failover_the_new_instance_records_the_rest_in_a_file_of_its_own(cluster):
    dirs = [tempfile.mkdtemp(prefix="arp-rec-%d-" % i) for i in range(2)]
    c = cluster("--record-pcap", n=2, args_of=lambda i: ["-r", dirs[i]])
    nodes, hosts = c.nodes, c.hosts
    caller, callee = Peer(hosts[0]), Peer(hosts[0])
    try:
        a = nodes[0]
        p = int(a.cmd("U fo %s %d A;1" % (hosts[0], caller.port)).split()[0])
        q = int(a.cmd("L fo %s %d A;1 B;1" % (hosts[0], callee.port)).split()[0])
        assert a.cmd("R fo A;1") == "0"
        wait_until(lambda: nodes[1].cmd("Q fo A;1 B;1") != "E50" and "unbound legs: 0" in nodes[1].cmd("I"), 5,
                   "B to hold the call")
        for seq in range(4):  # through A
            caller.send(rtp(seq), (hosts[0], q))
            assert callee.recv()[0] == rtp(seq)
        wait_until(lambda: any("call-id=fo " in l and "recording=" in l for l in listing(hosts[1], c.sync_port)), 3,
                   "B to know the call is recorded")
        a.kill()  # without a word
        for seq in range(4, 10):  # the route moved: the same ports, on B
            caller.send(rtp(seq), (hosts[1], q))
            assert callee.recv()[0] == rtp(seq)
        assert nodes[1].cmd("D fo A;1") == "0"
        wait_until(lambda: files(dirs[1]) == ["fo=A.pcap"] and len(read_pcap(os.path.join(dirs[1], "fo=A.pcap"), allow_cut=True)) == 6,
                   3, "B's file with the rest of the call", debug=lambda: files(dirs[1]))
        assert [x[4] for x in read_pcap(os.path.join(dirs[1], "fo=A.pcap"))] == [rtp(s) for s in range(4, 10)]
        assert files(dirs[0]) == ["fo=A.pcap"]  # A's file, as far as A got (its buffer may not have reached the disk)
    finally:
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)


def test_c_copies_what_a_party_sends_to_a_udp_collector():
    a, a_rtcp = pair()
    b, b_rtcp = pair()
    collector, collector_rtcp = pair()
    with Daemon() as d:  # copying needs no --record-dir
        p, q = call(d, a, b, "cp")
        assert d.cmd("C cp udp:%s:%d nosuch" % (LO, collector.port)) == "E50"
        assert d.cmd("C cp file-name A;1") == "E65"  # a file target needs -r
        assert d.cmd("C cp udp:[::1]:%d A;1" % collector.port) == "E65"  # not the leg's family
        assert d.cmd("C cp udp:%s:%d A;1" % (LO, collector.port)) == "0"
        assert d.cmd("Cp cp udp:%s:%d A;1" % (LO, collector.port)) == "%d %s" % (q, LO)  # copies leave from q
        exchange(a, b, a_rtcp, b_rtcp, p, q, n=3)  # relayed as before
        got = [collector.recv() for _ in range(3)]
        assert [x[0] for x in got] == [rtp(s, ssrc=1) for s in range(3)], got  # the caller's side only
        assert all(x[1] == (LO, q) for x in got)
        assert collector_rtcp.recv()[0] == rtcp(1)  # RTCP to the target's port + 1
        assert collector.nothing()
        assert d.cmd("N cp A;1") == "0"  # stops the copies
        exchange(a, b, a_rtcp, b_rtcp, p, q, n=2)
        assert collector.nothing()


def test_c_to_a_file_target_records_into_that_name_in_the_record_dir():
    rec = tempfile.mkdtemp(prefix="arp-rec-")
    a, a_rtcp = pair()
    b, b_rtcp = pair()
    sync_port = free_port(socket.SOCK_STREAM)
    with Daemon("-r", rec, "-S", str(sync_port), "-I", LO) as d:
        p, q = call(d, a, b, "cf")
        for bad in ("../escape", "sub/dir", ".hidden", "udp:nohost"):
            assert d.cmd("C cf %s A;1 B;1" % bad) == "E65", bad
        assert d.cmd("C cf conf-42 A;1 B;1") == "0"  # OpenSIPS: C cid dest F;N T;N, the caller's side
        assert d.cmd("C cf conf-42 B;1 A;1") == "0"  # and the callee's
        line = [x for x in listing(LO, sync_port) if "call-id=cf " in x][0]
        assert " recording=conf-42 " in line, line  # what an operator sees on the sync port
        exchange(a, b, a_rtcp, b_rtcp, p, q, n=3)
        assert d.cmd("D cf A") == "0"
        want = ["conf-42.a.rtcp", "conf-42.a.rtp", "conf-42.o.rtcp", "conf-42.o.rtp"]
        wait_until(lambda: files(rec) == want, 3, "both directions in files of that name", debug=lambda: files(rec))
        size = 3 * (30 + len(rtp(0)))
        assert os.path.getsize(os.path.join(rec, "conf-42.o.rtp")) == size
        assert os.path.getsize(os.path.join(rec, "conf-42.a.rtp")) == size
        assert os.listdir(os.path.dirname(rec)).count("escape") == 0
    shutil.rmtree(rec)


def test_bad_recording_options_are_refused_naming_them():
    for args, message in ((["-r", "relative/dir"], "-r/--record-dir: 'relative/dir' is not an absolute path"),
                          (["-r", "/nonexistent/arp"], "-r/--record-dir: '/nonexistent/arp' is not a directory"),
                          (["--record-pcap"], "--record-pcap: needs -r/--record-dir"),
                          (["-a"], "-a/--record-all: needs -r/--record-dir")):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:%d" % free_port()] + args, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and message in r.stderr, (args, r.returncode, r.stderr)

