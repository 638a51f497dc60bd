"""pytest's shared fixtures and reporting for the integration and end-to-end
suites.

Fixtures (each cleans up after itself, passed or failed):
  daemon   daemon(*args, **kw) starts anyrtpproxy on loopback (harness.Daemon);
           stopped at the end of the test, its log's tail shown if it failed
  cluster  cluster(*args, n=3, **kw): n instances on 127.0.0.2, .3, ... synced
           to each other (harness.Cluster), connected before it returns
  netns    the test runs inside a network namespace of its own (root): its
           loopback, its firewall; left and removed at the end
  bed      bed(**kw): the anycast bed (anycast_bed.Bed): a router, a caller, a
           callee and three instances in namespaces, removed at the end
  routed_bed  routed_bed(speaker="bird"|"exabgp"): that bed with BIRD as the
           router and BIRD or ExaBGP on two relays (routing_bed.RoutedBed)

Every test prints one line, "PASS name", "FAIL name" or "SKIP name: why",
which tests/run.sh counts, and is stopped after TEST_TIME_LIMIT seconds
(default 300)."""

import ctypes
import os
import signal
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))

import harness  # noqa: E402

TIME_LIMIT = int(os.environ.get("TEST_TIME_LIMIT", "300"))
os.makedirs(os.environ.setdefault("TEST_LOGDIR", "/tmp"), exist_ok=True)  # the daemons' logs go there


# --- one line per test ------------------------------------------------------

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, "rep_" + report.when, report)


def pytest_report_teststatus(report, config):
    """No progress dots: the PASS/FAIL/SKIP lines below say it."""
    if report.when == "call" or (report.when == "setup" and report.skipped):
        return report.outcome, "", report.outcome.upper()
    if report.failed:
        return "error", "", "ERROR"
    return None


def pytest_runtest_logreport(report):
    name = "%s::%s" % (os.path.basename(report.fspath), report.location[2])
    line = None
    if report.when == "call" and report.passed:
        line = "PASS " + name
    elif report.failed:
        line = "FAIL " + name + ("" if report.when == "call" else " (in %s)" % report.when)
    elif report.skipped and report.when in ("setup", "call"):
        why = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        line = "SKIP %s: %s" % (name, why.replace("Skipped: ", ""))
    if line:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def failed(request):
    rep = getattr(request.node, "rep_call", None)
    return rep is not None and rep.failed


# --- a time limit per test --------------------------------------------------

class TimeLimit(Exception):
    pass


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    def expire(signum, frame):
        raise TimeLimit("the test ran longer than %d s (TEST_TIME_LIMIT)" % TIME_LIMIT)

    old = signal.signal(signal.SIGALRM, expire)
    signal.alarm(TIME_LIMIT)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


# --- fixtures ---------------------------------------------------------------

@pytest.fixture(autouse=True)
def _every_daemon_stops(request):
    """No daemon a test started outlives it, whichever way it ended."""
    started = []
    harness.Daemon.created = started
    yield
    harness.Daemon.created = None
    for d in started:
        if failed(request) and d.proc is not None:
            print("--- daemon log (%s) ---\n%s" % (" ".join(d.argv), d.logtext()[-4000:]))
        d.dispose()


@pytest.fixture
def daemon():
    def start(*args, **kw):
        return harness.Daemon(*args, **kw)
    return start


@pytest.fixture
def cluster():
    made = []

    def make(*args, **kw):
        c = harness.Cluster(*args, **kw)
        made.append(c)
        return c
    yield make
    for c in made:
        c.stop()


def _setns(fd):
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")


@pytest.fixture
def netns():
    """Moves this (single-threaded) test process into a new network namespace;
    the daemons it starts are born there. Back, and the namespace gone, after."""
    if os.geteuid() != 0:
        pytest.skip("needs root for a network namespace")
    name = "arp-t%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip("cannot create a network namespace: " + r.stderr.strip())
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    inside = os.open("/run/netns/" + name, os.O_RDONLY)
    try:
        _setns(inside)
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        yield name
    finally:
        _setns(home)
        os.close(home)
        os.close(inside)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def _beds(request, build):
    """Beds made by build(**kw) during a test; after it (its instances' and
    routing daemons' log tails first, if it failed) every one destroyed."""
    import anycast_bed
    why = anycast_bed.can_run()
    if why:
        pytest.skip(why)
    beds = []

    def make(*args, **kw):
        b = build(*args, **kw)
        beds.append(b)
        return b
    yield make
    for b in beds:
        if failed(request):
            for i in range(1, b.instances + 1):
                if os.path.exists(b.log_of(i)):
                    print("--- R%d ---\n%s" % (i, open(b.log_of(i)).read()[-3000:]))
            if hasattr(b, "routing_logs"):
                print(b.routing_logs())
        b.destroy()


@pytest.fixture
def bed(request):
    import anycast_bed
    yield from _beds(request, lambda **kw: anycast_bed.Bed(harness.BINARY, **kw))


@pytest.fixture
def routed_bed(request):
    import routing_bed

    def build(speaker, **kw):
        lacking = routing_bed.missing(speaker)
        if lacking:
            pytest.fail(lacking)  # a machine set up by install-deps.sh has them: never skipped silently
        return routing_bed.RoutedBed(harness.BINARY, harness.HELPER, speaker=speaker, **kw)
    yield from _beds(request, build)
