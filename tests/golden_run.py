"""Regenerate the demo's recorded run (the golden files under ``tests/golden/``).

Run from the repository root: ``PYTHONPATH=runtime python tests/golden_run.py``. What it
writes, what it refuses and when to run it: ``tests/support/golden_run.py``, which holds the
code (the tests import it from there).
"""

from __future__ import annotations

from support.golden_run import main

if __name__ == "__main__":
    raise SystemExit(main())
