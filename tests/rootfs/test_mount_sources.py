"""Bind sources the runtime detaches for the init (rootfs.sources): idmapped copies, and copies
of sources the container's root cannot reach, attached by apply_mount(tree=...)."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile

import pytest
from rootfs_helpers import ROOTLESS_ID, run_child

from clonekit.rootfs import Root, RootfsError, apply_mount, bind_root
from clonekit.rootfs.pivot import set_tree_propagation
from clonekit.rootfs.sources import detach_sources, userns_fd
from clonekit.runtime.plan import IdMapping, MountPlan

BIND, REC = 0x1000, 0x4000


@pytest.fixture
def hidden():
    """/var/tmp/ck-src-*/inner/f (uid 1000): the outer directory is 0700 host root's."""
    top = tempfile.mkdtemp(prefix="ck-src-", dir="/var/tmp")
    os.chmod(top, 0o700)
    inner = os.path.join(top, "inner")
    os.mkdir(inner)
    with open(os.path.join(inner, "f"), "w") as f:
        f.write("hidden\n")
    os.chown(os.path.join(inner, "f"), 1000, 1000)
    yield inner
    shutil.rmtree(top)


def attach(rootfs: str, plans: list[MountPlan], trees: tuple[int, ...], read: str):
    def body():
        set_tree_propagation()
        with Root(bind_root(rootfs)) as root:
            for m, tree in zip(plans, trees, strict=True):
                apply_mount(root, m, tree=tree)
        st = os.stat(os.path.realpath(rootfs) + read)
        with open(os.path.realpath(rootfs) + read) as f:
            return {"text": f.read(), "owner": [st.st_uid, st.st_gid]}

    return body


def test_unreachable_source_is_attached_from_the_runtimes_copy(unprivileged_rootfs, hidden):
    plans = [MountPlan("/mnt/s", "bind", hidden, flags=BIND | REC)]
    # without the copy, the user-namespaced root is refused on the way
    seen = run_child(attach(unprivileged_rootfs, plans, (-1,), "/mnt/s/f"),
                     userns_map=f"0 {ROOTLESS_ID} 65536")
    assert seen["raised"]["errno"] == errno.EACCES
    trees = detach_sources(plans, user_ns=True, container_maps=((), ()))
    try:
        seen = run_child(attach(unprivileged_rootfs, plans, trees, "/mnt/s/f"),
                         userns_map=f"0 {ROOTLESS_ID} 65536")
    finally:
        for fd in trees:
            os.close(fd)
    assert seen == {"text": "hidden\n", "owner": [65534, 65534]}


def test_idmapped_copy_shows_the_mapped_owner(unprivileged_rootfs, hidden):
    """On-disk 1000 mapped to host 100000 by the mount, root of the child's namespace."""
    m = IdMapping(container_id=1000, host_id=ROOTLESS_ID, size=1)
    plans = [MountPlan("/mnt/s", "bind", hidden, flags=BIND, idmap="idmap",
                       uid_mappings=(m,), gid_mappings=(m,))]
    trees = detach_sources(plans, user_ns=True, container_maps=((), ()))
    try:
        seen = run_child(attach(unprivileged_rootfs, plans, trees, "/mnt/s/f"),
                         userns_map=f"0 {ROOTLESS_ID} 65536")
    finally:
        for fd in trees:
            os.close(fd)
    assert seen == {"text": "hidden\n", "owner": [0, 0]}


def test_non_binds_get_no_copy_and_a_missing_source_is_named(hidden):
    plans = [MountPlan("/tmp", "tmpfs", "tmpfs"), MountPlan("/mnt/x", "bind", "/no/such/src", flags=BIND)]
    with pytest.raises(RootfsError) as info:
        detach_sources(plans, user_ns=True, container_maps=((), ()))
    assert info.value.errno == errno.ENOENT and "/no/such/src" in info.value.hint
    assert detach_sources(plans[:1], user_ns=True, container_maps=((), ())) == (-1,)
    # without a user namespace nothing needs a copy (the init is host root)
    assert detach_sources([MountPlan("/mnt/x", "bind", hidden, flags=BIND)], user_ns=False,
                          container_maps=((), ())) == (-1,)


