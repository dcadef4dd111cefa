"""Helpers of the namespace tests: run the CLI, run code in a throwaway child, find children."""

from __future__ import annotations

import contextlib
import marshal
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from waiting import wait_for as wait_for  # re-exported: the tests import it from here

ENV = dict(os.environ)
ENV.pop("PYTHONDONTWRITEBYTECODE", None)
CLONEKIT = [sys.executable, "-m", "clonekit"]


def run_cli(*args: str, user: Any = None, check: bool = False, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """``clonekit ARGS`` (as ``user``, a RootlessUser, when given); text output captured."""
    cmd = [*CLONEKIT, *args]
    if user is not None:
        cmd = user.wrap(cmd)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=ENV, cwd="/",
                          input=input, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} failed ({proc.returncode}): {proc.stderr}")
    return proc


def start(cmd: Sequence[str], user: Any = None) -> subprocess.Popen[str]:
    """A background process (``clonekit ...`` if cmd starts with "clonekit")."""
    cmd = list(cmd)
    if cmd[0] == "clonekit":
        cmd = [*CLONEKIT, *cmd[1:]]
    if user is not None:
        cmd = user.wrap(cmd)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            cwd="/", start_new_session=True)


def stop(proc: subprocess.Popen[str]) -> tuple[str, str]:
    """End a process started by :func:`start` and everything it started (its own process group,
    made by start_new_session), reap it, return its output."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    return proc.communicate(timeout=10)


def children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(x) for x in f.read().split()]
    except FileNotFoundError:
        pass
    return out


def descendant(pid: int, comm: str, timeout: float = 10.0) -> int:
    """The first descendant of ``pid`` whose comm is ``comm`` (waits for it to appear)."""

    def find() -> int | None:
        todo = [pid]
        while todo:
            p = todo.pop()
            for kid in children(p):
                try:
                    with open(f"/proc/{kid}/comm") as f:
                        if f.read().strip() == comm:
                            return kid
                except FileNotFoundError:
                    continue
                todo.append(kid)
        return None

    return wait_for(find, timeout, f"a {comm!r} below pid {pid}")


def in_child(fn: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Run ``fn`` in a forked child (so namespace changes do not touch the test process) and
    return its result; an exception in the child is raised here as (type name, message)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        try:
            result = ("ok", fn())
        except BaseException as exc:
            result = ("err", (type(exc).__name__, str(exc), getattr(exc, "errno", None)))
        try:
            data = marshal.dumps(result)
        except ValueError:
            data = marshal.dumps(("err", ("ValueError", f"unmarshallable result {result!r}", None)))
        os.write(w, data)
        os._exit(0)
    os.close(w)
    chunks = []
    deadline = time.monotonic() + timeout
    while chunk := os.read(r, 65536):
        chunks.append(chunk)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
    os.close(r)
    os.waitpid(pid, 0)
    status, value = marshal.loads(b"".join(chunks))
    if status == "err":
        raise ChildFailed(*value)
    return value


class ChildFailed(Exception):
    def __init__(self, name: str, message: str, err: int | None) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name
        self.message = message
        self.errno = err


def comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:  # gone (ENOENT, or ESRCH while reading)
        return ""


def ns_inode(pid: int | str, kind: str) -> int:
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def mounts_with(text: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line for line in f if text in line]
