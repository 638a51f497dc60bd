#!/usr/bin/env bash
# Runs every test: the Boost.Test unit tests, the layer check, the integration
# tests against the real daemon (pytest, tests/conftest.py) and the Kamailio +
# sipp end-to-end tests. Prints one line per test and ends with the summary
# line "N passed, N failed". Arguments go to pytest (a file, -k NAME).
# ANYRTPPROXY and UNIT_TESTS name the binaries (make check sets them). With
# SANITIZE=1 they are the ASan/UBSan builds, and only the unit and integration
# tests run (the end-to-end tests exercise Kamailio and the package, not us).
set -u
cd "$(dirname "$0")/.."
export TEST_LOGDIR=${TEST_LOGDIR:-$(mktemp -d /tmp/anyrtpproxy-tests.XXXXXX)}
mkdir -p "$TEST_LOGDIR"
ANYRTPPROXY=${ANYRTPPROXY:-anyrtpproxy}
UNIT_TESTS=${UNIT_TESTS:-build/unit_tests}
case $ANYRTPPROXY in /*) ;; *) ANYRTPPROXY=$PWD/$ANYRTPPROXY ;; esac  # the tests start it from elsewhere too
case $UNIT_TESTS in /*) ;; *) UNIT_TESTS=$PWD/$UNIT_TESTS ;; esac
export ANYRTPPROXY
SANITIZE=${SANITIZE:-}
suites="tests/integration tests/e2e"
if [ "$SANITIZE" = 1 ]; then
  # Any report fails the test that caused it: the daemon exits non-zero.
  export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:exitcode=23}
  export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
  suites="tests/integration"
fi
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
"$UNIT_TESTS" --random --report_level=detailed --log_level=error >"$unit_log" 2>&1
unit_status=$?
count < <(sed -n 's/^ *Test case "\([^"]*\)" has passed.*/PASS unit:\1/p; s/^ *Test case "\([^"]*\)" has failed.*/FAIL unit:\1/p; s/^ *Test case "\([^"]*\)" was aborted.*/FAIL unit:\1/p' "$unit_log" | sort)
if grep -q 'failed\|aborted' "$unit_log"; then grep -v '^ *Test' "$unit_log" | head -40; fi
if ! grep -q 'Test case' "$unit_log"; then echo "FAIL unit: the unit test binary did not run"; cat "$unit_log"; failed=$((failed + 1));
elif [ "$unit_status" != 0 ] && ! grep -q 'has failed\|was aborted' "$unit_log"; then
  echo "FAIL unit: exited with status $unit_status after its tests (a sanitizer report at exit?)"; tail -30 "$unit_log"; failed=$((failed + 1))
fi

if [ "$SANITIZE" != 1 ]; then
echo "== layers"
count < <(bash tests/layers.sh)
fi

echo "== pytest $suites $*"
status_file="$TEST_LOGDIR/status"
# -p no:cacheprovider: nothing written into the tree; conftest.py prints PASS/FAIL/SKIP lines.
# shellcheck disable=SC2086
count < <(PYTHONDONTWRITEBYTECODE=1 timeout 3600 "$PY" -m pytest -p no:cacheprovider -q --durations=10 $suites "$@" 2>&1
          echo $? > "$status_file")
status=$(cat "$status_file")
case "$status" in
  0|1) ;;  # all passed; some failed (counted above)
  5) echo "FAIL pytest: no test was collected"; failed=$((failed + 1)) ;;
  *) echo "FAIL pytest: exited with status $status"; failed=$((failed + 1)) ;;
esac

echo "logs: $TEST_LOGDIR"
if [ "$skipped" -gt 0 ]; then
  echo "$passed passed, $failed failed, $skipped skipped"
else
  echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
