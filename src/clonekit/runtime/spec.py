"""config.json -> a validated :class:`~clonekit.runtime.plan.Plan`.

Everything is checked here, before the runtime creates anything: JSON types, paths, namespaces
(a ``path`` must be a namespace file of that kind), id maps, sysctls (only namespaced ones),
devices, hooks, mount options.  A problem raises :class:`SpecError`, which names the JSON path of
the bad value (``$.mounts[2].destination``), says what is wrong, why, and what to do.

A field the runtime-spec does not define is ignored, as the spec requires, with a warning in
--log (``jsonfields.check_fields``); a field it defines that clonekit cannot apply (yet, or on
this machine) is an error naming it, never silently dropped.  The confinement sections have
parsers of their own (``spec_confine``, ``spec_seccomp``, ``spec_devices``); fields the
runtime-spec defines for other operating systems are ignored, as on any Linux runtime.

Only ``json``, ``os``, ``stat`` and ``posixpath`` are imported (this runs on every ``create``).
"""

from __future__ import annotations

import os
import posixpath
import stat

from .._jsonc import dumps, loads
from ..security.attrs import Personality
from ..security.devices import DeviceRule
from . import options as _opts
from .jsonfields import SPEC, SpecError
from .jsonfields import boolean as _bool
from .jsonfields import check_fields as _fields
from .jsonfields import get as _get
from .jsonfields import integer as _int
from .jsonfields import key_path as _key
from .jsonfields import obj as _obj
from .jsonfields import seq as _list
from .jsonfields import str_list as _str_list
from .jsonfields import string as _str
from .jsonfields import uint32 as _uint32
from .plan import (
    NAMESPACE_FLAGS,
    DevicePlan,
    Hook,
    Hooks,
    IdMapping,
    MountPlan,
    NamespacePlan,
    Plan,
    ProcessPlan,
    User,
)
from .spec_confine import parse_confinement, parse_personality

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

    from ..cgroups.resources import Resources

__all__ = ["MAX_CONFIG_BYTES", "SpecError", "load_config", "load_plan", "parse_json", "plan_from_dict",
           "process_from_dict", "sysctl_file"]

UINT32_MAX = (1 << 32) - 1
INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
HOST_NAME_MAX = 64            # __NEW_UTS_LEN: the kernel's limit for hostname and domainname
MAX_ID_MAP_LINES = 340        # the kernel's limit of lines in uid_map / gid_map (4.15+)
NS_GET_NSTYPE = 0xB703        # ioctl on an nsfs file: its CLONE_NEW* type
MAX_CONFIG_BYTES = 32 << 20   # podman's largest configs are ~100 KiB; --config /dev/zero must end



# --------------------------------------------------------------------------------------------
# the fields of each object: every one is applied (or refused with a reason); OTHER_PLATFORMS are
# the runtime-spec's fields for other operating systems, ignored on Linux (type still checked).

TOP_KNOWN = frozenset({"ociVersion", "root", "process", "hostname", "domainname", "mounts", "hooks",
                       "annotations", "linux"})
TOP_OTHER_PLATFORMS: dict[str, type] = {"solaris": dict, "windows": dict, "vm": dict, "zos": dict}
ROOT_KNOWN = frozenset({"path", "readonly"})
PROCESS_KNOWN = frozenset({"args", "env", "cwd", "user", "terminal", "consoleSize", "noNewPrivileges",
                           "capabilities", "rlimits", "apparmorProfile", "selinuxLabel", "oomScoreAdj",
                           "ioPriority", "scheduler", "execCPUAffinity"})
PROCESS_OTHER_PLATFORMS: dict[str, type] = {"commandLine": str}
USER_KNOWN = frozenset({"uid", "gid", "umask", "additionalGids"})
USER_OTHER_PLATFORMS: dict[str, type] = {"username": str}
MOUNT_KNOWN = frozenset({"destination", "source", "type", "options", "uidMappings", "gidMappings"})
#: known, not implemented yet: refused with the reason (never silently dropped)
MOUNT_NOT_YET: dict[str, str] = {}
LINUX_KNOWN = frozenset({"namespaces", "uidMappings", "gidMappings", "devices", "maskedPaths",
                         "readonlyPaths", "rootfsPropagation", "sysctl", "timeOffsets",
                         "cgroupsPath", "resources", "seccomp", "personality", "mountLabel",
                         "intelRdt", "netDevices", "memoryPolicy"})
LINUX_NOT_YET = {
    "intelRdt": "Intel RDT (resctrl) is not implemented",
}
CONSOLE_SIZE_KNOWN = frozenset({"height", "width"})
NAMESPACE_KNOWN = frozenset({"type", "path"})
IDMAP_KNOWN = frozenset({"containerID", "hostID", "size"})
DEVICE_KNOWN = frozenset({"type", "path", "major", "minor", "fileMode", "uid", "gid"})
HOOKS_KNOWN = {  # config.json name -> Hooks field
    "prestart": "prestart", "createRuntime": "create_runtime", "createContainer": "create_container",
    "startContainer": "start_container", "poststart": "poststart", "poststop": "poststop",
}
HOOK_KNOWN = frozenset({"path", "args", "env", "timeout"})
TIME_CLOCKS = ("monotonic", "boottime")
TIME_KNOWN = frozenset({"secs", "nanosecs"})

ROOTFS_PROPAGATION = {
    "private": _opts.MS_PRIVATE, "rprivate": _opts.MS_PRIVATE | _opts.MS_REC,
    "slave": _opts.MS_SLAVE, "rslave": _opts.MS_SLAVE | _opts.MS_REC,
    "shared": _opts.MS_SHARED, "rshared": _opts.MS_SHARED | _opts.MS_REC,
    "unbindable": _opts.MS_UNBINDABLE, "runbindable": _opts.MS_UNBINDABLE | _opts.MS_REC,
}

#: IPC sysctls (kernel/ipc/ipc_sysctl.c): per IPC namespace.  Plus everything under fs.mqueue.
IPC_SYSCTLS = frozenset({"kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem",
                         "kernel.shmall", "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced"})

_SWAP_DOT_SLASH = str.maketrans("./", "/.")
_NS_KIND_OF_FLAG = {int(flag): kind for kind, flag in NAMESPACE_FLAGS.items()}


