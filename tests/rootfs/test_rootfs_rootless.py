"""Rootless: the child is root of a new user namespace (its maps written by the parent) and has
no CAP_MKNOD over the host: devices come from bind mounts of the host's nodes, sysfs falls back
to a bind of the host's /sys without a network namespace of its own."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from rootfs_helpers import ROOTLESS_ID, TAG, mountinfo_by_point, run_child

from clonekit import CloneFlag as F
from clonekit.mountflags import MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_STRICTATIME
from clonekit.rootfs import prepare_rootfs
from clonekit.runtime.plan import DevicePlan, MountPlan, Plan

USERNS = F.NEWNS | F.NEWPID | F.NEWNET | F.NEWIPC
# root in the user namespace is host root (so it can read the test's files), but capabilities
# only count inside: mknod is refused exactly as for an unprivileged user
MAP = "0 0 1"


def rootless_mounts(*, mqueue: bool = True):
    return (
        MountPlan("/proc", "proc", "proc"),
        MountPlan("/dev", "tmpfs", TAG, flags=MS_NOSUID | MS_STRICTATIME, data="mode=755,size=65536k"),
        MountPlan("/dev/pts", "devpts", "devpts", flags=MS_NOSUID | MS_NOEXEC,
                  data="newinstance,ptmxmode=0666,mode=0620"),
        *((MountPlan("/dev/mqueue", "mqueue", "mqueue", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV),)
          if mqueue else ()),
        MountPlan("/sys", "sysfs", "sysfs", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
    )


def observe():
    mi = mountinfo_by_point()
    devs = {}
    for name in ("null", "zero", "full", "random", "urandom", "tty", "kmsg"):
        if not os.path.exists(f"/dev/{name}"):
            continue
        st = os.stat(f"/dev/{name}")
        devs[name] = [stat.S_ISCHR(st.st_mode), os.major(st.st_rdev), os.minor(st.st_rdev),
                      f"/dev/{name}" in mi and mi[f"/dev/{name}"]["root"]]
    with open("/dev/zero", "rb") as f:
        zeros = f.read(4)
    return {"mounts": mi, "devices": devs, "zeros": zeros.hex(),
            "uid_map": open("/proc/self/uid_map").read().split(),
            "ptmx": os.readlink("/dev/ptmx")}


def test_rootless_devices_are_bind_mounts_of_the_host_nodes(rootfs):
    plan = Plan("1.2.0", rootfs, mounts=rootless_mounts(),
                devices=(DevicePlan("/dev/kmsg", "c", 1, 11),), masked_paths=("/proc/keys",),
                readonly_paths=("/proc/sys",), root_readonly=True)

    def body():
        prepare_rootfs(plan, rootless=True)
        return observe()

    seen = run_child(body, flags=USERNS, userns_map=MAP)
    assert "raised" not in seen, seen
    assert seen["uid_map"] == ["0", "0", "1"]
    mi = {k.removeprefix("/dev/"): v for k, v in seen["mounts"].items()}
    for name, (major, minor) in {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                                 "urandom": (1, 9), "tty": (5, 0), "kmsg": (1, 11)}.items():
        is_chr, got_major, got_minor, mount_root = seen["devices"][name]
        assert is_chr and (got_major, got_minor) == (major, minor), name
        assert mount_root == f"/{name}", f"/dev/{name} is not a bind of the host's node: {mi.get(name)}"
    assert seen["zeros"] == "00000000"
    assert seen["ptmx"] == "pts/ptmx"
    assert seen["mounts"]["/sys"]["fstype"] == "sysfs"
    assert "ro" in seen["mounts"]["/"]["options"] and "ro" in seen["mounts"]["/proc/sys"]["options"]
    assert seen["mounts"]["/proc/keys"]["root"] == "/null"


def test_rootless_sysfs_without_its_own_netns_binds_the_hosts(rootfs):
    plan = Plan("1.2.0", rootfs, mounts=rootless_mounts(mqueue=False))

    def body():
        prepare_rootfs(plan, rootless=True)
        return {"sys": mountinfo_by_point()["/sys"], "has_class": os.path.isdir("/sys/class")}

    seen = run_child(body, flags=F.NEWNS | F.NEWPID, userns_map=MAP)
    assert "raised" not in seen, seen
    assert seen["sys"]["fstype"] == "sysfs" and seen["has_class"]
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(seen["sys"]["options"])


def test_mknod_in_a_user_namespace_says_to_use_rootless(rootfs):
    plan = Plan("1.2.0", rootfs, mounts=rootless_mounts())

    def body():
        prepare_rootfs(plan, rootless=False)
        return "no error"

    seen = run_child(body, flags=USERNS, userns_map=MAP)
    err = seen["raised"]
    assert err["type"] == "RootfsError" and err["errno"] == errno.EPERM
    assert err["step"] == "mknod /dev/null" and err["filename"] == "/dev/null"
    assert "bind-mounted" in err["hint"] and "rootless" in err["hint"]


def test_rootless_device_that_does_not_match_the_host_node_is_refused(rootfs):
    plan = Plan("1.2.0", rootfs, mounts=rootless_mounts(),
                devices=(DevicePlan("/dev/kmsg", "c", 1, 99),))

    def body():
        prepare_rootfs(plan, rootless=True)
        return "no error"

    err = run_child(body, flags=USERNS, userns_map=MAP)["raised"]
    assert err["errno"] == errno.EINVAL and err["step"] == "bind device /dev/kmsg"
    assert "1:11" in err["hint"]


def test_rootless_missing_host_device(rootfs):
    plan = Plan("1.2.0", rootfs, mounts=rootless_mounts(),
                devices=(DevicePlan("/dev/clonekit-no-such-dev", "c", 1, 3),))

    def body():
        prepare_rootfs(plan, rootless=True)
        return "no error"

    err = run_child(body, flags=USERNS, userns_map=MAP)["raised"]
    assert err["errno"] == errno.ENOENT and "host has no /dev/clonekit-no-such-dev" in err["hint"]


@pytest.mark.parametrize("no_pivot", [False, True], ids=["pivot_root", "no_pivot"])
def test_unprivileged_map_full_oci_setup(unprivileged_rootfs, no_pivot):
    """Container root is host uid 100000: what a rootless runtime run by a user gets."""
    plan = Plan("1.2.0", unprivileged_rootfs, mounts=(
        *rootless_mounts(),
        MountPlan("/dev/shm", "tmpfs", TAG, flags=MS_NOSUID | MS_NOEXEC | MS_NODEV, data="mode=1777"),
        MountPlan("/etc/created/deep", "tmpfs", TAG),
    ), masked_paths=("/proc/keys", "/proc/acpi"), readonly_paths=("/proc/sys",), root_readonly=True)

    def body():
        import subprocess

        prepare_rootfs(plan, rootless=True, no_pivot=no_pivot)
        shell = subprocess.run(["/bin/sh", "-c", "cat /etc/hostname; echo x > /dev/null; busybox id -u"],
                               capture_output=True)
        seen = observe()
        seen["shell"] = shell.stdout.decode()
        seen["host_uid_of_etc"] = os.stat("/etc/created").st_uid
        return seen

    seen = run_child(body, flags=USERNS, userns_map=f"0 {ROOTLESS_ID} 1")
    assert "raised" not in seen, seen
    assert seen["uid_map"] == ["0", str(ROOTLESS_ID), "1"]
    assert seen["shell"] == "rootfs\n0\n"
    assert seen["devices"]["null"][3] == "/null"
    mi = seen["mounts"]
    assert mi["/etc/created/deep"]["fstype"] == "tmpfs"
    assert "ro" in mi["/"]["options"] and "ro" in mi["/proc/sys"]["options"]
    assert seen["host_uid_of_etc"] == 0  # created by container root (host 100000), seen as 0 inside
    assert os.stat(os.path.join(unprivileged_rootfs, "etc", "created")).st_uid == ROOTLESS_ID


def _locked_source(src: str) -> None:
    """In the child: a nosuid,nodev tmpfs on ``src``, then a new user+mount namespace of our
    own, where that mount's flags are locked (as the host's mounts are for a rootless runtime)."""
    from clonekit import _native
    from clonekit.rootfs.pivot import set_tree_propagation

    set_tree_propagation()
    _native.mount(TAG, src, "tmpfs", MS_NOSUID | MS_NODEV, None)
    with open(os.path.join(src, "file"), "w") as f:
        f.write("locked\n")
    _native.unshare(int(F.NEWUSER | F.NEWNS))
    for name, text in (("setgroups", "deny"), ("uid_map", "0 0 1"), ("gid_map", "0 0 1")):
        with open(f"/proc/self/{name}", "w") as f:
            f.write(text)


def test_rootless_bind_keeps_locked_flags_and_says_so_when_asked_to_clear_them(rootfs, tmp_path):
    src = tmp_path / "locked"
    src.mkdir()
    from clonekit.rootfs import Root, RootfsError, apply_mount, bind_root

    def body():
        _locked_source(str(src))
        path = bind_root(rootfs)
        with Root(path) as root:
            ro = MountPlan("/mnt/ro", "bind", str(src), flags=MS_BIND | MS_RDONLY)
            apply_mount(root, ro, rootless=True)
            try:
                apply_mount(root, MountPlan("/mnt/suid", "bind", str(src), flags=MS_BIND,
                                            clear_flags=MS_NOSUID), rootless=True)
                err = None
            except RootfsError as exc:
                err = {"errno": exc.errno, "step": exc.step, "hint": exc.hint}
        mi = mountinfo_by_point()
        with open(path + "/mnt/ro/file") as f:
            content = f.read()
        return {"ro": mi[path + "/mnt/ro"]["options"], "err": err, "content": content}

    seen = run_child(body)
    assert "raised" not in seen, seen
    assert {"ro", "nosuid", "nodev"} <= set(seen["ro"]) and seen["content"] == "locked\n"
    assert seen["err"]["errno"] == errno.EPERM and seen["err"]["step"] == "mount bind on /mnt/suid"
    assert "user namespace cannot clear" in seen["err"]["hint"]


def test_rootless_cgroup_mount(rootfs):
    from clonekit.runtime.plan import NamespacePlan

    plan = Plan("1.2.0", rootfs, namespaces=(NamespacePlan("cgroup"),), mounts=(
        *rootless_mounts(mqueue=False),
        MountPlan("/sys/fs/cgroup", "cgroup", "cgroup", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
    ))

    def body():
        prepare_rootfs(plan, rootless=True)
        mi = mountinfo_by_point()
        return {p: [v["fstype"], v["options"]] for p, v in mi.items() if p.startswith("/sys/fs/cgroup")}

    seen = run_child(body, flags=USERNS | F.NEWCGROUP, userns_map=MAP)
    assert "raised" not in seen, seen
    assert seen["/sys/fs/cgroup"][0] in ("tmpfs", "cgroup2")
    for point, (fstype, options) in seen.items():
        assert "ro" in options, point
        if point != "/sys/fs/cgroup":
            assert fstype in ("cgroup", "cgroup2"), point


def test_runc_spec_rootless_bundle(unprivileged_rootfs):
    """`runc spec --rootless` as the spec engineer's load_plan reads it, in a user namespace
    whose root is host uid 100000."""
    import json
    import shutil
    import subprocess

    if shutil.which("runc") is None:
        pytest.skip("runc is not installed (its `spec --rootless` is the input here)")
    from clonekit.runtime.spec import load_plan

    bundle = os.path.dirname(unprivileged_rootfs)
    subprocess.run(["runc", "spec", "--rootless"], cwd=bundle, check=True)
    with open(os.path.join(bundle, "config.json")) as f:
        config = json.load(f)
    plan = load_plan(bundle, rootless=True)

    def body():
        prepare_rootfs(plan, rootless=True)
        mi = mountinfo_by_point()
        return {"points": sorted(mi), "sys": mi["/sys"]["fstype"], "root_ro": "ro" in mi["/"]["options"],
                "null": mi["/dev/null"]["root"]}

    seen = run_child(body, flags=F.NEWNS | F.NEWPID | F.NEWIPC | F.NEWUTS, userns_map=f"0 {ROOTLESS_ID} 1")
    assert "raised" not in seen, seen
    wanted = {m["destination"] for m in config["mounts"]}
    assert wanted <= set(seen["points"])
    assert seen["sys"] == "sysfs" and seen["root_ro"] == config["root"]["readonly"]
    assert seen["null"] == "/null"
