"""A small pool of cgroups for one Sandbox's runs, with its memory, pids and cpu limits.

Groups live at ``<top>/<pid>-<n>`` (``top`` defaults to ``/clonekit-sandbox``, a clonekit-owned
top-level group) in each hierarchy that carries a needed controller: the v1 ``memory``,
``pids``, ``cpu`` and ``cpuacct`` hierarchies, or cgroup2 where it has the controllers.  A
group is made once with the limits and reused run after run (its peak and cpu counters reset
before each), so a run pays no mkdir/rmdir.  The child joins by itself: it writes ``0`` to the
group's v1 ``tasks`` files opened here (cheaper than moving it from the parent, see
``Cgroup.join_fds``); on cgroup2 it is born in the group (``CLONE_INTO_CGROUP``).

Leftovers: :meth:`GroupPool.close` (and the Sandbox's context manager) removes the groups; a
caller killed before that leaves them, and the next pool made on the same top removes every
``<pid>-<n>`` group whose pid is gone.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref

from ..cgroups.resources import write_controller
from .errors import SandboxError, SandboxUsageError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from ..cgroups.resources import Resources

__all__ = ["Group", "GroupPool", "Limits"]

_PERIOD_US = 100_000
_numbers = itertools.count()  # group names are unique in the process, across pools on one top
_pools: weakref.WeakSet[GroupPool] = weakref.WeakSet()


def _forget_after_fork() -> None:
    """In a fork's child: every pool's groups are the parent's (named by its pid, maybe in use
    by its runs); the child closes its copies of their fds and makes groups of its own, so its
    runs never share the parent's groups nor its close() remove them."""
    for pool in list(_pools):
        pool._lock = threading.Lock()
        groups, pool._all, pool._free = pool._all, [], []
        for group in groups:
            group.close()


os.register_at_fork(after_in_child=_forget_after_fork)


class Limits:
    __slots__ = ("cpus", "memory", "pids")

    def __init__(self, memory: int | None, pids: int | None, cpus: float | None) -> None:
        self.memory, self.pids, self.cpus = memory, pids, cpus

    def __bool__(self) -> bool:
        return self.memory is not None or self.pids is not None or self.cpus is not None

    def set(self) -> list[str]:
        """The controllers that carry a limit."""
        return [name for name, value in (("memory", self.memory), ("pids", self.pids),
                                         ("cpu", self.cpus)) if value is not None]

    def controllers(self) -> list[str]:
        wanted = self.set()
        return wanted + [c for c in ("memory", "cpuacct") if c not in wanted]  # for the Result

    def resources(self, *, swap: bool) -> Resources:
        """The limits as the runtime's record, written by the runtime's own writers (runc's
        files, order and v1/v2 conversions).  ``swap``: the group accounts swap, which is then
        held at zero (memory + swap = the memory limit)."""
        from ..cgroups.resources import Cpu, Memory, Resources

        memory = None if self.memory is None else Memory(limit=self.memory, swap=self.memory if swap else 0)
        cpu = None
        if self.cpus is not None:
            cpu = Cpu(quota=max(1000, int(self.cpus * _PERIOD_US)), period=_PERIOD_US)
        return Resources(memory=memory, cpu=cpu, pids=self.pids or 0)


class Group:
    """One group: its directories and the fds a run needs (``join_fds``: v1 ``tasks`` files
    for the child; ``v2_fd``: the cgroup2 directory for CLONE_INTO_CGROUP; counters)."""

    __slots__ = ("cpuacct", "dirs", "join_fds", "memory", "pids", "v2", "v2_fd")

    def __init__(self) -> None:
        self.dirs: list[str] = []
        self.join_fds: list[int] = []
        self.memory: str | None = None
        self.cpuacct: str | None = None
        self.pids: str | None = None
        self.v2: str | None = None
        self.v2_fd = -1

    def close(self) -> None:
        for fd in self.join_fds:
            os.close(fd)
        self.join_fds = []
        if self.v2_fd >= 0:
            os.close(self.v2_fd)
            self.v2_fd = -1

    def remove(self) -> None:
        """Close the fds and remove the directories (the kernel refuses a group still in use)."""
        self.close()
        for d in reversed(self.dirs):
            try:
                os.rmdir(d)
            except OSError:
                pass

    # counters, reset before a run and read after it

    def reset(self) -> int:
        """Reset the peak and cpu counters; returns the OOM kills so far (a counter that only
        grows: the run's own are the difference after it)."""
        if self.memory is not None:
            _write(f"{self.memory}/memory.max_usage_in_bytes", "0")
        if self.cpuacct is not None:
            _write(f"{self.cpuacct}/cpuacct.usage", "0")
        return self.oom_kills()

    def oom_kills(self) -> int:
        if self.memory is not None:
            return _field(f"{self.memory}/memory.oom_control", "oom_kill")
        if self.v2 is not None:
            return _field(f"{self.v2}/memory.events", "oom_kill")
        return 0

    def peak_memory(self) -> int | None:
        if self.memory is not None:
            return _int(f"{self.memory}/memory.max_usage_in_bytes")
        if self.v2 is not None:
            return _int(f"{self.v2}/memory.peak")
        return None

    def cpu_time(self) -> float | None:
        if self.cpuacct is not None:
            value = _int(f"{self.cpuacct}/cpuacct.usage")
            return None if value is None else value / 1e9
        if self.v2 is not None:
            usec = _field(f"{self.v2}/cpu.stat", "usage_usec")
            return usec / 1e6
        return None