def _abs_path(value: object, path: str, what: str, *, allow_root: bool = True) -> str:
    """An absolute container path, normalised; ".." is refused (it could step out of the rootfs
    once symlinks are resolved in the container)."""
    text = _str(value, path)
    if not text.startswith("/"):
        raise SpecError(path, f"{what} {dumps(text)} is not absolute: {SPEC} requires absolute "
                              f"paths inside the container; write it as \"/{text}\"")
    if ".." in text.split("/"):
        raise SpecError(path, f"{what} {dumps(text)} contains \"..\": paths are resolved inside "
                              "the rootfs, where \"..\" after a symlink can lead elsewhere; write the "
                              "path without \"..\"")
    norm = posixpath.normpath(text)
    if norm.startswith("//"):
        norm = "/" + norm.lstrip("/")
    if norm == "/" and not allow_root:
        raise SpecError(path, f"{what} is \"/\", the container's root itself: the root comes from "
                              "root.path; use another destination")
    return norm


# --------------------------------------------------------------------------------------------
# sections

def _oci_version(doc: dict[str, Any]) -> str:
    value = _get(doc, "ociVersion")
    if value is None:
        raise SpecError("$.ociVersion", "missing: every config.json must say which runtime-spec version "
                                        "it follows; add \"ociVersion\": \"1.2.0\"")
    text = _str(value, "$.ociVersion")
    core = text.split("+", 1)[0].split("-", 1)[0]
    parts = core.split(".")
    if len(parts) != 3 or not all(p.isdigit() and p.isascii() for p in parts):
        raise SpecError("$.ociVersion", f"{dumps(text)} is not a SemVer version (MAJOR.MINOR.PATCH): "
                                        f"{SPEC} requires SemVer 2.0.0; write e.g. \"1.2.0\"")
    if parts[0] != "1":
        raise SpecError("$.ociVersion", f"version {text} is not 1.x: clonekit implements {SPEC} 1.x "
                                        "(1.0.0 to 1.2.0); write a 1.x config")
    return text


def _root(doc: dict[str, Any], bundle: str) -> tuple[str, bool]:
    value = _get(doc, "root")
    if value is None:
        raise SpecError("$.root", "missing: on Linux the container needs a root filesystem; add "
                                  "\"root\": {\"path\": \"rootfs\"} (a directory, relative to the bundle)")
    root = _obj(value, "$.root")
    _fields(root, "$.root", ROOT_KNOWN, what="root")
    if _get(root, "path") is None:
        raise SpecError("$.root.path", "missing: the path of the root filesystem (relative to the "
                                       "bundle or absolute); add \"path\": \"rootfs\"")
    text = _str(root["path"], "$.root.path")
    if not text:
        raise SpecError("$.root.path", "is empty: name the root filesystem's directory, e.g. \"rootfs\"")
    full = os.path.join(bundle, text)
    try:
        st = os.stat(full)
    except FileNotFoundError:
        raise SpecError("$.root.path", f"{full} does not exist: the root filesystem must be a directory "
                                       "before create; unpack an image there or fix the path") from None
    except OSError as exc:
        raise SpecError("$.root.path", f"cannot stat {full}: {exc.strerror}; check the path and its "
                                       "permissions") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SpecError("$.root.path", f"{full} is not a directory: the root filesystem must be a "
                                       "directory (pivot_root needs one); point root.path at one")
    readonly = False
    if _get(root, "readonly") is not None:
        readonly = _bool(root["readonly"], "$.root.readonly")
    return os.path.realpath(full), readonly


def _process(value: object, personality: Personality | None) -> ProcessPlan:
    proc = _obj(value, "$.process")
    _fields(proc, "$.process", PROCESS_KNOWN, PROCESS_OTHER_PLATFORMS, "process")
    args_v = _get(proc, "args")
    if args_v is None:
        raise SpecError("$.process.args", "missing: the program to run (args[0]) and its arguments; "
                                          "add \"args\": [\"sh\"]")
    args = _str_list(args_v, "$.process.args")
    if not args:
        raise SpecError("$.process.args", "is empty: args[0] is the program to run and is required on "
                                          "Linux; add at least one element")
    if not args[0]:
        raise SpecError("$.process.args[0]", "is empty: it names the program to run; write its path")
    cwd_v = _get(proc, "cwd")
    if cwd_v is None:
        raise SpecError("$.process.cwd", f"missing: {SPEC} requires the working directory; add "
                                         "\"cwd\": \"/\"")
    cwd = _str(cwd_v, "$.process.cwd")
    if not cwd.startswith("/"):
        raise SpecError("$.process.cwd", f"{dumps(cwd)} is not absolute: {SPEC} requires an "
                                         "absolute path inside the container; e.g. \"/\"")
    cwd = posixpath.normpath(cwd)
    if cwd.startswith("//"):
        cwd = "/" + cwd.lstrip("/")
    env = _env(proc["env"], "$.process.env") if _get(proc, "env") is not None else ()
    terminal = False
    if _get(proc, "terminal") is not None:
        terminal = _bool(proc["terminal"], "$.process.terminal")
    nnp = False
    if _get(proc, "noNewPrivileges") is not None:
        nnp = _bool(proc["noNewPrivileges"], "$.process.noNewPrivileges")
    user = User()
    if _get(proc, "user") is not None:
        user = _user(proc["user"])
    console_size = None
    if _get(proc, "consoleSize") is not None:
        size = _obj(proc["consoleSize"], "$.process.consoleSize")
        _fields(size, "$.process.consoleSize", CONSOLE_SIZE_KNOWN, what="process.consoleSize")
        height, width = (_uint32(size[key], f"$.process.consoleSize.{key}")
                         if _get(size, key) is not None else 0 for key in ("height", "width"))
        if height > 0xFFFF or width > 0xFFFF:  # struct winsize holds unsigned shorts
            raise SpecError("$.process.consoleSize", f"{height}x{width} is larger than a terminal "
                            "can be (65535 rows or columns at most)")
        console_size = (height, width)
    return ProcessPlan(args=args, env=env, cwd=cwd, user=user, terminal=terminal,
                       console_size=console_size, no_new_privileges=nnp,
                       confinement=parse_confinement(proc, nnp, personality))


