"""The OCI features document (runtime-spec ``features.md``) that ``clonekit features`` prints.

Honest by construction: it lists what clonekit implements today, not what it parses.  Features not
implemented yet (capabilities, seccomp, AppArmor, SELinux, Intel RDT, id-mapped mounts, systemd
cgroups) are either absent (meaning "not reported") or reported with ``"enabled": false``.
"""

from __future__ import annotations

from . import options as _opts
from .defaults import OCI_VERSION

__all__ = ["features_document"]

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]
NAMESPACES = ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"]


def features_document() -> dict[str, object]:
    """A fresh dict in the shape of the runtime-spec's features document."""
    from .. import __version__

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": _opts.recognised(),
        "linux": {
            "namespaces": list(NAMESPACES),
            # placement of the container in its own group; resource limits come later
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": {"enabled": False},
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": False}},
        },
        # clonekit gives no annotation of config.json a meaning, so none is unsafe to pass on
        "potentiallyUnsafeConfigAnnotations": [],
        "annotations": {
            "org.clonekit.version": __version__,
            "org.clonekit.checkpoint.enabled": "false",
            "org.clonekit.cgroup.resources.enabled": "false",
        },
    }
