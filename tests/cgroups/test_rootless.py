"""Rootless placement, run as an unprivileged user (nobody, via setpriv).

Without delegation (this host: the caller's cgroup2 group is root-owned) placement is skipped
with one clear reason.  With a delegated cgroup2 subtree (made here the way systemd's
Delegate=yes does it: a group chowned to the user, the user's process inside it) the container's
group goes below it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from cg_helpers import leftovers, proc_cgroup

from clonekit.cgroups import Cgroup, Layout, detect

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")
NOBODY = 65534

_NO_DELEGATION = """
import json, os
from clonekit.cgroups import Cgroup, CgroupUnavailableError
cg = Cgroup.create("clonekit-test-cg-rootless", container_id="c", rootless=True)
out = {"enabled": cg.enabled, "reason": cg.reason, "paths": cg.paths, "fd": cg.v2_dir_fd()}
before = open("/proc/self/cgroup").read()
cg.add(os.getpid())  # a disabled group places nothing
assert open("/proc/self/cgroup").read() == before
cg.remove()
try:
    cg.pids()
except CgroupUnavailableError as exc:
    out["pids_error"] = str(exc)
print(json.dumps(out))
"""

_DELEGATED = """
import json, os, sys
import clonekit
from clonekit.cgroups import Cgroup
sys.stdin.readline()  # placed in the delegated group by the test
cg = Cgroup.create("x", container_id="c", rootless=True)
fd = cg.v2_dir_fd()
t = clonekit.spawn(["/bin/sleep", "100"], cgroup=fd)
os.close(fd)
cg.add(t.pid, v2=False)
with open(f"/proc/{t.pid}/cgroup") as f:
    seen = f.read()
out = {"enabled": cg.enabled, "path": cg.path, "paths": cg.paths, "notes": cg.notes, "seen": seen,
       "pids": cg.pids(), "pid": t.pid}
out["sent"] = cg.signal_all(9)
out["rc"] = t.wait()
t.close()
cg.remove()
out["exists"] = cg.exists()
print(json.dumps(out))
"""


@pytest.fixture
def as_nobody(python_for_user):
    """``as_nobody(code)``: the command that runs ``code`` in Python as uid/gid 65534."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to an unprivileged user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is not installed")
    python = python_for_user(NOBODY, NOBODY)

    def command(code: str) -> list[str]:
        return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--", "env",
                f"PYTHONPATH={SRC}", python, "-c", code]

    return command


def test_rootless_without_delegation_skips_placement_with_one_reason(as_nobody) -> None:
    cmd = as_nobody(_NO_DELEGATION)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["enabled"] is False and out["paths"] == {} and out["fd"] is None
    reason = out["reason"]
    assert f"uid {NOBODY}" in reason and "not writable" in reason and "Delegate=yes" in reason
    assert reason in out["pids_error"]
    assert done.stderr == "", "no warnings printed by the library: the runtime shows the reason once"
    assert not leftovers("clonekit/clonekit-test-cg-rootless")


def test_rootless_with_a_delegated_subtree(real: str, as_nobody) -> None:
    v2 = detect().v2
    if v2 is None:
        pytest.skip("no cgroup2 hierarchy mounted")
    cmd = as_nobody(_DELEGATED)
    outer = Cgroup.create(real, container_id="c", layout=Layout([v2]))
    helper = None
    try:
        deleg = os.path.join(outer.paths["unified"], "deleg")
        os.mkdir(deleg)
        for name in ("", "cgroup.procs", "cgroup.threads", "cgroup.subtree_control"):
            os.chown(os.path.join(deleg, name), NOBODY, NOBODY)
        helper = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, cwd="/")
        with open(os.path.join(deleg, "cgroup.procs"), "w") as f:
            f.write(str(helper.pid))
        assert proc_cgroup(helper.pid)[""] == f"{real}/deleg"
        stdout, stderr = helper.communicate("go\n", timeout=30)
        assert helper.returncode == 0, stderr
        out = json.loads(stdout)
        assert out["enabled"] is True
        assert out["path"] == f"{real}/deleg/clonekit/x"
        assert out["paths"] == {"unified": os.path.join(deleg, "clonekit", "x")}
        assert f"0::{real}/deleg/clonekit/x\n" in out["seen"]
        if detect().v1:
            assert any("v1" in note for note in out["notes"]), "hybrid: v1 skipped, and said so"
        assert out["pids"] == [out["pid"]] == out["sent"] and out["rc"] == -9
        assert out["exists"] is False
        assert not any(os.path.isdir(os.path.join(deleg, d)) for d in os.listdir(deleg)), \
            "the rootless remove() took the clonekit parent it made in the delegated group too"
    finally:
        if helper is not None and helper.poll() is None:
            helper.kill()
            helper.communicate()
        outer.remove()


_NOT_ROOTLESS = """
import json
from clonekit.cgroups import Cgroup, CgroupError
try:
    Cgroup.create("/clonekit-test-cg/unprivileged", container_id="c")
except CgroupError as exc:
    print(json.dumps({"errno": exc.errno, "filename": exc.filename, "text": str(exc)}))
"""


def test_unprivileged_without_rootless_gets_a_clear_error(as_nobody) -> None:
    done = subprocess.run(as_nobody(_NOT_ROOTLESS), capture_output=True, text=True, timeout=30, cwd="/")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["errno"] == 13 and out["filename"].endswith("/clonekit-test-cg")
    assert "EACCES" in out["text"] and "needs root" in out["text"] and out["filename"] in out["text"]
    assert not leftovers()
