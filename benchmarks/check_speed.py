"""How long ``softrelay check`` takes on large configurations (a target, not a timed test).

    .venv/bin/python benchmarks/check_speed.py [--points 1050 1400 10000 100000] [--runs 3]

Each size is a file of that many thermal points (three current signals each, on one simulated
bus, the signals before the points as a user writes them); the whole command is timed, the
interpreter's start included, and the median of ``--runs`` is printed with the verdict.

Targets (issue 14): the check of MAX_POINTS (1 050) points passes, and a check of 100 000
points is refused (more than the register map holds), each within 5 s. Exit status 1 when one
is missed.

Figures (2026-12-01, the 2-core AMD EPYC VM shared with other jobs, Python 3.11.7, PyYAML
6.0.4 with libyaml): before (main at 475868c): 1 050 points passed in 4.6 s, 1 400 passed (run
then failed) in 6.0 s, 10 000 passed in 61 s (710 MB), 100 000 not within 120 s. After
(medians of 3): 1 050 pass in 1.7 s; 1 400 are refused in 0.8 s, 10 000 in 1.5 s, 100 000
(39 MB) in 3.6 s (1.8 s on a quieter moment), about 0.5 s of each being the interpreter's
start. Of a 1 050-point check, loading takes 0.6 s in-process. The YAML had been
parsed twice in pure Python; it is now parsed once by libyaml with the cyclic collector paused,
and a file over the limits is refused from the events of its ``points:`` section up to the
first point too many.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 5.0


def configuration(points: int) -> str:
    lines = ["scan: {period: 0.01}", "state: {file: state.json}", "buses:",
             "  - {name: plant, kind: simulated}", "signals:"]
    for i in range(points):
        lines += [f"  - {{name: m{i}.i{p}, bus: plant, address: motor{i}.current.{p}, "
                  "poll: 0.02}" for p in "abc"]
    lines.append("points:")
    lines += [f"  - {{name: motor{i}, kind: thermal, currents: [m{i}.ia, m{i}.ib, m{i}.ic], "
              "settings: {i_b: 100.0, t_heat: 600.0, t_cool: 1800.0, "
              "input_mode: magnitudes}}" for i in range(points)]
    lines += ["outputs:", "  - {name: trip, pin: 17, flags: [motor0.trip]}", "plant: {}"]
    return "\n".join(lines) + "\n"


def timed_check(path: Path, env: dict[str, str]) -> tuple[float, int, str]:
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "softrelay", "check", str(path)],
                            capture_output=True, text=True, env=env, timeout=600)
    elapsed = time.perf_counter() - start
    last = (result.stderr.strip().splitlines() or result.stdout.splitlines() or [""])[0]
    return elapsed, result.returncode, last


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, nargs="+", default=[1050, 1400, 10_000, 100_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    from softrelay.modbus.regmap import MAX_POINTS

    missed = 0
    with tempfile.TemporaryDirectory() as tmp:
        env = os.environ | {"XDG_STATE_HOME": str(Path(tmp) / "state")}
        env.pop("STATE_DIRECTORY", None)
        for n in args.points:
            path = Path(tmp) / f"points-{n}.yaml"
            path.write_text(configuration(n))
            runs = [timed_check(path, env) for _ in range(args.runs)]
            median = statistics.median(r[0] for r in runs)
            code, first = runs[0][1], runs[0][2]
            wanted = 0 if n <= MAX_POINTS else 1
            ok = code == wanted and median <= TARGET_S
            missed += not ok
            print(f"{n:>7} points ({path.stat().st_size / 1e6:.1f} MB): median {median:.2f} s "
                  f"of {args.runs} (min {min(r[0] for r in runs):.2f}), exit {code} "
                  f"({'passed' if code == 0 else 'refused'}) "
                  f"{'met' if ok else 'MISSED'}: {first[:110]}")
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
