"""Layout detection and placement logic on every kind of host.

This machine is hybrid; pure cgroup2 and pure v1 hosts are tested with FAKE trees: a temp dir laid
out like /sys/fs/cgroup plus a fake mountinfo naming it.  Directories are real (mkdir/rmdir in the
temp dir), the kernel's cgroup semantics are not: these tests check which directories are made and
removed, not membership.  The real host is checked against /proc/self/cgroup.
"""

from __future__ import annotations

import os

import pytest
from cg_helpers import V1_HIERARCHIES, fake_hybrid, fake_legacy, fake_unified, proc_cgroup

from clonekit.cgroups import (
    Cgroup,
    CgroupError,
    CgroupPathError,
    CgroupUnavailableError,
    detect,
    parse_mountinfo,
)
from clonekit.cgroups.layout import Hierarchy


def _write_mountinfo(base: str, text: str) -> str:
    path = os.path.join(base, "mountinfo")
    with open(path, "w") as f:
        f.write(text)
    return path


def _all_dirs(base: str) -> set[str]:
    out: set[str] = set()
    for root, dirs, _ in os.walk(base):
        out.update(os.path.relpath(os.path.join(root, d), base) for d in dirs)
    return out


# -- detection --------------------------------------------------------------------------------

def test_real_host_layout_matches_proc_self_cgroup() -> None:
    """Every hierarchy /proc/self/cgroup lists (but other tools' named ones) is a target, and
    every target is listed there; this host is hybrid."""
    layout = detect()
    assert detect() is layout, "the layout is detected once per process"
    fields = set(proc_cgroup(os.getpid()))
    targets = layout.targets()
    for h in targets:
        assert any(h.matches(f) for f in fields), f"{h} is not in /proc/self/cgroup"
        assert os.path.isfile(os.path.join(h.mountpoint, "cgroup.procs"))
    for f in fields:
        if f.startswith("name=") and f != "name=systemd":
            continue
        assert any(h.matches(f) for h in targets), f"hierarchy {f!r} of /proc/self/cgroup is not placed into"
    if layout.v2 is not None and layout.v1:
        assert layout.mode == "hybrid"


def test_fake_unified_host(fake_root: str) -> None:
    layout = detect(_write_mountinfo(fake_root, fake_unified(fake_root)))
    assert layout.mode == "unified"
    assert [h.key for h in layout.targets()] == ["unified"]
    assert layout.v2 is not None and layout.v2.mountpoint == f"{fake_root}/sys/fs/cgroup"
    assert layout.by_controller("memory") is None


def test_fake_legacy_host(fake_root: str) -> None:
    layout = detect(_write_mountinfo(fake_root, fake_legacy(fake_root)))
    assert layout.mode == "legacy"
    assert layout.v2 is None
    keys = [h.key for h in layout.targets()]
    # co-mounted controllers are one hierarchy; name=systemd yes, another tool's named one no;
    # the bind mount of a memory subtree does not count twice (the whole-tree mount is kept)
    assert sorted(keys) == sorted(n if n != "systemd" else "name=systemd" for n, _ in V1_HIERARCHIES)
    assert keys[-1] == "name=systemd"
    memory = layout.by_controller("memory")
    assert memory is not None and memory.mountpoint.endswith("/sys/fs/cgroup/memory") and memory.root == "/"
    cpu = layout.by_controller("cpuacct")
    assert cpu is not None and cpu.key == "cpu,cpuacct" and cpu.matches("cpuacct,cpu")
    assert any(h.key == "name=othertool" for h in layout.hierarchies)


def test_fake_hybrid_host(fake_root: str) -> None:
    layout = detect(_write_mountinfo(fake_root, fake_hybrid(fake_root)))
    assert layout.mode == "hybrid"
    targets = layout.targets()
    assert targets[0].key == "unified" and targets[0].mountpoint.endswith("/sys/fs/cgroup/unified")
    assert len(targets) == len(V1_HIERARCHIES) + 1


def test_no_cgroups_mounted(fake_root: str) -> None:
    layout = parse_mountinfo("22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n")
    assert layout.mode == "none"
    with pytest.raises(CgroupUnavailableError, match="no cgroup filesystem is mounted"):
        Cgroup.create("/x", container_id="c", layout=layout)


