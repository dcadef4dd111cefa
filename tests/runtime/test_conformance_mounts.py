"""Mount and filesystem conformance (issue 10, items 4-idmap, 5, 6, 7): bundles that runc runs,
run by clonekit and by runc on rootfs copies of their own, comparing what the container sees.

crun 1.8.1 refuses this host's hybrid cgroup layout ("cgroups in hybrid mode not supported"), so
it runs in a private mount namespace of its own whose /sys/fs/cgroup is a pure cgroup2, with
--cgroup-manager=disabled and ociVersion 1.0.2 (the newest it knows).  runc 1.1.5 itself fails a
config without /proc ("error closing exec fds: open /proc/self/fd"): that case is clonekit's
alone.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from runtime_helpers import RUNC, Runtime, _load_conftest, clonekit_runtime, remove_cgroup, run_cmd

conf = _load_conftest()
CRUN = shutil.which("crun")
# what crun 1.8.1 (Debian 12) does not do yet, named at each use; newer crun does most of it
CRUN_1_8_LACKS = ("crun",)
Setup = Callable[[str], None]  # plants things in a fresh rootfs (its path)
Edit = Callable[[dict[str, Any]], None]


class Peers:
    """Each runtime gets a fresh busybox rootfs (the bundles change it), the same config."""

    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.runtimes = [clonekit_runtime(str(tmp_path / "state-clonekit"))]
        if RUNC is not None:
            self.runtimes.append(Runtime("runc", [RUNC], str(tmp_path / "state-runc")))
        if CRUN is not None:
            inner = f'mount -t cgroup2 none /sys/fs/cgroup && exec {CRUN} --cgroup-manager=disabled "$@"'
            self.runtimes.append(Runtime("crun", ["unshare", "-m", "--propagation", "private", "sh", "-c",
                                                  inner, "crun"], str(tmp_path / "state-crun")))
        self.made: list[tuple[Runtime, str]] = []
        self.tops: list[str] = []

    def rootfs(self, setup: Setup | None = None) -> str:
        top = tempfile.mkdtemp(prefix="clonekit-conf-")
        os.chmod(top, 0o755)  # a user-namespaced root must reach it
        self.tops.append(top)
        root = conf.build_rootfs(os.path.join(top, "rootfs"))
        if setup is not None:
            setup(root)
        return root

    def run(self, args: list[str], *edits: Edit, setup: Setup | None = None,
            only: str | None = None, without: tuple[str, ...] = ()) -> dict[str, Any]:
        """`run` the bundle with each runtime (or ``only`` one, or all but those ``without``);
        name -> (result, rootfs)."""
        out = {}
        for rt in self.runtimes:
            if (only is not None and rt.name != only) or rt.name in without:
                continue
            root = self.rootfs(setup)
            cid = f"{rt.name[:2]}-{uuid.uuid4().hex[:10]}"
            self.made.append((rt, cid))
            bundle = self.tmp / cid
            bundle.mkdir()
            config = conf.base_config(root, list(args), cid)
            for edit in edits:
                edit(config)
            if rt.name == "crun":  # 1.8 knows runtime-spec 1.0.2; its cgroups are off (see above)
                config["ociVersion"] = "1.0.2"
                config["linux"].pop("cgroupsPath", None)
            (bundle / "config.json").write_text(json.dumps(config))
            out[rt.name] = (rt.cli("run", "--bundle", str(bundle), cid), root)
        return out

    def cleanup(self) -> list[str]:
        left = []
        for rt, cid in self.made:
            if os.path.isdir(os.path.join(rt.root, cid)):
                rt.cli("delete", "--force", cid)
            if rt.name == "clonekit":
                from runtime_helpers import cgroup_dirs

                left += cgroup_dirs(cid)
            remove_cgroup(cid)
        for top in self.tops:
            shutil.rmtree(top, ignore_errors=True)
        return left


@pytest.fixture
def peers(tmp_path):
    p = Peers(tmp_path)
    try:
        yield p
    finally:
        left = p.cleanup()
    assert not left, f"clonekit left cgroups behind: {left}"


def outputs(results: dict[str, Any]) -> dict[str, str]:
    """name -> stdout, every run having succeeded."""
    for name, (res, _root) in results.items():
        assert res.returncode == 0, f"{name}: {res.stderr}"
    return {name: res.stdout for name, (res, _root) in results.items()}


def same(results: dict[str, Any]) -> str:
    seen = outputs(results)
    first = seen["clonekit"]
    for name, text in seen.items():
        assert text == first, f"clonekit saw:\n{first}\n{name} saw:\n{text}"
    return first


@pytest.fixture
def sentinel():
    """A host directory the hostile links aim at: it must stay empty and unchanged."""
    path = tempfile.mkdtemp(prefix="clonekit-sentinel-", dir="/var/tmp")
    before = os.stat(path).st_mtime_ns
    yield path
    after, mtime = os.listdir(path), os.stat(path).st_mtime_ns
    shutil.rmtree(path)
    assert after == [] and mtime == before, f"the host's {path} was changed: {after}"


def add_mounts(*mounts: dict[str, Any]) -> Edit:
    def edit(config: dict[str, Any]) -> None:
        config["mounts"].extend(mounts)

    return edit


# -- item 5: destinations through symlinks to what the image lacks ----------------------------

def test_destinations_through_dangling_links_land_inside_like_runc(peers, sentinel, tmp_path):
    """/evil -> {sentinel}/x (a host path), /rel -> ../foo/bar/not/here, and /etc/resolv.conf ->
    ../run/systemd/resolve/stub-resolv.conf with no /run/systemd: both runtimes make the missing
    directories (and the file) inside the rootfs and mount there; the host is untouched."""
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("nameserver 192.0.2.53\n")

    def plant(root: str) -> None:
        os.symlink(f"{sentinel}/x", os.path.join(root, "evil"))
        os.symlink("../foo/bar/not/here", os.path.join(root, "rel"))
        os.symlink("../run/systemd/resolve/stub-resolv.conf", os.path.join(root, "etc", "resolv.conf"))

    results = peers.run(
        ["/bin/sh", "-c", f"cat /etc/resolv.conf; ls -d {sentinel}/x/sub /foo/bar/not/here; "
                          "grep -E 'sentinel|not/here|resolv' /proc/self/mountinfo | cut -d' ' -f5"],
        add_mounts({"destination": "/evil/sub", "type": "tmpfs", "source": "tmpfs"},
                   {"destination": "/rel", "type": "tmpfs", "source": "tmpfs"},
                   {"destination": "/etc/resolv.conf", "type": "bind", "source": str(resolv),
                    "options": ["rbind", "ro"]}),
        setup=plant, without=CRUN_1_8_LACKS)  # crun 1.8: "openat2 `evil`: No such file or directory"
    seen = same(results)
    assert seen.splitlines() == [
        "nameserver 192.0.2.53", "/foo/bar/not/here", f"{sentinel}/x/sub",
        f"{sentinel}/x/sub", "/foo/bar/not/here", "/run/systemd/resolve/stub-resolv.conf"]
    root = results["clonekit"][1]
    assert os.path.isfile(os.path.join(root, "run/systemd/resolve/stub-resolv.conf"))
    assert os.path.isdir(os.path.join(root, sentinel.lstrip("/"), "x", "sub"))


def test_links_aimed_at_the_host_stay_in_the_rootfs(peers, sentinel):
    """A hostile image: /host -> / and /up -> ../../../../.. with destinations below them that
    exist on the host (/etc/ck-*, {sentinel}/deep): made in the rootfs, never on the host."""
    name = f"ck-{uuid.uuid4().hex[:8]}"

    def plant(root: str) -> None:
        os.symlink("/", os.path.join(root, "host"))
        os.symlink("../../../../..", os.path.join(root, "up"))

    results = peers.run(
        ["/bin/sh", "-c", f"ls -d /etc/{name} {sentinel}/deep"],
        add_mounts({"destination": f"/host/etc/{name}", "type": "tmpfs", "source": "tmpfs"},
                   {"destination": f"/up/{sentinel.lstrip('/')}/deep", "type": "tmpfs", "source": "tmpfs"}),
        setup=plant)
    assert same(results).split() == [f"/etc/{name}", f"{sentinel}/deep"]
    assert not os.path.exists(f"/etc/{name}")


# -- item 6 ------------------------------------------------------------------------------------

def test_bind_mount_onto_the_root_like_runc(peers):
    """A bind onto "/" covers the rootfs: the container sees the bound tree, with the other
    mounts of the config on top of it."""
    other = peers.rootfs()
    with open(os.path.join(other, "etc", "marker"), "w") as f:
        f.write("the other tree\n")

    def first(config: dict[str, Any]) -> None:
        config["mounts"].insert(0, {"destination": "/", "type": "bind", "source": other,
                                    "options": ["rbind"]})

    seen = same(peers.run(["/bin/sh", "-c", "cat /etc/marker; stat -c %a /tmp; grep -c ' /proc ' "
                                            "/proc/self/mountinfo"], first,
                          without=CRUN_1_8_LACKS))  # crun 1.8: "mount `<rootfs>` to ``: EINVAL"
    assert seen.split("\n")[:3] == ["the other tree", "1777", "1"]


def test_tmpfs_over_an_existing_directory_keeps_its_mode_like_runc(peers):
    """No mode= option: a tmpfs over the image's 2750 /srv is 2750, over 1777 /tmp 1777, over a
    directory the runtime makes 1777 (tmpfs's own default).  An explicit mode= wins (runc 1.2;
    runc 1.1.5 chmods the mount back to the directory's mode after mounting, which later runc
    fixed, so that line is clonekit's alone)."""
    def plant(root: str) -> None:
        os.mkdir(os.path.join(root, "srv"))
        os.chmod(os.path.join(root, "srv"), 0o2750)
        os.mkdir(os.path.join(root, "opt"), 0o700)

    results = peers.run(
        ["/bin/sh", "-c", "stat -c '%a %n' /srv /tmp /newdir /opt"],
        add_mounts({"destination": "/srv", "type": "tmpfs", "source": "tmpfs"},
                   {"destination": "/newdir", "type": "tmpfs", "source": "tmpfs"},
                   {"destination": "/opt", "type": "tmpfs", "source": "tmpfs", "options": ["mode=711"]}),
        setup=plant, without=CRUN_1_8_LACKS)  # crun 1.8: every tmpfs 1777 (later crun appends mode=)
    seen = {name: text.splitlines() for name, text in outputs(results).items()}
    assert seen["clonekit"] == ["2750 /srv", "1777 /tmp", "1777 /newdir", "711 /opt"]
    for name, lines in seen.items():
        assert lines[:3] == seen["clonekit"][:3], f"{name}: {lines}"


def test_missing_cwd_on_a_read_only_rootfs_is_made_like_runc(peers):
    def cwd(config: dict[str, Any]) -> None:
        config["root"]["readonly"] = True
        config["process"]["cwd"] = "/work/deep/here"

    results = peers.run(["/bin/sh", "-c", "pwd; touch x 2>/dev/null || echo read-only"], cwd)
    assert same(results) == "/work/deep/here\nread-only\n"
    assert os.path.isdir(os.path.join(results["clonekit"][1], "work/deep/here"))


# -- item 7: the init needs no /proc of the container -----------------------------------------

def test_a_config_without_proc_runs(peers):
    """No /proc mount (nor masked/readonly paths below it): create, start and the program run;
    the fifo is reopened through the runtime's /proc, held across pivot_root, and oomScoreAdj
    is written before it; exec joins such a container.  (runc 1.1.5 fails here itself: "open
    /proc/self/fd: no such file or directory".)"""
    def no_proc(config: dict[str, Any]) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
        config["linux"]["maskedPaths"] = []
        config["linux"]["readonlyPaths"] = []

    results = peers.run(["/bin/sh", "-c", "ls -A /proc | wc -l; echo ran"], no_proc, only="clonekit")
    assert outputs(results)["clonekit"] == "0\nran\n"
    # and `exec` joins such a container (it enters the root through the runtime's /proc)
    rt = peers.runtimes[0]
    root = peers.rootfs()
    cid = f"ck-{uuid.uuid4().hex[:10]}"
    peers.made.append((rt, cid))
    bundle = peers.tmp / cid
    bundle.mkdir()
    config = conf.base_config(root, ["sleep", "30"], cid)
    no_proc(config)
    config["process"]["oomScoreAdj"] = 123  # written before pivot_root, as runc does it first
    (bundle / "config.json").write_text(json.dumps(config))
    rt.cli("run", "--detach", "--bundle", str(bundle), cid, check=True)
    with open(f"/proc/{rt.state(cid)['pid']}/oom_score_adj") as f:
        assert f.read().strip() == "123"
    done = rt.cli("exec", cid, "/bin/sh", "-c", "echo exec-ran; ls -A /proc | wc -l", check=True)
    assert done.stdout == "exec-ran\n0\n"


# -- item 6: user namespaces ---------------------------------------------------------------------

ROOT_MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def in_user_namespace(config: dict[str, Any]) -> None:
    """A user namespace mapping container root to host uid/gid 100000 (as runc's tests do)."""
    config["linux"]["namespaces"].append({"type": "user"})
    config["linux"]["uidMappings"] = list(ROOT_MAP)
    config["linux"]["gidMappings"] = list(ROOT_MAP)
    # sysfs needs a network namespace owned by the user namespace: ours is, keep it


def owned_by_container_root(root: str) -> None:
    """The rootfs owned by host 100000 (root of ROOT_MAP), as an image unpacked for it is."""
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(os.path.join(dirpath, name), 100000, 100000, follow_symlinks=False)
    os.chown(root, 100000, 100000)


@pytest.fixture
def private_dir():
    """/var/tmp/ck-private-*/inner/f: the outer directory is 0700 host root's."""
    top = tempfile.mkdtemp(prefix="ck-private-", dir="/var/tmp")
    os.chmod(top, 0o700)
    inner = os.path.join(top, "inner")
    os.mkdir(inner)
    with open(os.path.join(inner, "f"), "w") as f:
        f.write("behind a 0700 directory\n")
    os.chown(os.path.join(inner, "f"), 1000, 1000)
    yield inner
    shutil.rmtree(top)


def test_bind_source_the_container_root_cannot_reach_like_runc(peers, private_dir):
    """In a user namespace the container's root (host uid 100000) cannot search a 0700 host
    directory: the runtime's detached copy of the source is attached instead (runc and crun
    open it before joining too).  The file is seen with its owner unmapped (nobody)."""
    seen = same(peers.run(
        ["/bin/sh", "-c", "cat /mnt/s/f; stat -c '%u %g' /mnt/s/f"], in_user_namespace,
        add_mounts({"destination": "/mnt/s", "type": "bind", "source": private_dir,
                    "options": ["rbind", "ro"]}), setup=owned_by_container_root))
    assert seen == "behind a 0700 directory\n65534 65534\n"


def test_device_the_host_lacks_in_a_user_namespace_is_made_like_crun(peers):
    """In a user namespace mknod is refused, and runc binds the host's node of the same path
    (failing when the host has none); crun makes the node itself, as root on the host, on a
    private tmpfs and binds that.  clonekit does as crun: the node is the config's (type,
    numbers, owner), it works (1:3 is null), and nothing is left on the host."""
    name = f"/dev/ck-missing-{uuid.uuid4().hex[:6]}"

    def device(config: dict[str, Any]) -> None:
        config["linux"]["devices"] = [{"path": name, "type": "c", "major": 1, "minor": 3,
                                       "fileMode": 0o666, "uid": 0, "gid": 0}]

    results = peers.run(["/bin/sh", "-c", f"stat -c '%F %t:%T %u:%g' {name}; echo x > {name} && echo wrote"],
                        in_user_namespace, device, setup=owned_by_container_root)
    assert not os.path.exists(name)
    if "runc" in results:  # runc 1.1.5: "mount /dev/ck-missing-...: no such file or directory"
        res = results.pop("runc")[0]
        assert res.returncode != 0 and name in res.stderr, res.stderr
    assert same(results) == "character special file 1:3 0:0\nwrote\n"


# -- item 4: idmapped mounts (runc 1.1.5 predates them: crun 1.8 and the kernel are the oracle) --

@pytest.fixture
def owned_tree(tmp_path):
    """A source directory holding files of host uid/gid 1000 and 0, in a 0755 path."""
    top = tempfile.mkdtemp(prefix="ck-idmap-", dir="/var/tmp")
    os.chmod(top, 0o755)
    for name, owner in (("user-file", 1000), ("root-file", 0)):
        path = os.path.join(top, name)
        with open(path, "w") as f:
            f.write(name + "\n")
        os.chown(path, owner, owner)
    os.chown(top, 1000, 1000)
    yield top
    shutil.rmtree(top)


def idmapped(source: str, dest: str, *options: str, uid: tuple[int, int, int] | None = None,
             gid: tuple[int, int, int] | None = None) -> Edit:
    mount: dict[str, Any] = {"destination": dest, "type": "bind", "source": source,
                             "options": ["bind", *options]}
    for key, triple in (("uidMappings", uid), ("gidMappings", gid)):
        if triple is not None:
            mount[key] = [dict(zip(("containerID", "hostID", "size"), triple, strict=True))]
    return add_mounts(mount)


def test_idmapped_mount_shows_the_mapped_owner_in_a_user_namespace(peers, owned_tree):
    """Host uid 1000 mapped to 100000 (container root) by the mount: the container sees root
    own the file, and what its root creates there lands as uid 1000 on the host.  Through a
    plain bind of the same tree, the file's owner is unmapped (nobody)."""
    results = peers.run(
        ["/bin/sh", "-c", "stat -c '%u:%g' /mnt/m/user-file /mnt/plain/user-file; "
                          "touch /mnt/m/made && stat -c '%u:%g' /mnt/m/made"],
        in_user_namespace,
        idmapped(owned_tree, "/mnt/m", uid=(1000, 100000, 1), gid=(1000, 100000, 1)),
        add_mounts({"destination": "/mnt/plain", "type": "bind", "source": owned_tree, "options": ["bind"]}),
        setup=owned_by_container_root, without=("runc",))
    assert same(results) == "0:0\n65534:65534\n0:0\n"
    st = os.stat(os.path.join(owned_tree, "made"))
    assert (st.st_uid, st.st_gid) == (1000, 1000)


def test_idmap_option_without_mappings_takes_the_containers(peers, owned_tree):
    """`idmap` with no mappings of its own uses the container's user namespace mappings
    (0 -> 100000): on-disk uid 0 and 1000 show as 0 and 1000 inside, as on the host."""
    results = peers.run(
        ["/bin/sh", "-c", "stat -c '%u:%g' /mnt/m/root-file /mnt/m/user-file"],
        in_user_namespace, idmapped(owned_tree, "/mnt/m", "idmap"), setup=owned_by_container_root,
        without=("runc",))
    assert same(results) == "0:0\n1000:1000\n"


def test_idmapped_mount_without_a_user_namespace(peers, owned_tree):
    """No user namespace: the mount alone maps on-disk 1000 to 2000 (runc's "[no userns]")."""
    results = peers.run(
        ["/bin/sh", "-c", "stat -c '%u:%g' /mnt/m/user-file /mnt/m/root-file"],
        idmapped(owned_tree, "/mnt/m", uid=(1000, 2000, 1), gid=(1000, 3000, 1)), without=("runc",))
    # root-file's 0 is outside the mount's mapping: unmapped, shown as the overflow id
    assert same(results) == "2000:3000\n65534:65534\n"


def test_ridmap_reaches_the_mounts_below_an_rbind(peers, owned_tree):
    """A tmpfs mounted inside the source (on the host, for the test's length): with `ridmap`
    over an rbind its files are idmapped too; with `idmap` only the top mount is (as crun)."""
    sub = os.path.join(owned_tree, "sub")
    os.mkdir(sub)
    from clonekit import _native

    _native.mount("ck-idmap-test", sub, "tmpfs", 0, "mode=755,uid=1000,gid=1000")
    try:
        results = {}
        for word in ("ridmap", "idmap"):
            results[word] = outputs(peers.run(
                ["/bin/sh", "-c", "stat -c '%u' /mnt/m/user-file /mnt/m/sub"], in_user_namespace,
                idmapped(owned_tree, "/mnt/m", "rbind", word, uid=(1000, 100000, 1), gid=(1000, 100000, 1)),
                setup=owned_by_container_root, without=("runc",)))
            if word == "idmap":  # crun 1.8 predates ridmap (runtime-spec 1.2): compared on idmap
                assert len(set(results[word].values())) == 1, results[word]
            results[word] = results[word]["clonekit"]
    finally:
        _native.umount2(sub, 2)  # MNT_DETACH
    assert results == {"ridmap": "0\n0\n", "idmap": "0\n65534\n"}


def test_idmapped_mount_needs_a_bind_and_a_user_namespace_for_no_mappings(peers, owned_tree, tmp_path):
    bad = [
        (add_mounts({"destination": "/mnt/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
         "must be a bind mount"),
        (idmapped(owned_tree, "/mnt/m", "idmap"), "no user namespace"),
        (idmapped(owned_tree, "/mnt/m", uid=(0, 1000, 1)), "gidMappings"),
    ]
    for edit, words in bad:
        results = peers.run(["/bin/true"], edit, only="clonekit")
        res = results["clonekit"][0]
        assert res.returncode != 0 and words in res.stderr, res.stderr
        assert "$.mounts[7]" in res.stderr, res.stderr


def test_a_shared_bind_stays_shared_after_pivot_root_like_runc(peers, tmp_path):
    """The old root is made rslave from the old root itself (runc and crun fchdir to it after
    pivot_root): the container's own mounts keep the propagation their options asked for."""
    src = tmp_path / "shared-src"
    src.mkdir()
    results = peers.run(
        ["/bin/sh", "-c", "grep ' /mnt ' /proc/self/mountinfo | cut -d' ' -f7 | cut -d: -f1"],
        add_mounts({"destination": "/mnt", "type": "bind", "source": str(src),
                    "options": ["rbind", "shared"]}),
        without=CRUN_1_8_LACKS)  # crun 1.8 makes the whole tree private after the mounts
    assert same(results) == "shared\n"


@pytest.mark.skipif(shutil.which("podman") is None, reason="podman is not installed (apt install podman)")
def test_podman_idmap_volume(owned_tree):
    """podman 4.3 passes `-v SRC:DST:idmap` to the runtime as the idmap option: with clonekit the
    volume's uid 1000 shows as 1000 in a --uidmap container (runc 1.1.5 ignores the option, so
    it shows the overflow id there)."""
    from runtime_helpers import cgroup_dirs

    podman = shutil.which("podman")
    assert podman is not None
    command = os.path.join(os.path.dirname(sys.executable), "clonekit")
    if not os.path.exists(command):
        pytest.skip("clonekit is not installed as a command next to this interpreter")
    top = tempfile.mkdtemp(prefix="clonekit-podman-")
    os.chmod(top, 0o755)
    parent = f"podman-{uuid.uuid4().hex[:8]}"
    root = conf.build_rootfs(os.path.join(top, "rootfs"))
    os.mkdir(os.path.join(root, "vol"))
    owned_by_container_root(root)
    base = [podman, "--root", f"{top}/storage", "--runroot", f"{top}/run", "--storage-driver", "vfs"]
    try:
        got = run_cmd([*base, "--cgroup-manager", "cgroupfs", "--events-backend", "none",
                       "--runtime", command, "run", "--rm", "--network", "none",
                       "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000",
                       "--cgroup-parent", f"/clonekit-test/{parent}",
                       "--uidmap", "0:100000:65536", "--gidmap", "0:100000:65536",
                       "-v", f"{owned_tree}:/vol:idmap", "--rootfs", root,
                       "/bin/sh", "-c", "stat -c %u:%g /vol/user-file; cat /vol/user-file"], timeout=120)
        assert got.returncode == 0, got.stderr
        assert got.stdout == "1000:1000\nuser-file\n"
    finally:
        run_cmd([*base, "rm", "--all", "--force"], timeout=60)
        run_cmd([*base, "system", "reset", "--force"], timeout=60)
        shutil.rmtree(top, ignore_errors=True)
        remove_cgroup(parent)
    assert not cgroup_dirs(parent)
