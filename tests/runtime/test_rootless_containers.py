"""Rootless containers: an unprivileged user made for the session (useradd + /etc/subuid and
/etc/subgid ranges) runs ``clonekit spec --rootless`` and the lifecycle through ``setpriv``, on
a busybox rootfs it owns, with its state under an $XDG_RUNTIME_DIR of its own.  This host has no
delegated cgroup for the user: clonekit says so once per container and runs without one."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid

import pytest
from runtime_helpers import (
    _load_conftest,
    cgroup_dirs,
    mountinfo_table,
    run_cmd,
    sections,
)

conf = _load_conftest()

NOTICE = "cgroup placement skipped"

class Home:
    """What the user owns: a busybox rootfs, a bundle made by `clonekit spec --rootless`, and
    an XDG_RUNTIME_DIR (0700, like systemd's /run/user/UID)."""

    def __init__(self, user) -> None:
        self.user = user
        self.top = tempfile.mkdtemp(prefix="clonekit-rootless-")
        os.chmod(self.top, 0o755)
        self.rootfs = os.path.join(self.top, "rootfs")
        conf.build_rootfs(self.rootfs)
        self.run_dir = os.path.join(self.top, "run")
        os.mkdir(self.run_dir, 0o700)
        for dirpath, dirnames, filenames in os.walk(self.top):
            for name in [dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)]:
                os.lchown(name, user.uid, user.gid)
        user.runtime_dir = self.run_dir
        self.state_root = os.path.join(self.run_dir, "clonekit")  # the default --root rootless
        self.ids: list[str] = []

    def bundle(self, args: list[str], edit=None) -> tuple[str, str]:
        cid = f"ck-rl-{uuid.uuid4().hex[:8]}"
        self.ids.append(cid)
        bundle = os.path.join(self.top, cid)
        os.mkdir(bundle)
        os.chown(bundle, self.user.uid, self.user.gid)
        made = self.user.clonekit("spec", "--rootless", "--bundle", bundle)
        assert made.returncode == 0, made.stderr
        path = os.path.join(bundle, "config.json")
        with open(path) as f:
            config = json.load(f)
        config["root"]["path"] = self.rootfs
        config["process"]["terminal"] = False
        config["process"]["args"] = args
        if edit is not None:
            edit(config)
        with open(path, "w") as f:
            json.dump(config, f)
        return cid, bundle

    def cli(self, *args: str, root: str | None = None):
        return self.user.clonekit(*(("--root", root) if root else ()), *args)

    def state(self, cid: str, root: str | None = None) -> dict:
        out = self.cli("state", cid, root=root)
        assert out.returncode == 0, out.stderr
        return json.loads(out.stdout)

    def assert_nothing_left(self) -> None:
        for cid in self.ids:
            assert not cgroup_dirs(cid), cgroup_dirs(cid)
        if os.path.isdir(self.state_root):
            assert os.listdir(self.state_root) == []
        assert _live_processes_of(self.user.uid) == []

    def cleanup(self) -> None:
        for cid in self.ids:
            if os.path.isdir(os.path.join(self.state_root, cid)):
                self.cli("delete", "--force", cid)
        shutil.rmtree(self.top, ignore_errors=True)
        self.user.runtime_dir = ""


