"""Failover in network namespaces: three instances share the anycast address,
a caller and a callee stream RTP at 50 pps each way for 20 calls; the instance
that carries them is SIGKILLed and the route moves; every call must resume both
ways, and no packet from a third source may be forwarded. Then the split case:
the caller's packets reach one instance and the callee's another."""

import time

from anycast_bed import ANYCAST, Bed, can_run
from harness import BINARY, Skip, run_all, test, wait_until

CALLS = 20


def control(rt, i, text):
    return rt(op="cmd", to=["10.250.1.%d" % i, 22222], text=text)["reply"]


@test
def calls_survive_the_death_of_their_instance():
    why = can_run()
    if why:
        raise Skip(why)
    bed = Bed(BINARY)
    try:
        for i in (1, 2, 3):
            bed.start(i)
        rt, a, b = bed.agent("RT"), bed.agent("A"), bed.agent("B")
        wait_until(lambda: all(control(rt, i, "V") == "20040107" for i in (1, 2, 3)), 10, "three instances")
        a(op="open", calls=[[c, "10.250.10.1", 30000 + 2 * c] for c in range(CALLS)])
        b(op="open", calls=[[c, "10.250.20.1", 31000 + 2 * c] for c in range(CALLS)])
        to_callee, to_caller = {}, {}
        for c in range(CALLS):  # the SIP proxy talks to R1, as it would to its nearest instance
            p = control(rt, 1, "U call%d 10.250.10.1 %d A;1" % (c, 30000 + 2 * c))
            assert p and p.endswith(" " + ANYCAST), p
            q = control(rt, 1, "L call%d 10.250.20.1 %d A;1 B;1" % (c, 31000 + 2 * c))
            to_callee[c], to_caller[c] = int(p.split()[0]), int(q.split()[0])
        wait_until(lambda: all(control(rt, i, "I").split("\n")[1] == "active sessions: %d" % CALLS for i in (2, 3)), 5,
                   "every call on R2 and R3")
        a(op="stream", targets={c: [ANYCAST, to_caller[c]] for c in range(CALLS)}, pps=50, ssrc=1000)
        b(op="stream", targets={c: [ANYCAST, to_callee[c]] for c in range(CALLS)}, pps=50, ssrc=2000)
        time.sleep(1.5)
        before = a(op="stats")["stats"], b(op="stats")["stats"]
        assert all(before[0][str(c)]["packets"] > 30 and before[1][str(c)]["packets"] > 30 for c in range(CALLS)), before
        # the third party is the caller's own host on another port: it must not take the callee's media
        for c in range(0, CALLS, 5):
            a(op="inject", call=c, to=[ANYCAST, to_callee[c]], count=20, ssrc=666)
        bed.kill(1)
        t_fail = rt(op="cmd", to=["10.250.1.2", 22222], text="V")["now"]
        bed.route_to(2)
        time.sleep(2.0)
        for c in range(0, CALLS, 5):
            a(op="inject", call=c, to=[ANYCAST, to_caller[c]], count=20, ssrc=777)
            b(op="inject", call=c, to=[ANYCAST, to_callee[c]], count=20, ssrc=888)
        time.sleep(0.5)
        after_a, after_b = a(op="stats", since=t_fail)["stats"], b(op="stats", since=t_fail)["stats"]
        for c in range(CALLS):
            ra, rb = after_a[str(c)], after_b[str(c)]
            assert ra["packets"] > 80 and rb["packets"] > 80, "call %d did not resume: %s %s" % (c, ra, rb)
            assert ra["ssrcs"] == [2000 + c] and rb["ssrcs"] == [1000 + c], "a third source got through: %s %s" % (ra, rb)
            assert ra["sources"] == ["%s:%d" % (ANYCAST, to_caller[c])], ra
            assert ra["max_gap_ms"] < 1500 and rb["max_gap_ms"] < 1500, (ra, rb)
        # the split case: the caller reaches R2, the callee R3
        bed.route_to(2, callee_to=3)
        t_split = a(op="stats")["now"]
        time.sleep(1.5)
        sa, sb = a(op="stats", since=t_split)["stats"], b(op="stats", since=t_split)["stats"]
        for c in range(CALLS):
            assert sa[str(c)]["packets"] > 50 and sb[str(c)]["packets"] > 50, (c, sa[str(c)], sb[str(c)])
        assert all(control(rt, i, "Q call0 A;1 B;1").split()[0] != "E50" for i in (2, 3))
    finally:
        bed.destroy()


if __name__ == "__main__":
    run_all()
