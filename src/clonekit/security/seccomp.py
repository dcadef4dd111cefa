"""seccomp filters: a rule set (``linux.seccomp`` of config.json) compiled with libseccomp into
classic BPF, installed by the container's init, NOTIFY listeners handed to a seccomp agent.

Semantics are runc's (libcontainer/seccomp, patchbpf):

- ``SCMP_ACT_KILL`` kills the thread (as ``SCMP_ACT_KILL_THREAD``); ``SCMP_ACT_ERRNO`` and
  ``SCMP_ACT_TRACE`` carry ``errnoRet`` (``defaultErrnoRet`` for the default), EPERM if unset.
- a rule whose action (errno included) equals the default action is skipped; syscall names
  unknown to libseccomp are skipped; a rule with two conditions on one argument becomes one rule
  per condition (libseccomp cannot AND two tests of one argument).
- ``flags`` absent means ``SECCOMP_FILTER_FLAG_SPEC_ALLOW`` (runc and crun); ``TSYNC`` is accepted
  and not passed on (the init is single-threaded when it installs the filter); a NOTIFY rule adds
  ``SECCOMP_FILTER_FLAG_NEW_LISTENER``.
- syscalls newer than the profile (numbers above the largest one it names, per architecture it
  lists) get ENOSYS instead of the default action, so a program falls back to an older syscall
  instead of failing with EPERM: a small stub is put in front of libseccomp's program, unless the
  default action lets syscalls through (ALLOW, LOG, TRACE) or already returns ENOSYS.

Compiling is the costly part (libseccomp, several ms for a large profile): the runtime does it
before the clone, with a cache keyed by the rule set (:func:`compile_filter`'s ``cache_dir``);
the init only calls :func:`install`.  ``clonekit._seccomp`` (libseccomp) loads on first compile.
"""

from __future__ import annotations

import os
import sys

from .._record import record

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable

    Condition = tuple[int, int, int, int]          # (index, operator, value, value_two)
    FlatRule = tuple[str, int, tuple[Condition, ...]]  # (syscall name, action, conditions)
    Insn = tuple[int, "int | str", "int | str", "int | str"]  # (opcode, jt, jf, k): a label or a number

__all__ = ["ACTIONS", "ARCHITECTURES", "ERRNO_ACTIONS", "FLAGS", "OPERATORS", "Filter", "Seccomp",
           "SeccompArg", "SeccompRule", "compile_filter", "features", "install", "send_to_listener"]

# --- the kernel's and libseccomp's values, as data ---------------------------------------------

# action name -> SECCOMP_RET_* (ERRNO and TRACE get the errno in their low 16 bits)
ACTIONS: dict[str, int] = {
    "SCMP_ACT_KILL": 0x00000000,          # runc: the thread, like KILL_THREAD
    "SCMP_ACT_KILL_PROCESS": 0x80000000,
    "SCMP_ACT_KILL_THREAD": 0x00000000,
    "SCMP_ACT_TRAP": 0x00030000,
    "SCMP_ACT_ERRNO": 0x00050000,
    "SCMP_ACT_TRACE": 0x7FF00000,
    "SCMP_ACT_ALLOW": 0x7FFF0000,
    "SCMP_ACT_LOG": 0x7FFC0000,
    "SCMP_ACT_NOTIFY": 0x7FC00000,
}
ERRNO_ACTIONS = frozenset({"SCMP_ACT_ERRNO", "SCMP_ACT_TRACE"})  # the only ones with an errno
# default actions under which a syscall unknown to the profile is not worth an ENOSYS: it runs
# anyway (TRACE: a tracer should handle new syscalls itself; runc's reasoning)
LETS_THROUGH = frozenset({"SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_TRACE"})
EPERM, ENOSYS = 1, 38

# operator name -> libseccomp's enum scmp_compare
OPERATORS: dict[str, int] = {
    "SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4,
    "SCMP_CMP_GE": 5, "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7,
}

