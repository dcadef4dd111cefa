"""``linux.seccomp`` of config.json -> :class:`~clonekit.security.seccomp.Seccomp`.

Every field is checked with its JSON path, before any syscall: what runc refuses (a NOTIFY
default action, NOTIFY on ``write``, NOTIFY without a ``listenerPath``), what the runtime-spec
forbids (``errnoRet`` on an action without an errno, ``listenerMetadata`` without
``listenerPath``, an empty ``names``), and what the kernel would refuse later, in the init, with
a bare EINVAL (an argument index above 5, an errno above 4095, WAIT_KILLABLE_RECV without a
listener).  The tables (actions, operators, architectures, flags) are the security module's, the
same that ``clonekit features`` prints.
"""

from __future__ import annotations

from .._jsonc import dumps
from ..security.seccomp import (
    ACTIONS,
    ARCHITECTURES,
    ERRNO_ACTIONS,
    FLAGS,
    OPERATORS,
    Seccomp,
    SeccompArg,
    SeccompRule,
)
from .jsonfields import SPEC, SpecError, check_fields, get, integer, obj, seq, str_list, string

TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover
    from typing import Any

__all__ = ["parse_seccomp"]

SECCOMP_KNOWN = frozenset({"defaultAction", "defaultErrnoRet", "architectures", "flags",
                           "listenerPath", "listenerMetadata", "syscalls"})
SYSCALL_KNOWN = frozenset({"names", "action", "errnoRet", "args"})
ARG_KNOWN = frozenset({"index", "value", "valueTwo", "op"})
UINT64_MAX = (1 << 64) - 1
MAX_ERRNO = 4095     # the kernel cuts a larger SECCOMP_RET_ERRNO down to this
SUN_PATH_MAX = 107   # bytes of a unix socket path
# names people write for an architecture (Go's, the kernel's) -> libseccomp's
ALIASES = {"SCMP_ARCH_AMD64": "SCMP_ARCH_X86_64", "SCMP_ARCH_ARM64": "SCMP_ARCH_AARCH64",
           "SCMP_ARCH_I386": "SCMP_ARCH_X86", "SCMP_ARCH_386": "SCMP_ARCH_X86"}


def parse_seccomp(value: object, path: str = "$.linux.seccomp") -> Seccomp | None:
    """The rule set; None when it has neither a default action nor rules (runc: no filter)."""
    doc = obj(value, path)
    check_fields(doc, path, SECCOMP_KNOWN, what="linux.seccomp")
    architectures = _names(doc, "architectures", path, ARCHITECTURES, "architecture")
    flags = _names(doc, "flags", path, FLAGS, "flag") if get(doc, "flags") is not None else None
    syscalls = tuple(_rule(item, f"{path}.syscalls[{i}]")
                     for i, item in enumerate(seq(doc["syscalls"], f"{path}.syscalls"))
                     ) if get(doc, "syscalls") is not None else ()
    default = string(doc["defaultAction"], f"{path}.defaultAction") if get(doc, "defaultAction") else ""
    if not default and not syscalls:
        return None
    if not default:
        raise SpecError(f"{path}.defaultAction", f"missing: {SPEC} requires the action for the syscalls "
                        "no rule matches; add one, e.g. \"SCMP_ACT_ERRNO\"")
    default = _action(default, f"{path}.defaultAction")
    if default == "SCMP_ACT_NOTIFY":
        raise SpecError(f"{path}.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action: the "
                        "container's init could not even send its listener fd (runc refuses it too); "
                        "notify on chosen syscalls and pick another default")
    errno_ret = _errno_ret(doc, "defaultErrnoRet", path, default, "defaultAction")
    s = Seccomp(default_action=default, default_errno_ret=errno_ret, architectures=architectures,
                flags=flags, listener_path=_listener_path(doc, path),
                listener_metadata=_metadata(doc, path), syscalls=syscalls)
    _check_listener(s, path)
    return s


def _names(doc: dict[str, Any], key: str, path: str, table: dict[str, int], what: str) -> tuple[str, ...]:
    if get(doc, key) is None:
        return ()
    names = str_list(doc[key], f"{path}.{key}")
    for i, name in enumerate(names):
        if name not in table:
            raise _unknown(f"{path}.{key}[{i}]", name, table, what)
    return names


