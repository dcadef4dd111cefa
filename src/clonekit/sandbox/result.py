"""What a run reports, and the parent's side of a run: feed stdin, collect stdout and stderr
up to the output limit, kill at the timeout, reap."""

from __future__ import annotations

import os
import select
import time

from .._record import record

__all__ = ["Result", "collect"]

SIGKILL = 9
_CHUNK = 65536


@record(frozen=True)
class Result:
    """One run.  ``returncode`` as ``subprocess`` gives it (``-N`` for signal N; the CLI exits
    with ``128 + N`` as a shell does); ``signal`` the signal that ended the command or None.
    ``timed_out``: killed at the timeout; ``oom_killed``: the memory limit's OOM killer acted in
    the run's group; ``output_truncated``: stdout or stderr went past ``output_limit`` (each
    holds the first ``output_limit`` bytes; the run was killed then).  ``wall_time`` from the
    clone to the reap, ``cpu_time`` user+system seconds of every process of the run, and
    ``peak_memory`` the group's peak in bytes since the run began (page cache an earlier run of
    the pooled group left charged counts too), or the command's own peak RSS without a group."""

    stdout: bytes
    stderr: bytes
    returncode: int
    signal: int | None
    timed_out: bool
    oom_killed: bool
    output_truncated: bool
    wall_time: float
    cpu_time: float
    peak_memory: int | None

    def to_dict(self) -> dict[str, object]:
        return {"stdout": self.stdout.decode(errors="replace"),
                "stderr": self.stderr.decode(errors="replace"), "returncode": self.returncode,
                "signal": self.signal, "timed_out": self.timed_out, "oom_killed": self.oom_killed,
                "output_truncated": self.output_truncated, "wall_time": self.wall_time,
                "cpu_time": self.cpu_time, "peak_memory": self.peak_memory}


def collect(pidfd: int, stdin: int | None, stdout: int | None, stderr: int | None, data: bytes,
            deadline: float | None, limit: int | None) -> tuple[bytes, bytes, bool, bool]:
    """Run the pipes until the outputs end and the process (pid 1 of the run's PID namespace:
    its end is the end of all) has exited; returns ``(stdout, stderr, timed_out, truncated)``.
    A None output is not captured (the child writes to the caller's fd).  Closes the pipe fds."""
    pipes = [fd for fd in (stdout, stderr) if fd is not None]
    outputs: dict[int, list[bytes]] = {fd: [] for fd in pipes}
    sizes = dict.fromkeys(pipes, 0)
    killed = timed_out = truncated = False
    poller = select.poll()
    for fd in pipes:
        poller.register(fd, select.POLLIN)
    poller.register(pidfd, select.POLLIN)
    offset = 0
    if stdin is not None:
        if data:
            os.set_blocking(stdin, False)
            poller.register(stdin, select.POLLOUT)
        else:
            os.close(stdin)
            stdin = None
    open_outputs = len(pipes)
    exited = False
    try:
        while open_outputs or not exited:
            wait_ms = None
            if exited:
                # every process of the run is gone (pid 1's exit waits for them): what they
                # wrote is in the pipes; a write end still open is one the command passed out
                # (SCM_RIGHTS), which would hold the run for as long as its holder likes
                wait_ms = 0
            elif deadline is not None and not killed:
                wait_ms = max(0, int((deadline - time.monotonic()) * 1000) + 1)
            events = poller.poll(wait_ms)
            if exited and not events:
                break
            if deadline is not None and not killed and not exited and time.monotonic() >= deadline:
                _kill(pidfd)
                killed = timed_out = True
            for fd, event in events:
                if fd == pidfd:
                    exited = True
                    poller.unregister(pidfd)
                elif fd == stdin:
                    try:
                        offset += os.write(stdin, data[offset:offset + _CHUNK])
                    except BrokenPipeError:
                        offset = len(data)
                    if offset >= len(data) or event & (select.POLLERR | select.POLLHUP):
                        poller.unregister(stdin)
                        os.close(stdin)
                        stdin = None
                else:
                    chunk = os.read(fd, _CHUNK) if event & (select.POLLIN | select.POLLHUP) else b""
                    if not chunk:
                        poller.unregister(fd)
                        open_outputs -= 1
                        continue
                    room = limit - sizes[fd] if limit is not None else len(chunk)
                    if len(chunk) > room:
                        chunk = chunk[:room]
                        truncated = True
                        if not killed:
                            _kill(pidfd)
                            killed = True
                    outputs[fd].append(chunk)
                    sizes[fd] += len(chunk)
    finally:
        for end in (stdin, stdout, stderr):
            if end is not None:
                os.close(end)
    return (b"".join(outputs[stdout]) if stdout is not None else b"",
            b"".join(outputs[stderr]) if stderr is not None else b"", timed_out, truncated)


def _kill(pidfd: int) -> None:
    import signal

    try:
        signal.pidfd_send_signal(pidfd, SIGKILL)
    except ProcessLookupError:
        pass
