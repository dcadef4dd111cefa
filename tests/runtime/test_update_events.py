"""update, events and ps, side by side with runc on this machine's cgroups.

The kernel is the witness: the group files of each container (/sys/fs/cgroup/<controller>/
clonekit-test/<id>), an OOM the kernel's killer really performed, the processes ps(1) sees.
runc's documents are the reference for shapes: numbers of usage differ between two containers,
the keys and the limits must not.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from runtime_helpers import CGROUP_TOP, RUNC

from waiting import wait_for

pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")

SLEEPERS = ["sh", "-c", "sleep 1000 & sleep 1001 & exec sleep 1002"]
# leaves whose zero value Go's omitempty drops: present in one document, absent in the other
# when one container happened to use none of it
OMITTABLE = {"cache", "usage", "max", "total", "periods", "throttledPeriods", "throttledTime", "current",
             # lists both runtimes leave out while empty: whether a group has done block IO yet
             # depends on the page cache (the second container finds busybox cached)
             "ioServiceBytesRecursive", "ioServicedRecursive"}


def group_file(cid: str, controller: str, name: str) -> str:
    with open(os.path.join(CGROUP_TOP, controller, "clonekit-test", cid, name)) as f:
        return f.read().strip()


def paths(doc: object, prefix: str = "") -> set[str]:
    """Every key path of a JSON document (``memory.usage.limit``); raw stat keys included."""
    if not isinstance(doc, dict):
        return {prefix}
    out = set()
    for key, value in doc.items():
        out |= paths(value, f"{prefix}.{key}" if prefix else key)
    return out


def start_both(pair, args, *edits) -> dict[str, str]:
    ids = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, args, edits)
        rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
        rt.wait_status(cid, "running")
        ids[rt.name] = cid
    return ids


# -- events --stats ----------------------------------------------------------------------------

def test_events_stats_has_runcs_shape_and_limits(pair):
    ids = start_both(pair, SLEEPERS, with_resources(LIMITED))
    docs = {}
    for rt in pair.each():
        def three(rt=rt) -> bool:
            return len(json.loads(rt.cli("ps", "-f", "json", ids[rt.name], check=True).stdout)) == 3

        wait_for(three, what=f"{rt.name}: three processes in the group")
        out = rt.cli("events", "--stats", ids[rt.name], check=True).stdout
        assert out.endswith("}\n") and out.count("\n") == 1, out  # one compact line, as runc's encoder
        docs[rt.name] = json.loads(out)
    ours, theirs = docs["clonekit"], docs["runc"]
    assert (ours["type"], ours["id"]) == ("stats", ids["clonekit"])
    assert list(ours) == list(theirs) and list(ours["data"]) == list(theirs["data"])
    mine, reference = paths(ours["data"]), paths(theirs["data"])
    loose = {p for p in mine ^ reference if p.rsplit(".", 1)[-1] in OMITTABLE}
    assert mine - loose == reference - loose
    for key in ("pids",):
        assert ours["data"][key] == theirs["data"][key] == {"current": 3, "limit": 50}
    assert ours["data"]["memory"]["usage"]["limit"] == 128 << 20
    for entry in ("usage", "swap", "kernel", "kernelTCP"):
        assert ours["data"]["memory"][entry]["limit"] == theirs["data"]["memory"][entry]["limit"]
    assert ours["data"]["cpuset"] == theirs["data"]["cpuset"]
    # the numbers are the group's own: what the kernel's files say
    cid = ids["clonekit"]
    assert ours["data"]["memory"]["usage"]["limit"] == int(group_file(cid, "memory", "memory.limit_in_bytes"))
    assert ours["data"]["memory"]["raw"]["hierarchical_memory_limit"] == \
        ours["data"]["memory"]["usage"]["limit"]
    assert ours["data"]["cpu"]["usage"]["total"] <= int(group_file(cid, "cpuacct", "cpuacct.usage"))


def test_events_of_a_stopped_or_unknown_container_is_one_line_error(pair, bundles):
    rt = pair.runtimes["clonekit"]
    cid, bundle = pair.bundle(rt, ["true"])
    rt.cli("run", "--keep", "--bundle", bundle, cid, check=True)
    for argv in (("events", "--stats", cid), ("events", cid), ("events", "--stats", "no-such-id")):
        done = rt.cli(*argv)
        assert done.returncode != 0 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert "not running" in rt.cli("events", cid).stderr
    done = rt.cli("events", "--interval", "5 parsecs", cid)
    assert done.returncode != 0 and "duration" in done.stderr and done.stderr.count("\n") == 1


# -- OOM events --------------------------------------------------------------------------------

def test_events_reports_the_oom_kill_of_a_memory_hog(pair, tmp_path):
    rt = pair.runtimes["clonekit"]
    # memory + swap at the limit too: no swap to escape to
    cid, bundle = pair.bundle(rt, ["sleep", "1000"],
                              (with_resources({"memory": {"limit": 16 << 20, "swap": 16 << 20}}),))
    rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
    rt.wait_status(cid, "running")
    assert group_file(cid, "memory", "memory.limit_in_bytes") == str(16 << 20)
    log = tmp_path / "events.jsonl"
    with open(log, "w") as out:
        watcher = subprocess.Popen(rt.command("events", "--interval", "1h", cid), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        # the watch is registered once the events process has the eventfd open on the group
        wait_for(lambda: any("anon_inode:[eventfd]" in _link(watcher.pid, fd)
                             for fd in os.listdir(f"/proc/{watcher.pid}/fd")), what="the OOM watch")
        hog = rt.cli("exec", cid, "sh", "-c", 'x=$(head -c 64000000 /dev/zero | tr "\\0" a)')
        assert hog.returncode == 128 + 9, hog.stderr  # SIGKILLed: by the OOM killer, the group says
        control = dict(line.split() for line in group_file(cid, "memory", "memory.oom_control").split("\n"))
        assert int(control["oom_kill"]) >= 1  # the killer may take more than one of the pipeline
        lines = wait_for(lambda: [json.loads(x) for x in log.read_text().splitlines()], what="an oom event")
        assert lines[0] == {"type": "oom", "id": cid}
        # the stream ends when the container's group goes
        rt.cli("delete", "--force", cid, check=True)
        assert watcher.wait(timeout=10) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()


def _link(pid: int, fd: str) -> str:
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}")
    except OSError:
        return ""


# -- ps ------------------------------------------------------------------------------------------

def test_ps_lists_the_groups_processes_like_runc(pair):
    ids = start_both(pair, SLEEPERS)
    tables, pids = {}, {}
    for rt in pair.each():
        cid = ids[rt.name]
        pids[rt.name] = wait_for(lambda rt=rt, cid=cid: (lambda found: found if len(found) == 3 else None)(
            json.loads(rt.cli("ps", "-f", "json", cid, check=True).stdout)), what=f"{rt.name}: 3 processes")
        assert rt.cli("ps", "-f", "json", cid, check=True).stdout == json.dumps(pids[rt.name],
                                                                                separators=(",", ":")) + "\n"
        procs = group_file(cid, "pids", "cgroup.procs").split()
        assert sorted(int(p) for p in procs) == sorted(pids[rt.name])
        default = rt.cli("ps", cid, check=True).stdout.splitlines()
        assert default[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
        assert sorted(int(line.split()[1]) for line in default[1:]) == sorted(pids[rt.name])
        tables[rt.name] = sorted(line.split(None, 1)[1] for line in
                                 rt.cli("ps", cid, "-o", "pid,user,args", check=True).stdout.splitlines()[1:])
    assert tables["clonekit"] == tables["runc"] == ["root     sleep 1000", "root     sleep 1001",
                                                    "root     sleep 1002"]
    rt = pair.runtimes["clonekit"]
    done = rt.cli("ps", ids["clonekit"], "-o", "comm")
    assert done.returncode != 0 and "PID" in done.stderr and done.stderr.count("\n") == 1


# -- update ---------------------------------------------------------------------------------------

LIMITED = {"memory": {"limit": 128 << 20}, "pids": {"limit": 50}, "cpu": {"quota": 50000, "period": 100000}}
WATCHED = (("memory", "memory.limit_in_bytes"), ("memory", "memory.soft_limit_in_bytes"),
           ("memory", "memory.memsw.limit_in_bytes"), ("pids", "pids.max"), ("cpu", "cpu.cfs_quota_us"),
           ("cpu", "cpu.cfs_period_us"), ("cpu", "cpu.shares"), ("cpuset", "cpuset.cpus"),
           ("blkio", "blkio.weight"))


def with_resources(resources: dict):
    def edit(config: dict) -> None:
        config["linux"]["resources"] = json.loads(json.dumps(resources))
    return edit


def live(cid: str) -> dict[str, str]:
    return {name: group_file(cid, controller, name) for controller, name in WATCHED
            if os.path.exists(os.path.join(CGROUP_TOP, controller, "clonekit-test", cid, name))}


@pytest.mark.parametrize("argv", [
    ("--memory", "64m", "--pids-limit", "20", "--cpu-quota", "20000"),
    ("--memory", "96MiB", "--memory-reservation", "32m", "--memory-swap", "200m", "--cpu-share", "512",
     "--cpu-period", "50000", "--cpuset-cpus", "0"),
    ("--memory", "-1",),
    ("--blkio-weight", "300", "--cpu-quota", "-1"),
])
def test_update_flags_change_the_live_files_as_runcs_update(pair, argv):
    ids = start_both(pair, ["sleep", "1000"], with_resources(LIMITED))
    before = {name: live(cid) for name, cid in ids.items()}
    assert before["clonekit"] == before["runc"]
    for rt in pair.each():
        done = rt.cli("update", *argv, ids[rt.name])
        assert done.returncode == 0, done.stderr
    after = {name: live(cid) for name, cid in ids.items()}
    assert after["clonekit"] == after["runc"]
    assert after["clonekit"] != before["clonekit"]
    # the saved resources are the live ones: a second update of another field keeps them
    rt = pair.runtimes["clonekit"]
    rt.cli("update", "--pids-limit", "77", ids["clonekit"], check=True)
    again = live(ids["clonekit"])
    assert again == after["clonekit"] | {"pids.max": "77"}
    state_file = pair.tmp / "state-clonekit" / ids["clonekit"] / "state.json"
    saved = json.loads(state_file.read_text())["resources"]
    assert saved["pids"] == {"limit": 77}
    limit = saved["memory"]["limit"]
    assert int(again["memory.limit_in_bytes"]) == (limit if limit > 0 else 9223372036854771712)
    stats = json.loads(rt.cli("events", "--stats", ids["clonekit"], check=True).stdout)["data"]
    assert stats["pids"]["limit"] == 77
    assert stats["memory"]["usage"]["limit"] == int(again["memory.limit_in_bytes"])


def test_update_r_json_from_stdin_and_file_like_runc(pair, tmp_path):
    ids = start_both(pair, ["sleep", "1000"], with_resources(LIMITED))
    state_file = pair.tmp / "state-clonekit" / ids["clonekit"] / "state.json"
    assert json.loads(state_file.read_text())["resources"] == LIMITED  # create saved what it applied
    changes = {"memory": {"limit": 48 << 20, "reservation": 16 << 20}, "cpu": {"shares": 256, "quota": 30000},
               "pids": {"limit": 12}, "blockIO": {"weight": 200}}
    for rt in pair.each():
        done = subprocess.run(rt.command("update", "-r", "-", ids[rt.name]), input=json.dumps(changes),
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
    assert live(ids["clonekit"]) == live(ids["runc"])
    assert live(ids["clonekit"])["pids.max"] == "12"
    again = tmp_path / "more.json"
    again.write_text(json.dumps({"memory": {"limit": 40 << 20}}))
    for rt in pair.each():
        rt.cli("update", "--pids-limit", "99", "-r", str(again), ids[rt.name], check=True)  # -r wins
    assert live(ids["clonekit"]) == live(ids["runc"])
    assert live(ids["clonekit"])["pids.max"] == "12"
    assert live(ids["clonekit"])["memory.limit_in_bytes"] == str(40 << 20)


def test_update_refusals_are_one_line_and_change_nothing(pair, tmp_path):
    rt = pair.runtimes["clonekit"]
    cid, bundle = pair.bundle(rt, ["sleep", "1000"], (with_resources(LIMITED),))
    rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
    rt.wait_status(cid, "running")
    before = live(cid)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    for argv in (("--memory", "12x"), ("--pids-limit", "many"), ("--blkio-weight", "-5"),
                 ("--l3-cache-schema", "L3:0=f"), ("-r", str(bad_json)), ("-r", str(tmp_path / "absent")),
                 ("--memory", "64m", "no-such-id"),
                 ("--memory", "256m", "--memory-swap", "1m"),  # the kernel refuses memsw < memory
                 ("--pids-limit", "5", "--cpuset-cpus", "999")):  # a CPU this host lacks: after pids
        done = rt.cli("update", *argv, *(() if argv[-1] == "no-such-id" else (cid,)))
        assert done.returncode != 0
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr, done.stderr
    assert live(cid) == before
    stopped, bundle = pair.bundle(rt, ["true"])
    rt.cli("run", "--keep", "--bundle", bundle, stopped, check=True)
    done = rt.cli("update", "--memory", "64m", stopped)
    assert done.returncode != 0 and "not running" in done.stderr


# -- v2 stats on a fake cgroupfs tree (this host's cgroup2 has no cpu/memory/pids/io) ------------

def test_stats_v2_from_a_fake_cgroupfs_tree(tmp_path):
    from clonekit.cgroups import Cgroup
    from clonekit.cgroups.stats import MAX_UINT64, collect

    group = tmp_path / "clonekit-test" / "ck-fake"
    group.mkdir(parents=True)
    files = {
        "cpu.stat": "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 10\nnr_throttled 4\n"
                    "throttled_usec 2000\n",
        "memory.current": "4096000\n", "memory.max": "67108864\n", "memory.peak": "5000000\n",
        "memory.events": "low 0\nhigh 0\nmax 7\noom 1\noom_kill 1\n",
        "memory.stat": "anon 1000\nfile 2000\nkernel_stack 300\n",
        "memory.swap.current": "1000\n", "memory.swap.max": "max\n", "memory.swap.events": "max 0\nfail 0\n",
        "pids.current": "3\n", "pids.max": "max\n",
        "io.stat": "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
    }
    for name, text in files.items():
        (group / name).write_text(text)
    cgroup = Cgroup.load({"path": "/clonekit-test/ck-fake", "hierarchies": [
        {"key": "unified", "version": 2, "mount": str(tmp_path), "dir": str(group), "created": []}]})
    data = collect(cgroup)
    assert list(data) == ["cpu", "cpuset", "memory", "pids", "blkio", "hugetlb", "intel_rdt",
                          "network_interfaces"]
    assert data["cpu"] == {"usage": {"total": 1_500_000, "kernel": 500_000, "user": 1_000_000},
                           "throttling": {"periods": 10, "throttledPeriods": 4, "throttledTime": 2_000_000}}
    memory = data["memory"]
    assert memory["cache"] == 2000 and memory["raw"] == {"anon": 1000, "file": 2000, "kernel_stack": 300}
    assert memory["usage"] == {"limit": 67108864, "usage": 4096000, "max": 5000000, "failcnt": 7}
    assert memory["swap"] == {"limit": MAX_UINT64, "usage": 4097000, "failcnt": 0}  # memory + swap, as v1
    assert data["pids"] == {"current": 3}  # "max": no limit, left out as runc leaves a 0 out
    assert data["blkio"] == {
        "ioServiceBytesRecursive": [{"major": 8, "op": "Read", "value": 4096},
                                    {"major": 8, "op": "Write", "value": 8192}],
        "ioServicedRecursive": [{"major": 8, "op": "Read", "value": 1},
                                {"major": 8, "op": "Write", "value": 2}]}


def test_events_streams_stats_and_shows_cpu_throttling(pair, tmp_path):
    rt = pair.runtimes["clonekit"]
    cid, bundle = pair.bundle(rt, ["sh", "-c", "while :; do :; done"],
                              (with_resources({"cpu": {"quota": 10000, "period": 100000}}),))
    rt.cli("run", "-d", "--bundle", bundle, cid, check=True)
    rt.wait_status(cid, "running")
    log = tmp_path / "stream.jsonl"
    with open(log, "w") as out:
        watcher = subprocess.Popen(rt.command("events", "--interval", "100ms", cid), stdout=out,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def throttled() -> list[dict] | None:
            events = [json.loads(x) for x in log.read_text().splitlines()]
            stats = [e for e in events if e["type"] == "stats"]
            return stats if stats and stats[-1]["data"]["cpu"]["throttling"].get("throttledPeriods") else None

        stats = wait_for(throttled, what="stats showing the quota's throttling")
        assert {e["id"] for e in stats} == {cid}
        periods = dict(line.split() for line in group_file(cid, "cpu", "cpu.stat").split("\n"))
        assert int(periods["nr_throttled"]) >= stats[-1]["data"]["cpu"]["throttling"]["throttledPeriods"]
        rt.cli("delete", "--force", cid, check=True)
        assert watcher.wait(timeout=10) == 0
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