def test_userns_fd_holds_the_mappings():
    m = IdMapping(container_id=0, host_id=ROOTLESS_ID, size=10)
    fd = userns_fd((m,), (m,))
    try:
        assert os.readlink(f"/proc/self/fd/{fd}").startswith("user:[")
        assert os.fstat(fd).st_ino != os.stat("/proc/self/ns/user").st_ino
    finally:
        os.close(fd)


def test_idmapped_plan_without_a_copy_is_refused_clearly(rootfs, hidden):
    m = IdMapping(container_id=0, host_id=ROOTLESS_ID, size=1)
    plans = [MountPlan("/mnt/s", "bind", hidden, flags=BIND, idmap="idmap", uid_mappings=(m,),
                       gid_mappings=(m,))]
    seen = run_child(attach(rootfs, plans, (-1,), "/mnt/s/f"))
    assert seen["raised"]["errno"] == errno.EINVAL and "detach_sources" in seen["raised"]["hint"]


def test_idmapped_file_bind_makes_a_file_destination(unprivileged_rootfs, hidden):
    m = IdMapping(container_id=1000, host_id=ROOTLESS_ID + 7, size=1)
    plans = [MountPlan("/etc/new/f", "bind", os.path.join(hidden, "f"), flags=BIND, idmap="idmap",
                       uid_mappings=(m,), gid_mappings=(m,))]
    trees = detach_sources(plans, user_ns=True, container_maps=((), ()))
    try:
        seen = run_child(attach(unprivileged_rootfs, plans, trees, "/etc/new/f"),
                         userns_map=f"0 {ROOTLESS_ID} 65536")
    finally:
        for fd in trees:
            os.close(fd)
    assert seen == {"text": "hidden\n", "owner": [7, 7]}
    assert os.path.isfile(os.path.join(unprivileged_rootfs, "etc", "new", "f"))


def test_device_nodes_made_by_the_runtime_are_bound_in_a_user_namespace(unprivileged_rootfs):
    """mknod is refused in a user namespace: detach_devices makes the nodes on a private tmpfs
    (mounted nowhere), owned by the ids the config's map to; create_devices attaches them."""
    from clonekit.rootfs import create_devices
    from clonekit.rootfs.sources import detach_devices
    from clonekit.runtime.plan import DevicePlan

    root_map = (IdMapping(container_id=0, host_id=ROOTLESS_ID, size=65536),)
    devices = [DevicePlan("/dev/ck-null-here", "c", 1, 3, file_mode=0o640, uid=5, gid=6),
               DevicePlan("/dev/sub/ck-zero", "c", 1, 5)]
    trees = detach_devices(devices, (root_map, root_map))
    assert len(trees) == 2 and all(fd >= 0 for fd in trees)

    def body():
        set_tree_propagation()
        with Root(bind_root(unprivileged_rootfs)) as root:
            create_devices(root, devices, rootless=True, defaults=False, trees=trees)
        out = {}
        for dev in devices:
            st = os.stat(os.path.realpath(unprivileged_rootfs) + dev.path)
            rdev = st.st_rdev
            out[dev.path] = [oct(st.st_mode), os.major(rdev), os.minor(rdev), st.st_uid, st.st_gid]
        with open(os.path.realpath(unprivileged_rootfs) + "/dev/sub/ck-zero", "rb") as f:
            out["zero"] = f.read(4).hex()
        return out

    try:
        seen = run_child(body, userns_map=f"0 {ROOTLESS_ID} 65536")
    finally:
        for fd in trees:
            os.close(fd)
    assert seen == {"/dev/ck-null-here": ["0o20640", 1, 3, 5, 6],
                    "/dev/sub/ck-zero": ["0o20666", 1, 5, 0, 0], "zero": "00000000"}
    assert not os.path.exists("/dev/ck-null-here")
