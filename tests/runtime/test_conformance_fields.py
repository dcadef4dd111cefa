"""The fields of runtime-spec 1.2/1.3 that clonekit now applies, seen from inside containers:
``linux.memoryPolicy`` (read back from /proc/self/numa_maps, which names the task's policy on
every mapping), ``linux.netDevices`` (a veth pair made in a network namespace of the test's own,
which stands for the host: the runtime runs inside it), ``process.scheduler`` (read back from
/proc/self/stat), and the features document that lists them.

Their validation is checked against the kernel itself: every policy the parser accepts or
refuses is also tried with set_mempolicy / sched_setattr in a forked child, and both must agree
(the parser's errno is the kernel's).  runc 1.1 and crun 1.8 here implement none of these fields,
so there is no side-by-side run; this machine has one NUMA node (node 0), so the policies are
shown on node 0 and a node without memory (5) is the refusal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from runtime_helpers import run_cmd

from clonekit import _native
from clonekit.runtime.features import features_document
from clonekit.runtime.jsonfields import SpecError
from clonekit.runtime.spec_confine import parse_confinement, parse_memory_policy
from clonekit.security import attrs

NUMA_MAPS = os.path.exists("/proc/self/numa_maps")
needs_numa = pytest.mark.skipif(not NUMA_MAPS, reason="this kernel has no NUMA support (no numa_maps)")


def _nodes_with_memory() -> set[int]:
    try:
        with open("/sys/devices/system/node/has_memory") as f:
            return set(attrs.parse_cpu_list(f.read().strip()))
    except (OSError, ValueError):
        return {0}


def _kernel_answer(call, *args) -> int:
    """0 or the errno of ``call(*args)`` made in a forked child (the policy stays there)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        err = 0
        try:
            call(*args)
        except OSError as exc:
            err = exc.errno or 0
        os.write(w, str(err).encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        answer = int(f.read() or "-1")
    os.waitpid(pid, 0)
    return answer


# -- linux.memoryPolicy --------------------------------------------------------------------------

POLICIES = [
    ({"mode": "MPOL_DEFAULT"}, "default"),
    ({"mode": "MPOL_BIND", "nodes": "0"}, "bind:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0"}, "interleave:0"),
    ({"mode": "MPOL_WEIGHTED_INTERLEAVE", "nodes": "0"}, "weighted interleave:0"),
    ({"mode": "MPOL_PREFERRED", "nodes": "0"}, "prefer:0"),
    ({"mode": "MPOL_PREFERRED_MANY", "nodes": "0"}, "prefer (many):0"),
    ({"mode": "MPOL_LOCAL"}, "local"),
    ({"mode": "MPOL_PREFERRED"}, "local"),  # no node: the kernel makes it local allocation
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]}, "bind=balancing:0"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]}, "bind=static:0"),
    ({"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_RELATIVE_NODES"]}, "interleave=relative:0"),
]


@needs_numa
@pytest.mark.parametrize("policy, shown", POLICIES, ids=[p["mode"] + "".join(p.get("flags", ())) +
                                                         p.get("nodes", "") for p, _ in POLICIES])
def test_memory_policy_is_the_containers_and_survives_exec(bundles, policy, shown):
    def edit(config):
        config["linux"]["memoryPolicy"] = policy

    # sh, then head exec'd by it: the policy is kept across fork and execve
    cid, bundle, _ = bundles.new(["sh", "-c", "head -1 /proc/self/numa_maps"], edit=[edit])
    out = bundles.cli("run", "--bundle", bundle, cid)
    assert out.stdout.split(" ", 1)[1].startswith(shown + " "), out.stdout  # "ADDR POLICY file=..."


