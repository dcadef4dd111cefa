"""The runtime or the init SIGKILLed at a step of create/start: a later `delete --force` (or the
failed create itself) leaves nothing behind: no state dir, no cgroup, no process.

Each step is reached for real and held there by a hook that blocks on a fifo; the test waits
for the hook to say it is running (a file), never for a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from runtime_helpers import cgroup_dirs

from waiting import wait_for


def _blocking_hook(tmp, kind: str) -> dict:
    """A hook that records its pid and the state it was given, then blocks until killed."""
    d = str(tmp)
    os.mkfifo(f"{d}/go-{kind}")
    script = (f"cat > {d}/state-{kind}.tmp; mv {d}/state-{kind}.tmp {d}/state-{kind}; "
              f"echo $$ > {d}/pid-{kind}.tmp; mv {d}/pid-{kind}.tmp {d}/pid-{kind}; "
              f"read x < {d}/go-{kind}")
    return {"path": "/bin/sh", "args": ["sh", "-c", script]}


def _reached(tmp, kind: str) -> tuple[int, dict]:
    """Wait until the hook of ``kind`` runs; its pid and the state it received."""
    pid_file = os.path.join(str(tmp), f"pid-{kind}")
    wait_for(lambda: os.path.exists(pid_file), what=f"the {kind} hook to run", timeout=30)
    with open(pid_file) as f:
        pid = int(f.read())
    with open(os.path.join(str(tmp), f"state-{kind}")) as f:
        return pid, json.load(f)


def _kill(pid: int) -> None:
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    try:
        signal.pidfd_send_signal(fd, signal.SIGKILL)
    except ProcessLookupError:
        pass
    finally:
        os.close(fd)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")  # a zombie of someone else's: dead
    except (FileNotFoundError, ProcessLookupError):
        return True


def _runtime(bundles, *argv: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "clonekit", "--root", bundles.root, *argv],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _assert_clean_after_delete(bundles, cid: str, init_pid: int) -> None:
    deleted = bundles.cli("delete", "--force", cid, check=False)
    assert deleted.returncode == 0, deleted.stderr
    assert not os.path.exists(os.path.join(bundles.root, cid)), "state dir left"
    assert cgroup_dirs(cid) == [], "cgroup left"
    wait_for(lambda: _gone(init_pid), what="the init to be gone")


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_create_sigkilled_in_a_hook_then_delete_force_cleans_up(bundles, tmp_path, kind):
    hook_dir = tmp_path / "hooks"
    hook_dir.mkdir()

    def hooks(config):
        config["hooks"] = {kind: [_blocking_hook(hook_dir, kind)]}

    cid, bundle, _ = bundles.new(["true"], edit=[hooks])
    create = _runtime(bundles, "create", "--bundle", bundle, cid)
    try:
        hook_pid, state = _reached(hook_dir, kind)
        create.kill()
        create.wait()
        _kill(hook_pid)
        assert state["id"] == cid and state["pid"] > 0
        init_pid = state["pid"]
        assert not _gone(init_pid), "the init outlived the runtime so far (what delete must end)"
    finally:
        if create.poll() is None:
            create.kill()
            create.wait()
    _assert_clean_after_delete(bundles, cid, init_pid)


def test_init_sigkilled_in_a_create_hook_fails_create_and_leaves_nothing(bundles, tmp_path):
    hook_dir = tmp_path / "hooks"
    hook_dir.mkdir()

    def hooks(config):
        config["hooks"] = {"createRuntime": [_blocking_hook(hook_dir, "createRuntime")]}

    cid, bundle, _ = bundles.new(["true"], edit=[hooks])
    create = _runtime(bundles, "create", "--bundle", bundle, cid)
    try:
        hook_pid, state = _reached(hook_dir, "createRuntime")
        _kill(state["pid"])  # the init, while the runtime waits for the hook
        _kill(hook_pid)      # the hook fails: create fails, and must undo everything itself
        assert create.wait(timeout=30) != 0
    finally:
        if create.poll() is None:
            create.kill()
            create.wait()
    assert not os.path.exists(os.path.join(bundles.root, cid)), "state dir left by a failed create"
    assert cgroup_dirs(cid) == [], "cgroup left by a failed create"


def test_start_sigkilled_in_a_poststart_hook_then_delete_force_cleans_up(bundles, tmp_path):
    hook_dir = tmp_path / "hooks"
    hook_dir.mkdir()

    def hooks(config):
        config["hooks"] = {"poststart": [_blocking_hook(hook_dir, "poststart")]}

    cid, bundle, _ = bundles.new(["sleep", "100"], edit=[hooks])
    bundles.cli("create", "--bundle", bundle, cid)
    init_pid = json.loads(bundles.cli("state", cid).stdout)["pid"]
    start = _runtime(bundles, "start", cid)
    try:
        hook_pid, state = _reached(hook_dir, "poststart")
        start.kill()
        start.wait()
        _kill(hook_pid)
        assert state["pid"] == init_pid
    finally:
        if start.poll() is None:
            start.kill()
            start.wait()
    assert json.loads(bundles.cli("state", cid).stdout)["status"] == "running"
    _assert_clean_after_delete(bundles, cid, init_pid)


def test_an_init_killed_while_its_group_is_frozen_is_deleted(bundles):
    """SIGKILL does not end a frozen task: `delete --force` must thaw the group to finish it."""
    cid, bundle, _ = bundles.new(["sleep", "100"])
    bundles.cli("run", "--detach", "--bundle", bundle, cid)
    init_pid = json.loads(bundles.cli("state", cid).stdout)["pid"]
    bundles.cli("pause", cid)
    _kill(init_pid)
    assert not _gone(init_pid), "a frozen init cannot die before it is thawed"
    assert json.loads(bundles.cli("state", cid).stdout)["status"] == "paused"
    _assert_clean_after_delete(bundles, cid, init_pid)
