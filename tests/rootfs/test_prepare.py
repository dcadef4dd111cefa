"""prepare_rootfs end to end: a busybox rootfs, the usual OCI mounts, devices, masks, readonly
paths and root, pivot_root — observed from inside the child through /proc/self/mountinfo, stat
and the files themselves."""

from __future__ import annotations

import errno
import os
import stat
import subprocess

import pytest
from rootfs_helpers import TAG, mountinfo_by_point, run_child

from clonekit.mountflags import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_STRICTATIME
from clonekit.rootfs import prepare_rootfs
from clonekit.runtime.plan import DevicePlan, MountPlan, Plan

NOSUID, NODEV, NOEXEC, RDONLY = MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_RDONLY

MASKED = ("/proc/kcore", "/proc/keys", "/proc/acpi", "/proc/does-not-exist", "/sys/firmware")
READONLY = ("/proc/sys", "/proc/bus", "/proc/nothing-here")


def host_root_shared() -> bool:
    return any(o.startswith("shared:") for o in mountinfo_by_point()["/"]["optional"])


def oci_mounts(extra=()):
    """The mounts of `runc spec`, as the spec engineer's translation makes them."""
    return (
        MountPlan("/proc", "proc", "proc"),
        MountPlan("/dev", "tmpfs", TAG, flags=NOSUID | MS_STRICTATIME, data="mode=755,size=65536k"),
        MountPlan("/dev/pts", "devpts", "devpts", flags=NOSUID | NOEXEC,
                  data="newinstance,ptmxmode=0666,mode=0620"),
        MountPlan("/dev/shm", "tmpfs", TAG, flags=NOSUID | NOEXEC | NODEV, data="mode=1777,size=65536k"),
        MountPlan("/dev/mqueue", "mqueue", "mqueue", flags=NOSUID | NOEXEC | NODEV),
        MountPlan("/sys", "sysfs", "sysfs", flags=NOSUID | NOEXEC | NODEV | RDONLY),
        *extra,
    )


def observe_container():
    """What a container sees, read from inside (after pivot_root)."""
    mi = mountinfo_by_point()
    devs = {}
    for name in ("null", "zero", "full", "random", "urandom", "tty", "fuse-ish", "fifo"):
        try:
            st = os.stat(f"/dev/{name}", follow_symlinks=False)
        except FileNotFoundError:
            continue
        devs[name] = [stat.S_IFMT(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev),
                      stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid]
    links = {n: os.readlink(f"/dev/{n}") for n in ("ptmx", "fd", "stdin", "stdout", "stderr")
             if os.path.islink(f"/dev/{n}")}
    with open("/proc/keys", "rb") as f:
        kcore = f.read(16)
    errs = {}
    for path in ("/proc/sys/kernel/hostname", "/etc/new-file", "/proc/bus/x"):
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o644))
            errs[path] = 0
        except OSError as exc:
            errs[path] = exc.errno
    shell = subprocess.run(["/bin/sh", "-c", "cat /etc/hostname; ls /dev/pts"], capture_output=True)
    return {
        "mounts": mi, "devices": devs, "links": links, "kcore": kcore.hex(),
        "acpi": os.listdir("/proc/acpi") if os.path.isdir("/proc/acpi") else None,
        "write_errors": errs, "cwd": os.getcwd(), "root_entries": sorted(os.listdir("/")),
        "shell": shell.stdout.decode(), "shell_rc": shell.returncode,
    }


