"""What the demo shows a monitoring system, as committed golden files, and how to change them.

A Prometheus dashboard and an MQTT historian are configured against names: a renamed metric, a
label that moves, a key that leaves the MQTT document silently empties a panel or a trend. So the
demo's shape is committed and ``tests/test_telemetry_golden.py`` compares it exactly:

- ``tests/golden/metrics_demo.json``: every family the relay's collector gives (name, type,
  help, unit) and every sample of it by name and labels; values are left out (they are the
  scan's). The telemetry process's own figures (queue, traps) are not part of the collector
  and not in the file.
- ``tests/golden/mqtt_document_demo.json``: every key path of the telemetry document (nested
  keys joined by ``/``, list items as ``[]``), without values.

To change them deliberately: change the metrics or the document, run
``PYTHONPATH=runtime python tests/golden_telemetry.py`` from the repository root, and commit
the new files with the change; say in CHANGELOG which dashboards or historians it breaks.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from gpiozero.pins.mock import MockFactory

from softrelay.relay.relay import Relay
from softrelay.telemetry.metrics import RelayCollector
from softrelay.telemetry.reading import RelayView, document

from support.configs import demo_config

TESTS = Path(__file__).resolve().parents[1]  #: tests/
GOLDEN = TESTS / "golden"
METRICS = GOLDEN / "metrics_demo.json"
DOCUMENT = GOLDEN / "mqtt_document_demo.json"
REGENERATE = "PYTHONPATH=runtime python tests/golden_telemetry.py"


def families(collector: RelayCollector) -> list[dict]:
    return [{"name": f.name, "type": f.type, "help": f.documentation, "unit": f.unit,
             "samples": sorted({(s.name, json.dumps(sorted(s.labels.items())))
                                for s in f.samples})}
            for f in collector.collect()]


def key_paths(value, prefix: str = "") -> list[str]:
    if isinstance(value, dict):
        paths = [prefix] if prefix else []
        for key, item in value.items():
            paths += key_paths(item, f"{prefix}/{key}" if prefix else str(key))
        return paths
    if isinstance(value, list):
        return sorted({p for item in value for p in key_paths(item, f"{prefix}[]")}) or [prefix]
    return [prefix]


def shapes() -> tuple[list[dict], list[str]]:
    """The demo's metric families and MQTT document key paths, from a relay that scanned."""
    with tempfile.TemporaryDirectory() as tmp:
        config = demo_config(Path(tmp))
        relay = Relay(config, None, factory=MockFactory())
        relay.start(companion=False)
        try:
            for _ in range(3):
                relay.loop.step()
            view = RelayView(config, relay.snapshot.attachment(), relay.inputs.attachment())
            try:
                reading = view.read()
                metrics = families(RelayCollector(config, lambda: reading))
                for family in metrics:
                    family["samples"] = [list(s) for s in family["samples"]]
                paths = sorted(set(key_paths(document(config, reading))))
            finally:
                view.close()
        finally:
            relay.stop()
    return metrics, paths


def main() -> int:
    metrics, paths = shapes()
    METRICS.write_text(json.dumps(metrics, indent=1) + "\n")
    DOCUMENT.write_text(json.dumps(paths, indent=1) + "\n")
    print(f"wrote {METRICS} ({len(metrics)} families) and {DOCUMENT} ({len(paths)} keys)")
    return 0

