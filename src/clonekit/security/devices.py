"""Device access rules: which device nodes a container may read, write or create.

A container's rules are ``linux.resources.devices`` as written, then an allow of every
``linux.devices`` entry, then runc's default allowed devices (:data:`DEFAULT_ALLOWED`):
:func:`effective_rules`.  They are enforced by the kernel in one of two ways:

- :func:`apply_v1`: the v1 ``devices`` controller, by writing ``devices.deny`` and
  ``devices.allow`` of the container's group;
- :func:`attach_v2`: a ``BPF_CGROUP_DEVICE`` program attached to the container's cgroup2 group
  (:func:`program_v2` generates it).

Both start from one evaluation of the rules, in order, by the v1 kernel's own semantics
(``_emulate``, as runc's emulator does): a deny-all (or allow-all) rule resets the policy, later
rules add or remove *exceptions* to it.  A rule that would have to cut a hole in a wildcard
exception (deny ``c 1:5 w`` after allowing ``c 1:* rwm``) cannot be expressed by the v1 kernel,
which silently ignores it; it is refused (:class:`DeviceRuleError`) on both, so one config means
the same everywhere.  The v2 program then matches each exception exactly as the v1 kernel does:
an allowed request must be covered by one allow exception (``rw`` is not allowed by ``r`` and
``w`` given separately), a denied one only has to touch a deny exception.

Differences from runc, on purpose: ``linux.devices`` entries are allowed (``rwm``); runc
(1.1 and 1.2) leaves that to the caller (Docker, containerd and podman add the rule themselves),
so a device the config asks for would exist but not open.  And runc's v2 program checks a deny
exception like an allow one (``rw`` passes a deny of ``w``); here it is denied, as on v1.

Imports: only ``os`` and the record helper (this runs on every container start); the native
module is loaded only to attach a v2 program.
"""

from __future__ import annotations

import os

from .._record import record
from ..errors import KernelError, UsageError, from_errno

__all__ = ["DEFAULT_ALLOWED", "DeviceRule", "DeviceRuleError", "apply_v1", "attach_v2", "effective_rules",
           "program_v2", "v1_lines"]

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from collections.abc import Iterable


@record(frozen=True)
class DeviceRule:
    """One rule: ``allow`` or deny ``access`` (a subset of ``"rwm"``) to devices of ``type``
    (``"a"`` all, ``"c"`` char, ``"b"`` block) with ``major``:``minor`` (None = any)."""

    allow: bool
    type: str = "a"
    major: int | None = None
    minor: int | None = None
    access: str = "rwm"

    def __str__(self) -> str:
        """The rule as the v1 kernel reads it: ``c 1:3 rwm``, ``a *:* rwm``."""
        major = "*" if self.major is None else str(self.major)
        minor = "*" if self.minor is None else str(self.minor)
        return f"{self.type} {major}:{minor} {self.access}"


