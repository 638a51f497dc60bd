"""The kernel fast path in network namespaces made by this test:

  A (caller) 10.251.1.2 --veth-- a0 10.251.1.1  R (relay)  b0 10.251.2.1 --veth-- B (callee) 10.251.2.2

R does not route (ip_forward off): media reaches it only through its sockets
or its eBPF program. A call is offloaded once latched (the kernel counts what
the daemon no longer sees), a third party is never forwarded, a re-offer, a
delete and an expiry each take effect on the next packet, an instance killed
with SIGKILL leaves no program behind, and --kernel-offload=off relays in
userspace as before."""

import itertools
import json
import os
import signal
import subprocess
import time

from anycast_bed import Agent, can_run, remove, sh
import pytest

from harness import BINARY, ROOT, Daemon, Peer, rtp, wait_until, stays

RELAY, CALLER, CALLEE = "10.251.1.1", "10.251.1.2", "10.251.2.2"
HERE = os.path.dirname(os.path.abspath(__file__))
CONTROL = [RELAY, 22222]


def built_with_offload():
    r = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=10)
    return "--kernel-offload" in r.stdout and subprocess.run(
        ["grep", "-q", "anyrtpproxy_ingress", BINARY]).returncode == 0


class LineBed:
    beds = itertools.count()

    def __init__(self):
        self.prefix = "arpo%d" % (os.getpid() % 100000)
        self.ns = {n: self.prefix + n for n in ("A", "R", "B")}
        self.proc = None
        self.agents = []
        self.log = os.path.join(os.environ.get("TEST_LOGDIR", "/tmp"), "%s-%d-relay.log" % (self.prefix, next(self.beds)))
        try:
            for name in self.ns.values():
                sh("ip", "netns", "add", name)
            for n in self.ns:
                self.ip(n, "link", "set", "lo", "up")
            for side, dev, net in (("A", "a0", 1), ("B", "b0", 2)):
                sh("ip", "-n", self.ns["R"], "link", "add", dev, "type", "veth", "peer", "name", "eth0",
                   "netns", self.ns[side])
                self.ip("R", "addr", "add", "10.251.%d.1/24" % net, "dev", dev)
                self.ip("R", "link", "set", dev, "up")
                self.ip(side, "addr", "add", "10.251.%d.2/24" % net, "dev", "eth0")
                self.ip(side, "link", "set", "eth0", "up")
                self.ip(side, "route", "add", "default", "via", "10.251.%d.1" % net)
                self.ip("R", "addr", "add", "fd00:251:%d::1/64" % net, "dev", dev, "nodad")
                self.ip(side, "addr", "add", "fd00:251:%d::2/64" % net, "dev", "eth0", "nodad")
                self.ip(side, "-6", "route", "add", "default", "via", "fd00:251:%d::1" % net)
            sh("ip", "netns", "exec", self.ns["R"], "sysctl", "-qw", "net.ipv4.ip_forward=0",
               "net.ipv6.conf.all.forwarding=0")
            # Full checksums on every packet, as from a real NIC: veth would otherwise pass
            # the stack's partial ones along, and a wrong rewrite would go unseen.
            for ns, dev in (("A", "eth0"), ("B", "eth0"), ("R", "a0"), ("R", "b0")):
                sh("ip", "netns", "exec", self.ns[ns], "ethtool", "-K", dev, "tx", "off")
        except Exception:
            self.destroy()
            raise

    def ip(self, ns, *args):
        return sh("ip", "-n", self.ns[ns], *args)

    def start(self, *args, media=RELAY, env=None):
        argv = ["ip", "netns", "exec", self.ns["R"], BINARY, "-D", "-d", "info", "-s", "udp:%s:22222" % RELAY,
                "-i", media, "-p", "20000", "20999"] + list(args)
        self.proc = subprocess.Popen(argv, stdout=open(self.log, "a"), stderr=subprocess.STDOUT,
                                     env=dict(os.environ, **(env or {})))

    def tc_filters(self, dev):
        """The program ids of the classic tc filters at ingress of the relay's `dev`."""
        out = sh("tc", "-n", self.ns["R"], "-j", "filter", "show", "dev", dev, "ingress").stdout
        return [f["options"]["prog"]["id"] for f in json.loads(out or "[]") if "prog" in f.get("options", {})]

    def pid(self):
        """The daemon's own pid (ip netns exec execs it in place)."""
        return self.proc.pid

    def kill(self, sig=signal.SIGKILL):
        self.proc.send_signal(sig)
        self.proc.wait(5)
        self.proc = None

    def logtext(self):
        return open(self.log).read()

    def checksums(self, ns, src, count=20):
        """IP and UDP checksums of what `ns` receives from `src`, checked as a receiver would."""
        out = sh("ip", "netns", "exec", self.ns[ns], "/usr/bin/python3", os.path.join(HERE, "checksum_probe.py"),
                 "eth0", src, str(count), "3").stdout
        return json.loads(out)

    def metrics(self, port):
        """The relay's scalar metrics, scraped from inside its namespace."""
        text = sh("ip", "netns", "exec", self.ns["R"], "/usr/bin/python3", "-c",
                  "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:%d/metrics', timeout=3)"
                  ".read().decode())" % port).stdout
        return {l.split()[0]: float(l.split()[1]) for l in text.splitlines()
                if l.startswith("anyrtpproxy_offload") and "{" not in l}

    def links(self):
        """The tcx links the running daemon holds (its fdinfo), and the programs behind them."""
        held, progs = 0, set()
        for fd in os.listdir("/proc/%d/fdinfo" % self.proc.pid):
            try:
                text = open("/proc/%d/fdinfo/%s" % (self.proc.pid, fd)).read()
            except OSError:
                continue
            if "link_type:\ttcx" in text:
                held += 1
                progs.add(int(text.split("prog_id:\t")[1].split()[0]))
        return held, progs

    @staticmethod
    def loaded(progs):
        """Which of these program ids the kernel still has (bpftool prog show)."""
        return {p["id"] for p in json.loads(sh("bpftool", "-j", "prog", "show").stdout)} & set(progs)

    def agent(self, ns):
        a = Agent(self.ns[ns])
        self.agents.append(a)
        return a

    def destroy(self):
        remove(self.agents, [self.proc] if self.proc else [], self.ns.values())


