"""Destinations reached through symlinks to what the image lacks (issue 10, item 5).

runc resolves such a link inside the rootfs and creates the missing directories there; so does
clonekit, walking the path one component at a time from the rootfs's fd (make_path).  A hostile
image points its links at the host ("/", "/etc", "../../.."): everything is made inside the
rootfs, and a sentinel directory on the host stays untouched."""

from __future__ import annotations

import errno
import os
import shutil
import uuid

import pytest
from rootfs_helpers import TAG, mountinfo_by_point, run_child

from clonekit.rootfs import Root, apply_mount, bind_root
from clonekit.rootfs.paths import make_path
from clonekit.rootfs.pivot import set_tree_propagation
from clonekit.runtime.plan import MountPlan


@pytest.fixture
def sentinel():
    """A directory on the host the hostile links aim at; it must stay empty."""
    path = f"/tmp/ck-sentinel-{uuid.uuid4().hex[:8]}"
    os.mkdir(path, 0o755)
    before = os.stat(path)
    yield path
    after = os.listdir(path)
    mtime = os.stat(path).st_mtime_ns
    shutil.rmtree(path)
    assert after == [] and mtime == before.st_mtime_ns, f"the host's {path} was changed: {after}"


def mounted(rootfs: str, *plans: MountPlan):
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


@pytest.mark.parametrize(("link", "target", "lands"), [
    ("evil", "{sentinel}/x", "{sentinel}/x"),            # absolute, into a host directory
    ("evil", "../../../../../{sentinel}/x", "{sentinel}/x"),  # climbing above the rootfs
    ("evil", "../foo/bar/not/here", "foo/bar/not/here"),  # relative, several levels missing
    ("etc/evil", "/", ""),                               # the host's "/" (exists: the top itself)
])
def test_mount_through_a_dangling_link_lands_inside(rootfs, sentinel, link, target, lands):
    target = target.format(sentinel=sentinel.lstrip("/") if target.startswith("..") else sentinel)
    lands = lands.format(sentinel=sentinel.lstrip("/")).strip("/")
    os.symlink(target, os.path.join(rootfs, link))
    seen = run_child(mounted(rootfs, MountPlan(f"/{link}/sub", "tmpfs", TAG)))
    where = os.path.join(seen["root"], lands, "sub") if lands else os.path.join(seen["root"], "sub")
    assert seen["tagged"] == [where]
    assert os.path.isdir(os.path.join(rootfs, lands, "sub"))


def test_resolv_conf_linked_into_a_missing_run_dir_gets_the_bind(rootfs, sentinel, tmp_path):
    """The common image: /etc/resolv.conf -> ../run/systemd/resolve/stub-resolv.conf, /run
    empty.  The file and its directories are made inside, the bind lands on the link's target."""
    src = tmp_path / "resolv.conf"
    src.write_text("nameserver 192.0.2.53\n")
    os.symlink("../run/systemd/resolve/stub-resolv.conf", os.path.join(rootfs, "etc", "resolv.conf"))

    def body():
        mounted(rootfs, MountPlan("/etc/resolv.conf", "bind", str(src), flags=0x1000))()
        with open(os.path.join(os.path.realpath(rootfs), "etc", "resolv.conf")) as f:
            return f.read()

    assert run_child(body) == "nameserver 192.0.2.53\n"
    made = os.path.join(rootfs, "run", "systemd", "resolve", "stub-resolv.conf")
    assert os.path.isfile(made) and os.path.getsize(made) == 0


def test_link_to_a_host_etc_never_touches_the_host(rootfs, sentinel):
    """/etc -> /etc is the rootfs's own /etc; /data -> {sentinel}/a/../b: the walk resolves
    '..' against the link's own (created) parent, inside."""
    shutil.rmtree(os.path.join(rootfs, "etc"))
    os.symlink("/etc", os.path.join(rootfs, "etc"))  # a loop onto itself
    seen = run_child(mounted(rootfs, MountPlan("/etc/ck-new", "tmpfs", TAG)))
    assert seen["raised"]["errno"] == errno.ELOOP
    os.unlink(os.path.join(rootfs, "etc"))
    os.symlink(f"{sentinel}/deep", os.path.join(rootfs, "etc"))
    seen = run_child(mounted(rootfs, MountPlan("/etc/passwd.d", "tmpfs", TAG)))
    assert seen["tagged"] == [os.path.join(seen["root"], sentinel.lstrip("/"), "deep", "passwd.d")]
    assert not os.path.exists("/etc/passwd.d")


def test_missing_component_left_with_dotdot_is_refused(rootfs, sentinel):
    """'missing/..' cannot be looked up by the kernel either: refused, nothing created."""
    os.symlink("nothere/../x", os.path.join(rootfs, "mnt", "odd"))
    seen = run_child(mounted(rootfs, MountPlan("/mnt/odd", "tmpfs", TAG)))
    err = seen["raised"]
    assert err["errno"] == errno.ENOENT and "'..'" in err["hint"]
    assert not os.path.exists(os.path.join(rootfs, "mnt", "nothere"))


def test_make_path_reports_whether_it_created(rootfs):
    def body():
        with Root(rootfs) as root:
            out = []
            for path in ("/tmp", "/tmp/new/leaf", "/tmp/new/leaf"):
                fd, created = make_path(root, path, step="test")
                os.close(fd)
                out.append(created)
            return out

    assert run_child(body) == [False, True, False]


def test_racing_swaps_of_a_dangling_link_never_create_on_the_host(rootfs, sentinel):
    """A racer keeps flipping /mnt/race between a dangling relative link and a link to the host
    sentinel's absolute path (and a directory) while paths below it are created: everything
    made is inside the rootfs, the sentinel stays empty."""
    prefix = f"ck-race-{uuid.uuid4().hex[:6]}"
    rounds = 120

    def body():
        import signal
        import time

        set_tree_propagation()
        path = bind_root(rootfs)
        race = os.path.join(path, "mnt", "race")
        racer = os.fork()
        if racer == 0:
            try:
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline:
                    for target in ("../gone/here", sentinel, "/"):
                        try:
                            os.symlink(target, race + ".new")
                            os.rename(race + ".new", race)
                        except OSError:
                            pass
            finally:
                os._exit(0)
        refused = 0
        try:
            with Root(path) as root:
                for i in range(rounds):
                    try:
                        fd = make_path(root, f"/mnt/race/{prefix}-{i}/leaf", step="race")[0]
                        os.close(fd)
                    except OSError:
                        refused += 1
        finally:
            os.kill(racer, signal.SIGKILL)
            os.waitpid(racer, 0)
        return {"refused": refused}

    seen = run_child(body)
    assert "raised" not in seen, seen
    assert not os.path.exists(f"/{prefix}-0") and not os.path.exists("/gone")
