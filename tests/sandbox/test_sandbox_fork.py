"""A Sandbox made before the caller forks (a pre-forking server that made it at import): each
process gets network namespaces and cgroups of its own, never the other's."""

from __future__ import annotations

import os

import pytest
from sb_helpers import group_dirs

from waiting import wait_for

# forking a process with threads (the Sandbox's network-namespace helper) is what is tested
pytestmark = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


def _in_child(work) -> bytes:
    """``work()``'s bytes from a forked child (which ends with os._exit, whatever happens)."""
    r, w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            os.write(w, work())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        out = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return out


def test_a_forked_caller_never_shares_a_spare_network_namespace(make) -> None:
    sb = make(network="loopback")
    ns = ["/bin/readlink", "/proc/self/ns/net"]
    sb.run(ns)
    spares = sb._netns
    assert spares is not None
    wait_for(lambda: len(spares._fds) == 2, what="the spare network namespaces made")
    child = _in_child(lambda: sb.run(ns).stdout)
    parent = sb.run(ns).stdout
    assert child.startswith(b"net:[") and parent.startswith(b"net:[")
    assert child != parent, "two runs (one per process) in one network namespace"


def test_a_forked_callers_close_leaves_the_parents_groups(make, top) -> None:
    sb = make(memory="32m")
    assert sb.run(["/bin/true"]).returncode == 0
    groups = sorted(group_dirs(top))

    def close_in_child() -> bytes:
        sb.run(["/bin/true"])
        sb.close()
        return b"closed"

    assert _in_child(close_in_child) == b"closed"
    assert sorted(group_dirs(top)) == groups  # the child's own group went, the parent's stayed
    r = sb.run(["/bin/sh", "-c", "echo ok"])
    assert r.stdout == b"ok\n", r


def test_a_fork_during_a_run_closes_without_waiting_for_it(make, top) -> None:
    """The parent's runs in flight are not the child's: its close() does not wait for them."""
    import threading

    from sb_helpers import group_tasks

    sb = make(memory="32m")
    release_r, release_w = os.pipe2(os.O_CLOEXEC)
    runner = threading.Thread(target=lambda: sb.run(["/bin/cat"], stdin=release_r))
    runner.start()
    try:
        wait_for(lambda: group_tasks(top), what="the parent's run in its group")

        def close_in_child() -> bytes:
            closer = threading.Thread(target=sb.close)
            closer.start()
            closer.join(10)  # a bound for a failing close only
            return b"hung" if closer.is_alive() else b"closed"

        assert _in_child(close_in_child) == b"closed"
    finally:
        os.close(release_w)  # cat sees EOF: the parent's run ends
        runner.join()
        os.close(release_r)