def bed_or_skip(tcx=True):
    why = can_run()
    if why:
        pytest.skip(why)
    if not built_with_offload():
        pytest.skip("built without the kernel fast path (configure found no clang, libbpf or bpftool)")
    if not tcx:
        return LineBed()
    release = tuple(int(x) for x in os.uname().release.split("-")[0].split(".")[:2])
    if release < (6, 6):
        pytest.skip("kernel %s has no tcx links (Linux 6.6): the fast path cannot attach" % os.uname().release)
    return LineBed()


@pytest.fixture
def line_bed():
    """line_bed(tcx=True): a LineBed (skipped where it cannot run), removed after the test."""
    made = []

    def make(tcx=True):
        b = bed_or_skip(tcx)
        made.append(b)
        return b
    yield make
    for b in made:
        b.destroy()


def info(a, name):
    for line in a(op="cmd", to=CONTROL, text="I")["reply"].split("\n"):
        if line.startswith(name + ": "):
            return int(line.split(": ")[1])
    raise AssertionError("no %r in I" % name)


def streaming(bed, *args):
    """The relay started with args, a call c0 set up, both parties streaming at 50 pps."""
    bed.start(*args)
    a, b = bed.agent("A"), bed.agent("B")
    wait_until(lambda: a(op="cmd", to=CONTROL, text="V")["reply"] == "20040107", 10, "the relay")
    p, q = call(a, b, 0, 30000, 31000)
    a(op="stream", targets={0: [RELAY, q]}, pps=50, ssrc=1000)
    b(op="stream", targets={0: [RELAY, p]}, pps=50, ssrc=2000)
    return a, b, p, q


def call(a, b, cid, caller_port, callee_port):
    a(op="open", calls=[[cid, CALLER, caller_port]])
    b(op="open", calls=[[cid, CALLEE, callee_port]])
    p = a(op="cmd", to=CONTROL, text="U c%d %s %d A;1" % (cid, CALLER, caller_port))["reply"]
    q = a(op="cmd", to=CONTROL, text="L c%d %s %d A;1 B;1" % (cid, CALLEE, callee_port))["reply"]
    return int(p.split()[0]), int(q.split()[0])


