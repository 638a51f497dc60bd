#!/usr/bin/env bash
# What .ci/run runs: make nobpf (the daemon built without the kernel fast
# path, which make check then runs too), make check (unit, integration, end-to-end), make check
# SANITIZE=1 (unit and integration under ASan and UBSan) and make fuzz-run
# (each fuzzer for FUZZ_SECONDS, default 60). Ends with one summary line
# counting every PASS and FAIL of the three.
set -u
cd "$(dirname "$0")/.."
export TEST_LOGDIR=${TEST_LOGDIR:-$(mktemp -d /tmp/anyrtpproxy-tests.XXXXXX)}
jobs=${JOBS:-2}
total_passed=0 total_failed=0
phase() {  # NAME COMMAND...: runs it, echoes its output, adds up its PASS/FAIL lines
  local name=$1 out
  shift
  echo "=== $name"
  out="$TEST_LOGDIR/$name.out"
  "$@" 2>&1 | tee "$out"
  local status=${PIPESTATUS[0]}
  local p f
  p=$(grep -c '^PASS ' "$out")
  f=$(grep -c '^FAIL' "$out")
  if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then
    echo "FAIL $name: exited with status $status"
    f=1
  fi
  total_passed=$((total_passed + p))
  total_failed=$((total_failed + f))
}
phase build-without-bpf make -j"$jobs" nobpf
phase check make -j"$jobs" check
phase check-sanitized make -j"$jobs" check SANITIZE=1
phase fuzz make -j"$jobs" fuzz-run FUZZ_SECONDS="${FUZZ_SECONDS:-60}"
echo "$total_passed passed, $total_failed failed"
[ "$total_failed" -eq 0 ]
