"""What an instance can still carry: the --health-file a routing daemon
watches (there while the instance has headroom, gone when it has none or
stops), and the capacity every instance announces to its peers, shown in
the listing and the metrics, with a warning when a peer's calls would not
fit here."""

import grp
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request

from harness import (BINARY, HELPER, HOSTS, Daemon, HealthClient, free_port, header, stays, wait_until,
                     without_leak_check)
from test_mirrored_legs import batch
from test_operations import LO, samples, scrape

def test_every_instance_announces_its_capacity_and_says_when_it_cannot_take_over(cluster):
    """Each instance tells its peers every 2 s what it can still carry; the
    listing and the metrics show every instance's; one that could not adopt
    all the legs a peer relays says so, and again when it can."""
    base = free_port(pair=True) // 1000 * 1000
    mport = free_port(socket.SOCK_STREAM)
    with cluster("-T", "600", ranges=[(base + 300 * i, base + 300 * i + 199) for i in range(3)], level="info", needs_catch_all=True,
                 args_of=lambda i: ["--metrics", "%s:%d" % (HOSTS[i], mport)], limit_of=lambda i: 90 if i == 1 else None) as c:
        a, b, _ = c.nodes
        names = lambda: [re.search(r"instance (\S+) ", l).group(1) for l in header(HOSTS[0], c.sync_port)
                         if l.startswith("# capacity: ")]
        wait_until(lambda: len(names()) == 3, 6, "A's listing to show all three instances", debug=names)
        lines = [l for l in header(HOSTS[0], c.sync_port) if l.startswith("# capacity: ")]
        assert "(this instance)" in lines[0] and all("announced" in l for l in lines[1:]), lines
        assert all(re.search(r" headroom=\d+ relays=\d+ parks=\d+ (healthy|unhealthy|syncing) ", l) for l in lines), lines
        metrics = urllib.request.urlopen("http://%s:%d/metrics" % (HOSTS[0], mport), timeout=5).read().decode()
        assert len(re.findall(r"^anyrtpproxy_cluster_headroom_legs\{instance=", metrics, re.M)) == 3, metrics
        # B (90 descriptors) cannot adopt what A relays once A holds 40 answered calls (80 legs)
        made = batch(a, ["U k%d 127.0.0.1 4000 A;1" % k for k in range(40)] +
                     ["L k%d 127.0.0.1 5000 A;1 B;1" % k for k in range(40)])
        assert not any(r.startswith("E") for r in made), made
        wait_until(lambda: "capacity: cannot take over instance" in b.logtext(), 8, "B to say it cannot take over A")
        assert "capacity: cannot take over instance" not in c.nodes[2].logtext()  # C has room
        batch(a, ["D k%d A;1 B;1" % k for k in range(40)])
        wait_until(lambda: "capacity: can take over instance" in b.logtext(), 8, "B to say it can again")
        assert b.logtext().count("capacity: cannot take over instance") == 1