def test_a_latched_call_is_forwarded_by_the_kernel_and_follows_every_change(line_bed):
    bed = line_bed()
    a, b, p, q = streaming(bed, "--kernel-offload=on", "-T", "30", "--metrics", "127.0.0.1:9915")
    assert "forwarded by eBPF at tc ingress of a0,b0" in bed.logtext(), bed.logtext()
    assert bed.links()[0] == 2  # a0 and b0
    wait_until(lambda: bed.metrics(9915)["anyrtpproxy_offload_packets_total"] > 0, 5, "the kernel to forward")
    metrics = bed.metrics(9915)
    assert metrics["anyrtpproxy_offload_active"] == 1 and metrics["anyrtpproxy_offload_streams"] == 2, metrics
    assert metrics["anyrtpproxy_offload_packets_total"] > 0 and metrics["anyrtpproxy_offload_failures_total"] == 0  # both legs latch in userspace; their entries go in at once
    kernel0, userspace0 = info(a, "packets forwarded by the kernel"), info(a, "packets received")
    t0 = a(op="stats")["now"]
    # 100 pps for 2 s: the kernel forwarded them, the daemon's sockets saw (next to) none
    wait_until(lambda: info(a, "packets forwarded by the kernel") - kernel0 >= 200, 5, "200 packets in the kernel")
    kernel1, userspace1 = info(a, "packets forwarded by the kernel"), info(a, "packets received")
    assert (userspace1 - kernel1) - (userspace0 - kernel0) <= 4, (userspace0, userspace1, kernel0, kernel1)
    ra, rb = a(op="stats", since=t0)["stats"]["0"], b(op="stats", since=t0)["stats"]["0"]
    assert ra["packets"] >= 90 and rb["packets"] >= 90, (ra, rb)
    assert ra["sources"] == ["%s:%d" % (RELAY, q)] and rb["sources"] == ["%s:%d" % (RELAY, p)], (ra, rb)
    assert ra["ssrcs"] == [2000] and rb["ssrcs"] == [1000] and ra["lost"] == 0 and rb["lost"] == 0, (ra, rb)
    for ns in ("A", "B"):  # what the kernel rewrote carries right checksums
        assert bed.checksums(ns, RELAY) == {"udp": 20, "ip_bad": 0, "udp_bad": 0}, ns
    q_counters = a(op="cmd", to=CONTROL, text="Q c0 A;1 B;1")["reply"].split()
    assert int(q_counters[1]) >= 100 and int(q_counters[3]) >= 200, q_counters  # Q counts them too (within 1 s)
    # a third party (the caller's host, another port) aims at the callee's leg: never forwarded
    t1 = a(op="stats")["now"]
    a(op="inject", call=0, to=[RELAY, p], count=20, ssrc=666)
    wait_until(lambda: a(op="stats", since=t1)["stats"]["0"]["packets"] >= 15, 3, "the callee's media after it")
    assert a(op="stats", since=t1)["stats"]["0"]["ssrcs"] == [2000]
    # a re-offer: the callee moves to port 31010 and sends from there
    b(op="open", calls=[[1, CALLEE, 31010]])
    assert a(op="cmd", to=CONTROL, text="L c0 %s 31010 A;1 B;1" % CALLEE)["reply"].split()[0] == str(q)
    b(op="stream", targets={1: [RELAY, p]}, pps=50, ssrc=2000, replace=True)
    t2 = b(op="stats")["now"]
    wait_until(lambda: b(op="stats", since=t2 + 0.3)["stats"]["1"]["packets"] >= 50, 5, "the caller's media to follow")
    moved = b(op="stats", since=t2 + 0.3)["stats"]
    assert moved["1"]["packets"] >= 50 and moved["0"]["packets"] == 0, moved  # the caller's media follows
    assert moved["1"]["sources"] == ["%s:%d" % (RELAY, p)], moved
    # the caller's stream goes to the moved callee from the kernel again; the callee's own
    # stream stays in userspace for the re-offer's 10 s window, where it may still move
    def read_back():  # the kernel's count just after the daemon read it back (once a second)
        k = info(a, "packets forwarded by the kernel")
        wait_until(lambda: info(a, "packets forwarded by the kernel") != k, 3, "the kernel to forward")
        return info(a, "packets forwarded by the kernel"), time.monotonic()
    kernel2, since = read_back()
    wait_until(lambda: info(a, "packets forwarded by the kernel") - kernel2 >= 50, 5, "one direction offloaded again")
    kernel3, until = read_back()
    rate = (kernel3 - kernel2) / (until - since)
    assert 25 < rate < 75, "not one direction of 50 pps in the kernel: %.0f pps" % rate
    # a delete: the entries go before the reply; nothing is forwarded after it
    t3 = a(op="cmd", to=CONTROL, text="D c0 A;1")["now"]
    stays(lambda: a(op="stats", since=t3 + 0.01)["stats"]["0"]["packets"] == 0 and
          b(op="stats", since=t3 + 0.01)["stats"]["1"]["packets"] == 0, 0.5, "silence after the delete")


