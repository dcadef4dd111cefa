"""Which cgroup hierarchies this host mounts, read once from /proc/self/mountinfo.

Three layouts exist in the wild:

* ``unified`` — only cgroup2 (usually at /sys/fs/cgroup);
* ``hybrid``  — v1 controller hierarchies under /sys/fs/cgroup/<controller> *and* cgroup2 (usually
  at /sys/fs/cgroup/unified, with few or no controllers: they are bound to v1);
* ``legacy``  — v1 hierarchies only.

A container's group is made in every hierarchy that matters (see :func:`Layout.targets`): the
cgroup2 one and every v1 hierarchy that has a controller, plus the named ``name=systemd``
hierarchy.  ``MOUNTINFO`` is a module-level setting so tests can point :func:`detect` at a fake
tree (mount points in a temp dir laid out like /sys/fs/cgroup).
"""

from __future__ import annotations

import os

__all__ = ["MOUNTINFO", "Hierarchy", "Layout", "detect", "parse_mountinfo"]

MOUNTINFO = "/proc/self/mountinfo"

# super options of a v1 cgroup mount that are not controllers
_NOT_CONTROLLERS = frozenset({
    "rw", "ro", "none", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods",
    "nsdelegate", "memory_localevents", "memory_recursiveprot", "memory_hugetlb_accounting",
    "pids_localevents",
})
# the one named (controller-less) v1 hierarchy we place into: systemd tracks units by it on hybrid
# and legacy hosts, so a container left in the caller's name=systemd group is counted (and
# stopped) with the caller's unit.  Other named hierarchies belong to other tools: not touched.
SYSTEMD_NAME = "name=systemd"

_cache: Layout | None = None


class Hierarchy:
    """One mounted cgroup hierarchy.

    ``key`` is ``"unified"`` for cgroup2, the comma-joined controllers for v1 (``"cpu,cpuacct"``)
    or ``"name=systemd"``; ``mountpoint`` is where it is reachable; ``root`` is the cgroup that
    mount shows at its top (``/`` normally; another path inside a cgroup namespace or for a
    bind mount of a subtree).
    """

    __slots__ = ("controllers", "dev", "key", "mountpoint", "root", "version")

    def __init__(self, version: int, controllers: tuple[str, ...], mountpoint: str, root: str = "/",
                 dev: str = "", name: str | None = None) -> None:
        self.version = version
        self.controllers = controllers
        self.mountpoint = mountpoint
        self.root = root
        self.dev = dev
        if version == 2:
            self.key = "unified"
        elif name is not None and not controllers:
            self.key = name
        else:
            self.key = ",".join(controllers)

    def __repr__(self) -> str:
        return f"Hierarchy({self.key!r} at {self.mountpoint!r})"

    def dir_of(self, cgroup_path: str) -> str | None:
        """The directory of ``cgroup_path`` (absolute, as /proc/PID/cgroup shows it) in this
        hierarchy; None if this mount does not reach it."""
        root = self.root.rstrip("/")
        if cgroup_path != root and not cgroup_path.startswith(root + "/"):
            return None
        rest = cgroup_path[len(root):].strip("/")
        return f"{self.mountpoint.rstrip('/')}/{rest}" if rest else self.mountpoint

    def matches(self, field: str) -> bool:
        """Whether a /proc/PID/cgroup controller field (``"cpu,cpuacct"``, ``""``,
        ``"name=systemd"``) names this hierarchy."""
        if self.version == 2:
            return field == ""
        if not self.controllers:
            return field == self.key
        return set(field.split(",")) == set(self.controllers)


class Layout:
    """The host's cgroup hierarchies and what kind of host that makes."""

    __slots__ = ("hierarchies", "mode", "named", "v1", "v2")

    def __init__(self, hierarchies: list[Hierarchy]) -> None:
        self.hierarchies = hierarchies
        self.v2: Hierarchy | None = next((h for h in hierarchies if h.version == 2), None)
        self.v1: list[Hierarchy] = [h for h in hierarchies if h.version == 1 and h.controllers]
        self.named: list[Hierarchy] = [h for h in hierarchies if h.version == 1 and not h.controllers]
        if self.v2 is not None and self.v1:
            self.mode = "hybrid"
        elif self.v2 is not None:
            self.mode = "unified"
        elif self.v1:
            self.mode = "legacy"
        else:
            self.mode = "none"

    def __repr__(self) -> str:
        return f"Layout({self.mode}: {', '.join(h.key for h in self.hierarchies)})"

    def targets(self) -> list[Hierarchy]:
        """The hierarchies a container's group is made in: cgroup2 first, then every v1
        hierarchy with controllers, then name=systemd (not on a unified host, which has none)."""
        out = [self.v2] if self.v2 is not None else []
        out += self.v1
        out += [h for h in self.named if h.key == SYSTEMD_NAME]
        return out

    def by_controller(self, controller: str) -> Hierarchy | None:
        """The v1 hierarchy that carries ``controller`` (for the resources step)."""
        return next((h for h in self.v1 if controller in h.controllers), None)


def parse_mountinfo(text: str) -> Layout:
    """The cgroup hierarchies of a mountinfo text.  A hierarchy mounted more than once (bind
    mounts) is counted once, preferring the mount that shows its whole tree (root ``/``)."""
    found: dict[str, Hierarchy] = {}
    for line in text.split("\n"):
        if " - cgroup" not in line:  # most lines: no split at all
            continue
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        dev, root, mountpoint = fields[2], _unescape(fields[3]), _unescape(fields[4])
        if tail[0] == "cgroup2":
            h = Hierarchy(2, (), mountpoint, root, dev)
        else:
            opts = tail[2].split(",")
            name = next((o for o in opts if o.startswith("name=")), None)
            controllers = tuple(o for o in opts if "=" not in o and o not in _NOT_CONTROLLERS)
            h = Hierarchy(1, controllers, mountpoint, root, dev, name)
        ident = h.dev or h.key
        seen = found.get(ident)
        if seen is None or (seen.root != "/" and h.root == "/"):
            found[ident] = h
    order = sorted(found.values(), key=lambda h: (h.version != 2, h.key))
    return Layout(order)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as ``\\ooo`` (octal)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        code = field[i + 1:i + 4]
        if field[i] == "\\" and len(code) == 3 and code.isdigit():
            out.append(chr(int(code, 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def detect(mountinfo: str | None = None) -> Layout:
    """The layout of this host, parsed once per process (``mountinfo`` given: that file, uncached).

    One read of /proc/self/mountinfo (raw bytes, no text layer); nothing is kept across
    processes: a mount or a cgroup namespace may differ between two runs."""
    global _cache
    if mountinfo is None and _cache is not None:
        return _cache
    path = mountinfo or MOUNTINFO
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    layout = parse_mountinfo(b"".join(chunks).decode("utf-8", "surrogateescape"))
    if mountinfo is None and MOUNTINFO == "/proc/self/mountinfo":
        _cache = layout
    return layout


def forget() -> None:
    """Drop the cached layout (after mounting or unmounting a hierarchy)."""
    global _cache
    _cache = None
