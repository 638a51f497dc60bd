"""Shared helpers for the integration and end-to-end tests (tests/conftest.py
makes fixtures of them): start the real daemon on loopback, a cluster of
them, talk to them over real sockets. Every wait has a deadline; nothing
sleeps blindly."""

import os
import random
import select
import signal
import socket
import struct
import subprocess
import time

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BINARY = os.environ.get("ANYRTPPROXY", os.path.join(ROOT, "anyrtpproxy"))
HELPER = os.environ.get("ANYRTPPROXY_HEALTH", os.path.join(ROOT, "anyrtpproxy-health"))
TESTS = []


# The previous release, built from this repository's history by the tests
# that upgrade to this one and roll back (tests/e2e/test_upgrade.py,
# test_chaos.py): the last commit that spoke sync wire version 6 only.
PREVIOUS_RELEASE = "49f4ede"


def previous_release():
    """The previous release's daemon, built once into build/previous/COMMIT."""
    import shutil
    out = os.path.join(ROOT, "build", "previous", PREVIOUS_RELEASE)
    binary = os.path.join(out, "anyrtpproxy")
    if os.path.exists(binary):
        return binary
    if not os.path.isdir(os.path.join(ROOT, ".git")) or not shutil.which("git"):
        pytest.fail("the previous release is built from this repository's history: run the tests in a git clone")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    archive = subprocess.run(["git", "-C", ROOT, "archive", PREVIOUS_RELEASE], capture_output=True, timeout=120)
    assert archive.returncode == 0, archive.stderr.decode()[-2000:]
    subprocess.run(["tar", "-x", "-C", out], input=archive.stdout, check=True, timeout=120)
    for step in (["./configure"], ["make", "-j2", "anyrtpproxy"]):
        r = subprocess.run(step, cwd=out, capture_output=True, text=True, timeout=1200)
        assert r.returncode == 0, "%s: %s" % (" ".join(step), (r.stdout + r.stderr)[-3000:])
    return binary


def without_leak_check():
    """The environment for a daemon that chroots or drops privileges: under
    `make check SANITIZE=1` LeakSanitizer cannot inspect such a process (no
    /proc in the jail, no ptrace after setuid), so it is turned off for it
    alone; ASan and UBSan stay on."""
    env = dict(os.environ)
    env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""), "detect_leaks=0"]))
    return env


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports handed out by free_port in this process, never handed out again: a
# daemon's range is not bound until its sessions exist, so a port that merely
# tests free could still be one a running daemon will allocate.
_HANDED_OUT = set()


def free_port(kind=socket.SOCK_DGRAM, host="127.0.0.1", family=socket.AF_INET, pair=False):
    """A port free for `kind` (and, with pair, an even one with 8 free ports
    from it, the start of a test's relay range), picked below the kernel's
    ephemeral range: no outgoing connection (a sync client, a test's own
    socket) can take it between the pick and the daemon's bind. Single ports
    (control, sync, metrics) come from 10000-19999, range starts from 20000 up
    to 4,000 below the ephemeral range, so a picked listening port never falls
    in a test's relay range."""
    low, high = (20000, max(_ephemeral_low() - 4000, 22000)) if pair else (10000, 20000)
    for _ in range(500):
        port = random.randrange(low, high)
        if pair:
            port &= ~1
        span = range(port, port + (8 if pair else 1))
        if any(p in _HANDED_OUT for p in range(port - 8, port + 16)):
            continue
        if all(port_is_free(p, host, family, kind) for p in span):
            _HANDED_OUT.update(span)
            return port
    raise RuntimeError("no free port")


