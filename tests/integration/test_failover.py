"""Failover in network namespaces: three instances share the anycast address,
a caller and a callee stream RTP at 50 pps each way for 20 calls; the instance
that carries them is SIGKILLed and the route moves; every call must resume both
ways, and no packet from a third source may be forwarded. Then the split case:
the caller's packets reach one instance and the callee's another. And a
recorded call and a playing prompt survive the same death: the new
instance records the rest in a file of its own, the prompt goes on."""

import os
import shutil
import tempfile

from anycast_bed import ANYCAST
from harness import read_pcap, wait_until

CALLS = 20


def control(rt, i, text):
    return rt(op="cmd", to=["10.250.1.%d" % i, 22222], text=text)["reply"]


def info(rt, i, name):
    lines = [l for l in control(rt, i, "I").split("\n") if l.startswith(name + ": ")]
    return int(lines[0].split(": ")[1])


def fds(bed, i):
    return len(os.listdir("/proc/%d/fd" % bed.procs[i].pid))


def test_calls_survive_the_death_of_their_instance_with_the_kernel_fast_path(bed):
    survive_the_death(bed, [])


def test_calls_survive_the_death_of_their_instance_in_userspace(bed):
    survive_the_death(bed, ["--kernel-offload=off"])


def test_calls_on_two_anycast_addresses_survive_the_death_of_their_instance(bed):
    """-i ANYCAST,ANYCAST2 on every instance: legs on both, both fail over."""
    survive_the_death(bed, [], two_addresses=True)


def survive_the_death(make_bed, args, two_addresses=False, **bed_kw):
    bed = make_bed(extra_args=args, two_addresses=two_addresses, **bed_kw)
    for i in (1, 2, 3):
        bed.start(i)
    rt, a, b = bed.agent("RT"), bed.agent("A"), bed.agent("B")
    wait_until(lambda: all(control(rt, i, "V") == "20040107" for i in (1, 2, 3)), 10, "three instances")
    catch_all = "catch-all unavailable" not in open(bed.log_of(2)).read()
    idle_fds = fds(bed, 2)
    a(op="open", calls=[[c, "10.250.10.1", 30000 + 2 * c] for c in range(CALLS)])
    b(op="open", calls=[[c, "10.250.20.1", 31000 + 2 * c] for c in range(CALLS)])
    to_callee, to_caller, at_callee, at_caller = {}, {}, {}, {}
    for c in range(CALLS):  # the SIP proxy talks to R1, as it would to its nearest instance
        p = control(rt, 1, "U call%d 10.250.10.1 %d A;1" % (c, 30000 + 2 * c))
        assert p and p.split()[1] in bed.anycast, p
        q = control(rt, 1, "L call%d 10.250.20.1 %d A;1 B;1" % (c, 31000 + 2 * c))
        to_callee[c], to_caller[c] = int(p.split()[0]), int(q.split()[0])
        at_callee[c], at_caller[c] = p.split()[1], q.split()[1]
    assert set(at_callee.values()) | set(at_caller.values()) == set(bed.anycast), (at_callee, at_caller)
    wait_until(lambda: all(control(rt, i, "I").split("\n")[1] == "active sessions: %d" % CALLS for i in (2, 3)), 5,
               "every call on R2 and R3")
    if catch_all:  # R2 mirrors every call without a socket: it binds them when their packets come
        assert info(rt, 2, "parked legs") == 2 * CALLS and info(rt, 2, "adopted legs") == 0
        assert fds(bed, 2) <= idle_fds + 4, (idle_fds, fds(bed, 2))
    a(op="stream", targets={c: [at_caller[c], to_caller[c]] for c in range(CALLS)}, pps=50, ssrc=1000)
    b(op="stream", targets={c: [at_callee[c], to_callee[c]] for c in range(CALLS)}, pps=50, ssrc=2000)
    flowing = lambda: all(a(op="stats")["stats"][str(c)]["packets"] > 30 and
                          b(op="stats")["stats"][str(c)]["packets"] > 30 for c in range(CALLS))
    wait_until(flowing, 10, "every call's media both ways", debug=lambda: (a(op="stats"), b(op="stats")))
    # the third party is the caller's own host on another port: it must not take the callee's media
    for c in range(0, CALLS, 5):
        a(op="inject", call=c, to=[at_callee[c], to_callee[c]], count=20, ssrc=666)
    bed.kill(1)
    t_fail = rt(op="cmd", to=["10.250.1.2", 22222], text="V")["now"]
    bed.route_to(2)
    resumed = lambda n: all(a(op="stats", since=t_fail)["stats"][str(c)]["packets"] > n and
                            b(op="stats", since=t_fail)["stats"][str(c)]["packets"] > n for c in range(CALLS))
    wait_until(lambda: resumed(55), 10, "every call to resume on R2")
    for c in range(0, CALLS, 5):
        a(op="inject", call=c, to=[at_caller[c], to_caller[c]], count=20, ssrc=777)
        b(op="inject", call=c, to=[at_callee[c], to_callee[c]], count=20, ssrc=888)
    wait_until(lambda: resumed(80), 10, "the calls' media after the injections")
    after_a, after_b = a(op="stats", since=t_fail)["stats"], b(op="stats", since=t_fail)["stats"]
    for c in range(CALLS):
        ra, rb = after_a[str(c)], after_b[str(c)]
        assert ra["packets"] > 80 and rb["packets"] > 80, "call %d did not resume: %s %s" % (c, ra, rb)
        assert ra["ssrcs"] == [2000 + c] and rb["ssrcs"] == [1000 + c], "a third source got through: %s %s" % (ra, rb)
        assert ra["sources"] == ["%s:%d" % (at_caller[c], to_caller[c])], ra
        assert ra["max_gap_ms"] < 1500 and rb["max_gap_ms"] < 1500, (ra, rb)
    # R2 installed the kernel entries of the mirrored calls before the failover (--kernel-offload
    # is auto): the moved media went through its eBPF program, not its sockets
    kernel = info(rt, 2, "packets forwarded by the kernel")
    if "kernel offload unavailable" not in open(bed.log_of(2)).read() and not args:
        assert kernel > CALLS * 80, kernel
    elif catch_all:  # in userspace, the first packet of each call adopted it on R2
        assert kernel == 0 and info(rt, 2, "adopted legs") == 2 * CALLS, (kernel, info(rt, 2, "adopted legs"))
    # the split case: the caller reaches R2, the callee R3
    bed.route_to(2, callee_to=3)
    t_split = a(op="stats")["now"]
    wait_until(lambda: all(a(op="stats", since=t_split)["stats"][str(c)]["packets"] > 50 and
                           b(op="stats", since=t_split)["stats"][str(c)]["packets"] > 50 for c in range(CALLS)), 10,
               "every call's media across R2 and R3", debug=lambda: (a(op="stats", since=t_split), b(op="stats", since=t_split)))
    assert all(control(rt, i, "Q call0 A;1 B;1").split()[0] != "E50" for i in (2, 3))


