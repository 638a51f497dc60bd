#!/usr/bin/env bash
# Runs each fuzzer for SECONDS seconds from the seeds in tests/fuzz/corpus (new
# inputs go to build/fuzz/corpus-NAME, never into the tree), as many at once
# as there are cores (each fuzzer is one process on one core). One PASS/FAIL
# line per fuzzer, then "N passed, N failed". A crash leaves its input in
# build/fuzz/ (crash-*) and its report in the log named on the FAIL line.
#   bash tests/fuzz/run.sh SECONDS NAME...
set -u
cd "$(dirname "$0")/../.."
seconds=${1:?usage: run.sh SECONDS NAME...}
shift
cores=$(nproc 2>/dev/null || echo 1)
one() {  # NAME: runs it, leaves its exit status in build/fuzz/NAME.status
  local name=$1 work=build/fuzz/corpus-$1
  mkdir -p "$work"
  (cd build/fuzz && "./fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      "corpus-$name" "../../tests/fuzz/corpus/$name") >"build/fuzz/$name.log" 2>&1
  echo $? >"build/fuzz/$name.status"
}
for name in "$@"; do
  while [ "$(jobs -rp | wc -l)" -ge "$cores" ]; do wait -n; done
  one "$name" &
done
wait
passed=0 failed=0
for name in "$@"; do
  log=build/fuzz/$name.log
  if [ "$(cat "build/fuzz/$name.status" 2>/dev/null)" = 0 ]; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
    echo "PASS fuzz:$name (${runs:-?} runs in ${seconds} s)"
    passed=$((passed + 1))
  else
    echo "FAIL fuzz:$name (see $log)"
    grep -m1 -E "ERROR|runtime error|deadly signal" "$log"
    failed=$((failed + 1))
  fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