def port_is_free(port, host="127.0.0.1", family=socket.AF_INET, kind=socket.SOCK_DGRAM):
    s = socket.socket(family, kind)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_until(cond, timeout=5.0, what="condition", debug=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = cond()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out after %.1fs waiting for %s%s" % (timeout, what, ": %r" % (debug(),) if debug else ""))


def stays(cond, seconds, what="condition"):
    """A condition that must hold for `seconds` (a thing that must not happen):
    fails as soon as it breaks."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert cond(), "%s broke" % what
        time.sleep(0.02)
    assert cond(), "%s broke" % what


def listing_text(host, port, timeout=2):
    """What an operator sees with telnet HOST SYNCPORT, read until its end marker."""
    s = socket.create_connection((host, port), timeout=timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"# end of listing" not in data and time.monotonic() < deadline:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    text = data.decode(errors="replace")
    assert text.startswith("# anyrtpproxy sync: instance "), text[:200]
    return text.split("# end of listing")[0]


def listing(host, port, timeout=2):
    """The listing's session lines ("S ...")."""
    return [l for l in listing_text(host, port, timeout).splitlines() if l.startswith("S ")]


def header(host, port, timeout=2):
    """The comment lines the listing starts with."""
    return [l for l in listing_text(host, port, timeout).splitlines() if l.startswith("# ")]


class Daemon:
    """anyrtpproxy -D on loopback with a UDP control socket and its own port range
    (and --kernel-offload=off unless `offload` says otherwise). Every Daemon
    is listed in `created` while a test runs (the fixture stops them all)."""

    created = None

    def __init__(self, *args, control=None, ports=None, media="127.0.0.1", extra_control=(), start=True,
                 host="127.0.0.1", level="debug", env=None, offload="off", binary=None):
        self.env = env
        self.picked_control = control is None  # ours to pick again if another process takes it first
        self.control_port = control or free_port()
        self.control = (host, self.control_port)
        if ports is None:
            base = free_port(pair=True)
            ports = (base, base + 8)  # four pairs: the end port is never allocated
        self.ports = ports
        self.argv = [binary or BINARY, "-D", "-d", level, "-s", "udp:%s:%d" % (host, self.control_port)]
        for c in extra_control:
            self.argv += ["-s", c]
        if media:
            self.argv += ["-i", media]
        self.argv += ["-p", str(ports[0]), str(ports[1])] + list(args)
        if offload:  # loopback tests leave the host's interfaces alone; test_offload.py tests the fast path
            self.argv.append("--kernel-offload=" + offload)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2)
        self.log = open(os.path.join(os.environ.get("TEST_LOGDIR", "/tmp"), "anyrtpproxy-%s-%d.log" % (host, self.control_port)), "w+")
        self.proc = None
        self.disposed = False
        if Daemon.created is not None:
            Daemon.created.append(self)
        if start:
            self.start()

    def start(self):
        for attempt in range(5):
            self.log.seek(0)
            self.log.truncate()
            self.proc = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
            try:
                wait_until(self._answers, 5, "the daemon to answer V")
                return
            except AssertionError:
                # A port picked free can be taken before the daemon binds it: pick another.
                if not (self.picked_control and attempt < 4 and "cannot bind control socket" in self.logtext()):
                    raise
            old = "udp:%s:%d" % (self.control[0], self.control_port)
            self.control_port = free_port()
            self.control = (self.control[0], self.control_port)
            self.argv[self.argv.index(old)] = "udp:%s:%d" % self.control

    def exit_status(self):
        """None while running; else the exit status (negative: the signal that killed it)."""
        return self.proc.poll() if self.proc else None

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError("daemon exited with %s: %s" % (self.proc.returncode, self.logtext()))
        try:
            return self.cmd("V", timeout=0.2) == "20040107"
        except socket.timeout:
            return False

    def logtext(self):
        if self.log.closed:
            return ""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def raw(self, data, timeout=2):
        self.sock.settimeout(timeout)
        self.sock.sendto(data, self.control)
        while True:
            reply, _ = self.sock.recvfrom(65536)
            return reply

    def cmd(self, text, timeout=2):
        cookie = "%08x" % random.getrandbits(32)
        self.sock.settimeout(timeout)
        self.sock.sendto(("%s %s" % (cookie, text)).encode(), self.control)
        deadline = time.monotonic() + timeout
        while True:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            reply = self.sock.recv(65536).decode(errors="replace")
            if reply.startswith(cookie + " "):
                assert reply.endswith("\n"), "reply without final newline: %r" % reply
                return reply[len(cookie) + 1:-1]

    def kill(self):
        """SIGKILL: the instance dies without a word to its peers."""
        self.proc.kill()
        self.proc.wait()

    def dispose(self):
        """Killed if still running, its sockets and log closed; again: nothing."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        if not self.disposed:
            self.disposed = True
            self.sock.close()
            self.log.close()

    def terminate(self):
        """SIGTERM: an instance with peers (-M) drains first (a second without
        packets, at most --drain-seconds), one without stops at once."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, expect_status=0):
        if self.proc and self.proc.poll() is None:
            self.terminate()
            limit = 8 if "-M" in self.argv else 3
            try:
                self.proc.wait(limit)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("daemon did not stop within %d s of SIGTERM" % limit)
            assert self.proc.returncode == expect_status, "exit status %s\n%s" % (self.proc.returncode, self.logtext())
        self.dispose()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:  # the fixture shows the log; the process goes now
            if self.proc and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            return False
        self.stop()
        return False


HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]


def control_port(host, avoid):
    """A free UDP port on `host` outside the relay ranges `avoid`."""
    for p in range(61000, 65000, 7):
        if all(not lo <= p <= hi for lo, hi in avoid) and port_is_free(p, host):
            return p
    raise RuntimeError("no free control port")


class Cluster:
    """n instances on 127.0.0.2, .3, ... (or `hosts`), each relaying on its own
    address with a port range of its own (`ranges`, default 200 ports each),
    synced to every other over one sync port. Started and connected to each
    other when made; stopped together."""

    def __init__(self, *args, n=3, hosts=None, ranges=None, level="info", media_of=lambda h: h,
                 args_of=lambda i: [], limit=None, limit_of=lambda i: None, needs_catch_all=False, connect_within=5,
                 binary_of=lambda i: None):
        self.hosts = hosts or ["127.0.0.%d" % (2 + i) for i in range(n)]
        self.sync_port = free_port(socket.SOCK_STREAM)
        if ranges is None:
            base = free_port(pair=True) // 1000 * 1000
            ranges = [(base + 300 * i, base + 300 * i + 199) for i in range(len(self.hosts))]
        self.ranges = ranges
        self.nodes = []
        for i, h in enumerate(self.hosts):
            peers = ",".join("%s:%d" % (o, self.sync_port) for o in self.hosts if o != h)
            d = Daemon("-S", str(self.sync_port), "-I", h, "-M", peers, *args, *args_of(i), host=h, media=media_of(h),
                       ports=ranges[i], control=control_port(h, ranges), start=False, level=level, binary=binary_of(i))
            # The control client binds 127.0.0.1, not the wildcard: its port
            # cannot then collide with a relay port of 127.0.0.2 and up.
            d.sock.close()
            d.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            d.sock.bind(("127.0.0.1", 0))
            n_files = limit or limit_of(i)
            if n_files:
                d.argv = ["prlimit", "--nofile=%d:%d" % (n_files, n_files), "--"] + d.argv
            self.nodes.append(d)
        for d in self.nodes:
            d.start()
        wait_until(self.connected, connect_within, "every instance to connect to its peers")
        if needs_catch_all and any("catch-all unavailable" in d.logtext() for d in self.nodes):
            self.stop()
            pytest.skip("no catch-all path here: " + self.nodes[0].logtext().split("catch-all unavailable")[1].split("\n")[0])

    def connected(self):
        return all(d.logtext().count("sync: connected to") >= len(self.hosts) - 1 for d in self.nodes
                   if d.proc.poll() is None)

    def replace(self, i, binary, kill=False):
        """Node i stopped (SIGTERM, or SIGKILL) and started again from `binary`
        (an upgrade, a rollback), connected to its peers again when it returns."""
        d = self.nodes[i]
        if kill:
            d.kill()
        else:
            d.terminate()
            d.proc.wait(10)
        d.argv[0] = binary
        d.start()
        wait_until(lambda: d.logtext().count("sync: connected to") >= len(self.hosts) - 1, 10,
                   "node %d to connect to its peers" % i)

    def stop(self):
        for d in self.nodes:  # every drain at once
            d.terminate()
        for d in self.nodes:
            try:
                d.stop()
            except Exception:
                d.dispose()

    def __enter__(self):
        return self

    def __exit__(self, et, e, tb):
        self.stop()
        return False


