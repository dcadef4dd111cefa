"""A container's cgroup on cgroup v2, v1 and hybrid hosts: placement, listing, signalling, removal.

Contract (runtime side)::

    from clonekit.cgroups import Cgroup
    cg = Cgroup.create(plan.cgroups_path, container_id=cid, rootless=rootless)
    if not cg.enabled:
        log.warning(cg.reason)              # one notice; placement skipped (rootless, no delegation)
    fd = cg.v2_dir_fd()                     # int | None: clone3(CLONE_INTO_CGROUP) target
    task = clonekit.spawn(argv, cgroup=fd)  # (or clone(cgroup=fd)); then os.close(fd)
    cg.add(task.pid, v2=fd is None)         # v1 hierarchies (hybrid/legacy) before the program runs

    # cheaper for a child that runs our code first (the runtime's init): it joins the v1
    # hierarchies itself (``0`` into each ``tasks`` file), which skips the kernel's global
    # threadgroup lock and the RCU grace period add() waits for (~13 ms here, once per start)
    fds = cg.join_fds(v2=fd is None)        # parent, before the clone: the group's `tasks` files
    task = clone(..., cgroup=fd)            # child: join_self(fds) first thing; parent: close fds
    cg.dirs_by_mount                        # {hierarchy mount point: group dir} (cgroup mounts)
    state["cgroup"] = cg.to_state()         # JSON-able
    ...
    cg = Cgroup.load(state["cgroup"])       # in `ps`, `kill --all`, `delete` (later processes)
    cg.pids()                               # ps: members of the group and its child groups
    cg.signal_all(signal.SIGTERM)           # kill --all (freeze, pidfd-signal members, thaw)
    cg.freeze(); cg.frozen(); cg.thaw()     # pause / state "paused" / resume (v1 freezer and cgroup2)
    cg.remove()                             # delete: rmdir everywhere + empty clonekit parents

Where the group goes (:mod:`clonekit.cgroups.paths`):

* absolute ``cgroupsPath`` ``/a/b`` -> ``/a/b`` in every hierarchy (as runc/crun);
* relative ``a/b`` -> ``/clonekit/a/b``, missing -> ``/clonekit/<id>``.  Unlike runc, NOT under
  the caller's own group, which belongs to the service that runs clonekit;
* ``slice:prefix:name`` (systemd driver) -> :class:`CgroupPathError`: no systemd manager here;
* rootless: only inside a writable delegated cgroup2 subtree (``<delegated>/clonekit/...``);
  without one a disabled Cgroup (``enabled`` False, ``reason`` says why and what to do).

Which hierarchies (:mod:`clonekit.cgroups.layout`, detected once from /proc/self/mountinfo): the
cgroup2 mount (unified or hybrid), every v1 hierarchy that has a controller, and
``name=systemd`` (systemd on hybrid/legacy hosts attributes processes to units by it; leaving the
container in the caller's group there would make it part of the caller's unit).

Resources (a later issue) plug in at :meth:`Cgroup.controller_dir` (v1: the controller's
hierarchy; v2: the unified group) — on cgroup2 they also need ``+controller`` written to
``cgroup.subtree_control`` of each parent from the clonekit-owned one down, which is why the
group records which directories it made.

Errors: :class:`CgroupError` (a :class:`clonekit.errors.KernelError`: errno, step, path),
:class:`CgroupBusyError` (remove while processes remain; ``.pids``),
:class:`CgroupUnavailableError` (no cgroup mounted / placement skipped),
:class:`CgroupPathError` (a :class:`clonekit.errors.UsageError` for a bad cgroupsPath).
"""

from __future__ import annotations

from .. import _lazy  # not importlib: it imports warnings, on the path of every container start

TYPE_CHECKING = False

_EXPORTS = {
    "Cgroup": "group",
    "CgroupError": "errors",
    "CgroupBusyError": "errors",
    "CgroupPathError": "errors",
    "CgroupUnavailableError": "errors",
    "Hierarchy": "layout",
    "Layout": "layout",
    "detect": "layout",
    "parse_mountinfo": "layout",
    "join_self": "group",
    "OWNED_PARENT": "paths",
    "resolve": "paths",
}

__all__ = [
    "OWNED_PARENT", "Cgroup", "CgroupBusyError", "CgroupError", "CgroupPathError",
    "CgroupUnavailableError", "Hierarchy", "Layout", "detect", "join_self", "parse_mountinfo",
    "resolve",
]

if TYPE_CHECKING:  # pragma: no cover
    from .errors import CgroupBusyError, CgroupError, CgroupPathError, CgroupUnavailableError
    from .group import Cgroup, join_self
    from .layout import Hierarchy, Layout, detect, parse_mountinfo
    from .paths import OWNED_PARENT, resolve


def __getattr__(name: str) -> object:
    return _lazy.attribute(globals(), _EXPORTS, name)


def __dir__() -> list[str]:
    return _lazy.names(globals(), _EXPORTS)
