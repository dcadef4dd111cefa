"""Hostile rootfs: symlinks and ``..`` that would take a mount out of the rootfs by string path
land inside it (where the link resolves with the rootfs as "/") or fail with a clear error."""

from __future__ import annotations

import errno
import os
import shutil
import uuid

import pytest
from rootfs_helpers import TAG, mountinfo_by_point, run_child

from clonekit.rootfs import Root, RootfsError, apply_mount, bind_root, ensure_path, open_in_root
from clonekit.rootfs.mounts import mount_on
from clonekit.rootfs.pivot import set_tree_propagation
from clonekit.runtime.plan import MountPlan


def unique() -> str:
    return f"ck-escape-{uuid.uuid4().hex[:8]}"


def mount_in(rootfs: str, *plans: MountPlan):
    """A child body: rslave, bind the rootfs, apply ``plans``; report the tmpfs mounts made."""

    def body():
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            for m in plans:
                apply_mount(root, m)
        mi = mountinfo_by_point()
        return {"tagged": sorted(p for p, v in mi.items() if v["source"] == TAG),
                "binds": sorted(p for p, v in mi.items() if p.startswith(path + "/")), "root": path}

    return body


def error_of(seen: dict) -> dict:
    assert "raised" in seen, f"expected a RootfsError, the child reported {seen}"
    return seen["raised"]


@pytest.mark.parametrize(("link", "target", "dest_in_link"), [
    ("etc", "/", "etc"),                  # absolute link to the host's root
    ("tmp/x", "../../..", "tmp/x"),       # relative link climbing above the rootfs
    ("mnt/deep", "/../../../../", "mnt/deep"),
])
def test_symlinked_parent_lands_inside_the_rootfs(rootfs, link, target, dest_in_link):
    name = unique()
    if os.path.isdir(os.path.join(rootfs, link)):
        shutil.rmtree(os.path.join(rootfs, link))
    os.symlink(target, os.path.join(rootfs, link))
    seen = run_child(mount_in(rootfs, MountPlan(f"/{dest_in_link}/{name}", "tmpfs", TAG)))
    assert seen["tagged"] == [os.path.join(os.path.realpath(rootfs), name)]
    assert os.path.isdir(os.path.join(rootfs, name))  # created inside, where the link resolves
    assert not os.path.exists(f"/{name}")             # and not on the host


def test_dotdot_in_destination_stays_inside(rootfs):
    name = unique()
    seen = run_child(mount_in(rootfs, MountPlan(f"/../../../../{name}", "tmpfs", TAG)))
    assert seen["tagged"] == [os.path.join(os.path.realpath(rootfs), name)]
    assert not os.path.exists(f"/{name}")


def test_final_component_symlink_to_host_dir_resolves_in_rootfs(rootfs):
    os.symlink("/tmp", os.path.join(rootfs, "mnt", "link"))  # /tmp of the *container*
    seen = run_child(mount_in(rootfs, MountPlan("/mnt/link", "tmpfs", TAG)))
    assert seen["tagged"] == [os.path.join(os.path.realpath(rootfs), "tmp")]


def test_file_bind_through_symlink_lands_on_the_link_target_inside(rootfs, tmp_path):
    src = tmp_path / "resolv.conf"
    src.write_text("nameserver 192.0.2.1\n")
    os.symlink("../run/resolv.conf", os.path.join(rootfs, "etc", "resolv.conf"))
    open(os.path.join(rootfs, "run", "resolv.conf"), "w").close()
    seen = run_child(mount_in(rootfs, MountPlan("/etc/resolv.conf", "bind", str(src), flags=0x1000)))
    assert seen["binds"] == [os.path.join(seen["root"], "run", "resolv.conf")]


def test_missing_file_destination_is_created_as_a_file(rootfs, tmp_path):
    src = tmp_path / "hosts"
    src.write_text("127.0.0.1 box\n")
    dest = "/etc/new/dir/hosts"

    def body():
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            apply_mount(root, MountPlan(dest, "bind", str(src), flags=0x1000))
        with open(path + dest) as f:
            return f.read()

    assert run_child(body) == "127.0.0.1 box\n"
    assert os.path.isfile(rootfs + dest) and os.path.getsize(rootfs + dest) == 0  # host sees the empty file