def test_idle_offloaded_calls_time_out_and_a_killed_relay_leaves_no_program(line_bed):
    bed = line_bed()
    a, b, p, q = streaming(bed, "--kernel-offload=on", "-T", "3")
    # 100 pps for 5 s, longer than -T: the kernel's packets keep the call alive
    wait_until(lambda: info(a, "packets forwarded by the kernel") >= 500, 10, "5 s of media in the kernel")
    assert info(a, "active sessions") == 1
    a(op="stream", targets={}, replace=True)
    b(op="stream", targets={}, replace=True)
    wait_until(lambda: info(a, "active sessions") == 0, 6, "the idle call to time out")
    assert "expired call-id=c0" in bed.logtext()
    t1 = a(op="stats")["now"]  # its entries went with it: the caller's late packets are not forwarded
    a(op="stream", targets={0: [RELAY, q]}, pps=50, ssrc=1000, replace=True)
    stays(lambda: b(op="stats", since=t1)["stats"]["0"]["packets"] == 0, 0.5, "silence at the callee")
    a(op="stream", targets={}, replace=True)
    # killed without a word, then started again: nothing stale forwards to dead sessions
    held, progs = bed.links()
    assert held == 2
    bed.kill()
    assert not bed.loaded(progs), "a stale program outlived its instance"
    bed.start("--kernel-offload=on", "-T", "3")
    wait_until(lambda: a(op="cmd", to=CONTROL, text="V")["reply"] == "20040107", 10, "the relay again")
    p, q = call(a, b, 1, 30002, 31002)
    a(op="stream", targets={1: [RELAY, q]}, pps=50, ssrc=1000, replace=True)
    b(op="stream", targets={1: [RELAY, p]}, pps=50, ssrc=2000, replace=True)
    wait_until(lambda: info(a, "packets forwarded by the kernel") >= 100, 5, "the new relay to offload")
    assert bed.links()[0] == 2  # one per interface