def _env(value: object, path: str) -> tuple[str, ...]:
    env = _str_list(value, path)
    for i, item in enumerate(env):
        if not item.partition("=")[0] or "=" not in item:
            raise SpecError(f"{path}[{i}]", f"{dumps(item)} is not NAME=VALUE: environment entries "
                                            "need a name and \"=\"; write e.g. \"TERM=xterm\"")
    return env


def _user(value: object) -> User:
    u = _obj(value, "$.process.user")
    _fields(u, "$.process.user", USER_KNOWN, USER_OTHER_PLATFORMS, "process.user")
    uid = _uint32(u["uid"], "$.process.user.uid") if _get(u, "uid") is not None else 0
    gid = _uint32(u["gid"], "$.process.user.gid") if _get(u, "gid") is not None else 0
    umask = None
    if _get(u, "umask") is not None:
        umask = _int(u["umask"], "$.process.user.umask", 0, 0o777,
                     "a umask (permission bits, 0 to 0o777 = 511)")
    gids: tuple[int, ...] = ()
    if _get(u, "additionalGids") is not None:
        items = _list(u["additionalGids"], "$.process.user.additionalGids")
        gids = tuple(_uint32(g, f"$.process.user.additionalGids[{i}]") for i, g in enumerate(items))
    return User(uid=uid, gid=gid, umask=umask, additional_gids=gids)


def _hostname(doc: dict[str, Any], key: str) -> str | None:
    if _get(doc, key) is None:
        return None
    text = _str(doc[key], f"$.{key}")
    if len(text.encode()) > HOST_NAME_MAX:
        raise SpecError(f"$.{key}", f"is {len(text.encode())} bytes long: the kernel keeps at most "
                                    f"{HOST_NAME_MAX} bytes (__NEW_UTS_LEN); shorten it")
    return text or None


def _mounts(value: object, bundle: str) -> tuple[MountPlan, ...]:
    items = _list(value, "$.mounts")
    return tuple(_mount(item, f"$.mounts[{i}]", bundle) for i, item in enumerate(items))


def _mount(value: object, path: str, bundle: str) -> MountPlan:
    m = _obj(value, path)
    _fields(m, path, MOUNT_KNOWN | MOUNT_NOT_YET.keys(), what="a mount")
    _not_yet(m, path, MOUNT_NOT_YET)
    if _get(m, "destination") is None:
        raise SpecError(f"{path}.destination", "missing: where the mount goes in the container; add "
                                               "\"destination\": \"/...\"")
    # "/" is allowed: a mount over the whole rootfs (runc and crun take it; later mounts stack on it)
    dest = _abs_path(m["destination"], f"{path}.destination", "the mount destination")
    words: tuple[str, ...] = ()
    if _get(m, "options") is not None:
        words = _str_list(m["options"], f"{path}.options")
        for i, word in enumerate(words):
            if not word:
                raise SpecError(f"{path}.options[{i}]", "is an empty option: mount options are words "
                                                        "like \"ro\" or \"mode=755\"; remove it")
            if word in _opts.UNSUPPORTED:
                raise SpecError(f"{path}.options[{i}]", f"{dumps(word)}: {_opts.UNSUPPORTED[word]}, and "
                                                        "clonekit applies every option it accepts; "
                                                        "remove it")
    fstype = None
    if _get(m, "type") is not None:
        fstype = _str(m["type"], f"{path}.type") or None
    source = None
    if _get(m, "source") is not None:
        source = _str(m["source"], f"{path}.source") or None
    tr = _opts.translate(words)
    is_bind = fstype == "bind" or bool(tr.flags & _opts.MS_BIND)
    if is_bind:
        tr.flags |= _opts.MS_BIND
        if source is None:
            raise SpecError(f"{path}.source", "missing: a bind mount needs the host path to bind; add "
                                              "\"source\": \"/host/path\"")
        source = posixpath.normpath(os.path.join(bundle, source))
        fstype = "bind"
    elif fstype is None or fstype == "none":
        raise SpecError(f"{path}.type", "missing: a mount that is not a bind mount needs a filesystem "
                                        "type for mount(2); add \"type\": \"tmpfs\" (or proc, sysfs, "
                                        "...), or the option \"bind\"/\"rbind\" for a bind mount")
    maps = {key: _id_mappings(m[key], f"{path}.{key}", key[:3]) for key in ("uidMappings", "gidMappings")
            if _get(m, key) is not None}
    maps = {key: value for key, value in maps.items() if value}  # [] maps nothing (as runc reads it)
    idmap = tr.idmap or ("idmap" if maps else "")  # mappings alone make an idmapped mount (runc)
    if idmap and not is_bind:
        where = f"{path}.options" if tr.idmap else f"{path}.{next(iter(maps))}"
        raise SpecError(where, f"an idmapped mount ({idmap}) must be a bind mount: the kernel idmaps "
                               "a detached copy of a tree (mount_setattr MOUNT_ATTR_IDMAP); add "
                               "\"bind\" or \"rbind\" to the options")
    if len(maps) == 1:
        missing = "gidMappings" if "uidMappings" in maps else "uidMappings"
        raise SpecError(f"{path}.{missing}", f"missing while {next(iter(maps))} is given: an idmapped "
                                             "mount maps both ids (the kernel takes one user namespace "
                                             "for both); add it")
    return MountPlan(destination=dest, type=fstype, source=source, flags=tr.flags,
                     clear_flags=tr.clear_flags, propagation=tr.propagation, data=",".join(tr.data),
                     recursive_set=tr.recursive_set, recursive_clear=tr.recursive_clear,
                     options=words, idmap=idmap, uid_mappings=maps.get("uidMappings", ()),
                     gid_mappings=maps.get("gidMappings", ()))


def _hooks(value: object) -> Hooks:
    h = _obj(value, "$.hooks")
    _fields(h, "$.hooks", HOOKS_KNOWN, what="hooks")
    kinds: dict[str, tuple[Hook, ...]] = {}
    for name, attr in HOOKS_KNOWN.items():
        if _get(h, name) is None:
            continue
        items = _list(h[name], f"$.hooks.{name}")
        kinds[attr] = tuple(_hook(item, f"$.hooks.{name}[{i}]") for i, item in enumerate(items))
    return Hooks(**kinds)


