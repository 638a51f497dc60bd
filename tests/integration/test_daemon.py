"""The classic Unix daemon: detaching, the pid file, chroot and privilege drop,
signals, start-up errors, the file-descriptor budget, and --help against the
man page."""

import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from harness import BINARY, ROOT, Daemon, Peer, free_port, rtp, wait_until, without_leak_check

LO = "127.0.0.1"


def ask(port, text, timeout=2):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    s.sendto(b"t1 " + text.encode(), (LO, port))
    reply = s.recv(1000).decode()
    s.close()
    return reply[3:-1]


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is not alive for us
    with open("/proc/%d/stat" % pid) as f:
        return f.read().split(")")[-1].split()[0] != "Z"


def status_field(pid, name):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].split()
    return []


def start_detached(*args):
    port = free_port()
    base = free_port(pair=True)
    r = subprocess.run([BINARY, "-s", "udp:%s:%d" % (LO, port), "-i", LO, "-p", str(base), str(base + 7)] + list(args),
                       capture_output=True, text=True, timeout=10)
    return r, port


def stop_pid(pid):
    os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not os.path.exists("/proc/%d" % pid) or not alive(pid), 1.0, "the daemon to stop within 1 s")


def test_detaches_writes_and_removes_the_pid_file():
    work = tempfile.mkdtemp(prefix="arp-d-")
    pidfile = os.path.join(work, "a.pid")
    r, port = start_detached("-P", pidfile)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    pid = int(open(pidfile).read())
    assert alive(pid)
    assert open("/proc/%d/comm" % pid).read().strip() == "anyrtpproxy"
    assert os.getsid(pid) == pid or os.getsid(pid) != os.getsid(0), "a new session (setsid)"
    assert os.readlink("/proc/%d/fd/0" % pid) == "/dev/null"
    assert os.readlink("/proc/%d/fd/2" % pid) == "/dev/null"
    assert ask(port, "V") == "20040107"
    # a second start with the same pid file is refused, naming it
    r2, _ = start_detached("-P", pidfile)
    assert r2.returncode != 0 and pidfile in r2.stderr and str(pid) in r2.stderr, r2.stderr
    stop_pid(pid)
    assert not os.path.exists(pidfile), "SIGTERM removes the pid file"
    shutil.rmtree(work)


def test_stale_pid_file_is_replaced():
    work = tempfile.mkdtemp(prefix="arp-d-")
    pidfile = os.path.join(work, "a.pid")
    dead = subprocess.Popen(["true"])
    dead.wait()
    open(pidfile, "w").write("%d\n" % dead.pid)
    r, port = start_detached("-P", pidfile)
    assert r.returncode == 0, r.stderr
    pid = int(open(pidfile).read())
    assert pid != dead.pid and alive(pid)
    stop_pid(pid)
    shutil.rmtree(work)


def need_root():
    if os.geteuid() != 0:
        pytest.skip("needs root")


def test_chroot_and_drop_privileges():
    need_root()
    nobody = pwd.getpwnam("nobody")
    jail = tempfile.mkdtemp(prefix="arp-jail-")
    a, b = Peer(), Peer()
    with Daemon("-C", "-H", jail, "-u", "nobody", env=without_leak_check()) as d:
        pid = d.proc.pid
        assert status_field(pid, "Uid") == [str(nobody.pw_uid)] * 4
        assert status_field(pid, "Gid") == [str(nobody.pw_gid)] * 4
        assert status_field(pid, "Groups") == []
        assert os.readlink("/proc/%d/root" % pid) == jail
        p = int(d.cmd("U c 127.0.0.1 %d A;1" % a.port).split()[0])
        q = int(d.cmd("L c 127.0.0.1 %d A;1 B;1" % b.port).split()[0])
        a.send(rtp(1, ssrc=1), (LO, q))
        assert b.recv()[0] == rtp(1, ssrc=1)
        b.send(rtp(2, ssrc=2), (LO, p))
        assert a.recv()[0] == rtp(2, ssrc=2)
    shutil.rmtree(jail)


def test_user_without_chroot_drops_privileges_only():
    need_root()
    nobody = pwd.getpwnam("nobody")
    run = tempfile.mkdtemp(prefix="arp-run-")
    os.chown(run, nobody.pw_uid, nobody.pw_gid)  # as the package's /run/anyrtpproxy
    path = os.path.join(run, "ctl.sock")
    with Daemon("-u", "nobody", extra_control=["unix:" + path], env=without_leak_check()) as d:
        assert status_field(d.proc.pid, "Uid") == [str(nobody.pw_uid)] * 4
        assert os.readlink("/proc/%d/root" % d.proc.pid) == "/"
        assert d.cmd("V") == "20040107"
        st = os.stat(path)
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (nobody.pw_uid, nobody.pw_gid, 0o660), st
    assert not os.path.exists(path), "the dropped daemon removes its unix socket"
    shutil.rmtree(run)