class DeviceRuleError(UsageError):
    """The rules cannot be enforced as written.  ``index`` is the rule's position in the list
    given to :func:`effective_rules` (the config's rules come first, so an index below their
    count is the config's ``linux.resources.devices[index]``)."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def _allow(type: str, major: int | None, minor: int | None, access: str = "rwm") -> DeviceRule:
    return DeviceRule(allow=True, type=type, major=major, minor=minor, access=access)


# runc's libcontainer/specconv AllowedDevices, in its order: mknod of any node (the node is
# then still unusable without a read/write rule), the runtime-spec's default devices that have
# fixed numbers (null, random, full, tty, zero, urandom), every pty (/dev/pts/*), /dev/ptmx, and
# /dev/net/tun (dropped in runc 1.2.0, restored in 1.2.1: orchestrators rely on it).  The
# spec's /dev/console is the pty it is bound to, so the 136:* rule covers it.
DEFAULT_ALLOWED: tuple[DeviceRule, ...] = (
    _allow("c", None, None, "m"),
    _allow("b", None, None, "m"),
    _allow("c", 1, 3),      # /dev/null
    _allow("c", 1, 8),      # /dev/random
    _allow("c", 1, 7),      # /dev/full
    _allow("c", 5, 0),      # /dev/tty
    _allow("c", 1, 5),      # /dev/zero
    _allow("c", 1, 9),      # /dev/urandom
    _allow("c", 136, None),  # /dev/pts/*
    _allow("c", 5, 2),      # /dev/ptmx
    _allow("c", 10, 200),   # /dev/net/tun
)

# the runtime-spec's device types as cgroup rule types: "u" (unbuffered char) is a char device;
# a fifo ("p") is no device the cgroup controls
_NODE_RULE_TYPE = {"c": "c", "u": "c", "b": "b"}


def effective_rules(config_rules: Iterable[DeviceRule],
                    linux_devices: Iterable[tuple[str, int, int]]) -> tuple[DeviceRule, ...]:
    """The container's rules in order: the config's, an allow (``rwm``) of each ``linux.devices``
    entry (``(type, major, minor)``; fifos skipped), then :data:`DEFAULT_ALLOWED`."""
    nodes = tuple(_allow(_NODE_RULE_TYPE[t], major, minor)
                  for t, major, minor in linux_devices if t in _NODE_RULE_TYPE)
    return (*config_rules, *nodes, *DEFAULT_ALLOWED)


# -- the rules' meaning: one evaluation for v1 and v2 -------------------------------------------

_BITS = {"r": 2, "w": 4, "m": 1}  # the BPF_DEVCG_ACC_* values (READ, WRITE, MKNOD)
_ALL = 7
_Key = tuple[str, int, int]       # (type, major, minor), -1 = any: sorts wildcards first


def _bits(access: str) -> int:
    out = 0
    for c in access:
        out |= _BITS[c]
    return out


def _access(bits: int) -> str:
    return "".join(c for c in "rwm" if bits & _BITS[c])


class _State:
    """A devices group as the v1 kernel keeps it: a default and exceptions to it."""

    __slots__ = ("default_allow", "exceptions")

    def __init__(self, default_allow: bool) -> None:
        self.default_allow = default_allow
        self.exceptions: dict[_Key, int] = {}

    def ordered(self) -> list[tuple[_Key, int]]:
        """Exceptions by (major, minor, type), as runc writes them (so devices.list reads the same)."""
        return sorted(self.exceptions.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0]))


def _emulate(rules: Iterable[DeviceRule]) -> _State:
    """Apply ``rules`` in order to a fresh group (allow-all, like a new group under the root)."""
    state = _State(default_allow=True)
    for index, rule in enumerate(rules):
        if rule.type == "a":  # all devices: resets the policy (the kernel ignores the rest)
            state = _State(default_allow=rule.allow)
            continue
        key = (rule.type, -1 if rule.major is None else rule.major, -1 if rule.minor is None else rule.minor)
        bits = _bits(rule.access)
        if rule.allow != state.default_allow:  # an exception to the default: add it
            state.exceptions[key] = state.exceptions.get(key, 0) | bits
        else:                                  # the default's own direction: remove from one
            _remove(state, key, bits, index, rule)
    return state


def _remove(state: _State, key: _Key, bits: int, index: int, rule: DeviceRule) -> None:
    """The v1 kernel removes bits from the exception with exactly this key and ignores wildcard
    exceptions that also cover the device: refuse that case instead of a silent no-op."""
    kind, major, minor = key
    for wider in ((kind, -1, minor), (kind, major, -1), (kind, -1, -1)):
        if wider != key and state.exceptions.get(wider, 0) & bits:
            held = _line(wider, state.exceptions[wider])
            earlier = "deny" if rule.allow else "allow"  # the wildcard has the opposite verdict
            verb = "allow" if rule.allow else "deny"
            raise DeviceRuleError(index, f"rule {index} ({verb} {rule}) would cut a hole in the earlier "
                                         f"wildcard rule ({earlier} {held}), which the devices cgroup "
                                         "cannot express (v1 would silently ignore it); list the devices "
                                         "one by one instead of the wildcard, or drop this rule")
    left = state.exceptions.get(key, 0) & ~bits
    if left:
        state.exceptions[key] = left
    else:
        state.exceptions.pop(key, None)


# -- cgroup v1: devices.deny / devices.allow ----------------------------------------------------

def v1_lines(rules: Iterable[DeviceRule], current: str | None = None) -> list[tuple[str, str]]:
    """The writes that take a group from its ``devices.list`` text ``current`` (None: a new
    group under an allow-all parent) to ``rules``: ``[(file, line), ...]``, file being
    ``"devices.allow"`` or ``"devices.deny"``.  Like runc: a disruptive ``a`` first when the
    default changes or the group is allow-all (its deny exceptions cannot be read back), then the
    exceptions the group loses, then those it gains, each in runc's order."""
    target = _emulate(rules)
    source = _parse_list(current) if current is not None else _State(default_allow=True)
    out: list[tuple[str, str]] = []
    old = source.exceptions
    if source.default_allow or source.default_allow != target.default_allow:
        out.append(("devices.allow" if target.default_allow else "devices.deny", "a *:* rwm"))
        old = {}
    grant = "devices.deny" if target.default_allow else "devices.allow"   # adds an exception
    revoke = "devices.allow" if target.default_allow else "devices.deny"  # removes one
    for key, bits in sorted(old.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][0])):
        dropped = bits & ~target.exceptions.get(key, 0)
        if dropped:
            out.append((revoke, _line(key, dropped)))
    for key, bits in target.ordered():
        gained = bits & ~old.get(key, 0)
        if gained:
            out.append((grant, _line(key, gained)))
    return out


