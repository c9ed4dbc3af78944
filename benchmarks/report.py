"""Turn a pytest-benchmark JSON of test_core_speed.py into the README table and check targets.

Usage: python benchmarks/report.py RESULTS.json  (exit status 1 when a target is missed)
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict

TARGETS = (
    # (kind, n, what, limit, description)
    ("phasors", 100, "speedup", 20.0, "compiled >= 20x reference, N = 100"),
    ("phasors", 10000, "speedup", 5.0, "compiled >= 5x reference, N = 10 000"),
    ("samples32", 100, "speedup", 20.0, "compiled >= 20x reference, N = 100 (windows)"),
    ("samples32", 10000, "speedup", 5.0, "compiled >= 5x reference, N = 10 000 (windows)"),
    ("samples32", 10000, "floor_ratio", 3.0, "32-sample windows, N = 10 000: <= 3x floor"),
)


def load(path: str) -> dict:
    """{(kind, n): {role: median seconds}} plus the floor's bytes."""
    with open(path) as handle:
        data = json.load(handle)
    table: dict = defaultdict(dict)
    for bench in data["benchmarks"]:
        info = bench["extra_info"]
        key = (info["kind"], int(info["n"]))
        table[key][info["role"]] = bench["stats"]["median"]
        if info["role"] == "floor":
            table[key]["bytes"] = info["bytes"]
    return dict(table), data.get("machine_info", {})


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e6:,.1f} µs"


def main(path: str) -> int:
    table, machine = load(path)
    print(f"Machine: {machine.get('cpu', {}).get('brand_raw', '?')}, "
          f"Python {machine.get('python_version', '?')}\n")
    print("| workload | N | compiled | reference | speedup | floor (copy) | compiled / floor |"
          " per point |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for (kind, n), row in sorted(table.items()):
        c, r, f = row.get("compiled"), row.get("reference"), row.get("floor")
        if None in (c, r, f):
            continue
        print(f"| {kind} | {n:,} | {fmt_time(c)} | {fmt_time(r)} | {r / c:,.1f}x | "
              f"{fmt_time(f)} ({row['bytes'] / 1e6:.2f} MB) | {c / f:,.1f}x | "
              f"{c / n * 1e9:,.0f} ns |")
    print()
    missed = 0
    for kind, n, what, limit, description in TARGETS:
        row = table.get((kind, n), {})
        if what == "speedup":
            value, ok = row["reference"] / row["compiled"], None
            ok = value >= limit
        else:
            value = row["compiled"] / row["floor"]
            ok = value <= limit
        missed += not ok
        print(f"- {'met' if ok else 'MISSED'}: {description}: {value:.1f}x")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
