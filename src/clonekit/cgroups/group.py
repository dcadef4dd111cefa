"""A container's cgroup: one directory per hierarchy, made, filled, listed, signalled, removed.

See the package docstring for the contract.  Every directory written to or removed is one this
object made (or the container's own leaf group); the root groups and the caller's groups are never
written to.
"""

from __future__ import annotations

import _signal  # the C module: `signal` would import enum, on the path of every container start
import _thread  # builtin: join_self() runs in a child that may no longer find files to import
import errno
import os
import time

from .errors import CgroupBusyError, CgroupError, CgroupPathError, CgroupUnavailableError, cgroup_error
from .paths import OWNED_PARENT, resolve

__all__ = ["Cgroup", "join_self"]

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .layout import Hierarchy, Layout

_DRAIN_TIMEOUT = 2.0      # remove(): how long the kernel may take to let go of exited tasks
_FREEZE_TIMEOUT = 0.5     # signal_all(): how long to wait for the group to report frozen
_PAUSE_TIMEOUT = 5.0      # freeze() (pause): how long tasks may take to stop
_MKDIR_RETRIES = 5        # create(): a concurrent remove() may prune a shared parent meanwhile


class _Dir:
    """The container's group in one hierarchy."""

    __slots__ = ("created", "dir", "key", "mount", "path", "prune_to", "version")

    def __init__(self, key: str, version: int, mount: str, dir: str, created: list[str],
                 prune_to: str | None, path: str) -> None:
        self.key = key
        self.path = path                # the cgroup path in this hierarchy (/proc/PID/cgroup's)
        self.version = version
        self.mount = mount              # where the hierarchy is mounted
        self.dir = dir
        self.created = created          # directories this group made, top first (leaf included)
        self.prune_to = prune_to        # clonekit-owned parent: every empty dir up to it is ours

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "version": self.version, "mount": self.mount, "dir": self.dir,
                "created": self.created, "prune_to": self.prune_to, "path": self.path}

    def matches(self, field: str) -> bool:
        """Whether a /proc/PID/cgroup controller field names this hierarchy."""
        if self.version == 2:
            return field == ""
        if self.key.startswith("name="):
            return field == self.key
        return set(field.split(",")) == set(self.key.split(","))