# architecture name -> libseccomp's token, which is the kernel's AUDIT_ARCH_* value except for
# x32 (the kernel reports x32 syscalls as AUDIT_ARCH_X86_64 with bit 30 of the number set)
ARCHITECTURES: dict[str, int] = {
    "SCMP_ARCH_X86": 0x40000003, "SCMP_ARCH_X86_64": 0xC000003E, "SCMP_ARCH_X32": 0x4000003E,
    "SCMP_ARCH_ARM": 0x40000028, "SCMP_ARCH_AARCH64": 0xC00000B7,
    "SCMP_ARCH_MIPS": 0x00000008, "SCMP_ARCH_MIPS64": 0x80000008, "SCMP_ARCH_MIPS64N32": 0xA0000008,
    "SCMP_ARCH_MIPSEL": 0x40000008, "SCMP_ARCH_MIPSEL64": 0xC0000008,
    "SCMP_ARCH_MIPSEL64N32": 0xE0000008,
    "SCMP_ARCH_PPC": 0x00000014, "SCMP_ARCH_PPC64": 0x80000015, "SCMP_ARCH_PPC64LE": 0xC0000015,
    "SCMP_ARCH_S390": 0x00000016, "SCMP_ARCH_S390X": 0x80000016,
    "SCMP_ARCH_PARISC": 0x0000000F, "SCMP_ARCH_PARISC64": 0x8000000F,
    "SCMP_ARCH_RISCV64": 0xC00000F3,
}
AUDIT_ARCH_X86_64 = 0xC000003E
X32_SYSCALL_BIT = 0x40000000
S390_ARCHES = frozenset({0x00000016, 0x80000016})

# flag name -> SECCOMP_FILTER_FLAG_*, and the first kernel that knows it
FLAGS: dict[str, int] = {
    "SECCOMP_FILTER_FLAG_TSYNC": 1 << 0,
    "SECCOMP_FILTER_FLAG_LOG": 1 << 1,
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": 1 << 2,
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": 1 << 5,
}
FLAG_KERNELS: dict[str, tuple[int, int]] = {
    "SECCOMP_FILTER_FLAG_TSYNC": (3, 17), "SECCOMP_FILTER_FLAG_LOG": (4, 14),
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW": (4, 17), "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV": (5, 19),
}
FLAG_NEW_LISTENER = 1 << 3
FLAGS_NOT_PASSED = frozenset({"SECCOMP_FILTER_FLAG_TSYNC"})  # runc: a no-op for one thread
BPF_MAXINSNS = 4096
LISTENER_FD_NAME = "seccompFd"  # the runtime-spec's name of the fd sent to the agent

# --- records ------------------------------------------------------------------------------------


@record(frozen=True)
class SeccompArg:
    index: int        # 0..5
    value: int        # uint64
    value_two: int    # uint64; the mask's result for SCMP_CMP_MASKED_EQ (value is the mask)
    op: str           # a key of OPERATORS


@record(frozen=True)
class SeccompRule:
    names: tuple[str, ...]
    action: str                      # a key of ACTIONS
    errno_ret: int | None = None     # ERRNO/TRACE only; None: EPERM
    args: tuple[SeccompArg, ...] = ()


@record(frozen=True)
class Seccomp:
    default_action: str
    default_errno_ret: int | None = None
    architectures: tuple[str, ...] = ()   # besides the native one, which is always there
    flags: tuple[str, ...] | None = None  # None (absent in config.json): SPEC_ALLOW
    listener_path: str | None = None
    listener_metadata: str = ""
    syscalls: tuple[SeccompRule, ...] = ()

    @property
    def notifies(self) -> bool:
        return any(rule.action == "SCMP_ACT_NOTIFY" for rule in self.syscalls)


@record(frozen=True)
class Filter:
    program: bytes    # struct sock_filter[], host byte order
    flags: int = 0    # SECCOMP_FILTER_FLAG_*
    notify: bool = False  # has NOTIFY rules: install returns a listener fd


# --- compiling ---------------------------------------------------------------------------------


def action_value(action: str, errno_ret: int | None) -> int:
    """The SECCOMP_RET_* value of an action (errno included)."""
    base = ACTIONS[action]
    if action in ERRNO_ACTIONS:
        return base | ((EPERM if errno_ret is None else errno_ret) & 0xFFFF)
    return base


def filter_flags(s: Seccomp) -> int:
    names = ("SECCOMP_FILTER_FLAG_SPEC_ALLOW",) if s.flags is None else s.flags
    flags = 0
    for name in names:
        if name not in FLAGS_NOT_PASSED:
            flags |= FLAGS[name]
    if s.notifies:
        flags |= FLAG_NEW_LISTENER
    return flags


def compile_filter(s: Seccomp, cache_dir: str | None = None) -> Filter:
    """The filter of ``s``, ready for :func:`install`.  With ``cache_dir`` (a directory of the
    runtime's root-owned state; made 0700 if missing), programs are kept there by a hash of ``s``
    and the libseccomp and kernel versions, so a container started again skips libseccomp."""
    _check(s)
    flags = filter_flags(s)
    key = _cache_key(s) if cache_dir is not None else ""
    program = _cache_read(cache_dir, key) if cache_dir is not None else None
    if program is None:
        program = _compile(s)
        if cache_dir is not None:
            _cache_write(cache_dir, key, program)
    return Filter(program=program, flags=flags, notify=s.notifies)


