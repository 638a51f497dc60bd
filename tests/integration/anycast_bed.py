"""An anycast test bed in network namespaces (tests/conftest.py's `bed`):

  A (caller) 10.250.10.1 --+                        +-- R1 10.250.1.1, 10.250.255.1/32 on lo
                           RT (router, br0 10.250.1.254) -- R2 10.250.1.2, 10.250.255.1/32 on lo
  B (callee) 10.250.20.1 --+                        +-- R3 10.250.1.3, 10.250.255.1/32 on lo

RT routes the anycast address 10.250.255.1 to one instance; a policy rule can
send the callee's packets to another (the split case). Every address exists
only inside namespaces this bed creates, under a per-run prefix, and deletes."""

import json
import os
import signal
import subprocess
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ANYCAST = "10.250.255.1"
ANYCAST2 = "10.250.255.2"  # a second anycast address (Bed(two_addresses=True): -i ANYCAST,ANYCAST2)
PY = "/usr/bin/python3"


def sh(*argv, check=True):
    r = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(argv), r.stderr.strip()))
    return r


class Agent:
    def __init__(self, ns):
        self.p = subprocess.Popen(["ip", "netns", "exec", ns, PY, os.path.join(HERE, "netns_agent.py")],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)

    def __call__(self, **req):
        self.p.stdin.write(json.dumps(req) + "\n")
        line = self.p.stdout.readline()
        if not line:
            raise RuntimeError("agent died")
        return json.loads(line)

    def close(self):
        try:
            self("quit")  # noqa
        except Exception:
            pass
        try:
            self.p.kill()
            self.p.wait(2)
        except Exception:
            pass


class Bed:
    def __init__(self, binary, instances=3, ttl=60, extra_args=(), args_of=lambda i: [], two_addresses=False,
                 binary_of=None):
        self.anycast = [ANYCAST, ANYCAST2] if two_addresses else [ANYCAST]
        self.prefix = "arp%d" % (os.getpid() % 100000)
        self.ns = {n: "%s%s" % (self.prefix, n) for n in ["A", "B", "RT"] + ["R%d" % i for i in range(1, instances + 1)]}
        self.instances = instances
        self.procs = {}
        self.agents = []
        self.binary = binary
        self.binary_of = binary_of or (lambda i: binary)  # instance number -> its daemon (a mixed-version cluster)
        self.ttl = ttl
        self.extra_args = list(extra_args)
        self.args_of = args_of  # instance number -> its own arguments (a directory of its own)
        self.logdir = os.environ.get("TEST_LOGDIR", "/tmp")
        try:
            self._build()
        except Exception:
            self.destroy()
            raise

    def ip(self, ns, *args):
        return sh("ip", "-n", self.ns[ns], *args)

    def _veth(self, a, a_if, b, b_if):
        tmp_a, tmp_b = "%sx%s" % (self.prefix, a_if), "%sy%s" % (self.prefix, b_if)
        # created directly inside the namespaces: the host's namespace is never touched
        sh("ip", "-n", self.ns[a], "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", self.ns[b])
        self.ip(a, "link", "set", a_if, "up")
        self.ip(b, "link", "set", b_if, "up")

    def _build(self):
        for name in self.ns.values():
            sh("ip", "netns", "add", name)
        for n in self.ns:
            self.ip(n, "link", "set", "lo", "up")
        sh("ip", "netns", "exec", self.ns["RT"], "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.ip("RT", "link", "add", "br0", "type", "bridge")
        self.ip("RT", "addr", "add", "10.250.1.254/24", "dev", "br0")
        self.ip("RT", "link", "set", "br0", "up")
        for side, net in (("A", 10), ("B", 20)):
            self._veth("RT", "r" + side.lower(), side, "eth0")
            self.ip("RT", "addr", "add", "10.250.%d.254/24" % net, "dev", "r" + side.lower())
            self.ip(side, "addr", "add", "10.250.%d.1/24" % net, "dev", "eth0")
            self.ip(side, "route", "add", "default", "via", "10.250.%d.254" % net)
        for i in range(1, self.instances + 1):
            r = "R%d" % i
            self._veth("RT", "v%d" % i, r, "eth0")
            self.ip("RT", "link", "set", "v%d" % i, "master", "br0")
            self.ip(r, "addr", "add", "10.250.1.%d/24" % i, "dev", "eth0")
            for addr in self.anycast:
                self.ip(r, "addr", "add", addr + "/32", "dev", "lo")
            self.ip(r, "route", "add", "default", "via", "10.250.1.254")
        self.route_to(1)

    def route_to(self, i, callee_to=None):
        """Anycast route: everything to instance i; with callee_to, the callee's packets to that one."""
        for addr in self.anycast:
            self.ip("RT", "route", "replace", addr + "/32", "via", "10.250.1.%d" % i)
        sh("ip", "-n", self.ns["RT"], "rule", "del", "iif", "rb", "lookup", "100", check=False)
        if callee_to:
            for addr in self.anycast:
                self.ip("RT", "route", "replace", addr + "/32", "via", "10.250.1.%d" % callee_to, "table", "100")
            self.ip("RT", "rule", "add", "iif", "rb", "lookup", "100")

    def range_of(self, i):
        return 20000 + 2000 * (i - 1), 20000 + 2000 * (i - 1) + 1999

    def start(self, i):
        peers = ",".join("10.250.1.%d:2342" % j for j in range(1, self.instances + 1) if j != i)
        lo, hi = self.range_of(i)
        log = open(self.log_of(i), "a")
        argv = ["ip", "netns", "exec", self.ns["R%d" % i], self.binary_of(i), "-D", "-d", "info",
                "-s", "udp:10.250.1.%d:22222" % i, "-i", ",".join(self.anycast), "-p", str(lo), str(hi), "-T", str(self.ttl),
                "-S", "2342", "-I", "10.250.1.%d" % i, "-M", peers] + self.extra_args + list(self.args_of(i))
        self.procs[i] = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)

    def log_of(self, i):
        return os.path.join(self.logdir, "%s-R%d.log" % (self.prefix, i))

    def kill(self, i, sig=signal.SIGKILL):
        p = self.procs.pop(i)
        p.send_signal(sig)
        p.wait(5)

    def agent(self, ns):
        a = Agent(self.ns[ns])
        self.agents.append(a)
        return a

    def destroy(self):
        remove(self.agents, list(self.procs.values()), self.ns.values())
        self.procs.clear()


def remove(agents, procs, namespaces):
    """Ends a bed: its agents, its processes, then its namespaces."""
    for a in agents:
        a.close()
    for p in procs:
        try:
            p.kill()
            p.wait(5)
        except Exception:
            pass
    for name in namespaces:
        sh("ip", "netns", "del", name, check=False)


def can_run():
    if os.geteuid() != 0:
        return "needs root for network namespaces"
    probe = "arpprobe%d" % os.getpid()
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode != 0:
        return "cannot create network namespaces: " + r.stderr.strip()
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None