def _hook(value: object, path: str) -> Hook:
    h = _obj(value, path)
    _fields(h, path, HOOK_KNOWN, what="a hook")
    if _get(h, "path") is None:
        raise SpecError(f"{path}.path", "missing: the program the hook runs; add \"path\": \"/usr/bin/...\"")
    exe = _str(h["path"], f"{path}.path")
    if not exe.startswith("/"):
        raise SpecError(f"{path}.path", f"{dumps(exe)} is not absolute: {SPEC} requires an "
                                        "absolute path for hooks (no $PATH search); write the full path")
    args = _str_list(h["args"], f"{path}.args") if _get(h, "args") is not None else ()
    env = _env(h["env"], f"{path}.env") if _get(h, "env") is not None else None
    timeout = None
    if _get(h, "timeout") is not None:
        timeout = float(_int(h["timeout"], f"{path}.timeout", 1, INT64_MAX,
                             "a timeout in whole seconds, greater than zero"))
    return Hook(path=exe, args=args, env=env, timeout=timeout)


def _annotations(value: object) -> tuple[tuple[str, str], ...]:
    a = _obj(value, "$.annotations")
    out = []
    for key, val in a.items():
        _str(key, _key("$.annotations", key))
        if not key:
            raise SpecError("$.annotations", "has an empty key: annotation keys must be non-empty "
                                             "(reverse-domain names like \"org.example.key\")")
        out.append((key, _str(val, _key("$.annotations", key))))
    return tuple(out)


def _namespaces(value: object) -> tuple[NamespacePlan, ...]:
    items = _list(value, "$.linux.namespaces")
    seen: dict[str, int] = {}
    out = []
    for i, item in enumerate(items):
        path = f"$.linux.namespaces[{i}]"
        ns = _obj(item, path)
        _fields(ns, path, NAMESPACE_KNOWN, what="a namespace")
        if _get(ns, "type") is None:
            raise SpecError(f"{path}.type", f"missing: one of {', '.join(NAMESPACE_FLAGS)}")
        kind = _str(ns["type"], f"{path}.type")
        if kind not in NAMESPACE_FLAGS:
            raise SpecError(f"{path}.type", f"{dumps(kind)} is not a namespace type: {SPEC} names "
                                            f"them {', '.join(NAMESPACE_FLAGS)}; use one of those")
        if kind in seen:
            raise SpecError(f"{path}.type", f"namespace {kind!r} is listed twice (also at "
                                            f"$.linux.namespaces[{seen[kind]}]): {SPEC} requires each "
                                            "type at most once; remove one")
        seen[kind] = i
        ns_path = None
        if _get(ns, "path") is not None:
            ns_path = _str(ns["path"], f"{path}.path") or None
        if ns_path is not None:
            _check_ns_file(ns_path, kind, f"{path}.path")
        out.append(NamespacePlan(kind=kind, path=ns_path))
    return tuple(out)


def _check_ns_file(ns_path: str, kind: str, path: str) -> None:
    """``ns_path`` must be an nsfs file of ``kind`` (NS_GET_NSTYPE says which kind it is)."""
    if not ns_path.startswith("/"):
        raise SpecError(path, f"{dumps(ns_path)} is not absolute: {SPEC} requires an absolute "
                              "path to a namespace file (e.g. /proc/PID/ns/net or /run/netns/NAME)")
    try:
        st = os.stat(ns_path)
    except OSError as exc:
        raise SpecError(path, f"cannot use {ns_path} to join a {kind} namespace: {exc.strerror}; give "
                              "the path of an existing namespace file (/proc/PID/ns/... or a bind "
                              "mount of one)") from None
    if not stat.S_ISREG(st.st_mode):
        proc_name = {"network": "net", "mount": "mnt"}.get(kind, kind)
        raise SpecError(path, f"{ns_path} is not a namespace file (not even a regular file): name "
                              f"/proc/PID/ns/{proc_name} or a bind mount of it")
    import fcntl  # small C module, only when a config joins a namespace
    try:
        fd = os.open(ns_path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK)
    except OSError as exc:
        raise SpecError(path, f"cannot open {ns_path}: {exc.strerror}; the runtime must be allowed to "
                              "open the namespace file (ptrace access to its process)") from None
    try:
        found = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        found = None
    finally:
        os.close(fd)
    if found is None:
        raise SpecError(path, f"{ns_path} is not a namespace file: the kernel does not know it as one "
                              f"(NS_GET_NSTYPE fails); name /proc/PID/ns/... of a process in the {kind} "
                              "namespace to join, or a bind mount of it")
    if found != int(NAMESPACE_FLAGS[kind]):
        other = _NS_KIND_OF_FLAG.get(found, hex(found))
        raise SpecError(path, f"{ns_path} is a {other} namespace, not a {kind} namespace: setns() would "
                              f"refuse it (EINVAL); give a {kind} namespace file here")


def _id_mappings(value: object, path: str, what: str) -> tuple[IdMapping, ...]:
    items = _list(value, path)
    if len(items) > MAX_ID_MAP_LINES:
        raise SpecError(path, f"has {len(items)} entries: the kernel accepts at most {MAX_ID_MAP_LINES} "
                              f"lines in {what}_map; merge adjacent ranges")
    out: list[IdMapping] = []
    for i, item in enumerate(items):
        p = f"{path}[{i}]"
        m = _obj(item, p)
        _fields(m, p, IDMAP_KNOWN, what="an id mapping")
        for key in ("containerID", "hostID", "size"):
            if _get(m, key) is None:
                raise SpecError(f"{p}.{key}", "missing: an id mapping needs containerID, hostID and size")
        cid = _uint32(m["containerID"], f"{p}.containerID")
        hid = _uint32(m["hostID"], f"{p}.hostID")
        size = _int(m["size"], f"{p}.size", 1, UINT32_MAX, "a range size of at least 1")
        for key, start in (("containerID", cid), ("hostID", hid)):
            if start + size - 1 > UINT32_MAX - 1:
                raise SpecError(f"{p}.size", f"{key} {start} + size {size} passes {UINT32_MAX - 1}, the "
                                             "largest id (4294967295 is the invalid id -1); shrink it")
        for j, prev in enumerate(out):
            if cid < prev.container_id + prev.size and prev.container_id < cid + size:
                raise SpecError(f"{p}.containerID", f"container ids {cid}..{cid + size - 1} overlap "
                                                    f"{path}[{j}]: the kernel refuses overlapping "
                                                    f"ranges in {what}_map (EINVAL); make them disjoint")
            if hid < prev.host_id + prev.size and prev.host_id < hid + size:
                raise SpecError(f"{p}.hostID", f"host ids {hid}..{hid + size - 1} overlap {path}[{j}]: "
                                               f"the kernel refuses overlapping ranges in {what}_map "
                                               "(EINVAL); make them disjoint")
        out.append(IdMapping(container_id=cid, host_id=hid, size=size))
    return tuple(out)