def _unknown(path: str, name: str, table: dict[str, int], what: str) -> SpecError:
    import difflib  # only on this error path

    close = [ALIASES[name]] if name in ALIASES else difflib.get_close_matches(name.upper(), list(table), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return SpecError(path, f"{dumps(name)} is not a seccomp {what} clonekit knows (known: "
                           f"{', '.join(table)}); {hint}use one of those")


def _action(name: str, path: str) -> str:
    if name not in ACTIONS:
        raise _unknown(path, name, ACTIONS, "action")
    return name


def _errno_ret(doc: dict[str, Any], key: str, path: str, action: str, action_key: str) -> int | None:
    if get(doc, key) is None:
        return None
    value = integer(doc[key], f"{path}.{key}", 0, MAX_ERRNO, "an errno number (0 to 4095)")
    if action not in ERRNO_ACTIONS:
        raise SpecError(f"{path}.{key}", f"{action} returns no errno, only SCMP_ACT_ERRNO and "
                        f"SCMP_ACT_TRACE do ({SPEC}: the runtime must fail); remove {key} or change "
                        f"{action_key}")
    return value


def _rule(value: object, path: str) -> SeccompRule:
    doc = obj(value, path)
    check_fields(doc, path, SYSCALL_KNOWN, what="a linux.seccomp.syscalls entry")
    if get(doc, "names") is None:
        raise SpecError(f"{path}.names", f"missing: {SPEC} requires the syscalls this rule matches; "
                        "add their names")
    names = str_list(doc["names"], f"{path}.names")
    if not names:
        raise SpecError(f"{path}.names", f"is empty: {SPEC} requires at least one syscall name; add "
                        "one or remove the rule")
    for i, name in enumerate(names):
        if not name:
            raise SpecError(f"{path}.names[{i}]", "is empty: an empty string names no syscall; remove it")
    if get(doc, "action") is None:
        raise SpecError(f"{path}.action", f"missing: {SPEC} requires the action taken on these "
                        "syscalls; add one, e.g. \"SCMP_ACT_ALLOW\"")
    action = _action(string(doc["action"], f"{path}.action"), f"{path}.action")
    if action == "SCMP_ACT_NOTIFY" and "write" in names:
        i = names.index("write")
        raise SpecError(f"{path}.names[{i}]", "SCMP_ACT_NOTIFY cannot be used for write: the init "
                        "writes the listener fd's number to the runtime after installing the filter "
                        "and would wait for an agent that cannot have it yet (runc refuses it too); "
                        "remove write from this rule")
    args = (tuple(_arg(item, f"{path}.args[{i}]")
                  for i, item in enumerate(seq(doc["args"], f"{path}.args")))
            if get(doc, "args") is not None else ())
    return SeccompRule(names=names, action=action,
                       errno_ret=_errno_ret(doc, "errnoRet", path, action, "action"), args=args)


def _arg(value: object, path: str) -> SeccompArg:
    doc = obj(value, path)
    check_fields(doc, path, ARG_KNOWN, what="a seccomp argument condition")
    for key in ("index", "value", "op"):
        if get(doc, key) is None:
            raise SpecError(f"{path}.{key}", f"missing: {SPEC} requires index, value and op in "
                            "every argument condition; add it")
    index = integer(doc["index"], f"{path}.index", 0, 5, "a syscall argument index (0 to 5)")
    op = string(doc["op"], f"{path}.op")
    if op not in OPERATORS:
        raise _unknown(f"{path}.op", op, OPERATORS, "operator")
    return SeccompArg(
        index=index,
        value=integer(doc["value"], f"{path}.value", 0, UINT64_MAX, "an unsigned 64-bit integer"),
        value_two=(integer(doc["valueTwo"], f"{path}.valueTwo", 0, UINT64_MAX,
                           "an unsigned 64-bit integer") if get(doc, "valueTwo") is not None else 0),
        op=op)


def _listener_path(doc: dict[str, Any], path: str) -> str | None:
    if get(doc, "listenerPath") is None:
        return None
    value = string(doc["listenerPath"], f"{path}.listenerPath")
    if len(value.encode()) > SUN_PATH_MAX:
        raise SpecError(f"{path}.listenerPath", f"is {len(value.encode())} bytes long: a unix socket "
                        f"path holds at most {SUN_PATH_MAX}; use a shorter path")
    return value or None  # "" is unset, as for runc


def _metadata(doc: dict[str, Any], path: str) -> str:
    return string(doc["listenerMetadata"], f"{path}.listenerMetadata") if get(doc, "listenerMetadata") else ""


def _check_listener(s: Seccomp, path: str) -> None:
    if s.notifies and s.listener_path is None:
        i = next(i for i, rule in enumerate(s.syscalls) if rule.action == "SCMP_ACT_NOTIFY")
        raise SpecError(f"{path}.syscalls[{i}].action", "SCMP_ACT_NOTIFY needs a seccomp agent: set "
                        "linux.seccomp.listenerPath to the unix socket it listens on (runc fails the "
                        "same way: \"seccomp listenerPath is not set\")")
    if s.listener_metadata and s.listener_path is None:
        raise SpecError(f"{path}.listenerMetadata", f"is set without listenerPath ({SPEC}: must not "
                        "be); set listenerPath or remove listenerMetadata")
    if s.flags and "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV" in s.flags and not s.notifies:
        i = s.flags.index("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV")
        raise SpecError(f"{path}.flags[{i}]", "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV concerns NOTIFY "
                        "listeners and the kernel refuses it (EINVAL) on a filter without one; remove "
                        "it or add an SCMP_ACT_NOTIFY rule")