class Cgroup:
    """A container's group in every hierarchy of the host (or a disabled one that says why).

    Make one with :meth:`create`, rebuild one in a later process with :meth:`load` from
    :meth:`to_state`.  ``path`` is the cgroup path (as /proc/PID/cgroup shows it), ``paths`` maps
    each hierarchy (``"unified"``, ``"memory"``, ``"cpu,cpuacct"``, ``"name=systemd"``, ...) to the
    group's directory.  A disabled group (``enabled`` False; rootless without delegation) has
    ``reason`` set: placement is skipped, :meth:`add` and :meth:`remove` do nothing, and
    :meth:`pids` / :meth:`signal_all` raise :class:`CgroupUnavailableError` carrying the reason.
    """

    __slots__ = ("_dirs", "notes", "path", "reason")

    def __init__(self, path: str | None, dirs: list[_Dir], *, reason: str | None = None,
                 notes: list[str] | None = None) -> None:
        self.path = path
        self._dirs = dirs
        self.reason = reason
        self.notes = notes or []

    def __repr__(self) -> str:
        if self.reason is not None:
            return f"Cgroup(disabled: {self.reason})"
        return f"Cgroup({self.path!r} in {', '.join(d.key for d in self._dirs)})"

    # -- making and rebuilding ------------------------------------------------------------------

    @classmethod
    def create(cls, cgroups_path: str | None, *, container_id: str, rootless: bool = False,
               layout: Layout | None = None) -> Cgroup:
        """Make the container's group in every hierarchy (see :func:`Layout.targets`).

        ``cgroups_path`` is the spec's ``linux.cgroupsPath`` (see :mod:`.paths` for absolute,
        relative and missing).  ``rootless``: only a writable delegated cgroup2 subtree is used
        (the group goes to ``<delegated group>/clonekit/...``); without one the result is a
        disabled Cgroup whose ``reason`` the caller should show once.  An existing leaf group is
        reused if empty and refused if it has processes.  On failure nothing made is left behind.
        """
        if layout is None:
            from .layout import detect

            layout = detect()
        path, owned = resolve(cgroups_path, container_id)
        if layout.mode == "none":
            raise CgroupUnavailableError(
                "no cgroup filesystem is mounted (no cgroup or cgroup2 entry in /proc/self/mountinfo): "
                "mount cgroup2 on /sys/fs/cgroup, or run with --cgroup-manager disabled",
                step="cgroup create")
        targets = layout.targets()
        notes: list[str] = []
        relative = not path.startswith("/")
        if rootless:
            base, why = _delegated_base(layout)
            if base is None:
                return cls(None, [], reason=why)
            tail = path[len(OWNED_PARENT):] if owned is not None else "/" + path.lstrip("/")
            path = f"{base.rstrip('/')}{OWNED_PARENT}{tail}"
            owned = f"{base.rstrip('/')}{OWNED_PARENT}"
            relative = False
            targets = [layout.v2] if layout.v2 is not None else []
            if layout.v1:
                notes.append("rootless: the cgroup v1 hierarchies are not delegated; the container "
                             "is placed in cgroup2 only")
        own = _own_paths() if relative else {}
        dirs: list[_Dir] = []
        try:
            for h in targets:
                dirs.append(_make(h, _below_own(h, path, own) if relative else path, owned))
        except BaseException:
            for d in reversed(dirs):
                for made in reversed(d.created):
                    _rmdir_quiet(made)
            raise
        if relative:  # the state's path: the group's in the first hierarchy (cgroup2 if any)
            path = dirs[0].path if dirs else path
        return cls(path, dirs, notes=notes)

    @classmethod
    def disabled(cls, reason: str) -> Cgroup:
        """A group that places nothing (e.g. ``--cgroup-manager disabled``)."""
        return cls(None, [], reason=reason)

    def to_state(self) -> dict[str, Any]:
        """JSON-able state for :meth:`load` (the runtime keeps it in the container's state dir)."""
        return {"path": self.path, "reason": self.reason, "notes": self.notes,
                "hierarchies": [d.to_dict() for d in self._dirs]}

    @classmethod
    def load(cls, state: dict[str, Any]) -> Cgroup:
        """Rebuild from :meth:`to_state` (e.g. in ``delete``, a later process)."""
        path = state.get("path")
        dirs = [_Dir(str(h["key"]), int(h["version"]), str(h["mount"]), str(h["dir"]),
                     [str(c) for c in h.get("created", [])], h.get("prune_to"),
                     str(h.get("path") or path))
                for h in state.get("hierarchies", [])]
        for d in dirs:  # a damaged state must never make remove() walk a hierarchy's top
            if not (isinstance(path, str) and path.strip("/") and os.path.isabs(d.dir)
                    and d.dir.startswith(d.mount.rstrip("/") + "/") and ".." not in d.dir.split("/")
                    and os.path.basename(d.dir.rstrip("/")) == os.path.basename(path.rstrip("/"))):
                raise CgroupPathError(
                    f"saved cgroup state is inconsistent: directory {d.dir!r} is not the group "
                    f"{path!r}; not using it (remove the group by hand if it exists)")
        return cls(path, dirs, reason=state.get("reason"), notes=list(state.get("notes", [])))

    # -- what it is -----------------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.reason is None

    @property
    def paths(self) -> dict[str, str]:
        """Hierarchy key -> the group's directory (runc's state ``cgroup_paths``, keyed readably)."""
        return {d.key: d.dir for d in self._dirs}

    @property
    def dirs_by_mount(self) -> dict[str, str]:
        """Hierarchy mount point -> the group's directory there (what the container's ``cgroup``
        mount binds: ``rootfs.mount_rootfs(cgroup_dirs=...)``)."""
        return {d.mount: d.dir for d in self._dirs}

    @property
    def v2_dir(self) -> str | None:
        return next((d.dir for d in self._dirs if d.version == 2), None)

    def exists(self) -> bool:
        """Whether any of the group's directories is still there."""
        return any(os.path.isdir(d.dir) for d in self._dirs)

    def controller_dir(self, controller: str) -> str | None:
        """Where ``controller``'s files for this group live (the resources step): its v1
        hierarchy's group, else the cgroup2 group when the cgroup2 hierarchy has the controller
        (its root's cgroup.controllers; enabling it in each parent's cgroup.subtree_control, from
        the clonekit-owned parent down, is the resources step's job).  None if neither."""
        for d in self._dirs:
            if d.version == 1 and controller in d.key.split(","):
                return d.dir
        v2 = self.v2_dir
        top = next((d.mount for d in self._dirs if d.version == 2), None)
        if v2 is not None and top is not None:
            try:
                with open(os.path.join(top, "cgroup.controllers")) as f:
                    if controller in f.read().split():
                        return v2
            except OSError:
                return None
        return None

    # -- placing --------------------------------------------------------------------------------

    def add(self, pid: int, *, v2: bool = True) -> None:
        """Move ``pid`` (a process the caller started) into the group in every hierarchy.

        ``v2=False`` skips cgroup2: for a task born there with ``CLONE_INTO_CGROUP`` (see
        :meth:`v2_dir_fd`), which on a hybrid host still needs the v1 hierarchies.

        Each write of another process's pid takes the kernel's global threadgroup lock for
        writing, and the first one after a quiet spell waits for an RCU grace period (several
        ms, more on a busy host).  A child that has not run the user's program yet can instead
        join by itself, without that lock: see :meth:`join_fds`.
        """
        data = str(pid).encode()
        step = f"add pid {pid} to cgroup"
        for d in self._dirs:
            if d.version == 2 and not v2:
                continue
            _write(f"{d.dir}/cgroup.procs", data, step)

    def join_fds(self, *, v2: bool = False) -> list[int]:
        """Open the group's files that a new child writes itself into (see :func:`join_self`):
        the ``tasks`` file of each v1 hierarchy and, with ``v2=True`` (no ``CLONE_INTO_CGROUP``),
        the cgroup2 ``cgroup.procs``.  Open them before the clone (O_CLOEXEC: the child inherits
        them until it execs), pass them to the child, and close them in the parent after it.

        Why: a process that writes ``0`` to a v1 ``tasks`` file moves itself (its only thread)
        without the kernel's global threadgroup rwsem, so without the RCU grace period that
        :meth:`add` pays on the first write (measured here: 0.15 ms for 9 hierarchies instead of
        ~12-16 ms).  Empty on a cgroup2-only host and for a disabled group."""
        fds: list[int] = []
        try:
            for d in self._dirs:
                if d.version == 2:
                    if v2:
                        fds.append(_open_w(f"{d.dir}/cgroup.procs", "open cgroup"))
                else:
                    fds.append(_open_w(f"{d.dir}/tasks", "open cgroup"))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def v2_dir_fd(self) -> int | None:
        """A new O_DIRECTORY fd of the cgroup2 group, for ``clone3(CLONE_INTO_CGROUP)``
        (``clonekit.spawn(..., cgroup=fd)``); the caller closes it.  None without cgroup2.
        On a hybrid host the new task is then in the cgroup2 group only: call
        ``add(pid, v2=False)`` for the v1 hierarchies before it runs the user's program."""
        v2 = self.v2_dir
        if v2 is None:
            return None
        try:
            return os.open(v2, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError as exc:
            raise cgroup_error(exc, "open cgroup", v2) from None

    # -- listing and signalling -----------------------------------------------------------------

    def pids(self) -> list[int]:
        """The processes in the group and its child groups (``ps``), sorted.  Read from cgroup2
        when present, else from a v1 hierarchy.  [] when the group is gone."""
        ref = self._reference()
        return sorted(set(_read_pids(ref.dir, recursive=True)))

    def signal_all(self, sig: int) -> list[int]:
        """Send ``sig`` to every process of the group (``kill --all``); returns the pids signalled.

        SIGKILL on cgroup2 uses ``cgroup.kill`` (the kernel kills the whole subtree, forks
        included).  Otherwise the group is frozen (cgroup2 ``cgroup.freeze``, else the v1
        freezer) so nothing forks or exits meanwhile, each member is signalled through a pidfd
        after checking in /proc/PID/cgroup that it is still a member (no PID-reuse accident),
        and the group is thawed — unless it was frozen before (a paused container stays paused).
        """
        ref = self._reference()
        v2 = self.v2_dir
        if sig == _signal.SIGKILL and v2 is not None and os.path.exists(os.path.join(v2, "cgroup.kill")):
            members = self.pids()
            _write(os.path.join(v2, "cgroup.kill"), "1", "kill cgroup")
            return members
        thaw = None
        try:
            if not self.frozen():
                self.freeze(_FREEZE_TIMEOUT)
                thaw = self.thaw
        except (CgroupError, FileNotFoundError):
            pass  # cannot freeze (no freezer, read-only, a task that does not stop): signal anyway
        try:
            sent = []
            for pid in _read_pids(ref.dir, recursive=True):
                if _signal_member(pid, sig, ref, ref.path):
                    sent.append(pid)
            return sorted(sent)
        finally:
            if thaw is not None:
                thaw()

    def _reference(self) -> _Dir:
        if self.reason is not None:
            raise CgroupUnavailableError(f"the container has no cgroup: {self.reason}")
        if not self._dirs:
            raise CgroupUnavailableError("the container has no cgroup (placement was not set up)")
        order = ("freezer", "pids", "memory", "name=systemd")
        for d in self._dirs:
            if d.version == 2:
                return d
        return min(self._dirs, key=lambda d: next((i for i, c in enumerate(order) if c in d.key.split(",")),
                                                  len(order)))

    # -- pausing: the freezer --------------------------------------------------------------------

    def _freezers(self) -> tuple[str | None, str | None]:
        """The group's v1 freezer directory and its cgroup2 directory (if it has cgroup.freeze)."""
        v1 = next((d.dir for d in self._dirs if d.version == 1 and "freezer" in d.key.split(",")), None)
        v2 = self.v2_dir
        if v2 is not None and not os.path.exists(os.path.join(v2, "cgroup.freeze")):
            v2 = None
        return v1, v2

    def frozen(self) -> bool:
        """Whether the group itself is frozen (``pause``) by either freezer; a frozen ancestor
        does not count (v1 ``freezer.self_freezing``), as runc reads it.  False once removed."""
        from .freezer import self_frozen

        return self_frozen(*self._freezers())

    def freeze(self, timeout: float = _PAUSE_TIMEOUT) -> None:
        """Stop every process of the group (``pause``) and return once the kernel says they are.

        On a hybrid host both freezers are used, so both report the truth: cgroup2 first (its
        ``cgroup.events`` says ``frozen 1``), then the v1 freezer (``freezer.state`` FROZEN) — a
        task the v1 freezer holds never reaches the point where cgroup2 counts it frozen.  All
        or nothing: if the group does not settle within ``timeout`` (a task in uninterruptible
        sleep), it is thawed again and :class:`CgroupError` (EBUSY) says so."""
        v1, v2 = self._freezers()
        if v1 is None and v2 is None:
            raise CgroupUnavailableError("the container's group has no freezer (no v1 freezer hierarchy "
                                         "and no cgroup2 group with cgroup.freeze)", step="freeze cgroup")
        try:
            if v2 is not None:
                _write(os.path.join(v2, "cgroup.freeze"), "1", "freeze cgroup")
                events = os.path.join(v2, "cgroup.events")
                if not _wait(lambda: "frozen 1" in _read(events).split("\n"), timeout):
                    raise _not_settled(v2, timeout)
            if v1 is not None:
                state = os.path.join(v1, "freezer.state")

                def settled() -> bool:  # written again each time: a task may have joined meanwhile
                    _write(state, "FROZEN", "freeze cgroup")
                    return _read(state).strip() == "FROZEN"

                if not _wait(settled, timeout):
                    raise _not_settled(v1, timeout)
        except BaseException:
            self.thaw()
            raise

    def thaw(self) -> None:
        """Let the group run again (``resume``): the v1 freezer first, then cgroup2, so no task
        runs while one of them still holds the others.  Nothing to do for a removed group."""
        v1, v2 = self._freezers()
        for control, value, done in ((v1 and os.path.join(v1, "freezer.state"), "THAWED", None),
                                     (v2 and os.path.join(v2, "cgroup.freeze"), "0", "frozen 0")):
            if control is None:
                continue
            try:
                _write(control, value, "thaw cgroup")
            except CgroupError as exc:
                if exc.errno in (errno.ENOENT, errno.ENODEV):
                    continue
                raise
            if done is not None:
                events = os.path.join(os.path.dirname(control), "cgroup.events")
                _wait(lambda events=events, done=done: done in _read(events).split("\n"), _PAUSE_TIMEOUT)

    # -- removing -------------------------------------------------------------------------------

    def remove(self, *, timeout: float = _DRAIN_TIMEOUT) -> None:
        """Remove the group (and child groups the container made) in every hierarchy, then the
        parents clonekit made that are now empty.  Retries while the kernel drains exiting tasks;
        raises :class:`CgroupBusyError` (naming the pids) if processes are still there after
        ``timeout`` seconds.  Every hierarchy is attempted; the first error is raised after."""
        deadline = time.monotonic() + timeout
        first: BaseException | None = None
        for d in self._dirs:
            try:
                _remove_tree(d.dir, deadline)
                _prune(d)
            except CgroupError as exc:
                first = first or exc
        if first is not None:
            raise first


# -- helpers ------------------------------------------------------------------------------------

def _make(h: Hierarchy, path: str, owned: str | None) -> _Dir:
    leaf = h.dir_of(path)
    if leaf is None:
        raise CgroupError(
            errno.ENOENT,
            f"{path} is outside the part of the {h.key} hierarchy mounted at {h.mountpoint} "
            f"(it shows only {h.root}): mount the whole hierarchy, or use a path under {h.root}",
            step="cgroup create", filename=h.mountpoint)
    base = h.mountpoint.rstrip("/")
    leaf = leaf.rstrip("/")
    if leaf == base:
        raise CgroupError(
            errno.EINVAL,
            f"{path} is the top of the {h.key} hierarchy mounted at {h.mountpoint}: a container needs "
            "a group of its own below it", step="cgroup create", filename=h.mountpoint)
    prune_to = h.dir_of(owned) if owned is not None else None
    cpuset = "cpuset" in h.controllers
    for attempt in range(_MKDIR_RETRIES):
        created: list[str] = []
        try:
            try:  # the usual case, the parents exist: one mkdir
                os.mkdir(leaf, 0o755)
            except FileNotFoundError:  # a parent is missing: make the path from the top
                levels = leaf[len(base) + 1:].split("/")
                for i in range(len(levels)):
                    d = base + "/" + "/".join(levels[:i + 1])
                    try:
                        os.mkdir(d, 0o755)
                    except FileExistsError:
                        _check_existing(h, d, leaf)
                        continue
                    created.append(d)
                    if cpuset:
                        _copy_cpuset(d[:d.rindex("/")], d)
            except FileExistsError:
                _check_existing(h, leaf, leaf)
            else:
                created.append(leaf)
                if cpuset:
                    _copy_cpuset(leaf[:leaf.rindex("/")], leaf)
            return _Dir(h.key, h.version, h.mountpoint, leaf, created, prune_to, path)
        except FileNotFoundError as exc:  # a parent was pruned by a concurrent remove()
            for made in reversed(created):
                _rmdir_quiet(made)
            if attempt == _MKDIR_RETRIES - 1:
                raise cgroup_error(exc, "mkdir", exc.filename or leaf) from None
        except CgroupError:
            for made in reversed(created):
                _rmdir_quiet(made)
            raise
        except OSError as exc:
            for made in reversed(created):
                _rmdir_quiet(made)
            raise cgroup_error(exc, "mkdir", exc.filename or leaf) from None
    raise AssertionError("unreachable")  # pragma: no cover


def _check_existing(h: Hierarchy, d: str, leaf: str) -> None:
    """``d`` was already there: it must be a group (not an interface file), and the leaf an
    unused one."""
    if not os.path.isdir(d):
        raise CgroupError(
            errno.EEXIST,
            f"{os.path.basename(d)!r} is a file of the {h.key} cgroup interface, not a "
            "group: choose another name for this cgroupsPath component",
            step="cgroup create", filename=d) from None
    if d == leaf:
        busy = _read_pids(leaf, recursive=True)
        if busy:
            raise CgroupError(
                errno.EEXIST,
                f"the cgroup already has processes ({', '.join(map(str, busy[:5]))}): "
                "another container uses this cgroupsPath; choose another",
                step="cgroup create", filename=leaf) from None


def _copy_cpuset(parent: str, child: str) -> None:
    """A new v1 cpuset group starts with no cpus and no mems (unless the parent has
    cgroup.clone_children); a task cannot join it until they are set: copy the parent's
    (writing the same values again is harmless when clone_children already did)."""
    prefix = "cpuset."
    for name in ("cpus", "mems"):
        try:
            value = _read_raw(f"{parent}/{prefix}{name}")
        except FileNotFoundError:
            if not (prefix and name == "cpus"):
                raise
            prefix = ""  # a noprefix mount
            try:
                value = _read_raw(f"{parent}/{name}")
            except FileNotFoundError:
                return  # no cpuset interface at all (not a cgroup filesystem: the tests' fake trees)
        if value.strip():
            _write(f"{child}/{prefix}{name}", value, "copy cpuset from the parent")


def _remove_tree(top: str, deadline: float) -> None:
    """rmdir ``top``; if it has child groups (the container made some), those first, deepest
    first; retry EBUSY while the kernel drains exiting tasks, until ``deadline``."""
    pause = 0.001
    while True:
        try:
            os.rmdir(top)
            return
        except FileNotFoundError:
            return
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.ENOTEMPTY):
                raise cgroup_error(exc, "rmdir", top) from None
        try:
            subdirs = [e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return
        except OSError as exc:
            raise cgroup_error(exc, "list cgroup", top) from None
        for sub in subdirs:
            _remove_tree(sub, deadline)
        if subdirs:
            continue  # retry at once: it may have been busy only with its child groups
        if time.monotonic() >= deadline:
            raise CgroupBusyError(top, _read_pids(top, recursive=True))
        time.sleep(pause)
        pause = min(pause * 2, 0.05)


def _prune(d: _Dir) -> None:
    """Remove the now-empty parents this group made, and every empty one up to the
    clonekit-owned parent; stop at the first that is still in use."""
    parent = os.path.dirname(d.dir)
    while True:
        ours = parent in d.created or (
            d.prune_to is not None and (parent == d.prune_to or parent.startswith(d.prune_to + "/")))
        if not ours:
            return
        try:
            os.rmdir(parent)
        except FileNotFoundError:
            pass
        except OSError as exc:
            if exc.errno in (errno.EBUSY, errno.ENOTEMPTY):
                return  # another container's group lives there
            raise cgroup_error(exc, "rmdir", parent) from None
        if parent == d.prune_to:
            return
        parent = os.path.dirname(parent)


def _signal_member(pid: int, sig: int, ref: _Dir, path: str) -> bool:
    """Signal ``pid`` through a pidfd if it is (still) in the group ``path`` of ``ref``'s
    hierarchy.  The pidfd is opened first, so the /proc check and the signal are about the same
    process: if the PID was reused meanwhile, either the check fails or the signal does (ESRCH)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    try:
        if not _member(pid, ref, path):
            return False
        try:
            _signal.pidfd_send_signal(fd, sig)
        except ProcessLookupError:
            return False
        return True
    finally:
        os.close(fd)


def _member(pid: int, ref: _Dir, path: str) -> bool:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            lines = f.read().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return False
    for line in lines:
        _, _, rest = line.partition(":")
        field, _, where = rest.partition(":")
        if ref.matches(field):
            return where == path or where.startswith(path.rstrip("/") + "/")
    return False


def _delegated_base(layout: Layout) -> tuple[str | None, str]:
    """The topmost cgroup2 group above (and including) the caller's own that the caller may
    write to — a delegated subtree — or None and why not."""
    uid = os.geteuid()
    who = f"uid {uid}" if uid else "uid 0 of a user namespace"  # rootless podman's runtime
    if layout.v2 is None:
        return None, (f"cgroup placement skipped: running rootless ({who}) on a cgroup v1-only host, "
                      "and v1 hierarchies cannot be delegated; the container shares the caller's "
                      "cgroups, so `ps`, `kill --all` and resource limits are not available for it")
    own = _own_v2_path()
    best = None
    cur = own
    while cur is not None:
        d = layout.v2.dir_of(cur)
        writable = d is not None and os.access(d, os.W_OK | os.X_OK) and os.access(
            os.path.join(d, "cgroup.procs"), os.W_OK)
        if not writable:
            break
        best = cur
        cur = None if cur == "/" else (os.path.dirname(cur) or "/")
    if best is None:
        return None, (f"cgroup placement skipped: running rootless ({who}) and the caller's cgroup2 "
                      f"group {own or '(unknown)'} is not writable (no delegated subtree); the container "
                      "shares the caller's cgroups, so `ps`, `kill --all` and resource limits are not "
                      "available for it. To get a delegated group, run under systemd with Delegate=yes, "
                      "e.g. `systemd-run --user --scope -p Delegate=yes clonekit ...`")
    return best, ""


def _own_paths() -> dict[str, str]:
    """The runtime's own group in each hierarchy: /proc/self/cgroup's controller field -> path."""
    own: dict[str, str] = {}
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, _, rest = line.rstrip("\n").partition(":")
            field, _, where = rest.partition(":")
            own[field] = where or "/"
    return own


def _below_own(h: Hierarchy, relative: str, own: dict[str, str]) -> str:
    """``relative`` joined to the runtime's own group in ``h`` (runc's relative cgroupsPath)."""
    mine = next((where for field, where in own.items() if h.matches(field)), None)
    if mine is None:
        raise CgroupError(
            errno.ENOENT,
            f"cgroupsPath {relative!r} is relative to the runtime's own group, but /proc/self/cgroup "
            f"names no group of the runtime in the {h.key} hierarchy: use an absolute cgroupsPath",
            step="cgroup create", filename="/proc/self/cgroup")
    return mine.rstrip("/") + "/" + relative


def _own_v2_path() -> str | None:
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                if line.startswith("0::"):
                    return line[3:].strip() or "/"
    except OSError:
        return None
    return None


def _read_pids(top: str, *, recursive: bool) -> list[int]:
    out: list[int] = []
    try:
        text = _read(os.path.join(top, "cgroup.procs"))
    except FileNotFoundError:
        return out
    out.extend(int(x) for x in text.split())
    if recursive:
        try:
            subdirs = [e.path for e in os.scandir(top) if e.is_dir(follow_symlinks=False)]
        except FileNotFoundError:
            return out
        for sub in subdirs:
            out.extend(_read_pids(sub, recursive=True))
    return out


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise cgroup_error(exc, "read", path) from None


def _read_raw(path: str) -> bytes:
    """A small cgroup file's bytes (one open, one read, one close: no text layer)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise cgroup_error(exc, "read", path) from None
    try:
        return os.read(fd, 65536)
    except OSError as exc:
        raise cgroup_error(exc, "read", path) from None
    finally:
        os.close(fd)


