"""Mount options, propagation, recursive attributes and the cgroup mount types, observed in
/proc/self/mountinfo of the child (before and after pivot_root)."""

from __future__ import annotations

import os

import pytest
from rootfs_helpers import TAG, mountinfo_by_point, run_child

from clonekit import CloneFlag as F
from clonekit import _native
from clonekit.mountflags import (
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_RDONLY,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_SHARED,
    MS_SLAVE,
    MS_UNBINDABLE,
)
from clonekit.rootfs import Root, apply_mount, bind_root, finish_rootfs, mount_rootfs, prepare_rootfs
from clonekit.rootfs.pivot import set_tree_propagation
from clonekit.runtime.plan import MountPlan, NamespacePlan, Plan

BIND, REC = MS_BIND, MS_REC


def host_source(tmp_path, *, submount_flags: int | None = None, flags: int = 0):
    """A host directory to bind; the child mounts a tmpfs on it (with ``flags``) and one on its
    sub/ (with ``submount_flags``) before preparing the rootfs."""
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "file").write_text("hello\n")

    def setup():
        set_tree_propagation()
        if flags:
            _native.mount(TAG, str(src), "tmpfs", flags, None)
            os.mkdir(src / "sub")
            (src / "file").write_text("hello\n")
        if submount_flags is not None:
            _native.mount(TAG, str(src / "sub"), "tmpfs", submount_flags, None)

    return str(src), setup


def apply_and_observe(rootfs, plans, setup=lambda: None):
    def body():
        setup()
        path = bind_root(rootfs)
        with Root(path) as root:
            for m in plans:
                apply_mount(root, m)
        mi = mountinfo_by_point()
        return {p[len(path):]: v for p, v in mi.items() if p.startswith(path + "/")}

    seen = run_child(body)
    assert "raised" not in seen, seen
    return seen


def test_bind_options_set_and_keep_the_source_flags(rootfs, tmp_path):
    src, setup = host_source(tmp_path, flags=MS_NOSUID)
    seen = apply_and_observe(rootfs, [
        MountPlan("/mnt/ro", "bind", src, flags=BIND | MS_RDONLY | MS_NODEV),
        MountPlan("/mnt/exec", "bind", src, flags=BIND | MS_NOEXEC),
        MountPlan("/mnt/suid", "bind", src, flags=BIND, clear_flags=MS_NOSUID),
        MountPlan("/mnt/noatime", "bind", src, flags=BIND | MS_NOATIME),
    ], setup)
    ro = set(seen["/mnt/ro"]["options"])
    assert {"ro", "nodev", "nosuid"} <= ro  # nosuid kept from the source
    assert {"rw", "noexec", "nosuid"} <= set(seen["/mnt/exec"]["options"])
    assert "nosuid" not in seen["/mnt/suid"]["options"]  # "suid" cleared it
    assert "noatime" in seen["/mnt/noatime"]["options"]


@pytest.mark.parametrize(("propagation", "expect"), [
    (MS_SHARED, "shared:"), (MS_PRIVATE, None), (MS_UNBINDABLE, "unbindable"),
    (MS_SLAVE | MS_REC, "master:"),
])
def test_bind_propagation(rootfs, tmp_path, propagation, expect):
    src, _ = host_source(tmp_path)

    def setup():
        set_tree_propagation()
        _native.mount(src, src, None, BIND, None)          # a mount of its own (not over the rootfs)
        _native.mount(None, src, None, MS_SHARED, None)    # ... and shared, to be a master

    seen = apply_and_observe(rootfs, [MountPlan("/mnt/p", "bind", src, flags=BIND | REC,
                                                propagation=propagation)], setup)
    optional = seen["/mnt/p"]["optional"]
    if expect is None:
        assert optional == []
    else:
        assert any(o.startswith(expect) for o in optional), optional


def test_recursive_readonly_reaches_submounts_plain_ro_does_not(rootfs, tmp_path):
    src, setup = host_source(tmp_path, submount_flags=0)
    seen = apply_and_observe(rootfs, [
        MountPlan("/mnt/rro", "bind", src, flags=BIND | REC,
                  recursive_set=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID),
        MountPlan("/mnt/ro", "bind", src, flags=BIND | REC | MS_RDONLY),
    ], setup)
    assert {"ro", "nosuid"} <= set(seen["/mnt/rro"]["options"])
    assert {"ro", "nosuid"} <= set(seen["/mnt/rro/sub"]["options"])
    assert "ro" in seen["/mnt/ro"]["options"]
    assert "rw" in seen["/mnt/ro/sub"]["options"]


def test_tmpfs_options_reach_the_superblock(rootfs):
    seen = apply_and_observe(rootfs, [
        MountPlan("/run/x", "tmpfs", TAG, flags=MS_NOSUID | MS_NODEV, data="size=1m,mode=700"),
    ])
    run = seen["/run/x"]
    assert run["fstype"] == "tmpfs" and {"nosuid", "nodev"} <= set(run["options"])
    assert "size=1024k" in run["super"] and "mode=700" in run["super"]
    assert oct(os.stat(rootfs + "/run/x").st_mode & 0o7777) == oct(0o755)  # the host dir underneath


