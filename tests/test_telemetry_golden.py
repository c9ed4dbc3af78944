"""The demo's metric families and MQTT document keys are the committed ones (see
``tests/golden_telemetry.py`` for why and for the one way to change them)."""

from __future__ import annotations

import json

import pytest

from support.golden_telemetry import DOCUMENT, METRICS, REGENERATE, shapes


@pytest.mark.e2e
def test_the_metrics_and_the_mqtt_document_keep_their_names():
    metrics, paths = shapes()
    golden = {f["name"]: f for f in json.loads(METRICS.read_text())}
    now = {f["name"]: f for f in metrics}
    assert sorted(now) == sorted(golden), (
        f"families added {sorted(set(now) - set(golden))}, gone "
        f"{sorted(set(golden) - set(now))}: if meant, {REGENERATE}")
    for name, family in golden.items():
        assert now[name] == family, f"{name} changed: if meant, {REGENERATE}"
    want = json.loads(DOCUMENT.read_text())
    assert paths == want, (f"MQTT document keys added {sorted(set(paths) - set(want))}, gone "
                           f"{sorted(set(want) - set(paths))}: if meant, {REGENERATE}")
