"""clonekit.ns.netlink against the kernel, in a network namespace of the test's own (a holder
process made by `unshare -n`): links and their state, an interface moved and renamed into
another namespace in one request, addresses read and put back, errors with the request named."""

from __future__ import annotations

import errno
import os
import subprocess

import pytest

from clonekit.ns.netlink import in_netns
from waiting import wait_for


@pytest.fixture
def netns():
    """An fd of a fresh network namespace (its holder killed afterwards)."""
    holders = []

    def make() -> int:
        proc = subprocess.Popen(["unshare", "-n", "sleep", "600"], stdin=subprocess.DEVNULL)
        holders.append(proc)
        path = f"/proc/{proc.pid}/ns/net"
        wait_for(lambda: os.readlink(path) != os.readlink("/proc/self/ns/net"), what="unshare -n")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        holders.append(fd)
        return fd

    yield make
    for h in holders:
        if isinstance(h, int):
            os.close(h)
        else:
            h.kill()
            h.wait()


def test_a_new_namespace_has_lo_down_and_it_comes_up(netns):
    own = os.readlink("/proc/self/ns/net")
    with in_netns(netns()) as rtnl:
        assert os.readlink("/proc/self/ns/net") == own  # the thread came back
        (lo,) = rtnl.links()
        assert lo.name == "lo" and lo.index == 1 and not lo.up
        rtnl.set_up(lo.index, name="lo")
        assert rtnl.link("lo").up and rtnl.link_at(1).name == "lo"
        assert rtnl.link("nope0") is None and rtnl.link_at(999) is None


def test_refusals_carry_the_errno_and_the_request(netns):
    with in_netns(netns()) as rtnl:
        with pytest.raises(OSError) as info:
            rtnl.set_up(999, name="ghost")
        assert info.value.errno == errno.ENODEV and "set link ghost up" in str(info.value)


def test_move_renames_in_one_request_and_addresses_can_be_put_back(netns):
    host_fd, other_fd = netns(), netns()
    with in_netns(host_fd) as host, in_netns(other_fd) as other:
        # a veth pair in the "host" namespace, made with ip there (the module reads, moves, adds)
        ip = ["nsenter", f"--net=/proc/self/fd/{host_fd}", "ip"]
        subprocess.run([*ip, "link", "add", "ckt-m", "type", "veth", "peer", "name", "ckt-mp"],
                       check=True, pass_fds=(host_fd,))
        subprocess.run([*ip, "addr", "add", "10.88.0.1/24", "dev", "ckt-m"], check=True, pass_fds=(host_fd,))
        link = host.link("ckt-m")
        assert link is not None
        (addr,) = [a for a in host.addresses(link.index) if a.family == 2]
        assert addr.text() == "10.88.0.1/24" and addr.keep_on_move
        host.move(link.index, other_fd, "eth7", "ckt-m")
        assert host.link("ckt-m") is None
        moved = other.link("eth7")
        assert moved is not None and moved.mac == link.mac
        assert other.addresses(moved.index) == []  # a move drops them: the runtime puts them back
        other.add_address(moved.index, addr)
        assert [a.text() for a in other.addresses(moved.index)] == ["10.88.0.1/24"]
        with pytest.raises(OSError) as info:
            other.add_address(moved.index, addr)
        assert info.value.errno == errno.EEXIST
