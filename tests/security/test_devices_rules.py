"""Device rules without the kernel: the rule order, runc's defaults, the v1 writes, the v2
program (run by a small eBPF interpreter against the v1 kernel's matching rules), the parser."""

from __future__ import annotations

import itertools

import pytest

from clonekit.runtime.jsonfields import SpecError
from clonekit.runtime.spec_devices import parse_device_rules
from clonekit.security.devices import (
    DEFAULT_ALLOWED,
    DeviceRule,
    DeviceRuleError,
    effective_rules,
    program_v2,
    v1_lines,
)

DENY_ALL = DeviceRule(allow=False)

# devices.list of a runc 1.1.5 container made from `runc spec`'s rules (measured on this host)
RUNC_DEFAULT_LIST = """b *:* m
c *:* m
c 1:3 rwm
c 1:5 rwm
c 1:7 rwm
c 1:8 rwm
c 1:9 rwm
c 5:0 rwm
c 5:2 rwm
c 10:200 rwm
c 136:* rwm
"""


def allow(t: str, major: int | None, minor: int | None, access: str = "rwm") -> DeviceRule:
    return DeviceRule(True, t, major, minor, access)


def deny(t: str, major: int | None, minor: int | None, access: str = "rwm") -> DeviceRule:
    return DeviceRule(False, t, major, minor, access)


# -- the rule list ------------------------------------------------------------------------------

def test_runc_default_devices_in_runc_order() -> None:
    assert [str(r) for r in DEFAULT_ALLOWED] == [
        "c *:* m", "b *:* m", "c 1:3 rwm", "c 1:8 rwm", "c 1:7 rwm", "c 5:0 rwm", "c 1:5 rwm",
        "c 1:9 rwm", "c 136:* rwm", "c 5:2 rwm", "c 10:200 rwm"]
    assert all(r.allow for r in DEFAULT_ALLOWED)


def test_effective_rules_order_config_then_devices_then_defaults() -> None:
    config = (DENY_ALL, allow("c", 4, 1, "r"))
    got = effective_rules(config, [("c", 10, 229), ("p", 0, 0), ("u", 4, 64), ("b", 8, 0)])
    assert got[:2] == config
    assert got[2:5] == (allow("c", 10, 229), allow("c", 4, 64), allow("b", 8, 0))  # fifo: no rule
    assert got[5:] == DEFAULT_ALLOWED


# -- v1 writes ----------------------------------------------------------------------------------

def test_v1_writes_of_runc_spec_rules_give_runcs_devices_list() -> None:
    lines = v1_lines(effective_rules([DENY_ALL], []))
    assert lines[0] == ("devices.deny", "a *:* rwm")
    assert all(name == "devices.allow" for name, _ in lines[1:])
    assert "".join(line + "\n" for _, line in lines[1:]) == RUNC_DEFAULT_LIST


def test_v1_no_rules_at_all_is_allow_all() -> None:
    assert v1_lines([]) == [("devices.allow", "a *:* rwm")]


def test_v1_deny_list_mode() -> None:
    rules = [allow("a", None, None), deny("c", 1, 11, "rw"), deny("b", None, None, "m")]
    assert v1_lines(rules) == [("devices.allow", "a *:* rwm"), ("devices.deny", "b *:* m"),
                               ("devices.deny", "c 1:11 rw")]


def test_v1_later_rules_merge_and_subtract_exact_exceptions() -> None:
    rules = [DENY_ALL, allow("c", 1, 3, "r"), allow("c", 1, 3, "w"), allow("c", 1, 5, "rwm"),
             deny("c", 1, 5, "w"), deny("c", 1, 9, "rwm")]  # the last: no such exception, a no-op
    assert v1_lines(rules) == [("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:3 rw"),
                               ("devices.allow", "c 1:5 rm")]


def test_v1_a_later_deny_all_starts_over() -> None:
    rules = [DENY_ALL, allow("c", 1, 3), DENY_ALL, allow("c", 1, 5)]
    assert v1_lines(rules) == [("devices.deny", "a *:* rwm"), ("devices.allow", "c 1:5 rwm")]


@pytest.mark.parametrize(("rules", "index", "wider"), [
    ([DENY_ALL, allow("c", 1, None), deny("c", 1, 5, "w")], 2, "allow c 1:* rwm"),
    ([DENY_ALL, allow("c", None, 5, "r"), deny("c", 1, 5, "rw")], 2, "allow c *:5 r"),
    ([DENY_ALL, allow("b", None, None, "m"), deny("b", 8, 0, "m")], 2, "allow b *:* m"),
    ([allow("a", None, None), deny("c", 1, None), allow("c", 1, 3)], 2, "deny c 1:* rwm"),
])
def test_holes_in_wildcard_rules_are_refused(rules: list[DeviceRule], index: int, wider: str) -> None:
    with pytest.raises(DeviceRuleError) as info:
        v1_lines(rules)
    assert info.value.index == index
    assert wider in str(info.value) and "cut a hole" in str(info.value)
    with pytest.raises(DeviceRuleError):
        program_v2(rules)  # the same rules mean the same on v2