@needs_numa
def test_a_node_without_memory_fails_create_naming_the_nodes(bundles):
    node = 5
    if node in _nodes_with_memory():
        pytest.skip("this machine has memory on node 5")

    def edit(config):
        config["linux"]["memoryPolicy"] = {"mode": "MPOL_BIND", "nodes": str(node)}

    cid, bundle, _ = bundles.new(["true"], edit=[edit])
    out = bundles.cli("run", "--bundle", bundle, cid, check=False)
    assert out.returncode == 1 and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    assert "EINVAL" in out.stderr and "set the memory policy" in out.stderr
    allowed = ",".join(str(n) for n in sorted(_nodes_with_memory()))
    assert f"none of the nodes {node} can be used here" in out.stderr and allowed in out.stderr
    assert not os.listdir(bundles.root) if os.path.isdir(bundles.root) else True
    # the kernel says the same
    mask = attrs.MemoryPolicy("MPOL_BIND", frozenset({node})).nodemask
    assert _kernel_answer(_native.set_mempolicy, 2, mask) == 22


MPOL_CASES = [
    {"mode": "MPOL_DEFAULT", "nodes": "0"},
    {"mode": "MPOL_DEFAULT", "flags": ["MPOL_F_STATIC_NODES"]},
    {"mode": "MPOL_BIND"},
    {"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES", "MPOL_F_RELATIVE_NODES"]},
    {"mode": "MPOL_INTERLEAVE", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
    {"mode": "MPOL_PREFERRED", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
    {"mode": "MPOL_PREFERRED_MANY", "nodes": "0", "flags": ["MPOL_F_NUMA_BALANCING"]},
    {"mode": "MPOL_PREFERRED", "flags": ["MPOL_F_STATIC_NODES"]},
    {"mode": "MPOL_PREFERRED"},
    {"mode": "MPOL_LOCAL", "nodes": "0"},
    {"mode": "MPOL_LOCAL", "flags": ["MPOL_F_RELATIVE_NODES"]},
    {"mode": "MPOL_WEIGHTED_INTERLEAVE"},
    {"mode": "MPOL_PREFERRED_MANY"},
    {"mode": "MPOL_BIND", "nodes": "0-1"},
]


@needs_numa
@pytest.mark.parametrize("policy", MPOL_CASES, ids=[json.dumps(c, separators=(",", ":"))
                                                    for c in MPOL_CASES])
def test_memory_policy_rules_are_the_kernels(policy):
    """What the parser refuses, set_mempolicy refuses with EINVAL, and what it accepts, the
    kernel takes (node 0 has memory on every machine with NUMA)."""
    mode = attrs.MPOL_MODES[policy["mode"]]
    for name in policy.get("flags", ()):
        mode |= attrs.MPOL_FLAGS[name]
    nodes = attrs.parse_cpu_list(policy["nodes"]) if policy.get("nodes") else frozenset()
    kernel = _kernel_answer(_native.set_mempolicy, mode, attrs.MemoryPolicy("MPOL_BIND", nodes).nodemask)
    try:
        parsed = parse_memory_policy(policy)
    except SpecError as exc:
        assert kernel == 22, (policy, exc)
        assert "(EINVAL)" in exc.message and exc.json_path == "$.linux.memoryPolicy"
    else:
        assert kernel == 0, (policy, kernel)
        assert parsed.value == mode


@pytest.mark.parametrize("policy, path, words", [
    ({"mode": "MPOL_NOPE"}, "$.linux.memoryPolicy.mode", "not a memory policy mode"),
    ({}, "$.linux.memoryPolicy.mode", "missing"),
    ({"mode": "MPOL_BIND", "nodes": "0-x"}, "$.linux.memoryPolicy.nodes", "not a node list"),
    ({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_NOPE"]}, "$.linux.memoryPolicy.flags[0]",
     "not a memory policy flag"),
])
def test_memory_policy_names_are_checked_with_their_path(policy, path, words):
    with pytest.raises(SpecError, match=words) as info:
        parse_memory_policy(policy)
    assert info.value.json_path == path


# -- process.scheduler ----------------------------------------------------------------------------

SCHED_CASES = [
    {"policy": "SCHED_FIFO", "priority": 0},
    {"policy": "SCHED_FIFO", "priority": 100},
    {"policy": "SCHED_RR", "priority": 99},
    {"policy": "SCHED_OTHER", "priority": 1},
    {"policy": "SCHED_BATCH", "nice": 5},
    {"policy": "SCHED_IDLE"},
    {"policy": "SCHED_ISO"},
    {"policy": "SCHED_DEADLINE"},
    {"policy": "SCHED_DEADLINE", "runtime": 1000, "deadline": 1_000_000},
    {"policy": "SCHED_DEADLINE", "runtime": 2_000_000, "deadline": 1_000_000},
    {"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 10_000_000, "period": 5_000_000},
    {"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 10_000_000},
    {"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 10_000_000, "period": 1 << 63},
    {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_RESET_ON_FORK"]},
]


def _ids(cases: list[dict]) -> list[str]:
    return [json.dumps(c, separators=(",", ":")) for c in cases]


@pytest.mark.parametrize("sched", SCHED_CASES, ids=_ids(SCHED_CASES))
def test_scheduler_rules_are_the_kernels(sched):
    """The parser accepts what sched_setattr accepts and refuses what it refuses (EINVAL),
    tried in a forked child as root (CAP_SYS_NICE: the rules, not the privileges, decide)."""
    args = (0, attrs.SCHED_POLICIES[sched["policy"]],
            sum(attrs.SCHED_FLAGS[f] for f in sched.get("flags", ())), sched.get("nice", 0),
            sched.get("priority", 0), sched.get("runtime", 0), sched.get("deadline", 0),
            sched.get("period", 0))
    kernel = _kernel_answer(_native.sched_setattr, *args)
    try:
        parse_confinement({"scheduler": sched}, False)
    except SpecError as exc:
        assert kernel == 22, (sched, exc)
        assert "EINVAL" in exc.message
    else:
        assert kernel == 0, (sched, kernel)


def test_times_on_a_policy_that_ignores_them_are_refused_as_runc_refuses_them():
    # the kernel ignores runtime/deadline/period outside SCHED_DEADLINE; runc refuses them, and
    # so do we, saying which is which (no "EINVAL" claimed)
    sched = {"policy": "SCHED_BATCH", "runtime": 5}
    assert _kernel_answer(_native.sched_setattr, 0, 3, 0, 0, 0, 5, 0, 0) == 0
    with pytest.raises(SpecError, match="would ignore it") as info:
        parse_confinement({"scheduler": sched}, False)
    assert info.value.json_path == "$.process.scheduler.runtime" and "EINVAL" not in info.value.message


def _sched_run(bundles, sched, *opts):
    def edit(config):
        config["process"]["scheduler"] = sched
        if "--cgroup-manager" in opts:
            del config["linux"]["cgroupsPath"]

    cid, bundle, _ = bundles.new(["cut", "-d", " ", "-f", "18,19,40,41", "/proc/self/stat"], edit=[edit])
    return bundles.cli(*opts, "run", "--bundle", bundle, cid, check=False)


def test_scheduler_policies_are_applied(bundles):
    # /proc/PID/stat: 18 priority, 19 nice, 40 rt_priority, 41 policy
    out = _sched_run(bundles, {"policy": "SCHED_IDLE"})
    assert out.returncode == 0 and out.stdout.split()[3] == "5", out.stderr
    out = _sched_run(bundles, {"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 10_000_000})
    assert out.returncode == 0 and out.stdout.split()[3] == "6", out.stderr
    # a real-time policy in the container's own v1 cpu group (cpu.rt_runtime_us 0) is refused
    # by the kernel even with CAP_SYS_NICE: the error says so and names the field to set
    if os.path.exists("/sys/fs/cgroup/cpu/cpu.rt_runtime_us"):
        out = _sched_run(bundles, {"policy": "SCHED_FIFO", "priority": 10})
        assert out.returncode == 1 and "EPERM" in out.stderr and "realtimeRuntime" in out.stderr
        assert out.stderr.count("\n") == 1
    # where the runtime's own group has a real-time budget (no group of the container's)
    out = _sched_run(bundles, {"policy": "SCHED_FIFO", "priority": 10}, "--cgroup-manager", "disabled")
    if out.returncode != 0 and "rt_runtime" in out.stderr:
        pytest.skip("the runtime's own cpu group has no real-time budget here")
    assert out.returncode == 0 and out.stdout.split()[2:] == ["10", "1"], out.stderr


def test_scheduler_refusals_the_kernel_decides_at_start_say_why(bundles):
    with open("/proc/sys/kernel/sched_deadline_period_max_us") as f:
        longest = int(f.read()) * 1000
    out = _sched_run(bundles, {"policy": "SCHED_DEADLINE", "runtime": 1_000_000, "deadline": 10_000_000,
                               "period": longest + 1000})
    assert out.returncode == 1 and "EINVAL" in out.stderr and "sched_deadline_period" in out.stderr
    uclamp = _kernel_answer(_native.sched_setattr, 0, 0, 0x20, 0, 0, 0, 0, 0)
    out = _sched_run(bundles, {"policy": "SCHED_OTHER", "flags": ["SCHED_FLAG_UTIL_CLAMP_MIN"]})
    if uclamp == 95:  # EOPNOTSUPP: no CONFIG_UCLAMP_TASK
        assert out.returncode == 1 and "CONFIG_UCLAMP_TASK" in out.stderr
    else:
        assert out.returncode == 0


# -- linux.netDevices -----------------------------------------------------------------------------

HOST_SETUP = """
ip link add ckt-a type veth peer name ckt-ap
ip link add ckt-b type veth peer name ckt-bp
ip link add ckt-c type veth peer name ckt-cp
ip addr add 10.77.0.2/24 dev ckt-a
ip -6 addr add fd77::2/64 dev ckt-a nodad
ip link set ckt-a up
"""


def _in_own_netns(bundles, body: str) -> subprocess.CompletedProcess[str]:
    """Run shell ``body`` in a network namespace of its own, standing for the host: the
    runtime started there moves that namespace's interfaces ($CK is the clonekit command)."""
    ck = f"{sys.executable} -m clonekit --root {bundles.root}"
    return run_cmd(["unshare", "-n", "/bin/sh", "-c", f"CK='{ck}'\n{HOST_SETUP}\n{body}"], timeout=60)


@pytest.mark.parametrize("userns", [False, True], ids=["root", "user-namespace"])
def test_net_devices_are_moved_renamed_with_their_addresses_and_up(bundles, userns):
    def edit(config):
        config["linux"]["netDevices"] = {"ckt-a": {"name": "eth0"}, "ckt-b": {"name": "net%d"},
                                         "ckt-c": {}}
        if userns:  # the network namespace is then the user namespace's: entered all the same
            config["linux"]["namespaces"].append({"type": "user"})
            for key in ("uidMappings", "gidMappings"):
                config["linux"][key] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cid, bundle, _ = bundles.new(["sh", "-c", "ip -o link; echo @@; ip -o addr"], edit=[edit])
    out = _in_own_netns(bundles, f"$CK run --bundle {bundle} {cid}; echo @@host; ip -o link")
    assert out.returncode == 0, out.stderr
    links, addrs, host = out.stdout.split("@@")
    names = {line.split(": ")[1].split("@")[0]: line for line in links.strip().splitlines()}
    assert set(names) == {"lo", "eth0", "net0", "ckt-c"}, names
    for name in ("lo", "eth0", "net0", "ckt-c"):  # the spec: up once moved; lo: as runc
        assert ",UP" in names[name] or "<UP" in names[name], names[name]
    # the permanent global addresses came along; nothing else was added
    assert "inet 10.77.0.2/24" in addrs and "inet6 fd77::2/64" in addrs
    moved = [line for line in addrs.strip().splitlines() if line.split()[1] != "lo"]
    assert len(moved) == 2 and all(line.split()[1] == "eth0" for line in moved), moved
    # gone from the "host": moved, then destroyed with the namespace (virtual devices), never
    # moved back by the runtime (the spec forbids it)
    assert "ckt-a:" not in host and "ckt-b:" not in host and "ckt-c:" not in host


@pytest.mark.parametrize("devices, words", [
    ({"ckt-a": {"name": "lo"}}, "has an interface 'lo' already"),
    ({"ckt-a": {"name": "e1"}, "ckt-nope": {}}, "no network interface 'ckt-nope'"),
])
def test_a_device_that_cannot_be_moved_fails_create_and_the_moved_ones_come_back(bundles, devices, words):
    def edit(config):
        config["linux"]["netDevices"] = devices

    cid, bundle, _ = bundles.new(["true"], edit=[edit])
    out = _in_own_netns(bundles, f"$CK run --bundle {bundle} {cid}; echo \"@@$?\"; ip -o link; "
                                 "ip -o addr show dev ckt-a")
    err, host = out.stdout.split("@@")[0], out.stdout.split("@@")[1]
    assert err == "" and host.startswith("1\n"), out
    assert words in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr
    # a failed create puts back what it moved, under the original name (down, addresses gone:
    # the kernel drops them on every move)
    assert "ckt-a@" in host and "ckt-b@" in host, host


def _network(config, path: str | None) -> None:
    """No network namespace (``path`` None), or the one at ``path``."""
    spaces = [n for n in config["linux"]["namespaces"] if n["type"] != "network"]
    config["linux"]["namespaces"] = spaces + ([{"type": "network", "path": path}] if path else [])


@pytest.mark.parametrize("edit, path, words", [
    (lambda c: c["linux"].update(netDevices={"eth0/x": {}}), '$.linux.netDevices["eth0/x"]', "'/'"),
    (lambda c: c["linux"].update(netDevices={"eth0": {"name": "a-very-long-name0"}}),
     "$.linux.netDevices.eth0.name", "at most 15"),
    (lambda c: c["linux"].update(netDevices={"eth0": {"name": "e%s"}}), "$.linux.netDevices.eth0.name",
     "one %d"),
    (lambda c: c["linux"].update(netDevices={"a": {"name": "x"}, "b": {"name": "x"}}),
     "$.linux.netDevices.b.name", "cannot share a name"),
    (lambda c: (c["linux"].update(netDevices={"eth0": {}}), _network(c, None)),
     "$.linux.netDevices", "needs a network namespace"),
    (lambda c: (c["linux"].update(netDevices={"eth0": {}}), _network(c, "/proc/self/ns/net")),
     "$.linux.netDevices", "runtime's own network namespace"),
])
def test_net_devices_refused_at_parse_with_the_path(bundles, edit, path, words):
    from clonekit.runtime.spec import plan_from_dict

    _, bundle, config = bundles.new(["true"], edit=[edit])
    with pytest.raises(SpecError, match=words) as info:
        plan_from_dict(config, bundle)
    assert info.value.json_path == path


# -- features -------------------------------------------------------------------------------------

def test_features_list_memory_policy_and_net_devices_as_runc_13(tmp_path):
    doc = features_document()
    linux = doc["linux"]
    assert linux["netDevices"] == {"enabled": True}
    assert set(linux["memoryPolicy"]) == {"modes", "flags"}
    assert set(linux["memoryPolicy"]["modes"]) == {
        "MPOL_DEFAULT", "MPOL_BIND", "MPOL_INTERLEAVE", "MPOL_WEIGHTED_INTERLEAVE", "MPOL_PREFERRED",
        "MPOL_PREFERRED_MANY", "MPOL_LOCAL"}
    assert set(linux["memoryPolicy"]["flags"]) == {"MPOL_F_NUMA_BALANCING", "MPOL_F_RELATIVE_NODES",
                                                    "MPOL_F_STATIC_NODES"}
    # every mode and flag listed is one the parser knows
    for mode in linux["memoryPolicy"]["modes"]:
        nodes = "0" if mode in attrs.MPOL_NEED_NODES else ""
        assert parse_memory_policy({"mode": mode, "nodes": nodes}).mode == mode
    for flag in linux["memoryPolicy"]["flags"]:
        assert parse_memory_policy({"mode": "MPOL_BIND", "nodes": "0", "flags": [flag]}).flags == (flag,)
    # the scheduler's policies and flags, as annotations (the spec has no features field for them)
    policies = doc["annotations"]["org.clonekit.process.scheduler.policies"].split(",")
    assert "SCHED_DEADLINE" in policies and "SCHED_ISO" not in policies
    out = subprocess.run([sys.executable, "-m", "clonekit", "features"], capture_output=True, text=True,
                         check=True)
    assert json.loads(out.stdout) == json.loads(json.dumps(doc))