def _line(key: _Key, bits: int) -> str:
    kind, major, minor = key
    return f"{kind} {'*' if major < 0 else major}:{'*' if minor < 0 else minor} {_access(bits)}"


def _parse_list(text: str) -> _State:
    """devices.list: ``a *:* rwm`` alone means allow-all; otherwise the allow exceptions of a
    deny-all group."""
    state = _State(default_allow=False)
    for line in text.splitlines():
        fields = line.split()
        if len(fields) != 3 or ":" not in fields[1]:
            continue
        kind, (major, _, minor), access = fields[0], fields[1].partition(":"), fields[2]
        if kind == "a":
            return _State(default_allow=True)
        key = (kind, -1 if major == "*" else int(major), -1 if minor == "*" else int(minor))
        state.exceptions[key] = state.exceptions.get(key, 0) | _bits(access)
    return state


def apply_v1(devices_dir: str, rules: Iterable[DeviceRule]) -> None:
    """Make the v1 devices group ``devices_dir`` enforce ``rules`` (its current devices.list is
    read first, so only the needed writes are made).  Raises :class:`DeviceRuleError` for rules
    the controller cannot express, :class:`KernelError` for a refused write."""
    current = _read(os.path.join(devices_dir, "devices.list"))
    fds: dict[str, int] = {}
    try:
        for name, line in v1_lines(rules, current):
            path = os.path.join(devices_dir, name)
            if name not in fds:
                fds[name] = _open(path)
            try:
                os.write(fds[name], line.encode())  # one rule per write: the kernel parses one
            except OSError as exc:
                raise _v1_error(exc, path, line) from None
    finally:
        for fd in fds.values():
            os.close(fd)


def _read(path: str) -> str:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.read(fd, 1 << 16).decode()
        finally:
            os.close(fd)
    except OSError as exc:
        raise from_errno(exc.errno or 5, "read the device rules", _hint(exc.errno, path), path) from None


def _open(path: str) -> int:
    try:
        return os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise from_errno(exc.errno or 5, "open the device rules", _hint(exc.errno, path), path) from None


def _hint(err: int | None, path: str) -> str:
    if err == 2:
        return "the devices cgroup group is gone or this is not a v1 devices hierarchy"
    if err in (1, 13):
        return "writing device rules needs root (CAP_SYS_ADMIN) and a writable devices cgroup"
    return f"check {os.path.dirname(path)}"


def _v1_error(exc: OSError, path: str, line: str) -> KernelError:
    err = exc.errno or 5
    if err == 1:  # EPERM: a group may only narrow its parent's rules
        hint = (f"the parent group does not allow {line!r} (a group can only narrow its parent's "
                "device rules), or this process lacks CAP_SYS_ADMIN; allow it in the parent or drop the rule")
    elif err == 22:
        hint = f"the devices controller refused the rule {line!r}; check its type, numbers and access"
    else:
        hint = f"writing {line!r}"
    return from_errno(err, f"write device rule {line!r}", hint, path)


# -- cgroup v2: a BPF_CGROUP_DEVICE program -----------------------------------------------------

# eBPF opcodes (include/uapi/linux/bpf.h, bpf_common.h)
_LDX_W = 0x61        # BPF_LDX | BPF_MEM | BPF_W: dst = *(u32 *)(src + off)
_AND_K32 = 0x54      # BPF_ALU | BPF_AND | BPF_K
_RSH_K32 = 0x74      # BPF_ALU | BPF_RSH | BPF_K
_MOV_X32 = 0xBC      # BPF_ALU | BPF_MOV | BPF_X
_MOV_K32 = 0xB4      # BPF_ALU | BPF_MOV | BPF_K
_JNE_K = 0x55        # BPF_JMP | BPF_JNE | BPF_K
_JNE_X = 0x5D        # BPF_JMP | BPF_JNE | BPF_X
_JEQ_K = 0x15        # BPF_JMP | BPF_JEQ | BPF_K
_EXIT = 0x95         # BPF_JMP | BPF_EXIT
_DEV_TYPE = {"b": 1, "c": 2}  # BPF_DEVCG_DEV_BLOCK, BPF_DEVCG_DEV_CHAR
_BPF_CGROUP_DEVICE = 6        # enum bpf_attach_type
_BPF_F_ALLOW_MULTI = 2


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """struct bpf_insn: u8 code; u8 dst:4, src:4; s16 off; s32 imm (little-endian host)."""
    return (bytes((code, (src << 4) | dst)) + off.to_bytes(2, "little", signed=True)
            + imm.to_bytes(4, "little", signed=True))