def test_hole_check_ignores_disjoint_access() -> None:
    # the wildcard allows only mknod: removing read from one device touches nothing of it
    rules = [DENY_ALL, allow("c", None, None, "m"), allow("c", 1, 3, "rw"), deny("c", 1, 3, "r")]
    assert v1_lines(rules)[1:] == [("devices.allow", "c *:* m"), ("devices.allow", "c 1:3 w")]


def test_v1_transition_from_an_existing_allow_list() -> None:
    current = "c 1:3 rwm\nc 1:5 r\nc 4:1 rw\n"  # e.g. a parent that is itself an allow list
    rules = [DENY_ALL, allow("c", 1, 3), allow("c", 1, 5, "rw")]
    assert v1_lines(rules, current) == [("devices.deny", "c 4:1 rw"), ("devices.allow", "c 1:5 w")]


def test_v1_transition_from_allow_all_is_disruptive() -> None:
    assert v1_lines([DENY_ALL], "a *:* rwm\n") == [("devices.deny", "a *:* rwm")]
    # deny exceptions of an allow-all group cannot be read back: reset it
    assert v1_lines([allow("a", None, None)], "a *:* rwm\n") == [("devices.allow", "a *:* rwm")]


# -- the v2 program, run by an interpreter of the instructions it uses --------------------------

