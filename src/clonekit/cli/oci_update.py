"""`clonekit update [flags | -r FILE | -r -] ID`: runc's update.  The flags (or the JSON, which
then wins over every flag, as in runc) become a runtime-spec linux.resources object;
clonekit.runtime.update applies and saves it."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse

# flag dest -> (section, field, how the value is read)
FLAGS = (
    ("blkio_weight", "blockIO", "weight", "uint"),
    ("cpu_period", "cpu", "period", "uint"),
    ("cpu_quota", "cpu", "quota", "int"),
    ("cpu_share", "cpu", "shares", "uint"),
    ("cpu_rt_period", "cpu", "realtimePeriod", "uint"),
    ("cpu_rt_runtime", "cpu", "realtimeRuntime", "int"),
    ("cpuset_cpus", "cpu", "cpus", "str"),
    ("cpuset_mems", "cpu", "mems", "str"),
    ("memory", "memory", "limit", "size"),
    ("memory_reservation", "memory", "reservation", "size"),
    ("memory_swap", "memory", "swap", "size"),
    ("kernel_memory", "memory", "kernel", "size"),
    ("kernel_memory_tcp", "memory", "kernelTCP", "size"),
    ("pids_limit", "pids", "limit", "int"),
)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str, flag: str) -> int:
    """docker/go-units RAMInBytes: ``64m``, ``1.5g``, ``512 MiB``, ``1024`` (binary units)."""
    from clonekit.errors import UsageError

    if text == "-1":
        return -1
    body = text.lower()
    body = body.removesuffix("b")
    body = body.removesuffix("i")
    unit = body[-1] if body and body[-1] in "kmgtp" else ""
    number = body[:len(body) - len(unit)].removesuffix(" ")
    try:
        if not number or not number.replace(".", "", 1).isdigit():
            raise ValueError
        return int(float(number) * _UNITS[unit])
    except ValueError:
        raise UsageError(f"invalid value for --{flag}: {text!r} is not a size; write bytes or a number "
                         "with k, m, g, t or p (binary units), like 64m or 1.5g, or -1 for none") from None


def changes_from_flags(args: argparse.Namespace) -> dict[str, object]:
    from clonekit.errors import UsageError

    out: dict[str, dict[str, object]] = {}
    for dest, section, key, kind in FLAGS:
        raw = getattr(args, dest, None)
        if raw is None or raw == "":
            continue
        flag = dest.replace("_", "-")
        value: object
        if kind == "size":
            value = ram_in_bytes(raw, flag)
        elif kind == "str":
            value = raw
        else:
            try:
                value = int(raw)
            except ValueError:
                raise UsageError(f"invalid value for --{flag}: {raw!r} is not a whole number") from None
            if kind == "uint" and value < 0:
                raise UsageError(f"invalid value for --{flag}: {raw} is negative; give 0 or more")
        out.setdefault(section, {})[key] = value
    return dict(out)


def read_resources(source: str) -> dict[str, object]:
    """-r FILE or -r - (stdin): a runtime-spec linux.resources JSON object."""
    from clonekit._jsonc import loads
    from clonekit.errors import UsageError

    where = "the standard input" if source == "-" else source
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source) as f:
                text = f.read()
    except OSError as exc:
        raise UsageError(f"update -r {source}: cannot read it: {exc.strerror}") from None
    try:
        doc = loads(text)
    except ValueError as exc:
        raise UsageError(f"update -r: {where} is not JSON ({exc}); give a linux.resources object, "
                         'e.g. {"memory": {"limit": 67108864}}') from None
    if not isinstance(doc, dict):
        raise UsageError(f"update -r: {where} holds a JSON {type(doc).__name__}, not an object; give a "
                         'linux.resources object, e.g. {"memory": {"limit": 67108864}}')
    return doc


def run(args: argparse.Namespace) -> int:
    from clonekit.errors import UsageError
    from clonekit.runtime.state import StateDir
    from clonekit.runtime.update import update

    from . import say

    for flag in ("l3_cache_schema", "mem_bw_schema"):
        if getattr(args, flag, None):
            raise UsageError(f"--{flag.replace('_', '-')}: Intel RDT is not supported by clonekit (no "
                             "resctrl support); drop the option")
    changes = read_resources(args.resources) if args.resources else changes_from_flags(args)
    memory = changes.get("memory")
    if isinstance(memory, dict) and (memory.get("kernel") or memory.get("kernelTCP")):
        say(args, "warning", "Kernel memory settings are ignored and will be removed")
    update(StateDir(args.root), args.container_id, changes)
    return 0
