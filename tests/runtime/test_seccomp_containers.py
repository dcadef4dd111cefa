"""linux.seccomp in real containers: the filter seen from inside (/proc/self/status), a filtered
syscall's errno side by side with runc, podman's default profile, a NOTIFY agent that receives the
listener fd with the container process state and answers the container's syscalls, and the
errors for profiles that cannot work."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import platform
import select
import socket
import struct
import threading

import pytest
from runtime_helpers import RUNC, script, sections

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="profiles here name x86_64")

STATUS = "grep -E '^(Seccomp|Seccomp_filters|NoNewPrivs|Speculation_Store_Bypass):' /proc/self/status"


def deny_mkdir(err: int | None):
    def edit(config):
        rule: dict[str, object] = {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}
        if err is not None:
            rule["errnoRet"] = err
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}
    return edit


def podman_profile(config):
    from seccomp_helpers import podman_section

    config["linux"]["seccomp"] = podman_section()


@pytest.fixture(scope="module", autouse=True)
def _security_helpers_importable():
    import sys

    here = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "security")
    sys.path.insert(0, here)
    yield
    sys.path.remove(here)


@pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")
@pytest.mark.parametrize("err", [None, errno.EACCES, errno.EROFS])
def test_filtered_syscall_fails_as_under_runc(pair, err):
    results = pair.run(script(status=STATUS, mkdir="mkdir /tmp/d 2>&1; echo $?"), deny_mkdir(err))
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
    ours, runc = (sections(results[n].stdout) for n in ("clonekit", "runc"))
    assert ours == runc
    assert "Seccomp:\t2" in ours["status"] and "Seccomp_filters:\t1" in ours["status"]
    assert os.strerror(err or errno.EPERM) in ours["mkdir"]


@pytest.mark.skipif(RUNC is None, reason="runc is not installed (apt install runc)")
def test_podman_default_profile_like_runc(pair):
    probe = "mkdir /tmp/d && echo made; umount /proc 2>&1; unshare -U true 2>&1; echo $?"
    results = pair.run(script(status=STATUS, probe=probe), podman_profile)
    for name, result in results.items():
        assert result.returncode == 0, f"{name}: {result.stderr}"
    ours, runc = (sections(results[n].stdout) for n in ("clonekit", "runc"))
    assert ours == runc
    assert "made" in ours["probe"]


def test_without_no_new_privileges_the_filter_is_installed_before_capabilities_drop(bundles):
    def edits(config):
        deny_mkdir(errno.EACCES)(config)
        config["process"]["noNewPrivileges"] = False
        config["process"]["user"] = {"uid": 1000, "gid": 1000}

    cid, bundle, _ = bundles.new(script(status=STATUS, mkdir="mkdir /tmp/d 2>&1; echo $?"), edit=[edits])
    seen = sections(bundles.cli("run", "--bundle", bundle, cid).stdout)
    assert "Seccomp:\t2" in seen["status"] and "NoNewPrivs:\t0" in seen["status"]
    assert os.strerror(errno.EACCES) in seen["mkdir"]


# --- NOTIFY -----------------------------------------------------------------------------------------

SECCOMP_IOCTL_NOTIF_RECV = 0xC0502100
SECCOMP_IOCTL_NOTIF_SEND = 0xC0182101


class Agent:
    """A seccomp agent: takes one container process state with its listener fd, then fails every
    notified syscall with ``error`` until the container's processes are gone."""

    def __init__(self, path: str, error: int) -> None:
        self.path, self.error = path, error
        self.state: dict | None = None
        self.answered: list[int] = []
        self.failure: BaseException | None = None
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(1)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        try:
            conn, _ = self.server.accept()
            with conn:
                data, fds, _, _ = socket.recv_fds(conn, 1 << 16, 4)
                while chunk := conn.recv(1 << 16):
                    data += chunk
            self.state = json.loads(data)
            assert len(fds) == 1
            with open(fds[0], "rb", buffering=0, closefd=True) as listener:
                self._answer(listener.fileno())
        except BaseException as exc:  # reported by the test
            self.failure = exc

    def _answer(self, listener: int) -> None:
        poller = select.poll()
        poller.register(listener, select.POLLIN)
        while True:
            events = poller.poll(30_000)
            if not events or events[0][1] & (select.POLLHUP | select.POLLERR):
                return  # no task uses the filter any more
            buf = bytearray(80)
            try:
                fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, buf, True)
            except OSError as exc:
                if exc.errno == errno.ENOENT:  # the task went away meanwhile
                    continue
                raise
            ident, _pid, _flags, nr = struct.unpack_from("=QIIi", buf)
            self.answered.append(nr)
            resp = bytearray(struct.pack("=QqiI", ident, 0, -self.error, 0))
            try:
                fcntl.ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, resp, True)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=30)


@pytest.fixture
def agent(tmp_path):
    a = Agent(str(tmp_path / "agent.sock"), errno.EXDEV)
    try:
        yield a
    finally:
        a.close()


def test_notify_agent_gets_the_fd_and_the_state_and_answers(bundles, agent):
    def notify(config):
        config["linux"]["seccomp"] = {
            "defaultAction": "SCMP_ACT_ALLOW", "listenerPath": agent.path, "listenerMetadata": "hello",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}

    cid, bundle, _ = bundles.new(script(mkdir="mkdir /tmp/d 2>&1; echo $?", other="echo fine"),
                                 edit=[notify])
    seen = sections(bundles.cli("run", "--bundle", bundle, cid).stdout)
    agent.thread.join(timeout=30)
    assert agent.failure is None, repr(agent.failure)
    assert os.strerror(errno.EXDEV) in seen["mkdir"] and seen["other"].strip() == "fine"
    assert set(agent.answered) <= {83, 258} and agent.answered  # mkdir, mkdirat
    state = agent.state
    assert state is not None
    assert state["fds"] == ["seccompFd"] and state["metadata"] == "hello"
    assert state["ociVersion"] and state["pid"] == state["state"]["pid"] > 0
    assert state["state"]["id"] == cid and state["state"]["status"] == "creating"
    assert state["state"]["bundle"] == bundle


# --- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("section, words", [
    ({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "$.linux.seccomp.syscalls[0].action: SCMP_ACT_NOTIFY needs a seccomp agent"),
    ({"defaultAction": "SCMP_ACT_ALOW"}, "did you mean 'SCMP_ACT_ALLOW'"),
    ({"defaultAction": "SCMP_ACT_ALLOW",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}]},
     "$.linux.seccomp.syscalls[0].args[0].index: 6 is out of range"),
    ({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/nonexistent/agent.sock",
      "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]},
     "/nonexistent/agent.sock"),
])
def test_profiles_that_cannot_work_are_refused_with_the_reason(bundles, section, words):
    def edit(config):
        config["linux"]["seccomp"] = section

    cid, bundle, _ = bundles.new(["true"], edit=[edit])
    out = bundles.cli("run", "--bundle", bundle, cid, check=False)
    assert out.returncode == 1 and words in out.stderr and "Traceback" not in out.stderr, out.stderr
