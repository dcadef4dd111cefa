"""The per-container path stays off Python's costly modules.

`clonekit run` is started once per container, so every module it imports is paid for each
time: ``json`` alone costs ~9 ms here (it compiles regexes), ``enum`` ~2 ms, ``typing`` more.
This runs a real container under ``-X importtime`` and asserts which modules were never
imported -- a fact of the run, not a timing (the times live in benchmarks/)."""

from __future__ import annotations

import subprocess
import sys

# each would cost the container start-up milliseconds; the path has a cheaper way for each
AVOIDED = (
    "json", "re", "enum", "signal", "functools", "collections", "contextlib", "typing", "_socket",
    "dataclasses", "argparse", "socket", "shutil", "datetime", "inspect", "subprocess",
    "threading", "importlib", "warnings", "tempfile", "pathlib", "locale",
)
LAUNCHER = "import sys; from clonekit.cli import program; sys.argv[0] = 'clonekit'; program()"


def imported_by_run(bundles, args: list[str]) -> tuple[set[str], subprocess.CompletedProcess[str]]:
    cid, bundle, _ = bundles.new(args)
    cmd = [sys.executable, "-X", "importtime", "-c", LAUNCHER, "--root", bundles.root,
           "run", "--bundle", bundle, cid]
    proc = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    return modules, proc


def test_run_imports_none_of_the_costly_modules(bundles) -> None:
    modules, proc = imported_by_run(bundles, ["/bin/echo", "ran"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran\n"
    assert "clonekit.runtime.init" in modules and "clonekit.rootfs.prepare" in modules  # it measured
    assert sorted(m for m in AVOIDED if m in modules) == []


def test_the_installed_command_with_full_confinement_stays_lean(bundles) -> None:
    """The `clonekit` command pip generated (not our own launcher), on a bundle confined as
    `clonekit spec` writes it plus a seccomp filter: the confinement adds none of the modules."""
    import os

    from clonekit.runtime.defaults import default_config

    command = os.path.join(os.path.dirname(sys.executable), "clonekit")
    if not os.path.exists(command):
        import pytest

        pytest.skip("clonekit is not installed as a command next to this interpreter")
    spec = default_config(rootless=False)

    def confined(config):
        for key in ("capabilities", "rlimits"):
            config["process"][key] = spec["process"][key]  # type: ignore[index]
        config["linux"]["resources"] = spec["linux"]["resources"]  # type: ignore[index]
        config["linux"]["seccomp"] = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
            {"names": ["mknod", "mknodat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]}

    cid, bundle, _ = bundles.new(["/bin/echo", "ran"], edit=[confined])
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1"}
    proc = subprocess.run([command, "--root", bundles.root, "run", "--bundle", bundle, cid],
                          capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ran\n"
    modules = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
               if line.startswith("import time:") and "|" in line}
    assert "clonekit.security.confine" in modules and "clonekit.security.seccomp" in modules
    assert sorted(m for m in AVOIDED if m in modules) == []
