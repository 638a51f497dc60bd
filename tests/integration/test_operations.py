"""Running it like a service: the Prometheus endpoint (checked by promtool
and scraped by a real Prometheus server), the log line of every failed
command, the configuration file and SIGHUP."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

from harness import BINARY, Daemon, Peer, free_port, rtp, wait_until

LO = "127.0.0.1"


def scrape(port, host=LO, path="/metrics"):
    with urllib.request.urlopen("http://%s:%d%s" % (host, port, path), timeout=3) as r:
        assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers["Content-Type"]
        return r.read().decode()


def samples(text):
    """{'name{labels}': value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def promtool_check(text):
    if not shutil.which("promtool"):
        raise AssertionError("promtool is missing: tests/install-deps.sh test installs Debian's prometheus")
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
    assert r.returncode == 0, r.stdout.decode() + r.stderr.decode()


def answered_call(d, a, b, call_id):
    p = int(d.cmd("U %s %s %d A;1" % (call_id, a.addr[0], a.port)).split()[0])
    q = int(d.cmd("L %s %s %d A;1 B;1" % (call_id, b.addr[0], b.port)).split()[0])
    return p, q


def test_metrics_pass_promtool_and_count_what_happened():
    mport = free_port(socket.SOCK_STREAM)
    a, b = Peer(), Peer()
    with Daemon("--metrics", "%s:%d" % (LO, mport)) as d:
        p, q = answered_call(d, a, b, "m1")
        for seq in range(5):
            a.send(rtp(seq), (LO, q))
            assert b.recv()[0] is not None
        Peer().send(rtp(9), (LO, q))  # a third party: the leg latched to a, so it is dropped
        d.cmd("U m2 %s %d A;1" % (LO, a.port))  # offered, never answered
        assert d.cmd("D nosuch A;1") == "E50"
        assert d.cmd("Ux") == "E1"
        text = scrape(mport)
        promtool_check(text)
        m = samples(text)
        assert m['anyrtpproxy_sessions{state="answered",origin="local"}'] == 1
        assert m['anyrtpproxy_sessions{state="offered",origin="local"}'] == 1
        assert m['anyrtpproxy_sessions_created_total{origin="local"}'] == 2
        assert m["anyrtpproxy_packets_relayed_total"] == 5
        assert m["anyrtpproxy_bytes_relayed_total"] == 5 * len(rtp(0))
        wait_until(lambda: samples(scrape(mport)).get('anyrtpproxy_packets_dropped_total{reason="source_not_latched"}') == 1,
                   3, "the third party's packet to be counted")
        assert m['anyrtpproxy_commands_total{command="D",result="E50"}'] == 1
        assert m['anyrtpproxy_commands_total{command="U",result="E1"}'] == 1
        assert m['anyrtpproxy_commands_total{command="U",result="ok"}'] == 2
        assert m['anyrtpproxy_commands_total{command="L",result="ok"}'] == 1
        assert m["anyrtpproxy_relay_sockets"] == 6  # two legs of m1, one of m2: RTP and RTCP each
        assert m["anyrtpproxy_open_fds"] >= 6 and m["anyrtpproxy_max_fds"] > 0
        assert m["anyrtpproxy_reply_cache_entries"] >= 5
        assert any(k.startswith("anyrtpproxy_build_info{version=") for k in m)
        assert "m1" not in text and "nosuch" not in text  # never a call-id in a label
        assert d.cmd("D m1 A;1") == "0"
        assert samples(scrape(mport))['anyrtpproxy_sessions_closed_total{reason="deleted"}'] == 1
        # HEAD has no body; other paths and methods are refused with their status.
        req = urllib.request.Request("http://%s:%d/metrics" % (LO, mport), method="HEAD")
        with urllib.request.urlopen(req, timeout=3) as r:
            assert r.status == 200 and r.read() == b""
        for path, method, status in (("/", "GET", 404), ("/metrics", "POST", 405)):
            try:
                urllib.request.urlopen(urllib.request.Request("http://%s:%d%s" % (LO, mport, path), method=method,
                                                              data=b"" if method == "POST" else None), timeout=3)
                raise AssertionError("%s %s answered 200" % (method, path))
            except urllib.error.HTTPError as e:
                assert e.code == status, (path, method, e.code)
    a.close()
    b.close()


def test_the_metrics_endpoint_is_closed_to_strangers_and_bounded():
    mport = free_port(socket.SOCK_STREAM)
    with Daemon("--metrics", "[::]:%d" % mport, "--metrics-allow", "127.0.0.2,::1") as d:
        # 127.0.0.1 is not allowed: closed without a byte.
        s = socket.create_connection((LO, mport), timeout=3)
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            assert s.recv(100) == b"", "a stranger got an answer"
        except ConnectionResetError:
            pass  # closed with the request unread
        s.close()
        wait_until(lambda: "metrics: refused a connection from 127.0.0.1: not in --metrics-allow" in d.logtext(), 3, "the refusal's log line")
        # 127.0.0.2 is: a header beyond the limit gets 400, a request that never ends is cut after 5 s.
        s = socket.create_connection((LO, mport), timeout=3, source_address=("127.0.0.2", 0))
        s.sendall(b"GET /metrics HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 400"), "an oversized header was not refused"
        s.close()
        slow = [socket.create_connection((LO, mport), timeout=8, source_address=("127.0.0.2", 0)) for _ in range(20)]
        for c in slow:
            c.sendall(b"GET /metr")
        try:  # 16 slots taken: a 21st client is refused too, until the slow ones are cut
            scrape(mport, host="::1")
            raise AssertionError("a 21st connection was served while 16 were open")
        except (ConnectionResetError, http.client.RemoteDisconnected, urllib.error.URLError):
            pass
        closed_at = time.monotonic()
        for c in slow:
            try:
                c.recv(100)
            except (socket.timeout, ConnectionResetError):
                pass
        assert time.monotonic() - closed_at < 7.5, "slow clients were not cut"
        for c in slow:
            c.close()
        text = scrape(mport, host="::1")  # over IPv6, once the slots are free again
        m = samples(text)
        assert m['anyrtpproxy_connections_refused_total{port="metrics"}'] >= 1 + 4 + 1, m
        assert d.logtext().count("metrics: refused a connection from 127.0.0.1") == 1  # once a minute per address
        assert "anyrtpproxy_build_info" in text


def test_a_failed_command_is_logged_once_and_a_burst_stays_bounded():
    with Daemon(level="info") as d:
        assert d.cmd("D nosuch-call A;1") == "E50"
        wait_until(lambda: "E50" in d.logtext(), 3, "the failure's log line")
        lines = [l for l in d.logtext().splitlines() if "E50" in l]
        assert len(lines) == 1 and "call-id=nosuch-call" in lines[0] and "no such session" in lines[0], lines
        before = len(d.logtext().splitlines())
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        sent = 0
        for i in range(10000):
            s.sendto(b"k%d Q burst-%d A;1" % (i, i), d.control)
            sent += 1
            if i % 200 == 199:  # stay within the daemon's receive buffer
                wait_until(lambda: d.cmd("V") == "20040107", 3, "the daemon to catch up")
        assert d.cmd("V") == "20040107"
        s.close()
        burst = d.logtext().splitlines()[before:]
        failures = [l for l in burst if "Q failed: E50" in l]
        assert 1 <= len(failures) <= 3, burst[:10]  # one, and at most a "suppressed" follow-up
        assert len(burst) < 20, burst[:20]


def test_a_config_file_sets_options_the_command_line_wins_and_sighup_reloads():
    tmp = tempfile.mkdtemp(prefix="arp-conf-")
    conf = os.path.join(tmp, "anyrtpproxy.conf")
    base = free_port(pair=True)
    other = free_port(pair=True)

    def write(level, timeout, tos=184):
        with open(conf, "w") as f:
            f.write("# written by the test\nlog-level = %s\ntimeout = %d\nport-range = %d %d\ntos = %d\n"
                    "nodaemonize = yes\n" % (level, timeout, other, other + 8, tos))

    write("notice", 60)
    # The file gives another range; -p on the command line (the harness's) wins.
    d = Daemon("-c", conf, ports=(base, base + 8), start=False)
    i = d.argv.index("-d")
    del d.argv[i:i + 2]  # the log level comes from the file
    d.start()
    with d:
        port = int(d.cmd("U cfg1 %s 4000 A;1" % LO).split()[0])
        assert base <= port < base + 8, "the command line's -p did not win: %d" % port
        assert "created call-id=cfg1" not in d.logtext()  # notice: info lines are off
        assert d.cmd("Q cfg1 A;1").split()[0] == "60"
        write("info", 30, tos=0)
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "SIGHUP: read %s again: changed timeout, setup-timeout, log-level" % conf in d.logtext(), 3, "the reload",
                   debug=d.logtext)
        wait_until(lambda: "also changes tos, which take a restart" in d.logtext(), 3, "the restart warning")
        d.cmd("U cfg2 %s 4000 A;1" % LO)
        wait_until(lambda: "created call-id=cfg2" in d.logtext(), 3, "an info line after the reload")
        assert int(d.cmd("Q cfg2 A;1").split()[0]) <= 30
        with open(conf, "w") as f:
            f.write("log-level = loud\n")
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: "log-level" in d.logtext() and "nothing changed" in d.logtext(), 3, "the refused reload")
        assert d.cmd("V") == "20040107"
    shutil.rmtree(tmp)