def test_destination_swapped_for_a_symlink_after_resolution_keeps_the_checked_dentry(rootfs):
    """The CVE-2021-30465 race made deterministic: the destination is resolved to an fd, then
    replaced by a symlink to the host's "/"; the mount lands on the dentry that was checked."""
    os.mkdir(os.path.join(rootfs, "mnt", "target"))

    def body():
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            fd = ensure_path(root, "/mnt/target", step="test")
            os.rename(os.path.join(path, "mnt", "target"), os.path.join(path, "mnt", "moved"))
            os.symlink("/", os.path.join(path, "mnt", "target"))
            try:
                mount_on(fd, TAG, "tmpfs", 0, None, step="mount tmpfs on /mnt/target", path="/mnt/target")
            finally:
                os.close(fd)
            # and a fresh apply_mount through the swapped link stays in the rootfs
            apply_mount(root, MountPlan("/mnt/target/sub-" + TAG, "tmpfs", TAG))
        mi = mountinfo_by_point()
        return {"tagged": sorted(p for p, v in mi.items() if v["source"] == TAG), "root": path}

    seen = run_child(body)
    assert seen["tagged"] == [os.path.join(seen["root"], "mnt", "moved"),
                              os.path.join(seen["root"], "sub-" + TAG)]
    assert not os.path.exists("/sub-" + TAG)


def test_proc_destination_reached_through_a_symlink_is_refused(rootfs):
    os.rmdir(os.path.join(rootfs, "proc"))
    os.symlink("tmp", os.path.join(rootfs, "proc"))
    err = error_of(run_child(mount_in(rootfs, MountPlan("/proc", "proc", "proc"))))
    assert err["type"] == "RootfsError" and err["errno"] == errno.ELOOP
    assert err["step"] == "mount proc on /proc" and err["filename"] == "/proc"
    assert "symlink" in err["hint"]


def test_dangling_symlink_destination_is_made_where_it_points_inside(rootfs):
    """runc's MkdirAllInRoot: the link's missing target is created inside the rootfs (with the
    rootfs as "/"), and the mount lands there; the host's /nonexistent is never made."""
    os.symlink("/nonexistent/dir", os.path.join(rootfs, "mnt", "dangle"))
    seen = run_child(mount_in(rootfs, MountPlan("/mnt/dangle", "tmpfs", TAG)))
    assert seen["tagged"] == [os.path.join(seen["root"], "nonexistent", "dir")]
    assert os.path.islink(os.path.join(rootfs, "mnt", "dangle"))
    assert not os.path.exists("/nonexistent")


def test_destination_under_a_regular_file_fails_with_enotdir(rootfs):
    err = error_of(run_child(mount_in(rootfs, MountPlan("/etc/hostname/sub", "tmpfs", TAG))))
    assert err["errno"] == errno.ENOTDIR and "/etc/hostname" in err["str"]


def test_mounts_below_proc_are_refused_except_the_lxcfs_files(rootfs, tmp_path):
    err = error_of(run_child(mount_in(rootfs, MountPlan("/proc", "proc", "proc"),
                                      MountPlan("/proc/sys/kernel", "tmpfs", TAG))))
    assert err["errno"] == errno.EPERM and err["filename"] == "/proc/sys/kernel"
    assert "/proc/cpuinfo" in err["hint"]
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\n")

    def body():
        mount_in(rootfs, MountPlan("/proc", "proc", "proc"),
                 MountPlan("/proc/cpuinfo", "bind", str(fake), flags=0x1000))()
        with open(os.path.realpath(rootfs) + "/proc/cpuinfo") as f:
            return f.read()

    assert run_child(body) == "processor : 0\n"


