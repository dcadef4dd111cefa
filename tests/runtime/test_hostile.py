"""A hostile rootfs and hostile configs: symlinks that point out of the rootfs, ``..`` in paths, a
missing or wrong rootfs, a config that is not JSON or has wrong types, inherited fds, a
non-dumpable init, a cwd that is a symlink.  Each case ends in the rootfs or in one clear error
line, and leaves nothing on the host: no mount, no file, no state dir, no cgroup, no process."""

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
    clonekit_runtime,
    host_mounts,
    mountinfo_table,
    remove_cgroup,
)

conf = _load_conftest()


class Hostile:
    """A fresh rootfs of its own (the test may plant anything in it), bundles, the CLI, and the
    host's state before, to compare after."""

    def __init__(self, tmp_path) -> None:
        self.top = tempfile.mkdtemp(prefix="clonekit-hostile-")
        os.chmod(self.top, 0o755)
        self.rootfs = os.path.join(self.top, "rootfs")
        conf.build_rootfs(self.rootfs)
        self.rt = clonekit_runtime(str(tmp_path / "state"))
        self.tmp = tmp_path
        self.ids: list[str] = []
        self.host_dirs: list[str] = []
        self.mounts_before = host_mounts()

    def host_dir(self) -> str:
        """An empty directory on the host (the target a symlink tries to reach)."""
        path = tempfile.mkdtemp(prefix="clonekit-victim-", dir="/var/tmp")
        self.host_dirs.append(path)
        return path

    def plant(self, link: str, target: str) -> None:
        """A symlink in the rootfs, replacing what is there."""
        path = os.path.join(self.rootfs, link.lstrip("/"))
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)

    def bundle(self, args, *edits, raw: str | None = None) -> tuple[str, str]:
        cid = f"ck-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        bundle = self.tmp / cid
        bundle.mkdir()
        config = conf.base_config(self.rootfs, list(args), cid)
        for edit in edits:
            edit(config)
        (bundle / "config.json").write_text(raw if raw is not None else json.dumps(config))
        return cid, str(bundle)

    def run(self, args, *edits, verb: str = "run", raw: str | None = None, opts=(), pre: str = ""):
        cid, bundle = self.bundle(args, *edits, raw=raw)
        return cid, self.rt.cli(verb, *opts, "--bundle", bundle, cid, pre=pre)

    def assert_nothing_left(self, cid: str) -> None:
        assert not os.path.exists(os.path.join(self.rt.root, cid)), f"state dir of {cid} left"
        assert not cgroup_dirs(cid), f"cgroups of {cid} left: {cgroup_dirs(cid)}"
        assert not _processes_in(cid), f"processes of {cid} left"
        assert host_mounts() == self.mounts_before, "the host's mount table changed"

    def cleanup(self) -> None:
        for cid in self.ids:
            if os.path.isdir(os.path.join(self.rt.root, cid)):
                self.rt.cli("delete", "--force", cid)
            remove_cgroup(cid)
        for path in self.host_dirs:
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.top, ignore_errors=True)


