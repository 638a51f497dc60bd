#!/usr/bin/env bash
# Runs every test: the Boost.Test unit tests, the integration tests against the
# real daemon on loopback, and the Kamailio + sipp end-to-end test. Prints one
# line per test and ends with the summary line "N passed, N failed".
set -u
cd "$(dirname "$0")/.."
export TEST_LOGDIR=${TEST_LOGDIR:-$(mktemp -d /tmp/anyrtpproxy-tests.XXXXXX)}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
passed=0 failed=0 skipped=0

count() {  # reads PASS/FAIL/SKIP lines of a suite from stdin, echoing them
  while IFS= read -r line; do
    printf '%s\n' "$line"
    case "$line" in
      PASS\ *) passed=$((passed + 1)) ;;
      FAIL\ *) failed=$((failed + 1)) ;;
      SKIP\ *) skipped=$((skipped + 1)) ;;
    esac
  done
}

echo "== unit tests"
unit_log="$TEST_LOGDIR/unit.log"
if ./build/unit_tests --random --report_level=detailed --log_level=error >"$unit_log" 2>&1; then :; fi
count < <(sed -n 's/^ *Test case "\([^"]*\)" has passed.*/PASS unit:\1/p; s/^ *Test case "\([^"]*\)" has failed.*/FAIL unit:\1/p; s/^ *Test case "\([^"]*\)" was aborted.*/FAIL unit:\1/p' "$unit_log" | sort)
if grep -q 'failed\|aborted' "$unit_log"; then grep -v '^ *Test' "$unit_log" | head -40; fi
if ! grep -q 'Test case' "$unit_log"; then echo "FAIL unit: the unit test binary did not run"; cat "$unit_log"; failed=$((failed + 1)); fi

echo "== layers"
# The core is pure (architecture notes, 2.3): no I/O module, logging, clock reads or Asio I/O objects.
core="protocol port_allocator session session_table controller sync_codec"
bad=""
for m in $core; do
  hits=$(grep -nE '#include "(log|relay|control_server|sync|proxy|daemon|options|notify|fd)\.h"|<iostream>|io_context|udp::socket|tcp::socket|steady_timer|async_|syslog|Clock::now' "src/$m.h" "src/$m.cpp")
  [ -n "$hits" ] && bad="$bad$hits"$'\n'
done
if [ -z "$bad" ]; then echo "PASS layers: the core includes no I/O"; passed=$((passed + 1)); else printf 'FAIL layers:\n%s' "$bad"; failed=$((failed + 1)); fi

for suite in tests/integration/test_*.py tests/e2e/test_*.py; do
  echo "== $suite"
  status_file="$TEST_LOGDIR/status"
  count < <(timeout 600 "$PY" "$suite"; echo $? > "$status_file")
  status=$(cat "$status_file")
  if [ "$status" != 0 ] && [ "$status" != 1 ]; then
    echo "FAIL $suite: exited with status $status"
    failed=$((failed + 1))
  fi
done

echo "logs: $TEST_LOGDIR"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