def program_v2(rules: Iterable[DeviceRule]) -> bytes:
    """The ``BPF_CGROUP_DEVICE`` program enforcing ``rules`` (returns 1 to allow, 0 to deny).

    Registers: r2 = device type, r3 = requested access bits, r4 = major, r5 = minor (from
    ``struct bpf_cgroup_dev_ctx``).  One block per exception; a request that matches a block
    returns the exception's verdict, one that matches none the default.  An allow exception
    matches when it covers every requested bit, a deny exception when it covers any (the v1
    kernel's ``match_exception`` and ``match_exception_partial``)."""
    state = _emulate(rules)
    head = [
        _insn(_LDX_W, 2, 1, 0), _insn(_AND_K32, 2, imm=0xFFFF),   # type: low 16 bits of access_type
        _insn(_LDX_W, 3, 1, 0), _insn(_RSH_K32, 3, imm=16),       # access: high 16 bits
        _insn(_LDX_W, 4, 1, 4),                                   # major
        _insn(_LDX_W, 5, 1, 8),                                   # minor
    ]
    verdict = 0 if state.default_allow else 1  # an exception's verdict is the default's opposite
    blocks = b"".join(_block(key, bits, verdict) for key, bits in state.ordered())
    return b"".join(head) + blocks + _insn(_MOV_K32, 0, imm=1 - verdict) + _insn(_EXIT)


def _block(key: _Key, bits: int, verdict: int) -> bytes:
    """``if the request matches the exception: return verdict``.  Each entry is one instruction;
    a test (a tuple: code, dst, src, imm) that fails jumps past the block's exit."""
    kind, major, minor = key
    body: list[bytes | tuple[int, int, int, int]] = [(_JNE_K, 2, 0, _DEV_TYPE[kind])]
    if bits != _ALL:
        body += [_insn(_MOV_X32, 1, 3), _insn(_AND_K32, 1, imm=bits)]  # r1 = access & bits
        # allow: every requested bit covered (r1 == access); deny: any bit covered (r1 != 0)
        body.append((_JNE_X, 1, 3, 0) if verdict else (_JEQ_K, 1, 0, 0))
    if major >= 0:
        body.append((_JNE_K, 4, 0, major))
    if minor >= 0:
        body.append((_JNE_K, 5, 0, minor))
    body += [_insn(_MOV_K32, 0, imm=verdict), _insn(_EXIT)]
    end = len(body)
    return b"".join(item if isinstance(item, bytes)
                    else _insn(item[0], item[1], item[2], end - pc - 1, item[3])
                    for pc, item in enumerate(body))


def attach_v2(cgroup2_dir_fd: int, rules: Iterable[DeviceRule]) -> None:
    """Load :func:`program_v2` of ``rules`` and attach it (``BPF_F_ALLOW_MULTI``: programs of
    the parent groups keep running too; a device must pass all) to the cgroup2 group open as
    ``cgroup2_dir_fd``.  The group holds the program; no fd is left open."""
    from .. import _native

    insns = program_v2(rules)
    path = _fd_path(cgroup2_dir_fd)
    try:
        prog = _native.bpf_prog_load_cgroup_device(insns)
    except OSError as exc:
        err = exc.errno or 22
        if err == 1:
            hint = "loading a BPF device program needs CAP_BPF or CAP_SYS_ADMIN (root on the host)"
        elif err == 38:
            hint = "this kernel has no bpf() (CONFIG_BPF_SYSCALL); device rules need it on cgroup v2"
        else:  # the verifier refused it: a clonekit bug, the log says where
            hint = ("the kernel's verifier refused the device program (a clonekit bug; report it "
                    f"with this log): {exc.strerror}")
        raise KernelError(err, f"{os.strerror(err)}: {hint}", step="load the BPF device program",
                          filename=path) from None
    try:
        _native.bpf_prog_attach(prog, cgroup2_dir_fd, _BPF_CGROUP_DEVICE, _BPF_F_ALLOW_MULTI)
    except OSError as exc:
        err = exc.errno or 22
        hint = ("the group refuses more programs: another program was attached without "
                "BPF_F_ALLOW_MULTI" if err == 1 else
                "the fd must be a directory of a cgroup2 hierarchy")
        raise from_errno(err, "attach the BPF device program", hint, path) from None
    finally:
        os.close(prog)


def _fd_path(fd: int) -> str:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return f"fd {fd}"
