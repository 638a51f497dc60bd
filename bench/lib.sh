# Shared by bench/run.sh and bench/offload.sh (sourced; each defines gen()).

# field NAME: the value of NAME=... in a loadgen RESULT line on stdin.
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p"; }

# ladder: runs gen at each of $RATES for $STEP s (200 sessions), printing each
# RESULT line, until a step loses 0.1 % or more; prints "max=PPS" last, the
# relayed rate of the highest step without that loss, and "next=" the RESULT
# of the step that lost (its cpu_pct: was the relay process the limit?).
ladder() {
  local best=0 rate res loss relayed
  for rate in $RATES; do
    res=$(gen --sessions 200 --pps "$rate" --seconds "$STEP" | grep RESULT)
    echo "$res"
    loss=$(echo "$res" | field loss_pct)
    relayed=$(echo "$res" | field relayed_pps)
    if awk "BEGIN{exit !($loss < 0.1)}"; then best=$relayed; else echo "next=$res"; break; fi
  done
  echo "max=$best"
}
