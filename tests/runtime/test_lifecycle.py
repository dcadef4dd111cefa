"""Real containers through the runc-compatible CLI: lifecycle, what the container observes."""

from __future__ import annotations

import json
import os
import time

import pytest


def state(bundles, cid):
    return json.loads(bundles.cli("state", cid).stdout)


def wait_status(bundles, cid, status, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = state(bundles, cid)["status"]
        if got == status:
            return
        time.sleep(0.02)
    raise AssertionError(f"container {cid} is {got}, not {status}")


def mountinfo_options(text: str) -> dict[str, tuple[str, str]]:
    """mount point -> (fs type, per-mount options) from /proc/self/mountinfo text."""
    out = {}
    for line in text.splitlines():
        left, right = line.split(" - ")
        fields = left.split()
        fstype = right.split()[0]
        out[fields[4]] = (fstype, fields[5])
    return out


def test_run_is_pid_1_with_its_hostname_and_mounts(bundles):
    cid, bundle, _ = bundles.new(["sh", "-c", "echo $$; hostname; cat /proc/self/mountinfo"])
    out = bundles.cli("run", "--bundle", bundle, cid).stdout.splitlines()
    assert out[0] == "1"
    assert out[1] == "clonekit-test"
    mounts = mountinfo_options("\n".join(out[2:]))
    assert mounts["/"][1].startswith("ro")          # root.readonly
    assert mounts["/proc"][0] == "proc"
    assert mounts["/sys"] == ("sysfs", mounts["/sys"][1]) and mounts["/sys"][1].startswith("ro")
    assert mounts["/dev/pts"][0] == "devpts"
    assert mounts["/dev/mqueue"][0] == "mqueue"
    assert "nodev" in mounts["/dev/shm"][1] and "noexec" in mounts["/dev/shm"][1]
    assert not os.path.exists(os.path.join(bundles.root, cid))  # run deleted it


def test_run_passes_the_exit_status(bundles):
    cid, bundle, _ = bundles.new(["sh", "-c", "exit 7"])
    assert bundles.cli("run", "--bundle", bundle, cid, check=False).returncode == 7


def test_create_waits_start_runs_state_follows_delete_removes(bundles, tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()

    def bind_shared(config):
        config["mounts"].append({"destination": "/shared", "type": "bind", "source": str(shared),
                                 "options": ["rbind", "rw"]})

    cid, bundle, _ = bundles.new(["sh", "-c", "echo ran > /shared/marker; sleep 30"], edit=[bind_shared])
    bundles.cli("create", "--bundle", bundle, "--pid-file", str(tmp_path / "pid"), cid)
    doc = state(bundles, cid)
    assert doc["status"] == "created" and doc["id"] == cid and doc["bundle"] == bundle
    assert doc["pid"] == int((tmp_path / "pid").read_text())
    assert doc["rootfs"] == bundles.rootfs and "created" in doc
    time.sleep(0.2)
    assert not (shared / "marker").exists()          # the user's program has not run before start
    with open(f"/proc/{doc['pid']}/status") as f:    # ... and the init lives in the container's pid ns
        nspid = next(line for line in f if line.startswith("NSpid:")).split()[1:]
    assert nspid[-1] == "1"

    bundles.cli("start", cid)
    deadline = time.monotonic() + 10
    while not (shared / "marker").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (shared / "marker").read_text() == "ran\n"
    assert state(bundles, cid)["status"] == "running"

    again = bundles.cli("start", cid, check=False)
    assert again.returncode == 1 and "running" in again.stderr and "Traceback" not in again.stderr
    busy = bundles.cli("delete", cid, check=False)
    assert busy.returncode == 1 and "--force" in busy.stderr

    bundles.cli("kill", cid, "KILL")
    wait_status(bundles, cid, "stopped")
    gone = bundles.cli("kill", cid, "TERM", check=False)
    assert gone.returncode == 1 and "stopped" in gone.stderr
    bundles.cli("delete", cid)
    assert not os.path.exists(os.path.join(bundles.root, cid))
    missing = bundles.cli("state", cid, check=False)
    assert missing.returncode == 1 and "does not exist" in missing.stderr


def test_kill_by_number_and_list_and_ps(bundles):
    cid, bundle, _ = bundles.new(["sleep", "30"])
    bundles.cli("run", "--detach", "--bundle", bundle, cid)
    listed = json.loads(bundles.cli("list", "--format", "json").stdout)
    assert [d["id"] for d in listed] == [cid] and listed[0]["status"] == "running"
    assert bundles.cli("list", "-q").stdout.split() == [cid]
    pids = json.loads(bundles.cli("ps", "--format", "json", cid).stdout)
    assert pids == [state(bundles, cid)["pid"]]
    bundles.cli("kill", cid, "9")
    wait_status(bundles, cid, "stopped")
    bundles.cli("delete", cid)


def test_delete_force_kills_a_running_container(bundles):
    cid, bundle, _ = bundles.new(["sleep", "30"])
    bundles.cli("run", "-d", "--bundle", bundle, cid)
    pid = state(bundles, cid)["pid"]
    bundles.cli("delete", "--force", cid)
    from clonekit.runtime.state import process_start_time

    assert process_start_time(pid) is None  # gone, or a zombie waiting for its reaper


def test_masked_readonly_paths_and_sysctl(bundles):
    def more(config):
        config["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.msgmax": "12345"}

    cid, bundle, _ = bundles.new(
        ["sh", "-c", "cat /proc/kcore | wc -c; ls /sys/firmware | wc -l; "
                     "echo x > /proc/sysrq-trigger 2>/dev/null && echo writable || echo readonly; "
                     "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/msgmax"], edit=[more])
    out = bundles.cli("run", "--bundle", bundle, cid).stdout.split()
    assert out == ["0", "0", "readonly", "1", "12345"]


def test_user_namespace_with_id_maps(bundles):
    def userns(config):
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cid, bundle, _ = bundles.new(["sh", "-c", "id -u; cat /proc/self/uid_map /proc/self/gid_map"],
                                 edit=[userns])
    out = bundles.cli("run", "--bundle", bundle, cid).stdout.split()
    assert out[0] == "0"
    assert out[1:4] == ["0", "100000", "65536"] and out[4:7] == ["0", "100000", "65536"]


def test_process_user_umask_cwd_env_and_additional_gids(bundles):
    def user(config):
        config["process"]["user"] = {"uid": 1000, "gid": 1000, "umask": 0o027, "additionalGids": [5, 7]}
        config["process"]["cwd"] = "/tmp"
        config["process"]["env"].append("GREETING=hello")

    cid, bundle, _ = bundles.new(["sh", "-c", "id -u; id -g; id -G; umask; pwd; echo $GREETING"],
                                 edit=[user])
    out = bundles.cli("run", "--bundle", bundle, cid).stdout.splitlines()
    assert out[0] == "1000" and out[1] == "1000"
    assert set(out[2].split()) == {"1000", "5", "7"}
    assert out[3] == "0027" and out[4] == "/tmp" and out[5] == "hello"


def test_hooks_run_in_order_with_the_state_on_stdin(bundles, tmp_path):
    log = tmp_path / "hooks"
    log.mkdir()

    def hooks(config):
        def hook(name, path):
            return {"path": "/bin/sh", "args": ["sh", "-c", f'echo "{name} $(cat)" >> {path}/log']}

        host = str(log)
        config["mounts"].append({"destination": "/hooklog", "type": "bind", "source": host,
                                 "options": ["rbind", "rw"]})
        config["hooks"] = {
            "prestart": [hook("prestart", host)],
            "createRuntime": [hook("createRuntime", host)],
            "createContainer": [hook("createContainer", host)],
            "startContainer": [hook("startContainer", "/hooklog")],
            "poststart": [hook("poststart", host)],
            "poststop": [hook("poststop", host)],
        }
        config["annotations"] = {"org.example.key": "value"}

    cid, bundle, _ = bundles.new(["true"], edit=[hooks])
    bundles.cli("run", "--bundle", bundle, cid)
    lines = (log / "log").read_text().splitlines()
    names = [line.split(" ", 1)[0] for line in lines]
    assert names[:4] == ["prestart", "createRuntime", "createContainer", "startContainer"]
    assert set(names[4:]) == {"poststart", "poststop"} and names[-1] == "poststop"
    for line in lines:
        doc = json.loads(line.split(" ", 1)[1])
        assert doc["id"] == cid and doc["bundle"] == bundle
        assert doc["annotations"] == {"org.example.key": "value"}
    created = json.loads(lines[0].split(" ", 1)[1])
    assert created["status"] == "creating" and created["pid"] > 1


def test_failing_hook_fails_create_and_leaves_nothing(bundles):
    def bad(config):
        failing = {"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 3"]}
        config["hooks"] = {"createRuntime": [failing]}

    cid, bundle, _ = bundles.new(["true"], edit=[bad])
    out = bundles.cli("create", "--bundle", bundle, cid, check=False)
    assert out.returncode == 1 and "createRuntime[0]" in out.stderr and "nope" in out.stderr
    assert not os.path.exists(os.path.join(bundles.root, cid))


def test_missing_program_fails_create_with_the_name(bundles):
    cid, bundle, _ = bundles.new(["no-such-program"])
    out = bundles.cli("create", "--bundle", bundle, cid, check=False)
    assert out.returncode == 1 and "no-such-program" in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(os.path.join(bundles.root, cid))


def test_config_errors_name_the_json_path_and_leave_nothing(bundles):
    cid, bundle, _ = bundles.new(["true"], edit=[lambda c: c["mounts"].append({"destination": "rel"})])
    out = bundles.cli("create", "--bundle", bundle, cid, check=False)
    assert out.returncode == 1 and "mounts[7]" in out.stderr and "Traceback" not in out.stderr
    assert not os.path.exists(os.path.join(bundles.root, cid))
    with open(os.path.join(bundle, "config.json"), "w") as f:
        f.write("{not json")
    out = bundles.cli("create", "--bundle", bundle, cid, check=False)
    assert out.returncode == 1 and "JSON" in out.stderr


def test_log_file_in_json_for_containerd(bundles, tmp_path):
    log = tmp_path / "log.json"
    out = bundles.cli("--log", str(log), "--log-format", "json", "state", "no-such-id", check=False)
    assert out.returncode == 1
    entry = json.loads(log.read_text().splitlines()[-1])
    assert entry["level"] == "error" and "no-such-id" in entry["msg"] and "time" in entry


def test_preserve_fds_and_no_fd_leaks(bundles, tmp_path):
    cid, bundle, _ = bundles.new(["ls", "/proc/self/fd"])
    import subprocess
    import sys

    # fd 3 of the runtime is the one to preserve; fd 4 (inherited, not CLOEXEC) must not leak
    proc = subprocess.run(["/bin/sh", "-c", 'exec 3</dev/null 4</dev/null; exec "$@"', "sh",
                           sys.executable, "-m", "clonekit", "--root", bundles.root, "run",
                           "--preserve-fds", "1", "--bundle", bundle, cid],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    fds = sorted(int(x) for x in proc.stdout.split())
    assert fds == [0, 1, 2, 3, 4]  # stdio, the preserved fd 3, and ls's own directory fd (4)



def _cgroup_paths(text: str) -> dict[str, str]:
    """/proc/PID/cgroup text -> {controllers: path} ("" is the unified hierarchy)."""
    return {line.split(":", 2)[1]: line.split(":", 2)[2] for line in text.splitlines()}


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_the_init_is_in_its_group_in_every_hierarchy_before_anything_runs(bundles, userns):
    # The init joins its v1 groups itself, first thing (cgroup v2: born there by clone3): the
    # host sees the created init there, and the program reads it at its first instruction.
    def edit(config):
        if userns:
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cid, bundle, _ = bundles.new(["sleep", "30"], edit=[edit])
    bundles.cli("create", "--bundle", bundle, cid)
    with open(f"/proc/{state(bundles, cid)['pid']}/cgroup") as f:
        host_view = _cgroup_paths(f.read())
    bundles.cli("delete", "--force", cid)
    assert len(host_view) >= 6 and set(host_view.values()) == {f"/clonekit-test/{cid}"}, host_view

    cid, bundle, _ = bundles.new(["cat", "/proc/self/cgroup"], edit=[edit])
    seen = _cgroup_paths(bundles.cli("run", "--bundle", bundle, cid).stdout)
    assert seen.keys() == host_view.keys() and set(seen.values()) == {f"/clonekit-test/{cid}"}, seen


@pytest.mark.parametrize("userns", [False, True], ids=["root", "userns"])
def test_a_cgroup_namespace_is_rooted_at_the_containers_own_groups(bundles, userns):
    # On a v1 (hybrid) host the init joins its v1 groups after the clone, so it makes its cgroup
    # namespace then: rooted at the runtime's groups it would show "/../.." paths and, with a
    # writable cgroup mount, let the container move itself out of its own groups.
    def edit(config):
        config["linux"]["namespaces"].append({"type": "cgroup"})
        config["mounts"].append({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
                                 "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]})
        if userns:
            config["linux"]["namespaces"].append({"type": "user"})
            config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
            config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cid, bundle, _ = bundles.new(["sh", "-c", "cat /proc/self/cgroup; ls /sys/fs/cgroup/pids"], edit=[edit])
    out = bundles.cli("run", "--bundle", bundle, cid).stdout
    seen = _cgroup_paths("".join(line + "\n" for line in out.splitlines() if line.count(":") >= 2))
    assert len(seen) >= 6 and set(seen.values()) == {"/"}, out
    listing = out.splitlines()[len(seen):]
    assert "clonekit-test" not in listing and "tasks" in listing, listing  # the group's own files only