def _devices(value: object) -> tuple[DevicePlan, ...]:
    items = _list(value, "$.linux.devices")
    out = []
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        p = f"$.linux.devices[{i}]"
        d = _obj(item, p)
        _fields(d, p, DEVICE_KNOWN, what="a device")
        if _get(d, "path") is None:
            raise SpecError(f"{p}.path", "missing: where the device node goes, e.g. \"/dev/fuse\"")
        dpath = _abs_path(d["path"], f"{p}.path", "the device path", allow_root=False)
        if dpath in seen:
            raise SpecError(f"{p}.path", f"{dpath} is listed twice (also at $.linux.devices[{seen[dpath]}]"
                                         "): one path can hold one device node; remove one")
        seen[dpath] = i
        if _get(d, "type") is None:
            raise SpecError(f"{p}.type", "missing: \"c\" (character), \"b\" (block), \"u\" (unbuffered "
                                         "character) or \"p\" (FIFO)")
        dtype = _str(d["type"], f"{p}.type")
        if dtype not in ("c", "b", "u", "p"):
            raise SpecError(f"{p}.type", f"{dumps(dtype)} is not a device type: {SPEC} knows \"c\", "
                                         "\"b\", \"u\" and \"p\"; use one of those")
        major = minor = 0
        if dtype != "p":
            for key in ("major", "minor"):
                if _get(d, key) is None:
                    raise SpecError(f"{p}.{key}", f"missing: a {'block' if dtype == 'b' else 'character'}"
                                                  " device needs its major and minor numbers (ls -l "
                                                  "/dev/... shows them)")
            major = _int(d["major"], f"{p}.major", 0, (1 << 12) - 1, "a major number (0 to 4095)")
            minor = _int(d["minor"], f"{p}.minor", 0, (1 << 20) - 1, "a minor number (0 to 1048575)")
        else:
            for key in ("major", "minor"):
                if _get(d, key) is not None:
                    _int(d[key], f"{p}.{key}", 0, INT64_MAX)
        mode = 0o666
        if _get(d, "fileMode") is not None:
            mode = _uint32(d["fileMode"], f"{p}.fileMode") & 0o7777
        uid = _uint32(d["uid"], f"{p}.uid") if _get(d, "uid") is not None else 0
        gid = _uint32(d["gid"], f"{p}.gid") if _get(d, "gid") is not None else 0
        out.append(DevicePlan(path=dpath, type=dtype, major=major, minor=minor, file_mode=mode,
                              uid=uid, gid=gid))
    return tuple(out)


def _paths(value: object, path: str, what: str) -> tuple[str, ...]:
    items = _list(value, path)
    return tuple(_abs_path(item, f"{path}[{i}]", what, allow_root=False) for i, item in enumerate(items))


def _sysctl_name(name: str) -> str:
    """sysctl(8)'s dotted form; "/"-separated names are converted (dots inside then become "/")."""
    first = next((c for c in name if c in "./"), ".")
    if first == "/":
        return name.translate(_SWAP_DOT_SLASH)
    return name


def sysctl_file(name: str) -> str:
    """The file under /proc/sys of a Plan's (dotted) sysctl name: "net.ipv4.conf.eth0/100.forwarding"
    -> "/proc/sys/net/ipv4/conf/eth0.100/forwarding"."""
    return "/proc/sys/" + name.translate(_SWAP_DOT_SLASH)


def _sysctls(value: object) -> tuple[tuple[str, str], ...]:
    s = _obj(value, "$.linux.sysctl")
    out: dict[str, str] = {}
    for key, val in s.items():
        p = _key("$.linux.sysctl", key)
        _str(key, p)
        text = _str(val, p)
        name = _sysctl_name(key)
        # the file is /proc/sys/ + the dotted name with "." -> "/" (and "/" inside a word -> ".")
        if any(part.replace("/", ".") in ("", ".", "..") for part in name.split(".")):
            raise SpecError(p, f"{dumps(key)} is not a sysctl name: names are dot-separated words "
                               "under /proc/sys (e.g. \"net.ipv4.ip_forward\"); fix the name")
        if name in out:
            raise SpecError(p, f"sysctl {name} is given twice (once with \"/\" separators): keep one")
        out[name] = text
    return tuple(out.items())


def _time_offsets(value: object) -> tuple[tuple[str, int, int], ...]:
    t = _obj(value, "$.linux.timeOffsets")
    out = []
    for clock, entry in t.items():
        p = _key("$.linux.timeOffsets", clock)
        if clock not in TIME_CLOCKS:
            raise SpecError(p, f"{dumps(clock)} is not a clock a time namespace can offset: the "
                               "kernel offsets only \"monotonic\" and \"boottime\"; use those")
        e = _obj(entry, p)
        _fields(e, p, TIME_KNOWN, what="a time offset")
        secs = _int(e["secs"], f"{p}.secs", INT64_MIN, INT64_MAX) if _get(e, "secs") is not None else 0
        nsecs = 0
        if _get(e, "nanosecs") is not None:
            nsecs = _int(e["nanosecs"], f"{p}.nanosecs", 0, 999_999_999, "nanoseconds (0 to 999999999)")
        out.append((clock, secs, nsecs))
    return tuple(out)


