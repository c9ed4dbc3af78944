"""What machine a measurement was made on, for the result files a benchmark writes.

A figure means nothing without the machine it came from: every result file the benchmarks and
``softrelay bench`` write carries ``describe()`` (processor, cores, memory, kernel, Python,
NumPy, the load while measuring), so a figure in a README can be checked against its file and
compared with a run elsewhere. Reads /proc and the standard library only; never fails.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("model name", "Model", "Hardware"):
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return None


def describe() -> dict:
    """The machine and the moment, as a JSON-ready dict."""
    try:
        import numpy

        numpy_version = numpy.__version__
    except ImportError:  # pragma: no cover (numpy is a dependency)
        numpy_version = None
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover
        load = None
    return {"cpu": _cpu_model(), "machine": platform.machine(), "cores": os.cpu_count(),
            "memory_gib": _memory_gib(), "kernel": platform.release(),
            "python": platform.python_version(), "numpy": numpy_version,
            "load_average": load,
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
