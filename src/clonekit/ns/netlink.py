"""A small rtnetlink client: the few link and address requests a container runtime makes.

Enough for the runtime-spec's ``linux.netDevices`` (move a host interface into the container's
network namespace under a new name, keep its permanent global addresses, bring it up) and for
the loopback of a new network namespace (``lo`` up, as runc does).  One NETLINK_ROUTE socket per
:class:`Rtnl`, bound to the network namespace it was made in; every request waits for the
kernel's answer, and a refusal is an ``OSError`` with the kernel's errno and the request named.

Built on ``_socket`` (``socket`` would import enum: the container init imports this module).
"""

from __future__ import annotations

import os
import struct
from _socket import AF_NETLINK, SOCK_CLOEXEC, SOCK_RAW
from _socket import socket as _Socket

from .._record import record

__all__ = ["IFF_UP", "Address", "Link", "Rtnl", "in_netns"]

NETLINK_ROUTE = 0
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
RTM_NEWLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR = 16, 18, 20, 22
IFLA_ADDRESS, IFLA_IFNAME, IFLA_NET_NS_FD = 1, 3, 28
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST, IFA_FLAGS = 1, 2, 4, 8
IFF_UP = 0x1
IFA_F_PERMANENT = 0x80
RT_SCOPE_UNIVERSE = 0
AF_UNSPEC = 0
CLONE_NEWNET = 0x40000000

_NLMSG = struct.Struct("=IHHII")      # len, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")    # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")     # family, prefixlen, flags, scope, index
_RTA = struct.Struct("=HH")           # len, type


@record(frozen=True)
class Link:
    index: int
    name: str
    flags: int
    mac: bytes = b""

    @property
    def up(self) -> bool:
        return bool(self.flags & IFF_UP)


@record(frozen=True)
class Address:
    family: int                # AF_INET / AF_INET6
    prefixlen: int
    flags: int                 # IFA_F_* (the 32-bit IFA_FLAGS when the kernel sends it)
    scope: int
    index: int
    attrs: tuple[tuple[int, bytes], ...] = ()   # IFA_LOCAL, IFA_ADDRESS, IFA_BROADCAST as sent

    @property
    def keep_on_move(self) -> bool:
        """What the runtime-spec says a moved device keeps: permanent addresses of global scope."""
        return bool(self.flags & IFA_F_PERMANENT) and self.scope == RT_SCOPE_UNIVERSE

    def text(self) -> str:
        raw = dict(self.attrs).get(IFA_LOCAL) or dict(self.attrs).get(IFA_ADDRESS, b"")
        if self.family == 2 and len(raw) == 4:
            return ".".join(str(b) for b in raw) + f"/{self.prefixlen}"
        return raw.hex(":", 2) + f"/{self.prefixlen}"


def _attr(kind: int, data: bytes) -> bytes:
    size = _RTA.size + len(data)
    return _RTA.pack(size, kind) + data + b"\0" * (-size & 3)