def _check(s: Seccomp) -> None:
    """What the runtime's parser has already refused; the sandbox API builds records directly."""
    from ..errors import UsageError

    def known(name: str, table: Iterable[str], what: str) -> None:
        if name not in table:
            raise UsageError(f"seccomp: unknown {what} {name!r} (known: {', '.join(sorted(table))})")

    known(s.default_action, ACTIONS, "action")
    if s.default_action == "SCMP_ACT_NOTIFY":
        raise UsageError("seccomp: SCMP_ACT_NOTIFY cannot be the default action (the init could not "
                         "send its listener fd); use it for chosen syscalls")
    for arch in s.architectures:
        known(arch, ARCHITECTURES, "architecture")
    for flag in s.flags or ():
        known(flag, FLAGS, "flag")
    for rule in s.syscalls:
        known(rule.action, ACTIONS, "action")
        for arg in rule.args:
            known(arg.op, OPERATORS, "operator")
            if not 0 <= arg.index <= 5:
                raise UsageError(f"seccomp: argument index {arg.index} of {rule.names}: a syscall "
                                 "has arguments 0 to 5")


def _compile(s: Seccomp) -> bytes:
    from .. import _seccomp

    default = action_value(s.default_action, s.default_errno_ret)
    arches = tuple(ARCHITECTURES[a] for a in s.architectures)
    rules, origin = _flat_rules(s, default)
    # libseccomp's binary tree pays off on long rule sets only (runc's threshold, counted in
    # syscall names as runc counts them)
    optimize = 2 if sum(len(rule.names) for rule in s.syscalls) > 32 else 1
    try:
        program, _unknown = _seccomp.compile(default, arches, rules, optimize)
    except OSError as exc:
        raise _compile_error(exc, origin) from None
    stub = _enosys_stub(s, arches)
    count = (len(stub) + len(program)) // 8
    if count > BPF_MAXINSNS:
        from ..errors import UsageError

        raise UsageError(f"seccomp: the compiled filter has {count} instructions, the kernel loads at "
                         f"most {BPF_MAXINSNS}: fewer rules (or fewer architectures) are needed")
    return stub + program


def _flat_rules(s: Seccomp, default: int) -> tuple[tuple[FlatRule, ...], list[tuple[int, str]]]:
    """(name, action, conditions) per syscall name, as runc adds them; and, for each, the index of
    its entry in ``s.syscalls`` (for messages)."""
    rules: list[FlatRule] = []
    origin: list[tuple[int, str]] = []
    for i, rule in enumerate(s.syscalls):
        action = action_value(rule.action, rule.errno_ret)
        if action == default:
            continue  # libseccomp refuses a rule that repeats the default; runc skips it
        conds = tuple((a.index, OPERATORS[a.op], a.value, a.value_two) for a in rule.args)
        indexes = [c[0] for c in conds]
        # two tests of one argument: one rule per test (an OR, as runc does it)
        groups = [(c,) for c in conds] if len(set(indexes)) < len(indexes) else [conds]
        for name in rule.names:
            for group in groups:
                rules.append((name, action, group))
                origin.append((i, name))
    return tuple(rules), origin


def _compile_error(exc: OSError, origin: list[tuple[int, str]]) -> Exception:
    from ..errors import errno_name, from_errno

    what = exc.strerror or ""
    where = ""
    if what.startswith("libseccomp refused rule "):
        position = int(what.split()[3])
        index, name = origin[position]
        where = f" (syscalls[{index}], {name})"
    hint = {
        17: "another rule for this syscall conflicts with it (EEXIST); merge the two entries",
        22: "libseccomp found the rule invalid (EINVAL); check its arguments and operators",
    }.get(exc.errno or 0, f"libseccomp answered {errno_name(exc.errno or 0)}")
    return from_errno(exc.errno or 22, f"compile the seccomp filter{where}", f"{what}: {hint}")


# --- the ENOSYS stub ----------------------------------------------------------------------------

# classic BPF opcodes
LD_W_ABS, JEQ_K, JGT_K, JSET_K, JA, RET_K = 0x20, 0x15, 0x25, 0x45, 0x05, 0x06
OFFSET_NR, OFFSET_ARCH = 0, 4   # struct seccomp_data


