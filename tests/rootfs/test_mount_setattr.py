"""mount_setattr(2), open_tree(2), move_mount(2): the _native wrappers; the recursive attributes
(rro, rnosuid, rrw, rnoatime, ...) and propagation of rootfs.mounts, set on a whole tree of real
mounts at once; binds made from fd to fd.

Each test builds its tree in a throwaway child's private mount namespace and reads the outcome
from /proc/self/mountinfo there.  The fallback for kernels without mount_setattr (< 5.12) is
exercised for real: a seccomp filter in the child makes the syscalls fail with ENOSYS."""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import statistics
import time

import pytest
from rootfs_helpers import TAG, mountinfo_by_point, run_child

from clonekit import _native
from clonekit.mountflags import (
    MNT_DETACH,
    MOUNT_ATTR__ATIME,
    MOUNT_ATTR_NOATIME,
    MOUNT_ATTR_NODEV,
    MOUNT_ATTR_NODIRATIME,
    MOUNT_ATTR_NOEXEC,
    MOUNT_ATTR_NOSUID,
    MOUNT_ATTR_NOSYMFOLLOW,
    MOUNT_ATTR_RDONLY,
    MOUNT_ATTR_STRICTATIME,
    MS_BIND,
    MS_NOATIME,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PER_MOUNT,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_RELATIME,
    MS_REMOUNT,
    MS_SHARED,
    MS_STRICTATIME,
    MS_UNBINDABLE,
)
from clonekit.rootfs import Root, apply_mount, bind_root, prepare_rootfs
from clonekit.rootfs import mounts as mounts_mod
from clonekit.rootfs.paths import mount_id, open_in_root
from clonekit.rootfs.pivot import set_tree_propagation
from clonekit.runtime.plan import MountPlan, NamespacePlan, Plan

AT_FDCWD = -100
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 0x1
MOVE_MOUNT_F_EMPTY_PATH, MOVE_MOUNT_T_EMPTY_PATH = 0x4, 0x40
NR_OPEN_TREE, NR_MOUNT_SETATTR = 428, 442  # x86_64 (and every architecture's new table)
RBIND = MS_BIND | MS_REC
# submounts of the source tree, relative to its top (d0/deep sits on a submount)
SUBS = ("d0", "d1", "d2", "d0/deep")


def make_tree(top: str, subs=SUBS, flags: int = 0) -> None:
    """A tmpfs on ``top`` and one on each of ``subs`` below it, all mounted with ``flags``."""
    _native.mount(TAG, top, "tmpfs", flags & ~MS_RDONLY, None)
    for sub in subs:  # parents first: d0/deep is made on the tmpfs of d0
        os.makedirs(os.path.join(top, sub))
        _native.mount(TAG, os.path.join(top, sub), "tmpfs", flags & ~MS_RDONLY, None)
    if flags & MS_RDONLY:  # read-only last, or the directories above could not be made
        for path in (*[os.path.join(top, s) for s in reversed(subs)], top):
            _native.mount(None, path, None, MS_REMOUNT | MS_BIND | (flags & MS_PER_MOUNT), None)


def tree_options(mi: dict[str, dict], top: str, subs=SUBS) -> dict[str, set[str]]:
    return {p: set(mi[os.path.join(top, p) if p else top]["options"]) for p in ("", *subs)}


def tree_optional(mi: dict[str, dict], top: str, subs=SUBS) -> dict[str, list[str]]:
    return {p: mi[os.path.join(top, p) if p else top]["optional"] for p in ("", *subs)}


