"""Rolling upgrades and rollbacks against the previous release, built from
this repository's history (PREVIOUS_RELEASE below: the last commit that
spoke sync wire version 6). A loopback cluster of three is upgraded one
instance at a time and one instance rolled back; at every step calls are
created on every instance and each one is mirrored on the others, whatever
version created it; a killed instance's calls stay on its peers of the
other version; media flows through instances of either version."""

import os
import re
import shutil
import socket
import subprocess

import pytest

from harness import BINARY, ROOT, Peer, header, rtp, wait_until

# The previous release: what the cluster is upgraded from and rolled back to.
PREVIOUS_RELEASE = "49f4ede"


@pytest.fixture(scope="module")
def previous():
    """The previous release's daemon, built once into build/previous/COMMIT."""
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


def active(d):
    return int(re.search(r"active sessions: (\d+)", d.cmd("I")).group(1))


def create(c, step, per=5):
    """`per` calls created on every running instance (U and L); their names."""
    names = []
    for i, d in enumerate(c.nodes):
        for k in range(per):
            name = "%s-%d-%d" % (step, i, k)
            d.cmd("U %s 192.0.2.1 %d A;1" % (name, 4000 + 2 * k))
            d.cmd("L %s 192.0.2.2 %d A;1 B;1" % (name, 6000 + 2 * k))
            names.append(name)
    return names


def mirrored(c, names):
    """Every call known (Q answers) on every instance."""
    return all(not d.cmd("Q %s A;1 B;1" % n).startswith("E") for d in c.nodes for n in names)


def relays(d):
    """A call through `d`: a packet each way arrives."""
    a, b = Peer(d.control[0]), Peer(d.control[0])
    try:
        name = "media-%d-%d" % (a.port, b.port)
        p = d.cmd("U %s %s %d A;1" % (name, d.control[0], a.port)).split()
        q = d.cmd("L %s %s %d A;1 B;1" % (name, d.control[0], b.port)).split()
        a.send(rtp(1, 0x11), (q[1], int(q[0])))  # the caller sends to the answer's port
        b.send(rtp(1, 0x22), (p[1], int(p[0])))  # the callee to the offer's
        return b.recv(2)[0] == rtp(1, 0x11) and a.recv(2)[0] == rtp(1, 0x22)
    finally:
        a.close()
        b.close()


def test_a_cluster_is_upgraded_and_rolled_back_one_instance_at_a_time(cluster, previous):
    c = cluster(n=3, binary_of=lambda i: previous)
    names = create(c, "old")
    wait_until(lambda: mirrored(c, names), 5, "every call of the old cluster everywhere")
    for i in range(3):  # the upgrade, one instance at a time
        c.replace(i, BINARY)
        names += create(c, "up%d" % i)
        wait_until(lambda: mirrored(c, names), 5, "every call everywhere after upgrading instance %d" % i)
        total = active(c.nodes[0])
        assert all(active(d) == total for d in c.nodes), [active(d) for d in c.nodes]
        assert all(relays(d) for d in c.nodes)
        if i == 0:  # one new, two old
            new = c.nodes[0]
            assert "speaks sync wire version 6" in new.logtext(), new.logtext()[-2000:]
            peers = [l for l in header(new.control[0], c.sync_port) if l.startswith("# peer: ")]
            assert len(peers) == 2 and all(l.endswith(", wire version 6") for l in peers), peers
            # an old instance killed: its calls stay on the new one, and come back to it when it returns
            c.nodes[1].kill()
            assert all(not new.cmd("Q %s A;1 B;1" % n).startswith("E") for n in names if n.startswith("old-1-"))
            c.replace(1, previous)
            wait_until(lambda: mirrored(c, names), 5, "every call after the old instance's restart")
    wait_until(lambda: "every connected peer speaks wire version 7" in c.nodes[0].logtext(), 5,
               "the cluster on version 7", debug=lambda: c.nodes[0].logtext()[-1500:])
    c.replace(2, previous)  # the rollback of one instance
    names += create(c, "back")
    wait_until(lambda: mirrored(c, names), 5, "every call everywhere after the rollback")
    assert len(set(active(d) for d in c.nodes)) == 1
    assert all(relays(d) for d in c.nodes)


def test_a_peer_below_the_previous_release_is_refused_with_a_reason(cluster):
    c = cluster(n=2)
    d = c.nodes[0]
    for line, why in ((b"P 5 old:1\n", "speaks sync wire version 5"), (b"P old:1\n", "names no sync wire version")):
        s = socket.socket()  # from a peer's address: the other instance's
        s.bind((c.nodes[1].control[0], 0))
        s.settimeout(2)
        s.connect((d.control[0], c.sync_port))
        s.sendall(line)
        got = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            got += chunk
        s.close()
        assert got.startswith(b"# refused: ") and why.encode() in got, got
    # logged once a minute per address: the first cause
    wait_until(lambda: "speaks sync wire version 5" in d.logtext(), 2, "the refusal in the log")
