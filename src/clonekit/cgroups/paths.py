"""From the spec's ``linux.cgroupsPath`` to the cgroup path clonekit uses.

* Absolute (``/clonekit-test/abc``): relative to the root of each hierarchy (of the caller's
  cgroup namespace), as in runc and crun.
* Relative (``abc`` or ``pod1/abc``): below the runtime's *own* group, in each hierarchy, as
  runc does (``/proc/self/cgroup`` says where that is; on a hybrid host it may differ per
  hierarchy).  :func:`resolve` returns it still relative; :meth:`Cgroup.create` joins it.  Only
  the directories clonekit made there are ever removed.
* Missing: placed under the clonekit-owned parent ``/clonekit`` (``/clonekit/<container id>``).
  runc uses the caller's own group here too; clonekit does not, because a bundle without a
  cgroupsPath (what ``spec`` writes) would then make groups inside whatever service started the
  runtime, which that service's manager removes, limits or kills along with it.
* The systemd driver's ``slice:prefix:name`` form is refused with a clear error: clonekit's cgroup
  manager is cgroupfs only.
* ``..`` components, NUL bytes and the root itself are refused: placement never leaves the
  hierarchy and never writes to a root group.
"""

from __future__ import annotations

from .errors import CgroupPathError

__all__ = ["OWNED_PARENT", "resolve"]

OWNED_PARENT = "/clonekit"


def resolve(cgroups_path: str | None, container_id: str) -> tuple[str, str | None]:
    """``(cgroup path, owned parent)``: the cgroup path of the container's group — absolute, or
    relative (no leading ``/``) for a relative cgroupsPath, to be joined to the runtime's own
    group — and the clonekit-owned parent under which every directory is clonekit's to remove
    when empty (None otherwise: then only the directories clonekit itself created are removed)."""
    if cgroups_path is None or cgroups_path == "":
        return f"{OWNED_PARENT}/{_component(container_id, 'container id')}", OWNED_PARENT
    if not isinstance(cgroups_path, str):
        raise CgroupPathError(f"cgroupsPath must be a string, not {type(cgroups_path).__name__}")
    if "\0" in cgroups_path:
        raise CgroupPathError("cgroupsPath contains a NUL byte")
    if not cgroups_path.startswith("/") and cgroups_path.count(":") == 2:
        raise CgroupPathError(
            f"cgroupsPath {cgroups_path!r} is in the systemd driver's \"slice:prefix:name\" form, "
            "but clonekit manages cgroups through the cgroup filesystem only (no systemd cgroup "
            "manager). Use a path instead: absolute like \"/clonekit/NAME\", or relative like "
            "\"NAME\" (placed under the runtime's own group, as runc does)"
        )
    parts = [p for p in cgroups_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise CgroupPathError(
            f"cgroupsPath {cgroups_path!r} contains \"..\": a container's group must stay inside "
            "the hierarchy it names; write the path without \"..\""
        )
    if not parts:
        raise CgroupPathError(
            f"cgroupsPath {cgroups_path!r} names the root cgroup: a container needs a group of its "
            "own (e.g. \"/clonekit/NAME\") so it can be listed, signalled and removed"
        )
    for part in parts:
        _component(part, "cgroupsPath component")
    if cgroups_path.startswith("/"):
        return "/" + "/".join(parts), None
    return "/".join(parts), None


def _component(name: str, what: str) -> str:
    if not name or name in (".", "..") or "/" in name or "\0" in name:
        raise CgroupPathError(f"{what} {name!r} cannot be a cgroup directory name")
    if len(name.encode()) > 255:
        raise CgroupPathError(f"{what} {name[:40]!r}... is longer than 255 bytes (NAME_MAX)")
    return name
