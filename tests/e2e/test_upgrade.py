"""Rolling upgrades and rollbacks against the previous release, built from
this repository's history (harness.PREVIOUS_RELEASE: the last commit that
spoke sync wire version 6 only). A loopback cluster of three is upgraded one
instance at a time and one instance rolled back; at every step calls are
created on every instance and each one is mirrored on the others, whatever
version created it; a killed instance's calls stay on its peers of the
other version; media flows through instances of either version."""

import re
import socket

import pytest

from harness import BINARY, header, previous_release, relays_a_call, wait_until

@pytest.fixture(scope="module")
def previous():
    return previous_release()


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
        assert all(relays_a_call(d) for d in c.nodes)
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
    assert all(relays_a_call(d) for d in c.nodes)


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


@pytest.mark.parametrize("dies", ["previous", "this"])
def test_a_killed_instance_s_calls_resume_on_a_peer_of_the_other_version(bed, previous, dies):
    """The anycast bed with R1 of one release and R2, R3 of the other: R1
    carries 20 calls, dies (SIGKILL), the route moves to R2, every call
    resumes both ways (test_failover.py's checks)."""
    import test_failover
    one, rest = (previous, BINARY) if dies == "previous" else (BINARY, previous)
    test_failover.survive_the_death(bed, ["--kernel-offload=off"], binary_of=lambda i: one if i == 1 else rest)

