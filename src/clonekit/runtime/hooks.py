"""OCI hooks: each runs with the container's state JSON on stdin, within its timeout.

What runc gives them, found by experiment (runc 1.1, crun 1.8 alike for the runtime's hooks):

- a hook without ``env`` inherits the environment of whoever runs it: the runtime's own for
  prestart, createRuntime, poststart and poststop (Go's exec with a nil Env); for createContainer
  the container process's ``env``, and for startContainer the environment the program gets
  (that ``env`` plus HOME), since runc's init runs those with its environment already set.
  ``"env": []`` is an empty environment.
- the state's ``status``: "creating" for prestart, createRuntime and createContainer (``create``
  has not returned), "created" for startContainer (the program has not been executed), "running"
  for poststart (it has: crun's answer and the runtime-spec's meaning; runc 1.1 says "created")
  and "stopped" for poststop.
"""

from __future__ import annotations

import os
from _signal import SIGKILL  # `signal` would import enum

from .._jsonc import dumps
from ..errors import KernelError
from ..process import spawn  # at import time: the init runs hooks where imports may fail
from .plan import Hook, env_dict

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = ["HookFailed", "run_hook", "run_hooks"]


class HookFailed(KernelError):
    pass


def run_hooks(kind: str, hooks: tuple[Hook, ...], state: dict[str, object],
              inherited: Mapping[str, str] | None = None, cwd: str | None = None) -> None:
    """Run ``hooks`` in order; the first failure raises HookFailed (with the hook's output).
    A hook without ``env`` gets ``inherited`` (None: this process's environment); ``cwd``: where
    they run (None: this process's working directory)."""
    if not hooks:
        return
    payload = dumps(state).encode()
    for index, hook in enumerate(hooks):
        _run_one(f"{kind}[{index}]", hook, payload, inherited, cwd)


def run_hook(name: str, hook: Hook, state: dict[str, object]) -> None:
    """Run one hook, named ``name`` in messages (e.g. "poststop[1]"); without ``env`` it
    inherits this process's environment."""
    _run_one(name, hook, dumps(state).encode(), None, None)


def _run_one(name: str, hook: Hook, payload: bytes, inherited: Mapping[str, str] | None,
             cwd: str | None) -> None:
    env = inherited if hook.env is None else env_dict(hook.env)
    out = os.memfd_create("clonekit-hook-output", os.MFD_CLOEXEC)
    r, w = os.pipe()
    try:
        try:
            task = spawn(list(hook.args) or [hook.path], executable=hook.path, env=env, cwd=cwd,
                         stdin=r, stdout=out, stderr=out)
        except OSError as exc:
            raise HookFailed(exc.errno or 0, f"hook {name} {hook.path!r} cannot be run: {exc.strerror}",
                             step=f"{name} hook", filename=hook.path) from None
        os.close(r)
        r = -1
        try:
            os.write(w, payload)
        except BrokenPipeError:
            pass  # the hook need not read its stdin
        os.close(w)
        w = -1
        with task:
            try:
                code = task.wait(timeout=hook.timeout)
            except TimeoutError:
                task.send_signal(SIGKILL)
                task.wait()
                raise HookFailed(62, f"hook {name} {hook.path!r} timed out after {hook.timeout} s "
                                 "and was killed", step=f"{name} hook") from None  # ETIME
        if code != 0:
            os.lseek(out, 0, os.SEEK_SET)
            output = os.read(out, 4096).decode(errors="replace").strip()
            how = f"exit status {code}" if code > 0 else f"signal {-code}"
            raise HookFailed(0, f"hook {name} {hook.path!r} failed with {how}"
                             + (f": {output}" if output else ""), step=f"{name} hook")
    finally:
        for fd in (r, w, out):
            if fd >= 0:
                os.close(fd)

