"""maskedPaths/readonlyPaths against a hostile rootfs, and the shape of RootfsError."""

from __future__ import annotations

import errno
import os
import pickle

from rootfs_helpers import TAG, mountinfo_by_point, run_child

from clonekit.errors import KernelError
from clonekit.rootfs import (
    Root,
    RootfsError,
    apply_mount,
    bind_root,
    mask_paths,
    prepare_rootfs,
    readonly_paths,
)
from clonekit.rootfs.pivot import set_tree_propagation
from clonekit.runtime.plan import MountPlan, Plan


def test_masking_uses_the_real_dev_null_not_the_rootfs_one(rootfs):
    """CVE-2025-31133: the image's /dev/null is a symlink to a secret; masking must not bind it."""
    with open(os.path.join(rootfs, "etc", "secret"), "w") as f:
        f.write("top secret\n")
    os.symlink("/etc/secret", os.path.join(rootfs, "dev", "null"))

    def body():
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            apply_mount(root, MountPlan("/proc", "proc", "proc"))
            masked = mask_paths(root, ["/proc/keys", "/proc/no-such-file", "/proc/acpi"])
        with open(path + "/proc/keys") as f:
            content = f.read()
        mi = mountinfo_by_point()
        return {"masked": masked, "content": content, "keys": mi[path + "/proc/keys"]}

    seen = run_child(body)
    assert seen["content"] == ""
    assert seen["masked"] == ["/proc/keys", "/proc/acpi"]  # the missing one is skipped
    assert seen["keys"]["root"] == "/null" and seen["keys"]["fstype"] == "devtmpfs"


def test_masked_and_readonly_paths_through_symlinks_stay_inside(rootfs):
    """A masked path whose parent is a symlink to the host's / is resolved in the rootfs."""
    os.symlink("/", os.path.join(rootfs, "mnt", "host"))
    os.mkdir(os.path.join(rootfs, "tmp", "ro-here"))

    def body():
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            masked = mask_paths(root, ["/mnt/host/etc"])
            ro = readonly_paths(root, ["/mnt/host/tmp/ro-here"])
        try:
            os.mkdir(path + "/tmp/ro-here/x")
            ro_err = 0
        except OSError as exc:
            ro_err = exc.errno
        mi = mountinfo_by_point()
        return {"masked": masked, "ro": ro, "ro_err": ro_err, "etc_listing": os.listdir(path + "/etc"),
                "points": sorted(p for p in mi if p.startswith(path + "/")), "root": path,
                "host_etc_masked": "/etc" in mi and mi["/etc"]["fstype"] == "tmpfs"}

    seen = run_child(body)
    assert seen["masked"] == ["/mnt/host/etc"] and seen["ro"] == ["/mnt/host/tmp/ro-here"]
    assert seen["points"] == [seen["root"] + "/etc", seen["root"] + "/tmp/ro-here"]
    assert seen["etc_listing"] == [] and not seen["host_etc_masked"]
    assert seen["ro_err"] == errno.EROFS


def test_destination_through_a_magic_link_is_refused(rootfs):
    os.symlink("/proc/self/cwd", os.path.join(rootfs, "mnt", "magic"))

    def body():
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            apply_mount(root, MountPlan("/proc", "proc", "proc"))
            apply_mount(root, MountPlan("/mnt/magic", "tmpfs", TAG))
        return "mounted"

    err = run_child(body)["raised"]
    assert err["errno"] == errno.ELOOP and err["step"] == "mount tmpfs on /mnt/magic"


def test_mount_on_slash_covers_the_rootfs(rootfs):
    """A mount onto "/" (runc and crun take it) stacks on the rootfs: its path shows the new
    filesystem, and its propagation is set on it, not on the rootfs below."""
    def body():
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            apply_mount(root, MountPlan("/", "tmpfs", TAG, propagation=0x20000))  # MS_UNBINDABLE
        with open("/proc/self/mountinfo") as f:
            lines = [line for line in f if line.split()[4] == path]
        top, below = mountinfo_by_point(lines[-1:])[path], mountinfo_by_point(lines[:1])[path]
        return {"top": top["source"], "unbindable": [top["optional"], below["optional"]],
                "ls": os.listdir(path)}

    seen = run_child(body)
    assert seen == {"top": TAG, "unbindable": [["unbindable"], seen["unbindable"][1]], "ls": []}
    assert seen["unbindable"][1] != ["unbindable"]


