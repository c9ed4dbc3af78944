"""Regenerate the demo's metrics and MQTT document shapes (golden files in ``tests/golden/``).

Run from the repository root: ``PYTHONPATH=runtime python tests/golden_telemetry.py``. What it
writes, what it refuses and when to run it: ``tests/support/golden_telemetry.py``, which holds the
code (the tests import it from there).
"""

from __future__ import annotations

from support.golden_telemetry import main

if __name__ == "__main__":
    raise SystemExit(main())
