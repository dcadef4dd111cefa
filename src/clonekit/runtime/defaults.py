"""The starting config.json that ``clonekit spec`` writes: the same shape as ``runc spec`` (and
``runc spec --rootless``), with clonekit's name as the hostname.

The config keeps the sections runc writes that clonekit accepts but does not apply yet
(capabilities, rlimits, the device cgroup rule): they describe the container a user expects, and
``spec.ignored_fields`` names them.
"""

from __future__ import annotations

import json
import os

from ..errors import UsageError

__all__ = ["OCI_VERSION", "SpecExists", "default_config", "write_spec"]

#: The runtime-spec version clonekit writes (and the highest it implements).
OCI_VERSION = "1.2.0"

_CAPS = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]

MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi",
    "/sys/devices/virtual/tpm",
)
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")


class SpecExists(UsageError, FileExistsError):
    """``spec`` refuses to overwrite a config.json."""


def _cgroup2_unified() -> bool:
    """A pure cgroup v2 host (then the container gets its own cgroup namespace, as runc does)."""
    return os.path.exists("/sys/fs/cgroup/cgroup.controllers")


def default_config(*, rootless: bool) -> dict[str, object]:
    """The config ``clonekit spec [--rootless]`` writes (a fresh dict each call)."""
    mounts: list[dict[str, object]] = [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": ["nosuid", "noexec", "nodev"]},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": ["nosuid", "noexec", "nodev", "ro"]},
        {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
         "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
    ]
    namespaces = [{"type": kind} for kind in ("pid", "network", "ipc", "uts", "mount")]
    if _cgroup2_unified():
        namespaces.append({"type": "cgroup"})
    linux: dict[str, object] = {
        "resources": {"devices": [{"allow": False, "access": "rwm"}]},
        "namespaces": namespaces,
        "maskedPaths": list(MASKED_PATHS),
        "readonlyPaths": list(READONLY_PATHS),
    }
    if rootless:
        # An unprivileged user: a user namespace mapping root to the caller, no network
        # namespace of its own (it could not be configured), sysfs bound from the host (a new
        # sysfs needs a network namespace owned by the user namespace), no uid=/gid= options
        # (the ids would be unmapped) and no cgroup rules.
        namespaces[:] = [ns for ns in namespaces if ns["type"] != "network"]
        namespaces.append({"type": "user"})
        linux["uidMappings"] = [{"containerID": 0, "hostID": os.geteuid(), "size": 1}]
        linux["gidMappings"] = [{"containerID": 0, "hostID": os.getegid(), "size": 1}]
        del linux["resources"]
        for i, mount in enumerate(mounts):
            if mount["destination"] == "/sys":
                mounts[i] = {"destination": "/sys", "type": "none", "source": "/sys",
                             "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]}
            elif "options" in mount:
                words = mount["options"]
                assert isinstance(words, list)
                mount["options"] = [w for w in words if not w.startswith(("uid=", "gid="))]
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": True,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": list(_CAPS), "effective": list(_CAPS),
                             "permitted": list(_CAPS)},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": True,
        },
        "root": {"path": "rootfs", "readonly": True},
        "hostname": "clonekit",
        "mounts": mounts,
        "linux": linux,
    }


def write_spec(bundle: str = ".", rootless: bool = False) -> str:
    """Write ``<bundle>/config.json`` (never over an existing one); returns its path."""
    path = os.path.join(bundle, "config.json")
    text = json.dumps(default_config(rootless=rootless), indent="\t") + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    except FileExistsError:
        raise SpecExists(f"File {path} exists. Remove it first, or write the spec into another "
                         "directory with --bundle") from None
    except FileNotFoundError:
        raise UsageError(f"cannot write {path}: the bundle directory {bundle} does not exist; "
                         "create it first") from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path
