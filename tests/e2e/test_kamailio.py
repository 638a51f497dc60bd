"""End to end: Kamailio (Debian's kamailio, stock rtpproxy module) drives
anyrtpproxy while sipp makes real calls with RTP played from a pcap and the
callee echoes it back. Loopback only."""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from harness import Daemon, free_port, wait_until  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CALLS = 10
PCAP_PACKETS = 236  # /usr/share/sip-tester/g711a.pcap


def need(tool):
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/sbin")
    assert path, "%s is not installed (the README's test command installs it)" % tool
    return path


class Proc:
    def __init__(self, argv, log, cwd=None):
        self.log = open(log, "w+")
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd,
                                  start_new_session=True)

    def stop(self):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.log.close()

    def text(self):
        self.log.flush()
        with open(self.log.name) as f:
            return f.read()


def calls_through(daemon_args=(), media=None, offer="rtpproxy_manage()", answer="rtpproxy_manage()",
                  uac_ip="127.0.0.1", uas_ip="127.0.0.1", ways=2, after=None):
    """CALLS calls from sipp's UAC (media on uac_ip) through Kamailio to sipp's
    echoing UAS (media on uas_ip), anyrtpproxy anchoring the media."""
    kamailio, sipp = need("kamailio"), need("sipp")
    work = tempfile.mkdtemp(prefix="arp-e2e-")
    sip_port, uas_port, uac_port = free_port(), free_port(), free_port()
    uas_media, uac_media = free_port(pair=True), free_port(pair=True)
    base = free_port(pair=True)
    procs = []
    with Daemon(*daemon_args, ports=(base, base + 99), **({"media": media} if media is not None else {})) as d:
        try:
            cfg = open(os.path.join(HERE, "kamailio.cfg.in")).read()
            cfg = cfg.replace("@SIP_PORT@", str(sip_port)).replace("@CONTROL_PORT@", str(d.control_port))
            cfg = cfg.replace("@UAS_PORT@", str(uas_port)).replace("@OFFER@", offer).replace("@ANSWER@", answer)
            cfg_path = os.path.join(work, "kamailio.cfg")
            open(cfg_path, "w").write(cfg)
            check = subprocess.run([kamailio, "-c", "-f", cfg_path], capture_output=True, text=True, timeout=30)
            assert check.returncode == 0, check.stdout + check.stderr
            k = Proc([kamailio, "-f", cfg_path, "-DD", "-E", "-m", "64", "-M", "8", "-Y", work, "-P",
                      os.path.join(work, "kamailio.pid")], os.path.join(work, "kamailio.log"))
            procs.append(k)
            # Kamailio's workers probe the node with V / VF on start
            wait_until(lambda: int(d.cmd("G ncmds_rcvd")) >= 3 or k.p.poll() is not None, 15, "kamailio to probe anyrtpproxy")
            assert k.p.poll() is None, k.text()
            uas = Proc([sipp, "-sn", "uas", "-i", "127.0.0.1", "-p", str(uas_port), "-mi", uas_ip,
                        "-mp", str(uas_media), "-rtp_echo", "-nostdin", "-trace_err"],
                       os.path.join(work, "uas.log"), cwd=work)
            procs.append(uas)
            uac = subprocess.run([sipp, "127.0.0.1:%d" % sip_port, "-sf", os.path.join(HERE, "uac_pcap.xml"),
                                  "-i", "127.0.0.1", "-p", str(uac_port), "-mi", uac_ip, "-mp", str(uac_media),
                                  "-m", str(CALLS), "-r", str(CALLS), "-l", str(CALLS), "-nostdin", "-trace_err",
                                  "-timeout", "60", "-timeout_error"],
                                 capture_output=True, text=True, timeout=90, cwd=work, stdin=subprocess.DEVNULL)
            assert uac.returncode == 0, "sipp UAC: exit %d\n%s\n%s\nkamailio:\n%s\nanyrtpproxy:\n%s" % (
                uac.returncode, uac.stdout[-3000:], uac.stderr[-2000:], k.text()[-3000:], d.logtext()[-2000:])
            assert d.cmd("G nsess_created") == str(CALLS), d.cmd("I")
            relayed = int(d.cmd("G npkts_relayed"))
            # every call's pcap went caller -> callee and came back echoed
            assert relayed >= ways * CALLS * PCAP_PACKETS * 0.95, "only %d packets relayed" % relayed
            if after:
                after(d)
            wait_until(lambda: "active sessions: 0" in d.cmd("I"), 5, "the BYEs to delete every session")
            assert int(d.cmd("G nsess_destroyed")) == CALLS
            assert d.cmd("G nsess_timeout") == "0"
            return d.logtext()
        finally:
            for p in reversed(procs):
                p.stop()
            shutil.rmtree(work, ignore_errors=True)