class GroupPool:
    """Groups for one Sandbox (thread-safe: a run takes a free group or makes one)."""

    def __init__(self, top: str, limits: Limits) -> None:
        from ..cgroups.layout import detect

        if not top.startswith("/") or top.strip("/") == "" or ".." in top.split("/"):
            raise SandboxUsageError(f"cgroup_top {top!r} must be an absolute group path below the root "
                                    "(like /clonekit-sandbox)")
        self.top = "/" + top.strip("/")
        self.limits = limits
        self._lock = threading.Lock()
        self._free: list[Group] = []
        self._all: list[Group] = []
        _pools.add(self)
        layout = detect()
        self.v1: dict[str, str] = {}   # controller -> hierarchy mount point
        self.v2: str | None = None
        v2_controllers: set[str] = set()
        if layout.v2 is not None:
            try:
                with open(os.path.join(layout.v2.mountpoint, "cgroup.subtree_control")) as f:
                    v2_controllers = set(f.read().split())
            except OSError:
                pass
        for controller in limits.controllers():
            h = layout.by_controller(controller)
            if h is not None:
                self.v1[controller] = h.mountpoint
            elif layout.v2 is not None and controller.replace("cpuacct", "cpu") in v2_controllers:
                self.v2 = layout.v2.mountpoint
            elif controller != "cpuacct" and (controller != "memory" or limits.memory is not None):
                raise SandboxUsageError(
                    f"no cgroup controller {controller!r} on this host (neither a v1 hierarchy nor "
                    "enabled at the top of cgroup2): the limit cannot be applied; drop it or enable "
                    "the controller")
        self._mounts = sorted(set(self.v1.values()) | ({self.v2} if self.v2 else set()))
        self._v2_wanted = {c.replace("cpuacct", "cpu") for c in limits.controllers()} & v2_controllers
        for mount in self._mounts:
            self._make_top(mount)
        self.sweep()

    def _make_top(self, mount: str) -> None:
        top_dir = mount + self.top
        os.makedirs(top_dir, exist_ok=True)
        if mount == self.v2:
            _write(f"{top_dir}/cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(self._v2_wanted)))

    @property
    def join_count(self) -> int:
        """How many v1 ``tasks`` files a run's child writes itself into."""
        return len([m for m in self._mounts if m != self.v2])

    def sweep(self) -> list[str]:
        """Remove the groups of this top whose owner process is gone; returns them."""
        removed = []
        for mount in self._mounts:
            top_dir = mount + self.top
            try:
                names = os.listdir(top_dir)
            except OSError:
                continue
            for name in names:
                owner, dash, _ = name.partition("-")
                if not dash or not owner.isdigit() or os.path.exists(f"/proc/{owner}"):
                    continue
                try:
                    os.rmdir(f"{top_dir}/{name}")
                    removed.append(f"{top_dir}/{name}")
                except OSError:
                    pass  # still has processes (or not a group of ours): left alone
        return removed

    def acquire(self) -> Group:
        with self._lock:
            if self._free:
                return self._free.pop()
        group = self._make(f"{self.top}/{os.getpid()}-{next(_numbers)}")
        with self._lock:
            self._all.append(group)
        return group

    def release(self, group: Group) -> None:
        with self._lock:
            self._free.append(group)

    def close(self) -> None:
        with self._lock:
            groups, self._all, self._free = self._all, [], []
        for group in groups:
            group.remove()
        for mount in self._mounts:
            try:
                os.rmdir(mount + self.top)  # only when no other pool uses it
            except OSError:
                pass

    def _make(self, path: str) -> Group:
        group = Group()
        try:
            for mount in self._mounts:
                d = mount + path
                for attempt in range(3):
                    try:
                        os.mkdir(d, 0o755)
                        break
                    except FileNotFoundError:
                        # another Sandbox of this top closed and removed it while it was empty
                        if attempt == 2:
                            raise
                        self._make_top(mount)
                group.dirs.append(d)
                controllers = [c for c, m in self.v1.items() if m == mount]
                if mount == self.v2:
                    group.v2 = d
                    self._limits_v2(d)
                    group.v2_fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
                    continue
                self._limits_v1(d, controllers)
                if "memory" in controllers:
                    group.memory = d
                if "cpuacct" in controllers:
                    group.cpuacct = d
                if "pids" in controllers:
                    group.pids = d
                group.join_fds.append(os.open(f"{d}/tasks", os.O_WRONLY | os.O_CLOEXEC))
        except OSError as exc:
            group.remove()
            raise SandboxError(exc.errno or 5, f"{exc.strerror}: cannot make the sandbox's cgroup",
                               step="make the cgroup", filename=exc.filename) from None
        return group

    def _limits_v1(self, d: str, controllers: list[str]) -> None:
        for controller in controllers:
            if controller in self.limits.set():
                write_controller(controller, d, 1, self.limits.resources(
                    swap=os.path.exists(f"{d}/memory.memsw.limit_in_bytes")))

    def _limits_v2(self, d: str) -> None:
        for controller in self.limits.set():
            if controller not in self.v1:
                write_controller(controller, d, 2, self.limits.resources(
                    swap=os.path.exists(f"{d}/memory.swap.max")))


def _write(path: str, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def _int(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def _field(path: str, key: str) -> int:
    try:
        with open(path, "rb") as f:
            for line in f:
                name, _, value = line.partition(b" ")
                if name == key.encode():
                    return int(value)
    except (OSError, ValueError):
        pass
    return 0
