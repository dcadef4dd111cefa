"""``clonekit sandbox``: the command's exit status passed through (128+N for a signal, 127 for
a missing program), the output streamed, ``--json`` printing the Result."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "src")


def clonekit(*args: str, input: str = "",
             env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if args[0] == "sandbox":
        args = ("sandbox", "--cgroup-top", f"/clonekit-test/sandbox-cli-{os.getpid()}", *args[1:])
    return subprocess.run([sys.executable, "-m", "clonekit", *args], capture_output=True, text=True,
                          input=input, timeout=60, env={**os.environ, "PYTHONPATH": SRC, **(env or {})})


def test_status_and_output_pass_through() -> None:
    out = clonekit("sandbox", "--env", "WHO=you", "--", "sh", "-c", 'echo "hi $WHO from $(hostname)"; '
                   'echo err >&2; exit 3')
    assert (out.returncode, out.stdout, out.stderr) == (3, "hi you from sandbox\n", "err\n")


def test_a_signal_is_128_plus_n_and_the_timeout_says_so() -> None:
    out = clonekit("sandbox", "--timeout", "0.3", "--", "sleep", "10")
    assert out.returncode == 128 + 9
    assert "killed at the timeout" in out.stderr


def test_a_missing_program_is_127() -> None:
    out = clonekit("sandbox", "--", "no-such-program")
    assert out.returncode == 127 and "exec no-such-program: ENOENT" in out.stderr


def test_json_and_stdin(tmp_path) -> None:
    (tmp_path / "f").write_text("bound\n")
    out = clonekit("sandbox", "--json", "--memory", "32m", "--pids", "8", "--net", "loopback",
                   "--ro-bind", f"{tmp_path / 'f'}:/data/f", "--tmpfs", "/scratch:1m", "--chdir", "/scratch",
                   "--", "sh", "-c", "cat; cat /data/f; pwd", input="piped\n")
    result = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    assert result["stdout"] == "piped\nbound\n/scratch\n" and result["returncode"] == 0
    assert set(result) == {"stdout", "stderr", "returncode", "signal", "timed_out", "oom_killed",
                           "output_truncated", "wall_time", "cpu_time", "peak_memory"}


def test_the_memory_limit_kills(tmp_path) -> None:
    out = clonekit("sandbox", "--memory", "32m", "--", "python3", "-c", "x = bytearray(128 << 20)")
    assert out.returncode == 137 and "OOM-killed" in out.stderr


def test_an_image(tmp_path) -> None:
    pytest.importorskip("clonekit.images.unpacking")
    from test_image import busybox_layout

    layout = busybox_layout(str(tmp_path / "layout"), str(tmp_path), Env=["PATH=/bin"], WorkingDir="/srv",
                            Cmd=["/bin/sh", "-c", "pwd; exit 5"])
    env_cache = {"XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = clonekit("sandbox", "--image", layout, env=env_cache)
    assert (out.returncode, out.stdout) == (5, "/srv\n"), out.stderr
    out = clonekit("sandbox", "--image", layout, "--", "echo", "given", env=env_cache)
    assert (out.returncode, out.stdout) == (0, "given\n"), out.stderr
