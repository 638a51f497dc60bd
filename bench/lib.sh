# Shared by bench/run.sh and bench/offload.sh (sourced; each defines gen()).

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