@pytest.mark.parametrize("no_pivot", [False, True], ids=["pivot_root", "no_pivot"])
def test_prepare_rootfs_as_runc_spec_sets_it_up(rootfs, no_pivot):
    plan = Plan("1.2.0", rootfs, root_readonly=True, mounts=oci_mounts(),
                devices=(DevicePlan("/dev/fuse-ish", "c", 10, 229, 0o640, 0, 5),
                         DevicePlan("/dev/fifo", "p", 0, 0, 0o600)),
                masked_paths=MASKED, readonly_paths=READONLY)

    def body():
        fds = sorted(os.listdir("/proc/self/fd"))
        prepare_rootfs(plan, rootless=False, no_pivot=no_pivot)
        seen = observe_container()
        seen["fds_before"] = fds
        seen["fds_after"] = sorted(os.listdir("/proc/self/fd"))
        return seen

    seen = run_child(body)
    assert "raised" not in seen, seen
    mi = seen["mounts"]
    root = mi["/"]
    assert "ro" in root["options"]
    assert not any(o.startswith("shared:") for o in root["optional"]), root  # nothing flows back
    if host_root_shared():
        assert any(o.startswith("master:") for o in root["optional"]), root  # rslave
    assert mi["/proc"]["fstype"] == "proc"
    assert mi["/dev"]["fstype"] == "tmpfs" and "nosuid" in mi["/dev"]["options"]
    assert "mode=755" in mi["/dev"]["super"]
    assert mi["/dev/pts"]["fstype"] == "devpts" and {"nosuid", "noexec"} <= set(mi["/dev/pts"]["options"])
    assert "ptmxmode=666" in mi["/dev/pts"]["super"]
    assert {"nosuid", "nodev", "noexec"} <= set(mi["/dev/shm"]["options"])
    assert mi["/dev/mqueue"]["fstype"] == "mqueue"
    assert mi["/sys"]["fstype"] == "sysfs" and "ro" in mi["/sys"]["options"]
    # devices: type, major, minor, mode, uid, gid
    chr_ = stat.S_IFCHR
    for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                                 "urandom": (1, 9), "tty": (5, 0)}.items():
        assert seen["devices"][name] == [chr_, major, minor, 0o666, 0, 0], name
    assert seen["devices"]["fuse-ish"] == [chr_, 10, 229, 0o640, 0, 5]
    assert seen["devices"]["fifo"][0] == stat.S_IFIFO and seen["devices"]["fifo"][3] == 0o600
    assert seen["links"] == {"ptmx": "pts/ptmx", "fd": "/proc/self/fd", "stdin": "/proc/self/fd/0",
                             "stdout": "/proc/self/fd/1", "stderr": "/proc/self/fd/2"}
    # masked: /proc/keys is /dev/null (reads empty), /proc/acpi an empty read-only tmpfs
    assert seen["kcore"] == ""
    assert mi["/proc/keys"]["fstype"] == "tmpfs" and mi["/proc/keys"]["root"] == "/null"  # its /dev/null
    if "/proc/acpi" in mi:
        assert seen["acpi"] == [] and mi["/proc/acpi"]["fstype"] == "tmpfs"
        assert "ro" in mi["/proc/acpi"]["options"]
    assert "/proc/does-not-exist" not in mi and "/proc/nothing-here" not in mi
    # readonly paths and root: EROFS
    assert seen["write_errors"]["/proc/sys/kernel/hostname"] == errno.EROFS
    assert seen["write_errors"]["/etc/new-file"] == errno.EROFS
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(mi["/proc/sys"]["options"])
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(mi["/proc/bus"]["options"])
    # the container's own view
    assert seen["cwd"] == "/"
    assert seen["root_entries"] == ["bin", "dev", "etc", "mnt", "proc", "run", "sys", "tmp"]
    assert seen["shell_rc"] == 0 and seen["shell"].startswith("rootfs\nptmx")
    assert seen["fds_after"] == seen["fds_before"], "prepare_rootfs leaked fds"
    if no_pivot:
        assert root["root"] != "/" or True
    else:
        # pivot_root: the host's tree is gone from the mount table, only the container's remain
        assert all(p == "/" or p.startswith(("/proc", "/dev", "/sys")) for p in mi), sorted(mi)


def test_dev_bound_from_the_host_is_left_alone(rootfs):
    """With /dev a bind of the host's, nothing is created in it (it would be the host's /dev)."""
    before = sorted(os.listdir("/dev"))
    ptmx_before = os.lstat("/dev/ptmx")
    plan = Plan("1.2.0", rootfs, mounts=(MountPlan("/proc", "proc", "proc"),
                                         MountPlan("/dev", "bind", "/dev", flags=MS_BIND | MS_REC)),
                devices=(DevicePlan("/dev/clonekit-should-not-exist", "c", 1, 3),))

    def body():
        prepare_rootfs(plan, rootless=False)
        return {"fstype": mountinfo_by_point()["/dev"]["fstype"], "has_null": os.path.exists("/dev/null")}

    seen = run_child(body)
    assert seen == {"fstype": "devtmpfs", "has_null": True}
    assert sorted(os.listdir("/dev")) == before
    assert stat.S_ISCHR(os.lstat("/dev/ptmx").st_mode) == stat.S_ISCHR(ptmx_before.st_mode)