def _enosys_stub(s: Seccomp, arches: tuple[int, ...]) -> bytes:
    """Instructions put in front of libseccomp's program: for each architecture the profile lists,
    a syscall number above the largest it names returns ENOSYS; everything else goes on to the
    program.  Empty when the default action lets syscalls through or already returns ENOSYS."""
    if s.default_action in LETS_THROUGH or (s.default_action == "SCMP_ACT_ERRNO"
                                            and s.default_errno_ret == ENOSYS):
        return b""
    from .. import _seccomp

    names = tuple(dict.fromkeys(name for rule in s.syscalls for name in rule.names))
    tokens = tuple(dict.fromkeys(arches))
    largest = _seccomp.max_syscalls(tokens, names)
    # grouped by what the kernel reports: x86_64 and x32 share AUDIT_ARCH_X86_64
    groups: dict[int, dict[int, int]] = {}
    for token, nr in zip(tokens, largest, strict=True):
        if nr >= 0:
            audit = AUDIT_ARCH_X86_64 if token == ARCHITECTURES["SCMP_ARCH_X32"] else token
            groups.setdefault(audit, {})[token] = nr
    if not groups:
        return b""
    return _assemble(_stub_code(groups))


def _stub_code(groups: dict[int, dict[int, int]]) -> list[Insn | str]:
    """The stub as instructions and labels (str); a jump goes to a label, or 0: the next one."""
    code: list[Insn | str] = []
    for i, (audit, largest) in enumerate(groups.items()):
        following = f"arch{i + 1}"
        code += [(LD_W_ABS, 0, 0, OFFSET_ARCH), (JEQ_K, 0, following, audit), (LD_W_ABS, 0, 0, OFFSET_NR)]
        if audit == AUDIT_ARCH_X86_64:
            x32 = f"x32_{i}"
            code.append((JSET_K, x32, 0, X32_SYSCALL_BIT))
            code += _above(largest.get(ARCHITECTURES["SCMP_ARCH_X86_64"]))
            code.append(x32)
            code += _above(largest.get(ARCHITECTURES["SCMP_ARCH_X32"]))
        else:
            if audit in S390_ARCHES:
                # s390 passes a syscall number the kernel does not know as 0 (setup(2), long gone)
                code += [(JEQ_K, 0, 1, 0), (JA, 0, 0, "enosys")]
            code += _above(next(iter(largest.values())))
        code.append(following)
    code += [(JA, 0, 0, "filter"), "enosys", (RET_K, 0, 0, ACTIONS["SCMP_ACT_ERRNO"] | ENOSYS), "filter"]
    return code


def _above(largest: int | None) -> list[Insn | str]:
    """Numbers above ``largest``: ENOSYS; the rest: the filter.  (Unconditional jumps carry the
    long distances: a conditional one reaches 255 instructions only.)"""
    if largest is None:
        return [(JA, 0, 0, "filter")]
    return [(JGT_K, 0, 1, largest), (JA, 0, 0, "enosys"), (JA, 0, 0, "filter")]


def _assemble(code: list[Insn | str]) -> bytes:
    """struct sock_filter[] (host byte order), labels resolved to forward offsets."""
    import struct

    where: dict[str, int] = {}
    insns: list[Insn] = []
    for item in code:
        if isinstance(item, str):
            where[item] = len(insns)
        else:
            insns.append(item)

    def offset(target: int | str, at: int) -> int:
        return target if isinstance(target, int) else where[target] - at - 1

    out = bytearray()
    for at, (op, jt, jf, k) in enumerate(insns):
        # JA's 32-bit k is its offset; a conditional jump has 8-bit ones (struct.error past 255)
        value = offset(k, at) if op == JA else k
        out += struct.pack("=HBBI", op, offset(jt, at), offset(jf, at), value)
    return bytes(out)


# --- the cache ---------------------------------------------------------------------------------

CACHE_ENTRIES = 64  # kept; the older half goes when there are more


def default_cache_dir() -> str:
    """Where compiled programs are kept: /var/cache/clonekit/seccomp for root, else the user's
    cache directory (XDG).  Not the runtime's state root, whose entries are containers."""
    if os.geteuid() == 0:
        return "/var/cache/clonekit/seccomp"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "clonekit", "seccomp")


def _cache_key(s: Seccomp) -> str:
    from _blake2 import blake2b  # hashlib would load OpenSSL: 5 ms of a container start

    from .. import __version__, _seccomp

    release = os.uname().release
    # the program depends on the rule set, libseccomp (its syscall tables, its code), the kernel
    # (libseccomp probes which actions it supports) and on this module's own patching
    text = repr((s, __version__, _seccomp.version(), release, sys.byteorder))
    return blake2b(text.encode(), digest_size=32).hexdigest()


