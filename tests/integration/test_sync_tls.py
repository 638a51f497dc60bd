"""Sync over mutual TLS: a cluster CA made with the openssl command (as the man
page shows), instances that sync only with certificates it signed, and peers
without one that get nothing and can feed nothing."""

import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading

import pytest

from harness import BINARY, Daemon, free_port, wait_until

HOSTS = ["127.0.0.2", "127.0.0.3", "127.0.0.5"]


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True, capture_output=True, timeout=30)


def make_ca(where, name):
    openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + "-ca.key", "-out", name + "-ca.pem", "-days", "2", "-subj", "/CN=" + name + " CA", cwd=where)


def make_cert(where, ca, name):
    openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
            "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + name, cwd=where)
    openssl("x509", "-req", "-in", name + ".csr", "-CA", ca + "-ca.pem", "-CAkey", ca + "-ca.key",
            "-CAcreateserial", "-out", name + ".pem", "-days", "2", cwd=where)


class Pki:
    """A cluster CA with certificates for relay-a and relay-b, and a rogue CA
    with a certificate of its own."""

    def __init__(self):
        if not shutil.which("openssl"):
            pytest.skip("no openssl command (tests/install-deps.sh test installs it)")
        self.dir = tempfile.mkdtemp(prefix="arp-pki-")
        make_ca(self.dir, "cluster")
        make_ca(self.dir, "rogue")
        for n in ("relay-a", "relay-b"):
            make_cert(self.dir, "cluster", n)
        make_cert(self.dir, "rogue", "intruder")

    def path(self, name):
        return os.path.join(self.dir, name)

    def args(self, name):
        return ["--sync-tls-cert", self.path(name + ".pem"), "--sync-tls-key", self.path(name + ".key"),
                "--sync-tls-ca", self.path("cluster-ca.pem")]


def pair(pki, sync_port, b_name="relay-b"):
    base = free_port(pair=True) // 1000 * 1000
    a = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], sync_port), *pki.args("relay-a"),
               host=HOSTS[0], media=HOSTS[0], ports=(base, base + 199), control=free_port(), level="info")
    b = Daemon("-S", str(sync_port), "-I", HOSTS[1], "-M", "%s:%d" % (HOSTS[0], sync_port), *pki.args(b_name),
               host=HOSTS[1], media=HOSTS[1], ports=(base + 300, base + 499), control=free_port(), level="info")
    return a, b


def test_instances_sync_over_tls_and_operators_still_read_plain_text():
    pki = Pki()
    sync_port = free_port(socket.SOCK_STREAM)
    a, b = pair(pki, sync_port)
    with a, b:
        wait_until(lambda: "connected to %s:%d (TLS)" % (HOSTS[1], sync_port) in a.logtext() and
                   "connected to %s:%d (TLS)" % (HOSTS[0], sync_port) in b.logtext(), 5, "TLS connections both ways")
        a.cmd("U tls-call 192.0.2.1 4000 A;1")
        wait_until(lambda: b.cmd("Q tls-call A;1") != "E50", 3, "the call to reach B over TLS")
        assert "unauthenticated" not in a.logtext()
        s = socket.create_connection((HOSTS[0], sync_port), timeout=2)  # from 127.0.0.1: an operator
        got = b""
        while b"# end of listing" not in got:
            got += s.recv(65536)
        s.close()
        assert b"S call-id=tls-call" in got


def tls_client(certificate, host, port, source):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.load_cert_chain(certificate + ".pem", certificate + ".key")
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind((source, 0))
    raw.settimeout(3)
    raw.connect((host, port))
    return ctx.wrap_socket(raw)


def test_a_peer_without_a_certificate_of_the_cluster_gets_and_feeds_nothing():
    pki = Pki()
    sync_port = free_port(socket.SOCK_STREAM)
    rogue_port = free_port(socket.SOCK_STREAM)
    # A rogue sync server (a certificate of another CA) that A is told to sync from.
    srv_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    srv_ctx.load_cert_chain(pki.path("intruder.pem"), pki.path("intruder.key"))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOSTS[2], rogue_port))
    listener.listen(4)
    listener.settimeout(5)
    served = []

    def rogue_server():
        try:
            conn, _ = listener.accept()
            tls = srv_ctx.wrap_socket(conn, server_side=True)
            tls.sendall(b"F 2 hello 20 x\n8 evil:1 1 2 0\n\n")  # whatever it says, it must not be believed
            served.append(True)
        except (OSError, ssl.SSLError):
            pass

    t = threading.Thread(target=rogue_server, daemon=True)
    t.start()
    a = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d,%s:%d" % (HOSTS[1], sync_port, HOSTS[2], rogue_port),
               *pki.args("relay-a"), host=HOSTS[0], media=HOSTS[0], level="info")
    with a:
        a.cmd("U secret 192.0.2.1 4000 A;1")
        wait_until(lambda: "%s:%d: failed the TLS handshake" % (HOSTS[2], rogue_port) in a.logtext(), 5,
                   "A to refuse the rogue server's certificate")
        assert "evil:1" not in a.logtext(), "nothing the rogue server said was taken"
        # A rogue client from a peer's address: the handshake fails, no frame leaves A.
        got = b""
        try:
            c = tls_client(pki.path("intruder"), HOSTS[0], sync_port, HOSTS[1])
            c.sendall(b"P 2 evil:1\n")
            while True:
                chunk = c.recv(65536)
                if not chunk:
                    break
                got += chunk
        except (ssl.SSLError, OSError):
            pass
        assert b"secret" not in got and b" hello " not in got and b" upsert " not in got, got[:200]
        wait_until(lambda: "refused a connection from %s: failed the TLS handshake" % HOSTS[1] in a.logtext(), 3,
                   "A to log the refused handshake")
        # A plain peer hello where TLS is required: refused, nothing written.
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((HOSTS[1], 0))
        s.settimeout(3)
        s.connect((HOSTS[0], sync_port))
        s.sendall(b"P 2 plain:1\n")
        try:
            assert s.recv(100) == b""
        except ConnectionResetError:
            pass
        s.close()
    listener.close()


def test_tls_options_are_checked_at_start():
    pki = Pki()

    def start(*args):
        return subprocess.run([BINARY, "-D", "-s", "udp:127.0.0.1:%d" % free_port(), "-S", str(free_port(socket.SOCK_STREAM)),
                               "-I", "127.0.0.1"] + list(args), capture_output=True, text=True, timeout=10)

    r = start("--sync-tls-cert", pki.path("relay-a.pem"), "--sync-tls-key", pki.path("relay-a.key"))
    assert r.returncode == 2 and "--sync-tls-ca" in r.stderr, r.stderr
    r = start(*[x.replace("relay-a.pem", "missing.pem") for x in pki.args("relay-a")])
    assert r.returncode == 1 and "--sync-tls-cert" in r.stderr and "missing.pem" in r.stderr, r.stderr
    r = start("--sync-tls-cert", pki.path("relay-a.pem"), "--sync-tls-key", pki.path("relay-b.key"),
              "--sync-tls-ca", pki.path("cluster-ca.pem"))
    assert r.returncode == 1 and "--sync-tls-key" in r.stderr and "relay-b.key" in r.stderr, r.stderr
    with Daemon("-S", str(free_port(socket.SOCK_STREAM)), level="info") as d:
        assert "sync is unauthenticated" in d.logtext()

