#!/usr/bin/env bash
# The kernel fast path's benchmark (not a test): the same binary and
# the same load, with --kernel-offload=off and =on, one after the other in one
# run. As root: the generator and the relay sit in two network namespaces
# joined by a veth pair (the relay at 10.252.1.1, the generator at
# 10.252.1.2), so media crosses an interface as on a real host; the relay's
# receive processing is steered to CPU 1 (RPS), where the relay runs, and
# the generator runs on CPU 0.
#   make bench-offload     (or: bash bench/offload.sh [SECONDS_PER_STEP])
set -euo pipefail
cd "$(dirname "$0")/.."
STEP=${1:-3}
# CPU and latency are measured at a load both paths carry without loss, for
# long enough that the machine's background work is a small part of it.
MEASURE_PPS=${MEASURE_PPS:-100000}
MEASURE_SECONDS=${MEASURE_SECONDS:-10}
RATES=${RATES:-"$(seq -s " " 50000 50000 1000000)"}
# A losing step is run again before it ends the ladder, and the gap to the
# last clean step is then halved three times (6,250 pps resolution).
export RETRY=${RETRY:-1} REFINE=${REFINE:-3}
OUT=bench/results
mkdir -p "$OUT"
[ "$(id -u)" = 0 ] || { echo "bench/offload.sh: needs root (network namespaces, eBPF)" >&2; exit 1; }
G=arpbenchG$$ R=arpbenchR$$
RELAY=10.252.1.1 GEN=10.252.1.2 CTL=22222
PID=
# Both paths hand packets between the two CPUs through the per-CPU backlog
# (RPS, veth): its default 1,000 packets overflow in the generator's 64-packet
# bursts long before either path runs out of CPU (/proc/net/softnet_stat's
# drops). Raised for the run, as on a tuned relay host, and restored after.
BACKLOG=$(cat /proc/sys/net/core/netdev_max_backlog)
sysctl -qw net.core.netdev_max_backlog=16384
cleanup() {
  sysctl -qw net.core.netdev_max_backlog="$BACKLOG"
  [ -n "$PID" ] && kill "$PID" 2>/dev/null || true
  ip netns del "$G" 2>/dev/null || true
  ip netns del "$R" 2>/dev/null || true
}
trap cleanup EXIT INT TERM
ip netns add "$G"
ip netns add "$R"
ip -n "$R" link add r0 type veth peer name g0 netns "$G"
ip -n "$R" addr add "$RELAY/24" dev r0
ip -n "$G" addr add "$GEN/24" dev g0
for ns in "$G" "$R"; do ip -n "$ns" link set lo up; done
ip -n "$R" link set r0 up
ip -n "$G" link set g0 up
ip netns exec "$R" sh -c 'echo 2 > /sys/class/net/r0/queues/rx-0/rps_cpus'  # the relay's receive work on CPU 1

start_relay() {  # mode
  ip netns exec "$R" taskset -c 1 ./anyrtpproxy -D -d notice -s "udp:$RELAY:$CTL" -i "$RELAY" -p 30000 49999 -T 600 \
    --kernel-offload="$1" 2>"$OUT/offload-$1.log" &
  PID=$!
  for _ in $(seq 50); do
    if ip netns exec "$G" /usr/bin/python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1); s.sendto(b'b V', ('$RELAY', $CTL)); sys.exit(0 if s.recv(100) else 1)" 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "bench: the relay did not start ($1)" >&2; exit 1
}
. bench/lib.sh  # before gen(): this one runs the generator in its namespace
gen() { ip netns exec "$G" taskset -c 0 ./bench/loadgen --control "$RELAY:$CTL" --pid "$PID" --media "$GEN" "$@"; }

declare -A R
for mode in off on; do
  start_relay "$mode"
  echo "== --kernel-offload=$mode ($(grep -o 'kernel offload[^\n]*' "$OUT/offload-$mode.log" || echo 'kernel offload: off'))"
  lat=$(gen --sessions 200 --pps "$MEASURE_PPS" --seconds "$MEASURE_SECONDS" | tee "$OUT/offload-$mode-measure.txt" | grep RESULT)
  echo "$lat"
  for f in p50_us p90_us p99_us loss_pct cpu_pct machine_us_per_pkt; do R[$mode,$f]=$(echo "$lat" | field "$f"); done
  steps=$(ladder)
  echo "$steps" | grep -v '^max=\|^next='
  R[$mode,max]=$(echo "$steps" | sed -n 's/^max=//p')
  R[$mode,next_relay]=$(echo "$steps" | { grep '^next=' || true; } | field cpu_pct)
  kill "$PID"; wait "$PID" 2>/dev/null || true
  PID=
done

ratio() { awk "BEGIN{ if ($2 > 0) printf \"%.2fx\", $1 / $2; else print \"-\" }"; }
{
  echo "| measure | offload off (userspace) | offload on (eBPF) | on / off (target) |"
  echo "|---|---|---|---|"
  echo "| max relayed pps at < 0.1 % loss (200 sessions) | ${R[off,max]} | ${R[on,max]} | $(ratio "${R[on,max]}" "${R[off,max]}") (>= 2x) |"
  echo "| the relay process's CPU at the lowest rate with loss (one core) | ${R[off,next_relay]:--} % | ${R[on,next_relay]:--} % | |"
  echo "| $MEASURE_PPS pps: CPU per relayed packet, whole machine without the generator (us) | ${R[off,machine_us_per_pkt]} | ${R[on,machine_us_per_pkt]} | $(ratio "${R[on,machine_us_per_pkt]}" "${R[off,machine_us_per_pkt]}") (<= 0.33x) |"
  echo "| $MEASURE_PPS pps: the relay process's CPU (one core) | ${R[off,cpu_pct]} % | ${R[on,cpu_pct]} % | |"
  echo "| $MEASURE_PPS pps: loss | ${R[off,loss_pct]} % | ${R[on,loss_pct]} % | |"
  echo "| $MEASURE_PPS pps: latency p50 / p90 / p99 (us) | ${R[off,p50_us]} / ${R[off,p90_us]} / ${R[off,p99_us]} | ${R[on,p50_us]} / ${R[on,p90_us]} / ${R[on,p99_us]} | p99 no worse |"
} | tee "$OUT/offload-table.md"