def apply_to_tree(rootfs, tmp_path, plan: MountPlan, *, src_flags: int = 0, before=lambda: None):
    """In a child: build the source tree (with ``src_flags``), apply ``plan`` (an rbind of it)
    inside ``rootfs`` and return the options of every mount of the copy and of the source."""
    src = str(tmp_path / "src")
    os.mkdir(src)

    def body():
        before()
        set_tree_propagation(MS_PRIVATE | MS_REC)
        make_tree(src, flags=src_flags)
        path = bind_root(rootfs)
        with Root(path) as root:
            apply_mount(root, plan)
        mi = mountinfo_by_point()
        dst = path + plan.destination
        return {"copy": {k: sorted(v) for k, v in tree_options(mi, dst).items()},
                "source": {k: sorted(v) for k, v in tree_options(mi, src).items()},
                "optional": tree_optional(mi, dst),
                "fallback": {"setattr": mounts_mod._no_setattr, "open_tree": mounts_mod._no_open_tree}}

    seen = run_child(body)
    assert "raised" not in seen, seen
    return ({k: set(v) for k, v in seen["copy"].items()}, {k: set(v) for k, v in seen["source"].items()},
            seen["optional"], seen["fallback"])


@pytest.mark.parametrize(("attr", "word"), [
    (MOUNT_ATTR_RDONLY, "ro"), (MOUNT_ATTR_NOSUID, "nosuid"), (MOUNT_ATTR_NODEV, "nodev"),
    (MOUNT_ATTR_NOEXEC, "noexec"),
    (MOUNT_ATTR_NODIRATIME, "nodiratime"), (MOUNT_ATTR_NOSYMFOLLOW, "nosymfollow"),
], ids=["rro", "rnosuid", "rnodev", "rnoexec", "rnodiratime", "rnosymfollow"])
def test_recursive_attribute_reaches_every_submount(rootfs, tmp_path, attr, word):
    copy, source, _, fallback = apply_to_tree(rootfs, tmp_path, MountPlan(
        "/mnt/t", "bind", str(tmp_path / "src"), flags=RBIND, recursive_set=attr))
    assert fallback == {"setattr": False, "open_tree": False}  # mount_setattr did it
    for sub, opts in copy.items():
        assert word in opts, (sub, opts)
    for sub, opts in source.items():  # the host side of the bind is left alone
        assert word not in opts, (sub, opts)


def test_several_attributes_in_one_call(rootfs, tmp_path):
    copy, _, _, _ = apply_to_tree(rootfs, tmp_path, MountPlan(
        "/mnt/t", "bind", str(tmp_path / "src"), flags=RBIND,
        recursive_set=MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC))
    for sub, opts in copy.items():
        assert {"ro", "nosuid", "nodev", "noexec"} <= opts, (sub, opts)


def test_rrw_clears_read_only_everywhere_and_keeps_other_flags(rootfs, tmp_path):
    copy, source, _, _ = apply_to_tree(rootfs, tmp_path, MountPlan(
        "/mnt/t", "bind", str(tmp_path / "src"), flags=RBIND, recursive_clear=MOUNT_ATTR_RDONLY),
        src_flags=MS_RDONLY | MS_NOSUID)
    for sub, opts in copy.items():
        assert {"rw", "nosuid"} <= opts and "ro" not in opts, (sub, opts)
    for sub, opts in source.items():
        assert "ro" in opts, (sub, opts)


@pytest.mark.parametrize(("attr_set", "attr_clear", "src_flags", "present", "absent"), [
    (MOUNT_ATTR_NOATIME, MOUNT_ATTR__ATIME, 0, {"noatime"}, {"relatime"}),                      # rnoatime
    (MOUNT_ATTR_STRICTATIME, MOUNT_ATTR__ATIME, MS_NOATIME, set(), {"noatime", "relatime"}),  # rstrictatime
    (0, MOUNT_ATTR__ATIME, MS_NOATIME, {"relatime"}, {"noatime"}),                               # rrelatime
    (MOUNT_ATTR_NOATIME, 0, 0, {"noatime"}, {"relatime"}),  # a plan built by hand, without the clear
], ids=["rnoatime", "rstrictatime", "rrelatime", "noatime-without-clear"])
def test_recursive_atime(rootfs, tmp_path, attr_set, attr_clear, src_flags, present, absent):
    copy, _, _, _ = apply_to_tree(rootfs, tmp_path, MountPlan(
        "/mnt/t", "bind", str(tmp_path / "src"), flags=RBIND, recursive_set=attr_set,
        recursive_clear=attr_clear), src_flags=src_flags)
    for sub, opts in copy.items():
        assert present <= opts and not absent & opts, (sub, opts)