FRAMES = [bytes([0x10 + i]) * 160 for i in range(3)]  # moh.8: three distinct 20 ms PCMA frames


def test_a_recorded_call_and_a_playing_prompt_survive_the_death_of_their_instance(bed):
    make_bed = bed
    work = tempfile.mkdtemp(prefix="arp-bed-")
    prompts = os.path.join(work, "prompts")
    rec = {i: os.path.join(work, "rec%d" % i) for i in (1, 2, 3)}
    for d in [prompts] + list(rec.values()):
        os.mkdir(d)
    with open(os.path.join(prompts, "moh.8"), "wb") as f:
        f.write(b"".join(FRAMES))
    bed = make_bed(args_of=lambda i: ["-r", rec[i], "--record-pcap", "--prompts", prompts])
    try:
        for i in (1, 2, 3):
            bed.start(i)
        rt, a, b = bed.agent("RT"), bed.agent("A"), bed.agent("B")
        wait_until(lambda: all(control(rt, i, "V") == "20040107" for i in (1, 2, 3)), 10, "three instances")
        a(op="open", calls=[[c, "10.250.10.1", 30000 + 2 * c] for c in (0, 1)])
        b(op="open", calls=[[c, "10.250.20.1", 31000 + 2 * c] for c in (0, 1)])
        to_callee, to_caller = {}, {}
        for c in (0, 1):
            p = control(rt, 1, "Uc8 call%d 10.250.10.1 %d A;1" % (c, 30000 + 2 * c))
            q = control(rt, 1, "Lc8 call%d 10.250.20.1 %d A;1 B;1" % (c, 31000 + 2 * c))
            to_callee[c], to_caller[c] = int(p.split()[0]), int(q.split()[0])
        # Kamailio's start_recording() (R cid T F, the callee's side) and OpenSIPS'
        # rtpproxy_start_recording("conf-0") (C cid NAME F T, the caller's): one file, of that name
        assert control(rt, 1, "R call0 B;1 A;1") == "0" and control(rt, 1, "C call0 conf-0 A;1 B;1") == "0"
        wait_until(lambda: all(control(rt, i, "I").split("\n")[1] == "active sessions: 2" for i in (2, 3)), 5,
                   "both calls on R2 and R3")
        a(op="stream", targets={c: [ANYCAST, to_caller[c]] for c in (0, 1)}, pps=50, ssrc=1000)
        b(op="stream", targets={c: [ANYCAST, to_callee[c]] for c in (0, 1)}, pps=50, ssrc=2000)
        wait_until(lambda: a(op="stats")["stats"]["1"]["packets"] > 10, 5, "the callee's media at the caller")
        # Kamailio's rtpproxy_stream2uac("moh", -1): music on hold to the caller, until S
        assert control(rt, 1, "P-1 call1 moh 8 A;1 B;1") == "0"
        t_play = a(op="stats")["now"]
        wait_until(lambda: a(op="stats", since=t_play + 0.2)["stats"]["1"]["packets"] > 50, 5, "the prompt at the caller")
        before = a(op="stats", since=t_play + 0.2)["stats"]["1"]
        assert before["packets"] > 50 and len(before["ssrcs"]) == 1 and before["ssrcs"] != [2001], before
        assert before["first_bytes"] == [0x10, 0x11, 0x12], before  # the prompt's frames, not the callee's media
        prompt_ssrc = before["ssrcs"][0]
        bed.kill(1)
        t_fail = a(op="stats")["now"]
        bed.route_to(2)
        wait_until(lambda: a(op="stats", since=t_fail)["stats"]["0"]["packets"] > 90 and
                   b(op="stats", since=t_fail)["stats"]["0"]["packets"] > 90 and
                   a(op="stats", since=t_fail)["stats"]["1"]["packets"] > 90, 10, "the calls to go on through R2")
        after_a, after_b = a(op="stats", since=t_fail)["stats"], b(op="stats", since=t_fail)["stats"]
        # the recorded call goes on both ways
        assert after_a["0"]["packets"] > 90 and after_b["0"]["packets"] > 90, (after_a["0"], after_b["0"])
        assert after_a["0"]["max_gap_ms"] < 1500 and after_b["0"]["max_gap_ms"] < 1500, (after_a["0"], after_b["0"])
        # the prompt goes on: R2 plays it on, the same stream (SSRC, sequence) from the same address and port
        moved = after_a["1"]
        assert moved["packets"] > 90 and moved["ssrcs"] == [prompt_ssrc], moved
        assert moved["first_bytes"] == [0x10, 0x11, 0x12] and moved["max_gap_ms"] < 1500, moved
        assert moved["sources"] == ["%s:%d" % (ANYCAST, to_caller[1])], moved
        assert 0 < (moved["last_seq"] - before["first_seq"]) % 65536 < 1000, (before, moved)
        assert control(rt, 2, "S call1 A;1 B;1") == "0"
        t_stop = a(op="stats")["now"]
        wait_until(lambda: a(op="stats", since=t_stop + 0.2)["stats"]["1"]["packets"] > 10, 5, "the callee's media again")
        resumed = a(op="stats", since=t_stop + 0.2)["stats"]["1"]
        assert resumed["ssrcs"] == [2001] and resumed["packets"] > 10, resumed  # the callee's media again
        # R2's file has the rest of the call: both directions, from the failover on
        assert control(rt, 2, "D call0 A;1") == "0"
        name = "conf-0.pcap"
        wait_until(lambda: os.listdir(rec[2]) == [name], 5, "R2's recording to close",
                   debug=lambda: os.listdir(rec[2]))
        rest = read_pcap(os.path.join(rec[2], name))
        from_b = [x for x in rest if x[3] == to_callee[0]]  # the callee sends to the port the caller's U got
        from_a = [x for x in rest if x[3] == to_caller[0]]
        assert len(from_b) > 90 and len(from_a) > 90, (len(from_b), len(from_a))
        assert all(x[:2] == ("10.250.20.1", 31000) for x in from_b), from_b[0][:4]
        assert all(x[:2] == ("10.250.10.1", 30000) for x in from_a), from_a[0][:4]
        assert all(x[2] == ANYCAST for x in rest)
        first = read_pcap(os.path.join(rec[1], name), allow_cut=True)  # R1's, as far as its writer got
        seq = lambda x: int.from_bytes(x[4][2:4], "big")  # noqa: E731
        for port, later in ((to_caller[0], from_a), (to_callee[0], from_b)):  # each sender counts on its own
            earlier = [seq(x) for x in first if x[3] == port]
            assert earlier and max(earlier) < min(seq(x) for x in later), "R2 has only the rest"
        assert os.listdir(rec[3]) == [], "R3 relayed nothing, so it recorded nothing"
    finally:
        shutil.rmtree(work, ignore_errors=True)