def _open_w(path: str, step: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise cgroup_error(exc, step, path) from None


def _write(path: str, data: str | bytes, step: str) -> None:
    fd = _open_w(path, step)
    try:
        os.write(fd, data.encode() if isinstance(data, str) else data)
    except OSError as exc:
        raise cgroup_error(exc, step, path) from None
    finally:
        os.close(fd)


def _not_settled(path: str, timeout: float) -> CgroupError:
    return CgroupError(errno.EBUSY, f"the freezer did not settle within {timeout:g} s: a process of the "
                       "container is probably in uninterruptible sleep (state D in /proc/PID/stat, e.g. "
                       "on a hung network filesystem); it was left running: try again later",
                       step="freeze cgroup", filename=path)


def _rmdir_quiet(path: str) -> None:
    try:
        os.rmdir(path)
    except OSError:
        pass


def join_self(fds: list[int]) -> None:
    """In a new child, before it runs anything else: join the group through the files
    :meth:`Cgroup.join_fds` opened in the parent (written ``0``, "the writer itself"), then close
    them.  The caller must be single-threaded (a freshly cloned child is): a v1 ``tasks`` file
    moves the writing thread only."""
    try:
        if fds and _thread.get_native_id() != os.getpid():
            raise CgroupError(errno.EINVAL, "join_self() moves the calling thread only: call it in "
                              "the main thread of a single-threaded child (right after the clone)",
                              step="join cgroup")
        for fd in fds:
            try:
                os.write(fd, b"0")
            except OSError as exc:
                raise cgroup_error(exc, "join cgroup", _fd_path(fd)) from None
    finally:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"


def _wait(predicate: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        try:
            if predicate():
                return True
        except (OSError, CgroupError):
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
