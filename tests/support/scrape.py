"""The relay's Prometheus endpoint as a test reads it, and the fast relay with extra sections.

``scrape`` reads ``/metrics`` over HTTP on 127.0.0.1 and parses it with prometheus_client's
own parser (what a Prometheus server would accept), so a test asserts on samples, never on
text it parsed itself.
"""

from __future__ import annotations

import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from support.relays import fast_config

#: the metrics endpoint and the Modbus slave, both on free ports of 127.0.0.1
TELEMETRY = """
metrics: {host: 127.0.0.1, port: 0}
modbus: {host: 127.0.0.1, port: 0}
"""


def with_sections(tmp_path: Path, text: str) -> Path:
    """``tests/configs/fast.yaml`` in ``tmp_path`` (``support.relays.fast_config``) with
    ``text`` (whole top-level sections) inserted before its ``plant:`` section."""
    path = fast_config(tmp_path)
    path.write_text(path.read_text().replace("\nplant:", text + "plant:", 1))
    return path


def scrape(port: int) -> dict[str, dict[tuple, float]]:
    """Samples by name, then by their labels (sorted pairs). Fails the test unless the
    endpoint on ``port`` answers 200 within 5 s."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        assert answer.status == 200
        text = answer.read().decode()
    samples: dict[str, dict[tuple, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return samples
