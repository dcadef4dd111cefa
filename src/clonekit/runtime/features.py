"""The OCI features document (runtime-spec ``features.md``) that ``clonekit features`` prints.

Generated from the same tables the code applies (mount options, namespaces, capabilities,
seccomp's actions/operators/architectures/flags, memory policy modes and flags, the LSMs this
kernel has), so it can only claim what really works.  What clonekit does not implement (Intel
RDT, id-mapped mounts, systemd cgroups) is reported with ``"enabled": false``.  The shape is
runc 1.3's (runtime-spec 1.3 ``features-linux.md``).
"""

from __future__ import annotations

from . import options as _opts
from .defaults import OCI_VERSION
from .plan import NAMESPACE_FLAGS

__all__ = ["features_document"]

HOOKS = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"]


def features_document() -> dict[str, object]:
    """A fresh dict in the shape of the runtime-spec's features document."""
    from .. import __version__
    from ..security import attrs, caps, lsm, seccomp

    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOKS),
        "mountOptions": _opts.recognised(),
        "linux": {
            "namespaces": sorted(NAMESPACE_FLAGS),
            "capabilities": caps.names_known_here(),
            # the container's own group, device rules and linux.resources' limits (v1 and v2 files)
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False, "rdma": False},
            "seccomp": seccomp.features(),
            "apparmor": {"enabled": lsm.apparmor_enabled()},
            "selinux": {"enabled": lsm.selinux_enabled()},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": True}},  # rootfs.sources (Linux 5.12+)
            "netDevices": {"enabled": True},  # runtime/netdevices.py
            "memoryPolicy": {"modes": list(attrs.MPOL_MODES), "flags": list(attrs.MPOL_FLAGS)},
        },
        # clonekit gives no annotation of config.json a meaning, so none is unsafe to pass on
        "potentiallyUnsafeConfigAnnotations": [],
        "annotations": {
            "org.clonekit.version": __version__,
            "org.clonekit.checkpoint.enabled": "false",
            "org.clonekit.cgroup.resources.enabled": "true",
            # process.scheduler has no features entry in the spec: every policy and flag is known
            "org.clonekit.process.scheduler.policies": ",".join(
                p for p in attrs.SCHED_POLICIES if p != "SCHED_ISO"),
            "org.clonekit.process.scheduler.flags": ",".join(attrs.SCHED_FLAGS),
        },
    }