def _processes_in(cid: str) -> list[int]:
    """Live (not zombie) processes whose cgroup names the container: a killed init that was
    reparented to the machine's pid 1 stays a zombie until that one reaps it."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                if f"/clonekit-test/{cid}" not in f.read():
                    continue
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] != "Z":
                    found.append(int(entry))
        except OSError:
            continue
    return found


@pytest.fixture
def hostile(tmp_path):
    h = Hostile(tmp_path)
    try:
        yield h
    finally:
        h.cleanup()
    assert host_mounts() == h.mounts_before, "the host's mount table changed"


def bind(source: str, destination: str, *options: str):
    def edit(config):
        config["mounts"].append({"destination": destination, "type": "bind", "source": source,
                                 "options": ["rbind", *(options or ("ro",))]})
    return edit


def tmpfs(destination: str):
    def edit(config):
        config["mounts"].append({"destination": destination, "type": "tmpfs", "source": "tmpfs"})
    return edit


def one_clear_line(result, *names: str) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


# -- symlink escapes of mount destinations --------------------------------------------------------


def test_etc_symlinked_to_root_keeps_the_mount_inside(hostile):
    source = hostile.host_dir()
    open(os.path.join(source, "marker"), "w").close()
    name = f"victim-{uuid.uuid4().hex[:8]}"
    hostile.plant("/etc", "/")
    cid, out = hostile.run(["sh", "-c", f"ls /{name}; grep ' /{name} ' /proc/self/mountinfo | wc -l"],
                           bind(source, f"/etc/{name}"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["marker", "1"]        # mounted at the rootfs's own /
    assert not os.path.exists(f"/{name}")               # not on the host's /
    assert os.path.isdir(os.path.join(hostile.rootfs, name))
    hostile.assert_nothing_left(cid)


def test_relative_symlink_up_and_out_keeps_the_mount_inside(hostile):
    name = f"y-{uuid.uuid4().hex[:8]}"
    hostile.plant("/var/x", "../../../../../../..")
    cid, out = hostile.run(["sh", "-c", "cut -d' ' -f5,9 /proc/self/mountinfo"], tmpfs(f"/var/x/{name}"))
    assert out.returncode == 0, out.stderr
    assert f"/{name} tmpfs" in out.stdout.splitlines()
    assert not os.path.exists(f"/{name}")
    assert os.path.isdir(os.path.join(hostile.rootfs, name))
    hostile.assert_nothing_left(cid)


def test_absolute_symlink_to_a_host_dir_missing_in_the_rootfs_is_made_inside(hostile):
    # as runc: the link's target is created in the rootfs (never on the host) and mounted on
    victim = hostile.host_dir()
    hostile.plant("/mnt/h", victim)
    cid, out = hostile.run(["sh", "-c", f"grep -c ' {victim}/sub ' /proc/self/mountinfo"],
                           tmpfs("/mnt/h/sub"))
    assert out.returncode == 0 and out.stdout.split() == ["1"], out.stderr
    assert os.listdir(victim) == []
    assert os.path.isdir(os.path.join(hostile.rootfs, victim.lstrip("/"), "sub"))
    hostile.assert_nothing_left(cid)


def test_absolute_symlink_resolves_in_the_rootfs_copy_of_the_path(hostile):
    victim = hostile.host_dir()
    inside = os.path.join(hostile.rootfs, victim.lstrip("/"))
    os.makedirs(inside)
    hostile.plant("/mnt/h", victim)
    cid, out = hostile.run(["sh", "-c", f"grep -c ' {victim}/sub ' /proc/self/mountinfo"],
                           tmpfs("/mnt/h/sub"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1"]
    assert os.listdir(victim) == [] and os.listdir(inside) == ["sub"]
    hostile.assert_nothing_left(cid)


def test_destination_that_is_itself_a_symlink_out(hostile):
    victim = hostile.host_dir()
    source = hostile.host_dir()
    open(os.path.join(source, "marker"), "w").close()
    os.makedirs(os.path.join(hostile.rootfs, victim.lstrip("/")))
    hostile.plant("/mnt/link", victim)
    cid, out = hostile.run(["sh", "-c", f"ls {victim}"], bind(source, "/mnt/link"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["marker"]             # the rootfs's copy got the mount
    assert os.listdir(victim) == []
    hostile.assert_nothing_left(cid)


def test_masked_and_readonly_paths_through_symlinks_stay_inside(hostile):
    victim = hostile.host_dir()
    open(os.path.join(victim, "secret"), "w").close()
    inside = os.path.join(hostile.rootfs, victim.lstrip("/"))
    os.makedirs(inside)
    open(os.path.join(inside, "secret"), "w").close()
    hostile.plant("/mnt/m", victim)
    hostile.plant("/mnt/r", "../" * 8 + victim.lstrip("/"))

    def paths(config):
        config["linux"]["maskedPaths"] = ["/mnt/m/secret"]
        config["linux"]["readonlyPaths"] = ["/mnt/r"]
        config["root"]["readonly"] = False

    cid, out = hostile.run(["sh", "-c", "cut -d' ' -f5,6 /proc/self/mountinfo"], paths)
    assert out.returncode == 0, out.stderr
    table = dict(line.split(" ", 1) for line in out.stdout.splitlines())
    assert f"{victim}/secret" in table and victim in table and "ro" in table[victim].split(",")
    assert host_mounts() == hostile.mounts_before
    hostile.assert_nothing_left(cid)


# -- bad configs: one clear line, nothing left ---------------------------------------------------


def _set(path, value):
    def edit(config):
        node = config
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return edit


BAD = {
    "dotdot-destination": ([bind("/etc", "/mnt/../../../../tmp/escape")], None,
                           ("mounts[7].destination", "..")),
    "dotdot-masked": ([_set(["linux", "maskedPaths"], ["/proc/../../etc"])], None, ("maskedPaths[0]", "..")),
    "missing-rootfs": ([_set(["root", "path"], "/nonexistent/rootfs")], None,
                       ("root.path", "/nonexistent/rootfs", "does not exist")),
    "rootfs-is-a-file": ([_set(["root", "path"], "/etc/hostname")], None,
                         ("root.path", "/etc/hostname", "not a directory")),
    "not-json": ([], "{not json", ("config.json", "JSON")),
    "empty": ([], "", ("config.json", "JSON")),
    "array": ([], "[]", ("$", "object")),
    "args-a-string": ([_set(["process", "args"], "sh")], None, ("process.args", "array")),
    "uid-a-string": ([_set(["process", "user"], {"uid": "0", "gid": 0})], None, ("process.user.uid",)),
    "mounts-an-object": ([_set(["mounts"], {"a": 1})], None, ("$.mounts", "array")),
    "hostname-a-number": ([_set(["hostname"], 5)], None, ("hostname", "string")),
    "cwd-relative": ([_set(["process", "cwd"], "tmp")], None, ("process.cwd", "absolute")),
    "unknown-namespace": ([_set(["linux", "namespaces"], [{"type": "mount"}, {"type": "bogus"}])], None,
                          ("namespaces[1].type", "bogus")),
}


@pytest.mark.parametrize("case", list(BAD))
@pytest.mark.parametrize("verb", ["create", "run"])
def test_bad_config_gives_one_clear_line_and_leaves_nothing(hostile, case, verb):
    edits, raw, names = BAD[case]
    cid, out = hostile.run(["true"], *edits, verb=verb, raw=raw)
    one_clear_line(out, *names)
    hostile.assert_nothing_left(cid)


def test_failure_inside_the_container_leaves_nothing(hostile):
    # fails late: in the init, after the cgroup and the namespaces were made
    cid, out = hostile.run(["true"], tmpfs("/etc/passwd/sub"), verb="create")
    one_clear_line(out, "mount", "/etc/passwd")
    hostile.assert_nothing_left(cid)
    assert hostile.rt.cli("list", "--format", "json").stdout.strip() in ("[]", "null")


# -- fds, dumpable, cwd --------------------------------------------------------------------------


def _fds(pid: int) -> dict[int, str]:
    return {int(fd): os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}


def test_inherited_fds_do_not_leak_into_the_container(hostile):
    pre = "exec 5</etc/hostname 7</sys/fs/cgroup 9</ 3</etc/hostname 4</dev/zero; "
    cid, out = hostile.run(["sleep", "30"], opts=("--detach",), pre=pre)
    assert out.returncode == 0, out.stderr
    pid = hostile.rt.state(cid)["pid"]
    assert sorted(_fds(pid)) == [0, 1, 2]
    hostile.rt.cli("delete", "--force", cid, check=True)

    cid, out = hostile.run(["sleep", "30"], opts=("--detach", "--preserve-fds", "2"), pre=pre)
    assert out.returncode == 0, out.stderr
    fds = _fds(hostile.rt.state(cid)["pid"])
    assert sorted(fds) == [0, 1, 2, 3, 4]
    assert fds[3] == "/etc/hostname" and fds[4] == "/dev/zero"
    hostile.rt.cli("delete", "--force", cid, check=True)
    hostile.assert_nothing_left(cid)


def test_created_init_holds_no_inherited_or_host_directory_fd(hostile):
    pre = "exec 5</etc/hostname 7</sys/fs/cgroup 9</; "
    cid, out = hostile.run(["true"], verb="create", pre=pre)
    assert out.returncode == 0, out.stderr
    pid = hostile.rt.state(cid)["pid"]
    inherited = {(os.stat(p).st_dev, os.stat(p).st_ino) for p in ("/etc/hostname", "/sys/fs/cgroup", "/")}
    for fd, target in _fds(pid).items():
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        assert (st.st_dev, st.st_ino) not in inherited, (fd, target)
    hostile.rt.cli("delete", "--force", cid, check=True)
    hostile.assert_nothing_left(cid)


def test_init_is_not_dumpable_before_exec(hostile):
    # In a user-namespaced container the files of /proc/PID belong to the task's euid (host uid
    # 100000 here) while it is dumpable, and to root while it is not: the init of a created
    # container is not (runc's neither), the user's program after execve is again.
    def userns(config):
        config["linux"]["namespaces"].append({"type": "user"})
        config["linux"]["uidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]
        config["linux"]["gidMappings"] = [{"containerID": 0, "hostID": 100000, "size": 65536}]

    cid, out = hostile.run(["sleep", "30"], userns, verb="create")
    assert out.returncode == 0, out.stderr
    pid = hostile.rt.state(cid)["pid"]
    assert os.stat(f"/proc/{pid}").st_uid == 100000      # the task's euid: it is the init
    for name in ("status", "environ", "mem", "fd"):
        assert os.stat(f"/proc/{pid}/{name}").st_uid == 0, name
    hostile.rt.cli("start", cid, check=True)
    deadline = time.monotonic() + 5
    while os.stat(f"/proc/{pid}/status").st_uid != 100000 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert os.stat(f"/proc/{pid}/environ").st_uid == 100000  # dumpable again after execve
    hostile.rt.cli("delete", "--force", cid, check=True)
    hostile.assert_nothing_left(cid)


def _same_file(a: str, b: str) -> bool:
    sa, sb = os.stat(a), os.stat(b)
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def test_the_process_cwd_is_inside_the_rootfs(hostile):
    cid, out = hostile.run(["sleep", "30"], _set(["process", "cwd"], "/var"), opts=("--detach",))
    assert out.returncode == 0, out.stderr
    pid = hostile.rt.state(cid)["pid"]
    assert _same_file(f"/proc/{pid}/cwd", os.path.join(hostile.rootfs, "var"))
    hostile.rt.cli("delete", "--force", cid, check=True)


def test_cwd_symlinked_up_and_out_stays_inside(hostile):
    victim = hostile.host_dir()
    inside = os.path.join(hostile.rootfs, victim.lstrip("/"))
    os.makedirs(inside)
    hostile.plant("/cwdlink", "../" * 8 + victim.lstrip("/"))
    cid, out = hostile.run(["sleep", "30"], _set(["process", "cwd"], "/cwdlink"), opts=("--detach",))
    assert out.returncode == 0, out.stderr
    pid = hostile.rt.state(cid)["pid"]
    assert _same_file(f"/proc/{pid}/cwd", inside)
    assert not _same_file(f"/proc/{pid}/cwd", victim)
    hostile.rt.cli("delete", "--force", cid, check=True)
    hostile.assert_nothing_left(cid)


def test_cwd_symlinked_to_a_host_dir_never_gets_there(hostile):
    # absent in the rootfs: made there, where the link resolves with the rootfs as "/" (as runc)
    victim = hostile.host_dir()
    hostile.plant("/cwdlink", victim)
    cid, out = hostile.run(["sh", "-c", "pwd"], _set(["process", "cwd"], "/cwdlink"))
    assert out.returncode == 0 and out.stdout.strip() == victim, out.stderr
    assert os.listdir(victim) == []
    assert os.path.isdir(os.path.join(hostile.rootfs, victim.lstrip("/")))
    hostile.assert_nothing_left(cid)


def test_cwd_that_cannot_be_entered_fails_create(hostile):
    cid, out = hostile.run(["true"], _set(["process", "cwd"], "/etc/passwd"), verb="create")
    line = one_clear_line(out, "process.cwd", "/etc/passwd")
    assert "[Errno" not in line
    hostile.assert_nothing_left(cid)


def test_mountinfo_of_a_hostile_run_matches_a_clean_one(hostile):
    # the planted links change nothing in the container's table but the mount they aimed at
    hostile.plant("/etc", "/")
    cid, out = hostile.run(["cat", "/proc/self/mountinfo"], tmpfs("/etc/inside"))
    assert out.returncode == 0, out.stderr
    table = mountinfo_table(out.stdout)
    assert table["/inside"][0] == "tmpfs" and "/etc/inside" not in table
    assert table["/proc"][0] == "proc" and table["/"][0] != "tmpfs"
    hostile.assert_nothing_left(cid)


@pytest.mark.parametrize("kind", ["dev", "proc", "sys"])
def test_standard_mount_points_symlinked_to_a_host_dir(hostile, kind):
    # /dev -> a host dir: the default devices, /dev symlinks, devpts, shm... must not be made on
    # the host; /proc or /sys -> a host dir: their filesystems must not be mounted there
    victim = hostile.host_dir()
    os.makedirs(os.path.join(hostile.rootfs, victim.lstrip("/")))
    hostile.plant(f"/{kind}", victim)

    def no_dev_tmpfs(config):
        if kind == "dev":  # devices go straight into the rootfs's "/dev"
            config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/dev"]

    cid, out = hostile.run(["sh", "-c", f"ls -A {victim} | wc -l"], no_dev_tmpfs)
    if out.returncode == 0:
        assert int(out.stdout.split()[0]) > 0      # what was meant for /{kind} is in the rootfs's copy
    else:
        one_clear_line(out, f"/{kind}")
    assert os.listdir(victim) == []
    hostile.assert_nothing_left(cid)


# -- container ids and --preserve-fds ------------------------------------------------------------


@pytest.mark.parametrize("cid", ["../escape", "a/b", "..", ".", "ok id"])
def test_container_ids_that_are_paths_are_refused(hostile, cid):
    _, bundle = hostile.bundle(["true"])
    out = hostile.rt.cli("run", "--bundle", bundle, cid)
    one_clear_line(out, "container id")
    assert os.listdir(hostile.rt.root) == [] if os.path.isdir(hostile.rt.root) else True
    assert not os.path.exists(os.path.join(os.path.dirname(hostile.rt.root), "escape"))


def test_overlong_container_id_is_one_clear_line(hostile):
    _, bundle = hostile.bundle(["true"])
    out = hostile.rt.cli("run", "--bundle", bundle, "x" * 300)
    one_clear_line(out, "container id")


def test_preserve_fds_beyond_the_open_fds_neither_hangs_nor_leaks(hostile):
    cid, bundle = hostile.bundle(["sleep", "30"])
    hostile.ids.remove(cid)  # cleaned up here: a hung init would keep `delete` waiting on its lock
    try:
        try:
            out = hostile.rt.cli("run", "--detach", "--preserve-fds", "20", "--bundle", bundle, cid,
                                 timeout=8)
        except subprocess.TimeoutExpired:
            pytest.fail("`run --preserve-fds 20` hung")
        if out.returncode == 1:
            one_clear_line(out, "--preserve-fds")
            return
        assert out.returncode == 0, out.stderr
        pid = hostile.rt.state(cid)["pid"]
        for fd, target in _fds(pid).items():
            assert not target.startswith((hostile.rt.root, "/sys/fs/cgroup")), (fd, target)
            assert not os.path.isdir(f"/proc/{pid}/fd/{fd}"), (fd, target)
    finally:
        _kill_init(hostile, cid)


def _kill_init(hostile, cid: str) -> None:
    """Kill a (possibly hung) init of ours by the pid in its state file, then delete it."""
    path = os.path.join(hostile.rt.root, cid, "state.json")
    try:
        with open(path) as f:
            pid = json.load(f).get("pid") or 0
    except (OSError, ValueError):
        pid = 0
    if pid > 0 and cid in _cgroup_of(pid):
        os.kill(pid, 9)
    if os.path.isdir(os.path.join(hostile.rt.root, cid)):
        hostile.rt.cli("delete", "--force", cid, timeout=15)
    remove_cgroup(cid)


def _cgroup_of(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            return f.read()
    except OSError:
        return ""


def test_half_created_container_can_be_deleted(hostile):
    cid, bundle = hostile.bundle(["true"])
    os.makedirs(os.path.join(hostile.rt.root, cid))   # create was SIGKILLed before saving its state
    deleted = hostile.rt.cli("delete", "--force", cid)
    assert deleted.returncode == 0, deleted.stderr
    assert not os.path.exists(os.path.join(hostile.rt.root, cid))
    again = hostile.rt.cli("run", "--bundle", bundle, cid)
    assert again.returncode == 0, again.stderr
