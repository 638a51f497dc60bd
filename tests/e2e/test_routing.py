"""Failover under real routing daemons (tests/integration/routing_bed.py):
BIRD 2 routes the anycast address to relay 1 (preferred) or relay 2, learned
over eBGP from BIRD 2 or ExaBGP 4.2 on each relay, set up from the shipped
examples/bird.conf and examples/exabgp.conf. Ten calls at 50 pps each way
go through the anycast address; then relay 1's daemon is killed, hung,
stopped, drained for maintenance, or stopped and started again. Per leg:
the largest gap and the packets lost; and when the router's route moved.

Asserted generously (the figures themselves go to the README from
bench/routing.sh): every call resumes; a planned stop, a drain and a
restart lose no packet; a crash or a hang leaves a gap below 2 s."""

import json
import os
import signal
import time

import pytest

from anycast_bed import ANYCAST
from harness import wait_until
from routing_bed import RouteWatch

CALLS = 10
FAULTS = ["kill", "hang", "stop", "drain", "restart"]


def control(agent, i, text):
    return agent(op="cmd", to=["10.250.1.%d" % i, 22222], text=text)["reply"]


def run_case(make_bed, speaker, fault):
    extra = os.environ.get("ROUTING_ARGS", "").split()  # bench/routing.sh: --kernel-offload=off, say
    bed = make_bed(speaker, extra_args=extra)
    bed.start_all()
    rt, a, b = bed.agent("RT"), bed.agent("A"), bed.agent("B")
    wait_until(lambda: bed.routes_learned() == 2 and bed.next_hop() == 1, 25, "both relays' routes, relay 1's chosen",
               debug=lambda: (bed.routes_learned(), bed.next_hop(), bed.routing_logs()[-3000:]))
    a(op="open", calls=[[c, "10.250.10.1", 30000 + 2 * c] for c in range(CALLS)])
    b(op="open", calls=[[c, "10.250.20.1", 31000 + 2 * c] for c in range(CALLS)])
    to_callee, to_caller = {}, {}
    for c in range(CALLS):
        p = control(rt, 1, "U rcall%d 10.250.10.1 %d A;1" % (c, 30000 + 2 * c))
        q = control(rt, 1, "L rcall%d 10.250.20.1 %d A;1 B;1" % (c, 31000 + 2 * c))
        assert p.split()[1] == ANYCAST and q.split()[1] == ANYCAST, (p, q)
        to_callee[c], to_caller[c] = int(p.split()[0]), int(q.split()[0])
    wait_until(lambda: control(rt, 2, "I").split("\n")[1] == "active sessions: %d" % CALLS, 5, "every call on relay 2")
    a(op="stream", targets={c: [ANYCAST, to_caller[c]] for c in range(CALLS)}, pps=50, ssrc=1000)
    b(op="stream", targets={c: [ANYCAST, to_callee[c]] for c in range(CALLS)}, pps=50, ssrc=2000)
    flowing = lambda: all(x(op="stats")["stats"][str(c)]["packets"] > 50 for x in (a, b) for c in range(CALLS))
    wait_until(flowing, 10, "every call's media both ways", debug=lambda: (a(op="stats"), b(op="stats")))
    watch = RouteWatch(bed)
    t0 = rt(op="stats")["now"]  # the agents' clock (monotonic, shared by the host)
    try:
        if fault == "kill":
            bed.kill(1)
        elif fault == "hang":
            bed.signal(1, signal.SIGSTOP)
        elif fault == "stop":
            bed.signal(1, signal.SIGTERM)
        elif fault == "drain":
            bed.signal(1, signal.SIGUSR2)
        elif fault == "restart":
            bed.signal(1, signal.SIGTERM)
            wait_until(lambda: bed.procs[1].poll() is not None, 8, "relay 1 to stop after its drain")
            bed.procs.pop(1)
            bed.start(1)
        moved = wait_until(lambda: watch.first_change_after(t0, to=2), 10, "the route to relay 2",
                           debug=lambda: (watch.changes, bed.routing_logs()[-3000:]))
        if fault == "restart":
            wait_until(lambda: watch.first_change_after(moved, to=1), 15, "the route back to relay 1",
                       debug=lambda: (watch.changes, bed.routing_logs()[-3000:]))
        settled = time.monotonic()
        wait_until(lambda: time.monotonic() - settled > 2, 3, "two seconds of media after the move")
        rx = {"to caller": a(op="stats", since=t0 - 1)["stats"], "to callee": b(op="stats", since=t0 - 1)["stats"]}
    finally:
        watch.stop()
        if fault == "hang" and 1 in bed.procs:
            bed.signal(1, signal.SIGCONT)
    legs = [(way, c, s) for way, per in rx.items() for c, s in per.items()]
    gap = max(s["max_gap_ms"] for _, _, s in legs)
    lost = sum(s["lost"] for _, _, s in legs)
    resumed = all(s["last"] and s["last"] > settled for _, _, s in legs)
    figures = {"speaker": speaker, "fault": fault, "args": " ".join(extra), "route_moved_ms": round(1000 * (moved - t0)),
               "largest_gap_ms": gap, "lost_packets": lost, "most_lost_per_leg": max(s["lost"] for _, _, s in legs),
               "calls_resumed": "%d of %d" % (sum(1 for c in range(CALLS) if all(
                   rx[w][str(c)]["last"] and rx[w][str(c)]["last"] > settled for w in rx)), CALLS)}
    if fault == "restart":
        figures["route_back_ms"] = round(1000 * (watch.first_change_after(moved, to=1) - t0))
    print("ROUTING " + json.dumps(figures))
    out = os.environ.get("ROUTING_FIGURES")
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(figures) + "\n")
    assert resumed, figures
    if fault in ("stop", "drain", "restart"):
        assert lost == 0, figures
    else:
        assert gap < 2000, figures
    return figures


@pytest.mark.parametrize("fault", FAULTS)
def test_bird_moves_the_calls(routed_bed, fault):
    run_case(routed_bed, "bird", fault)


@pytest.mark.parametrize("fault", FAULTS)
def test_exabgp_moves_the_calls(routed_bed, fault):
    run_case(routed_bed, "exabgp", fault)
