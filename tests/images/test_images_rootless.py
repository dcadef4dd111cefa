"""Unprivileged unpacking, as an account made for this module: the files stay owned by the
caller (the layer's owners are not recorded), devices and privileged xattrs are skipped, a
read-only directory still takes a later layer's files and ends read-only; then
``clonekit bundle --rootless`` and ``clonekit run`` as that account run the image's command."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator

import pytest
from image_helpers import d, dev, f, oci_layout, sym

from clonekit.runtime.busybox import BUSYBOX
from unprivileged import Account, session_account

USER = "clonekit-img-user"
SUBIDS = 910000
UNPACK = ("import sys, json; from clonekit.images import unpack; "
          "i = unpack(sys.argv[1], cache_dir=sys.argv[2]); print(json.dumps([str(i.rootfs), i.digest]))")


def _python(account: Account) -> str | None:
    """An interpreter the account can run clonekit with (ours may be under /root)."""
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        ok = subprocess.run(account.wrap([candidate, "-c", "import clonekit._native"]), capture_output=True,
                            cwd="/", stdin=subprocess.DEVNULL)
        if ok.returncode == 0:
            return candidate
    return None


@pytest.fixture(scope="module")
def account() -> Iterator[Account]:
    made = session_account(USER, SUBIDS)
    try:
        got = next(made)
        if isinstance(got, str):
            pytest.skip(got)
        python = _python(got)
        if python is None:
            pytest.skip(f"no python that {USER} can import clonekit with")
        got.python = python
        yield got
    finally:
        for _ in made:
            pass


@pytest.fixture
def home(account: Account) -> Iterator[str]:
    top = tempfile.mkdtemp(prefix="clonekit-images-rootless-")
    os.chmod(top, 0o755)
    run_dir = os.path.join(top, "run")
    os.mkdir(run_dir, 0o700)
    os.chown(run_dir, account.uid, account.gid)
    account.runtime_dir = run_dir
    work = os.path.join(top, "work")
    os.mkdir(work, 0o755)
    os.chown(work, account.uid, account.gid)
    try:
        yield top
    finally:
        account.runtime_dir = ""
        shutil.rmtree(top)


def as_account(account: Account, *args: str) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(account.wrap([account.python, *args]), stdout=out, stderr=err,
                              stdin=subprocess.DEVNULL, cwd="/", timeout=120)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(args, proc.returncode, out.read(), err.read())


def test_unprivileged_unpack_keeps_the_callers_ownership(account, home):
    layers = [
        [d("ro", mode=0o555), f("ro/a", b"a", mode=0o4755, uid=1234, gid=5678), d("dev"),
         dev("dev/null", 1, 3), f("x", b"x", xattrs={"user.note": "kept", "trusted.t": "skipped"}),
         f("shadow", b"secret", mode=0o000)],
        [f("ro/b", b"b", mode=0o640)],
    ]
    layout = oci_layout(os.path.join(home, "layout"), layers)
    cache = os.path.join(home, "work", "cache")
    done = as_account(account, "-c", UNPACK, layout, cache)
    assert done.returncode == 0, done.stderr
    rootfs, digest = json.loads(done.stdout)
    assert rootfs == os.path.join(cache, f"sha256-{digest[7:]}-rootless", "rootfs")
    for name in ("ro", "ro/a", "ro/b", "x", "shadow"):
        st = os.lstat(os.path.join(rootfs, name))
        assert (st.st_uid, st.st_gid) == (account.uid, account.gid), name
    assert stat.S_IMODE(os.lstat(os.path.join(rootfs, "ro")).st_mode) == 0o555
    assert stat.S_IMODE(os.lstat(os.path.join(rootfs, "ro/a")).st_mode) == 0o4755
    assert not os.path.lexists(os.path.join(rootfs, "dev/null"))  # mknod needs privilege: skipped
    assert os.listxattr(os.path.join(rootfs, "x")) == ["user.note"]
    # a second unprivileged unpack of the same image is a hit
    again = as_account(account, "-c", UNPACK, layout, cache)
    assert again.returncode == 0 and json.loads(again.stdout) == [rootfs, digest], again.stderr


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static is not installed")
def test_rootless_bundle_runs(account, home):
    with open(BUSYBOX, "rb") as fh:
        busybox = fh.read()
    layers = [[d("bin"), f("bin/busybox", busybox, mode=0o755), sym("bin/sh", "busybox"),
               sym("bin/id", "busybox"), sym("bin/cat", "busybox"), d("proc"), d("dev"), d("sys"),
               d("etc"), f("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\n"), f("etc/group", b"root:x:0:\n"),
               d("data", mode=0o555), f("data/note", b"from the image\n", mode=0o444),
               f("data/shadow", b"secret", mode=0o000)]]
    layout = oci_layout(os.path.join(home, "layout"), layers, Entrypoint=["/bin/sh", "-c"],
                        Cmd=["echo uid=$(id -u) $GREETING; cat /data/note"], Env=["GREETING=hi"])
    bundle = os.path.join(home, "work", "bundle")
    made = as_account(account, "-m", "clonekit", "bundle", "--rootless", layout, bundle, "--cache-dir",
                      os.path.join(home, "work", "cache"))
    assert made.returncode == 0, made.stderr
    with open(os.path.join(bundle, "config.json")) as fh:
        config = json.load(fh)
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": account.uid, "size": 1}]
    # copied as is: also a file its owner may not read (made readable for the copy, then put back)
    assert stat.S_IMODE(os.lstat(os.path.join(bundle, "rootfs/data/shadow")).st_mode) == 0
    with open(os.path.join(bundle, "rootfs/data/shadow"), "rb") as fh:
        assert fh.read() == b"secret"
    cached = os.path.join(home, "work", "cache")
    entry = next(n for n in os.listdir(cached) if not n.startswith("."))
    assert stat.S_IMODE(os.lstat(os.path.join(cached, entry, "rootfs/data/shadow")).st_mode) == 0
    cid = f"ck-img-rl-{uuid.uuid4().hex[:8]}"
    ran = as_account(account, "-m", "clonekit", "run", "--bundle", bundle, cid)
    as_account(account, "-m", "clonekit", "delete", "--force", cid)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "uid=0 hi\nfrom the image\n"


@pytest.mark.skipif(shutil.which("unshare") is None or os.geteuid() != 0, reason="needs root and "
                    "util-linux unshare")
def test_root_of_a_user_namespace_unpacks_as_the_unprivileged(tmp_path):
    # uid 0 of `unshare -r`: mknod is refused there and the layer's owners may be unmapped
    layout = oci_layout(str(tmp_path / "layout"), [[d("dev"), dev("dev/null", 1, 3), f("a", b"a", uid=1234)]])
    cache = str(tmp_path / "cache")
    done = subprocess.run(["unshare", "-r", sys.executable, "-c", UNPACK, layout, cache], capture_output=True,
                          text=True, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    rootfs, _ = json.loads(done.stdout)
    assert rootfs.endswith("-rootless/rootfs")
    assert not os.path.lexists(os.path.join(rootfs, "dev/null"))
    assert os.lstat(os.path.join(rootfs, "a")).st_uid == os.geteuid()