def test_bad_startups_fail_with_a_message():
    need_root()
    cases = [
        (["-u", "no-such-user-arp"], "unknown user 'no-such-user-arp'"),
        (["-C", "-H", "/nonexistent/arp-jail", "-u", "nobody"], "cannot chroot to /nonexistent/arp-jail"),
    ]
    for args, message in cases:
        r, _ = start_detached(*args)
        assert r.returncode != 0 and message in r.stderr, (args, r.returncode, r.stderr)
        r = subprocess.run([BINARY, "-D", "-s", "udp:%s:%d" % (LO, free_port())] + args, capture_output=True,
                           text=True, timeout=10)
        assert r.returncode != 0 and message in r.stderr, (args, r.returncode, r.stderr)
    if shutil.which("setpriv"):
        as_nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", BINARY, "-D", "-s"]
        r = subprocess.run(as_nobody + ["udp:%s:%d" % (LO, free_port()), "-u", "daemon"], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode != 0 and "cannot" in r.stderr, r.stderr  # not root: cannot drop groups / setgid
        # Started as the -u user already (systemd's User=), there is nothing to drop: it runs.
        port = free_port()
        p = subprocess.Popen(as_nobody + ["udp:%s:%d" % (LO, port), "-u", "nobody"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=without_leak_check())
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

            def answers():
                assert p.poll() is None, p.stderr.read()
                try:
                    s.settimeout(0.2)
                    s.sendto(b"c V", (LO, port))
                    return s.recv(100) == b"c 20040107\n"
                except socket.timeout:
                    return False

            wait_until(answers, 5, "a daemon started as its -u user to answer")
            s.close()
        finally:
            p.terminate()
            p.wait(5)


def test_signals():
    with Daemon() as d:
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP" in d.logtext(), 2, "the SIGHUP log line")
        d.proc.send_signal(signal.SIGUSR1)
        wait_until(lambda: "stats: sessions active=" in d.logtext(), 2, "the SIGUSR1 statistics")
        assert d.cmd("V") == "20040107"
        d.cmd("U s1 192.0.2.1 4000 A;1")
        start = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        d.proc.wait(2)
        assert time.monotonic() - start < 1.0
        assert d.proc.returncode == 0


def test_file_limit_is_raised_or_warned_about():
    base = free_port(pair=True)
    # 500 port pairs need about 1,000 descriptors: a soft limit of 200 under a hard 4096 is raised
    d = Daemon(ports=(base, base + 999), start=False)
    d.argv = ["prlimit", "--nofile=200:4096", "--"] + d.argv
    d.start()
    try:
        soft = [l for l in open("/proc/%d/limits" % d.proc.pid) if l.startswith("Max open files")][0].split()[3]
        assert int(soft) >= 1000, soft
        assert "open-file limit" not in d.logtext()
    finally:
        d.stop()
    d = Daemon(ports=(base, base + 999), start=False)
    d.argv = ["prlimit", "--nofile=200:200", "--"] + d.argv
    d.start()
    try:
        assert re.search(r"the open-file limit 200 holds only about 34 sessions", d.logtext()), d.logtext()
    finally:
        d.stop()


def help_options():
    out = subprocess.run([BINARY, "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"--[a-z][a-z-]+", out)) | set(re.findall(r"^\s+(-[A-Za-z]) \[", out, re.M))


def man_options():
    text = open(os.path.join(ROOT, "man", "anyrtpproxy.8.adoc")).read()
    options = text.split("== OPTIONS", 1)[1].split("\n== ", 1)[0]
    heads = [l for l in options.splitlines() if l.endswith("::") or l.startswith("*-")]
    found = set()
    for h in heads:
        found |= set(re.findall(r"\*(--?[A-Za-z][a-z-]*)\*", h))
    return found


def test_help_and_man_page_list_the_same_options():
    h, m = help_options(), man_options()
    assert h == m, "only in --help: %s; only in the man page: %s" % (sorted(h - m), sorted(m - h))
    assert {"-D", "-C", "-u", "-H", "-P", "-i", "-s", "-p", "-n", "-o", "-S", "-M"} <= h
    roff = open(os.path.join(ROOT, "man", "anyrtpproxy.8")).read()
    for opt in h:
        assert opt.replace("-", "\\-") in roff or opt in roff, "%s missing from the generated man/anyrtpproxy.8" % opt