def test_escaped_mount_point_and_subtree_mount() -> None:
    """mountinfo escapes a space as \\040; a mount that shows only a subtree (a cgroup namespace or
    a bind mount) maps paths below its root and refuses others."""
    layout = parse_mountinfo(
        "30 23 0:26 /machine/c1 /my\\040cg rw - cgroup2 cgroup2 rw\n")
    h = layout.v2
    assert h is not None and h.mountpoint == "/my cg" and h.root == "/machine/c1"
    assert h.dir_of("/machine/c1/x/y") == "/my cg/x/y"
    assert h.dir_of("/machine/c1") == "/my cg"
    assert h.dir_of("/machine/c10") is None
    assert h.dir_of("/other") is None
    assert Hierarchy(2, (), "/sys/fs/cgroup").dir_of("/a/b") == "/sys/fs/cgroup/a/b"


def test_path_outside_a_subtree_mount_is_a_clear_error(fake_root: str) -> None:
    os.makedirs(f"{fake_root}/cg")
    layout = parse_mountinfo(f"30 23 0:26 /machine/c1 {fake_root}/cg rw - cgroup2 cgroup2 rw\n")
    with pytest.raises(CgroupError, match="outside the part of the unified hierarchy") as info:
        Cgroup.create("/elsewhere/x", container_id="c", layout=layout)
    assert info.value.errno == 2
    assert os.listdir(f"{fake_root}/cg") == []
    cg = Cgroup.create("/machine/c1/x", container_id="c", layout=layout)
    assert cg.paths == {"unified": f"{fake_root}/cg/x"}
    Cgroup.load(cg.to_state()).remove()
    assert os.listdir(f"{fake_root}/cg") == []


# -- placement logic on fake trees --------------------------------------------------------------

@pytest.mark.parametrize("kind", ["unified", "legacy", "hybrid"])
def test_fake_create_and_remove_every_hierarchy(fake_root: str, kind: str) -> None:
    text = {"unified": fake_unified, "legacy": fake_legacy, "hybrid": fake_hybrid}[kind](fake_root)
    layout = parse_mountinfo(text)
    before = _all_dirs(fake_root)
    cg = Cgroup.create("/clonekit-test-cg/a/b", container_id="c", layout=layout)
    made = _all_dirs(fake_root) - before
    expected = {os.path.relpath(h.mountpoint, fake_root) for h in layout.targets()}
    assert {d.split("/clonekit-test-cg")[0] for d in made} == expected
    assert all(os.path.isdir(p) and p.endswith("/clonekit-test-cg/a/b") for p in cg.paths.values())
    assert set(cg.paths) == {h.key for h in layout.targets()}
    assert not os.path.exists(f"{fake_root}/other tool/clonekit-test-cg"), "another tool's hierarchy"
    assert (cg.v2_dir is not None) == (kind != "legacy")
    # a later process rebuilds it from the saved state and removes it: nothing is left
    again = Cgroup.load(cg.to_state())
    assert again.paths == cg.paths and again.exists()
    again.remove()
    assert _all_dirs(fake_root) == before
    assert not cg.exists()


def test_fake_relative_path_joins_the_own_group_missing_goes_under_the_owned_parent(fake_root: str) -> None:
    layout = parse_mountinfo(fake_unified(fake_root))
    mount = f"{fake_root}/sys/fs/cgroup"
    own = proc_cgroup(os.getpid())[""].rstrip("/")      # this process's group, as runc reads it
    cg = Cgroup.create("pod/web", container_id="c", layout=layout)
    assert cg.path == f"{own}/pod/web"
    assert cg.paths == {"unified": f"{mount}{own}/pod/web"}
    other = Cgroup.create(None, container_id="ctr-2", layout=layout)
    assert other.paths == {"unified": f"{mount}/clonekit/ctr-2"}
    cg.remove()
    # every directory the relative group made is gone (none of them was there before)
    assert os.listdir(mount) == ["clonekit"]
    other.remove()
    assert os.listdir(mount) == [], "the empty clonekit-owned parent is removed too"