def _live_processes_of(uid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat(f"/proc/{entry}").st_uid != uid:
                continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def home(user):
    h = Home(user)
    try:
        yield h
    finally:
        h.cleanup()


def test_really_unprivileged(user):
    out = user.clonekit("--version")
    assert out.returncode == 0, out.stderr
    out = run_cmd(user.wrap(["sh", "-c", "id -u; grep CapEff /proc/self/status"]), cwd="/")
    assert out.stdout.split()[0] == str(user.uid) and int(out.stdout.split()[2], 16) == 0


def test_spec_rootless_maps_root_to_the_user(home):
    _, bundle = home.bundle(["true"])
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    assert os.stat(os.path.join(bundle, "config.json")).st_uid == home.user.uid
    kinds = [ns["type"] for ns in config["linux"]["namespaces"]]
    assert "user" in kinds and "network" not in kinds and "cgroup" not in kinds
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": home.user.uid, "size": 1}]
    assert config["linux"]["gidMappings"] == [{"containerID": 0, "hostID": home.user.gid, "size": 1}]
    sys_mount = next(m for m in config["mounts"] if m["destination"] == "/sys")
    assert "rbind" in sys_mount["options"]      # sysfs needs a network namespace of the user's own


def test_run_as_an_unprivileged_user(home):
    observe = "; ".join(f"echo @@{k}; {v}" for k, v in {
        "pid": "echo $$", "uid": "id -u", "maps": "cat /proc/self/uid_map /proc/self/gid_map",
        "hostname": "hostname", "mounts": "cat /proc/self/mountinfo",
        "zero": "head -c 4 /dev/zero | od -An -tx1",
    }.items())
    cid, bundle = home.bundle(["sh", "-c", observe])
    out = home.cli("run", "--bundle", bundle, cid)
    assert out.returncode == 0, out.stderr
    seen = sections(out.stdout)
    assert seen["pid"].split() == ["1"] and seen["uid"].split() == ["0"]
    assert seen["maps"].split() == ["0", str(home.user.uid), "1", "0", str(home.user.gid), "1"]
    assert seen["hostname"].split() == ["clonekit"]
    assert seen["zero"].split() == ["00", "00", "00", "00"]
    mounts = {}
    for line in seen["mounts"].splitlines():
        left, right = line.split(" - ")
        mounts[left.split()[4]] = (left.split()[3], right.split()[0])
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        # bound from the host's node (no CAP_MKNOD over the host): the mount's root is the node
        assert mounts[f"/dev/{name}"][0] == f"/{name}", mounts.get(f"/dev/{name}")
    table = mountinfo_table(seen["mounts"])
    assert "ro" in table["/"][1] and table["/proc"][0] == "proc"
    assert out.stderr.count(NOTICE) == 1, out.stderr
    assert "Traceback" not in out.stderr
    home.assert_nothing_left()


def test_the_rootless_spec_is_confined(home):
    """`clonekit spec --rootless` as written: runc's three capabilities (in the user namespace),
    no_new_privs, NOFILE 1024, a session of its own; plus a seccomp filter the user installs."""
    def seccomp(config):
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["getppid"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]}

    cid, bundle = home.bundle(["sh", "-c", "grep -E '^(Cap[A-Za-z]+|NoNewPrivs|Seccomp):' /proc/self/status; "
                                           "grep 'open files' /proc/self/limits; "
                                           "awk '{print $6, $7}' /proc/self/stat"], edit=seccomp)
    out = home.cli("run", "--bundle", bundle, cid)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith(("Cap", "No", "Sec"))]
    status = {key: value.strip() for key, _, value in (line.partition(":") for line in lines)}
    three = 1 << 5 | 1 << 10 | 1 << 29  # KILL, NET_BIND_SERVICE, AUDIT_WRITE
    for key in ("CapEff", "CapPrm", "CapBnd"):
        assert int(status[key], 16) == three, key
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    assert "1024                 1024" in out.stdout
    assert out.stdout.splitlines()[-1].split() == ["1", "0"]  # session leader (pid 1), no tty
    home.assert_nothing_left()


