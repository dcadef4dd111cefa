"""``linux.netDevices`` (runtime-spec 1.2): host network interfaces moved into the container.

For each entry the runtime, in its own network namespace, takes the interface down, notes its
permanent addresses of global scope, and moves it into the container's network namespace under
its new name in one RTM_NEWLINK (so the old name never appears there); inside, it puts those
addresses back (a move drops them) and brings the interface up -- what the spec asks and runc
1.3 does.  Names are checked as the kernel checks them (dev_valid_name); a new name may be a
template like ``eth%d`` that the kernel completes.

Nothing is moved back at ``delete``: the spec forbids it (the namespace's owner manages the
interface); when the namespace dies the kernel returns physical interfaces to the initial
namespace and destroys virtual ones.  Only a ``create`` that fails midway puts back what it
moved, under the original names, before its init (and so the namespace) goes.
"""

from __future__ import annotations

import errno
import os

from .._jsonc import dumps
from .._record import record
from .jsonfields import SpecError, check_fields, get, key_path, obj, string

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..ns.netlink import Link, Rtnl
    from .plan import Plan

__all__ = ["MovedDevice", "NetDevice", "check_plan", "move_all", "move_back", "parse_net_devices"]

IFNAMSIZ = 16
NET_DEVICE_KNOWN = frozenset({"name"})


@record(frozen=True)
class NetDevice:
    host_name: str      # the interface in the runtime's network namespace
    name: str           # its name in the container (may be a template: "eth%d")


@record(frozen=True)
class MovedDevice:
    host_name: str
    name: str           # the name the kernel gave it in the container
    index: int          # its ifindex there


def name_problem(name: str, *, template: bool) -> str | None:
    """Why the kernel would refuse ``name`` as an interface name (dev_valid_name), or None."""
    if not name:
        return "is empty"
    if len(name.encode()) >= IFNAMSIZ:
        return f"is {len(name.encode())} bytes long: interface names have at most {IFNAMSIZ - 1}"
    if name in (".", ".."):
        return "is . or .., which the kernel refuses as an interface name"
    bad = next((c for c in name if c in "/:" or c.isspace()), None)
    if bad is not None:
        return f"contains {bad!r}: the kernel refuses '/', ':' and white space in interface names"
    if "%" in name:
        if not template:
            return "contains '%': only the name in the container may be a template (like eth%d)"
        if name.count("%") != 1 or "%d" not in name:
            return "is a template with something other than one %d: the kernel fills in one %d"
    return None


def parse_net_devices(value: object) -> tuple[NetDevice, ...]:
    path = "$.linux.netDevices"
    doc = obj(value, path)
    out: list[NetDevice] = []
    seen: dict[str, str] = {}
    for host_name, entry in doc.items():
        p = key_path(path, host_name)
        why = name_problem(host_name, template=False)
        if why:
            raise SpecError(p, f"the host interface name {dumps(host_name)} {why}")
        item = obj(entry, p)
        check_fields(item, p, NET_DEVICE_KNOWN, what="a network device")
        name = host_name
        if get(item, "name") is not None:
            name = string(item["name"], f"{p}.name") or host_name
        why = name_problem(name, template=True)
        if why:
            raise SpecError(f"{p}.name", f"{dumps(name)} {why}")
        if "%" not in name and name in seen:
            raise SpecError(f"{p}.name", f"{dumps(name)} is also the container name of "
                                         f"{dumps(seen[name])}: two interfaces cannot share a name in "
                                         "one namespace; rename one")
        seen[name] = host_name
        out.append(NetDevice(host_name=host_name, name=name))
    return tuple(out)


