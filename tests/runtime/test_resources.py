"""linux.resources in the container's group: the same files hold the same values as under runc
for the same config, limits act (an OOM kill, a stopped fork bomb, cpu throttling), a limit the
host cannot carry fails `create` naming the controller and leaves nothing, and the cgroup2
writers against a fake cgroupfs tree (this host's cgroup2 has no controller enabled)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from runtime_helpers import RUNC, cgroup_dirs, remove_cgroup, script, sections

from clonekit.cgroups.resources import (
    BlockIO,
    Cpu,
    DeviceRate,
    Memory,
    Resources,
    cpu_weight,
    io_weight,
    swap_v2,
    write_controller,
)
from clonekit.errors import UsageError
from clonekit.runtime.jsonfields import SpecError
from clonekit.runtime.spec_resources import parse_resources

CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
V1 = "/sys/fs/cgroup"
needs_runc = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")


def v1(controller: str) -> bool:
    return os.path.isfile(f"{V1}/{controller}/cgroup.procs")


def limits(resources: dict):
    def edit(config):
        config["linux"]["resources"] = resources
        config["mounts"].append(dict(CGROUP_MOUNT))
    return edit


def cat(**files: str) -> list[str]:
    return script(**{name: f"cat {V1}/{path} 2>&1" for name, path in files.items()})


def side_by_side(pair, resources: dict, **files: str) -> dict[str, str]:
    results = pair.run(cat(**files), limits(resources))
    for name, r in results.items():
        assert r.returncode == 0, (name, r.stderr)
    ours, theirs = (sections(results[n].stdout) for n in ("clonekit", "runc"))
    assert ours == theirs
    return ours


# -- the same files, the same values as runc ------------------------------------------------

@needs_runc
@pytest.mark.skipif(not v1("memory"), reason="no cgroup v1 memory controller on this host")
def test_memory_files_equal_runcs(pair):
    mib = 1 << 20
    seen = side_by_side(pair, {"memory": {"limit": 64 * mib, "reservation": 32 * mib, "swap": 96 * mib,
                                          "swappiness": 10}},
                        limit="memory/memory.limit_in_bytes", soft="memory/memory.soft_limit_in_bytes",
                        memsw="memory/memory.memsw.limit_in_bytes", swappiness="memory/memory.swappiness")
    assert seen == {"limit": f"{64 * mib}\n", "soft": f"{32 * mib}\n", "memsw": f"{96 * mib}\n",
                    "swappiness": "10\n"}


@needs_runc
@pytest.mark.skipif(not v1("memory"), reason="no cgroup v1 memory controller on this host")
def test_unlimited_memory_and_oom_killer_off_equal_runcs(pair):
    seen = side_by_side(pair, {"memory": {"limit": -1, "disableOOMKiller": True}},
                        limit="memory/memory.limit_in_bytes", memsw="memory/memory.memsw.limit_in_bytes",
                        oom="memory/memory.oom_control")
    assert "oom_kill_disable 1" in seen["oom"]


@needs_runc
@pytest.mark.skipif(not os.path.exists(f"{V1}/memory/memory.kmem.tcp.limit_in_bytes"),
                    reason="this kernel has no v1 kernel memory files to compare")
def test_kernel_memory_is_ignored_as_by_runc(pair):
    seen = side_by_side(pair, {"memory": {"limit": 1 << 26, "kernel": 1 << 25, "kernelTCP": 1 << 24}},
                        kmem="memory/memory.kmem.limit_in_bytes", tcp="memory/memory.kmem.tcp.limit_in_bytes")
    assert str(1 << 24) not in seen["tcp"] and str(1 << 25) not in seen["kmem"]


@needs_runc
@pytest.mark.skipif(not v1("blkio"), reason="no cgroup v1 blkio controller on this host")
def test_blkio_weight_equals_runcs(pair):
    weight = "blkio.weight" if os.path.exists(f"{V1}/blkio/blkio.weight") else "blkio.bfq.weight"
    results = pair.run(cat(weight=f"blkio/{weight}"), limits({"blockIO": {"weight": 300}}))
    outs = {name: (r.returncode, sections(r.stdout)) for name, r in results.items()}
    if outs["runc"][0] != 0:    # no weight file in a container's group here: both must fail
        assert outs["clonekit"][0] != 0
        return
    assert outs["clonekit"] == outs["runc"] and "300" in outs["clonekit"][1]["weight"]


@needs_runc
@pytest.mark.skipif(not (v1("cpu") and v1("cpuset")), reason="no cgroup v1 cpu and cpuset controllers")
def test_cpu_files_equal_runcs(pair):
    seen = side_by_side(pair, {"cpu": {"shares": 512, "quota": 20000, "period": 50000, "cpus": "0",
                                       "mems": "0"}},
                        shares="cpu/cpu.shares", quota="cpu/cpu.cfs_quota_us", period="cpu/cpu.cfs_period_us",
                        cpus="cpuset/cpuset.cpus", mems="cpuset/cpuset.mems")
    assert seen == {"shares": "512\n", "quota": "20000\n", "period": "50000\n", "cpus": "0\n", "mems": "0\n"}


@needs_runc
@pytest.mark.skipif(not (v1("pids") and v1("blkio")), reason="no cgroup v1 pids and blkio controllers")
def test_pids_and_blkio_throttles_equal_runcs(pair):
    disk = next((Path(f"/sys/block/{d}/dev").read_text().strip() for d in sorted(os.listdir("/sys/block"))
                 if not d.startswith(("loop", "zram", "ram"))), None)
    if disk is None:
        pytest.skip("no block device to throttle")
    major, minor = (int(x) for x in disk.split(":"))
    seen = side_by_side(pair, {"pids": {"limit": 20}, "blockIO": {
        "throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 1 << 20}],
        "throttleWriteIOPSDevice": [{"major": major, "minor": minor, "rate": 100}]}},
        pids="pids/pids.max", rbps="blkio/blkio.throttle.read_bps_device",
        wiops="blkio/blkio.throttle.write_iops_device")
    assert seen == {"pids": "20\n", "rbps": f"{disk} {1 << 20}\n", "wiops": f"{disk} 100\n"}


# -- limits that act -------------------------------------------------------------------------

@pytest.mark.skipif(not v1("memory"), reason="no cgroup v1 memory controller on this host")
def test_a_memory_hog_is_oom_killed_under_the_limit(bundles):
    mib = 1 << 20
    cid, bundle, _ = bundles.new(script(
        hog="dd if=/dev/zero of=/dev/null bs=96M count=1 2>/dev/null; echo $?",
        oom=f"grep oom_kill {V1}/memory/memory.oom_control",
        peak=f"cat {V1}/memory/memory.max_usage_in_bytes"),
        edit=[limits({"memory": {"limit": 32 * mib, "swap": 32 * mib}})])
    out = bundles.cli("run", "--bundle", bundle, cid)
    seen = sections(out.stdout)
    assert seen["hog"].strip() == "137"                   # dd died of SIGKILL: the OOM killer
    assert "oom_kill 1" in seen["oom"]                     # the group counted the kill
    assert int(seen["peak"]) <= 32 * mib                   # and it never went past the limit


@pytest.mark.skipif(not v1("cpu"), reason="no cgroup v1 cpu controller on this host")
def test_a_cpu_quota_throttles_a_busy_loop(bundles):
    stat = f"{V1}/cpu/cpu.stat"
    cid, bundle, _ = bundles.new(script(throttled=(
        # busy until the group reports throttling (the fact), at most ~5 s; then stop the loop
        f"(while :; do :; done) & p=$!; n=0; while grep -q '^nr_throttled 0$' {stat} && [ $n -lt 100 ]; "
        f"do sleep 0.05; n=$((n+1)); done; kill $p; grep '^nr_throttled' {stat}")),
        edit=[limits({"cpu": {"quota": 10000, "period": 100000}})])
    out = bundles.cli("run", "--bundle", bundle, cid)
    assert int(sections(out.stdout)["throttled"].split()[1]) > 0


# -- what the host cannot carry ----------------------------------------------------------------

def refused(bundles, resources: dict) -> str:
    cid, bundle, _ = bundles.new(["true"], edit=[limits(resources)])
    out = bundles.cli("run", "--bundle", bundle, cid, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert not os.path.exists(os.path.join(bundles.root, cid))
    assert cgroup_dirs(cid) == []
    return out.stderr


@pytest.mark.skipif(v1("net_cls") or v1("net_cls,net_prio"), reason="this host has a net_cls controller")
def test_a_missing_controller_is_named_and_nothing_is_left(bundles):
    err = refused(bundles, {"network": {"classID": 0x100001}})
    assert "$.linux.resources.network.classID" in err and "no net_cls controller" in err


@pytest.mark.skipif(not v1("memory"), reason="no cgroup v1 memory controller on this host")
def test_a_unified_key_of_a_v1_controller_is_refused(bundles):
    err = refused(bundles, {"unified": {"memory.high": "1000000"}})
    assert '$.linux.resources.unified["memory.high"]' in err and "memory controller is not on cgroup2" in err


def test_a_v2_controller_not_enabled_above_clonekit_is_named(bundles):
    top = "/sys/fs/cgroup/unified"
    try:
        controllers = Path(f"{top}/cgroup.controllers").read_text().split()
        enabled = Path(f"{top}/cgroup.subtree_control").read_text().split()
    except OSError:
        pytest.skip("no cgroup2 mount at /sys/fs/cgroup/unified (not a hybrid host)")
    if "hugetlb" not in controllers or "hugetlb" in enabled or v1("hugetlb"):
        pytest.skip("needs hugetlb in cgroup2 but not enabled in its root (as on this hybrid host)")
    err = refused(bundles, {"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]})
    # the group's parent is the suite's /clonekit-test, made by no clonekit: never written to
    assert "$.linux.resources.hugepageLimits" in err
    assert f"hugetlb controller is not enabled in {top}/clonekit-test/cgroup.subtree_control" in err


# -- parsing and conversions -------------------------------------------------------------------

def test_parse_reads_every_section():
    res = parse_resources({"memory": {"limit": 100, "swap": 200, "swappiness": 5, "disableOOMKiller": True},
                           "cpu": {"shares": 1024, "quota": -1, "period": 100000, "cpus": "0-1,3"},
                           "pids": {"limit": -1},
                           "blockIO": {"weight": 500, "throttleReadBpsDevice": [
                               {"major": 8, "minor": 0, "rate": 10}]},
                           "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
                           "network": {"classID": 7, "priorities": [{"name": "eth0", "priority": 3}]},
                           "rdma": {"mlx5_0": {"hcaHandles": 2}}, "unified": {"memory.high": "max"},
                           "devices": [{"allow": False, "access": "rwm"}]})
    assert res.memory == Memory(limit=100, swap=200, swappiness=5, disable_oom_killer=True)
    assert res.cpu == Cpu(shares=1024, quota=-1, period=100000, cpus="0-1,3")
    assert res.pids == -1 and res.block_io is not None and res.block_io.read_bps == (DeviceRate(8, 0, 10),)
    assert res.hugepages == (("2MB", 4194304),) and res.unified == (("memory.high", "max"),)
    assert [c for c, _ in res.controllers()] == ["cpuset", "memory", "cpu", "pids", "blkio", "hugetlb",
                                                 "net_cls", "net_prio", "rdma"]


@pytest.mark.parametrize("value, path", [
    ({"memory": {"limit": -2}}, "$.linux.resources.memory.limit"),
    ({"memory": {"swappiness": 101}}, "$.linux.resources.memory.swappiness"),
    ({"cpu": {"shares": 1}}, "$.linux.resources.cpu.shares"),
    ({"cpu": {"period": 10}}, "$.linux.resources.cpu.period"),
    ({"cpu": {"cpus": "0-x"}}, "$.linux.resources.cpu.cpus"),
    ({"blockIO": {"weight": 5}}, "$.linux.resources.blockIO.weight"),
    ({"blockIO": {"throttleReadBpsDevice": [{"major": 8, "rate": 1}]}},
     "$.linux.resources.blockIO.throttleReadBpsDevice[0].minor"),
    ({"hugepageLimits": [{"pageSize": "2M", "limit": 1}]}, "$.linux.resources.hugepageLimits[0].pageSize"),
    ({"network": {"classID": -1}}, "$.linux.resources.network.classID"),
    ({"unified": {"memoryhigh": "1"}}, '$.linux.resources.unified.memoryhigh'),
    ({"pids": {"limit": "10"}}, "$.linux.resources.pids.limit"),
])
def test_bad_values_are_named_by_json_path(value, path):
    with pytest.raises(SpecError) as info:
        parse_resources(value)
    assert info.value.json_path == path


def test_runcs_v1_to_v2_conversions():
    assert [cpu_weight(s) for s in (0, 2, 1024, 262144)] == [0, 1, 39, 10000]
    assert [io_weight(w) for w in (0, 10, 500, 1000)] == [0, 1, 4950, 10000]
    assert swap_v2(0, -1) == -1 and swap_v2(-1, 100) == -1 and swap_v2(300, 100) == 200
    assert swap_v2(100, 100) == 0
    with pytest.raises(UsageError, match="needs a memory limit"):
        swap_v2(300, 0)
    with pytest.raises(UsageError, match="below the memory limit"):
        swap_v2(50, 100)


# -- the cgroup2 writers, against a FAKE cgroupfs tree ------------------------------------------

V2_FILES = ("memory.max", "memory.swap.max", "memory.low", "cpu.weight", "cpu.max", "cpu.max.burst",
            "cpuset.cpus", "cpuset.mems", "pids.max", "io.weight", "io.max", "hugetlb.2MB.max",
            "hugetlb.2MB.rsvd.max", "rdma.max")


def test_v2_writers_on_a_fake_cgroupfs_tree(tmp_path):
    """A temp dir holding cgroup2 file names stands in for a group (this host's cgroup2 has no
    controller enabled, so the real files cannot be exercised here)."""
    fake = tmp_path / "fake-cgroup2-group"
    fake.mkdir()
    for name in V2_FILES:
        (fake / name).write_text("")
    mib = 1 << 20
    res = parse_resources({"memory": {"limit": 64 * mib, "reservation": 32 * mib, "swap": 96 * mib},
                           "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "burst": 1000,
                                   "cpus": "0", "mems": "0"},
                           "pids": {"limit": 20}, "blockIO": {"weight": 500, "throttleReadBpsDevice": [
                               {"major": 8, "minor": 0, "rate": 1000}]},
                           "hugepageLimits": [{"pageSize": "2MB", "limit": 2 * mib}],
                           "rdma": {"mlx5_0": {"hcaHandles": 3, "hcaObjects": 9}}})
    for controller, _ in res.controllers():
        write_controller(controller, str(fake), 2, res)
    got = {name: (fake / name).read_text() for name in V2_FILES}
    assert got == {"memory.max": str(64 * mib), "memory.swap.max": str(32 * mib), "memory.low": str(32 * mib),
                   "cpu.weight": "39", "cpu.max": "50000 100000", "cpu.max.burst": "1000",
                   "cpuset.cpus": "0", "cpuset.mems": "0", "pids.max": "20", "io.weight": "4950",
                   "io.max": "8:0 rbps=1000", "hugetlb.2MB.max": str(2 * mib),
                   "hugetlb.2MB.rsvd.max": str(2 * mib),
                   "rdma.max": "mlx5_0 hca_handle=3 hca_object=9"}


def test_v2_refuses_what_cgroup2_cannot_express_on_a_fake_tree(tmp_path):
    fake = tmp_path / "fake-cgroup2-group"
    fake.mkdir()
    for res, words in ((Resources(memory=Memory(swappiness=10)), "no per-group swappiness"),
                       (Resources(cpu=Cpu(realtime_runtime=1000)), "no realtime cpu budget"),
                       (Resources(block_io=BlockIO(leaf_weight=100)), "no leaf weights")):
        controller = res.controllers()[0][0]
        with pytest.raises(UsageError, match=words):
            write_controller(controller, str(fake), 2, res)
    assert os.listdir(fake) == []


# -- podman end to end -------------------------------------------------------------------------

PODMAN = shutil.which("podman")
PODMAN_LIMITS = ("--memory", "64m", "--pids-limit", "20", "--cpus", "0.5")
# no network for containers here, and no CAP_SYS_RESOURCE to raise podman's default rlimits
HOST_LIMITS = ("--network", "none", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000")


@pytest.fixture
def podman(rootfs):
    """podman with private storage and run dirs, a busybox --rootfs, groups under /clonekit-test."""
    top = tempfile.mkdtemp(prefix="clonekit-podman-")
    name = f"podman-{uuid.uuid4().hex[:8]}"
    base = [PODMAN or "podman", "--root", f"{top}/storage", "--runroot", f"{top}/run", "--storage-driver",
            "vfs", "--cgroup-manager", "cgroupfs", "--events-backend", "none"]

    def run(runtime: str, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [*base, "--runtime", runtime, "run", "--rm", *HOST_LIMITS, "--cgroup-parent",
               f"/clonekit-test/{name}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)

    try:
        yield run
    finally:
        subprocess.run([*base, "rm", "--all", "--force"], capture_output=True, timeout=60)
        subprocess.run([*base, "system", "reset", "--force"], capture_output=True, timeout=60)
        shutil.rmtree(top, ignore_errors=True)
        remove_cgroup(name)
        assert not cgroup_dirs(name)


@pytest.mark.skipif(PODMAN is None, reason="podman is not installed (apt install podman)")
@pytest.mark.skipif(not (v1("memory") and v1("pids") and v1("cpu")), reason="needs v1 memory, pids, cpu")
def test_podman_limits_are_visible_inside_as_under_runc(podman, rootfs):
    command = os.path.join(os.path.dirname(sys.executable), "clonekit")
    if not os.path.exists(command):
        pytest.skip("clonekit is not installed as a command next to this interpreter")
    observe = ("cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max "
               "/sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us "
               "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes")
    outs = {}
    for runtime in (command, RUNC) if RUNC else (command,):
        got = podman(runtime, *PODMAN_LIMITS, "--rootfs", rootfs, "/bin/sh", "-c", observe)
        assert got.returncode == 0, (runtime, got.stderr)
        outs[runtime] = got.stdout
    assert outs[command].split()[:4] == [str(64 << 20), "20", "50000", "100000"]
    assert len(set(outs.values())) == 1, outs      # the same files as under runc


# -- live changes: runc's order of memory and memsw ---------------------------------------------

@pytest.mark.skipif(not os.path.exists(f"{V1}/memory/memory.memsw.limit_in_bytes"),
                    reason="no v1 memory controller with swap accounting on this host")
def test_raising_and_lowering_memory_with_swap_on_a_live_group():
    """The kernel keeps memory.limit <= memsw.limit at every write: raising both past today's limit
    needs memsw first, lowering needs the limit first (either order alone fails one of them)."""
    from clonekit.cgroups import Cgroup
    from clonekit.cgroups.resources import apply

    cg = Cgroup.create(f"/clonekit-test/res-{uuid.uuid4().hex[:8]}", container_id="res")
    mem = cg.controller_dir("memory")
    assert mem is not None and mem.startswith(f"{V1}/memory/")

    def seen() -> tuple[int, int]:
        return (int(Path(f"{mem}/memory.limit_in_bytes").read_text()),
                int(Path(f"{mem}/memory.memsw.limit_in_bytes").read_text()))

    try:
        mib = 1 << 20
        for limit, swap in ((64, 128), (256, 512), (32, 48), (-1, 0)):
            apply(cg, Resources(memory=Memory(limit=limit * mib if limit > 0 else -1, swap=swap * mib)))
            if limit > 0:
                assert seen() == (limit * mib, swap * mib)
        assert seen()[0] == seen()[1] > 1 << 60     # -1: both unlimited, as runc
    finally:
        cg.remove()
    assert not cg.exists()


def test_v2_controllers_are_enabled_only_in_parents_clonekit_made_on_a_fake_tree(tmp_path):
    """FAKE cgroup2 tree: top (not clonekit's) / owned (clonekit's parent) / leaf (the group)."""
    from clonekit.cgroups.errors import CgroupError
    from clonekit.cgroups.resources import _enable

    top, owned = tmp_path / "top", tmp_path / "top" / "owned"
    leaf = owned / "leaf"
    leaf.mkdir(parents=True)
    for d in (top, owned, leaf):
        (d / "cgroup.subtree_control").write_text("")
    state = {"hierarchies": [{"version": 2, "prune_to": str(owned), "created": [str(leaf)]}]}
    with pytest.raises(CgroupError, match=f"not enabled in {top}/cgroup.subtree_control, a group clonekit"):
        _enable(state, str(leaf), "memory", "$.linux.resources.memory")
    assert (owned / "cgroup.subtree_control").read_text() == ""     # nothing written on refusal
    (top / "cgroup.subtree_control").write_text("cpu memory")
    _enable(state, str(leaf), "memory", "$.linux.resources.memory")
    assert (owned / "cgroup.subtree_control").read_text() == "+memory"
    assert (top / "cgroup.subtree_control").read_text() == "cpu memory"   # never written


@pytest.mark.skipif(not v1("memory"), reason="no cgroup v1 memory controller on this host")
def test_check_before_update_refuses_a_limit_below_the_usage():
    """A process holding 24 MiB in the group: checkBeforeUpdate refuses a 8 MiB limit by name and
    leaves the live limit as it was."""
    from clonekit.cgroups import Cgroup
    from clonekit.cgroups.resources import apply

    cg = Cgroup.create(f"/clonekit-test/res-{uuid.uuid4().hex[:8]}", container_id="res")
    mem = cg.controller_dir("memory")
    # it allocates once it is in the group: v1 keeps a page charged where it was first touched
    code = ("import sys; sys.stdin.readline(); b = bytearray(24 << 20); b[::4096] = b'x' * len(b[::4096]); "
            "print('held', flush=True); sys.stdin.read()")
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as hog:
        assert hog.stdin is not None and hog.stdout is not None
        try:
            cg.add(hog.pid)
            hog.stdin.write("go\n")
            hog.stdin.flush()
            assert hog.stdout.readline() == "held\n"
            before = Path(f"{mem}/memory.limit_in_bytes").read_text()
            assert int(Path(f"{mem}/memory.usage_in_bytes").read_text()) >= 24 << 20
            with pytest.raises(UsageError, match=r"memory\.limit: the group already uses .*checkBefore"):
                apply(cg, Resources(memory=Memory(limit=8 << 20, check_before_update=True)))
            assert Path(f"{mem}/memory.limit_in_bytes").read_text() == before
        finally:
            hog.kill()
            hog.wait()
            cg.remove()


@needs_runc
@pytest.mark.skipif(not os.path.exists(f"{V1}/cpu/cpu.rt_runtime_us"), reason="no v1 rt cpu budget here")
def test_realtime_budget_as_under_runc(pair):
    """Where the parent group has no realtime budget to give (this host: /clonekit-test has 0 and
    raising it needs the ancestors' budget), both runtimes refuse; elsewhere the files agree."""
    results = pair.run(cat(runtime="cpu/cpu.rt_runtime_us", period="cpu/cpu.rt_period_us"),
                       limits({"cpu": {"realtimeRuntime": 1000, "realtimePeriod": 1000000}}))
    ours, theirs = results["clonekit"], results["runc"]
    if theirs.returncode != 0:
        assert ours.returncode != 0 and "Traceback" not in ours.stderr
        assert "$.linux.resources.cpu.realtimeRuntime" in ours.stderr and "EINVAL" in ours.stderr
        assert len(ours.stderr.strip().splitlines()) == 1
    else:
        assert ours.returncode == 0 and sections(ours.stdout) == sections(theirs.stdout)
