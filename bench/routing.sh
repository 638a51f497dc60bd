#!/usr/bin/env bash
# Failover under real routing daemons: runs tests/e2e/test_routing.py (BIRD 2
# as the router; BIRD 2 or ExaBGP 4.2 on two relays, from the shipped
# examples; 10 calls at 50 pps each way) ROUNDS times and prints one table:
# per routing daemon and fault, when the router's route moved, the largest
# gap and the packets lost per leg (median over the rounds, and the worst).
#   bash bench/routing.sh [ROUNDS]      (root; default 3 rounds)
#   ROUTING_ARGS=--kernel-offload=off bash bench/routing.sh 1   (more daemon options)
# Builds nothing: run `make` first. Needs bird2 and exabgp
# (tests/install-deps.sh test).
set -eu
cd "$(dirname "$0")/.."
rounds=${1:-3}
out=$(mktemp /tmp/arp-routing.XXXXXX)
trap 'rm -f "$out"' EXIT
for r in $(seq 1 "$rounds"); do
  echo "round $r of $rounds" >&2
  ROUTING_FIGURES=$out /usr/bin/python3 -m pytest -p no:cacheprovider -q tests/e2e/test_routing.py >/dev/null 2>&1 ||
    echo "round $r: a test failed (its figures are in the table all the same)" >&2
done
/usr/bin/python3 - "$out" "$rounds" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
faults = ["kill", "hang", "stop", "drain", "restart"]
what = {"kill": "SIGKILL (crash)", "hang": "SIGSTOP (hang)", "stop": "SIGTERM (planned stop)",
        "drain": "SIGUSR2 (maintenance drain)", "restart": "SIGTERM, then started again"}
print("| routing daemon on the relays | fault on relay 1's daemon | route moved after (ms) | largest gap per leg (ms) | packets lost per leg | calls resumed |")
print("|---|---|---|---|---|---|")
for speaker in ("bird", "exabgp"):
    for fault in faults:
        got = [r for r in rows if r["speaker"] == speaker and r["fault"] == fault]
        if not got:
            continue
        med = lambda k: statistics.median(r[k] for r in got)
        worst = lambda k: max(r[k] for r in got)
        moved = "%d (worst %d)" % (med("route_moved_ms"), worst("route_moved_ms"))
        if fault == "restart":
            moved += "; back after %d" % med("route_back_ms")
        print("| %s | %s | %s | %.0f (worst %.0f) | %d (worst %d) | %s |" % (
            "BIRD 2" if speaker == "bird" else "ExaBGP 4.2", what[fault], moved, med("largest_gap_ms"),
            worst("largest_gap_ms"), med("most_lost_per_leg"), worst("most_lost_per_leg"),
            ", ".join(sorted(set(r["calls_resumed"] for r in got)))))
args = sorted(set(r.get("args", "") for r in rows))
print("\n%s rounds; 10 calls, 50 pps each way; the route's next hop read every 10 ms on the router; daemon options: %s."
      % (sys.argv[2], ", ".join(a or "the defaults" for a in args)))
PY