def _cgroups_path(value: object) -> str | None:
    text = _str(value, "$.linux.cgroupsPath")
    if not text:
        return None
    if ".." in text.replace(":", "/").split("/"):
        raise SpecError("$.linux.cgroupsPath", f"{dumps(text)} contains \"..\": a container's cgroup "
                                               "must stay inside the cgroup tree it names; write the "
                                               "path without \"..\"")
    return text


def _linux(value: object) -> dict[str, Any]:
    linux = _obj(value, "$.linux")
    _fields(linux, "$.linux", LINUX_KNOWN, what="linux")
    _not_yet(linux, "$.linux", LINUX_NOT_YET)
    out: dict[str, Any] = {}
    g = linux.get
    if g("resources") is not None:
        out["device_rules"], out["resources"] = _resources(linux["resources"])
    if g("seccomp") is not None:
        from .spec_seccomp import parse_seccomp

        out["seccomp"] = parse_seccomp(linux["seccomp"])
    if g("mountLabel") is not None and _str(linux["mountLabel"], "$.linux.mountLabel"):
        from ..security.lsm import selinux_enabled

        why = ("labelling mounts is not implemented yet" if selinux_enabled() else
               "SELinux is not enabled on this kernel, so the mounts would carry no label")
        raise SpecError("$.linux.mountLabel", f"{why}; remove the field")
    if g("namespaces") is not None:
        out["namespaces"] = _namespaces(linux["namespaces"])
    if g("uidMappings") is not None:
        out["uid_mappings"] = _id_mappings(linux["uidMappings"], "$.linux.uidMappings", "uid")
    if g("gidMappings") is not None:
        out["gid_mappings"] = _id_mappings(linux["gidMappings"], "$.linux.gidMappings", "gid")
    if g("devices") is not None:
        out["devices"] = _devices(linux["devices"])
    if g("maskedPaths") is not None:
        out["masked_paths"] = _paths(linux["maskedPaths"], "$.linux.maskedPaths", "a masked path")
    if g("readonlyPaths") is not None:
        out["readonly_paths"] = _paths(linux["readonlyPaths"], "$.linux.readonlyPaths",
                                       "a read-only path")
    if g("rootfsPropagation") is not None:
        prop = _str(linux["rootfsPropagation"], "$.linux.rootfsPropagation")
        if prop:
            if prop not in ROOTFS_PROPAGATION:
                raise SpecError("$.linux.rootfsPropagation",
                                f"{dumps(prop)} is not a propagation: use one of "
                                f"{', '.join(ROOTFS_PROPAGATION)}")
            out["rootfs_propagation"] = ROOTFS_PROPAGATION[prop]
    if g("sysctl") is not None:
        out["sysctl"] = _sysctls(linux["sysctl"])
    if g("timeOffsets") is not None:
        out["time_offsets"] = _time_offsets(linux["timeOffsets"])
    if g("cgroupsPath") is not None:
        out["cgroups_path"] = _cgroups_path(linux["cgroupsPath"])
    if g("memoryPolicy") is not None:
        from .spec_confine import parse_memory_policy

        out["memory_policy"] = parse_memory_policy(linux["memoryPolicy"])
    if g("netDevices") is not None:
        from .netdevices import parse_net_devices

        out["net_devices"] = parse_net_devices(linux["netDevices"])
    return out


def _resources(value: object) -> tuple[tuple[DeviceRule, ...], Resources | None]:
    """linux.resources: the device rules (security.devices) and the cgroup limits
    (cgroups.resources, applied by `create`)."""
    from ..cgroups.resources import Resources
    from .spec_resources import parse_resources

    res = _obj(value, "$.linux.resources")
    limits: Resources | None = parse_resources(res)
    if limits == Resources():
        limits = None
    if _get(res, "devices") is None:
        return (), limits
    from .spec_devices import parse_device_rules

    return parse_device_rules(res["devices"]), limits


def _not_yet(doc: dict[str, Any], path: str, fields: dict[str, str]) -> None:
    for key, why in fields.items():
        if _get(doc, key) is not None:
            raise SpecError(_key(path, key), f"{why}, and clonekit never ignores a field it cannot "
                                             "apply; remove the field")


# --------------------------------------------------------------------------------------------
# rules across sections

def _in_map(ident: int, mappings: tuple[IdMapping, ...]) -> bool:
    return any(m.container_id <= ident < m.container_id + m.size for m in mappings)


