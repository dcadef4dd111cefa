"""A root filesystem with no image download: Debian's static busybox and its applets.

Enough for a shell, coreutils-like tools and tests; what `scripts/demo`, the test suite and the
benchmarks run.  Needs /bin/busybox from the busybox-static package.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from ..errors import UsageError

__all__ = ["BUSYBOX", "build_rootfs"]

BUSYBOX = "/bin/busybox"
_DIRS = ("bin", "etc", "proc", "sys", "dev", "tmp", "root", "mnt", "run", "var")


def build_rootfs(root: str, busybox: str = BUSYBOX) -> str:
    """Lay out a busybox root filesystem at ``root`` (created if missing); returns ``root``."""
    if not os.path.isfile(busybox):
        raise UsageError(f"{busybox} not found: install Debian's busybox-static package "
                         "(a statically linked busybox runs in any rootfs)")
    for d in _DIRS:
        os.makedirs(os.path.join(root, d), exist_ok=True)
    target = os.path.join(root, "bin", "busybox")
    shutil.copy2(busybox, target)
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    for name in applets:
        link = os.path.join(root, "bin", name)
        if not os.path.lexists(link):
            os.symlink("busybox", link)
    _write(root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n")
    _write(root, "etc/group", "root:x:0:\nnogroup:x:65534:\n")
    os.chmod(os.path.join(root, "tmp"), 0o1777)
    return root


def _write(root: str, rel: str, text: str) -> None:
    with open(os.path.join(root, rel), "w") as f:
        f.write(text)