def test_lifecycle_as_an_unprivileged_user(home):
    cid, bundle = home.bundle(["sleep", "30"])
    created = home.cli("create", "--bundle", bundle, cid)   # default --root: $XDG_RUNTIME_DIR/clonekit
    assert created.returncode == 0, created.stderr
    assert created.stderr.count(NOTICE) == 1, created.stderr
    assert os.path.isdir(os.path.join(home.state_root, cid))
    doc = home.state(cid)
    assert doc["status"] == "created" and doc["id"] == cid and doc["pid"] > 0
    pid = doc["pid"]
    assert os.stat(f"/proc/{pid}").st_uid == home.user.uid
    started = home.cli("start", cid)
    assert started.returncode == 0 and NOTICE not in started.stderr, started.stderr
    assert home.state(cid)["status"] == "running"
    listed = json.loads(home.cli("list", "--format", "json").stdout)
    assert [d["id"] for d in listed] == [cid]
    killed = home.cli("kill", cid, "KILL")
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + 10
    while home.state(cid)["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert home.state(cid)["status"] == "stopped"
    deleted = home.cli("delete", cid)
    assert deleted.returncode == 0, deleted.stderr
    assert not os.path.exists(os.path.join(home.state_root, cid))
    home.assert_nothing_left()


def test_explicit_root_and_delete_force(home):
    root = os.path.join(home.run_dir, "elsewhere")
    cid, bundle = home.bundle(["sleep", "30"])
    out = home.cli("run", "--detach", "--bundle", bundle, cid, root=root)
    assert out.returncode == 0, out.stderr
    assert os.path.isdir(os.path.join(root, cid)) and os.stat(os.path.join(root, cid)).st_uid == home.user.uid
    assert home.state(cid, root=root)["status"] == "running"
    assert home.cli("delete", "--force", cid, root=root).returncode == 0
    assert os.listdir(root) == []
    home.assert_nothing_left()


def test_subordinate_ids_through_newuidmap(home):
    sub_uid, sub_gid = home.user.subuid[0], home.user.subgid[0]

    def maps(config):
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": home.user.uid, "size": 1},
                                          {"containerID": 1, "hostID": sub_uid, "size": 1000}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": home.user.gid, "size": 1},
                                          {"containerID": 1, "hostID": sub_gid, "size": 1000}]
        config["process"]["user"] = {"uid": 100, "gid": 100}

    cid, bundle = home.bundle(["sleep", "30"], maps)
    out = home.cli("run", "--detach", "--bundle", bundle, cid)
    assert out.returncode == 0, out.stderr
    pid = home.state(cid)["pid"]
    with open(f"/proc/{pid}/status") as f:
        ids = {line.split(":")[0]: line.split()[1:] for line in f if line.startswith(("Uid:", "Gid:"))}
    assert ids["Uid"][0] == str(sub_uid + 99) and ids["Gid"][0] == str(sub_gid + 99)
    with open(f"/proc/{pid}/uid_map") as f:
        assert [line.split() for line in f] == [["0", str(home.user.uid), "1"], ["1", str(sub_uid), "1000"]]
    assert home.cli("delete", "--force", cid).returncode == 0
    home.assert_nothing_left()


def test_a_bad_config_as_the_user_is_one_clear_line(home):
    cid, bundle = home.bundle(["true"], lambda c: c.__setitem__("hostname", 5))
    out = home.cli("run", "--bundle", bundle, cid)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].endswith("write it that way") and "$.hostname" in out.stderr
    home.assert_nothing_left()


def test_the_root_state_dir_is_refused_clearly(home):
    cid, bundle = home.bundle(["true"])
    out = home.cli("run", "--bundle", bundle, cid, root="/run/clonekit-not-for-users")
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert "/run/clonekit-not-for-users" in out.stderr, out.stderr
    assert not os.path.exists("/run/clonekit-not-for-users")
    home.assert_nothing_left()



def test_joining_a_namespace_without_capabilities_is_one_clear_line(home):
    # setns(CLONE_NEWNET) needs CAP_SYS_ADMIN in the caller's own user namespace too: a rootless
    # runtime in the host's user namespace cannot join even a namespace its own user made
    holder = subprocess.Popen(home.user.wrap(["unshare", "-U", "-n", "sleep", "600"]), cwd="/")
    try:
        deadline = time.monotonic() + 10
        while os.readlink(f"/proc/{holder.pid}/ns/net") == os.readlink("/proc/self/ns/net"):
            assert time.monotonic() < deadline and holder.poll() is None, "the holder did not unshare"
            time.sleep(0.01)

        def join(config):
            config["linux"]["namespaces"].append({"type": "network", "path": f"/proc/{holder.pid}/ns/net"})

        cid, bundle = home.bundle(["true"], join)
        out = home.cli("run", "--bundle", bundle, cid)
    finally:
        holder.kill()
        holder.wait()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert f"cannot join the network namespace /proc/{holder.pid}/ns/net" in last, last
    assert "user namespace of its own" in last and "[Errno" not in last, last
    home.assert_nothing_left()