def test_a_bad_config_file_is_refused_naming_it():
    tmp = tempfile.mkdtemp(prefix="arp-conf-")
    conf = os.path.join(tmp, "bad.conf")
    for content, expect in (("no-such-option = 1\n", "unrecognised option 'no-such-option'"),
                            ("timeout = soon\n", "-T/--timeout: 'soon' is not a number"),
                            ("nat = maybe\n", "-n/--nat: 'maybe' in %s is neither yes nor no" % conf)):
        with open(conf, "w") as f:
            f.write(content)
        r = subprocess.run([BINARY, "-c", conf, "-D"], capture_output=True, timeout=10)
        assert r.returncode == 2 and expect in r.stderr.decode(), (content, r.returncode, r.stderr)
    r = subprocess.run([BINARY, "-c", os.path.join(tmp, "missing.conf"), "-D"], capture_output=True, timeout=10)
    assert r.returncode == 2 and b"-c/--config: cannot read" in r.stderr and b"missing.conf" in r.stderr, r.stderr
    shutil.rmtree(tmp)


def prometheus_query(port, expr):
    url = "http://127.0.0.1:%d/api/v1/query?%s" % (port, urllib.parse.urlencode({"query": expr}))
    with urllib.request.urlopen(url, timeout=3) as r:
        data = json.load(r)
    assert data["status"] == "success", data
    return [float(x["value"][1]) for x in data["data"]["result"]]


