#!/usr/bin/env bash
# Two commits side by side, in one sitting: builds OLD and NEW (each in
# build/compare/COMMIT, from this repository's history) and measures them
# and the bare forwarder round by round, the order turning each round, so
# that the machine's drift touches all three alike. Prints each measure as a
# ratio to the forwarder (median of the rounds, with their spread) and NEW
# against OLD.
#   bash bench/compare.sh OLD NEW [ROUNDS]     (default 3 rounds)
#   STEP=3 (seconds per ladder step), SESSIONS_SETUP=4000, RATES="..." as bench/run.sh
# Measures: max relayed pps at < 0.1 % loss (200 sessions), CPU per relayed
# packet at 20,000 pps, RSS per answered session, U + L commands/s.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 2 ] || { echo "usage: $0 OLD NEW [ROUNDS]" >&2; exit 2; }
ROUNDS=${3:-3}
STEP=${STEP:-2}
SESSIONS_SETUP=${SESSIONS_SETUP:-4000}
. bench/lib.sh
bench_init

build() {  # commit -> prints the daemon's path
  local sha dir
  sha=$(git rev-parse --short=12 "$1^{commit}")
  dir=build/compare/$sha
  if [ ! -x "$dir/anyrtpproxy" ]; then
    rm -rf "$dir" && mkdir -p "$dir"
    git archive "$sha" | tar -x -C "$dir"
    (cd "$dir" && ./configure >/dev/null && make -j2 anyrtpproxy >/dev/null) >&2
  fi
  echo "$PWD/$dir/anyrtpproxy"
}
make bench/forwarder bench/loadgen >/dev/null
old_bin=$(build "$1")
new_bin=$(build "$2")
tsv="$OUT/compare.tsv"
: > "$tsv"
targets=(forwarder old new)
for round in $(seq 1 "$ROUNDS"); do
  shift_by=$(( (round - 1) % 3 ))
  order=("${targets[@]:$shift_by}" "${targets[@]:0:$shift_by}")
  for target in "${order[@]}"; do
    case $target in old) bin=$old_bin ;; new) bin=$new_bin ;; *) bin=forwarder ;; esac
    start_relay "$bin"
    setup=$(gen --sessions "$SESSIONS_SETUP" --setup-only)
    lat=$(gen --sessions 200 --pps 20000 --seconds 5 | grep RESULT)
    max=$(ladder | sed -n 's/^max=//p')
    kill "$PID"; wait "$PID" 2>/dev/null || true
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$target" "$max" \
      "$(awk "BEGIN{ r = $(echo "$lat" | field relayed_pps); if (r > 0) printf \"%.3f\", 1e4 * $(echo "$lat" | field cpu_pct) / r; else print 0 }")" \
      "$(echo "$setup" | sed -n 's/.* = \([0-9]*\) bytes per session/\1/p')" \
      "$(echo "$setup" | sed -n 's/.* = \([0-9]*\) commands\/s/\1/p')" | tee -a "$tsv" >&2
  done
done
/usr/bin/python3 - "$tsv" "$1" "$2" "$ROUNDS" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
old, new, rounds = sys.argv[2], sys.argv[3], sys.argv[4]
names = ["max relayed pps at < 0.1 % loss", "CPU per relayed packet at 20,000 pps (us)",
         "RSS per answered session (bytes)", "session setup, U + L commands/s"]
val = {}
for r, target, *m in rows:
    for k, v in enumerate(m):
        val.setdefault((target, k), {})[r] = float(v or 0)
def spread(xs):
    xs = [x for x in xs if x == x]
    return "%.2f (%.2f-%.2f)" % (statistics.median(xs), min(xs), max(xs)) if xs else "-"
print("| measure | forwarder | %s | %s | %s / forwarder | %s / forwarder | %s / %s |" % (old, new, old, new, new, old))
print("|---|---|---|---|---|---|---|")
for k, name in enumerate(names):
    f, o, n = val.get(("forwarder", k), {}), val.get(("old", k), {}), val.get(("new", k), {})
    med = lambda d: ("{:,.0f}" if statistics.median(d.values()) >= 100 else "{:.3g}").format(
        statistics.median(d.values())) if d else "-"
    ratio = lambda a, b: [a[r] / b[r] if b.get(r) else float("nan") for r in a]
    print("| %s | %s | %s | %s | %s | %s | %s |" % (name, med(f), med(o), med(n), spread(ratio(o, f)), spread(ratio(n, f)),
                                                 spread(ratio(n, o))))
print("\n%s rounds, the order turning each round; ratios are medians of the per-round ratios, (lowest-highest)." % rounds)
PY
