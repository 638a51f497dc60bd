"""The Debian package: build it from a clean copy of the tree, check it with
lintian, install it, start the installed daemon with its init script, ask it
V on its default control socket, stop it, purge it. Root only; it leaves the
machine as it found it."""

import grp
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import pytest

from harness import ROOT, port_is_free, wait_until  # noqa: E402


def run(argv, timeout=600, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)
    assert r.returncode == 0, "%s: exit %d\n%s\n%s" % (" ".join(argv), r.returncode, r.stdout[-3000:], r.stderr[-3000:])
    return r


def installed():
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", "anyrtpproxy"], capture_output=True, text=True)
    return "installed" in r.stdout


def source_files():
    if os.path.isdir(os.path.join(ROOT, ".git")):
        out = run(["git", "-C", ROOT, "ls-files", "-co", "--exclude-standard"]).stdout.split("\n")
        return [f for f in out if f and os.path.exists(os.path.join(ROOT, f))]
    skip = ("build/", "anyrtpproxy", "config.mk", "bench/forwarder", "bench/loadgen", "bench/results/")
    files = []
    for d, _, names in os.walk(ROOT):
        for n in names:
            rel = os.path.relpath(os.path.join(d, n), ROOT)
            if not rel.startswith(skip):
                files.append(rel)
    return files


def ask_v(port=22222):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.3)
    try:
        s.sendto(b"pk V", ("127.0.0.1", port))
        return s.recv(100) == b"pk 20040107\n"
    except OSError:
        return False
    finally:
        s.close()


def test_debian_package_builds_installs_starts_and_purges():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    for tool in ("dpkg-buildpackage", "lintian", "dh"):
        assert shutil.which(tool), "%s is missing (tests/install-deps.sh test installs it)" % tool
    if installed():
        pytest.skip("an anyrtpproxy package is installed already; not touching it")
    assert port_is_free(22222), "127.0.0.1:22222 (the package's default control port) is in use"
    work = tempfile.mkdtemp(prefix="arp-deb-")
    src = os.path.join(work, "anyrtpproxy-0.1.0")
    for rel in source_files():
        dst = os.path.join(src, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, rel), dst)
    try:
        run(["dpkg-buildpackage", "-us", "-uc", "-b"], cwd=src, timeout=900)
        deb = os.path.join(work, "anyrtpproxy_0.1.0_amd64.deb")
        assert os.path.exists(deb), os.listdir(work)
        lint = subprocess.run(["lintian", "--fail-on", "error", deb], capture_output=True, text=True, timeout=300)
        assert lint.returncode == 0, "lintian errors:\n" + lint.stdout + lint.stderr
        run(["dpkg", "-i", deb], env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        assert pwd.getpwnam("anyrtpproxy").pw_uid != 0
        assert os.path.exists("/usr/share/man/man8/anyrtpproxy.8.gz")
        assert "control = udp:127.0.0.1:22222" in open("/etc/anyrtpproxy/anyrtpproxy.conf").read()
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "anyrtpproxy"]).stdout
        assert "/etc/anyrtpproxy/anyrtpproxy.conf" in conffiles, conffiles
        assert os.path.exists("/lib/systemd/system/anyrtpproxy.service")
        run(["/etc/init.d/anyrtpproxy", "restart"], timeout=30)  # dpkg may have started it already
        wait_until(ask_v, 5, "the installed daemon to answer V on 127.0.0.1:22222")
        pid = int(open("/run/anyrtpproxy/anyrtpproxy.pid").read())
        uid = [l for l in open("/proc/%d/status" % pid) if l.startswith("Uid:")][0].split()[1]
        assert int(uid) == pwd.getpwnam("anyrtpproxy").pw_uid, "the service runs as the anyrtpproxy user"
        # the --health socket: group anyrtpproxy-health, whose members (exabgp and bird, installed
        # before the package) read it; nobody else may enter its directory
        sock = "/run/anyrtpproxy-health/health.sock"
        wait_until(lambda: os.path.exists(sock), 3, "the health socket")
        st = os.stat(sock)
        assert grp.getgrgid(st.st_gid).gr_name == "anyrtpproxy-health" and st.st_mode & 0o777 == 0o660, oct(st.st_mode)
        assert os.stat("/run/anyrtpproxy-health").st_mode & 0o777 == 0o750
        members = grp.getgrnam("anyrtpproxy-health").gr_mem
        for user in ("exabgp", "bird"):
            assert user in members, (user, members)
        probe = "import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r); print(s.recv(100).decode())" % sock
        line = run(["runuser", "-u", "exabgp", "--", "/usr/bin/python3", "-c", probe], timeout=10).stdout
        assert line.startswith("healthy headroom_legs="), line
        denied = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", probe], capture_output=True,
                                text=True, timeout=10)
        assert denied.returncode != 0 and "Permission denied" in denied.stderr, denied.stderr
        for name in ("exabgp.conf", "bird.conf"):
            assert os.path.exists("/usr/share/doc/anyrtpproxy/examples/" + name), name
        assert os.path.exists("/usr/bin/anyrtpproxy-health")
        # reload: the init script's SIGHUP reads the conffile again
        run(["/etc/init.d/anyrtpproxy", "reload"], timeout=30)
        assert ask_v() and int(open("/run/anyrtpproxy/anyrtpproxy.pid").read()) == pid
        run(["/etc/init.d/anyrtpproxy", "stop"], timeout=30)
        wait_until(lambda: not ask_v(), 3, "the daemon to stop")
    finally:
        subprocess.run(["/etc/init.d/anyrtpproxy", "stop"], capture_output=True, timeout=30) if os.path.exists(
            "/etc/init.d/anyrtpproxy") else None
        subprocess.run(["dpkg", "--purge", "anyrtpproxy"], capture_output=True, timeout=120)
        shutil.rmtree(work, ignore_errors=True)
    assert not installed() and not os.path.exists("/usr/sbin/anyrtpproxy")


def test_the_systemd_unit_is_hardened():
    """systemd-analyze's exposure score of the shipped unit: 3.0 or lower."""
    assert shutil.which("systemd-analyze"), "systemd-analyze is missing (tests/install-deps.sh test installs systemd)"
    unit = os.path.join(ROOT, "debian", "anyrtpproxy.service")
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", unit], capture_output=True, text=True,
                       timeout=60)
    import re
    m = re.search(r"Overall exposure level for anyrtpproxy.service: ([0-9.]+)", r.stdout + r.stderr)
    assert m, r.stdout[-2000:] + r.stderr[-2000:]
    assert float(m.group(1)) <= 3.0, "exposure %s:\n%s" % (m.group(1), r.stdout)
    text = open(unit).read()
    for line in ("User=anyrtpproxy", "NoNewPrivileges=yes", "ProtectSystem=strict", "PrivateTmp=yes",
                 "PrivateDevices=yes", "RuntimeDirectory=anyrtpproxy", "-c /etc/anyrtpproxy/anyrtpproxy.conf"):
        assert line in text, line