@pytest.mark.parametrize(("propagation", "top", "subs"), [
    (MS_SHARED | MS_REC, "shared:", "shared:"), (MS_SHARED, "shared:", None),
    (MS_UNBINDABLE | MS_REC, "unbindable", "unbindable"),
], ids=["rshared", "shared", "runbindable"])
def test_propagation_with_and_without_rec(rootfs, tmp_path, propagation, top, subs):
    _, _, optional, fallback = apply_to_tree(rootfs, tmp_path, MountPlan(
        "/mnt/t", "bind", str(tmp_path / "src"), flags=RBIND, propagation=propagation))
    assert fallback == {"setattr": False, "open_tree": False}
    assert any(o.startswith(top) for o in optional[""]), optional
    for sub in SUBS:
        if subs is None:
            assert optional[sub] == [], optional  # private, as the source tree
        else:
            assert any(o.startswith(subs) for o in optional[sub]), optional


# --- kernels without mount_setattr: ENOSYS from a seccomp filter -----------------------------

class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def deny_with_enosys(*numbers: int) -> None:
    """Install (in the calling throwaway child) a seccomp filter: these syscalls -> ENOSYS, as on
    a kernel that predates them."""
    ld, jeq, ret = 0x20, 0x15, 0x06            # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_RET|K
    allow, err = 0x7FFF0000, 0x00050000        # SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO
    prog = [(ld, 0, 0, 4), (jeq, 1, 0, 0xC000003E), (ret, 0, 0, allow), (ld, 0, 0, 0)]  # x86_64?
    for nr in numbers:
        prog += [(jeq, 0, 1, nr), (ret, 0, 0, err | errno.ENOSYS)]
    prog.append((ret, 0, 0, allow))
    filters = (_SockFilter * len(prog))(*[_SockFilter(*ins) for ins in prog])
    fprog = _SockFprog(len(prog), filters)
    _native.prctl(38, 1)  # PR_SET_NO_NEW_PRIVS
    _native.prctl(22, 2, ctypes.addressof(fprog))  # PR_SET_SECCOMP, SECCOMP_MODE_FILTER


def deny_mount_setattr_with_enosys() -> None:
    deny_with_enosys(NR_MOUNT_SETATTR)


needs_x86_64 = pytest.mark.skipif(platform.machine() != "x86_64",
                                  reason="the ENOSYS seccomp filter is written for x86_64")


@needs_x86_64
def test_filter_really_hides_mount_setattr():
    def body():
        deny_mount_setattr_with_enosys()
        try:
            _native.mount_setattr(-1, "", AT_EMPTY_PATH, 0, 0)
        except OSError as exc:
            return exc.errno
        return 0

    assert run_child(body) == errno.ENOSYS


@needs_x86_64
@pytest.mark.parametrize("recursive_set", [MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID, MOUNT_ATTR_NOATIME],
                         ids=["rro,rnosuid", "rnoatime"])
@pytest.mark.parametrize("denied", [(NR_MOUNT_SETATTR,), (NR_OPEN_TREE, NR_MOUNT_SETATTR)],
                         ids=["no-mount_setattr", "no-open_tree"])
def test_without_mount_setattr_each_submount_is_remounted(rootfs, tmp_path, recursive_set, denied):
    copy, source, optional, fallback = apply_to_tree(rootfs, tmp_path, MountPlan(
        "/mnt/t", "bind", str(tmp_path / "src"), flags=RBIND, recursive_set=recursive_set,
        propagation=MS_SHARED | MS_REC), before=lambda: deny_with_enosys(*denied))
    assert fallback == {"setattr": True, "open_tree": NR_OPEN_TREE in denied}  # ENOSYS remembered
    words = {"ro", "nosuid"} if recursive_set & MOUNT_ATTR_RDONLY else {"noatime"}
    for sub, opts in copy.items():
        assert words <= opts, (sub, opts)
        assert any(o.startswith("shared:") for o in optional[sub]), optional
    for sub, opts in source.items():
        assert not words & opts, (sub, opts)


# --- errors ---------------------------------------------------------------------------------

