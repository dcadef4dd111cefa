"""Suite-wide guard: the tests together leave no fd, child process or clonekit mount behind."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def _children() -> set[int]:
    me = str(os.getpid())
    kids = set()
    for task in os.listdir(f"/proc/{me}/task"):
        try:
            with open(f"/proc/{me}/task/{task}/children") as f:
                kids.update(int(p) for p in f.read().split())
        except FileNotFoundError:
            pass
    return kids


def _fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def _clonekit_mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if "clonekit" in line]


# top-level cgroups the tests place their groups under; shared by many tests, so no single
# container's cleanup can know it is the last one: the suite removes them when it ends
_TEST_CGROUP_TOPS = ("clonekit-test", "clonekit-test-cg", "clonekit-test-oracle")


def _remove_test_cgroup_tops() -> list[str]:
    left = []
    base = "/sys/fs/cgroup"
    for hierarchy in os.listdir(base) if os.path.isdir(base) else ():
        for top in _TEST_CGROUP_TOPS:
            path = os.path.join(base, hierarchy, top)
            if os.path.isdir(path):
                try:
                    os.rmdir(path)
                except OSError:
                    left.append(path)  # not empty: a test left a group inside
    return left


# the host's device nodes: a runtime (ours or a peer's) that chowns or chmods its stdio or a
# bound node in a container would change these for the whole machine
_HOST_NODES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom", "/dev/tty")


def _host_nodes() -> dict[str, tuple[int, int, int]]:
    out = {}
    for path in _HOST_NODES:
        try:
            st = os.stat(path)
        except OSError:
            continue
        out[path] = (st.st_uid, st.st_gid, st.st_mode)
    return out


@pytest.fixture(scope="session", autouse=True)
def no_leaks_at_the_end():
    fds, kids, mounts, nodes = _fds(), _children(), _clonekit_mounts(), _host_nodes()
    yield
    assert _host_nodes() == nodes, f"the suite changed the host's device nodes: {nodes} -> {_host_nodes()}"
    left = _remove_test_cgroup_tops()
    assert not left, f"the suite left cgroups behind: {left}"
    leaked_kids = _children() - kids
    assert not leaked_kids, f"the suite left child processes (zombies or running): {leaked_kids}"
    leaked = {fd: _describe(fd) for fd in _fds() - fds}
    leaked = {fd: what for fd, what in leaked.items() if what is not None}
    assert not leaked, f"the suite leaked fds: {leaked}"
    assert _clonekit_mounts() == mounts, "the suite left clonekit mounts behind"


def _describe(fd: int) -> str | None:
    try:
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return None  # closed meanwhile (e.g. the listing's own fd)


@pytest.fixture(scope="session")
def python_for_user():
    """``find(uid, gid)`` -> an interpreter that user can run with clonekit importable (from
    ``SRC`` on PYTHONPATH).  The test interpreter may live where the user cannot read (pyenv
    under /root, whose shared libpython such a user cannot load): then the system python of
    the same version.  Skips the test when there is none."""
    found: dict[tuple[int, int], str] = {}
    version = f"python{sys.version_info[0]}.{sys.version_info[1]}"

    def find(uid: int, gid: int) -> str:
        if (uid, gid) not in found:
            for candidate in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
                probe = subprocess.run(
                    ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", "env",
                     f"PYTHONPATH={SRC}", candidate, "-c", "import clonekit.process"],
                    capture_output=True, check=False, cwd="/")
                if probe.returncode == 0:
                    found[uid, gid] = candidate
                    break
            else:
                pytest.skip(f"no {version} that uid {uid} can run with clonekit importable")
        return found[uid, gid]

    return find
