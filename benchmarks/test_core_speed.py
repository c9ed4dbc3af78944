"""The compiled core against the NumPy reference, and against a memory-bandwidth floor.

Run with ``make bench`` (or ``pytest benchmarks --benchmark-only``); ``benchmarks/report.py``
turns the JSON into the table of benchmarks/README.md and checks the targets:
compiled >= 20x the reference at N = 100 and >= 5x at N = 10 000; with 32-sample windows at
N = 10 000, no more than 3x the floor (copying the same input bytes with NumPy, same run).
"""

from __future__ import annotations

import numpy as np
import pytest

from workloads import WORKLOADS, Workload

SIZES = (10, 100, 1000, 10000)


def rounds_for(n: int, implementation: str) -> int:
    budget = 300_000 if implementation == "compiled" else 30_000
    return max(15, min(3000, budget // n))


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", WORKLOADS)
@pytest.mark.parametrize("implementation", ["compiled", "reference"])
def test_scan(benchmark, kind, n, implementation):
    work = Workload(kind, n, implementation)
    work.core.scan(*work.advance()[0])  # warm: filters initialised, pages touched
    benchmark.group = f"{kind} N={n}"
    benchmark.extra_info.update(kind=kind, n=n, role=implementation)
    benchmark.pedantic(work.core.scan, setup=work.advance, rounds=rounds_for(n, implementation),
                       iterations=1, warmup_rounds=3)
    assert work.core.implementation == implementation


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("kind", WORKLOADS)
def test_bandwidth_floor(benchmark, kind, n):
    """Copying the bytes a scan reads: what no implementation can beat."""
    src = Workload(kind, n, "compiled").input_bytes()
    dst = np.empty_like(src)
    benchmark.group = f"{kind} N={n}"
    benchmark.extra_info.update(kind=kind, n=n, role="floor", bytes=int(src.nbytes))
    benchmark.pedantic(np.copyto, args=(dst, src), rounds=rounds_for(n, "compiled"),
                       iterations=1, warmup_rounds=3)