def test_wrapper_errors_carry_errno_and_path(tmp_path):
    top = str(tmp_path / "t")
    os.mkdir(top)

    def body():
        set_tree_propagation(MS_PRIVATE | MS_REC)
        _native.mount(TAG, top, "tmpfs", 0, None)
        os.mkdir(top + "/dir")
        fd = os.open(top, os.O_PATH | os.O_CLOEXEC)
        sub = os.open(top + "/dir", os.O_PATH | os.O_CLOEXEC)
        closed = os.open(top, os.O_PATH | os.O_CLOEXEC)
        os.close(closed)
        calls = {
            "bad fd": (-1, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0),
            "closed fd": (closed, "", AT_EMPTY_PATH, MOUNT_ATTR_RDONLY, 0),
            "unknown attribute": (fd, "", AT_EMPTY_PATH, 1 << 40, 0),
            "atime without clearing the field": (fd, "", AT_EMPTY_PATH, MOUNT_ATTR_NOATIME, 0),
            "half the atime field cleared": (fd, "", AT_EMPTY_PATH, 0, MOUNT_ATTR_NOATIME),
            "two propagations": (fd, "", AT_EMPTY_PATH, 0, 0, MS_SHARED | MS_PRIVATE),
            "not a mount root": (sub, "", AT_EMPTY_PATH | AT_RECURSIVE, MOUNT_ATTR_RDONLY, 0),
            "unknown flag": (fd, "", 0x40000000, MOUNT_ATTR_RDONLY, 0),
            "missing path": (AT_FDCWD, top + "/missing", 0, MOUNT_ATTR_RDONLY, 0),
        }
        out = {}
        for name, args in calls.items():
            try:
                _native.mount_setattr(*args)
                out[name] = None
            except OSError as exc:
                out[name] = [exc.errno, exc.filename]
        out["still rw"] = "rw" in mountinfo_by_point()[top]["options"]
        return out

    seen = run_child(body)
    assert seen.pop("still rw")
    assert seen == {
        "bad fd": [errno.EBADF, None],
        "closed fd": [errno.EBADF, None],
        "unknown attribute": [errno.EINVAL, None],
        "atime without clearing the field": [errno.EINVAL, None],
        "half the atime field cleared": [errno.EINVAL, None],
        "two propagations": [errno.EINVAL, None],
        "not a mount root": [errno.EINVAL, None],
        "unknown flag": [errno.EINVAL, None],
        "missing path": [errno.ENOENT, top + "/missing"],
    }


def test_wrapper_sets_one_mount_by_path(tmp_path):
    top = str(tmp_path / "t")
    os.mkdir(top)

    def body():
        set_tree_propagation(MS_PRIVATE | MS_REC)
        make_tree(top)
        _native.mount_setattr(AT_FDCWD, top, 0, MOUNT_ATTR_RDONLY, 0)  # no AT_RECURSIVE: the top only
        return {k: sorted(v) for k, v in tree_options(mountinfo_by_point(), top).items()}

    seen = run_child(body)
    assert "ro" in seen[""]
    assert all("rw" in seen[s] for s in SUBS), seen


def test_rootfs_error_names_step_path_and_hint(rootfs, tmp_path):
    def body():
        path = bind_root(rootfs)
        os.makedirs(path + "/mnt/plain", exist_ok=True)
        with Root(path) as root:
            fd = open_in_root(root, "/mnt/plain", step="t")  # a directory, not a mount root
            try:
                mounts_mod.apply_recursive(root, fd, MOUNT_ATTR_RDONLY, 0, step="mount bind on /mnt/plain",
                                           path="/mnt/plain")
            finally:
                os.close(fd)

    raised = run_child(body)["raised"]
    assert raised["type"] == "RootfsError" and raised["errno"] == errno.EINVAL
    assert raised["step"] == "mount bind on /mnt/plain" and raised["filename"] == "/mnt/plain"
    assert "set=0x1" in raised["hint"]