def check_plan(plan: Plan, rootless: bool) -> None:
    """netDevices need a network namespace of the container's, and a runtime that may move
    interfaces out of its own (CAP_NET_ADMIN there)."""
    from .spec import same_file  # spec calls this from its cross check: loaded by then

    path = "$.linux.netDevices"
    net = plan.namespace("network")
    if net is None:
        raise SpecError(path, "needs a network namespace for the container (linux.namespaces "
                              "{\"type\": \"network\"}): without one the interfaces would stay where "
                              "they are; add it")
    if net.path is not None and same_file(net.path, "/proc/self/ns/net"):
        raise SpecError(path, f"the container joins the runtime's own network namespace ({net.path}): "
                              "the interfaces are there already; give the container a network "
                              "namespace of its own")
    if rootless:
        raise SpecError(path, "moving host interfaces needs CAP_NET_ADMIN in the host's network "
                              "namespace, which a rootless runtime does not have; remove netDevices "
                              "or run as root")


def move_all(devices: tuple[NetDevice, ...], netns_fd: int, moved: list[MovedDevice]) -> None:
    """Move each device into the namespace of ``netns_fd``; ``moved`` collects what was moved
    (the caller puts it back if ``create`` fails later)."""
    from ..ns.netlink import Rtnl, in_netns

    with Rtnl() as host, in_netns(netns_fd) as inside:
        for dev in devices:
            link = host.link(dev.host_name)
            if link is None:
                raise OSError(errno.ENODEV, f"linux.netDevices: there is no network interface "
                                            f"{dev.host_name!r} in the runtime's network namespace "
                                            "to move into the container; create it first or fix the name")
            if "%" not in dev.name and inside.link(dev.name) is not None:
                raise OSError(errno.EEXIST, f"linux.netDevices[{dev.host_name!r}]: the container's "
                                            f"network namespace has an interface {dev.name!r} already; "
                                            "pick another name (or a template like eth%d)")
            keep = [a for a in host.addresses(link.index) if a.keep_on_move]
            try:
                host.set_up(link.index, False, dev.host_name)
                host.move(link.index, netns_fd, dev.name, dev.host_name)
            except OSError as exc:
                why = _move_refusal(exc)
                raise OSError(exc.errno, f"linux.netDevices[{dev.host_name!r}]: {why}") from None
            there = _find_moved(inside, link.index, link.mac, dev.name)
            moved.append(MovedDevice(host_name=dev.host_name, name=there.name, index=there.index))
            for addr in keep:
                try:
                    inside.add_address(there.index, addr)
                except OSError as exc:
                    if exc.errno != errno.EEXIST:
                        where = f"linux.netDevices[{dev.host_name!r}]"
                        raise OSError(exc.errno, f"{where}: {exc.strerror}") from None
            inside.set_up(there.index, True, there.name)


def move_back(moved: list[MovedDevice], netns_fd: int) -> None:
    """Best effort, for a failed ``create``: the moved interfaces back to the runtime's network
    namespace under their original names (down, as moving leaves them)."""
    from ..ns.netlink import in_netns

    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        with in_netns(netns_fd) as inside:
            for dev in reversed(moved):
                try:
                    inside.move(dev.index, own, dev.host_name, dev.name)
                except OSError:
                    continue
    except OSError:
        pass
    finally:
        os.close(own)


def _find_moved(inside: Rtnl, index: int, mac: bytes, name: str) -> Link:
    """The moved link inside: it keeps its ifindex unless that one is taken there."""
    link = inside.link_at(index)
    if link is not None and link.mac == mac:
        return link
    candidates = [lk for lk in inside.links() if lk.mac == mac and
                              (lk.name == name or "%" in name)]
    if not candidates:
        raise OSError(errno.ENODEV, f"linux.netDevices: {name!r} was moved but is not found in the "
                                    "container's network namespace")
    return candidates[0]


def _move_refusal(exc: OSError) -> str:
    return {
        errno.EEXIST: "an interface of that name exists in the container's network namespace; pick "
                      "another name (or a template like eth%d)",
        errno.EINVAL: "the kernel refuses to move this interface: it is local to its namespace (lo, "
                      "bridges and some other virtual devices are) or the name is not valid",
        errno.EPERM: "moving an interface needs CAP_NET_ADMIN in both network namespaces",
        errno.EBUSY: "the interface is busy (enslaved to a bond or bridge?); release it first",
    }.get(exc.errno or 0, exc.strerror or str(exc))