def _cross_check(plan: Plan, doc: dict[str, Any], rootless: bool) -> None:
    ns = {n.kind: n for n in plan.namespaces}
    ns_path = "$.linux.namespaces"
    if "mount" not in ns:
        _shared_mount_table(plan, doc)
    user = ns.get("user")
    has_maps = bool(plan.uid_mappings or plan.gid_mappings)
    if user is None:
        if has_maps:
            which = "uidMappings" if plan.uid_mappings else "gidMappings"
            raise SpecError(f"$.linux.{which}", "id mappings are given but there is no user namespace: "
                                                "mappings belong to a new user namespace; add "
                                                "{\"type\": \"user\"} to linux.namespaces or drop them")
        if rootless:
            raise SpecError(ns_path, "has no \"user\" namespace, but the runtime runs rootless: an "
                                     "unprivileged user can create the other namespaces only inside a "
                                     "user namespace it owns; add {\"type\": \"user\"} with uidMappings "
                                     "and gidMappings (`clonekit spec --rootless` writes them)")
    elif user.path is not None:
        if has_maps:
            which = "uidMappings" if plan.uid_mappings else "gidMappings"
            raise SpecError(f"$.linux.{which}", f"the user namespace is joined ({user.path}), and a joined "
                                                "namespace already has its mappings; drop the mappings or "
                                                "create a new user namespace (no path)")
    else:
        # uidMappings/gidMappings are OPTIONAL: one not given is not written, and the namespace
        # maps no id of that kind (all show as the overflow id, 65534); runc refuses that, crun
        # maps 0 to itself.  Nothing can be switched to then: the process keeps the ids it was
        # made with, which only the default user (0, 0, no groups) asks for.
        proc = plan.process
        for which, maps, value in (("uid", plan.uid_mappings, proc and proc.user.uid),
                                   ("gid", plan.gid_mappings, proc and proc.user.gid)):
            if not maps and value:
                raise SpecError(f"$.process.user.{which}", f"{which} {value} cannot be switched to: the new "
                                f"user namespace has no {which}Mappings, so no {which} exists in it (the "
                                f"kernel refuses set{which} with EINVAL); add linux.{which}Mappings or "
                                f"leave process.user.{which} at 0 (the process keeps the id it is "
                                "created with, seen as the overflow id)")
        unmapped = [w for w, maps in (("uidMappings", plan.uid_mappings),
                                      ("gidMappings", plan.gid_mappings)) if not maps]
        if unmapped and "mount" in ns and not any(m.destination == "/dev" and m.is_bind
                                                  for m in plan.mounts):
            raise SpecError(f"$.linux.{unmapped[0]}", "missing, and the container's default devices "
                            "(/dev/null, /dev/zero, ...) must be made: in a user namespace that maps "
                            "no id the kernel lets nobody create a file (EOVERFLOW); add the mappings, "
                            "or bind the host's /dev (a mount of /dev with \"rbind\")")
        if proc is not None and proc.user.additional_gids and not plan.gid_mappings:
            raise SpecError("$.process.user.additionalGids", "the new user namespace has no "
                            "gidMappings: the kernel refuses setgroups until a gid map is written "
                            "(EPERM); add linux.gidMappings or drop additionalGids")
        if proc is not None:
            if plan.uid_mappings and not _in_map(proc.user.uid, plan.uid_mappings):
                raise SpecError("$.process.user.uid", f"uid {proc.user.uid} is not mapped in "
                                                      "linux.uidMappings: the kernel refuses to switch "
                                                      "to an unmapped uid (EINVAL); map it or pick a "
                                                      "mapped uid")
            gids = (("$.process.user.gid", proc.user.gid),
                    *((f"$.process.user.additionalGids[{i}]", g)
                      for i, g in enumerate(proc.user.additional_gids)))
            for p, gid in gids:
                if plan.gid_mappings and not _in_map(gid, plan.gid_mappings):
                    raise SpecError(p, f"gid {gid} is not mapped in linux.gidMappings: the kernel "
                                       "refuses unmapped gids (EINVAL); map it or pick a mapped gid")
    for key in ("hostname", "domainname"):
        if getattr(plan, key) is not None and "uts" not in ns:
            raise SpecError(f"$.{key}", f"is set but there is no \"uts\" namespace: setting it would change "
                                        f"the host's {key}; add {{\"type\": \"uts\"}} to linux.namespaces "
                                        f"or remove {key}")
    if plan.time_offsets:
        time_ns = ns.get("time")
        if time_ns is None or time_ns.path is not None:
            raise SpecError("$.linux.timeOffsets", "needs a new \"time\" namespace: offsets can be set only "
                                                   "in a time namespace created for the container (no "
                                                   "path); add {\"type\": \"time\"} or drop timeOffsets")
    linux = doc.get("linux") or {}
    for raw in linux.get("sysctl") or {}:
        name = _sysctl_name(raw)
        p = _key("$.linux.sysctl", raw)
        if name in IPC_SYSCTLS or name.startswith("fs.mqueue."):
            if "ipc" not in ns:
                raise SpecError(p, f"sysctl {name} belongs to an IPC namespace and there is none: it "
                                   "would change the host's value; add {\"type\": \"ipc\"}")
        elif name.startswith("net."):
            net = ns.get("network")
            if net is None:
                raise SpecError(p, f"sysctl {name} belongs to a network namespace and there is none: it "
                                   "would change the host's value; add {\"type\": \"network\"}")
            if net.path is not None and same_file(net.path, "/proc/self/ns/net"):
                raise SpecError(p, f"sysctl {name} would change the runtime's own network namespace "
                                   f"({net.path} is the host's): use a network namespace of the container")
        elif name == "kernel.domainname" and "uts" in ns:
            pass
        elif name == "kernel.hostname" and "uts" in ns:
            raise SpecError(p, "sysctl kernel.hostname conflicts with the \"hostname\" field; set the "
                               "hostname there instead")
        else:
            raise SpecError(p, f"sysctl {name} is not namespaced (or its namespace is not in the config): "
                               "writing it from a container would change the whole host; only IPC "
                               "(kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*), network (net.*) and "
                               "UTS (kernel.domainname) sysctls are allowed")
    if rootless and plan.uid_mappings:
        for i, m in enumerate(plan.mounts):
            for word in m.options:
                key, _, num = word.partition("=")
                if key not in ("uid", "gid") or not num.isdigit():
                    continue
                maps = plan.uid_mappings if key == "uid" else plan.gid_mappings
                if not _in_map(int(num), maps):
                    raise SpecError(f"$.mounts[{i}].options", f"option {word} names a {key} that is not "
                                                              "mapped in the container's user namespace: "
                                                              "the kernel refuses it (EINVAL); map it or "
                                                              "drop the option")
    if plan.net_devices:
        from .netdevices import check_plan

        check_plan(plan, rootless)
    for i, m in enumerate(plan.mounts):
        if m.idmap and not m.uid_mappings and user is None:
            raise SpecError(f"$.mounts[{i}].options", f"{m.idmap} without uidMappings/gidMappings takes "
                                                      "the container's user namespace mappings, and there "
                                                      "is no user namespace; add the mappings to the mount "
                                                      "or a user namespace")
        if m.idmap and rootless:
            raise SpecError(f"$.mounts[{i}].options", "an idmapped mount needs CAP_SYS_ADMIN in the "
                                                      "initial user namespace (mount_setattr on a tree the "
                                                      "host owns): a rootless runtime cannot make it")
    hooks = plan.hooks
    if not hooks.prestart and not hooks.create_runtime:
        for i, m in enumerate(plan.mounts):
            if m.is_bind and m.source is not None and not os.path.lexists(m.source):
                raise SpecError(f"$.mounts[{i}].source", f"{m.source} does not exist: a bind mount needs an "
                                                         "existing host path (relative paths are read "
                                                         "from the bundle); create it or fix the path")


