#!/usr/bin/env bash
# The benchmark (not a test): anyrtpproxy and the bare forwarder, side by side,
# driven by the same load generator over the control protocol. On 2 cores the
# relay under test is pinned to CPU 1 and the generator to CPU 0.
#   make bench            (or: bash bench/run.sh [SECONDS_PER_STEP])
set -euo pipefail
cd "$(dirname "$0")/.."
STEP=${1:-3}
SESSIONS_SETUP=${SESSIONS_SETUP:-4000}
. bench/lib.sh
bench_init

start_target() {  # name -> sets PID and CTL
  case "$1" in
    anyrtpproxy) start_relay ./anyrtpproxy "$OUT/anyrtpproxy.log" ;;
    forwarder) start_relay forwarder ;;
  esac
}

declare -A R
for target in anyrtpproxy forwarder; do
  start_target "$target"
  echo "== $target"
  setup=$(gen --sessions "$SESSIONS_SETUP" --setup-only | tee "$OUT/$target-setup.txt")
  echo "$setup"
  R[$target,setup]=$(echo "$setup" | sed -n 's/.* = \([0-9]*\) commands\/s/\1/p')
  R[$target,rss]=$(echo "$setup" | sed -n 's/.* = \([0-9]*\) bytes per session/\1/p')
  lat=$(gen --sessions 200 --pps 20000 --seconds 5 | tee "$OUT/$target-20k.txt" | grep RESULT)
  echo "$lat"
  for f in p50_us p90_us p99_us loss_pct cpu_pct; do R[$target,$f]=$(echo "$lat" | field "$f"); done
  steps=$(ladder)
  echo "$steps" | grep -v '^max=\|^next='
  R[$target,max]=$(echo "$steps" | sed -n 's/^max=//p')
  kill "$PID"; wait "$PID" 2>/dev/null || true
done

ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.0f %%\", 100 * $1 / $2; else print \"-\" }"; }
{
  echo "| measure | anyrtpproxy | bare forwarder | ratio / target |"
  echo "|---|---|---|---|"
  echo "| max relayed pps at < 0.1 % loss (200 sessions) | ${R[anyrtpproxy,max]} | ${R[forwarder,max]} | $(ratio "${R[anyrtpproxy,max]}" "${R[forwarder,max]}") (target >= 70 %) |"
  echo "| 20,000 pps (200 calls, both ways): loss | ${R[anyrtpproxy,loss_pct]} % | ${R[forwarder,loss_pct]} % | target 0 |"
  echo "| 20,000 pps: latency p50 / p90 / p99 (us) | ${R[anyrtpproxy,p50_us]} / ${R[anyrtpproxy,p90_us]} / ${R[anyrtpproxy,p99_us]} | ${R[forwarder,p50_us]} / ${R[forwarder,p90_us]} / ${R[forwarder,p99_us]} | p99 +$(awk "BEGIN{printf \"%.1f\", ${R[anyrtpproxy,p99_us]} - ${R[forwarder,p99_us]}}") us (target <= +50) |"
  echo "| 20,000 pps: relay CPU (one core) | ${R[anyrtpproxy,cpu_pct]} % | ${R[forwarder,cpu_pct]} % | |"
  echo "| session setup, U + L commands/s ($SESSIONS_SETUP sessions) | ${R[anyrtpproxy,setup]} | ${R[forwarder,setup]} | target >= 20,000 |"
  echo "| RSS per session (bytes) | ${R[anyrtpproxy,rss]} | ${R[forwarder,rss]} | target <= 2048 |"
} | tee "$OUT/table.md"