def _attrs(data: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos + _RTA.size <= len(data):
        size, kind = _RTA.unpack_from(data, pos)
        if size < _RTA.size:
            break
        out.append((kind & 0x3FFF, data[pos + _RTA.size:pos + size]))
        pos += (size + 3) & ~3
    return out


def _ifname(name: str) -> bytes:
    return _attr(IFLA_IFNAME, name.encode() + b"\0")


class Rtnl:
    """One NETLINK_ROUTE socket in the calling thread's network namespace (use :func:`in_netns`
    for another's)."""

    def __init__(self, sock: _Socket | None = None) -> None:
        self.sock = sock if sock is not None else _Socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests -----------------------------------------------------------------------------
    def _request(self, kind: int, flags: int, body: bytes, what: str) -> list[tuple[int, bytes]]:
        """Send one request; the answers' (type, payload) until the ACK or the dump's end."""
        self.seq += 1
        seq = self.seq
        msg = body
        self.sock.send(_NLMSG.pack(_NLMSG.size + len(msg), kind, flags | NLM_F_REQUEST, seq, 0) + msg)
        out: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            if not data:
                return out
            pos = 0
            while pos + _NLMSG.size <= len(data):
                size, mtype, _mflags, mseq, _pid = _NLMSG.unpack_from(data, pos)
                payload = data[pos + _NLMSG.size:pos + size]
                pos += (size + 3) & ~3
                if mseq != seq:
                    continue
                if mtype == NLMSG_ERROR:
                    err = -struct.unpack_from("=i", payload)[0]
                    if err:
                        raise OSError(err, f"{what}: {os.strerror(err)}")
                    return out
                if mtype == NLMSG_DONE:
                    return out
                out.append((mtype, payload))
                if not flags & NLM_F_DUMP and not flags & NLM_F_ACK:
                    return out

    def links(self) -> list[Link]:
        answers = self._request(RTM_GETLINK, NLM_F_DUMP, _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0), "list links")
        return [_link(p) for t, p in answers if t == RTM_NEWLINK]

    def link(self, name: str) -> Link | None:
        """The link called ``name`` here; None when there is none."""
        try:
            answers = self._request(RTM_GETLINK, 0, _IFINFO.pack(AF_UNSPEC, 0, 0, 0, 0) + _ifname(name),
                                    f"find link {name}")
        except OSError as exc:
            if exc.errno in (19, 2):  # ENODEV, ENOENT
                return None
            raise
        return next((_link(p) for t, p in answers if t == RTM_NEWLINK), None)

    def link_at(self, index: int) -> Link | None:
        try:
            answers = self._request(RTM_GETLINK, 0, _IFINFO.pack(AF_UNSPEC, 0, index, 0, 0),
                                    f"find link {index}")
        except OSError as exc:
            if exc.errno in (19, 2):
                return None
            raise
        return next((_link(p) for t, p in answers if t == RTM_NEWLINK), None)

    def set_up(self, index: int, up: bool = True, name: str = "") -> None:
        self._request(RTM_NEWLINK, NLM_F_ACK, _IFINFO.pack(AF_UNSPEC, 0, index, IFF_UP if up else 0, IFF_UP),
                      f"set link {name or index} {'up' if up else 'down'}")

    def move(self, index: int, netns_fd: int, new_name: str, name: str = "") -> None:
        """Move link ``index`` into the network namespace of ``netns_fd``, renamed in the same
        request (so it never exists there under its old name)."""
        body = (_IFINFO.pack(AF_UNSPEC, 0, index, 0, 0) + _attr(IFLA_NET_NS_FD, struct.pack("=I", netns_fd))
                + _ifname(new_name))
        self._request(RTM_NEWLINK, NLM_F_ACK, body, f"move link {name or index} as {new_name}")

    def addresses(self, index: int) -> list[Address]:
        answers = self._request(RTM_GETADDR, NLM_F_DUMP, _IFADDR.pack(AF_UNSPEC, 0, 0, 0, 0),
                                "list addresses")
        return [a for t, p in answers if t == RTM_NEWADDR and (a := _address(p)).index == index]

    def add_address(self, index: int, addr: Address) -> None:
        body = _IFADDR.pack(addr.family, addr.prefixlen, addr.flags & 0xFF, addr.scope, index)
        for kind, data in addr.attrs:
            body += _attr(kind, data)
        self._request(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, body, f"add address {addr.text()}")


def _link(payload: bytes) -> Link:
    _family, _type, index, flags, _change = _IFINFO.unpack_from(payload)
    found = dict(_attrs(payload[_IFINFO.size:]))
    return Link(index=index, name=found.get(IFLA_IFNAME, b"").rstrip(b"\0").decode(errors="replace"),
                flags=flags, mac=found.get(IFLA_ADDRESS, b""))


def _address(payload: bytes) -> Address:
    family, prefixlen, flags, scope, index = _IFADDR.unpack_from(payload)
    attrs = _attrs(payload[_IFADDR.size:])
    for kind, data in attrs:
        if kind == IFA_FLAGS and len(data) == 4:
            flags = struct.unpack("=I", data)[0]
    kept = tuple((k, d) for k, d in attrs if k in (IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST))
    return Address(family=family, prefixlen=prefixlen, flags=flags, scope=scope, index=index, attrs=kept)


def in_netns(netns_fd: int) -> Rtnl:
    """An :class:`Rtnl` whose socket lives in the network namespace of ``netns_fd``: the thread
    enters it, makes the socket (a socket stays in the namespace it was made in) and returns."""
    from .. import _native

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _native.setns(netns_fd, CLONE_NEWNET)
        try:
            sock = _Socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)
        finally:
            _native.setns(own, CLONE_NEWNET)
    finally:
        os.close(own)
    return Rtnl(sock)