def run_bpf(prog: bytes, dev_type: int, access: int, major: int, minor: int) -> int:
    """Execute the program on a struct bpf_cgroup_dev_ctx: only the opcodes program_v2 emits."""
    ctx = (access << 16 | dev_type, major, minor)
    regs = [0] * 11
    pc = 0
    insns = [prog[i:i + 8] for i in range(0, len(prog), 8)]
    for _ in range(10000):
        raw = insns[pc]
        code, regbyte = raw[0], raw[1]
        dst, src = regbyte & 0xF, regbyte >> 4
        off = int.from_bytes(raw[2:4], "little", signed=True)
        imm = int.from_bytes(raw[4:8], "little", signed=True)
        pc += 1
        if code == 0x61:
            assert src == 1 and off in (0, 4, 8)
            regs[dst] = ctx[off // 4]
        elif code == 0x54:
            regs[dst] = regs[dst] & imm & 0xFFFFFFFF
        elif code == 0x74:
            regs[dst] = (regs[dst] & 0xFFFFFFFF) >> imm
        elif code == 0xBC:
            regs[dst] = regs[src] & 0xFFFFFFFF
        elif code == 0xB4:
            regs[dst] = imm & 0xFFFFFFFF
        elif code == 0x55:
            pc += off if regs[dst] != imm else 0
        elif code == 0x5D:
            pc += off if regs[dst] != regs[src] else 0
        elif code == 0x15:
            pc += off if regs[dst] == imm else 0
        elif code == 0x95:
            return regs[0]
        else:
            raise AssertionError(f"unexpected opcode {code:#x}")
    raise AssertionError("no exit")


BITS = {"r": 2, "w": 4, "m": 1}


def v1_kernel_allows(lines: list[tuple[str, str]], t: str, major: int, minor: int, access: int) -> bool:
    """security/device_cgroup.c: build the group from the writes, then its permission check."""
    default_allow = True
    exceptions: list[tuple[str, int, int, int]] = []
    for name, line in lines:
        kind, numbers, acc = line.split()
        if kind == "a":
            default_allow, exceptions = name == "devices.allow", []
            continue
        maj, mi = numbers.split(":")
        entry = (kind, -1 if maj == "*" else int(maj), -1 if mi == "*" else int(mi),
                 sum(BITS[c] for c in acc))
        adds = (name == "devices.deny") == default_allow
        same = [e for e in exceptions if e[:3] == entry[:3]]
        if adds:
            exceptions = [e for e in exceptions if e[:3] != entry[:3]]
            exceptions.append((*entry[:3], entry[3] | (same[0][3] if same else 0)))
        elif same:
            exceptions = [e for e in exceptions if e[:3] != entry[:3]]
            left = same[0][3] & ~entry[3]
            if left:
                exceptions.append((*entry[:3], left))

    def covers(e: tuple[str, int, int, int]) -> bool:
        return e[0] == t and e[1] in (-1, major) and e[2] in (-1, minor)

    if default_allow:  # match_exception_partial: any shared bit denies
        return not any(covers(e) and e[3] & access for e in exceptions)
    return any(covers(e) and not access & ~e[3] for e in exceptions)  # match_exception


RULE_SETS = {
    "runc spec": effective_rules([DENY_ALL], []),
    "linux.devices": effective_rules([DENY_ALL], [("c", 10, 229), ("b", 8, 0)]),
    "partial access": effective_rules([DENY_ALL, allow("c", 4, None, "r"), allow("c", None, 64, "w"),
                                       allow("c", 4, 1, "m")], []),
    "deny list": [allow("a", None, None), deny("c", 1, 11, "w"), deny("b", None, None, "rw"),
                  deny("c", 4, None, "m")],
    "deny all only": [DENY_ALL],
    "allow all only": [],
}
PROBES = list(itertools.product(
    ("c", "b"), (1, 4, 5, 8, 10, 136), (0, 1, 3, 5, 11, 64, 200, 229), range(1, 8)))


@pytest.mark.parametrize("name", list(RULE_SETS))
def test_v2_program_decides_as_the_v1_kernel(name: str) -> None:
    rules = RULE_SETS[name]
    prog = program_v2(rules)
    lines = v1_lines(rules)
    for t, major, minor, access in PROBES:
        want = v1_kernel_allows(lines, t, major, minor, access)
        got = run_bpf(prog, {"b": 1, "c": 2}[t], access, major, minor)
        assert got == int(want), (name, t, major, minor, access)


def test_v2_program_shape() -> None:
    prog = program_v2([DENY_ALL])
    assert len(prog) == 8 * 8  # 6 loads + return 0
    assert prog[-16:] == bytes([0xB4, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])
    assert program_v2([])[-16:-8] == bytes([0xB4, 0, 0, 0, 1, 0, 0, 0])  # allow-all


# -- the parser ---------------------------------------------------------------------------------

def test_parse_runc_spec_rules_and_wildcards() -> None:
    assert parse_device_rules([{"allow": False, "access": "rwm"}]) == (DENY_ALL,)
    got = parse_device_rules([
        {"allow": True, "type": "c", "major": 1, "minor": -1, "access": "mrw"},
        {"allow": True, "type": "b", "major": None, "access": "m"},
        {"allow": False, "type": "", "access": "wrm"},
    ])
    assert got == (allow("c", 1, None, "rwm"), allow("b", None, None, "m"), DENY_ALL)
    assert parse_device_rules([]) == ()


@pytest.mark.parametrize(("value", "path", "words"), [
    ({"devices": 1}, "$.linux.resources.devices", "expected an array"),
    ([3], "$.linux.resources.devices[0]", "expected an object"),
    ([{"access": "rwm"}], "$.linux.resources.devices[0].allow", "missing"),
    ([{"allow": "yes", "access": "rwm"}], "$.linux.resources.devices[0].allow", "boolean"),
    ([{"allow": True, "type": "u", "major": 1, "access": "r"}], "$.linux.resources.devices[0].type",
     'write "c"'),
    ([{"allow": True, "type": "p", "access": "r"}], "$.linux.resources.devices[0].type", "fifo"),
    ([{"allow": True, "type": "x", "access": "r"}], "$.linux.resources.devices[0].type", "not a cgroup"),
    ([{"allow": True, "type": "c", "major": -2, "access": "r"}], "$.linux.resources.devices[0].major",
     "out of range"),
    ([{"allow": True, "type": "c", "minor": 1 << 20, "access": "r"}],
     "$.linux.resources.devices[0].minor", "out of range"),
    ([{"allow": True, "type": "c", "major": "1", "access": "r"}], "$.linux.resources.devices[0].major",
     "a major number"),
    ([{"allow": True, "type": "c", "major": True, "access": "r"}],
     "$.linux.resources.devices[0].major", "a major number"),
    ([{"allow": True, "type": "c"}], "$.linux.resources.devices[0].access", "missing"),
    ([{"allow": True, "type": "c", "access": ""}], "$.linux.resources.devices[0].access", "empty"),
    ([{"allow": True, "type": "c", "access": "rx"}], "$.linux.resources.devices[0].access", "'x'"),
    ([{"allow": False, "access": "r"}], "$.linux.resources.devices[0]", "every device with every access"),
    ([{"allow": False, "type": "a", "major": 1, "access": "rwm"}], "$.linux.resources.devices[0]",
     "every device"),
])
def test_parse_errors_name_the_field(value: object, path: str, words: str) -> None:
    if isinstance(value, dict):
        value = value["devices"]
    with pytest.raises(SpecError) as info:
        parse_device_rules(value)
    assert info.value.json_path == path
    assert words in info.value.message