class HealthClient:
    """A --health client: the lines it got, read as they come."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(2)
        wait_until(lambda: self.connect(path), 3, "a connection to " + path)
        self.buf, self.lines, self.eof = b"", [], False

    def connect(self, path):
        try:
            self.s.connect(path)
            return True
        except BlockingIOError:  # the listen queue is full: the daemon is accepting
            return False

    def poll(self, timeout=0.0):
        """Reads what has arrived (waiting up to `timeout` for something); the number of new lines."""
        before = len(self.lines)
        ready, _, _ = select.select([self.s], [], [], timeout)
        if ready and not self.eof:
            try:
                data = self.s.recv(65536)
            except ConnectionResetError:
                data = b""
            self.eof = data == b""
            self.buf += data
            *done, self.buf = self.buf.split(b"\n")
            self.lines += [l.decode() for l in done]
        return len(self.lines) - before

    def line(self):
        """The latest line, after waiting for at least one more."""
        wait_until(lambda: self.poll(0.05) or self.eof, 2, "a health line")
        return self.lines[-1] if self.lines else ""

    def closed(self, timeout):
        end = time.monotonic() + timeout
        while not self.eof and time.monotonic() < end:
            self.poll(0.05)
        return self.eof


def relays_a_call(d):
    """A new call through `d` (U and L from two loopback peers): True when a
    packet each way arrives; the call is deleted after."""
    a, b = Peer(d.control[0]), Peer(d.control[0])
    try:
        name = "media-%d-%d" % (a.port, b.port)
        p = d.cmd("U %s %s %d A;1" % (name, d.control[0], a.port)).split()
        q = d.cmd("L %s %s %d A;1 B;1" % (name, d.control[0], b.port)).split()
        a.send(rtp(1, 0x11), (q[1], int(q[0])))  # the caller sends to the answer's port
        b.send(rtp(1, 0x22), (p[1], int(p[0])))  # the callee to the offer's
        ok = b.recv(2)[0] == rtp(1, 0x11) and a.recv(2)[0] == rtp(1, 0x22)
        d.cmd("D %s A" % name)
        return ok
    finally:
        a.close()
        b.close()


def read_pcap(path, allow_cut=False):
    """[(src, sport, dst, dport, payload)] of a raw-IP IPv4 pcap (--record-pcap).
    allow_cut: the file may end inside a record (a killed instance's, or one the
    writer is still writing: conditions waited on read it so)."""
    data = open(path, "rb").read()
    if allow_cut and len(data) < 24:
        return []
    magic, major, minor, _, _, snap, link = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, link) == (0xa1b2c3d4, 2, 4, 101), (hex(magic), major, minor, link)
    out, at = [], 24
    while at < len(data):
        if allow_cut and at + 16 > len(data):
            break
        _, _, incl, orig = struct.unpack("<IIII", data[at:at + 16])
        if allow_cut and at + 16 + incl > len(data):
            break
        pkt = data[at + 16:at + 16 + incl]
        at += 16 + incl
        assert pkt[0] >> 4 == 4 and pkt[9] == 17, "not IPv4/UDP"
        src, dst = ".".join(map(str, pkt[12:16])), ".".join(map(str, pkt[16:20]))
        sport, dport, ulen, _ = struct.unpack("!HHHH", pkt[20:28])
        assert ulen == orig - 20 and incl == orig
        out.append((src, sport, dst, dport, pkt[28:]))
    return out


def rtp(seq, ssrc=0x1234, payload=b"\xd5" * 160, pt=8):
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, seq * 160 & 0xFFFFFFFF, ssrc) + payload


def rtcp(ssrc=0x1234):
    return struct.pack("!BBHI", 0x80, 200, 6, ssrc) + b"\0" * 20


class NotifyListener:
    """A unix stream socket that --notify can point at; collects what arrives."""

    def __init__(self):
        import tempfile
        self.path = os.path.join(tempfile.mkdtemp(prefix="arp-"), "notify.sock")
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.bind(self.path)
        self.s.listen(8)

    def collect(self, seconds, count=None):
        """Every message received within `seconds` (or until `count` arrived)."""
        got, end = [], time.monotonic() + seconds
        while time.monotonic() < end and (count is None or len(got) < count):
            self.s.settimeout(max(0.01, min(0.2, end - time.monotonic())))
            try:
                conn, _ = self.s.accept()
            except socket.timeout:
                continue
            conn.settimeout(2)
            got.append(conn.recv(100))
            conn.close()
        return got

    def close(self):
        self.s.close()


class Peer:
    """A UDP endpoint playing caller or callee."""

    def __init__(self, host="127.0.0.1", family=socket.AF_INET, port=0):
        self.s = socket.socket(family, socket.SOCK_DGRAM)
        self.s.bind((host, port))
        self.s.settimeout(1)
        self.addr = self.s.getsockname()[:2]

    @property
    def port(self):
        return self.addr[1]

    def send(self, data, to):
        self.s.sendto(data, to)

    def recv(self, timeout=1):
        self.s.settimeout(timeout)
        try:
            return self.s.recvfrom(65536)
        except socket.timeout:
            return None, None

    def nothing(self, timeout=0.3):
        data, src = self.recv(timeout)
        return data is None

    def close(self):
        self.s.close()
