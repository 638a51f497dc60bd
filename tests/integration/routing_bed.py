"""The anycast bed (anycast_bed.py) with real routing daemons instead of a
script moving the route (tests/conftest.py's `routed_bed`):

  RT runs BIRD 2 as the site's router (AS 65000): it learns 10.250.255.1/32
  over eBGP from every relay and installs the best route in its kernel;
  relay 1 is preferred (BIRD's preference 200 against 100).
  Each relay Ri runs anyrtpproxy with --health and a route speaker made from
  the shipped examples/SPEAKER.conf, only its placeholders substituted (and
  the helper's installed path pointed at this build's): BIRD 2 with
  anyrtpproxy-health switching its "anycast" protocol through birdc, or
  ExaBGP 4.2 running anyrtpproxy-health as its API process.

Every file lives in a directory of the bed's, removed with it."""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from anycast_bed import ANYCAST, Bed, sh

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
ROUTER_AS = 65000

ROUTER_CONF = """router id 10.250.1.254;
protocol device {
}
protocol kernel {
    ipv4 { import none; export all; };
}
%s
"""
ROUTER_PEER = """protocol bgp r%(i)d {
    local 10.250.1.254 as %(as_router)d;
    neighbor 10.250.1.%(i)d as %(as_relay)d;
    hold time 9;
    keepalive time 3;
    start delay time 1;
    connect delay time 1;
    ipv4 { preference %(pref)d; import all; export none; };
}
"""


def missing(speaker):
    tools = ["bird", "birdc"] + (["exabgp"] if speaker == "exabgp" else [])
    lost = [t for t in tools if not shutil.which(t)]
    if lost:
        return "%s missing (tests/install-deps.sh test installs bird2 and exabgp)" % ", ".join(lost)
    return None


class RoutedBed(Bed):
    def __init__(self, binary, helper, speaker="bird", instances=2, extra_args=()):
        self.speaker = speaker
        self.helper = helper
        self.work = tempfile.mkdtemp(prefix="arp-routed-")
        self.daemons = {}  # name -> Popen of the routing processes
        super().__init__(binary, instances=instances, extra_args=extra_args,
                         args_of=lambda i: ["--health", self.health(i), "--drain-seconds", "5"])

    def _build(self):
        super()._build()
        for addr in self.anycast:  # no script: the router learns it
            self.ip("RT", "route", "del", addr + "/32")

    # --- files and processes
    def path(self, name):
        return os.path.join(self.work, name)

    def health(self, i):
        return self.path("health%d.sock" % i)

    def _spawn(self, name, ns, argv, env=None):
        log = open(self.path(name + ".log"), "a")
        self.daemons[name] = subprocess.Popen(["ip", "netns", "exec", self.ns[ns]] + argv, stdout=log,
                                              stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def start_router(self):
        peers = "".join(ROUTER_PEER % {"i": i, "as_router": ROUTER_AS, "as_relay": ROUTER_AS + i,
                                       "pref": 200 if i == 1 else 100} for i in range(1, self.instances + 1))
        open(self.path("router.conf"), "w").write(ROUTER_CONF % peers)
        self._spawn("router", "RT", ["bird", "-f", "-c", self.path("router.conf"), "-s", self.path("router.ctl"),
                                     "-P", self.path("router.pid")])

    def example(self, i):
        """examples/SPEAKER.conf for relay i: the placeholders substituted, nothing else written."""
        text = open(os.path.join(ROOT, "examples", self.speaker + ".conf")).read()
        for key, value in (("@ANYCAST@", ANYCAST), ("@LOCAL@", "10.250.1.%d" % i), ("@NEIGHBOR@", "10.250.1.254"),
                           ("@LOCAL_AS@", str(ROUTER_AS + i)), ("@PEER_AS@", str(ROUTER_AS)),
                           ("@HEALTH@", self.health(i))):
            text = text.replace(key, value)
        assert "@" not in text, "a placeholder left in examples/%s.conf" % self.speaker
        return text.replace("/usr/bin/anyrtpproxy-health", self.helper)

    def start_speaker(self, i):
        conf = self.path("speaker%d.conf" % i)
        open(conf, "w").write(self.example(i))
        if self.speaker == "bird":
            ctl = self.path("speaker%d.ctl" % i)
            self._spawn("speaker%d" % i, "R%d" % i, ["bird", "-f", "-c", conf, "-s", ctl, "-P", conf + ".pid"])
            birdc = "birdc -s %s" % ctl
            self._spawn("helper%d" % i, "R%d" % i, [self.helper, "--socket", self.health(i), "--on-up",
                                                     birdc + " enable anycast", "--on-down", birdc + " disable anycast"])
        else:
            env = dict(os.environ, **{"exabgp.daemon.user": "root", "exabgp.daemon.daemonize": "false",
                                      "exabgp.api.cli": "false", "exabgp.log.destination": "stdout",
                                      "exabgp.daemon.pid": ""})
            self._spawn("speaker%d" % i, "R%d" % i, ["exabgp", conf], env=env)

    def start_all(self):
        self.start_router()
        for i in range(1, self.instances + 1):
            self.start(i)
            self.start_speaker(i)

    def signal(self, i, sig):
        self.procs[i].send_signal(sig)

    # --- what the router does
    def next_hop(self):
        """The relay the router's kernel sends the anycast address to (its number), or None."""
        out = sh("ip", "-n", self.ns["RT"], "route", "show", ANYCAST + "/32", check=False).stdout
        for word in out.split():
            if word.startswith("10.250.1."):
                return int(word.rsplit(".", 1)[1])
        return None

    def routes_learned(self):
        """How many relays' routes for the anycast address the router holds."""
        out = subprocess.run(["birdc", "-s", self.path("router.ctl"), "show", "route", "for", ANYCAST, "all"],
                             capture_output=True, text=True, timeout=10).stdout
        return out.count("BGP.as_path")

    def routing_logs(self):
        out = ""
        for name in sorted(self.daemons):
            p = self.path(name + ".log")
            if os.path.exists(p):
                out += "--- %s ---\n%s\n" % (name, open(p).read()[-2000:])
        return out

    def destroy(self):
        for p in self.daemons.values():
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                p.wait(5)
            except Exception:
                pass
        self.daemons.clear()
        for i in list(self.procs):  # a stopped (SIGSTOP) daemon must go as well
            try:
                self.procs[i].send_signal(signal.SIGCONT)
            except OSError:
                pass
        super().destroy()
        shutil.rmtree(self.work, ignore_errors=True)


class RouteWatch:
    """Polls the router's kernel route every 10 ms in a thread: when it changed, and to which relay."""

    def __init__(self, bed):
        self.bed, self.changes, self.running = bed, [], True
        self.last = bed.next_hop()
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()

    def run(self):
        deadline = time.monotonic() + 120
        while self.running and time.monotonic() < deadline:
            hop = self.bed.next_hop()
            if hop != self.last:
                self.changes.append((time.monotonic(), hop))
                self.last = hop
            time.sleep(0.01)

    def first_change_after(self, t, to=None):
        hits = [c for c, hop in self.changes if c >= t and (to is None or hop == to)]
        return hits[0] if hits else None

    def stop(self):
        self.running = False
        self.t.join(2)