def test_locked_flags_in_a_user_namespace_fail_atomically(rootfs, tmp_path):
    """Mounts made by the host's root are locked in a user namespace: rsuid is refused with
    EPERM and a hint, and rro in the same call changes nothing (one atomic step)."""
    src = str(tmp_path / "src")
    os.mkdir(src)

    def inner():
        path = bind_root(rootfs)
        out = {}
        with Root(path) as root:
            for name, clear in (("atomic", MOUNT_ATTR_NOSUID), ("allowed", 0)):
                dest = f"/mnt/{name}"
                try:
                    apply_mount(root, MountPlan(dest, "bind", src, flags=RBIND,
                                                recursive_set=MOUNT_ATTR_RDONLY, recursive_clear=clear))
                    out[name] = None
                except OSError as exc:
                    out[name] = [exc.errno, getattr(exc, "hint", "")]
                opts = tree_options(mountinfo_by_point(), path + dest)
                out[name + " options"] = {k: sorted(v) for k, v in opts.items()}
        return out

    def outer():
        set_tree_propagation(MS_PRIVATE | MS_REC)
        make_tree(src, flags=MS_NOSUID)
        from clonekit import CloneFlag as F
        return run_child(inner, flags=F.NEWNS, userns_map="0 0 1")

    seen = run_child(outer)
    assert "raised" not in seen, seen
    err, hint = seen["atomic"]
    assert err == errno.EPERM and "user namespace" in hint
    for sub, opts in seen["atomic options"].items():
        assert "rw" in opts and "nosuid" in opts, (sub, opts)   # nothing changed
    assert seen["allowed"] is None
    for sub, opts in seen["allowed options"].items():
        assert {"ro", "nosuid"} <= set(opts), (sub, opts)


# --- before vs after: ~20 submounts ----------------------------------------------------------

def test_time_recursive_step_setattr_vs_remount_each(rootfs, tmp_path):
    """Not a speed assertion (a shared machine): prints median times with ~20 submounts, and
    checks every way did the job.  "recursive step": apply_recursive (one mount_setattr) against
    remount_tree (a remount per submount).  "whole mount": apply_mount of an rbind with rro,
    rnosuid as on this kernel against the pre-5.2 path (mount(2), re-resolve, remount each),
    chosen by the module's ENOSYS switches."""
    subs = tuple(f"d{i:02d}" for i in range(20))
    src = str(tmp_path / "src")
    os.mkdir(src)
    reps = 15
    attrs = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID

    def recursive_step(root, how):
        apply_mount(root, MountPlan("/mnt/b", "bind", src, flags=RBIND))
        fd = open_in_root(root, "/mnt/b", step="t")
        step = mounts_mod.apply_recursive if how == "new" else mounts_mod.remount_tree
        t0 = time.perf_counter()
        step(root, fd, attrs, 0, step="t", path="/mnt/b")
        took = time.perf_counter() - t0
        os.close(fd)
        return took

    def whole_mount(root, how):
        mounts_mod._no_setattr = mounts_mod._no_open_tree = how == "old"
        try:
            t0 = time.perf_counter()
            apply_mount(root, MountPlan("/mnt/b", "bind", src, flags=RBIND, recursive_set=attrs))
            return time.perf_counter() - t0
        finally:
            mounts_mod._no_setattr = mounts_mod._no_open_tree = False

    def body():
        set_tree_propagation(MS_PRIVATE | MS_REC)
        make_tree(src, subs)
        path = bind_root(rootfs)
        times: dict[str, list[float]] = {}
        ok = {}
        with Root(path) as root:
            for rep in range(reps):
                for what, measure in (("recursive step", recursive_step), ("whole mount", whole_mount)):
                    for how in ("new", "old") if rep % 2 else ("old", "new"):
                        key = f"{what} {how}"
                        times.setdefault(key, []).append(measure(root, how))
                        opts = tree_options(mountinfo_by_point(), path + "/mnt/b", subs)
                        ok[key] = ok.get(key, True) and all({"ro", "nosuid"} <= o for o in opts.values())
                        _native.umount2(path + "/mnt/b", MNT_DETACH)
        return {"median_us": {k: statistics.median(v) * 1e6 for k, v in times.items()}, "ok": ok,
                "mounts": len(mountinfo_by_point())}

    seen = run_child(body, timeout=120)
    assert "raised" not in seen, seen
    assert all(seen["ok"].values()) and len(seen["ok"]) == 4, seen["ok"]
    med = seen["median_us"]
    print(f"\n1+{len(subs)} mounts ({seen['mounts']} in the namespace), rro,rnosuid, median of {reps}:")
    for what in ("recursive step", "whole mount"):
        new, old = med[f"{what} new"], med[f"{what} old"]
        print(f"  {what}: new {new:.0f} us, old {old:.0f} us, old/new {old / new:.1f}x")