@pytest.mark.parametrize(("rootfs_propagation", "expect"), [
    (MS_SHARED | MS_REC, "shared:"), (MS_PRIVATE | MS_REC, None), (0, "default"),
    (MS_UNBINDABLE | MS_REC, "unbindable"),
])
def test_rootfs_propagation_of_the_new_root(rootfs, rootfs_propagation, expect):
    plan = Plan("1.2.0", rootfs, mounts=(MountPlan("/proc", "proc", "proc"),),
                rootfs_propagation=rootfs_propagation)

    def body():
        prepare_rootfs(plan, rootless=False)
        return mountinfo_by_point()["/"]["optional"]

    optional = run_child(body)
    assert not any(o.startswith("propagate_from") for o in optional)
    if expect is None:
        assert optional == []
    elif expect == "default":
        assert not any(o.startswith("shared:") for o in optional)
    else:
        assert any(o.startswith(expect) for o in optional), optional


def _hybrid_v1() -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(" - cgroup " in line for line in f)


@pytest.mark.parametrize("cgroupns", [True, False], ids=["cgroupns", "host-cgroupns"])
def test_cgroup_mount_mirrors_the_host_hierarchies(rootfs, cgroupns):
    if not _hybrid_v1():
        pytest.skip("this host has no cgroup v1 hierarchies (the v1 layout is what is tested)")
    namespaces = (NamespacePlan("mount"),) + ((NamespacePlan("cgroup"),) if cgroupns else ())
    plan = Plan("1.2.0", rootfs, namespaces=namespaces, mounts=(
        MountPlan("/proc", "proc", "proc"),
        MountPlan("/sys", "sysfs", "sysfs", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
        MountPlan("/sys/fs/cgroup", "cgroup", "cgroup",
                  flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY),
    ))

    def body():
        prepare_rootfs(plan, rootless=False)
        mi = mountinfo_by_point()
        links = {n: os.readlink(f"/sys/fs/cgroup/{n}") for n in os.listdir("/sys/fs/cgroup")
                 if os.path.islink(f"/sys/fs/cgroup/{n}")}
        return {"mounts": {p: v for p, v in mi.items() if p.startswith("/sys/fs/cgroup")}, "links": links,
                "cpu_files": "cgroup.procs" in os.listdir("/sys/fs/cgroup/cpu/")}

    flags = F.NEWNS | (F.NEWCGROUP if cgroupns else 0)
    seen = run_child(body, flags=flags)
    assert "raised" not in seen, seen
    mounts = seen["mounts"]
    top = mounts["/sys/fs/cgroup"]
    assert top["fstype"] == "tmpfs" and "ro" in top["options"]
    with open("/proc/self/mountinfo") as f:
        host = {line.split()[4].rsplit("/", 1)[1]: line.split(" - ")[1].split()[0]
                for line in f if line.split()[4].startswith("/sys/fs/cgroup/")}
    for name, fstype in host.items():
        sub = mounts[f"/sys/fs/cgroup/{name}"]
        assert sub["fstype"] == fstype, name
        assert {"ro", "nosuid", "nodev", "noexec"} <= set(sub["options"]), name
        if cgroupns:
            assert sub["root"] == "/", name  # a fresh mount of the hierarchy, rooted at our group
    assert seen["cpu_files"]
    for link, target in seen["links"].items():
        assert os.readlink(f"/sys/fs/cgroup/{link}") == target


def test_cgroup_mount_binds_the_groups_the_runtime_names(rootfs):
    """Without a cgroup namespace each hierarchy is a bind of the container's own group; the
    runtime names it (cgroup_dirs), since the init may not be in its v1 groups yet."""
    if not _hybrid_v1() or not os.path.isdir("/sys/fs/cgroup/pids"):
        pytest.skip("this host has no cgroup v1 pids hierarchy (the v1 layout is what is tested)")
    group = f"/clonekit-test/rootfs-dirs-{os.getpid()}"
    host_dir = "/sys/fs/cgroup/pids" + group
    os.makedirs(host_dir)
    plan = Plan("1.2.0", rootfs, mounts=(
        MountPlan("/proc", "proc", "proc"),
        MountPlan("/sys", "sysfs", "sysfs", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
        MountPlan("/sys/fs/cgroup", "cgroup", "cgroup", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
    ))

    def body():
        mount_rootfs(plan, rootless=False, cgroup_dirs={"/sys/fs/cgroup/pids": host_dir})
        finish_rootfs(plan)
        with open("/proc/self/cgroup") as f:
            own = {line.split(":")[1]: line.rstrip("\n").split(":", 2)[2] for line in f}
        mi = mountinfo_by_point()
        return {"mounts": {p: v for p, v in mi.items() if p.startswith("/sys/fs/cgroup/")}, "own": own}

    try:
        seen = run_child(body)
    finally:
        os.rmdir(host_dir)
    assert "raised" not in seen, seen
    assert seen["mounts"]["/sys/fs/cgroup/pids"]["root"] == group
    assert "ro" in seen["mounts"]["/sys/fs/cgroup/pids"]["options"]
    memory = seen["mounts"].get("/sys/fs/cgroup/memory")
    if memory is not None:  # not named: the group the init is in
        assert memory["root"] == seen["own"]["memory"]


def test_cgroup2_mount(rootfs):
    plan = Plan("1.2.0", rootfs, namespaces=(NamespacePlan("cgroup"),), mounts=(
        MountPlan("/proc", "proc", "proc"),
        MountPlan("/sys/fs/cgroup", "cgroup2", "cgroup", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV),
    ))

    def body():
        prepare_rootfs(plan, rootless=False)
        return mountinfo_by_point()["/sys/fs/cgroup"]

    seen = run_child(body, flags=F.NEWNS | F.NEWCGROUP)
    assert seen["fstype"] == "cgroup2" and {"nosuid", "nodev", "noexec"} <= set(seen["options"])
