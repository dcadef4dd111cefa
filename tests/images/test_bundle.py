"""A real image made with podman (a busybox rootfs imported with an image config, in a podman
with its own --root/--runroot), saved as docker-archive, oci-archive and an OCI layout
directory, turned into a bundle by ``clonekit bundle`` and run by ``clonekit run``; runc runs
the same bundle side by side and prints the same.  The bundle's rootfs is a copy: no inode
shared with the cache."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from clonekit.runtime.busybox import BUSYBOX, build_rootfs

PODMAN = shutil.which("podman")
RUNC = shutil.which("runc")
IMAGE = "localhost/clonekit-images-test:latest"
SCRIPT = 'echo "$GREETING from $(pwd) as $(id -u):$(id -g) groups $(id -G)"; ls /srv; cat /srv/hard'
CHANGES = (f"CMD {json.dumps(['-c', SCRIPT])}", 'ENTRYPOINT ["/bin/sh"]', "ENV GREETING=hello",
           "WORKDIR /srv", "USER app")
EXPECTED = "hello from /srv as 1000:1000 groups 1000 2000\nfile\nhard\nsame inode\n"

pytestmark = [
    pytest.mark.skipif(PODMAN is None, reason="podman is not installed (apt install podman)"),
    pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="running the bundle needs root (the rootless case is "
                                                 "test_rootless.py)"),
]


def run(cmd: list[str], *, cwd: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Output in files: a container keeps the runtime's stdio, a pipe might not see EOF."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())


@pytest.fixture(scope="module")
def archives() -> Iterator[dict[str, str]]:
    """docker-archive, oci-archive and oci-dir (a layout directory) of the image, saved by a
    podman with private storage."""
    top = tempfile.mkdtemp(prefix="clonekit-images-podman-")
    podman = [PODMAN or "podman", "--root", f"{top}/storage", "--runroot", f"{top}/run",
              "--storage-driver", "vfs", "--events-backend", "none"]
    try:
        rootfs = build_rootfs(f"{top}/rootfs")
        with open(f"{rootfs}/etc/passwd", "a") as passwd:
            passwd.write("app:x:1000:1000:app:/srv:/bin/sh\n")
        with open(f"{rootfs}/etc/group", "a") as group:
            group.write("app:x:1000:\nextra:x:2000:app,other\n")
        os.makedirs(f"{rootfs}/srv")
        Path(rootfs, "srv/file").write_text("same inode\n")
        os.link(f"{rootfs}/srv/file", f"{rootfs}/srv/hard")
        subprocess.run(["tar", "-C", rootfs, "-cf", f"{top}/rootfs.tar", "."], check=True)
        changes = [arg for change in CHANGES for arg in ("--change", change)]
        done = run([*podman, "import", *changes, f"{top}/rootfs.tar", IMAGE])
        assert done.returncode == 0, done.stderr
        found = {}
        for fmt in ("docker-archive", "oci-archive", "oci-dir"):
            path = f"{top}/{fmt}" + (".tar" if fmt.endswith("archive") else "")
            done = run([*podman, "save", "--format", fmt, "-o", path, IMAGE])
            assert done.returncode == 0, done.stderr
            found[fmt] = path
        yield found
    finally:
        run([*podman, "system", "reset", "--force"])
        shutil.rmtree(top, ignore_errors=True)


def _cgroup_cleanup(cid: str) -> None:
    base = "/sys/fs/cgroup"
    for hierarchy in os.listdir(base):
        path = os.path.join(base, hierarchy, "clonekit-test", cid)
        if os.path.isdir(path) and not os.path.islink(os.path.join(base, hierarchy)):
            os.rmdir(path)


def _run_bundle(runtime: list[str], state: str, bundle: str) -> subprocess.CompletedProcess[str]:
    cid = f"ck-img-{uuid.uuid4().hex[:8]}"
    config_path = os.path.join(bundle, "config.json")
    with open(config_path) as fh:
        config = json.load(fh)
    config["linux"]["cgroupsPath"] = f"/clonekit-test/{cid}"  # a group the suite owns and removes
    with open(config_path, "w") as fh:
        json.dump(config, fh)
    try:
        return run([*runtime, "--root", state, "run", "--bundle", bundle, cid])
    finally:
        run([*runtime, "--root", state, "delete", "--force", cid])
        _cgroup_cleanup(cid)


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "oci-dir"])
def test_bundle_from_podman_archive_runs_under_clonekit_and_runc(archives, tmp_path, fmt):
    bundle = str(tmp_path / "bundle")
    cache = str(tmp_path / "cache")
    done = run([sys.executable, "-m", "clonekit", "bundle", archives[fmt], bundle,
                "--ref", "clonekit-images-test", "--cache-dir", cache])
    assert done.returncode == 0 and done.stdout == "" and done.stderr == "", done.stderr
    with open(os.path.join(bundle, "config.json")) as fh:
        config = json.load(fh)
    process = config["process"]
    assert process["args"] == ["/bin/sh", "-c", SCRIPT]
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [2000]}
    assert process["cwd"] == "/srv" and "GREETING=hello" in process["env"]
    assert config["root"] == {"path": "rootfs", "readonly": False}
    # a copy: hardlinks inside kept, no inode shared with the cache
    entry = next(p for p in Path(cache).iterdir() if not p.name.startswith("."))
    copied, cached = Path(bundle, "rootfs/srv/file").stat(), (entry / "rootfs/srv/file").stat()
    assert copied.st_ino != cached.st_ino and copied.st_nlink == cached.st_nlink == 2
    assert Path(bundle, "rootfs/srv/hard").stat().st_ino == copied.st_ino

    ours = _run_bundle([sys.executable, "-m", "clonekit"], str(tmp_path / "state"), bundle)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout == EXPECTED
    if RUNC is not None:
        theirs = _run_bundle([RUNC], str(tmp_path / "runc-state"), bundle)
        assert theirs.returncode == 0, theirs.stderr
        assert theirs.stdout == ours.stdout
    assert (entry / "rootfs/srv/file").stat().st_nlink == 2  # the cache is as it was


def test_bundle_refuses_an_existing_bundle_and_names_the_choice(archives, tmp_path):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    (bundle / "config.json").write_text("{}")
    done = run([sys.executable, "-m", "clonekit", "bundle", archives["oci-archive"], str(bundle),
                "--cache-dir", str(tmp_path / "cache")])
    assert done.returncode == 1
    assert done.stderr == (f"clonekit bundle: {bundle}/config.json exists: write the bundle into a new "
                           "or empty directory\n")
    done = run([sys.executable, "-m", "clonekit", "bundle", archives["oci-archive"], str(tmp_path / "b2"),
                "--ref", "other", "--cache-dir", str(tmp_path / "cache")])
    assert done.returncode == 1 and f"no image named 'other'; it holds {IMAGE}" in done.stderr
    assert not (tmp_path / "b2").exists()
