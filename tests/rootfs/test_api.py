"""The public names of clonekit.rootfs load, and importing the package costs no submodule."""

from __future__ import annotations

import subprocess
import sys

import clonekit.rootfs as rootfs


def test_every_exported_name_resolves():
    for name in rootfs.__all__:
        assert getattr(rootfs, name) is not None, name
    assert rootfs.resolve_in_root is rootfs.open_in_root


def test_import_is_lazy():
    code = ("import sys, clonekit.rootfs; "
            "print(sorted(m for m in sys.modules if m.startswith('clonekit.rootfs.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