def test_a_real_prometheus_scrapes_a_two_instance_cluster():
    if not shutil.which("prometheus"):
        raise AssertionError("prometheus is missing: tests/install-deps.sh test installs Debian's prometheus")
    hosts = ["127.0.0.2", "127.0.0.3"]
    sync_port = free_port(socket.SOCK_STREAM)
    mports = [free_port(socket.SOCK_STREAM) for _ in hosts]
    base = free_port(pair=True) // 1000 * 1000
    nodes = []
    for i, h in enumerate(hosts):
        peer = "%s:%d" % (hosts[1 - i], sync_port)
        nodes.append(Daemon("-S", str(sync_port), "-I", h, "-M", peer, "--metrics", "%s:%d" % (h, mports[i]),
                            "--metrics-allow", "127.0.0.0/8", host=h, media=h, control=free_port(),
                            ports=(base + 300 * i, base + 300 * i + 199), start=False, level="info"))
    tmp = tempfile.mkdtemp(prefix="arp-prom-")
    prom = None
    try:
        for n in nodes:
            n.start()
        wait_until(lambda: all("sync: connected to" in n.logtext() for n in nodes), 5, "the instances to connect")
        calls = 3
        peers = []
        for c in range(calls):
            a, b = Peer(hosts[0]), Peer(hosts[0])
            peers += [a, b]
            p, q = answered_call(nodes[0], a, b, "prom-%d" % c)
            for seq in range(4):
                a.send(rtp(seq), (hosts[0], q))
                assert b.recv()[0] is not None
        wait_until(lambda: all(samples(scrape(mports[i], host=h)).get('anyrtpproxy_sessions{state="answered",origin="peer"}')
                               == calls for i, h in enumerate(hosts[1:], 1)), 5, "the peer to hold the calls")
        wport = free_port(socket.SOCK_STREAM)
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n"
                    "  - job_name: anyrtpproxy\n    static_configs:\n      - targets: [%s]\n"
                    % ", ".join("'%s:%d'" % (h, mports[i]) for i, h in enumerate(hosts)))
        log = open(os.path.join(tmp, "prometheus.log"), "w")
        prom = subprocess.Popen(["prometheus", "--config.file=" + os.path.join(tmp, "prometheus.yml"),
                                 "--storage.tsdb.path=" + os.path.join(tmp, "data"),
                                 "--web.listen-address=127.0.0.1:%d" % wport], stdout=log, stderr=subprocess.STDOUT)

        def ready():
            if prom.poll() is not None:
                raise AssertionError("prometheus exited: " + open(log.name).read()[-2000:])
            try:
                return prometheus_query(wport, 'count(up{job="anyrtpproxy"} == 1)') == [2.0]
            except (OSError, AssertionError, ValueError):
                return False

        wait_until(ready, 30, "prometheus to scrape both instances")
        # Cluster totals across instances, as the man page's MONITORING section writes them.
        wait_until(lambda: prometheus_query(wport, 'sum(anyrtpproxy_sessions{origin="local"})') == [float(calls)], 10,
                   "the cluster's calls, counted once")
        assert prometheus_query(wport, "sum(anyrtpproxy_sessions)") == [2.0 * calls]  # each instance holds all
        assert prometheus_query(wport, "sum(anyrtpproxy_packets_relayed_total)") == [4.0 * calls]
        assert prometheus_query(wport, "min(anyrtpproxy_sync_peer_up)") == [1.0]
        for p in peers:
            p.close()
    finally:
        if prom:
            prom.terminate()
            try:
                prom.wait(10)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait()
        for n in nodes:
            try:
                n.stop()
            except Exception:
                print("--- %s ---\n%s" % (n.control[0], n.logtext()[-3000:]))
                raise
        shutil.rmtree(tmp, ignore_errors=True)
