"""Regenerate the demo's register map (the golden files under ``tests/golden/``).

Run from the repository root: ``PYTHONPATH=runtime python tests/golden_map.py``. What it
writes, what it refuses and when to run it: ``tests/support/golden_map.py``, which holds the
code (the tests import it from there).
"""

from __future__ import annotations

from support.golden_map import regenerate

if __name__ == "__main__":
    raise SystemExit(regenerate())