def test_fake_parents_made_by_others_are_kept(fake_root: str) -> None:
    layout = parse_mountinfo(fake_unified(fake_root))
    mount = f"{fake_root}/sys/fs/cgroup"
    os.makedirs(f"{mount}/machine")                      # someone else's group
    cg = Cgroup.create("/machine/clonekit-test-cg/x", container_id="c", layout=layout)
    cg.remove()
    assert os.listdir(mount) == ["machine"] and os.listdir(f"{mount}/machine") == []


def test_fake_existing_leaf_with_processes_is_refused(fake_root: str) -> None:
    layout = parse_mountinfo(fake_unified(fake_root))
    leaf = f"{fake_root}/sys/fs/cgroup/busy"
    os.makedirs(leaf)
    with open(f"{leaf}/cgroup.procs", "w") as f:
        f.write("4242\n")
    with pytest.raises(CgroupError, match="already has processes") as info:
        Cgroup.create("/busy", container_id="c", layout=layout)
    assert info.value.filename == leaf and info.value.errno == 17


def test_fake_pids_of_group_and_child_groups(fake_root: str) -> None:
    """ps reads cgroup.procs of the group and every child group (here written by the test)."""
    layout = parse_mountinfo(fake_hybrid(fake_root))
    cg = Cgroup.create("/clonekit-test-cg/p", container_id="c", layout=layout)
    v2 = cg.v2_dir
    assert v2 is not None
    os.mkdir(f"{v2}/inner")
    for path, text in ((f"{v2}/cgroup.procs", "30\n10\n"), (f"{v2}/inner/cgroup.procs", "20\n")):
        with open(path, "w") as f:
            f.write(text)
    assert cg.pids() == [10, 20, 30]
    for path in (f"{v2}/cgroup.procs", f"{v2}/inner/cgroup.procs"):
        os.unlink(path)
    cg.remove()  # the container's child group goes too
    assert not cg.exists()
    assert not os.path.exists(f"{fake_root}/sys/fs/cgroup/unified/clonekit-test-cg")


@pytest.mark.parametrize("damage", ["top", "dotdot", "other", "root-path"])
def test_a_damaged_state_is_refused_before_anything_is_removed(fake_root: str, damage: str) -> None:
    """delete trusts the saved state; a damaged one must never make it rmdir a hierarchy's top
    or someone else's groups."""
    layout = parse_mountinfo(fake_unified(fake_root))
    mount = f"{fake_root}/sys/fs/cgroup"
    os.makedirs(f"{mount}/system.slice/other")
    cg = Cgroup.create("/clonekit-test-cg/x", container_id="c", layout=layout)
    state = cg.to_state()
    h = state["hierarchies"][0]
    if damage == "top":
        h["dir"] = mount
    elif damage == "dotdot":
        h["dir"] = f"{mount}/clonekit-test-cg/../system.slice/x"
    elif damage == "other":
        h["dir"] = f"{mount}/system.slice"
    else:
        state["path"] = "/"
    with pytest.raises(CgroupPathError, match="inconsistent"):
        Cgroup.load(state)
    assert os.path.isdir(f"{mount}/system.slice/other")
    cg.remove()


def test_controller_dir_for_the_resources_step(fake_root: str) -> None:
    legacy = Cgroup.create("/clonekit-test-cg/x", container_id="c",
                           layout=parse_mountinfo(fake_legacy(os.path.join(fake_root, "v1"))))
    assert legacy.controller_dir("cpuacct") == legacy.paths["cpu,cpuacct"]
    assert legacy.controller_dir("memory") == legacy.paths["memory"]
    assert legacy.controller_dir("io") is None
    legacy.remove()
    base = os.path.join(fake_root, "v2")
    layout = parse_mountinfo(fake_unified(base))
    unified = Cgroup.create("/clonekit-test-cg/x", container_id="c", layout=layout)
    with open(f"{base}/sys/fs/cgroup/cgroup.controllers", "w") as f:
        f.write("cpuset cpu io memory pids\n")
    assert unified.controller_dir("memory") == unified.paths["unified"]
    assert Cgroup.load(unified.to_state()).controller_dir("io") == unified.paths["unified"]
    assert unified.controller_dir("freezer") is None
    unified.remove()
