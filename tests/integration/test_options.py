"""The command line: every bad value exits non-zero with one line naming the
option, before anything is bound; good values start a daemon."""

import os
import socket
import subprocess

import pytest

from harness import BINARY, Daemon, free_port, wait_until


def refused(*args):
    r = subprocess.run([BINARY, "-D"] + list(args), capture_output=True, text=True, timeout=10)
    assert r.returncode != 0, "%s was accepted" % (args,)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_bad_values_name_the_option():
    cases = [
        (["--bogus"], "bogus"),
        (["-p", "40010", "40000"], "-p/--port-range"),
        (["-p", "40000"], "-p/--port-range"),
        (["-p", "40001", "40002"], "-p/--port-range"),  # no even port with its RTCP port
        (["-p", "0", "100"], "-p/--port-range"),
        (["-p", "40000", "70000"], "-p/--port-range"),
        (["-p", "a", "b"], "-p/--port-range"),
        (["-s", "udp:1.2.3.x:22222"], "-s/--control"),
        (["-s", "udp:127.0.0.1:99999"], "-s/--control"),
        (["-s", "stdio:"], "-s/--control"),
        (["-s", "cunix:relative"], "-s/--control"),
        (["-s", "tcp:127.0.0.1:0"], "-s/--control"),
        (["-s", "unix:relative"], "-s/--control"),
        (["-i", "not..an.address"], "-i/--interface"),
        (["-i", "127.0.0.1", "-i", "127.0.0.2"], "-i/--interface"),
        (["-T", "0"], "-T/--timeout"),
        (["-W", "x"], "-W/--setup-timeout"),
        (["--notify", "http://x"], "--notify"),
        (["-n", "-o"], "-n/--nat"),
        (["-S", "70000"], "-S/--sync-port"),
        (["-M", "host-without-port"], "-M/--sync-hosts"),
        (["-d", "loud"], "-d/--log-level"),
        (["--sync-allow", "10.0.0.0/33"], "--sync-allow"),
        (["--sync-allow", "not-a-network"], "--sync-allow"),
        (["--sync-allow", "127.0.0.1,,::1"], "--sync-allow"),
        (["-t", "256"], "-t/--tos"),
        (["-t", "ef"], "-t/--tos"),
        (["-C"], "-C/--chroot"),
        (["-s"], "control"),
        (["stray"], "stray"),
    ]
    for args, name in cases:
        line = refused(*args)
        assert name in line, "%s: %r does not name %s" % (args, line, name)


def test_an_interface_address_this_host_does_not_have_is_refused():
    line = refused("-i", "192.0.2.77")  # TEST-NET-1: never on this host
    assert "option -i/--interface: 192.0.2.77 is not an address of this host" in line, line


def test_root_without_a_user_is_warned_about():
    if os.geteuid() != 0:
        pytest.skip("needs root")
    with Daemon(level="info") as d:
        wait_until(lambda: "running as root: give -u USER" in d.logtext(), 2, "the warning")


def test_taken_control_port_is_a_startup_error():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    line = refused("-s", "127.0.0.1:%d" % port)
    assert "cannot bind control socket 127.0.0.1:%d" % port in line, line
    s.close()


def test_the_harness_picks_again_when_its_control_port_is_taken_first():
    """The race of picking a free port: another process binds it before the
    daemon does. The harness (every test's Daemon) starts it on another."""
    d = Daemon(start=False)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(d.control)
    with d:
        d.start()
        assert d.control_port != taken.getsockname()[1]
        assert d.cmd("V") == "20040107"
    taken.close()


def test_taken_sync_port_is_a_startup_error():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    port = s.getsockname()[1]
    line = refused("-s", "127.0.0.1:%d" % free_port(), "-p", "40000", "40099", "-S", str(port), "-I", "127.0.0.1")
    assert "cannot listen on sync port 127.0.0.1:%d" % port in line, line
    s.close()


def test_help_and_version():
    r = subprocess.run([BINARY, "--help"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and "--port-range" in r.stdout and "--control" in r.stdout
    r = subprocess.run([BINARY, "--version"], capture_output=True, text=True, timeout=10)
    assert r.returncode == 0 and r.stdout.startswith("anyrtpproxy ")


def test_rtpproxy_style_control_specs_work():
    port = free_port()
    with Daemon(extra_control=["127.0.0.1:%d" % port]) as d:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(2)
        s.sendto(b"x V", ("127.0.0.1", port))
        assert s.recv(100) == b"x 20040107\n"


def test_control_port_inside_the_range_is_never_a_media_port():
    base = free_port(pair=True)
    # the control socket sits on the first pair of a two-pair range
    with Daemon(control=base, ports=(base, base + 4)) as d:  # the end port is never allocated
        assert d.cmd("U a 192.0.2.1 4000 A;1").split()[0] == str(base + 2)
        assert d.cmd("U b 192.0.2.1 4000 A;1") == "E72"


def test_bad_relay_address_lists_are_refused_naming_the_option():
    for value, message in (("127.0.0.1,,127.0.0.5", "has an empty address"),
                           ("127.0.0.1,::1", "mixes IPv4 and IPv6"),
                           ("0.0.0.0,127.0.0.1", "lists a wildcard address among others"),
                           ("127.0.0.1,127.0.0.1", "127.0.0.1 is listed twice"),
                           (",".join("127.0.0.%d" % i for i in range(1, 10)), "lists more than 8 addresses")):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "-i", value], capture_output=True, text=True,
                           timeout=10)
        assert r.returncode == 2 and "-i/--interface" in r.stderr and message in r.stderr, (value, r.stderr)
    r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "-i", "127.0.0.1", "-A", "192.0.2.1,192.0.2.2"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "-A/--advertise" in r.stderr and "at position 2" in r.stderr, r.stderr
    for value in ("-1", "soon", "86401"):
        r = subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:1", "--park-idle", value], capture_output=True,
                           text=True, timeout=10)
        assert r.returncode == 2 and "--park-idle" in r.stderr, (value, r.stderr)
