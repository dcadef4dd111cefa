"""Side by side with runc (Debian's package): the same bundle (only the id, and so the
cgroupsPath /clonekit-test/<id>, differ) run by clonekit and by runc must show the container the
same world, and the lifecycle verbs must answer alike.

Deliberate differences, documented in src/clonekit/rootfs and normalised here:

- readonlyPaths also get nosuid,nodev,noexec from clonekit (runc 1.1 only sets ro);
- the cgroup mount: clonekit honours "ro" on the /sys/fs/cgroup tmpfs (runc 1.1 leaves it rw) and
  mounts the hybrid host's cgroup2 at /sys/fs/cgroup/unified (runc 1.1 leaves it out);
- ``ociVersion`` is each runtime's own; runc lists no containers as ``null``, clonekit as ``[]``;
- capabilities (process.capabilities) are the next runtime issue's: not compared here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
import time

import pytest
from runtime_helpers import RUNC, mountinfo_table, script, sections

pytestmark = pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")

READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
CGROUP_MOUNT = {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}


def with_cgroup_mount(config):
    config["mounts"].append(dict(CGROUP_MOUNT))


def normalise_mounts(text: str) -> tuple[dict[str, tuple[str, frozenset[str]]], set[str]]:
    """The mount table with the deliberate differences taken out; the cgroup hierarchies apart
    (name and type)."""
    table = mountinfo_table(text)
    hierarchies = set()
    for point in list(table):
        fstype, options = table[point]
        if point.startswith("/sys/fs/cgroup/"):
            del table[point]
            if point != "/sys/fs/cgroup/unified":
                hierarchies.add(f"{point} {fstype}")
            continue
        if point == "/sys/fs/cgroup":
            options -= {"ro", "rw"}
        if point in READONLY:
            options -= {"nosuid", "nodev", "noexec"}
        table[point] = (fstype, options)
    return table, hierarchies


def both_ok(results):
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
    return {name: sections(result.stdout) for name, result in results.items()}


OBSERVE = dict(
    pid="echo $$",
    hostname="hostname",
    ids="id",
    cwd="pwd",
    umask="umask",
    env="env | grep -v -e '^HOME=' -e '^PWD=' -e '^SHLVL=' | sort",
    mounts="cat /proc/self/mountinfo",
    dev="for f in /dev/* /dev/pts/*; do busybox stat -c '%n %F %t:%T %a %N' $f; done",
    masked=("for f in /proc/kcore /proc/keys /proc/timer_list; do"
            " [ -e $f ] && echo $f $(cat $f | wc -c); done;"
            " ls -A /sys/firmware | wc -l"),
    readonly=("for f in /proc/sys/kernel/hostname /proc/sysrq-trigger; do"
              " (echo x > $f) 2>/dev/null && echo $f writable || echo $f readonly; done;"
              " touch /rootfs-is-ro 2>/dev/null && echo root writable || echo root readonly;"
              " touch /tmp/ok && echo tmp writable"),
    sysctl="cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax",
    fds="ls /proc/$$/fd",
)


def test_same_world_as_runc(pair):
    def config(c):
        with_cgroup_mount(c)
        c["process"]["user"] = {"uid": 1000, "gid": 1000, "umask": 0o027, "additionalGids": [5, 7]}
        c["process"]["cwd"] = "/tmp"
        c["process"]["env"].append("GREETING=hello world")
        c["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"}
        c["linux"]["maskedPaths"].append("/proc/timer_list")
        c["linux"]["readonlyPaths"].append("/proc/sysrq-trigger")

    seen = both_ok(pair.run(script(**OBSERVE), config))
    ours, theirs = seen["clonekit"], seen["runc"]
    for key in ("pid", "hostname", "ids", "cwd", "umask", "env", "dev", "masked", "readonly", "sysctl",
                "fds"):
        assert ours[key] == theirs[key], f"{key} differs:\nclonekit:\n{ours[key]}\nrunc:\n{theirs[key]}"
    assert ours["pid"] == "1\n" and ours["hostname"] == "clonekit-test\n"
    assert "GREETING=hello world" in ours["env"].splitlines()
    assert ours["sysctl"].split() == ["1", "12345"]
    assert ours["fds"].split()[:3] == ["0", "1", "2"]  # + ls's own (a NOFORK applet of busybox sh)
    assert len(ours["dev"].splitlines()) >= 12  # the spec's default devices and /dev symlinks

    our_mounts, our_cgroups = normalise_mounts(ours["mounts"])
    their_mounts, their_cgroups = normalise_mounts(theirs["mounts"])
    assert our_mounts == their_mounts
    assert our_cgroups == their_cgroups and len(their_cgroups) >= 5
    # the deliberate differences are what we say they are
    raw = mountinfo_table(ours["mounts"])
    assert {"ro", "nosuid", "nodev", "noexec"} <= raw["/proc/sys"][1]
    assert "ro" in raw["/sys/fs/cgroup"][1] and raw["/sys/fs/cgroup"][0] == "tmpfs"
    assert raw["/sys/fs/cgroup/unified"][0] == "cgroup2"


def test_same_id_maps_in_a_user_namespace(pair):
    def userns(c):
        with_cgroup_mount(c)
        c["linux"]["namespaces"].append({"type": "user"})
        c["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 1000},
                                     {"containerID": 1000, "hostID": 200000, "size": 10}]
        c["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    seen = both_ok(pair.run(script(ids="id", maps="cat /proc/self/uid_map /proc/self/gid_map",
                                   setgroups="cat /proc/self/setgroups", mounts="cat /proc/self/mountinfo",
                                   dev=OBSERVE["dev"]), userns))
    ours, theirs = seen["clonekit"], seen["runc"]
    assert ours["ids"] == theirs["ids"]
    assert ours["maps"].split() == theirs["maps"].split()
    assert ours["maps"].split() == ["0", "100000", "1000", "1000", "200000", "10", "0", "100000", "65536"]
    assert ours["setgroups"] == theirs["setgroups"]
    assert ours["dev"] == theirs["dev"]
    assert normalise_mounts(ours["mounts"]) == normalise_mounts(theirs["mounts"])


def test_cwd_that_does_not_exist_is_made_like_runc(pair):
    def cwd(c):
        c["process"]["cwd"] = "/tmp/made/here"

    seen = both_ok(pair.run(["/bin/sh", "-c", "pwd"], cwd))
    assert seen["clonekit"] == seen["runc"] == {"": "/tmp/made/here\n"}


def test_home_from_passwd_like_runc(pair):
    seen = both_ok(pair.run(["/bin/sh", "-c", "echo $HOME"]))
    assert seen["runc"] == {"": "/root\n"}
    assert seen["clonekit"] == seen["runc"]


def test_run_exit_codes_like_runc(pair):
    for code in (0, 7):
        results = pair.run(["/bin/sh", "-c", f"exit {code}"])
        assert {name: r.returncode for name, r in results.items()} == {"clonekit": code, "runc": code}
    # killed by a signal: 128 + n, as a shell reports it
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["sleep", "30"])
        with tempfile.TemporaryFile() as out:
            runner = subprocess.Popen(rt.command("run", "--bundle", bundle, cid), stdout=out, stderr=out,
                                      stdin=subprocess.DEVNULL)
            try:
                rt.wait_status(cid, "running")
                rt.cli("kill", cid, "KILL", check=True)
                assert runner.wait(timeout=20) == 128 + signal.SIGKILL, rt.name
            finally:
                if runner.poll() is None:
                    runner.kill()
                    runner.wait()


def test_lifecycle_verbs_answer_like_runc(pair):
    seen = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["sleep", "30"])
        rt.cli("create", "--bundle", bundle, cid, check=True)
        created = rt.state(cid)
        listed = json.loads(rt.cli("list", "--format", "json", check=True).stdout)
        ps_created = json.loads(rt.cli("ps", "--format", "json", cid, check=True).stdout)
        rt.cli("start", cid, check=True)
        running = rt.wait_status(cid, "running")
        again = rt.cli("start", cid)
        busy = rt.cli("delete", cid)
        rt.cli("kill", cid, "SIGKILL", check=True)
        stopped = rt.wait_status(cid, "stopped")
        dead = rt.cli("kill", cid, "9")
        rt.cli("delete", cid, check=True)
        missing = rt.cli("state", cid)
        seen[rt.name] = {
            "keys": [sorted(created), sorted(running), sorted(stopped)],
            "status": [created["status"], running["status"], stopped["status"]],
            "pids": [created["pid"] > 0, running["pid"] == created["pid"], stopped["pid"]],
            "bundle": created["bundle"] == bundle, "id": created["id"] == cid,
            "rootfs": created["rootfs"] == pair.rootfs,
            "list": [sorted(doc) for doc in listed],
            "ps": ps_created == [created["pid"]],
            "errors": [again.returncode, busy.returncode, dead.returncode, missing.returncode],
            "gone": os.path.exists(os.path.join(rt.root, cid)),
        }
    assert seen["clonekit"] == seen["runc"]
    assert seen["runc"]["status"] == ["created", "running", "stopped"]
    assert seen["runc"]["errors"] == [1, 1, 1, 1]


def test_kill_by_number_and_name_and_delete_force_like_runc(pair):
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["sh", "-c", "trap 'echo usr1 > /tmp/x' USR1; "
                                                   "while :; do sleep 0.05; done"])
        rt.cli("run", "--detach", "--bundle", bundle, cid, check=True)
        pid = rt.state(cid)["pid"]
        rt.cli("kill", cid, "10", check=True)       # SIGUSR1 by number: the trap runs
        rt.cli("kill", cid, "USR1", check=True)     # ... and by name without the SIG prefix
        rt.cli("kill", cid, "SIGCONT", check=True)
        deadline = time.monotonic() + 5
        while not _caught(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _caught(pid), rt.name
        bad = rt.cli("kill", cid, "NOSUCHSIG")
        assert bad.returncode == 1, rt.name
        rt.cli("delete", "--force", cid, check=True)
        assert not os.path.exists(os.path.join(rt.root, cid)), rt.name
        assert not _alive(pid), rt.name


def _caught(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/root/tmp/x") as f:
            return f.read() == "usr1\n"
    except OSError:
        return False


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_list_json_names_the_owner_like_runc(pair):
    owners = {}
    for rt in pair.each():
        cid, bundle = pair.bundle(rt, ["sleep", "30"])
        rt.cli("create", "--bundle", bundle, cid, check=True)
        owners[rt.name] = [doc["owner"] for doc in json.loads(rt.cli("list", "--format", "json").stdout)]
        rt.cli("delete", "--force", cid, check=True)
    assert owners["runc"] == ["root"]
    assert owners["clonekit"] == owners["runc"]


def test_features_document_has_runcs_top_level_keys(pair):
    docs = {rt.name: json.loads(rt.cli("features", check=True).stdout) for rt in pair.each()}
    assert set(docs["runc"]) <= set(docs["clonekit"])
    assert set(docs["runc"]["linux"]) <= set(docs["clonekit"]["linux"]) | {"capabilities"}
    assert docs["clonekit"]["hooks"] == docs["runc"]["hooks"]
    assert set(docs["runc"]["linux"]["namespaces"]) <= set(docs["clonekit"]["linux"]["namespaces"])
