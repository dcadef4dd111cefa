"""Shared helpers for the benchmark scripts: interleaved rounds, medians, ratio tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def measure(cases: dict[str, Callable[[], object]], *, loops: int, rounds: int) -> dict[str, float]:
    """Median seconds per call of each case; rounds interleave the cases so drift hits all."""
    samples: dict[str, list[float]] = {name: [] for name in cases}
    for fn in cases.values():
        fn()  # warm up
    for _ in range(rounds):
        for name, fn in cases.items():
            start = time.perf_counter()
            for _ in range(loops):
                fn()
            samples[name].append((time.perf_counter() - start) / loops)
    return {name: statistics.median(s) for name, s in samples.items()}


def report(title: str, medians: dict[str, float], baseline: str,
           targets: dict[str, str] | None = None) -> None:
    """Print medians and each case's ratio to ``baseline`` (ratio > 1: slower than baseline)."""
    print(f"\n{title}")
    base = medians[baseline]
    for name, t in medians.items():
        print(f"  {name:<34} {t * 1e6:9.1f} us   {t / base:5.2f}x {baseline}")
    for line in (targets or {}).values():
        print(f"  target: {line}")