def test_a_failed_prepare_leaks_no_fd_and_names_the_step(rootfs):
    plan = Plan("1.2.0", rootfs, mounts=(MountPlan("/proc", "proc", "proc"),
                                         MountPlan("/mnt/x", "bind", "/no/such/dir", flags=0x1000)))

    def body():
        before = sorted(os.listdir("/proc/self/fd"))
        try:
            prepare_rootfs(plan, rootless=False)
        except RootfsError as exc:
            return {"str": str(exc), "fds": sorted(os.listdir("/proc/self/fd")) == before}
        return "no error"

    seen = run_child(body)
    assert seen["fds"]
    assert seen["str"] == ("mount bind on /mnt/x: ENOENT: No such file or directory: the bind source "
                           "/no/such/dir does not exist on the host (/mnt/x)")


def test_missing_rootfs(tmp_path):
    plan = Plan("1.2.0", str(tmp_path / "nope"))

    def body():
        prepare_rootfs(plan, rootless=False)
        return "no error"

    err = run_child(body)["raised"]
    assert err["errno"] == errno.ENOENT and err["step"] == "bind rootfs" and "root.path" in err["hint"]


def test_rootfs_error_is_a_kernel_error_and_pickles():
    exc = RootfsError(errno.EPERM, "mknod /dev/null", "/dev/null", "use rootless")
    assert isinstance(exc, KernelError) and isinstance(exc, OSError)
    assert exc.errno == errno.EPERM and exc.step == "mknod /dev/null" and exc.filename == "/dev/null"
    assert str(exc) == "mknod /dev/null: EPERM: Operation not permitted: use rootless (/dev/null)"
    again = pickle.loads(pickle.dumps(exc))
    assert (again.errno, again.step, again.filename, again.hint, str(again)) == (
        exc.errno, exc.step, exc.filename, exc.hint, str(exc))


def test_console_is_the_pty_bound_through_its_fd(rootfs):
    from clonekit.rootfs import bind_console

    def body():
        master, slave = os.openpty()
        set_tree_propagation()
        path = bind_root(rootfs)
        with Root(path) as root:
            bind_console(root, slave)
        st = os.stat(path + "/dev/console")
        mi = mountinfo_by_point()[path + "/dev/console"]
        os.close(master)
        os.close(slave)
        return {"fstype": mi["fstype"], "root": mi["root"], "major": os.major(st.st_rdev)}

    seen = run_child(body)
    assert seen["fstype"] == "devpts" and seen["major"] == 136 and seen["root"].lstrip("/").isdigit()


def test_console_symlink_in_the_rootfs_is_refused(rootfs):
    """CVE-2025-52565: /dev/console made a symlink must not redirect the pty bind."""
    from clonekit.rootfs import bind_console

    os.symlink("/etc/hostname", os.path.join(rootfs, "dev", "console"))

    def body():
        master, slave = os.openpty()
        set_tree_propagation()
        with Root(bind_root(rootfs)) as root:
            try:
                bind_console(root, slave)
            finally:
                os.close(master)
                os.close(slave)
        return "bound"

    err = run_child(body)["raised"]
    assert err["errno"] == errno.ELOOP and err["step"] == "bind console /dev/console"


def test_pivot_root_of_a_directory_that_is_not_a_mount_point_explains(rootfs):
    from clonekit.rootfs import enter_root

    def body():
        set_tree_propagation()
        enter_root(rootfs)  # never bound onto itself: not a mount point
        return "pivoted"

    err = run_child(body)["raised"]
    assert err["errno"] in (errno.EINVAL, errno.EBUSY) and err["step"] == "pivot_root"
    assert "mount point" in err["hint"] and "--no-pivot" in err["hint"]
