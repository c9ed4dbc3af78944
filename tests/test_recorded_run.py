"""The demo plant, run on a simulated clock, records the committed events and ends in the
committed state (see ``tests/golden_run.py`` for how the run is made deterministic and for the
one way to change the file)."""

from __future__ import annotations

import json

import pytest

from support.golden_run import GOLDEN, REGENERATE, record

pytestmark = pytest.mark.e2e  #: slow, end to end: `make test` runs it, `make test-fast` not


def test_the_demo_run_records_the_same_events_and_ends_in_the_same_state():
    golden = json.loads(GOLDEN.read_text())
    run = json.loads(json.dumps(record(golden["seconds"])))  # as the file holds it
    want, got = golden["events"], run["events"]
    for i, (w, g) in enumerate(zip(want, got, strict=False)):
        assert g == w, f"event {i}: {g} where the golden run has {w}: if meant, {REGENERATE}"
    n = min(len(got), len(want))
    assert len(got) == len(want), (f"{len(got)} events where the golden run has {len(want)} "
                                   f"(extra: {got[n:]}, missing: {want[n:]}): if meant, "
                                   f"{REGENERATE}")
    assert run["trace"] == golden["trace"], f"theta or rise moved: if meant, {REGENERATE}"
    for key, value in golden["final"].items():
        assert run["final"][key] == value, f"final {key} differs: if meant, {REGENERATE}"