def test_the_health_socket_speaks_every_100_ms_and_goes_silent_or_away_with_the_daemon(daemon):
    """--health: a line at once and ten a second; none while the daemon is
    stopped (a hung process); EOF the moment it is killed."""
    work = tempfile.mkdtemp(prefix="arp-hsock-")
    path = os.path.join(work, "health.sock")
    try:
        d = daemon("--health", path, level="info")
        c = HealthClient(path)
        start = time.monotonic()
        wait_until(lambda: c.poll(0.05) >= 0 and len(c.lines) >= 1, 1, "the first line at once")
        assert re.fullmatch(r"healthy headroom_legs=\d+", c.lines[0]), c.lines
        wait_until(lambda: c.poll(0.05) >= 0 and len(c.lines) >= 11, 3, "ten more lines")
        assert time.monotonic() - start < 2.0, "ten lines took %.2f s" % (time.monotonic() - start)
        d.proc.send_signal(signal.SIGSTOP)  # hung
        try:
            while c.poll(0.15):  # what was sent before it stopped
                pass
            stays(lambda: c.poll(0) == 0 and not c.eof, 0.5, "silence from a stopped daemon")
        finally:
            d.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: c.poll(0.05) > 0, 1, "the lines to come back")
        d.kill()  # without a word
        assert c.closed(1), "no EOF after SIGKILL"
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_health_socket_is_bounded_and_never_replaces_a_file(daemon):
    """At most 64 clients at once (the others are closed without a line, and
    logged); a path that is a file of another kind stops the start and stays."""
    work = tempfile.mkdtemp(prefix="arp-hsock-")
    path = os.path.join(work, "health.sock")
    try:
        with open(path, "w") as f:
            f.write("not a socket\n")
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:%d" % free_port(), "-i", LO, "--kernel-offload=off",
                            "--health", path], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and "health socket %s: it exists and is not a socket" % path in r.stderr, r.stderr
        assert open(path).read() == "not a socket\n", "the file was replaced"
        os.unlink(path)
        d = daemon("--health", path, level="info")
        clients = [HealthClient(path) for _ in range(100)]
        wait_until(lambda: "health: refused a connection: 64 connections open" in d.logtext(), 3, "the refusals")
        wait_until(lambda: all(c.poll(0) >= 0 and (c.lines or c.eof) for c in clients), 3, "every client answered")
        served = [c for c in clients if c.lines]
        assert len(served) == 64, len(served)
        assert all(c.eof and not c.lines for c in clients if not c.lines), "a refused client got a line"
        for c in served[:10]:
            c.s.close()

        def served_again():  # the ten are noticed gone within a tick
            late = HealthClient(path)
            ok = late.line().startswith("healthy ")
            late.s.close()
            return ok
        wait_until(served_again, 3, "room for a new client once ten left")
        for c in clients:
            c.s.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_health_file_is_there_while_there_is_headroom():
    """--health-file (for BIRD or ExaBGP): there with "ok" while the
    instance can take more legs; gone once the descriptors run out, back when
    sessions end; gone at exit, so the route is withdrawn with the instance."""
    work = tempfile.mkdtemp(prefix="arp-health-")
    health = os.path.join(work, "healthy")
    mport = free_port(socket.SOCK_STREAM)
    base = free_port(pair=True)
    d = Daemon("--health-file", health, "--health", os.path.join(work, "health.sock"), "--metrics",
               "%s:%d" % (LO, mport), ports=(base, base + 3999), start=False, level="info")
    d.argv = ["prlimit", "--nofile=120:120", "--"] + d.argv  # room for about 20 sessions' sockets
    d.start()
    try:
        wait_until(lambda: os.path.exists(health), 3, "the health file")
        watcher = HealthClient(os.path.join(work, "health.sock"))
        assert re.fullmatch(r"healthy headroom_legs=\d+", watcher.line()), watcher.lines
        assert re.fullmatch(r"ok headroom_legs=\d+\n", open(health).read()), open(health).read()
        m = samples(scrape(mport))
        assert m["anyrtpproxy_healthy"] == 1 and 10 <= m["anyrtpproxy_headroom_legs"] <= 45, m
        made = 0
        for i in range(60):  # until a U finds no descriptors
            if d.cmd("U h%d 127.0.0.1 4000 A;1" % i) == "E72":
                break
            made += 1
        assert 0 < made < 60, made
        wait_until(lambda: not os.path.exists(health), 3, "the health file to go")
        wait_until(lambda: watcher.line().startswith("unhealthy the open-file limit is reached"), 3,
                   "the socket to say unhealthy", debug=lambda: watcher.lines[-3:])
        assert "health: cannot take over its share, %s removed: the open-file limit is reached" % health in d.logtext()
        assert samples(scrape(mport))["anyrtpproxy_healthy"] == 0
        for i in range(made // 2):
            assert d.cmd("D h%d A;1" % i) == "0"
        wait_until(lambda: os.path.exists(health), 3, "the health file to come back")
        wait_until(lambda: watcher.line().startswith("healthy "), 3, "the socket to say healthy again")
        assert "health: headroom again, %s is back" % health in d.logtext()
        d.stop()
        assert not os.path.exists(health), "an instance that stops withdraws its route"
        assert watcher.closed(1), "the health socket's clients see the end"
        assert not os.path.exists(os.path.join(work, "health.sock"))
    finally:
        if d.proc and d.proc.poll() is None:
            d.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_a_bad_health_file_is_refused_naming_it():
    for option in ("--health", "--health-file"):
        for value, message in (("relative", "is not an absolute file name"), ("/nonexistent/dir/f", "is not a directory"),
                               ("/tmp/" + "s" * 100, "is too long" if option == "--health" else None)):
            if message is None:
                continue
            r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", option, value], capture_output=True,
                               text=True, timeout=10)
            assert r.returncode == 2 and option + ": " in r.stderr and message in r.stderr, (option, value, r.stderr)
    for value, message in (("relative", "is not an absolute file name"), ("/nonexistent/dir/f", "is not a directory"),
                           ("/tmp/", "is not an absolute file name")):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "--health-file", value], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and "--health-file: " in r.stderr and message in r.stderr, (value, r.stderr)


ROUTE = "203.0.113.5/32"


