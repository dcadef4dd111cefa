"""The runtime in a user namespace other than the initial one (rootless podman runs it as uid 0
there): the default state dir is $XDG_RUNTIME_DIR/clonekit, chosen as runc chooses it, and a
state dir it cannot write is a one-line error.  Observed through the CLI in namespaces made by
util-linux unshare."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

UNSHARE = shutil.which("unshare")
pytestmark = pytest.mark.skipif(UNSHARE is None, reason="util-linux unshare is not installed")


def clonekit(*args: str, env: dict[str, str], userns: bool) -> subprocess.CompletedProcess[str]:
    prefix = [UNSHARE or "unshare", "--user", "--map-root-user"] if userns else []
    return subprocess.run([*prefix, sys.executable, "-m", "clonekit", *args], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.DEVNULL, env=env)


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("XDG_RUNTIME_DIR", "USER")}
    return env | extra


def test_uid_0_of_a_user_namespace_keeps_its_state_under_xdg_runtime_dir(tmp_path):
    done = clonekit("state", "nosuch", env=base_env(XDG_RUNTIME_DIR=str(tmp_path)), userns=True)
    assert done.returncode == 1
    assert f"(state dir {tmp_path}/clonekit)" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr


def test_user_root_and_the_host_keep_run_clonekit(tmp_path):
    in_ns = clonekit("state", "nosuch", env=base_env(XDG_RUNTIME_DIR=str(tmp_path), USER="root"), userns=True)
    host = clonekit("state", "nosuch", env=base_env(XDG_RUNTIME_DIR=str(tmp_path)), userns=False)
    for done in (in_ns, host):
        assert done.returncode == 1
        assert "(state dir /run/clonekit)" in done.stderr, done.stderr


def test_a_state_dir_that_is_not_ours_is_a_one_line_error(tmp_path, rootfs):
    import json

    from runtime_helpers import base_config

    bundle = tmp_path / "bundle"
    bundle.mkdir()
    config = base_config(rootfs, ["/bin/true"], "ck-notours")
    del config["linux"]["cgroupsPath"]
    (bundle / "config.json").write_text(json.dumps(config))
    root = tmp_path / "root"
    root.mkdir(mode=0o755)
    os.chown(root, 65534, 65534)  # another user's, unmapped in the namespace: not writable there
    done = clonekit("--root", str(root), "--cgroup-manager", "disabled", "create", "--bundle", str(bundle),
                    "ck-notours", env=base_env(), userns=True)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"cannot create the container's state directory {root}/ck-notours" in lines[0]
    assert os.listdir(root) == []
