"""The state directory: one subdirectory per container under --root, written atomically,
locked per container, readable by any later clonekit process.

The container's init is identified by pid *and* start time (field 22 of /proc/PID/stat), so a
PID that was reused after the container ended is never taken for the container.
"""

from __future__ import annotations

import fcntl
import os

from .._jsonc import dumps, loads
from .._record import field, record
from .errors import ContainerExists, InvalidId, NoSuchContainer, StateDirError

__all__ = ["ContainerState", "StateDir", "default_root", "process_start_time"]

# runc's container id alphabet (its \w is ASCII): letters, digits, _ + - .
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")
STATE_FILE = "state.json"
FIFO = "exec.fifo"


def default_root() -> str:
    """/run/clonekit as root; $XDG_RUNTIME_DIR/clonekit rootless, as runc chooses: for a
    non-root user (else /run/user/UID), and for uid 0 of a user namespace other than the
    initial one (rootless podman) unless $USER says root -- there /run is the host's, and
    not ours to write."""
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() != 0:
        return os.path.join(xdg or f"/run/user/{os.geteuid()}", "clonekit")
    if xdg and os.environ.get("USER") != "root":
        from ..ns.userns import in_user_namespace

        if in_user_namespace():
            return os.path.join(xdg, "clonekit")
    return "/run/clonekit"


def process_start_time(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks since boot; None if it is gone or a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


@record
class ContainerState:
    id: str
    bundle: str
    rootfs: str
    pid: int = 0
    pid_start: int = 0
    created: str = ""
    annotations: dict[str, str] = field(default_factory=dict)
    owner: int = 0
    rootless: bool = False
    cgroup: dict[str, object] = field(default_factory=dict)   # Cgroup.to_state()
    resources: dict[str, object] = field(default_factory=dict)  # linux.resources after `update`
    hooks: dict[str, list[dict[str, object]]] = field(default_factory=dict)  # poststart, poststop
    started: bool = False
    oci_version: str = "1.2.0"
    no_process: bool = False  # config.json had no `process`: `start` refuses (runtime-spec)

    def init_alive(self) -> bool:
        return self.pid > 0 and process_start_time(self.pid) == self.pid_start

    def open_init(self) -> int | None:
        """A pidfd of the container's init, or None when it is gone.  Checked after the pidfd is
        open (start time), so the pidfd cannot be a later process that reused the pid."""
        if self.pid <= 0:
            return None
        try:
            pidfd = os.pidfd_open(self.pid)
        except ProcessLookupError:
            return None
        if process_start_time(self.pid) != self.pid_start:
            os.close(pidfd)
            return None
        return pidfd

    def status(self, state_dir: str) -> str:
        if not self.pid:
            return "creating"
        if not self.init_alive():
            return "stopped"
        if self.cgroup and self.frozen():
            return "paused"
        return "created" if os.path.exists(os.path.join(state_dir, FIFO)) else "running"

    def frozen(self) -> bool:
        """Whether the container's group is frozen (`pause`): read from the freezer each time,
        as runc does, so the state never disagrees with the kernel."""
        from ..cgroups.freezer import dirs_from_state, self_frozen

        return bool(self.cgroup) and self_frozen(*dirs_from_state(self.cgroup))

    def oci(self, state_dir: str, status: str | None = None) -> dict[str, object]:
        """The runtime-spec state document, plus runc's `created`, `rootfs` and `owner`."""
        status = status or self.status(state_dir)
        doc: dict[str, object] = {"ociVersion": self.oci_version, "id": self.id, "status": status,
                                  "pid": self.pid if status != "stopped" else 0,
                                  "bundle": self.bundle}
        if self.annotations:
            doc["annotations"] = self.annotations
        doc.update(rootfs=self.rootfs, created=self.created, owner="" if self.owner == 0 else str(self.owner))
        return doc


class StateDir:
    """--root: where containers are remembered."""

    def __init__(self, root: str | None = None) -> None:
        self.root = os.path.abspath(root or default_root())

    def path(self, container_id: str) -> str:
        check_id(container_id)
        return os.path.join(self.root, container_id)

    def create(self, container_id: str) -> str:
        """Make the container's directory; fails if the id is taken."""
        try:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
        except OSError as exc:
            raise StateDirError(
                f"cannot create the state directory {self.root}: {exc.strerror}; pass --root with "
                "a directory you can write (rootless, the default is $XDG_RUNTIME_DIR/clonekit)"
            ) from None
        path = self.path(container_id)
        try:
            os.mkdir(path, 0o711)
        except FileExistsError:
            raise ContainerExists(container_id) from None
        except OSError as exc:  # the root exists but is not ours (a user namespace's uid 0, /run)
            raise StateDirError(
                f"cannot create the container's state directory {path}: {exc.strerror}; pass --root "
                "with a directory you can write (in a user namespace, set XDG_RUNTIME_DIR: the "
                "default is then $XDG_RUNTIME_DIR/clonekit)"
            ) from None
        return path

    def lock(self, container_id: str, *, must_exist: bool = True) -> Lock:
        path = self.path(container_id)
        if must_exist and not os.path.isdir(path):
            raise NoSuchContainer(container_id, self.root)
        try:
            return Lock(path)
        except FileNotFoundError:  # removed by a concurrent `delete` since the check
            raise NoSuchContainer(container_id, self.root) from None

    def save(self, state: ContainerState) -> None:
        path = self.path(state.id)
        tmp = os.path.join(path, f".{STATE_FILE}.tmp")
        # the fields are JSON data already: the C encoder walks them (no asdict copy)
        data = dumps(vars(state)).encode()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            while data:  # a short write (a full disk) must not become a truncated state.json
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)
        # atomic for readers (they see the old file or the new one); not fsynced, as runc does
        # not: a container does not outlive a crash of the machine, so neither need its state
        os.replace(tmp, os.path.join(path, STATE_FILE))

    def load(self, container_id: str) -> ContainerState:
        try:
            with open(os.path.join(self.path(container_id), STATE_FILE), "rb") as f:
                doc = loads(f.read().decode())
        except FileNotFoundError:
            raise NoSuchContainer(container_id, self.root) from None
        return ContainerState(**doc)

    def exists(self, container_id: str) -> bool:
        return os.path.isdir(self.path(container_id))

    def ids(self) -> list[str]:
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        return [n for n in names if os.path.exists(os.path.join(self.root, n, STATE_FILE))]

    def remove(self, container_id: str) -> None:
        path = self.path(container_id)
        for name in os.listdir(path) if os.path.isdir(path) else ():
            os.unlink(os.path.join(path, name))
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass


class Lock:
    """An exclusive flock on the container's directory, held for one operation."""

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)

    def __enter__(self) -> Lock:
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)  # closing drops the lock


def check_id(container_id: str) -> None:
    if (not isinstance(container_id, str) or not container_id or not _ID_CHARS.issuperset(container_id)
            or container_id in (".", "..")):
        raise InvalidId(f"invalid container id {container_id!r}: use letters, digits, '_', '+', '-' "
                        "and '.' only (it names a directory in the state dir)")
    if len(container_id.encode()) > 255:
        raise InvalidId(f"container id of {len(container_id)} characters is too long: at most 255 "
                        "(it names a directory in the state dir)")