def _shared_mount_table(plan: Plan, doc: dict[str, Any]) -> None:
    """No mount namespace: the container shares the runtime's mount table (runtime-spec: it
    inherits the runtime's namespace), is chrooted into root.path and gets no mount of its own.
    runc and crun make the mounts anyway, in the runtime's table, where they outlive the
    container; clonekit never changes the host's mounts, so what needs a mount is refused."""
    why = ("there is no \"mount\" namespace, so the container shares the runtime's mount table and "
           "{what} would change the host's mounts (and outlive the container); add {{\"type\": "
           "\"mount\"}} to linux.namespaces or remove {field}")
    linux = doc.get("linux") or {}
    refused = [
        ("$.mounts", plan.mounts, "its mounts", "them"),
        ("$.linux.maskedPaths", plan.masked_paths, "masking paths (a mount over each)", "them"),
        ("$.linux.readonlyPaths", plan.readonly_paths, "read-only paths (a remount of each)", "them"),
        ("$.root.readonly", plan.root_readonly, "a read-only root (a remount of root.path)",
         "it (or set it to false)"),
        ("$.linux.devices", plan.devices, "device nodes (made in the rootfs on the host's disk, or "
         "bound there)", "them"),
        ("$.linux.rootfsPropagation", plan.rootfs_propagation or linux.get("rootfsPropagation"),
         "setting the propagation of \"/\"", "it"),
        ("$.process.terminal", plan.process is not None and plan.process.terminal,
         "the console (the pty bound onto /dev/console)", "it (or set it to false)"),
    ]
    for path, value, what, field in refused:
        if value:
            raise SpecError(path, why.format(what=what, field=field))


def same_file(a: str, b: str) -> bool:
    """Whether two paths name one file (a namespace given by path, and the runtime's own)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


# --------------------------------------------------------------------------------------------
# public API

def plan_from_dict(doc: object, bundle: str, *, rootless: bool = False) -> Plan:
    """Validate a parsed config.json and return its Plan.  ``bundle`` is the directory relative
    paths (root.path, bind sources) are read from.  Raises :class:`SpecError`."""
    d = _obj(doc, "$")
    _fields(d, "$", TOP_KNOWN, TOP_OTHER_PLATFORMS, "the top level")
    bundle = os.path.abspath(bundle)
    version = _oci_version(d)
    root, readonly = _root(d, bundle)
    linux_doc = _get(d, "linux")
    personality = None
    if isinstance(linux_doc, dict) and _get(linux_doc, "personality") is not None:
        personality = parse_personality(linux_doc["personality"])
    process = _process(d["process"], personality) if _get(d, "process") is not None else None
    hostname = _hostname(d, "hostname")
    domainname = _hostname(d, "domainname")
    mounts = _mounts(d["mounts"], bundle) if _get(d, "mounts") is not None else ()
    hooks = _hooks(d["hooks"]) if _get(d, "hooks") is not None else Hooks()
    annotations = _annotations(d["annotations"]) if _get(d, "annotations") is not None else ()
    linux = _linux(d["linux"]) if _get(d, "linux") is not None else {}
    plan = Plan(oci_version=version, root=root, root_readonly=readonly, process=process,
                hostname=hostname, domainname=domainname, mounts=mounts, hooks=hooks,
                annotations=annotations, **linux)
    _cross_check(plan, d, rootless)
    return plan


def process_from_dict(value: object, personality: Personality | None = None) -> ProcessPlan:
    """A runtime-spec ``process`` object on its own (``exec``: config.json's, or ``--process
    FILE``), checked as in config.json; ``personality`` comes from ``linux.personality``."""
    return _process(value, personality)


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return out


def load_plan(bundle: str, config_path: str | None = None, *, rootless: bool = False) -> Plan:
    """Read ``config_path`` (default ``<bundle>/config.json``) once, validate it, return the Plan."""
    bundle = bundle or "."
    return plan_from_dict(load_config(bundle, config_path), bundle, rootless=rootless)


def load_config(bundle: str, config_path: str | None = None) -> Any:
    """The parsed config.json (not validated): for callers that want both the Plan
    (``plan_from_dict``) and the warnings (``ignored_fields``) from one read of the file."""
    bundle = bundle or "."
    if config_path is None:
        if not os.path.isdir(bundle):
            what = "does not exist" if not os.path.lexists(bundle) else "is not a directory"
            raise SpecError("$", f"bundle {bundle} {what}: a bundle is a directory holding config.json "
                                 "and the rootfs; pass --bundle DIR (or run in the bundle)")
        config_path = os.path.join(bundle, "config.json")
    try:
        with open(config_path, "rb") as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise SpecError("$", f"{config_path} does not exist: the bundle needs a config.json; "
                             "`clonekit spec` writes a starting one") from None
    except OSError as exc:
        raise SpecError("$", f"cannot read {config_path}: {exc.strerror}; check the path and its "
                             "permissions") from None
    if len(data) > MAX_CONFIG_BYTES:
        raise SpecError("$", f"{config_path} is larger than {MAX_CONFIG_BYTES >> 20} MiB (reading "
                             "stopped there): no config.json is that large, so this is the wrong file "
                             "(or one that never ends, like /dev/zero); pass the bundle's config.json")
    return parse_json(data, config_path)


def parse_json(data: bytes | str, name: str = "config.json") -> Any:
    """``json.loads`` with errors as SpecError: not JSON, not UTF-8, duplicate keys, too deep."""
    try:
        text = data.decode("utf-8-sig") if isinstance(data, bytes) else data
        return loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        raise SpecError("$", f"{name}: key {dumps(exc.args[0])} appears twice in one object: JSON "
                             "readers disagree on which one wins, so the config is ambiguous; keep one"
                        ) from None
    except UnicodeDecodeError as exc:
        raise SpecError("$", f"{name} is not UTF-8 text ({exc.reason} at byte {exc.start}): JSON must "
                             "be UTF-8; re-encode the file") from None
    except ValueError as exc:  # json.JSONDecodeError, or a number too long for int()
        line, column = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = f" at line {line} column {column}" if line is not None else ""
        what = str(getattr(exc, "msg", exc)).removesuffix(" at")  # "Invalid control character at"
        raise SpecError("$", f"{name} is not valid JSON: {what}{where}; fix the "
                             f"syntax (e.g. `python3 -m json.tool {name}` shows it)") from None
    except RecursionError:
        raise SpecError("$", f"{name} is nested too deeply to read; no config.json needs that") from None