# --- open_tree + move_mount -----------------------------------------------------------------

def test_open_tree_and_move_mount_wrappers(tmp_path):
    top, dst = str(tmp_path / "t"), str(tmp_path / "dst")
    os.mkdir(top)
    os.mkdir(dst)

    def body():
        set_tree_propagation(MS_PRIVATE | MS_REC)
        make_tree(top)
        count = len(mountinfo_by_point())
        out: dict = {}
        # a detached copy dissolves with its last fd: nothing appears, nothing stays
        tree = _native.open_tree(AT_FDCWD, top, OPEN_TREE_CLONE | AT_RECURSIVE)
        out["cloexec"] = bool(os.get_inheritable(tree)) is False
        os.close(tree)
        out["after detached"] = len(mountinfo_by_point()) - count
        # recursive copy, attached by fds alone
        tree = _native.open_tree(AT_FDCWD, top, OPEN_TREE_CLONE | AT_RECURSIVE)
        to = os.open(dst, os.O_PATH | os.O_CLOEXEC)
        _native.move_mount(tree, "", to, "", MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH)
        mi = mountinfo_by_point()
        out["attached"] = sorted(p[len(dst):] for p in mi if p == dst or p.startswith(dst + "/"))
        out["fd is the mount"] = mount_id(tree) == mi[dst]["id"]
        os.close(tree)
        os.close(to)
        out["after close"] = dst in mountinfo_by_point()
        errors = {}
        for name, call in {
            "open_tree bad fd": lambda: _native.open_tree(-1, "", OPEN_TREE_CLONE | AT_EMPTY_PATH),
            "open_tree missing": lambda: _native.open_tree(AT_FDCWD, top + "/missing", OPEN_TREE_CLONE),
            "open_tree bad flag": lambda: _native.open_tree(AT_FDCWD, top, 0x4000_0000),
            "move_mount bad fd": lambda: _native.move_mount(-1, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH),
            "move_mount missing target": lambda: _native.move_mount(AT_FDCWD, top, AT_FDCWD, top + "/no", 0),
        }.items():
            try:
                call()
                errors[name] = None
            except OSError as exc:
                errors[name] = [exc.errno, exc.filename]
        out["errors"] = errors
        return out

    seen = run_child(body)
    assert "raised" not in seen, seen
    assert seen["cloexec"] and seen["after detached"] == 0
    assert seen["attached"] == sorted(["", *(f"/{s}" for s in SUBS)])
    assert seen["fd is the mount"] and seen["after close"]
    assert seen["errors"] == {
        "open_tree bad fd": [errno.EBADF, None],
        "open_tree missing": [errno.ENOENT, top + "/missing"],
        "open_tree bad flag": [errno.EINVAL, top],
        "move_mount bad fd": [errno.EBADF, dst],
        "move_mount missing target": [errno.ENOENT, top + "/no"],
    }


