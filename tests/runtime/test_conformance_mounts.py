"""Mount and filesystem conformance (issue 10, items 4-idmap, 5, 6, 7): bundles that runc runs,
run by clonekit and by runc on rootfs copies of their own, comparing what the container sees.

crun 1.8.1 is installed but refuses this host's hybrid cgroup layout ("cgroups in hybrid mode
not supported"), so runc is the peer here.  runc 1.1.5 itself fails a config without /proc
("error closing exec fds: open /proc/self/fd"): that case is clonekit's alone.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from runtime_helpers import RUNC, Runtime, _load_conftest, clonekit_runtime, remove_cgroup

conf = _load_conftest()
Setup = Callable[[str], None]  # plants things in a fresh rootfs (its path)
Edit = Callable[[dict[str, Any]], None]


class Peers:
    """Each runtime gets a fresh busybox rootfs (the bundles change it), the same config."""

    def __init__(self, tmp_path) -> None:
        self.tmp = tmp_path
        self.runtimes = [clonekit_runtime(str(tmp_path / "state-clonekit"))]
        if RUNC is not None:
            self.runtimes.append(Runtime("runc", [RUNC], str(tmp_path / "state-runc")))
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
            only: str | None = None) -> dict[str, Any]:
        """`run` the bundle with each runtime (or ``only`` one); name -> (result, rootfs)."""
        out = {}
        for rt in self.runtimes:
            if only is not None and rt.name != only:
                continue
            root = self.rootfs(setup)
            cid = f"{rt.name[:2]}-{uuid.uuid4().hex[:10]}"
            self.made.append((rt, cid))
            bundle = self.tmp / cid
            bundle.mkdir()
            config = conf.base_config(root, list(args), cid)
            for edit in edits:
                edit(config)
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
        setup=plant)
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
                                            "/proc/self/mountinfo"], first))
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
        setup=plant)
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
    the fifo is reopened through the runtime's /proc, held across pivot_root.  (runc 1.1.5
    fails here itself: "open /proc/self/fd: no such file or directory".)"""
    def no_proc(config: dict[str, Any]) -> None:
        config["mounts"] = [m for m in config["mounts"] if m["destination"] != "/proc"]
        config["linux"]["maskedPaths"] = []
        config["linux"]["readonlyPaths"] = []

    results = peers.run(["/bin/sh", "-c", "ls -A /proc | wc -l; echo ran"], no_proc, only="clonekit")
    assert outputs(results)["clonekit"] == "0\nran\n"
