"""Helpers of the rootfs tests: a throwaway child (mount namespace, optionally user namespace)
that sends back what it observed, and a mountinfo reader usable inside it."""

from __future__ import annotations

import json
import os
import signal
import traceback

import clonekit
from clonekit import CloneFlag as F

# tmpfs mounts the tests make are named so; a leak would show on the host with this source
TAG = "clonekit-rootfs-test"
# host uid/gid that is root in the rootless tests' user namespace
ROOTLESS_ID = 100000


def run_child(body, *, flags=F.NEWNS, userns_map: str | None = None, timeout: float = 30):
    """Run ``body()`` in a clone()d child and return what it returned (JSON round-trip).

    The child never returns into pytest.  If it raises, the child sends the exception's class
    name, errno, step, filename, hint and str, returned as ``{"raised": {...}}``.  With
    ``userns_map`` ("0 0 1"), the child gets a new user namespace whose uid/gid maps the parent
    writes before letting it go on."""
    r, w = os.pipe()
    go_r, go_w = os.pipe()
    if userns_map is not None:
        flags |= F.NEWUSER
    task = clonekit.clone(flags)
    if task == 0:
        code = 1
        try:
            os.close(r)
            os.close(go_w)
            os.read(go_r, 1)
            if userns_map is not None:  # as a runtime's init does once its maps are written
                os.setresgid(0, 0, 0)
                os.setresuid(0, 0, 0)
            try:
                result = body()
            except BaseException as exc:
                result = {"raised": {
                    "type": type(exc).__name__, "errno": getattr(exc, "errno", None),
                    "step": getattr(exc, "step", None), "filename": getattr(exc, "filename", None),
                    "hint": getattr(exc, "hint", None), "str": str(exc),
                    "traceback": traceback.format_exc(),
                }}
            os.write(w, json.dumps(result).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    os.close(go_r)
    with task:
        try:
            if userns_map is not None:
                with open(f"/proc/{task.pid}/setgroups", "w") as f:
                    f.write("deny")
                for kind in ("uid", "gid"):
                    with open(f"/proc/{task.pid}/{kind}_map", "w") as f:
                        f.write(userns_map)
            os.write(go_w, b"1")
        finally:
            os.close(go_w)
        with os.fdopen(r, "rb") as f:
            data = f.read()
        try:
            rc = task.wait(timeout=timeout)
        except BaseException:
            task.send_signal(signal.SIGKILL)
            task.wait()
            raise
    assert rc == 0, f"child failed (rc={rc}), sent {data!r}"
    return json.loads(data)


def mountinfo_by_point(lines: list[str] | None = None) -> dict[str, dict]:
    """The last mount on each mount point, as a dict of fields (for use inside children)."""
    if lines is None:
        with open("/proc/self/mountinfo") as f:
            lines = f.read().splitlines()
    out: dict[str, dict] = {}
    for line in lines:
        left, right = line.split(" - ")
        fields = left.split()
        rfields = right.split()
        out[fields[4]] = {
            "id": int(fields[0]), "parent": int(fields[1]), "root": fields[3],
            "options": fields[5].split(","), "optional": fields[6:],
            "fstype": rfields[0], "source": rfields[1],
            "super": rfields[2].split(",") if len(rfields) > 2 else [],
        }
    return out