@pytest.mark.parametrize("recursive", [True, False], ids=["rbind", "bind"])
def test_bind_fd_names_the_new_mount_even_after_the_path_moves(rootfs, tmp_path, recursive):
    """bind_fd returns the new mount's fd: when the destination's parent is renamed and a plain
    directory put in its place right after the bind, the fd still reaches the new mount (a path
    re-resolved now would find the decoy)."""
    src = str(tmp_path / "src")
    os.mkdir(src)

    def body():
        set_tree_propagation(MS_PRIVATE | MS_REC)
        make_tree(src)
        path = bind_root(rootfs)
        os.makedirs(path + "/mnt/a/dst")
        with Root(path) as root:
            src_fd = os.open(src, os.O_PATH | os.O_CLOEXEC)
            dst = open_in_root(root, "/mnt/a/dst", step="t")
            new = mounts_mod.bind_fd(src_fd, dst, recursive=recursive, step="t", path="/mnt/a/dst")
            os.rename(path + "/mnt/a", path + "/mnt/b")
            os.makedirs(path + "/mnt/a/dst")                              # the decoy
            mounts_mod.remount(new, MS_RDONLY, step="t", path="/mnt/a/dst")
            for fd in (src_fd, dst, new):
                os.close(fd)
        mi = mountinfo_by_point()
        return {"moved": sorted(mi[path + "/mnt/b/dst"]["options"]),
                "decoy is a mount": path + "/mnt/a/dst" in mi,
                "subs": [path + "/mnt/b/dst/" + s in mi for s in SUBS]}

    seen = run_child(body)
    assert "raised" not in seen, seen
    assert "ro" in seen["moved"] and not seen["decoy is a mount"]
    assert seen["subs"] == [recursive] * len(SUBS)


# --- the whole container filesystem without the new mount API ------------------------------

def _default_plan(rootfs: str) -> Plan:
    """The filesystem of `clonekit spec` (runc's default): its mounts, masked and read-only
    paths and read-only root, without a cgroup namespace (the cgroup hierarchies are binds)."""
    return Plan("1.2.0", rootfs, root_readonly=True, namespaces=(NamespacePlan("mount"),), mounts=(
        MountPlan("/proc", "proc", "proc"),
        MountPlan("/dev", "tmpfs", TAG, flags=MS_NOSUID | MS_STRICTATIME, data="mode=755,size=65536k"),
        MountPlan("/dev/pts", "devpts", "devpts", flags=MS_NOSUID | MS_NOEXEC,
                  data="newinstance,ptmxmode=0666,mode=0620"),
        MountPlan("/dev/shm", "tmpfs", TAG, flags=MS_NOSUID | MS_NOEXEC | MS_NODEV, data="mode=1777"),
        MountPlan("/sys", "sysfs", "sysfs", flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY),
        MountPlan("/sys/fs/cgroup", "cgroup", "cgroup",
                  flags=MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY),
    ), masked_paths=("/proc/kcore", "/proc/keys", "/proc/acpi", "/proc/timer_list", "/sys/firmware"),
        readonly_paths=("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
                        "/etc/hostname"))  # and a regular file


@needs_x86_64
def test_container_filesystem_is_the_same_without_open_tree_and_mount_setattr(rootfs):
    """The one-pass paths (open_tree binds, one recursive mount_setattr for the cgroup tree and
    one per read-only path) and their fallbacks for kernels without those syscalls build the
    same mount table."""
    plan = _default_plan(rootfs)

    def observe(denied: tuple[int, ...]):
        def body():
            if denied:
                deny_with_enosys(*denied)
            prepare_rootfs(plan, rootless=False)
            table = {point: [m["fstype"], sorted(m["options"]), m["root"]]
                     for point, m in mountinfo_by_point().items()}
            return {"table": table, "fallback": [mounts_mod._no_open_tree, mounts_mod._no_setattr]}
        seen = run_child(body)
        assert "raised" not in seen, seen
        assert seen["fallback"] == [bool(denied)] * 2  # the fallbacks were what ran
        return seen["table"]

    new_api = observe(())
    old_api = observe((NR_OPEN_TREE, NR_MOUNT_SETATTR))
    assert new_api == old_api
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(new_api["/proc/sys"][1])
    assert {"ro", "nosuid", "nodev", "noexec"} <= set(new_api["/etc/hostname"][1])
    assert "ro" in new_api["/"][1] and "ro" in new_api["/sys/fs/cgroup"][1]
    cgroup = {p: v for p, v in new_api.items() if p.startswith("/sys/fs/cgroup/")}
    assert cgroup
    assert all({"ro", "nosuid", "nodev", "noexec", "relatime"} <= set(v[1]) for v in cgroup.values())
