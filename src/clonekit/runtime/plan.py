"""A container as plain data: what ``spec`` builds from config.json, what the Python sandbox API
will build directly, and what ``container`` executes.  Every value here is already validated:
code that consumes a Plan never re-checks the config."""

from __future__ import annotations

from .. import _bits
from .._record import field, record
from ..security.confine import Confinement, User

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only: `state`, `kill`, `exec` need neither module loaded
    from ..cgroups.resources import Resources
    from ..security.attrs import MemoryPolicy
    from ..security.devices import DeviceRule
    from ..security.seccomp import Seccomp
    from .netdevices import NetDevice

__all__ = ["NAMESPACE_FLAGS", "Confinement", "DevicePlan", "Hook", "Hooks", "IdMapping", "MountPlan",
           "NamespacePlan", "Plan", "ProcessPlan", "User", "env_dict"]

NAMESPACE_FLAGS: dict[str, int] = {
    # OCI linux.namespaces[].type -> clone flag (ints: CloneFlag's enum costs import time)
    "pid": _bits.NEWPID, "network": _bits.NEWNET, "mount": _bits.NEWNS,
    "ipc": _bits.NEWIPC, "uts": _bits.NEWUTS, "user": _bits.NEWUSER,
    "cgroup": _bits.NEWCGROUP, "time": _bits.NEWTIME,
}


def env_dict(env: tuple[str, ...]) -> dict[str, str]:
    """("K=V", ...) as a dict; an entry without "=" is a variable with an empty value."""
    out: dict[str, str] = {}
    for item in env:
        key, _, value = item.partition("=")
        out[key] = value
    return out


@record(frozen=True)
class IdMapping:
    container_id: int
    host_id: int
    size: int


@record(frozen=True)
class NamespacePlan:
    kind: str                    # OCI type: pid network mount ipc uts user cgroup time
    path: str | None = None      # join this one instead of creating a new one

    @property
    def flag(self) -> int:
        return NAMESPACE_FLAGS[self.kind]


@record(frozen=True)
class MountPlan:
    destination: str             # absolute, inside the container, normalised (no "..")
    type: str | None             # "bind", "tmpfs", "proc", "sysfs", "devpts", "mqueue", "cgroup", ...
    source: str | None
    flags: int = 0               # MS_* bits to set (MS_BIND|MS_REC for rbind, MS_RDONLY, ...)
    clear_flags: int = 0         # MS_* bits the options cleared ("rw", "suid", "dev", "exec", ...)
    propagation: int = 0         # MS_PRIVATE/MS_SLAVE/MS_SHARED/MS_UNBINDABLE (| MS_REC), 0 = leave
    data: str = ""               # filesystem options (mode=755,size=65536k,...)
    recursive_set: int = 0       # MOUNT_ATTR_* for mount_setattr(AT_RECURSIVE): rro, rnosuid, ...
    recursive_clear: int = 0     # MOUNT_ATTR_* cleared recursively: rrw, rsuid, ...
    options: tuple[str, ...] = ()  # as written in config.json, for messages
    # an idmapped bind (mounts[].uid/gidMappings, the idmap/ridmap options): "idmap" for the
    # mount alone, "ridmap" for every mount below it too; no mappings = the container's own
    idmap: str = ""
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()

    @property
    def is_bind(self) -> bool:
        return bool(self.flags & 0x1000)  # MS_BIND


@record(frozen=True)
class DevicePlan:
    path: str                    # absolute, inside the container (e.g. /dev/fuse)
    type: str                    # "c", "b", "u" or "p"
    major: int
    minor: int
    file_mode: int = 0o666
    uid: int = 0
    gid: int = 0


@record(frozen=True)
class Hook:
    path: str
    args: tuple[str, ...] = ()
    env: tuple[str, ...] | None = None  # None: not given, the hook inherits (hooks.run_hooks)
    timeout: float | None = None  # seconds


@record(frozen=True)
class Hooks:
    prestart: tuple[Hook, ...] = ()          # deprecated by the spec, still run (as runc does)
    create_runtime: tuple[Hook, ...] = ()
    create_container: tuple[Hook, ...] = ()
    start_container: tuple[Hook, ...] = ()
    poststart: tuple[Hook, ...] = ()
    poststop: tuple[Hook, ...] = ()


@record(frozen=True)
class ProcessPlan:
    args: tuple[str, ...]
    env: tuple[str, ...] = ()
    cwd: str = "/"
    user: User = field(default_factory=User)
    terminal: bool = False
    console_size: tuple[int, int] | None = None  # process.consoleSize as (height, width)
    no_new_privileges: bool = False
    confinement: Confinement = field(default_factory=Confinement)  # caps, rlimits, ... (security/)


@record(frozen=True)
class Plan:
    oci_version: str
    root: str                    # absolute host path of the rootfs (bundle-relative resolved)
    root_readonly: bool = False
    process: ProcessPlan | None = None
    hostname: str | None = None
    domainname: str | None = None
    mounts: tuple[MountPlan, ...] = ()
    namespaces: tuple[NamespacePlan, ...] = ()
    uid_mappings: tuple[IdMapping, ...] = ()
    gid_mappings: tuple[IdMapping, ...] = ()
    devices: tuple[DevicePlan, ...] = ()
    masked_paths: tuple[str, ...] = ()
    readonly_paths: tuple[str, ...] = ()
    rootfs_propagation: int = 0  # MS_* propagation for "/" (0: the runtime's default, rslave)
    sysctl: tuple[tuple[str, str], ...] = ()
    time_offsets: tuple[tuple[str, int, int], ...] = ()  # (clock, secs, nanosecs)
    cgroups_path: str | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    hooks: Hooks = field(default_factory=Hooks)
    seccomp: Seccomp | None = None
    device_rules: tuple[DeviceRule, ...] = ()  # linux.resources.devices, as written
    resources: Resources | None = None  # linux.resources' cgroup limits (None: none set)
    memory_policy: MemoryPolicy | None = None  # linux.memoryPolicy: set_mempolicy in the init
    net_devices: tuple[NetDevice, ...] = ()  # linux.netDevices: moved in by `create` (netdevices.py)

    def namespace(self, kind: str) -> NamespacePlan | None:
        return next((ns for ns in self.namespaces if ns.kind == kind), None)

    @property
    def new_namespace_flags(self) -> int:
        """Flags of the namespaces to create (those without a path)."""
        flags = 0
        for ns in self.namespaces:
            if ns.path is None:
                flags |= ns.flag
        return flags
