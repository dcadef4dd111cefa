"""The same hostile programs, run by an unprivileged user: the Sandbox makes a user namespace
(the child writes its own single-id map), everything else as for root; the limits are rlimits
there (no cgroup is delegated on this host), said in one notice."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import tempfile

import pytest
from test_sandbox_hostile import FORK_UNTIL_REFUSED, SYSCALLS

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")

CHECKS = r"""
import json, os, sys
from clonekit.sandbox import Sandbox
out = {}
def last(r):
    return json.loads(r.stdout.decode().strip().splitlines()[-1])
with Sandbox(network="none") as sb:
    out["ids"] = sb.run(["/bin/sh", "-c", "id -u; id -g; cat /proc/self/uid_map"]).stdout.decode().split()
    out["syscalls"] = last(sb.run(["python3", "-c", SYSCALLS]))
    out["writes"] = sb.run(["/bin/sh", "-c", "for p in /f /etc/passwd /usr/x; do (: > $p) 2>/dev/null "
                            "|| echo no; done; : > /tmp/ok && echo tmp"]).stdout.decode().split()
    out["net"] = last(sb.run(["python3", "-c", "import socket, json\ntry:\n    "
                              "socket.create_connection(('192.0.2.1', 53), timeout=1)\nexcept OSError as e:\n"
                              "    print(json.dumps(e.errno))"]))
    out["status"] = sb.run(["grep", "-E", "^(CapEff|CapBnd|NoNewPrivs|Seccomp):", "/proc/self/status"]
                           ).stdout.decode().split()
with Sandbox(timeout=0.5) as sb:
    r = sb.run(["/bin/sh", "-c", "while :; do :; done"])
    out["loop"] = [r.timed_out, r.signal]
with Sandbox(output_limit=100) as sb:
    r = sb.run(["yes"])
    out["flood"] = [r.output_truncated, len(r.stdout)]
with Sandbox(pids=12, memory="128m") as sb:
    out["notices"] = sb.notices
    out["bomb"] = last(sb.run(["python3", "-c", FORK_UNTIL_REFUSED]))
    r = sb.run(["python3", "-c", "x = bytearray(512 << 20)"])
    out["hog"] = [r.returncode, r.stderr.decode().strip().splitlines()[-1]]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def seen(user, python_for_user) -> dict[str, object]:
    python = python_for_user(user.uid, user.gid)
    code = f"SYSCALLS = {SYSCALLS!r}\nFORK_UNTIL_REFUSED = {FORK_UNTIL_REFUSED!r}\n{CHECKS}"
    out = subprocess.run(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
                          "--", "env", f"PYTHONPATH={SRC}", python, "-c", code],
                         capture_output=True, text=True, timeout=120, cwd="/")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["stderr"] = out.stderr
    return result


def test_root_of_its_own_user_namespace(seen, user) -> None:
    assert seen["ids"] == ["0", "0", "0", str(user.uid), "1"]
    status = seen["status"]
    assert status == ["CapEff:", "0000000000000000", "CapBnd:", "0000000000000000", "NoNewPrivs:", "1",
                      "Seccomp:", "2"]


def test_seccomp_and_writes_and_network(seen) -> None:
    assert seen["syscalls"] == {"ptrace": errno.EPERM, "mount": errno.EPERM, "unshare_user": errno.EPERM,
                                "unshare_net": errno.EPERM, "setns": errno.EPERM, "keyctl": errno.EPERM,
                                "clone3": errno.ENOSYS, "chroot": errno.EPERM}
    assert seen["writes"] == ["no", "no", "no", "tmp"]
    assert seen["net"] == errno.ENETUNREACH


def test_hostile_programs_are_contained(seen) -> None:
    assert seen["loop"] == [True, 9]
    assert seen["flood"] == [True, 100]
    bomb = seen["bomb"]
    assert isinstance(bomb, dict) and bomb["errno"] == errno.EAGAIN and bomb["made"] < 12
    assert seen["hog"] == [1, "MemoryError"]  # RLIMIT_AS: the allocation fails


def test_one_notice_names_how_the_limits_apply(seen) -> None:
    notices = seen["notices"]
    assert isinstance(notices, list) and len(notices) == 1
    assert "RLIMIT_NPROC" in notices[0] and "RLIMIT_AS" in notices[0]
    assert str(seen["stderr"]).count("clonekit: notice: rootless") == 1


def test_an_image_under_an_overlay(user, python_for_user) -> None:
    """Rootless, the image is unpacked into the user's cache and run under an overlay made in
    the user namespace (userxattr)."""
    pytest.importorskip("clonekit.images.unpacking")
    from test_image import busybox_layout

    work = tempfile.mkdtemp(prefix="clonekit-sb-image-")
    try:
        os.chmod(work, 0o755)
        layout = busybox_layout(os.path.join(work, "layout"), os.path.join(work, "build"),
                                Env=["PATH=/bin"], WorkingDir="/srv", Cmd=["/bin/sh", "-c", "id -u; pwd"])
        for d, _, files in os.walk(work):
            os.chmod(d, 0o755)
            for name in files:
                os.chmod(os.path.join(d, name), 0o644)
        cache = os.path.join(work, "cache")
        os.mkdir(cache)
        os.chown(cache, user.uid, user.gid)
        code = ("from clonekit.sandbox import Sandbox\n"
                f"with Sandbox(image={layout!r}) as sb:\n"
                "    r = sb.run(); print(r.stdout.decode(), end='')\n"
                "    r = sb.run(['/bin/sh', '-c', 'echo x > /bin/new && cat /bin/new'])\n"
                "    print(r.stdout.decode())")
        out = subprocess.run(["setpriv", f"--reuid={user.uid}", f"--regid={user.gid}", "--clear-groups",
                              "--", "env", f"PYTHONPATH={SRC}", f"XDG_CACHE_HOME={cache}",
                              python_for_user(user.uid, user.gid), "-c", code],
                             capture_output=True, text=True, timeout=120, cwd="/")
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == ["0", "/srv", "x"]
    finally:
        shutil.rmtree(work)