def test_without_tcx_links_tc_filters_forward_and_a_killed_instance_cannot_keep_them(line_bed):
    """Kernels before 6.6 (Debian bookworm's 6.1) have no tcx links: the program
    goes in as a classic tc filter, which outlives a killed process. It stops
    forwarding once its daemon stops writing its owner map (10 s), the next
    start replaces it, a clean stop removes it, and a second instance does
    not take it from a running one."""
    bed = line_bed(tcx=False)
    legacy = {"ANYRTPPROXY_OFFLOAD_ATTACH": "tc"}
    bed.start("--kernel-offload=on", "-T", "60", env=legacy)
    a, b = bed.agent("A"), bed.agent("B")
    wait_until(lambda: a(op="cmd", to=CONTROL, text="V")["reply"] == "20040107", 10, "the relay")
    assert "tc ingress of a0,b0 (as tc filters" in bed.logtext(), bed.logtext()
    assert bed.links()[0] == 0 and len(bed.tc_filters("a0")) == 1 and len(bed.tc_filters("b0")) == 1
    old = set(bed.tc_filters("a0") + bed.tc_filters("b0"))
    p, q = call(a, b, 0, 30000, 31000)
    a(op="stream", targets={0: [RELAY, q]}, pps=50, ssrc=1000)
    b(op="stream", targets={0: [RELAY, p]}, pps=50, ssrc=2000)
    wait_until(lambda: info(a, "packets forwarded by the kernel") >= 100, 5, "the tc filter to forward")
    # a second instance on the same interfaces leaves the running one's filters alone
    second = subprocess.run(["ip", "netns", "exec", bed.ns["R"], BINARY, "-D", "-d", "info", "-s",
                             "udp:%s:22223" % RELAY, "-i", RELAY, "-p", "21000", "21999", "--kernel-offload=on"],
                            capture_output=True, text=True, timeout=10, env=dict(os.environ, **legacy))
    assert second.returncode != 0 and "belongs to the running anyrtpproxy %d" % bed.pid() in second.stderr, \
        second.stderr
    assert set(bed.tc_filters("a0") + bed.tc_filters("b0")) == old
    # killed: the filters stay, but forward nothing once the owner map is 10 s old
    bed.kill()
    assert set(bed.tc_filters("a0") + bed.tc_filters("b0")) == old
    last_second = lambda agent: agent(op="stats", since=agent(op="stats")["now"] - 1.0)["stats"]["0"]["packets"]
    wait_until(lambda: last_second(a) == 0 and last_second(b) == 0, 14, "a dead instance's filter to stop forwarding")
    # started again: its own filters replace the stale ones (whose programs are gone)
    bed.start("--kernel-offload=on", "-T", "60", env=legacy)
    wait_until(lambda: a(op="cmd", to=CONTROL, text="V")["reply"] == "20040107", 10, "the relay again")
    new = set(bed.tc_filters("a0") + bed.tc_filters("b0"))
    assert len(new) == 1 and not new & old, (old, new)
    wait_until(lambda: not bed.loaded(old), 5, "the kernel to free the stale program")
    p, q = call(a, b, 1, 30002, 31002)
    a(op="stream", targets={1: [RELAY, q]}, pps=50, ssrc=1000, replace=True)
    b(op="stream", targets={1: [RELAY, p]}, pps=50, ssrc=2000, replace=True)
    wait_until(lambda: info(a, "packets forwarded by the kernel") >= 100, 5, "the new relay to offload")
    # a clean stop takes its filters with it
    bed.kill(signal.SIGTERM)
    assert bed.tc_filters("a0") == [] and bed.tc_filters("b0") == [], bed.logtext()[-1500:]
    wait_until(lambda: not bed.loaded(new), 5, "the kernel to free the program")


def test_after_dropping_to_a_user_the_daemon_keeps_only_cap_bpf_and_still_offloads(line_bed):
    bed = line_bed()
    a, b, p, q = streaming(bed, "--kernel-offload=on", "-u", "nobody")  # entries written after the drop
    status = dict(l.split(":", 1) for l in open("/proc/%d/status" % bed.pid()) if ":" in l)
    assert status["Uid"].split()[0] == "65534", status["Uid"]
    assert int(status["CapEff"], 16) == 1 << 39 and int(status["CapPrm"], 16) == 1 << 39, status["CapEff"]
    wait_until(lambda: info(a, "packets forwarded by the kernel") >= 100, 5, "offload as nobody")


def test_an_ipv6_call_is_forwarded_with_correct_udp_checksums(line_bed):
    """IPv6 UDP must carry a valid checksum (the pseudo-header has both
    128-bit addresses): checked on what the parties receive."""
    bed = line_bed()
    relay6, caller6, callee6 = "fd00:251:1::1", "fd00:251:1::2", "fd00:251:2::2"
    bed.start("--kernel-offload=on", media=relay6)
    a, b = bed.agent("A"), bed.agent("B")
    wait_until(lambda: a(op="cmd", to=CONTROL, text="V")["reply"] == "20040107", 10, "the relay")
    a(op="open", calls=[[0, caller6, 30000]])
    b(op="open", calls=[[0, callee6, 31000]])
    p = int(a(op="cmd", to=CONTROL, text="U6 c6 %s 30000 A;1" % caller6)["reply"].split()[0])
    q = int(a(op="cmd", to=CONTROL, text="L6 c6 %s 31000 A;1 B;1" % callee6)["reply"].split()[0])
    a(op="stream", targets={0: [relay6, q]}, pps=50, ssrc=1000)
    b(op="stream", targets={0: [relay6, p]}, pps=50, ssrc=2000)
    wait_until(lambda: info(a, "packets forwarded by the kernel") > 0, 5, "the kernel to forward")
    t0 = a(op="stats")["now"]
    kernel0 = info(a, "packets forwarded by the kernel")
    wait_until(lambda: info(a, "packets forwarded by the kernel") - kernel0 >= 200, 5, "200 packets in the kernel")
    ra, rb = a(op="stats", since=t0)["stats"]["0"], b(op="stats", since=t0)["stats"]["0"]
    assert ra["packets"] >= 90 and rb["packets"] >= 90 and ra["lost"] == 0 and rb["lost"] == 0, (ra, rb)
    assert ra["sources"] == ["[%s]:%d" % (relay6, q)] and rb["sources"] == ["[%s]:%d" % (relay6, p)], (ra, rb)
    for ns in ("A", "B"):
        assert bed.checksums(ns, relay6) == {"udp": 20, "ip_bad": 0, "udp_bad": 0}, ns