class Helper:
    """anyrtpproxy-health as ExaBGP runs it: its stdout lines, with when they came."""

    def __init__(self, *args):
        self.p = subprocess.Popen([HELPER] + list(args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True)
        self.lines = []

    def said(self, text, after=0.0):
        """When the helper last printed `text` after `after` (monotonic), reading what it printed since."""
        while select.select([self.p.stdout], [], [], 0.02)[0]:
            line = self.p.stdout.readline()
            if not line:
                break
            self.lines.append((time.monotonic(), line.rstrip("\n")))
        hits = [t for t, l in self.lines if l == text and t > after]
        return hits[-1] if hits else None

    def close(self):
        self.p.kill()
        self.p.wait()


def test_the_helper_announces_a_steady_daemon_and_withdraws_a_dead_or_hung_one(daemon):
    """anyrtpproxy-health --exabgp: started before the daemon, it announces the
    route after a steady second of healthy lines, withdraws it within 0.7 s of
    a hang (SIGSTOP) and at once on SIGKILL, announces again for the
    restarted daemon, and ends when ExaBGP closes its input."""
    work = tempfile.mkdtemp(prefix="arp-helper-")
    path = os.path.join(work, "health.sock")
    up, down = "announce route %s next-hop self" % ROUTE, "withdraw route %s next-hop self" % ROUTE
    helper = Helper("--socket", path, "--exabgp", ROUTE)
    try:
        stays(lambda: helper.said(up) is None and helper.p.poll() is None, 0.3, "no route before the daemon")
        started = time.monotonic()
        d = daemon("--health", path, level="info")
        announced = wait_until(lambda: helper.said(up), 4, "the announcement")
        assert announced - started >= 0.9, "announced %.2f s after the start: not steady yet" % (announced - started)
        d.proc.send_signal(signal.SIGSTOP)
        hung = time.monotonic()
        try:
            withdrawn = wait_until(lambda: helper.said(down, hung), 3, "the withdrawal of a hung daemon")
            assert withdrawn - hung < 0.7, "withdrawn %.2f s after the hang" % (withdrawn - hung)
        finally:
            d.proc.send_signal(signal.SIGCONT)
        wait_until(lambda: helper.said(up, withdrawn), 4, "the announcement once it answers again")
        d.kill()
        killed = time.monotonic()
        withdrawn = wait_until(lambda: helper.said(down, killed), 3, "the withdrawal of a dead daemon")
        assert withdrawn - killed < 0.3, "withdrawn %.2f s after SIGKILL" % (withdrawn - killed)
        daemon("--health", path, level="info")  # restarted: the helper reconnects
        wait_until(lambda: helper.said(up, withdrawn), 4, "the announcement for the restarted daemon")
        for _ in range(100):  # ExaBGP's acknowledgements: read and dropped, never a full pipe
            helper.p.stdin.write("done\n")
        helper.p.stdin.flush()
        assert helper.p.poll() is None
        helper.p.stdin.close()  # ExaBGP went away: so does its process
        wait_until(lambda: helper.p.poll() is not None, 2, "the helper to end with ExaBGP")
    finally:
        helper.close()
        shutil.rmtree(work, ignore_errors=True)


def test_the_health_socket_goes_to_its_group_and_a_bad_group_is_refused(daemon):
    """--health-group: the socket's group (a routing daemon's user is in it),
    kept when the daemon drops to another user; an unknown group or one
    without --health stops the start with a line naming the option."""
    work = tempfile.mkdtemp(prefix="arp-group-")
    os.chmod(work, 0o755)
    path = os.path.join(work, "health.sock")
    try:
        gid = grp.getgrnam("nogroup").gr_gid
        env = without_leak_check() if os.geteuid() == 0 else None
        args = ["--health", path, "--health-group", "nogroup"] + (["-u", "nobody"] if os.geteuid() == 0 else [])
        daemon(*args, env=env)
        st = os.stat(path)
        assert st.st_gid == gid and st.st_mode & 0o777 == 0o660, (st.st_gid, oct(st.st_mode))
        for argv, message in ((["--health", path + "2", "--health-group", "no-such-group"], "no group 'no-such-group'"),
                              (["--health-group", "nogroup"], "give --health"),
                              (["--health", path + "3", "--health-group", "a b"], "is not a group name")):
            r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1"] + argv, capture_output=True, text=True, timeout=10)
            assert r.returncode != 0 and "--health-group: " in r.stderr and message in r.stderr, (argv, r.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_helper_runs_commands_and_refuses_bad_options(daemon):
    work = tempfile.mkdtemp(prefix="arp-helper-")
    path, log = os.path.join(work, "health.sock"), os.path.join(work, "route.log")
    helper = Helper("--socket", path, "--on-up", "echo up >> " + log, "--on-down", "echo down >> " + log,
                    "--steady", "200")
    try:
        d = daemon("--health", path, level="info")
        routed = lambda: open(log).read().split() if os.path.exists(log) else []
        wait_until(lambda: routed() == ["up"], 3, "--on-up to run")
        d.stop()  # a clean stop closes the socket too
        wait_until(lambda: routed() == ["up", "down"], 3, "--on-down to run")
    finally:
        helper.close()
        shutil.rmtree(work, ignore_errors=True)
    for args, message in ((["--exabgp", ROUTE], "option --socket: needs an absolute path"),
                          (["--socket", "/run/x.sock"], "option --exabgp: give --exabgp ROUTE, or --on-up and --on-down"),
                          (["--socket", "/run/x.sock", "--exabgp", ROUTE, "--silence", "5"], "option --silence"),
                          (["--socket", "/run/x.sock", "--exabgp", "a b"], "is not a prefix"),
                          (["--bogus"], "bogus")):
        r = subprocess.run([HELPER] + args, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and message in r.stderr, (args, r.stderr)

