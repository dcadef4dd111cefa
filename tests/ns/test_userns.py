"""in_user_namespace: runc's question, "is this the initial user namespace?", asked of real
namespaces made by util-linux unshare."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

from clonekit.ns.userns import in_user_namespace

UNSHARE = shutil.which("unshare")
ASK = "from clonekit.ns.userns import in_user_namespace as f; print(f())"


def asked_in(*unshare_args: str) -> str:
    done = subprocess.run([UNSHARE or "unshare", *unshare_args, sys.executable, "-c", ASK],
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        pytest.skip(f"unshare {' '.join(unshare_args)} failed here: {done.stderr.strip()}")
    return done.stdout.strip()


def test_the_initial_namespace_is_not_one():
    with open("/proc/self/uid_map") as f:
        assert f.read().split() == ["0", "0", "4294967295"]  # this test runs on the host
    assert in_user_namespace() is False


@pytest.mark.skipif(UNSHARE is None, reason="util-linux unshare is not installed")
def test_uid_0_of_a_new_user_namespace_is_in_one():
    # mapped to the caller's uid, as rootless podman maps its runtime: uid 0, but not the host's root
    assert asked_in("--user", "--map-root-user") == "True"


@pytest.mark.skipif(UNSHARE is None, reason="util-linux unshare is not installed")
def test_an_unmapped_user_namespace_is_one():
    assert asked_in("--user") == "True"  # uid_map still empty


def test_an_unreadable_map_counts_as_the_initial_namespace(tmp_path):
    assert in_user_namespace(str(tmp_path / "missing")) is False  # as runc
    (tmp_path / "map").write_text("         0       1000          1\n")
    assert in_user_namespace(str(tmp_path / "map")) is True
