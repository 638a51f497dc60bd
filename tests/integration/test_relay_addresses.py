"""Several relay addresses per instance (-i A1,A2): a new leg goes to the
address with the most free ports, a leg travels between instances as its
address's position, and lists compose with bridge mode."""

import socket

from harness import HOSTS, Daemon, listing, Peer, free_port, rtp, wait_until


def test_a_new_leg_goes_to_the_relay_address_with_the_most_free_ports():
    """-i A1,A2: each address has its own copy of the -p range; legs are
    spread over them, replies name the address, media flows on both."""
    base = free_port(pair=True)
    caller, callee = Peer(), Peer()
    with Daemon(media="127.0.0.1,127.0.0.5", ports=(base, base + 8)) as d:  # four pairs on each address
        replies = [d.cmd("U m%d 127.0.0.1 %d A;1" % (i, caller.port)) for i in range(8)]
        addrs = [r.split()[1] for r in replies]
        assert sorted(addrs) == ["127.0.0.1"] * 4 + ["127.0.0.5"] * 4, replies
        assert all(base <= int(r.split()[0]) < base + 8 for r in replies), replies
        assert d.cmd("U m8 127.0.0.1 4000 A;1").startswith("E"), "both copies of the range are used up"
        assert d.cmd("D m0 A") == "0"
        p, p_addr = replies[1].split()
        r = d.cmd("L m1 127.0.0.1 %d A;1 B;1" % callee.port).split()
        assert r[1] == addrs[0], (r, addrs[0])  # the only free pair: where m0's was
        caller.send(rtp(1, ssrc=1), (r[1], int(r[0])))
        data, src = callee.recv(2)
        assert data == rtp(1, ssrc=1) and src == (p_addr, int(p)), (data, src)
        callee.send(rtp(2, ssrc=2), (p_addr, int(p)))
        assert caller.recv(2) == (rtp(2, ssrc=2), (r[1], int(r[0])))


def test_two_relay_addresses_per_instance_sync_and_relay_on_both(cluster):
    """Two instances with two relay addresses each: a leg on a peer's second
    address is held on this instance's second address, shown as #2 in the
    listing, and relayed there; overlapping ranges are still refused."""
    base = free_port(pair=True) // 1000 * 1000
    ranges = [(base + 300 * i, base + 300 * i + 199) for i in range(3)]
    caller, callee = Peer(), Peer()
    second = {h: "127.0.0.1%s" % h[-1] for h in HOSTS}  # 127.0.0.12, .13, .14
    with cluster(ranges=ranges, needs_catch_all=True, media_of=lambda h: "%s,%s" % (h, second[h])) as c:
        a, b, _ = c.nodes
        u = a.cmd("U t1 127.0.0.1 %d A;1" % caller.port).split()
        l = a.cmd("L t1 127.0.0.1 %d A;1 B;1" % callee.port).split()
        assert {u[1], l[1]} == {HOSTS[0], second[HOSTS[0]]}, (u, l)  # the second leg went to the emptier address
        p, q = int(u[0]), int(l[0])
        on_b = lambda addr: second[HOSTS[1]] if addr == second[HOSTS[0]] else HOSTS[1]
        wait_until(lambda: any("#2" in line for line in listing(HOSTS[1], c.sync_port)), 5, "B to list the leg on #2")
        caller.send(rtp(1, ssrc=1), (on_b(l[1]), q))
        data, src = callee.recv(2)
        assert data == rtp(1, ssrc=1) and src == (on_b(u[1]), p), (data, src)
        callee.send(rtp(2, ssrc=2), (on_b(u[1]), p))
        assert caller.recv(2) == (rtp(2, ssrc=2), (on_b(l[1]), q))
    sync_port = free_port(socket.SOCK_STREAM)
    one = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], sync_port), host=HOSTS[0],
                 media="%s,%s" % (HOSTS[0], second[HOSTS[0]]), ports=(base, base + 99), level="info")
    two = Daemon("-S", str(sync_port), "-I", HOSTS[1], "-M", "%s:%d" % (HOSTS[0], sync_port), host=HOSTS[1],
                 media="%s,%s" % (HOSTS[1], second[HOSTS[1]]), ports=(base + 50, base + 149), level="info")
    wait_until(lambda: "overlap ours" in one.logtext() and "overlap ours" in two.logtext(), 3, "both to refuse")


def test_instances_listing_the_same_addresses_in_another_order_are_told():
    """A leg travels as its address's position in -i: an instance that lists
    the cluster's addresses in another order would bind a failed-over leg on
    the other address. Both ends say so when they meet; the same order, or
    addresses of their own, say nothing."""
    base = free_port(pair=True) // 1000 * 1000
    shared = ["127.0.0.20", "127.0.0.21"]

    def pair(second_media):
        sync_port = free_port(socket.SOCK_STREAM)
        one = Daemon("-S", str(sync_port), "-I", HOSTS[0], "-M", "%s:%d" % (HOSTS[1], sync_port), host=HOSTS[0],
                     media=",".join(shared), ports=(base, base + 99), level="info")
        two = Daemon("-S", str(sync_port), "-I", HOSTS[1], "-M", "%s:%d" % (HOSTS[0], sync_port), host=HOSTS[1],
                     media=second_media, ports=(base + 200, base + 299), level="info")
        return one, two

    one, two = pair(",".join(reversed(shared)))
    told = lambda d, own, mine, theirs: ("lists %s as relay address %d of its IPv4 list, this instance as relay "
                                         "address %d of its IPv4 list" % (own[mine - 1], theirs, mine)) in d.logtext()
    back = list(reversed(shared))
    wait_until(lambda: told(one, shared, 1, 2) and told(one, shared, 2, 1) and told(two, back, 1, 2) and
               told(two, back, 2, 1), 5,
               "both to say the order differs", debug=lambda: (one.logtext()[-600:], two.logtext()[-600:]))
    one.stop()
    two.stop()
    for media in (",".join(shared), "%s,127.0.0.1%s" % (HOSTS[1], HOSTS[1][-1])):
        one, two = pair(media)
        # the order is checked where the hello is applied: its error would be logged with "is instance"
        wait_until(lambda: all(d.logtext().count("is instance") >= 1 for d in (one, two)), 5, "the hellos")
        assert not any("relay address 1 of its" in d.logtext() for d in (one, two)), media
        one.stop()
        two.stop()


def test_address_lists_compose_with_bridge_mode():
    """-i I1,I2/E1,E2: each side has its list; a leg goes to its side's
    address with the most free ports."""
    base = free_port(pair=True)
    with Daemon(media="127.0.0.1,127.0.0.8/127.0.0.6,127.0.0.7", ports=(base, base + 8)) as d:
        external = [d.cmd("UIE e%d 127.0.0.1 4000 A;1" % i).split()[1] for i in range(8)]
        internal = [d.cmd("U i%d 127.0.0.1 4000 A;1" % i).split()[1] for i in range(8)]
        assert sorted(external) == ["127.0.0.6"] * 4 + ["127.0.0.7"] * 4, external
        assert sorted(internal) == ["127.0.0.1"] * 4 + ["127.0.0.8"] * 4, internal