def test_kernel_offload_off_relays_in_userspace_as_before(line_bed):
    bed = line_bed()
    a, b, p, q = streaming(bed, "--kernel-offload=off")
    assert bed.links()[0] == 0 and "kernel offload" not in bed.logtext()
    t0 = a(op="stats")["now"]
    wait_until(lambda: a(op="stats", since=t0)["stats"]["0"]["packets"] >= 60 and
               info(a, "packets transmitted") >= 120, 5, "media through userspace")
    assert info(a, "packets forwarded by the kernel") == 0


def test_a_daemon_built_without_the_fast_path_relays_as_before():
    """make nobpf (check-all builds it): auto relays in userspace, on refuses to start."""
    nobpf = os.path.join(ROOT, "build", "nobpf", "anyrtpproxy")
    if not os.path.exists(nobpf):
        pytest.skip("no build/nobpf/anyrtpproxy (make nobpf builds it; make check-all does)")
    r = subprocess.run([nobpf, "-D", "-s", "udp:127.0.0.1:1", "--kernel-offload=on"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0 and "built without the kernel fast path" in r.stderr, (r.returncode, r.stderr)
    r = subprocess.run([nobpf, "-D", "-s", "udp:127.0.0.1:1", "--catch-all=on"], capture_output=True, text=True,
                       timeout=10)
    assert r.returncode != 0 and "--catch-all=on: built without libbpf" in r.stderr, (r.returncode, r.stderr)
    a, b = Peer(), Peer()
    with Daemon(binary=nobpf, offload="auto") as d:
        p = int(d.cmd("U nb 127.0.0.1 %d A;1" % a.port).split()[0])
        q = int(d.cmd("L nb 127.0.0.1 %d A;1 B;1" % b.port).split()[0])
        a.send(rtp(1), ("127.0.0.1", q))
        assert b.recv()[0] == rtp(1)
        b.send(rtp(2), ("127.0.0.1", p))
        assert a.recv()[0] == rtp(2)
        assert "kernel offload unavailable, relaying in userspace: this anyrtpproxy was built without" in d.logtext()
        assert "catch-all unavailable, every peer's leg is bound here" in d.logtext()


def test_bad_offload_options_are_refused_naming_them():
    for args, message in ((["--kernel-offload", "maybe"], "--kernel-offload: 'maybe' is not auto, on or off"),
                          (["--catch-all", "yes"], "--catch-all: 'yes' is not auto, on or off"),
                          (["--offload-interfaces", "a/b"], "--offload-interfaces: 'a/b' is not an interface name"),
                          (["--kernel-offload=off", "--offload-interfaces", "eth0"], "needs --kernel-offload auto or on")):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1"] + args, capture_output=True, text=True, timeout=10)
        assert r.returncode == 2 and message in r.stderr, (args, r.returncode, r.stderr)
    if os.geteuid() == 0 and built_with_offload():  # on: an interface that is not there stops the start
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "--kernel-offload=on", "--offload-interfaces",
                            "nosuch0"], capture_output=True, text=True, timeout=10)
        assert r.returncode != 0 and "no interface 'nosuch0'" in r.stderr, (r.returncode, r.stderr)
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "--kernel-offload=on"], capture_output=True,
                           text=True, timeout=10, env=dict(os.environ, ANYRTPPROXY_OFFLOAD_ATTACH="tcx\x01"))
        assert r.returncode != 0 and "ANYRTPPROXY_OFFLOAD_ATTACH: 'tcx?' is not tc" in r.stderr, r.stderr