def test_missing_bind_source_names_the_host_path(rootfs):
    err = error_of(run_child(mount_in(rootfs, MountPlan("/mnt/x", "bind", "/no/such/source", flags=0x1000))))
    assert err["errno"] == errno.ENOENT and err["step"] == "mount bind on /mnt/x"
    assert "/no/such/source" in err["hint"] and "host" in err["hint"]
    assert err["str"].startswith("mount bind on /mnt/x: ENOENT: No such file or directory")


def test_open_in_root_clamps_dotdot_and_absolute_links(rootfs):
    os.symlink("/../..", os.path.join(rootfs, "up"))
    root = Root(rootfs)
    try:
        for path in ("/../../..", "/up", "/up/up/.."):
            fd = open_in_root(root, path, step="test")
            try:
                assert os.readlink(f"/proc/self/fd/{fd}") == root.path
            finally:
                os.close(fd)
        with pytest.raises(RootfsError) as info:
            open_in_root(root, "/missing", step="stat /missing")
        assert info.value.errno == errno.ENOENT and info.value.step == "stat /missing"
    finally:
        root.close()


def test_racing_symlink_swaps_never_take_a_mount_out(rootfs):
    """CVE-2021-30465 for real: a second process keeps swapping /mnt/race between a directory
    and a symlink to the host's "/" while mounts are made below it.  Every mount lands inside
    the rootfs or fails with a RootfsError; nothing is created on the host."""
    prefix = unique()
    os.mkdir(os.path.join(rootfs, "mnt", "race"))
    rounds = 150

    def body():
        import signal
        import time

        set_tree_propagation()
        path = bind_root(rootfs)
        race, spare = os.path.join(path, "mnt", "race"), os.path.join(path, "mnt", "race.dir")
        racer = os.fork()
        if racer == 0:
            try:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    try:
                        os.rename(race, spare)
                        os.symlink("/", race)
                        os.unlink(race)
                        os.rename(spare, race)
                    except OSError:
                        pass
            finally:
                os._exit(0)
        landed, refused, unclear = [], 0, 0
        try:
            with Root(path) as root:
                for i in range(rounds):
                    try:
                        apply_mount(root, MountPlan(f"/mnt/race/{prefix}-{i}", "tmpfs", TAG))
                    except RootfsError as exc:
                        refused += 1
                        unclear += 0 if exc.hint else 1
        finally:
            os.kill(racer, signal.SIGKILL)
            os.waitpid(racer, 0)
        mi = mountinfo_by_point()
        landed = [p for p, v in mi.items() if v["source"] == TAG]
        return {"landed": landed, "refused": refused, "root": path, "unclear": unclear}

    seen = run_child(body)
    assert "raised" not in seen, seen
    outside = [p for p in seen["landed"] if not p.startswith(seen["root"] + "/")]
    on_host = [n for n in os.listdir("/") if n.startswith(prefix)]
    for name in on_host:  # never expected; clean up before failing
        os.rmdir(os.path.join("/", name))
    assert not outside and not on_host
    assert len(seen["landed"]) + seen["refused"] >= rounds
    assert seen["unclear"] == 0, "every refusal says why"


def test_device_under_a_symlinked_dev_is_made_inside(rootfs):
    """No /dev mount and the image's /dev is a symlink to the host's /: the nodes (and the
    /dev symlinks) are made in the rootfs's own top directory, never in the host's /dev."""
    from clonekit.rootfs import create_devices
    from clonekit.rootfs.devices import Device

    shutil.rmtree(os.path.join(rootfs, "dev"))
    os.symlink("/", os.path.join(rootfs, "dev"))
    name = unique()

    def body():
        set_tree_propagation()
        with Root(bind_root(rootfs)) as root:
            create_devices(root, [Device(f"/dev/{name}", "c", 1, 3)], rootless=False)
        return sorted(os.listdir(rootfs))

    listing = run_child(body)
    assert name in listing and "null" in listing and "ptmx" in listing
    assert os.path.islink(os.path.join(rootfs, "ptmx"))
    assert not os.path.exists(f"/dev/{name}") and not os.path.exists(f"/{name}")
