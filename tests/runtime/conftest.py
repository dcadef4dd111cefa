"""Fixtures for real containers: a busybox rootfs (Debian's busybox-static) and bundles."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import uuid

import pytest

from clonekit.runtime.busybox import BUSYBOX, build_rootfs


@pytest.fixture(scope="session")
def rootfs(tmp_path_factory):
    """A tiny root filesystem: /bin/busybox and its applets, /etc/passwd, empty mount points."""
    if not os.path.exists(BUSYBOX):
        pytest.skip("busybox-static is not installed (scripts/bootstrap installs it)")

    # outside pytest's 0700 temp dir: a user-namespaced container's root (an unprivileged host
    # uid) must be able to reach it, as with runc
    top = tempfile.mkdtemp(prefix="clonekit-rootfs-")
    os.chmod(top, 0o755)
    root = os.path.join(top, "rootfs")
    build_rootfs(root)
    yield root
    shutil.rmtree(top)


def base_config(rootfs: str, args: list[str], container_id: str) -> dict:
    """A config like `runc spec` writes, pointed at our rootfs and a clonekit-owned cgroup."""
    return {
        "ociVersion": "1.2.0",
        "process": {
            "terminal": False, "user": {"uid": 0, "gid": 0}, "args": args,
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/", "noNewPrivileges": True,
        },
        "root": {"path": rootfs, "readonly": True},
        "hostname": "clonekit-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]},
        ],
        "linux": {
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")],
            "cgroupsPath": f"/clonekit-test/{container_id}",
            "maskedPaths": ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/sys/firmware",
                            "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"],
        },
    }


class Bundles:
    """Writes bundles, runs the clonekit CLI against a private --root, cleans up what it made."""

    def __init__(self, tmp_path, rootfs: str) -> None:
        self.tmp = tmp_path
        self.rootfs = rootfs
        self.root = str(tmp_path / "state")
        self.ids: list[str] = []

    def new(self, args: list[str], **edits) -> tuple[str, str, dict]:
        cid = f"ck-{uuid.uuid4().hex[:10]}"
        self.ids.append(cid)
        bundle = self.tmp / cid
        bundle.mkdir()
        config = base_config(self.rootfs, args, cid)
        for edit in edits.get("edit", ()):
            edit(config)
        (bundle / "config.json").write_text(json.dumps(config))
        return cid, str(bundle), config

    def cli(self, *argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        """Run the CLI.  Output goes to files, not pipes: a created container keeps the
        runtime's stdio as its own (as with runc), so a pipe would not see EOF until it ends."""
        cmd = [sys.executable, "-m", "clonekit", "--root", self.root, *argv]
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=timeout)
            out.seek(0)
            err.seek(0)
            result = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr}")
        return result

    def cleanup(self) -> None:
        for cid in self.ids:
            self.cli("delete", "--force", cid, check=False)


@pytest.fixture(scope="module")
def user():
    """The suite's unprivileged account (runtime_helpers.make_unprivileged), made for a module
    and removed after it; skipped with the reason where it cannot be made."""
    from runtime_helpers import make_unprivileged  # it loads this file: imported when used

    made = make_unprivileged()
    got = next(made)
    try:
        if isinstance(got, str):
            pytest.skip(got)
        yield got
    finally:
        for _ in made:
            pass


@pytest.fixture
def pair(tmp_path, rootfs):
    """The same bundle under clonekit and runc (runtime_helpers.SideBySide); cleans up both."""
    from runtime_helpers import SideBySide  # it loads this file: imported when used, not at load

    both = SideBySide(tmp_path, rootfs)
    try:
        yield both
    finally:
        left = both.cleanup()
    assert not left, f"clonekit left cgroups behind: {left}"


@pytest.fixture
def bundles(tmp_path, rootfs):
    b = Bundles(tmp_path, rootfs)
    try:
        yield b
    finally:
        b.cleanup()
        left = [f"{top}/clonekit-test/{cid}" for cid in b.ids for top in _hierarchies()
                if os.path.exists(f"{top}/clonekit-test/{cid}")]
        assert not left, f"cgroups left behind: {left}"
        assert not os.listdir(b.root) if os.path.isdir(b.root) else True, "state dirs left behind"


def _hierarchies() -> list[str]:
    base = "/sys/fs/cgroup"
    return [os.path.join(base, d) for d in os.listdir(base) if os.path.isdir(os.path.join(base, d))]