def test_kamailio_and_sipp_calls_through_anyrtpproxy():
    calls_through()


def test_kamailio_bridges_calls_between_two_addresses_with_ie_and_ei():
    """rtpproxy_manage("ie") on the INVITE, ("ei") on its 200 OK: the caller's
    media stays on 127.0.0.2 (inside), the callee's on 127.0.0.3 (outside).
    With r: the SDP's address is the media's (signalling stays on 127.0.0.1)."""
    log = calls_through(["-i", "127.0.0.2/127.0.0.3"], media="", offer='rtpproxy_manage("ier")',
                        answer='rtpproxy_manage("eir")', uac_ip="127.0.0.2", uas_ip="127.0.0.3")
    assert "latched" in log


def test_kamailio_start_recording_writes_a_pcap_per_call():
    """start_recording() after rtpproxy_manage() on the INVITE: R cid F, the
    caller's direction; every call leaves a pcap of what the caller sent."""
    rec = tempfile.mkdtemp(prefix="arp-e2e-rec-")
    try:
        calls_through(["-r", rec, "--record-pcap"], offer="rtpproxy_manage(); start_recording()")
        names = sorted(os.listdir(rec))
        assert len(names) == CALLS and all(n.endswith(".pcap") for n in names), names
        for n in names:
            data = open(os.path.join(rec, n), "rb").read()
            count, at = 0, 24
            while at + 16 <= len(data):
                incl = struct.unpack("<I", data[at + 8:at + 12])[0]
                at += 16 + incl
                count += 1
            assert count >= PCAP_PACKETS * 0.95, "%s holds %d packets" % (n, count)
    finally:
        shutil.rmtree(rec, ignore_errors=True)


def test_kamailio_stream2uac_plays_a_prompt_to_the_caller():
    """rtpproxy_stream2uac("moh", "-1") in the 200 OK's route: P-1 cid moh
    session F;1 T;1. The caller hears the prompt (PCMA, from its own c list)
    instead of the callee's echo, until the BYE."""
    prompts = tempfile.mkdtemp(prefix="arp-e2e-moh-")
    with open(os.path.join(prompts, "moh.8"), "wb") as f:
        f.write(bytes(range(256)) * 25)  # 40 frames of 20 ms
    mport = free_port(socket.SOCK_STREAM)

    def played(d):
        import urllib.request
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=3).read().decode()
        value = lambda name: float([l for l in text.splitlines() if l.startswith(name + " ") or
                                    l.startswith(name + "{")][0].rsplit(" ", 1)[1])
        sent = value("anyrtpproxy_prompt_packets_sent_total")
        held = value('anyrtpproxy_packets_dropped_total{reason="playback"}')
        # each call lasts about 5 s of sipp's pcap: 250 prompt packets, the echo held back
        assert sent >= CALLS * 100, "only %d prompt packets" % sent
        assert held >= CALLS * PCAP_PACKETS * 0.9, "only %d echoed packets held back" % held

    try:
        calls_through(["--prompts", prompts, "--metrics", "127.0.0.1:%d" % mport],
                      answer='rtpproxy_manage(); rtpproxy_stream2uac("moh", "-1")', ways=1, after=played)
    finally:
        shutil.rmtree(prompts, ignore_errors=True)


def test_kamailio_stop_stream2uac_gives_the_caller_back_the_callees_media():
    """rtpproxy_stream2uac("moh", "-1") then rtpproxy_stop_stream2uac() (S cid
    F;1 T;1) in the 200 OK's route, each time it runs (sipp's UAS may send
    the 200 OK again): the prompt stops and the callee's echo reaches the
    caller, both ways relayed for the whole call."""
    prompts = tempfile.mkdtemp(prefix="arp-e2e-moh-")
    with open(os.path.join(prompts, "moh.8"), "wb") as f:
        f.write(bytes(range(256)) * 25)
    mport = free_port(socket.SOCK_STREAM)

    def stopped(d):
        import urllib.request
        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=3).read().decode()
        counts = {}
        for l in text.splitlines():
            if l.startswith("anyrtpproxy_commands_total{") and 'result="ok"' in l:
                counts[l.split('command="')[1][0]] = int(l.rsplit(" ", 1)[1])
        assert counts.get("P", 0) >= CALLS and counts.get("S") == counts["P"], counts

    try:
        calls_through(["--prompts", prompts, "--metrics", "127.0.0.1:%d" % mport],
                      answer='rtpproxy_manage(); rtpproxy_stream2uac("moh", "-1"); rtpproxy_stop_stream2uac()',
                      ways=2, after=stopped)
    finally:
        shutil.rmtree(prompts, ignore_errors=True)

