# Shared by bench/run.sh, bench/compare.sh and bench/offload.sh (sourced;
# offload.sh defines its own gen()).

# bench_init: the ladder's rates (RATES, default 50,000 to 400,000 pps), the
# results directory (OUT), and every relay started (PIDS) killed at exit.
bench_init() {
  RATES=${RATES:-"$(seq -s " " 50000 25000 400000)"}
  OUT=bench/results
  mkdir -p "$OUT"
  PIDS=()
  trap 'for p in "${PIDS[@]:-}"; do kill "$p" 2>/dev/null || true; done' EXIT INT TERM
}

free_udp() { /usr/bin/python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# start_relay BINARY|forwarder [LOG]: the relay under test on CPU 1, on
# loopback, ports 30000-49999, in userspace; sets PID and CTL once it answers
# V. A daemon too old for --kernel-offload is started without it.
start_relay() {
  CTL=$(free_udp)
  if [ "$1" = forwarder ]; then
    taskset -c 1 ./bench/forwarder "$CTL" 30000 49999 &
  else
    local offload=
    "$1" --help 2>&1 | grep -q -- --kernel-offload && offload=--kernel-offload=off
    # shellcheck disable=SC2086
    taskset -c 1 "$1" -D -d warning -s "udp:127.0.0.1:$CTL" -i 127.0.0.1 -p 30000 49999 -T 600 $offload 2>"${2:-/dev/null}" &
  fi
  PID=$!
  PIDS+=("$PID")
  for _ in $(seq 50); do
    if /usr/bin/python3 -c "import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.1); s.sendto(b'b V', ('127.0.0.1', $CTL)); sys.exit(0 if s.recv(100) else 1)" 2>/dev/null; then return; fi
    sleep 0.1
  done
  echo "bench: $1 did not start" >&2; exit 1
}

# gen ARGS: the load generator on CPU 0 against the relay started last.
gen() { taskset -c 0 ./bench/loadgen --control "127.0.0.1:$CTL" --pid "$PID" "$@"; }

# field NAME: the value of NAME=... in a loadgen RESULT line on stdin.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# ladder: runs gen at each of $RATES for $STEP s (200 sessions), printing each
# RESULT line, until a step loses 0.1 % or more; prints "max=PPS" last, the
# relayed rate of the highest step without that loss, and "next=" the RESULT
# of the step that lost (its cpu_pct: was the relay process the limit?).
# RETRY=1 runs a losing step once more and counts it lost only if it loses
# again (one hiccup of a shared machine does not end the ladder); REFINE=N
# then halves the gap between the last clean step and the lost one N times.
lossless() { awk "BEGIN{exit !($(echo "$1" | field loss_pct) < 0.1)}"; }
step() {  # rate: prints the RESULT line that decides the step
  local res
  res=$(gen --sessions 200 --pps "$1" --seconds "$STEP" | grep RESULT)
  if ! lossless "$res" && [ "${RETRY:-0}" = 1 ]; then
    echo "$res (lost: tried again)" >&2
    res=$(gen --sessions 200 --pps "$1" --seconds "$STEP" | grep RESULT)
  fi
  echo "$res"
}
ladder() {
  local best=0 good=0 bad=0 rate lost=
  judge() {  # rate: runs the step, and moves the bounds (in ladder's locals); false: it lost
    local res
    res=$(step "$1")
    echo "$res"
    if lossless "$res"; then best=$(echo "$res" | field relayed_pps); good=$1; else lost=$res; bad=$1; return 1; fi
  }
  for rate in $RATES; do
    judge "$rate" || break
  done
  for _ in $(seq "${REFINE:-0}"); do
    [ "$bad" -gt 0 ] || break
    judge $(( (good + bad) / 2 )) || true
  done
  [ -n "$lost" ] && echo "next=$lost"
  echo "max=$best"
}