def _cache_read(cache_dir: str, key: str) -> bytes | None:
    try:
        fd = os.open(os.path.join(cache_dir, key), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        # only a file this user wrote and nobody else may change is trusted as a filter
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not 0 < st.st_size <= 8 * BPF_MAXINSNS:
            return None
        data = os.read(fd, st.st_size)
    finally:
        os.close(fd)
    return data if len(data) == st.st_size and len(data) % 8 == 0 else None


def _cache_write(cache_dir: str, key: str, program: bytes) -> None:
    """Atomically (a temporary file renamed over the name); a cache that cannot be written is
    no error: the next start compiles again."""
    try:
        os.makedirs(cache_dir, mode=0o700, exist_ok=True)
        st = os.stat(cache_dir, follow_symlinks=False)
        if st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return  # not a directory of ours alone: do not leave filters in it
        temp = os.path.join(cache_dir, f".{key}.{os.getpid()}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, program)
        finally:
            os.close(fd)
        os.rename(temp, os.path.join(cache_dir, key))
        _cache_evict(cache_dir)
    except OSError:
        pass


def _cache_evict(cache_dir: str) -> None:
    entries = [e for e in os.scandir(cache_dir) if not e.name.startswith(".")]
    if len(entries) <= CACHE_ENTRIES:
        return
    entries.sort(key=lambda e: e.stat(follow_symlinks=False).st_mtime_ns)
    for entry in entries[: len(entries) // 2]:
        try:
            os.unlink(entry.path)
        except OSError:
            pass


# --- installing, and the listener ---------------------------------------------------------------


def install(f: Filter) -> int:
    """Load ``f`` for the calling thread (and its future children): the NOTIFY listener fd when
    the filter has NOTIFY rules, else -1.  Needs no_new_privs or CAP_SYS_ADMIN."""
    from .. import _native

    try:
        return _native.seccomp_install(f.program, f.flags)
    except OSError as exc:
        raise _install_error(exc.errno or 22, f.flags) from None


def _install_error(err: int, flags: int) -> Exception:
    from ..errors import from_errno

    hint = {
        13: "installing a filter needs no_new_privs or CAP_SYS_ADMIN (EACCES)",
        22: f"the kernel refused the program or the flags {flags:#x} (a flag newer than this "
            "kernel?); drop linux.seccomp.flags this kernel does not know",
        16: "another seccomp filter of this process already has a NOTIFY listener (EBUSY): only "
            "one per process tree",
        12: "the filters of this process together exceed the kernel's limit (ENOMEM)",
    }.get(err, "")
    return from_errno(err, "seccomp(SECCOMP_SET_MODE_FILTER)", hint)


def send_to_listener(listener_path: str, listener_fd: int, state: dict[str, object],
                     metadata: str = "") -> None:
    """Send the seccomp agent at ``listener_path`` the runtime-spec's container process state,
    with ``listener_fd`` (SCM_RIGHTS) named ``seccompFd``: one connection, one message, closed."""
    import socket

    from .._jsonc import dumps
    from ..errors import from_errno

    message: dict[str, object] = {"ociVersion": state.get("ociVersion", ""), "fds": [LISTENER_FD_NAME],
                                  "pid": state.get("pid", 0)}
    if metadata:
        message["metadata"] = metadata
    message["state"] = state
    payload = dumps(message).encode()
    step = f"send the seccomp listener fd to {listener_path}"
    if len(os.fsencode(listener_path)) >= 108:  # sun_path
        raise from_errno(36, step, "a unix socket path has at most 107 bytes; use a shorter listenerPath")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as sock:
        try:
            sock.connect(listener_path)
            sent = sock.sendmsg([payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS,
                                             listener_fd.to_bytes(4, sys.byteorder, signed=True))])
            if sent < len(payload):
                sock.sendall(payload[sent:])  # the fd went with the first part, as the spec asks
        except OSError as exc:
            hint = ("is the seccomp agent running and listening there? (linux.seccomp.listenerPath)"
                    if exc.errno in (2, 111) else "")
            raise from_errno(exc.errno or 5, step, hint) from None


# --- for `clonekit features` ---------------------------------------------------------------------


def features() -> dict[str, object]:
    """The ``linux.seccomp`` object of the runtime-spec's features document."""
    release = os.uname().release.split(".")
    try:
        kernel = (int(release[0]), int(release[1].split("-")[0]))
    except (IndexError, ValueError):
        kernel = (0, 0)
    return {
        "enabled": True,
        "actions": list(ACTIONS),
        "operators": list(OPERATORS),
        "archs": list(ARCHITECTURES),
        "knownFlags": list(FLAGS),
        "supportedFlags": [name for name in FLAGS if kernel >= FLAG_KERNELS[name]],
    }
