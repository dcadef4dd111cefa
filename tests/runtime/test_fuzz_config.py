"""The config fuzzer of benchmarks/fuzz_config.py, small enough for CI: a few hundred mutated
config.json documents through ``plan_from_dict`` in-process (only clonekit.errors.Error may come
out), five through the real CLI (no traceback, one clear error line, nothing left behind), and a
config that never ends (/dev/zero) refused by size with bounded memory.  Fixed seeds."""

from __future__ import annotations

import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile

import pytest

SEED = 20261203
BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "benchmarks", "fuzz_config.py")


@pytest.fixture(scope="module")
def fz():
    spec = importlib.util.spec_from_file_location("clonekit_fuzz_config", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module          # dataclasses look their module up by name
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.modules.pop(spec.name, None)


def test_generator_is_reproducible(fz, rootfs):
    first = [json.dumps(doc) for _, doc, _ in fz.generate(SEED, 30, rootfs)]
    again = [json.dumps(doc) for _, doc, _ in fz.generate(SEED, 30, rootfs)]
    assert first == again
    assert len(set(first)) > 25


def test_in_process_only_clonekit_errors(fz, rootfs, tmp_path):
    """400 documents: a Plan or a clonekit Error (SpecError, UsageError, ...), nothing else."""
    failures = []
    outcomes: dict[str, int] = {}
    for i, doc, done in fz.generate(SEED, 400, rootfs):
        outcome, _, problem = fz.check_in_process(doc, str(tmp_path))
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        if problem:
            failures.append(f"case {i} {done}: {problem}")
    assert not failures, "\n".join(failures[:10])
    # the generator reaches many parts of the parser, and some documents stay valid
    assert len(outcomes) > 10 and outcomes.get("ok", 0) > 0, outcomes


@pytest.mark.skipif(os.geteuid() != 0, reason="creating containers with cgroups needs root")
def test_cli_create_delete(fz):
    """Five documents (valid and not) through `create` + `delete --force`, private --root."""
    res = fz.fuzz(SEED, 300, cli_every=50, cli_limit=5)
    assert res.cli_cases == 5, res
    assert not res.failures, fz.summary(res, SEED)


def _limit_memory() -> None:
    gib = 1 << 30
    resource.setrlimit(resource.RLIMIT_AS, (2 * gib, 2 * gib))


def test_config_dev_zero_is_refused_by_size(bundles):
    """--config /dev/zero never ends: one error line about the size, exit 1, no traceback,
    memory bounded (2 GiB of address space is plenty for a limit and far from enough for
    reading on), and within a timeout."""
    cid, bundle, _ = bundles.new(["true"])
    cmd = [sys.executable, "-m", "clonekit", "--root", bundles.root, "create", "--config", "/dev/zero",
           "--bundle", bundle, cid]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.run(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, timeout=30,
                              preexec_fn=_limit_memory)
        err.seek(0)
        stderr = err.read()
    assert "Traceback" not in stderr and "MemoryError" not in stderr, stderr
    assert proc.returncode == 1, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("clonekit create: "), stderr
    assert "large" in lines[0] or "size" in lines[0], stderr
    assert not os.path.isdir(os.path.join(bundles.root, cid))
